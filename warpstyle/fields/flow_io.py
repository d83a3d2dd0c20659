"""Flow-field files and pictures: Middlebury ``.flo`` read/write and the Middlebury colour wheel.

Both work on *pixel flow* ``(H, W, 2)``, the form ``.flo`` files hold; the grid <-> pixel-flow
conversions and the field convention live in :mod:`warpstyle.fields.warp`, measures of a field in
:mod:`warpstyle.fields.metrics`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from adain.base.errors import FieldError
from adain.base.storage.files import atomic_path

__all__ = [
    "FLO_MAGIC",
    "MAX_FIELD_PIXELS",
    "UNKNOWN_FLOW",
    "write_flo",
    "read_flo",
    "flow_to_color",
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
        FieldError: missing or unreadable file, bad magic number, a size of zero, a negative
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
                raise FieldError(path, f"too short for a .flo header ({len(header)} of 12 bytes)")
            magic, w, h = _FLO_HEADER.unpack(header)
            if magic != FLO_MAGIC:  # exact: 202021.25 is representable in float32
                raise FieldError(path, f"not a .flo file: magic number {magic!r}, expected {FLO_MAGIC}")
            if w < 1 or h < 1 or w * h > MAX_FIELD_PIXELS:
                raise FieldError(path, f"implausible .flo size {w}x{h} (width x height)")
            # Read one byte past the payload so a padded file is caught without reading it all.
            expected = w * h * 2 * 4
            payload = f.read(expected + 1)
    except OSError as e:
        raise FieldError(path, e.strerror or "unreadable file") from None
    if len(payload) < expected:
        raise FieldError(path, f"truncated .flo: {len(payload)} data bytes, expected {expected} for {w}x{h}")
    if len(payload) > expected:
        raise FieldError(path, f"trailing bytes after the {expected} data bytes of a {w}x{h} .flo")
    return np.frombuffer(payload, dtype="<f4").reshape(h, w, 2).astype(np.float32)  # astype copies


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
