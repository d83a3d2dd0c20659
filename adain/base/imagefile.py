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
conversion, so only the decode is ever full size: modes that need converting (palette, CMYK,
16-bit) or that ``reduce`` would premultiply into a copy (RGBA, LA) are converted and reduced in
bands of rows, and an EXIF orientation is applied to the reduced image. :func:`decode_cost` tells
from a file's header alone what loading it will take (the memory pre-flight,
:func:`adain.base.memory.check_decode_memory`); running out of memory while decoding is an
``ImageError`` that says so (``not enough memory to decode its 8000x8000 pixels ...``).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .storage.files import atomic_path, check_output_path, input_file_problem

__all__ = ["DEFAULT_MAX_PIXELS", "OUTPUT_MARKER", "read_rgb", "write_rgb", "save_pil", "rgb_to_uint8",
           "decode_cost", "DecodeCost", "no_memory_reason",
           "check_image_output", "is_marked_output", "fit_longer"]

#: Refuse images with more pixels than this (about 8K x 8K). Overridable per call.
DEFAULT_MAX_PIXELS = 64_000_000

# _PIL_NOISE: Pillow warns ("Corrupt EXIF data. Expecting to read 2 bytes...") about damaged metadata
# that it then skips; printed by the CLIs, those warnings break the one-line error contract, and the
# image either loads or fails with our own ImageError anyway, so they are silenced while loading.

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


#: Modes with an alpha band (a palette may have a transparent index too, see :func:`_has_alpha`).
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


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
    if _has_alpha(im):
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


