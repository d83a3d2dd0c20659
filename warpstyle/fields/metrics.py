"""Measures of a warp field (quality figures for evaluation and tests, not used to warp)."""

from __future__ import annotations

import torch

from warpstyle.fields.warp import _check_field

__all__ = ["fold_fraction"]


def fold_fraction(grid: torch.Tensor) -> torch.Tensor:
    """Share of output pixels where the warp folds (Jacobian determinant not positive).

    The map is output pixel -> content pixel at the field's resolution (a normalised step of
    ``2 / L`` is one pixel). Its Jacobian is taken with forward differences, and backward
    differences on the last row and column, so every pixel gets one. An orientation-preserving
    warp has a positive determinant everywhere; zero, negative or non-finite determinants count as
    folds. Fields with fewer than 2 rows or columns have no measurable Jacobian and give 0.

    Args:
        grid: ``(B, H, W, 2)`` floating backward grid (the convention of :mod:`warpstyle.fields.warp`).

    Returns:
        ``(B,)`` float fractions in ``[0, 1]``: identity gives 0, a horizontal mirror gives 1.

    Raises:
        ValueError, TypeError: ``grid`` is not a floating ``(B, H, W, 2)`` tensor.

    Example:
        >>> from warpstyle.fields.warp import identity_grid
        >>> fold_fraction(identity_grid(2, 8, 8)).tolist()
        [0.0, 0.0]
    """
    _check_field(grid, "grid")
    b, h, w, _ = grid.shape
    work = grid if grid.dtype == torch.float64 else grid.float()
    if h < 2 or w < 2:
        return torch.zeros(b, device=grid.device, dtype=work.dtype)
    p = work * work.new_tensor([w / 2.0, h / 2.0])  # content pixels, up to a constant offset
    dx = p[:, :, 1:] - p[:, :, :-1]  # (B, H, W-1, 2) d(X, Y)/dx
    dy = p[:, 1:] - p[:, :-1]  # (B, H-1, W, 2) d(X, Y)/dy
    dx = torch.cat([dx, dx[:, :, -1:]], dim=2)  # (B, H, W, 2): backward difference on the last column
    dy = torch.cat([dy, dy[:, -1:]], dim=1)  # (B, H, W, 2): backward difference on the last row
    det = dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]  # (B, H, W)
    return (~(det > 0)).to(work.dtype).mean(dim=(1, 2))
