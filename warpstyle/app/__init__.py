"""The user-facing app: the ``warpstyle`` command line, the browser demo and model export.
Parses and presents only; the work is done by the library rooms, which never import this one.
"""

__all__: list[str] = []
