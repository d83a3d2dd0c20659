"""Image I/O: anything image-like in, float ``(1, 3, H, W)`` RGB in [0, 1] out; atomic saves.

Files are decoded and written by :mod:`adain.base.imagefile` (torch-free, shared with the
onnxruntime engine), whose conversion rules, pixel limit and working-size decoding hold here too;
this module adds tensors, resizing and sheets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .checks import check_image
from .errors import ImageError
# Re-exported: the names this module has always had (and data.py's decoder helpers).
from .imagefile import (DEFAULT_MAX_PIXELS, OUTPUT_MARKER, DecodeCost, _decode, _open_checked,  # noqa: F401
                        check_image_output, decode_cost, fit_longer, is_marked_output, no_memory_reason, save_pil)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageLike",
    "load_image",
    "decode_cost",
    "DecodeCost",
    "no_memory_reason",
    "save_image",
    "check_image_output",
    "to_pil",
    "labelled_row",
    "fit_longer",
    "resize_longer",
    "resize_shorter",
    "resize_exact",
    "resize_to_multiple",
    "as_image_batch",
    "OUTPUT_MARKER",
    "is_marked_output",
]


ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]


def _array_to_tensor(arr: np.ndarray, name: str) -> torch.Tensor:
    """A caller's array, checked and copied, as ``(1, 3, H, W)`` float32."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape:
        raise ImageError(name, f"array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {arr.shape}")
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ImageError(name, "float arrays must hold finite values in [0, 1]")
    else:
        raise ImageError(name, f"unsupported array dtype {arr.dtype} (expected uint8, uint16 or float)")
    if x.shape[2] == 4:
        alpha = x[..., 3:4]
        x = x[..., :3] * alpha + (1.0 - alpha)  # composite on white, like files
    elif x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).unsqueeze(0)


def load_image(
    src: ImageLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: torch.device | str | None = None,
    working_size: int | None = None,
) -> torch.Tensor:
    """Load an image as a float RGB tensor.

    Args:
        src: a path, PIL image, numpy array ``(H, W[, C])`` (uint8, uint16 or float in [0, 1])
            or tensor ``(3, H, W)`` / ``(1, 3, H, W)`` (uint8, or float in [0, 1]).
        max_pixels: refuse larger images (decompression-bomb guard).
        device: where to put the result.
        working_size: for files and PIL images: when the longer side is at least twice this (px),
            decode smaller by the integer factor ``longer // working_size``, so that the longer side
            stays at least ``working_size``: JPEGs by DCT scaling (``Image.draft``), others by
            ``Image.reduce`` of the 8-bit decode. None (default): full size.

    Returns:
        ``(1, 3, H, W)`` float32 tensor in [0, 1].

    Raises:
        ImageError: missing, empty, unreadable, truncated, non-image or too large input, or not
            enough memory to decode it (the message says so, with its size).

    Example:
        >>> load_image(np.zeros((4, 5, 3), dtype=np.uint8)).shape
        torch.Size([1, 3, 4, 5])
    """
    if isinstance(src, torch.Tensor):
        x = src.detach()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        check_image(x, "image")
        if x.shape[0] != 1:
            raise ValueError(f"image must hold one image (1, 3, H, W); got batch of {x.shape[0]}")
        out = x.to(torch.float32, copy=True)  # never alias the caller's tensor (arrays are copied too)
    elif isinstance(src, np.ndarray):
        if src.size > max_pixels * 4:
            raise ImageError("<array>", "array is over the pixel limit")
        out = _array_to_tensor(src, "<array>")
    elif isinstance(src, (str, os.PathLike, Image.Image)):
        im, name = _open_checked(src, max_pixels)
        # Our own decode, float32 (H, W, 3) in [0, 1] by construction: its storage becomes the tensor's
        # (no copy, and no full-size checks of what _pil_to_rgb_array guarantees).
        out = torch.from_numpy(_decode(im, name, max_pixels, working_size)).permute(2, 0, 1).unsqueeze(0)
    else:
        raise TypeError(f"image must be a path, PIL image, numpy array or tensor; got {type(src).__name__}")
    return out.to(device) if device is not None else out


