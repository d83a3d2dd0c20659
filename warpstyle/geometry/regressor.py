"""WarpRegressor: correlation -> dense, non-parametric warp field, with iterative refinement."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from warpstyle.geometry.correlation import correlation_4d, normalize_correlation
from warpstyle.fields.warp import identity_grid

__all__ = ["WarpRegressor"]


class _FieldHead(nn.Module):
    """Conv net from the normalised correlation (+ coordinates) to a displacement ``(B, 2, H, W)``."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden // 2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden // 2, hidden // 2, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(hidden // 2, 2, 3, padding=1)
        # Zero-initialised last layer: training starts from the identity warp (official release).
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class WarpRegressor(nn.Module):
    """Regress a backward warp field from two L2-normalised feature maps.

    Step 0 reads the correlation of content and geometry features; each refinement step warps the
    content features by the current field, recomputes the correlation and predicts a residual
    field, composed onto the current one. Coordinates of each geometry location are appended as
    two channels (CoordConv) so a matched content position can become a displacement.

    Args:
        grid_size: side of the (square) feature maps, 16 for 256 px pool4.
        hidden: width of the conv heads.
        refine_steps: number of refinement steps after the first estimate.

    Shape:
        - Input: content and geometry features ``(B, C, G, G)``, L2-normalised over C.
        - Output: field ``(B, G, G, 2)`` (backward, normalised, ``align_corners=False``).

    Example:
        >>> reg = WarpRegressor(grid_size=4, hidden=16, refine_steps=1)
        >>> f = torch.nn.functional.normalize(torch.rand(2, 8, 4, 4), dim=1)
        >>> reg(f, f).shape
        torch.Size([2, 4, 4, 2])
    """

    def __init__(self, grid_size: int = 16, hidden: int = 128, refine_steps: int = 1) -> None:
        super().__init__()
        self.grid_size, self.hidden, self.refine_steps = grid_size, hidden, refine_steps
        in_ch = grid_size * grid_size + 2
        self.heads = nn.ModuleList(_FieldHead(in_ch, hidden) for _ in range(1 + refine_steps))

    def config(self) -> dict[str, int]:
        return {"grid_size": self.grid_size, "hidden": self.hidden, "refine_steps": self.refine_steps}

    def forward(self, content: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        b, _, g, g2 = geometry.shape
        if (g, g2) != (self.grid_size, self.grid_size) or tuple(content.shape[-2:]) != (g, g2):
            raise ValueError(
                f"features must be (B, C, {self.grid_size}, {self.grid_size}); got content "
                f"{tuple(content.shape)} and geometry {tuple(geometry.shape)}"
            )
        ident = identity_grid(b, g, g, device=geometry.device, dtype=torch.float32)
        coords = ident.permute(0, 3, 1, 2)  # (B, 2, G, G)
        grid = ident
        for step, head in enumerate(self.heads):
            if step == 0:
                warped = content.float()
            else:
                warped = F.grid_sample(content.float(), grid, mode="bilinear", padding_mode="border",
                                       align_corners=False)
                warped = F.normalize(warped, dim=1)
            corr = normalize_correlation(correlation_4d(warped, geometry.float()))  # (B, G*G, G, G)
            disp = head(torch.cat([corr.to(coords.dtype), coords], dim=1)).float()  # (B, 2, G, G)
            step_grid = ident + disp.permute(0, 2, 3, 1)
            if step == 0:
                grid = step_grid
            else:
                # compose: new(x) = grid(x + residual(x)), sampling the current field
                grid = F.grid_sample(grid.permute(0, 3, 1, 2), step_grid, mode="bilinear",
                                     padding_mode="border", align_corners=False).permute(0, 2, 3, 1)
        return grid
