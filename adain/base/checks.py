"""Validation helpers for public boundaries; internal helpers trust their callers."""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Re-exported: the torch-free value checks live in values.py (the onnxruntime engine uses them too).
from .values import check_range, check_weights

__all__ = ["check_image", "check_shape", "check_range", "check_same_device", "check_device", "check_weights"]

#: Device types the models run on; others (mps, xla, meta...) are refused up front rather than
#: failing somewhere inside a pass.
DEVICE_TYPES = ("cpu", "cuda")


def _shape_str(x: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def check_shape(x: object, name: str, expected: Sequence[str | int]) -> None:
    """Raise ``ValueError``/``TypeError`` unless ``x`` is a tensor of shape ``expected``.

    ``expected`` mixes ints (exact sizes) and strings (any size, a name for the message).

    Example:
        >>> check_shape(torch.zeros(1, 3, 4, 4), "content", ("B", 3, "H", "W"))
    """
    want = "(" + ", ".join(str(e) for e in expected) + ")"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {want}; got {type(x).__name__}")
    if x.dim() != len(expected) or any(
        isinstance(e, int) and s != e for s, e in zip(x.shape, expected)
    ):
        raise ValueError(f"{name} must have shape {want}; got {_shape_str(x)}")
    if x.is_meta:
        raise ValueError(f"{name} is on the meta device, which holds no data; pass a cpu or cuda tensor")


def check_device(device: torch.device | str | None, name: str = "device", *, auto: bool = False) -> torch.device | None:
    """``device`` as a :class:`torch.device` of a supported type, or None (None stays None).

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device`; ``"auto"`` when
            ``auto`` (CUDA when available, else CPU).

    Raises:
        ValueError: another device type (``mps``, ``meta``, ``xla``...), an unparsable name, or
            CUDA asked for where there is none.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return None
    if auto and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in DEVICE_TYPES:
        choices = ("auto, " if auto else "") + "cpu, cuda or cuda:N"
        raise ValueError(f"{name} must be {choices}; got {str(device)!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {str(device)!r} requested but no CUDA device is available")
    return dev


def check_same_device(x: torch.Tensor, name: str, ref: torch.Tensor, ref_name: str) -> None:
    """Raise ``ValueError`` unless ``x`` lives on ``ref``'s device.

    Example:
        >>> check_same_device(torch.zeros(1), "style", torch.zeros(1), "content")
    """
    if x.device != ref.device:
        raise ValueError(f"{name} must be on the same device as {ref_name} ({ref.device}); got {x.device}")


def check_image(x: object, name: str, *, channels: int = 3) -> None:
    """Raise unless ``x`` is a float ``(B, channels, H, W)`` tensor with values in [0, 1].

    Example:
        >>> check_image(torch.rand(2, 3, 8, 8), "content")
    """
    check_shape(x, name, ("B", channels, "H", "W"))
    assert isinstance(x, torch.Tensor)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1]; got dtype {x.dtype}")
    if x.shape[-1] < 1 or x.shape[-2] < 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must be non-empty; got shape {_shape_str(x)}")
    lo, hi = float(x.min()), float(x.max())
    if lo != lo or hi != hi:  # min/max propagate NaN
        raise ValueError(f"{name} must have finite values in [0, 1]; got NaN")
    # A little slack for resampling overshoot; anything beyond is a 0..255 mix-up.
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"{name} must have values in [0, 1]; got range [{lo:.3g}, {hi:.3g}]"
            + (" (did you pass 0..255 pixels?)" if hi > 1.5 else "")
        )
