"""The pipeline's output-size policy, torch-free: the default longer side and the ``--max-size`` cap.

:mod:`warpstyle.pipeline` (torch) and the onnx engine's texture-only run
(:mod:`warpstyle.app.texture_onnx`) both take the output's longer side from :func:`longer_side`.
"""

from __future__ import annotations

import logging

__all__ = ["DEFAULT_SIZE", "longer_side"]

log = logging.getLogger("warpstyle.pipeline")  # the name its warning always had

#: The output's longer side (px) when ``size`` is not given.
DEFAULT_SIZE = 512


def longer_side(size: int | None, max_size: int, *, warn: bool = True) -> int:
    """The output's longer side: ``size`` (default :data:`DEFAULT_SIZE`) capped to ``max_size``
    (logged when ``warn``).

    Example:
        >>> longer_side(None, 4096), longer_side(8000, 4096)
        (512, 4096)
    """
    want = DEFAULT_SIZE if size is None else size
    if want > max_size and warn:
        log.warning("output size %d capped to --max-size %d", want, max_size)
    return min(want, max_size)