@contextlib.contextmanager
def _pil_quiet() -> Iterator[None]:
    """Pillow's warnings off while a file opens or decodes (see _PIL_NOISE).

    Our own ``max_pixels`` check (``_check_size``) is the guard (it may be raised per call); Pillow's
    warning threshold (~89 Mpx) must not override it. Only Pillow's hard limit (twice that), which
    cannot be lifted without global state, is still enforced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


#: What Pillow's decoders raise for a malformed file (beside our own ImageError).
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, ZeroDivisionError,
                   struct.error)


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
    except MemoryError:
        raise ImageError(name, f"not enough memory to read the file ({size:,} bytes)") from None
    try:
        with _pil_quiet():
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(name, "not a recognised image format") from None
    except MemoryError:
        raise ImageError(name, f"not enough memory to read the image header ({size:,}-byte file)") from None
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


#: Pixels of one band of rows converted at a time by :func:`_reduce` (about 4 MB in Pillow's layout).
_BAND_PIXELS = 1 << 20
#: Modes ``Image.reduce`` takes as they are, and of those, the ones it reduces without a full-size copy
#: (it premultiplies RGBA and LA by their alpha first, into a new image).
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "I", "F")
_REDUCED_IN_PLACE = ("L", "RGB", "I", "F")
#: EXIF orientation -> the transpose that undoes it (as ``ImageOps.exif_transpose``).
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _reduce_mode(mode: str, alpha: bool) -> str:
    """The mode an image of ``mode`` (``alpha``: :func:`_has_alpha`) is reduced in: its own where
    ``Image.reduce`` takes it, else the one :func:`_pil_to_rgb_array` would convert it to anyway
    (16-bit: the same values in 32 bits)."""
    if mode.startswith("I;16"):
        return "I"
    if mode in _REDUCIBLE:
        return mode
    return "RGBA" if alpha else "RGB"  # palette, bilevel, CMYK...


def _reduce(im: Image.Image, factor: int) -> Image.Image:
    """``im`` reduced by ``factor`` (a box filter over ``factor x factor`` blocks, Pillow's ``reduce``).

    Modes ``reduce`` does not take, or takes through a full-size copy, go band by band (each band a
    multiple of ``factor`` rows, so the blocks are the whole image's): the decode stays the only
    full-size image.
    """
    if factor < 2:
        return im
    if im.mode in _REDUCED_IN_PLACE:
        return im.reduce(factor)
    mode = _reduce_mode(im.mode, _has_alpha(im))
    w, h = im.size
    out = Image.new(mode, (-(-w // factor), -(-h // factor)))
    rows = factor * max(1, _BAND_PIXELS // (w * factor))
    for y in range(0, h, rows):
        band = im.crop((0, y, w, min(h, y + rows)))
        out.paste((band if band.mode == mode else band.convert(mode)).reduce(factor), (0, y // factor))
    return out


def _first_frame(im: Image.Image) -> None:
    """Point a multi-frame file at its first frame."""
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
        if im.format == "TIFF" and im.mode not in ("P", "PA"):
            # Pillow 12 keeps a palette read from a later palette frame on a non-palette first
            # frame of a multi-frame TIFF, then fails its load ("unrecognized image mode").
            im.palette = None


def _draft(im: Image.Image, working_size: int | None) -> int:
    """Set up a JPEG's DCT scaling toward ``working_size`` (1/2, 1/4 or 1/8: the largest that keeps both
    sides at least the request; nothing is decoded); the factor left for :func:`_reduce`."""
    w, h = im.size
    factor = _reduction((w, h), working_size)
    if factor > 1 and im.format == "JPEG":
        im.draft(None, (-(-w // factor), -(-h // factor)))
        factor = _reduction(im.size, working_size)
    return factor


def _decode_pixels(im: Image.Image, name: str, working_size: int | None) -> np.ndarray:
    """The pixels of an opened, size-checked image by the module rules, decoded toward ``working_size``."""
    _first_frame(im)
    source_format = im.format  # exif_transpose returns a copy without it
    factor = _draft(im, working_size)
    if factor == 1:
        # In place: without an orientation tag exif_transpose would return a full-size copy.
        ImageOps.exif_transpose(im, in_place=True)
        im.load()
        return _pil_to_rgb_array(im, name, source_format)
    im.load()
    # Reduced first, then turned: turning the full-size decode would make a second full-size copy.
    method = _TRANSPOSE.get(im.getexif().get(ExifTags.Base.Orientation, 1))
    source_mode = im.mode
    im = _reduce(im, factor)
    if method is not None:
        im = im.transpose(method)
    return _pil_to_rgb_array(im, name, source_format, source_mode)


def _check_size(im: Image.Image, name: str, max_pixels: int) -> tuple[int, int]:
    """``im``'s ``(W, H)`` from its header; ImageError for a zero size or one over ``max_pixels``."""
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError(name, f"zero-size image ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(
            name, f"{w}x{h} has {w * h:,} pixels, over the limit of {max_pixels:,} (raise max_pixels if intended)"
        )
    return w, h


def no_memory_reason(size: tuple[int, int], need: int, available: int | None = None) -> str:
    """The one reason given wherever decoding an image of ``size = (W, H)`` does not fit in memory.

    Example:
        >>> no_memory_reason((8000, 8000), 2**30)
        'not enough memory to decode its 8000x8000 pixels (about 1.0 GiB); give a smaller image or free memory'
    """
    have = "" if available is None else f", {_bytes_text(available)} available"
    return (f"not enough memory to decode its {size[0]}x{size[1]} pixels (about {_bytes_text(need)}{have}); "
            "give a smaller image or free memory")


def _bytes_text(n: int) -> str:
    """``n`` bytes in GiB with one decimal, or in MiB below 1 GiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{max(1, round(n / 2**20))} MiB"


def _decoder_reason(e: BaseException, image_format: str | None) -> str:
    """A decoder's exception as one reason: truncated, or corrupt with its first line cut at a word."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if len(msg) > 80:  # never cut mid-word
        msg = msg[:80].rsplit(" ", 1)[0] + "..."
    if "truncated" in msg.lower() or isinstance(e, EOFError):
        return f"truncated {image_format or 'image'} file"
    return f"corrupt {image_format or 'image'} data ({msg})"


def _decode(im: Image.Image, name: str, max_pixels: int, working_size: int | None = None) -> np.ndarray:
    w, h = _check_size(im, name, max_pixels)
    image_format = im.format
    try:
        with _pil_quiet(), _libtiff_stderr_muted(image_format):
            return _decode_pixels(im, name, working_size)
    except ImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(name, "image is too large (decompression bomb guard)") from None
    except MemoryError:  # numpy's "Unable to allocate ..." too: memory, not a corrupt file
        decoded = im.size  # after a JPEG's DCT scaling
        need = _decode_bytes(im.mode, _has_alpha(im), decoded, _reduction(decoded, working_size))
        raise ImageError(name, no_memory_reason((w, h), need)) from None
    except _DECODER_ERRORS as e:
        raise ImageError(name, _decoder_reason(e, image_format)) from None


#: Bytes per pixel of the conversion to float RGB after the decode, by the kind of mode: the 8-bit RGB
#: bytes and the float32 image (3 + 12); other 8-bit modes convert to RGB first (+4); alpha is composited
#: on white (+16); 16/32-bit integer images go through float64, float images through float32 copies
#: (measured against load_image for RGB, palette, RGBA, 16-bit PNGs and JPEGs: docs/reliability.md).
_CONVERT_BYTES = {"rgb": 15, "8bit": 19, "alpha": 31, "high": 46}


def _convert_kind(mode: str, alpha: bool) -> str:
    if mode == "RGB":
        return "rgb"
    if mode.startswith("I") or mode == "F":
        return "high"
    return "alpha" if alpha else "8bit"


def _stored_bytes(mode: str) -> int:
    """Bytes a pixel of ``mode`` takes in Pillow's memory (multi-band 8-bit modes take 4, as RGBX)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _decode_bytes(mode: str, alpha: bool, size: tuple[int, int], factor: int) -> int:
    """Estimated peak bytes of decoding a ``size = (W, H)`` image of ``mode`` (``alpha``: it has
    transparency; after any JPEG draft) and reducing it by ``factor``: the full-size decode, bands of
    :data:`_BAND_PIXELS` on the way, then the conversion of the reduced image (in its reduced mode)."""
    w, h = size
    out = -(-w // factor) * -(-h // factor)
    if factor == 1:
        return w * h * (_stored_bytes(mode) + _CONVERT_BYTES[_convert_kind(mode, alpha)])
    reduced = _reduce_mode(mode, alpha)
    band = 0 if mode in _REDUCED_IN_PLACE else _BAND_PIXELS * 12
    return w * h * _stored_bytes(mode) + band + out * (4 + _CONVERT_BYTES[_convert_kind(reduced, alpha)])


@dataclasses.dataclass(frozen=True)
class DecodeCost:
    """What :func:`load_image` of one file will take, from its header (see :func:`decode_cost`).

    Attributes:
        path: the file as given.
        size: ``(W, H)`` in the header.
        peak_bytes: estimated peak memory of decoding it, above what the process held before.
        result_bytes: the ``(1, 3, H, W)`` float32 image it returns, held afterwards.
    """

    path: str
    size: tuple[int, int]
    peak_bytes: int
    result_bytes: int


def decode_cost(src: str | os.PathLike, *, working_size: int | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodeCost:
    """The memory :func:`load_image` of ``src`` with ``working_size`` will take, read from the file's
    header (width, height, mode; a JPEG's DCT scaling): nothing is decoded.

    Raises:
        ImageError: as :func:`load_image` for a missing, unreadable, non-image or over-limit file.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "big.png"
        >>> Image.new("RGB", (4000, 3000)).save(path)
        >>> cost = decode_cost(path, working_size=500)  # decoded in 4 bytes a pixel, reduced by 8
        >>> cost.size, round(cost.peak_bytes / 2**20), cost.result_bytes
        ((4000, 3000), 49, 2250000)
    """
    im, name = _open_checked(src, max_pixels)
    w, h = _check_size(im, name, max_pixels)
    try:
        with _pil_quiet():
            factor = _draft(im, working_size)
    except _DECODER_ERRORS as e:
        raise ImageError(name, _decoder_reason(e, im.format)) from None
    dw, dh = im.size
    out = -(-dw // factor) * -(-dh // factor)
    return DecodeCost(name, (w, h), _decode_bytes(im.mode, _has_alpha(im), (dw, dh), factor), out * 12)


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
