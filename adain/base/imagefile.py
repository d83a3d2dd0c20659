"""Image files without torch: decode to float32 ``(H, W, 3)`` arrays in [0, 1], save 8-bit RGB.

The torch-free half of :mod:`adain.base.image` (which re-exports all of this and adds tensors,
resizing and sheets), so the onnxruntime engine (:mod:`adain.engines`) loads and saves images by
the same rules without importing torch. Conversion rules (applied in this order):

* the first frame of animated files is used;
* EXIF orientation is applied;
* 16-bit and 32-bit integer images are scaled by their bit depth (``/ 65535``);
* anything with transparency (RGBA, LA, palette with a transparent index) is composited on white;
* CMYK, YCbCr, grayscale and palette images are converted to RGB;
* float images with NaN or infinite pixels are refused (one such pixel would decide the scale).

Inputs must be regular files: directories, FIFOs and devices are refused by name.

Decompression bombs are refused by a pixel limit checked from the header, before decoding.

Large files can be decoded straight to a working size (``working_size``): a JPEG through its DCT
scaling (Pillow's ``Image.draft``, which never builds the full-size image), anything else at 8 bits
per channel and then reduced by an integer box filter (``Image.reduce``) before the float
conversion, so only the 8-bit decode is ever full size.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .storage.files import atomic_path, check_output_path, input_file_problem

__all__ = ["DEFAULT_MAX_PIXELS", "OUTPUT_MARKER", "read_rgb", "write_rgb", "save_pil", "rgb_to_uint8",
           "check_image_output", "is_marked_output", "fit_longer"]

#: Refuse images with more pixels than this (about 8K x 8K). Overridable per call.
DEFAULT_MAX_PIXELS = 64_000_000

# _PIL_NOISE: Pillow warns ("Corrupt EXIF data. Expecting to read 2 bytes...") about damaged metadata
# that it then skips; printed by the CLIs, those warnings break the one-line error contract, and the
# image either loads or fails with our own ImageError anyway, so they are silenced while loading.

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def _pil_to_rgb_array(im: Image.Image, name: str, source_format: str | None = None,
                      source_mode: str | None = None) -> np.ndarray:
    """Convert a decoded PIL image to float32 ``(H, W, 3)`` in [0, 1] by the module rules
    (``source_mode``: the mode as decoded, where a reduction changed it)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        # Pillow opens 16-bit PGM/PPM (maxval > 255) as "I" already rescaled to 0..65535, so a dark
        # one must not be mistaken for 8-bit by the value heuristic below.
        sixteen = (source_mode or im.mode).startswith("I;16") or source_format == "PPM"
        scale = 65535.0 if sixteen or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / scale, 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            # One infinite pixel would otherwise decide the scale of the whole image.
            bad = int((~np.isfinite(arr)).sum())
            raise ImageError(name, f"float image has {bad} non-finite pixel(s) (NaN or infinity)")
        if arr.max(initial=0) > 1.0:
            arr = arr / 255.0
        return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=2)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode == "P" and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    arr = np.asarray(im, dtype=np.float32)  # a new array: divided in place, one float copy rather than two
    arr /= 255.0
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(name, f"unsupported pixel layout {arr.shape}")
    return arr


