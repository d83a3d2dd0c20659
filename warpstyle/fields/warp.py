"""Warp fields as tensors: identity grids, smoothing, resizing, strength, and applying them.

Convention (the same everywhere in warpstyle):
    A field is a *backward* warp from the output (geometry) frame to the content: a tensor of
    shape ``(B, H, W, 2)`` holding normalised sampling coordinates in ``[-1, 1]``, ``(x, y)``
    order, ``align_corners=False`` (pixel ``i``'s centre is at ``(2i + 1) / W - 1``). Because
    coordinates are normalised, one field applies at any resolution and aspect ratio.

    A *pixel flow* is the same field as displacements in pixels of the field's own resolution:
    ``flow[..., y, x, :] = (u, v)`` means output pixel ``(x, y)`` samples the content at
    ``(x + u, y + v)`` (pixel centres at integer coordinates). This is what Middlebury ``.flo``
    files hold (:mod:`warpstyle.fields.flow_io`). For a content image of another size than the field, the
    displacement is still measured at the field's resolution; scale ``u`` by
    ``content_width / field_width`` (and ``v`` likewise) to get content pixels. The normalised grid
    is the size-free form; :func:`grid_to_pixel_flow` and :func:`pixel_flow_to_grid` convert.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import remap

from adain.base.checks import check_shape

__all__ = [
    "PaddingMode",
    "PADDING_MODES",
    "DEFAULT_PADDING",
    "identity_grid",
    "resize_field",
    "smooth_field",
    "scale_field",
    "apply_warp",
    "grid_to_pixel_flow",
    "pixel_flow_to_grid",
]

PaddingMode = Literal["blur", "border", "reflection"]
#: What fills the output where a field samples beyond the content, for :func:`apply_warp`.
PADDING_MODES: tuple[str, ...] = ("blur", "border", "reflection")
#: The default fill: never a mirrored copy of a face that a shrinking warp brings into view.
DEFAULT_PADDING: PaddingMode = "blur"
#: ``"blur"``: the fill is the content's colours at this longer side (px), blurred, edge-extended ...
_BLUR_SIDE = 48
#: ... reached over this share of the content's half-extent beyond its edge (a soft seam, no hard line).
_BLUR_RAMP = 0.06


def identity_grid(
    batch: int, height: int, width: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The field that samples every output pixel at its own position; ``(B, H, W, 2)``.

    Example:
        >>> identity_grid(1, 2, 2)[0, 0, 0]
        tensor([-0.5000, -0.5000])
    """
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(batch, height, width, 2).contiguous()


def _displacement(grid: torch.Tensor) -> torch.Tensor:
    b, h, w, _ = grid.shape
    return (grid - identity_grid(b, h, w, device=grid.device, dtype=grid.dtype)).permute(0, 3, 1, 2)  # (B, 2, H, W)


def _from_displacement(disp: torch.Tensor) -> torch.Tensor:
    b, _, h, w = disp.shape
    return disp.permute(0, 2, 3, 1) + identity_grid(b, h, w, device=disp.device, dtype=disp.dtype)


def _affine_part(disp: torch.Tensor) -> torch.Tensor:
    """Least-squares affine fit ``(B, 2, 3)`` of a displacement ``(B, 2, H, W)`` over its cell centres."""
    b, _, h, w = disp.shape
    xy = identity_grid(1, h, w, device=disp.device, dtype=disp.dtype).reshape(-1, 2)
    design = torch.cat([xy, torch.ones_like(xy[:, :1])], dim=1)  # (HW, 3)
    target = disp.flatten(2).transpose(1, 2)  # (B, HW, 2)
    return torch.linalg.lstsq(design.expand(b, -1, -1), target).solution.transpose(1, 2)


