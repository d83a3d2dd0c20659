"""The coarse-to-fine pass sizes of a stylization, shared by both engines (torch-free).

:class:`adain.styler.Styler` (torch) and :class:`adain.engines.onnx_styler.OnnxStyler`
(onnxruntime) both take their passes from :func:`pass_sizes`, so the two engines run the same
schedule by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MIN_SCALE", "MIN_SIDE", "TILE_MIN_PIXELS", "round8", "scale_schedule", "pass_sizes"]

#: The coarsest scale of the automatic schedule (px, longer side). Measured on 8 held-out pairs at
#: 512 px (docs/quality.md): a 256 px pass before the 512 one costs style and content against a single
#: 512 px pass whichever schedule joins them, so coarse passes start at 512.
MIN_SCALE = 512
#: Smallest side of a pass (px): relu4_1 is 1/8 of it, and the decoder's reflection padding needs 2 px.
MIN_SIDE = 16
#: Passes with more pixels than this run in tiles when the plan leaves the tile size automatic: every
#: output up to 1024x1024 keeps the whole-image pass it always had. Measured at 4K bf16: with 2 MP,
#: the whole-image 1920x1080 pass beside the tiled 3840 one set the peak (4.13 GiB).
TILE_MIN_PIXELS = 1 << 20


def round8(x: float) -> int:
    """``x`` px rounded to the nearest multiple of 8 (ties to even, Python's ``round``), at least
    :data:`MIN_SIDE` (a pass's side).

    Example:
        >>> round8(101), round8(100), round8(3)
        (104, 96, 16)
    """
    return max(MIN_SIDE, int(round(x / 8)) * 8)


def scale_schedule(size: int, scales: Sequence[int] | None = None) -> list[int]:
    """Longer-side sizes of the coarse-to-fine passes, ending at ``size``.

    ``scales=None`` halves from ``size`` down to the first value >= 512, e.g. 2048 -> [512, 1024, 2048],
    1024 -> [512, 1024], 512 -> [512], 300 -> [300]. Explicit scales are sorted, clipped to ``size``
    and end at it.

    Example:
        >>> scale_schedule(1024)
        [512, 1024]
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 px; got {size}")
    if scales is None:
        out = [size]
        while out[0] // 2 >= MIN_SCALE:
            out.insert(0, out[0] // 2)
        return out
    vals = sorted({int(s) for s in scales if 8 <= int(s) < size})
    return vals + [size]


def pass_sizes(out_hw: tuple[int, int], size: int | None = None,
               scales: Sequence[int] | None = None) -> list[tuple[int, int, int]]:
    """``(height, width, longer_side)`` of each pass for an output of ``out_hw`` (sides multiples of 8).

    Args:
        out_hw: the output's ``(H, W)`` (``Styler.output_size``).
        size: the requested longer side (None: the output's own, ``max(out_hw)``).
        scales: explicit pass sizes, or None for :func:`scale_schedule`'s default.

    Example:
        >>> pass_sizes((600, 800), 800)
        [(600, 800, 800)]
    """
    out_long = max(out_hw) if size is None else int(size)
    return [(round8(out_hw[0] * s / out_long), round8(out_hw[1] * s / out_long), s)
            for s in scale_schedule(out_long, scales)]