def to_pil(image: torch.Tensor) -> Image.Image:
    """Convert a ``(1, 3, H, W)`` or ``(3, H, W)`` float tensor in [0, 1] to an 8-bit RGB PIL image."""
    x = image.detach()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"image must be (1, 3, H, W) or (3, H, W); got {tuple(x.shape)}")
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"image must be (1, 3, H, W) or (3, H, W); got {tuple(x.shape)}")
    arr = (x.float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")



def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike, *, quality: int = 95,
               replace_readonly: bool = False) -> Path:
    """Save an image atomically; the format follows the extension (.png, .jpg, .webp, ...).

    Args:
        image: ``(1, 3, H, W)`` / ``(3, H, W)`` float tensor in [0, 1], or a PIL image.
        path: destination; its parent directories are created.
        quality: JPEG/WebP quality (1-95).
        replace_readonly: replace an existing read-only file (refused by default).

    Returns:
        The written path.

    Raises:
        ImageError: a tensor holding NaN or inf (broken weights give these; writing them would save
            a black image as if it had worked), or the write failed.
        OutputError: see :func:`~adain.base.storage.files.check_output_path`.
    """
    path = Path(path)
    check_image_output(path, replace_readonly=replace_readonly)  # the extension, before any conversion
    if isinstance(image, torch.Tensor) and not bool(torch.isfinite(image.detach()).all()):
        raise ImageError(path, "the result holds NaN or infinite values (broken or overflowing weights?); "
                               "nothing was written", action="write")
    im = image if isinstance(image, Image.Image) else to_pil(image)
    return save_pil(im, path, quality=quality, replace_readonly=replace_readonly)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if (h, w) == tuple(x.shape[-2:]):
        return x
    # antialias matters when shrinking, or fine texture aliases into moire.
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)




def resize_longer(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` so the longer side is ``size``, keeping the aspect ratio."""
    return _resize(x, *fit_longer(tuple(x.shape[-2:]), size))


def resize_shorter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` so the shorter side is ``size``, keeping the aspect ratio."""
    h, w = x.shape[-2:]
    s = size / min(h, w)
    return _resize(x, max(1, round(h * s)), max(1, round(w * s)))


def labelled_row(panels: Sequence[tuple[str, torch.Tensor]], height: int = 256, gap: int = 6) -> Image.Image:
    """Images side by side, each scaled to ``height`` px (aspect kept) under a one-line label.

    ``panels``: ``(label, image)`` pairs, each image ``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1].
    """
    label_h = 20
    tiles = []
    for name, img in panels:
        h, w = img.shape[-2:]
        tile = to_pil(resize_exact(img.detach().cpu().float().reshape(1, 3, h, w), (height, max(1, round(w * height / h)))))
        canvas = Image.new("RGB", (tile.width, height + label_h), "white")
        canvas.paste(tile, (0, label_h))
        ImageDraw.Draw(canvas).text((4, 4), name, fill=(0, 0, 0))
        tiles.append(canvas)
    row = Image.new("RGB", (sum(t.width for t in tiles) + gap * max(0, len(tiles) - 1), height + label_h), "white")
    x = 0
    for t in tiles:
        row.paste(t, (x, 0))
        x += t.width + gap
    return row


def resize_exact(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to exactly ``size = (height, width)``."""
    return _resize(x, int(size[0]), int(size[1]))


def resize_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to the nearest size whose sides are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    nh = max(multiple, round(h / multiple) * multiple)
    nw = max(multiple, round(w / multiple) * multiple)
    return _resize(x, nh, nw)


def as_image_batch(x: Any, name: str, *, working_size: int | None = None) -> torch.Tensor:
    """A float32 ``(B, 3, H, W)`` batch in [0, 1] from a tensor, or any image-like via ``load_image``.

    Tensors may be ``(3, H, W)`` or ``(B, 3, H, W)``, float in [0, 1] or uint8 (divided by 255, as
    ``load_image`` does); anything else is checked by :func:`check_image` with ``name`` in the message.
    Paths, PIL images and arrays go through :func:`load_image` (with ``working_size``).

    Example:
        >>> as_image_batch(torch.rand(3, 8, 8), "content").shape
        torch.Size([1, 3, 8, 8])
    """
    if not isinstance(x, torch.Tensor):
        return load_image(x, working_size=working_size)
    t = x.unsqueeze(0) if x.dim() == 3 else x
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    check_image(t, name)
    return t.float()