def resize_field(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a field to ``size = (H, W)`` smoothly (bicubic on the displacement).

    Interpolating the displacement, not the absolute grid, keeps the identity exact at any size.
    The displacement's affine part (a zoom, a shift) is carried over exactly and only the rest is
    interpolated: PyTorch's cubic (a = -0.75) does not reproduce a linear ramp, and under a strong
    zoom its ripple would fold the image.
    """
    check_shape(grid, "field", ("B", "H", "W", 2))
    if tuple(grid.shape[1:3]) == tuple(size):
        return grid
    b, h, w, _ = grid.shape
    disp = _displacement(grid)
    if h > 1 and w > 1:
        affine = _affine_part(disp.double()).to(disp.dtype)
    else:
        affine = disp.new_zeros(b, 2, 3)

    def add_linear(target: torch.Tensor, sign: float) -> torch.Tensor:
        """``target += sign * (the affine part at its cell centres)``, in place (no full-size temporary)."""
        hh, ww = target.shape[-2:]
        x = identity_grid(1, 1, ww, device=disp.device, dtype=disp.dtype)[0, 0, :, 0]
        y = identity_grid(1, hh, 1, device=disp.device, dtype=disp.dtype)[0, :, 0, 1]
        a = sign * affine[..., None, None]  # (B, 2, 3, 1, 1)
        target += a[:, :, 0] * x
        target += a[:, :, 1] * y[:, None]
        target += a[:, :, 2]
        return target

    out = F.interpolate(add_linear(disp.clone(), -1.0), size=size, mode="bicubic", align_corners=False)
    return _from_displacement(add_linear(out, 1.0))


def smooth_field(grid: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-smooth the displacement with standard deviation ``sigma`` in field cells (0: unchanged)."""
    if sigma <= 0:
        return grid
    k = 2 * int(3 * sigma + 0.5) + 1
    disp = gaussian_blur2d(_displacement(grid), (k, k), (float(sigma), float(sigma)), border_type="replicate")
    return _from_displacement(disp)


def scale_field(grid: torch.Tensor, strength: float) -> torch.Tensor:
    """Scale the displacement from identity by ``strength`` (0: identity, 1: unchanged)."""
    if strength == 1.0:
        return grid
    return _from_displacement(_displacement(grid) * strength)


def apply_warp(
    image: torch.Tensor,
    grid: torch.Tensor,
    *,
    padding: PaddingMode = "reflection",
    mode: Literal["bilinear", "bicubic", "nearest"] = "bilinear",
) -> torch.Tensor:
    """Warp ``image`` by a backward field with kornia's grid sampling.

    The field is resized to the output size first if needed, so a 16x16 field warps a 2048 px image.

    Args:
        image: ``(B, C, Hc, Wc)`` content.
        grid: ``(B, H, W, 2)`` field (see the module convention); the output has its ``H, W``.
        padding: what to sample outside the content (never black or flat grey holes):
            ``"blur"``, the content's edge colours, blurred, faded in over a short band: a calm
            backdrop, never a copy of the subject; ``"border"``, the edge pixels extended as streaks;
            ``"reflection"``, the content mirrored (shows mirrored copies of a subject near the edge).
        mode: interpolation.

    Returns:
        ``(B, C, H, W)``.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> torch.allclose(apply_warp(x, identity_grid(1, 8, 8)), x, atol=1e-6)
        True
    """
    check_shape(image, "image", ("B", "C", "H", "W"))
    check_shape(grid, "field", ("B", "H", "W", 2))
    if not image.is_floating_point():
        raise TypeError(f"image must be a floating-point tensor; got dtype {image.dtype}")
    if not grid.is_floating_point():
        raise TypeError(f"field must be a floating-point tensor; got dtype {grid.dtype}")
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {list(PADDING_MODES)}; got {padding!r}")
    if mode not in ("bilinear", "bicubic", "nearest"):
        raise ValueError(f"mode must be 'bilinear', 'bicubic' or 'nearest'; got {mode!r}")
    if grid.shape[0] != image.shape[0]:
        if grid.shape[0] == 1:
            grid = grid.expand(image.shape[0], -1, -1, -1)
        else:
            raise ValueError(f"field batch {grid.shape[0]} does not match image batch {image.shape[0]}")
    g = grid.to(device=image.device, dtype=image.dtype if image.is_floating_point() else torch.float32)
    inner = "border" if padding == "blur" else padding
    if mode == "bicubic":  # kornia's remap has no bicubic; grid_sample does
        out = F.grid_sample(image, g, mode="bicubic", padding_mode=inner, align_corners=False)
    else:
        out = remap(image, g[..., 0], g[..., 1], mode=mode, padding_mode=inner, align_corners=False,
                    normalized_coordinates=True)
    return _blur_fill(image, g, out) if padding == "blur" else out


def _blur_fill(image: torch.Tensor, grid: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """``sharp`` with the samples beyond the content faded into a blurred, edge-extended backdrop."""
    beyond = (grid.abs() - 1).clamp(min=0).amax(dim=-1)  # (B, H, W): how far outside, in half-extents
    if not bool((beyond > 0).any()):
        return sharp
    h, w = image.shape[-2:]
    scale = _BLUR_SIDE / max(h, w)
    small = F.interpolate(image, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                          align_corners=False, antialias=True) if scale < 1 else image
    small = gaussian_blur2d(F.pad(small, (4, 4, 4, 4), mode="replicate"), (9, 9), (2.5, 2.5))[..., 4:-4, 4:-4]
    fill = F.grid_sample(small, grid, mode="bilinear", padding_mode="border", align_corners=False)
    weight = (beyond / _BLUR_RAMP).clamp(max=1).unsqueeze(1).to(sharp.dtype)
    return sharp + weight * (fill - sharp)


def _pixel_centres(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H, W)`` x and y pixel indices, on ``like``'s device and dtype."""
    ys = torch.arange(h, device=like.device, dtype=like.dtype)
    xs = torch.arange(w, device=like.device, dtype=like.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return gx, gy


def grid_to_pixel_flow(grid: torch.Tensor) -> torch.Tensor:
    """Convert a normalised backward grid to pixel displacements at the grid's own resolution.

    With ``align_corners=False`` a normalised ``g`` on an axis of ``L`` pixels is the pixel
    position ``((g + 1) * L - 1) / 2``; the flow is that position minus the output pixel's own.

    Args:
        grid: ``(B, H, W, 2)`` floating backward grid (see the module's Convention).

    Returns:
        ``(B, H, W, 2)`` pixel flow ``(u, v)``, same dtype and device. For a content image of
        another size, scale by ``content_size / field_size`` per axis.

    Raises:
        ValueError, TypeError: ``grid`` is not a floating ``(B, H, W, 2)`` tensor.

    Example:
        >>> grid_to_pixel_flow(identity_grid(1, 4, 6)).abs().max().item() < 1e-6
        True
    """
    _check_field(grid, "grid")
    _, h, w, _ = grid.shape
    gx, gy = _pixel_centres(h, w, grid)
    u = ((grid[..., 0] + 1) * w - 1) / 2 - gx
    v = ((grid[..., 1] + 1) * h - 1) / 2 - gy
    return torch.stack([u, v], dim=-1)


def pixel_flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`grid_to_pixel_flow`: pixel displacements -> normalised backward grid.

    Args:
        flow: ``(B, H, W, 2)`` floating pixel flow ``(u, v)`` at the field's resolution.

    Returns:
        ``(B, H, W, 2)`` normalised grid (``align_corners=False``), same dtype and device.

    Raises:
        ValueError, TypeError: ``flow`` is not a floating ``(B, H, W, 2)`` tensor.

    Example:
        >>> g = pixel_flow_to_grid(torch.zeros(1, 2, 2, 2))
        >>> g[0, 0, 0].tolist()
        [-0.5, -0.5]
    """
    _check_field(flow, "flow")
    _, h, w, _ = flow.shape
    gx, gy = _pixel_centres(h, w, flow)
    nx = (2 * (flow[..., 0] + gx) + 1) / w - 1
    ny = (2 * (flow[..., 1] + gy) + 1) / h - 1
    return torch.stack([nx, ny], dim=-1)


def _check_field(x: object, name: str) -> None:
    check_shape(x, name, ("B", "H", "W", 2))
    assert isinstance(x, torch.Tensor)  # for type checkers; check_shape raised otherwise
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (B, H, W, 2); got {x.dtype}")
