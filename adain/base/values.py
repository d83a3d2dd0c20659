"""Torch-free checks of plain values (numbers, weights) at public boundaries; re-exported by
:mod:`adain.base.checks`, used by both engines (:mod:`adain.engines`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["check_range", "check_weights"]


def check_range(x: float, name: str, low: float, high: float) -> None:
    """Raise ``ValueError`` unless ``low <= x <= high`` (``TypeError`` if ``x`` is not a number)."""
    try:
        value = float(x)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a number in [{low}, {high}]; got {x!r}") from None
    if not (low <= value <= high):  # also refuses NaN
        raise ValueError(f"{name} must be in [{low}, {high}]; got {x}")


def check_weights(weights: Sequence[float] | None, name: str, count: int, item: str = "style") -> list[float] | None:
    """``count`` finite, non-negative weights, not all zero, as floats (None stays None).

    Raises:
        ValueError: the wrong number of weights, a negative, NaN or infinite weight, or all zero
            (which would mix nothing: the output would be flat grey).

    Example:
        >>> check_weights([2, 1], "weights", 2)
        [2.0, 1.0]
    """
    if weights is None:
        return None
    try:
        w = [float(v) for v in weights]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers; got {weights!r}") from None
    if len(w) != count:
        raise ValueError(f"{name} must hold one weight per {item} ({count}); got {len(w)}")
    bad = [v for v in w if not (math.isfinite(v) and v >= 0)]
    if bad:
        raise ValueError(f"{name} must be finite and >= 0; got {bad[0]}")
    if not any(w):
        raise ValueError(f"{name} must not all be zero; got {w}")
    return w