def _open_checked(src: str | os.PathLike | Image.Image, max_pixels: int) -> tuple[Image.Image, str]:
    if isinstance(src, Image.Image):
        return src, "<PIL image>"
    path = Path(src)
    name = str(src)
    problem = input_file_problem(path)
    if problem is not None:
        raise ImageError(name, problem.replace("not a file", "not an image file"))
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageError(name, e.strerror or "cannot stat file") from None
    if size == 0:
        raise ImageError(name, "file is empty (0 bytes)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(name, e.strerror or "unreadable file") from None
    try:
        with warnings.catch_warnings():
            # Our own ``max_pixels`` check in ``_decode`` is the guard (it may be raised per call);
            # Pillow's warning threshold (~89 Mpx) must not override it. Only Pillow's hard limit
            # (twice that), which cannot be lifted without global state, is still enforced here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")  # see _PIL_NOISE
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(name, "not a recognised image format") from None
    except Image.DecompressionBombError:
        hard = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageError(
            name, f"image is too large: over Pillow's decompression-bomb limit of {hard:,} pixels"
        ) from None
    except Exception as e:  # PIL raises many types for malformed headers
        msg = str(e).splitlines()[0] if str(e) else ""
        if "decompressed data too large" in msg.lower():
            # Pillow caps each compressed metadata chunk (an ICC profile, zTXt text) at 1 MiB.
            raise ImageError(name, "a metadata chunk (e.g. an embedded ICC profile or text) is over Pillow's "
                                   "1 MiB safety limit; re-save the image without it") from None
        raise ImageError(name, f"malformed image header ({type(e).__name__}{': ' + msg[:80] if msg else ''})") from None
    return im, name


@contextlib.contextmanager
def _libtiff_stderr_muted(image_format: str | None) -> Iterator[None]:
    """Point fd 2 at /dev/null while a TIFF decodes.

    libtiff prints its errors ("TIFFFetchDirectory: Can not read TIFF directory.") straight to fd 2
    before Pillow raises the error we turn into an ImageError, which breaks the CLIs' one-line error.
    fd 2 belongs to the whole process, so this is done on the main thread only and for TIFF only.
    """
    if image_format != "TIFF" or threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no fd 2 (e.g. a daemon): nothing to mute
        yield
        return
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _reduction(size: tuple[int, int], working_size: int | None) -> int:
    """The integer factor a ``size = (W, H)`` image is decoded smaller by so that its longer side stays
    at least ``working_size``; 1 (none) below twice that."""
    if working_size is None or working_size < 1:
        return 1
    return max(1, max(size) // int(working_size))


def _reduce(im: Image.Image, factor: int) -> Image.Image:
    """``im`` reduced by ``factor`` (a box filter over ``factor x factor`` blocks, Pillow's ``reduce``)."""
    if factor < 2:
        return im
    if im.mode.startswith("I;16"):
        im = im.convert("I")  # the same values in 32 bits, which reduce takes
    elif im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        # Palette, bilevel, CMYK...: to the mode _pil_to_rgb_array would convert them to anyway.
        has_alpha = "A" in im.mode or "a" in im.mode or (im.mode == "P" and "transparency" in im.info)
        im = im.convert("RGBA" if has_alpha else "RGB")
    return im.reduce(factor)


def _decode(im: Image.Image, name: str, max_pixels: int, working_size: int | None = None) -> np.ndarray:
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError(name, f"zero-size image ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(
            name, f"{w}x{h} has {w * h:,} pixels, over the limit of {max_pixels:,} (raise max_pixels if intended)"
        )
    try:
        with warnings.catch_warnings(), _libtiff_stderr_muted(im.format):
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels was checked above
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")  # see _PIL_NOISE
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
                if im.format == "TIFF" and im.mode not in ("P", "PA"):
                    # Pillow 12 keeps a palette read from a later palette frame on a non-palette first
                    # frame of a multi-frame TIFF, then fails its load ("unrecognized image mode").
                    im.palette = None
            source_format = im.format  # exif_transpose returns a copy without it
            factor = _reduction((w, h), working_size)
            if factor > 1 and source_format == "JPEG":
                # DCT scaling by 1/2, 1/4 or 1/8: the largest that keeps both sides >= the request.
                im.draft(None, (-(-w // factor), -(-h // factor)))
                factor = _reduction(im.size, working_size)  # what is left for the box filter
            # In place: without an orientation tag exif_transpose would return a full-size copy.
            ImageOps.exif_transpose(im, in_place=True)
            im.load()
            source_mode = im.mode
            im = _reduce(im, factor)
            return _pil_to_rgb_array(im, name, source_format, source_mode)
    except ImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(name, "image is too large (decompression bomb guard)") from None
    except MemoryError:  # numpy's "Unable to allocate ..." too: memory, not a corrupt file
        raise ImageError(name, f"out of memory decoding its {w}x{h} pixels (about {w * h * 16 / 2**30:.1f} GiB "
                               "as float RGB); give a smaller image or free memory") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, ZeroDivisionError,
            struct.error) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if len(msg) > 80:  # never cut mid-word
            msg = msg[:80].rsplit(" ", 1)[0] + "..."
        if "truncated" in msg.lower() or isinstance(e, EOFError):
            reason = f"truncated {im.format or 'image'} file"
        else:
            reason = f"corrupt {im.format or 'image'} data ({msg})"
        raise ImageError(name, reason) from None



def check_image_output(path: str | os.PathLike, *, replace_readonly: bool = False) -> str:
    """Check, before any work, that :func:`save_image` can write ``path``; return its Pillow format.

    Raises:
        ImageError: the extension is not one :func:`save_image` writes.
        OutputError: ``path`` exists and is not a regular file (see :func:`~adain.base.storage.files.check_output_path`).
    """
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            path, f"unknown output extension '{path.suffix}' (use one of {', '.join(sorted(_SAVE_FORMATS))})",
            action="write",
        )
    check_output_path(path, replace_readonly=replace_readonly)
    return fmt


#: Written into every PNG (text chunk ``Software``) and JPEG (comment) that :func:`save_image` writes,
#: so a batch run with ``--overwrite`` replaces only its own earlier outputs, never a user's photo.
OUTPUT_MARKER = "adain/warpstyle output"


def is_marked_output(path: str | os.PathLike) -> bool:
    """True when ``path`` is an image that :func:`save_image` wrote (it carries :data:`OUTPUT_MARKER`)."""
    try:
        with Image.open(path) as im:
            tag = im.info.get("Software") or im.info.get("comment") or b""
    except Exception:  # noqa: BLE001 - unreadable or not an image: not one of ours
        return False
    if isinstance(tag, bytes):
        tag = tag.decode("latin-1", "replace")
    return tag == OUTPUT_MARKER



def fit_longer(hw: tuple[int, int], longer: int) -> tuple[int, int]:
    """``(H, W)`` with the aspect ratio of ``hw`` and a longer side of ``longer`` px (each side >= 1).

    The one rounding rule of every output size (styler, warper, pipeline, :func:`resize_longer`).

    Example:
        >>> fit_longer((480, 640), 256)
        (192, 256)
    """
    h, w = int(hw[0]), int(hw[1])
    s = longer / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def read_rgb(src: str | os.PathLike | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS,
             working_size: int | None = None) -> np.ndarray:
    """Decode an image file (or PIL image) by the module rules.

    Args:
        src: a path or a PIL image.
        max_pixels: refuse larger images (decompression-bomb guard), checked from the header.
        working_size: decode smaller when the longer side is at least twice this (px); see the
            module docstring. None (default): full size.

    Returns:
        float32 ``(H, W, 3)`` RGB in [0, 1] (a fresh array, the caller's to modify).

    Raises:
        ImageError: missing, empty, unreadable, truncated, non-image or too large input.
    """
    im, name = _open_checked(src, max_pixels)
    return _decode(im, name, max_pixels, working_size)


def rgb_to_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 1] -> uint8, clamped and rounded half to even (as :func:`adain.base.image.to_pil`)."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_pil(im: Image.Image, path: str | os.PathLike, *, quality: int = 95, replace_readonly: bool = False) -> Path:
    """Write ``im`` atomically, in the format of the extension, with :data:`OUTPUT_MARKER` (PNG/JPEG).

    Raises:
        ImageError: an unknown extension, or the write failed.
        OutputError: see :func:`~adain.base.storage.files.check_output_path`.
    """
    path = Path(path)
    fmt = check_image_output(path, replace_readonly=replace_readonly)
    kwargs: dict[str, Any] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Software", OUTPUT_MARKER)
        kwargs["pnginfo"] = info
    elif fmt == "JPEG":
        kwargs["comment"] = OUTPUT_MARKER.encode()
    try:
        with atomic_path(path, replace_readonly=replace_readonly) as tmp:
            im.save(tmp, format=fmt, **kwargs)
    except OSError as e:
        raise ImageError(path, f"{e.strerror or e}", action="write") from None
    return path


def write_rgb(image: np.ndarray, path: str | os.PathLike, *, quality: int = 95, replace_readonly: bool = False) -> Path:
    """Save a float ``(H, W, 3)`` RGB array in [0, 1] atomically (see :func:`save_pil`).

    Raises:
        ImageError: the array holds NaN or infinite values (nothing is written), or the write failed.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3); got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ImageError(path, "the result holds NaN or infinite values (broken or overflowing weights?); "
                               "nothing was written", action="write")
    return save_pil(Image.fromarray(rgb_to_uint8(image), "RGB"), path, quality=quality,
                    replace_readonly=replace_readonly)
