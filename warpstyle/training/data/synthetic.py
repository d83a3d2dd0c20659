"""Synthetic training pairs: random affine + thin-plate-spline warps with exact ground-truth fields.

As in Rocco et al. 2017 and the official "Learning to Warp" release: a random affine map (scale,
rotation, shear, translation) composed with a TPS jitter of a 3x3 control grid. Image B is image
A warped by the field, so the field *is* the ground truth of ``estimate(A, B)``.
"""

from __future__ import annotations

import dataclasses

import torch
from kornia.geometry.transform import get_tps_transform, warp_points_tps

from warpstyle.fields.warp import PaddingMode, apply_warp, identity_grid

__all__ = ["SyntheticWarpSpec", "WarpParams", "random_warp_params", "synthetic_field", "make_synthetic_pair"]


@dataclasses.dataclass(frozen=True)
class SyntheticWarpSpec:
    """Ranges of the random warps (normalised coordinates; angles in degrees).

    The defaults are Rocco et al. 2017's ranges, as in the official release; the training config's
    fields of the same names take their defaults from here.
    """

    scale_min: float = 0.75
    scale_max: float = 1.25
    rotation_deg: float = 15.0
    shear_deg: float = 15.0
    translation: float = 0.15
    tps_jitter: float = 0.15


@dataclasses.dataclass
class WarpParams:
    """A batch of sampled warps: ``affine`` ``(B, 2, 3)`` and TPS control offsets ``(B, 9, 2)``."""

    affine: torch.Tensor
    tps_offsets: torch.Tensor


_CONTROL = torch.tensor([[x, y] for y in (-1.0, 0.0, 1.0) for x in (-1.0, 0.0, 1.0)])  # (9, 2)


def random_warp_params(batch: int, spec: SyntheticWarpSpec, generator: torch.Generator) -> WarpParams:
    """Sample ``batch`` warps from ``spec`` with ``generator`` (CPU, so runs are reproducible)."""

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=generator)

    scale = u(spec.scale_min, spec.scale_max, batch)
    rot = torch.deg2rad(u(-spec.rotation_deg, spec.rotation_deg, batch))
    shear = torch.tan(torch.deg2rad(u(-spec.shear_deg, spec.shear_deg, batch)))
    trans = u(-spec.translation, spec.translation, batch, 2)
    cos, sin = torch.cos(rot), torch.sin(rot)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
    shear_m = torch.eye(2).repeat(batch, 1, 1)
    shear_m[:, 0, 1] = shear
    linear = rotation @ shear_m * scale.view(batch, 1, 1)
    affine = torch.cat([linear, trans.unsqueeze(-1)], dim=-1)  # (B, 2, 3)
    offsets = u(-spec.tps_jitter, spec.tps_jitter, batch, 9, 2)
    return WarpParams(affine=affine, tps_offsets=offsets)


def synthetic_field(params: WarpParams, size: tuple[int, int]) -> torch.Tensor:
    """The backward field ``(B, H, W, 2)`` of ``params`` at ``size = (H, W)``: q = affine(tps(p))."""
    b = params.affine.shape[0]
    h, w = size
    device = params.affine.device
    pts = identity_grid(b, h, w, device=device).reshape(b, h * w, 2)
    src = _CONTROL.to(device).expand(b, 9, 2)
    dst = src + params.tps_offsets.to(device)
    kernel_w, affine_w = get_tps_transform(src, dst)
    pts = warp_points_tps(pts, src, kernel_w, affine_w)
    a = params.affine.to(device)
    pts = pts @ a[:, :, :2].transpose(1, 2) + a[:, :, 2].unsqueeze(1)
    return pts.reshape(b, h, w, 2)


def make_synthetic_pair(
    image: torch.Tensor, params: WarpParams, *, padding: PaddingMode = "reflection"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp ``image`` ``(B, C, H, W)`` by ``params``; returns ``(warped (B, C, H, W), field (B, H, W, 2))``."""
    field = synthetic_field(params, tuple(image.shape[-2:]))
    return apply_warp(image, field, padding=padding), field
