"""Flow-field I/O and measures: Middlebury ``.flo``, pixel flow <-> normalised grid, colour wheel, folds.

Convention:
    A warp *grid* is a backward warp from the output (geometry) frame to the content: ``(B, H, W, 2)``
    normalised sampling coordinates in ``[-1, 1]``, ``(x, y)`` order, ``align_corners=False`` (the
    centre of pixel ``i`` of ``W`` sits at ``(2i + 1) / W - 1``).

    A *pixel flow* is the same field as displacements in pixels of the field's own resolution:
    ``flow[..., y, x, :] = (u, v)`` means output pixel ``(x, y)`` samples the content at
    ``(x + u, y + v)`` (pixel centres at integer coordinates). This is what Middlebury ``.flo``
    files hold. For a content image of another size than the field, the displacement is still
    measured at the field's resolution; scale ``u`` by ``content_width / field_width`` (and ``v``
    likewise) to get content pixels. The normalised grid is the size-free form.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from adain.base.checks import check_shape
from adain.base.errors import CheckpointError
from adain.base.files import atomic_path

__all__ = [
    "FLO_MAGIC",
    "MAX_FIELD_PIXELS",
    "UNKNOWN_FLOW",
    "write_flo",
    "read_flo",
    "grid_to_pixel_flow",
    "pixel_flow_to_grid",
    "flow_to_color",
    "fold_fraction",
]

#: The float32 tag that opens every Middlebury ``.flo`` file (the bytes spell ``PIEH``).
FLO_MAGIC = 202021.25
#: Refuse field files (``.flo``, ``.npy``) claiming more pixels than this (a corrupt header, not a real field).
MAX_FIELD_PIXELS = 100_000_000
_FLO_HEADER = struct.Struct("<fii")  # magic (float32), width (int32), height (int32), little-endian
#: Middlebury's marker for unknown flow: components above this (or non-finite) are "no data".
UNKNOWN_FLOW = 1e9


def write_flo(path: str | Path, flow: np.ndarray | torch.Tensor) -> Path:
    """Write pixel flow as a Middlebury ``.flo`` file, atomically.

    The file is the float32 magic ``202021.25``, int32 width, int32 height, then ``H * W * 2``
    float32 values ``u, v`` interleaved in row-major order, all little-endian (Baker et al. 2011).

    Args:
        path: destination file; its directory is created if needed.
        flow: ``(H, W, 2)`` pixel displacements ``(u, v)``; converted to float32.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``flow`` is not ``(H, W, 2)`` with ``H, W >= 1``.

    Example:
        >>> import tempfile, os
        >>> p = write_flo(os.path.join(tempfile.mkdtemp(), "f.flo"), np.zeros((4, 5, 2), np.float32))
        >>> read_flo(p).shape
        (4, 5, 2)
    """
    if isinstance(flow, torch.Tensor):
        flow = flow.detach().cpu().numpy()
    arr = np.asarray(flow)
    if arr.ndim != 3 or arr.shape[2] != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"flow must have shape (H, W, 2) with H, W >= 1; got {tuple(arr.shape)}")
    arr = np.ascontiguousarray(arr, dtype="<f4")
    h, w = arr.shape[:2]
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(_FLO_HEADER.pack(FLO_MAGIC, w, h))
            f.write(arr.tobytes())
    return path


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Args:
        path: the ``.flo`` file.

    Returns:
        ``(H, W, 2)`` float32 pixel displacements ``(u, v)`` (a fresh, writable array).

    Raises:
        CheckpointError: missing or unreadable file, bad magic number, a size of zero, a negative
            size or over 100 M pixels, or a file length that does not match the header.

    Example:
        >>> import tempfile, os
        >>> p = write_flo(os.path.join(tempfile.mkdtemp(), "f.flo"), np.ones((2, 3, 2), np.float32))
        >>> float(read_flo(p).sum())
        12.0
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = f.read(_FLO_HEADER.size)
            if len(header) < _FLO_HEADER.size:
                raise CheckpointError(path, f"too short for a .flo header ({len(header)} of 12 bytes)")
            magic, w, h = _FLO_HEADER.unpack(header)
            if magic != FLO_MAGIC:  # exact: 202021.25 is representable in float32
                raise CheckpointError(path, f"not a .flo file: magic number {magic!r}, expected {FLO_MAGIC}")
            if w < 1 or h < 1 or w * h > MAX_FIELD_PIXELS:
                raise CheckpointError(path, f"implausible .flo size {w}x{h} (width x height)")
            # Read one byte past the payload so a padded file is caught without reading it all.
            expected = w * h * 2 * 4
            payload = f.read(expected + 1)
    except OSError as e:
        raise CheckpointError(path, e.strerror or "unreadable file") from None
    if len(payload) < expected:
        raise CheckpointError(path, f"truncated .flo: {len(payload)} data bytes, expected {expected} for {w}x{h}")
    if len(payload) > expected:
        raise CheckpointError(path, f"trailing bytes after the {expected} data bytes of a {w}x{h} .flo")
    return np.frombuffer(payload, dtype="<f4").reshape(h, w, 2).astype(np.float32)  # astype copies


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
        >>> from warpstyle.warp import identity_grid
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


def _color_wheel() -> np.ndarray:
    """The Middlebury colour wheel (Baker et al. 2011, ``computeColor.m``): ``(55, 3)`` RGB in 0..255.

    Hue segments red -> yellow -> green -> cyan -> blue -> magenta -> red with 15, 6, 4, 11, 13 and 6
    steps, chosen to look perceptually even.
    """
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6
    wheel: list[tuple[float, float, float]] = []
    wheel += [(255, 255 * i / ry, 0) for i in range(ry)]
    wheel += [(255 - 255 * i / yg, 255, 0) for i in range(yg)]
    wheel += [(0, 255, 255 * i / gc) for i in range(gc)]
    wheel += [(0, 255 - 255 * i / cb, 255) for i in range(cb)]
    wheel += [(255 * i / bm, 0, 255) for i in range(bm)]
    wheel += [(255, 0, 255 - 255 * i / mr) for i in range(mr)]
    return np.array(wheel, dtype=np.float64)


def flow_to_color(flow: np.ndarray | torch.Tensor, max_magnitude: float | None = None) -> np.ndarray:
    """Render pixel flow with the standard Middlebury colour wheel.

    Hue gives the direction (``+x`` is red, ``-x`` cyan-blue, image ``y`` points down) and
    saturation the magnitude divided by ``max_magnitude``: zero flow is white. As in the
    reference ``flowToColor.m``, flow longer than ``max_magnitude`` is shown at full saturation and
    darkened to 75 %, and unknown flow (non-finite, or a component above 1e9) is black.

    Args:
        flow: ``(H, W, 2)`` displacements ``(u, v)`` (numpy array or tensor).
        max_magnitude: the magnitude shown fully saturated, > 0; default: the largest known
            magnitude in ``flow``.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: ``flow`` is not ``(H, W, 2)`` or ``max_magnitude`` is not positive.

    Example:
        >>> flow_to_color(np.zeros((2, 3, 2)))[0, 0].tolist()
        [255, 255, 255]
        >>> flow_to_color(np.array([[[1.0, 0.0]]]))[0, 0].tolist()
        [255, 0, 0]
    """
    f = flow.detach().cpu().double().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow, np.float64)
    if f.ndim != 3 or f.shape[2] != 2:
        raise ValueError(f"flow must have shape (H, W, 2); got {tuple(f.shape)}")
    if max_magnitude is not None and not (float(max_magnitude) > 0 and np.isfinite(max_magnitude)):
        raise ValueError(f"max_magnitude must be a positive number or None; got {max_magnitude}")
    unknown = ~np.isfinite(f).all(axis=-1) | (np.abs(f) > UNKNOWN_FLOW).any(axis=-1)
    f = np.where(unknown[..., None], 0.0, f)
    u, v = f[..., 0], f[..., 1]
    rad = np.sqrt(u**2 + v**2)
    top = float(max_magnitude) if max_magnitude is not None else float(rad.max(initial=0.0))
    if top > 0:
        u, v, rad = u / top, v / top, rad / top
    wheel = _color_wheel()
    n = wheel.shape[0]
    angle = np.arctan2(-v, -u) / np.pi  # in [-1, 1]; -1 (pure +x) is the wheel's first colour
    fk = (angle + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % n
    frac = (fk - k0)[..., None]
    col = ((1 - frac) * wheel[k0] + frac * wheel[k1]) / 255.0
    inside = (rad <= 1)[..., None]
    col = np.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)  # towards white when slow
    col = np.where(unknown[..., None], 0.0, col)
    return np.clip(np.floor(255.0 * col), 0, 255).astype(np.uint8)


def fold_fraction(grid: torch.Tensor) -> torch.Tensor:
    """Share of output pixels where the warp folds (Jacobian determinant not positive).

    The map is output pixel -> content pixel at the field's resolution (a normalised step of
    ``2 / L`` is one pixel). Its Jacobian is taken with forward differences, and backward
    differences on the last row and column, so every pixel gets one. An orientation-preserving
    warp has a positive determinant everywhere; zero, negative or non-finite determinants count as
    folds. Fields with fewer than 2 rows or columns have no measurable Jacobian and give 0.

    Args:
        grid: ``(B, H, W, 2)`` floating backward grid (see the module's Convention).

    Returns:
        ``(B,)`` float fractions in ``[0, 1]``: identity gives 0, a horizontal mirror gives 1.

    Raises:
        ValueError, TypeError: ``grid`` is not a floating ``(B, H, W, 2)`` tensor.

    Example:
        >>> from warpstyle.warp import identity_grid
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
