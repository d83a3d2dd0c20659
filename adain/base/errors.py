"""One error hierarchy for both stages; every error carries its data and a one-line message."""

from __future__ import annotations

from pathlib import Path

__all__ = ["StyleTransferError", "ImageError", "CheckpointError", "FieldError", "ConfigError", "OutputError"]


class StyleTransferError(Exception):
    """Base class of every user-facing error raised by ``adain`` and ``warpstyle``."""


class ImageError(StyleTransferError):
    """An image could not be read or written.

    Args:
        path: the file (or a description such as ``"<array>"``) that failed.
        reason: a short, lower-case explanation, e.g. ``"truncated JPEG"``.
        action: the verb of the message, ``"read"`` (default) or ``"write"``.
    """

    def __init__(self, path: str | Path, reason: str, *, action: str = "read") -> None:
        self.path = str(path)
        self.reason = reason
        self.action = action
        super().__init__(f"cannot {action} '{self.path}': {reason}")

    def __reduce__(self) -> tuple:  # picklable across processes (the default would call ImageError(message))
        return (_rebuild, (type(self), (self.path, self.reason), {"action": self.action}))


class CheckpointError(StyleTransferError):
    """A weights file or training checkpoint could not be loaded."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load '{self.path}': {reason}")

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), (self.path, self.reason), {}))


class FieldError(StyleTransferError):
    """A warp-field file (``.flo`` or ``.npy``) could not be read: not weights, so not a CheckpointError.

    Args:
        path: the field file.
        reason: a short, lower-case explanation, e.g. ``"truncated .flo"``.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read field '{self.path}': {reason}")

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), (self.path, self.reason), {}))


class ConfigError(StyleTransferError):
    """A configuration file or value is invalid."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f"config '{self.path}'" if self.path else "config"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), (self.path, self.reason), {}))


class OutputError(StyleTransferError):
    """An output path is unsafe or impossible to write: it is an input, a device, a folder, ...

    Args:
        path: the output path as the user gave it.
        reason: a short, lower-case explanation, e.g. ``"it is the --content input"``.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write '{self.path}': {reason}")

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), (self.path, self.reason), {}))


def _rebuild(cls: type, args: tuple, kwargs: dict) -> StyleTransferError:
    return cls(*args, **kwargs)
