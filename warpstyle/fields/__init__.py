"""Fields and warping: the :class:`~warpstyle.fields.field.WarpField` type, grids, smoothing, resizing,
applying a field to an image, field files (``.flo``, ``.npy``) and measures of a field (folds).

Convention everywhere: a backward warp, output (geometry) frame -> content; normalised ``[-1, 1]``,
``(x, y)`` order, ``align_corners=False``, shape ``(B, H, W, 2)``. Imports only :mod:`adain.base`,
torch and kornia: every other room builds on this one.
"""

__all__: list[str] = []
