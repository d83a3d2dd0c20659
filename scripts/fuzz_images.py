"""Fuzz the image loader and the two CLIs with malformed and unusual image files.

Usage::

    python scripts/fuzz_images.py                      # 10,000 loader cases + 300 CLI cases, seed 0
    python scripts/fuzz_images.py --loader-cases 500 --cli-cases 0 --category truncated
    python scripts/fuzz_images.py --case bit_flipped:17 # one case, verbose (reproduce a failure)
    python scripts/fuzz_images.py --dump /tmp/cases --category size_claims --loader-cases 200

Every case is generated from ``(seed, category, index)`` alone, so a row of the report, or a single
case, is reproduced by the same command. Outcomes:

* ``ok``: a correct image: ``(1, 3, H, W)`` float32, finite, in [0, 1], and for well-formed files the
  expected size (EXIF orientation applied) and pixels (within a tolerance for lossy formats);
* ``typed``: :class:`adain.base.errors.ImageError` with a one-line message (CLI: exit status 2 and exactly
  one stderr line ``PROG: error: ...``);
* ``fail``: anything else: another exception or a traceback, a timeout, memory over the limit, a
  crash, a well-formed file refused, a file over the pixel limit accepted, or a wrong image.

Bounds (the documented limits):

* loader: each case has ``CASE_TIMEOUT_S`` (10 s; 60 s for the few at-limit bombs) by ``SIGALRM``;
  the cases run in a child process whose address space is capped (``RLIMIT_AS``) at what it maps
  after importing torch/PIL plus ``--mem-limit-gib`` (4 GiB); a watchdog kills a child that makes no
  progress for ``WATCHDOG_S`` and records the case as a hang;
* CLI: each call has ``CLI_TIMEOUT_S`` and its peak RSS must stay under ``--cli-rss-limit-mib``.

Exit status: 0 when no case failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import io
import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "CATEGORIES",
    "LOADER_WEIGHTS",
    "CLI_WEIGHTS",
    "Case",
    "Outcome",
    "make_case",
    "allocate",
    "case_specs",
    "materialize",
    "check_image_result",
    "run_loader_case",
    "run_cli_case",
    "run_cli_cases",
    "summarize",
    "markdown_table",
    "main",
]

ROOT = Path(__file__).resolve().parents[1]
MAX_PIXELS = 64_000_000  # adain.base.image.DEFAULT_MAX_PIXELS (checked at start-up)
CASE_TIMEOUT_S = 10.0
HEAVY_TIMEOUT_S = 60.0
WATCHDOG_S = 120.0
CLI_TIMEOUT_S = 120.0
CLI_SIZE = 64

#: Categories, in a fixed order: a category's position seeds its cases (append new ones at the end).
CATEGORIES: tuple[str, ...] = (
    "valid", "extreme_dims", "exif_orientation", "high_bit_depth", "cmyk", "palette_transparency",
    "animated", "truncated", "bit_flipped", "header_fields", "wrong_extension", "zero_and_tiny",
    "size_claims", "random_bytes", "special_paths",
)
#: Share of ``--loader-cases`` per category (per 10,000).
LOADER_WEIGHTS: dict[str, int] = {
    "valid": 900, "extreme_dims": 300, "exif_orientation": 500, "high_bit_depth": 400, "cmyk": 300,
    "palette_transparency": 400, "animated": 400, "truncated": 1800, "bit_flipped": 2200,
    "header_fields": 1300, "wrong_extension": 400, "zero_and_tiny": 300, "size_claims": 500,
    "random_bytes": 250, "special_paths": 50,
}
#: Share of ``--cli-cases`` per category (per 300).
CLI_WEIGHTS: dict[str, int] = {
    "valid": 20, "extreme_dims": 20, "exif_orientation": 15, "high_bit_depth": 15, "cmyk": 10,
    "palette_transparency": 15, "animated": 15, "truncated": 40, "bit_flipped": 50, "header_fields": 35,
    "wrong_extension": 15, "zero_and_tiny": 15, "size_claims": 20, "random_bytes": 10, "special_paths": 5,
}

_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp",
        "PPM": ".ppm", "TGA": ".tga", "PCX": ".pcx"}
_I8 = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 64, 127, 128, 255]
_I16 = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]
_I32 = [0, 1, 0xFF, 0xFFFF, 0x10000, 46341, 0x40000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


@dataclasses.dataclass
class Case:
    """One generated input.

    ``expect``: ``"load"`` (well-formed: must decode), ``"refuse"`` (must raise the typed error) or
    ``"any"`` (either allowed). ``hw``/``pixels``/``mean`` are checked when the file loads.
    """

    category: str
    index: int
    name: str
    data: bytes | None
    ext: str
    kind: str = "file"
    expect: str = "any"
    hw: tuple[int, int] | None = None
    pixels: np.ndarray | None = None
    mean: np.ndarray | None = None
    tol: float = 2.5 / 255
    heavy: bool = False

    @property
    def case_id(self) -> str:
        return f"{self.category}:{self.index}"


@dataclasses.dataclass
class Outcome:
    """The classified result of one case."""

    case_id: str
    category: str
    name: str
    outcome: str  # "ok" | "typed" | "fail"
    detail: str
    seconds: float
    target: str = "loader"  # "loader" | "adain" | "warpstyle"
    rss_kb: int = 0
    pil_log: int = 0  # Pillow log records (WARNING+) during a loader case

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------ encoders


def _save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes,
         extra: Sequence[tuple[bytes, bytes]] = (), interlace: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    return (_PNG_SIG + _chunk(b"IHDR", ihdr) + b"".join(_chunk(k, d) for k, d in extra)
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _png_rows(arr: np.ndarray, bit_depth: int) -> bytes:
    """Filter-0 scanlines of a (H, W[, C]) array (uint8 or big-endian uint16)."""
    a = arr.astype(">u2") if bit_depth == 16 else arr.astype(np.uint8)
    rows = a.reshape(a.shape[0], -1)
    return b"".join(b"\0" + r.tobytes() for r in rows)


@lru_cache(maxsize=8)
def _zero_idat(width: int, height: int, bytes_per_px: int) -> bytes:
    """A zlib stream of ``height`` zero scanlines, compressed without holding them in memory."""
    comp = zlib.compressobj(9)
    row = b"\0" * (1 + width * bytes_per_px)
    out = [comp.compress(row) for _ in range(height)]
    out.append(comp.flush())
    return b"".join(out)


def _tiff(width: int, height: int, strip: bytes, *, bps: Sequence[int] = (8, 8, 8), photometric: int = 2,
          compression: int = 1, sample_format: int | None = None, extra: dict[int, tuple[int, list[int]]] | None = None,
          ) -> bytes:
    """A little-endian single-strip TIFF; ``extra`` adds or overrides tags ``{tag: (type, values)}``."""
    tags: dict[int, tuple[int, list[int]]] = {
        256: (4, [width]), 257: (4, [height]), 258: (3, list(bps)), 259: (3, [compression]),
        262: (3, [photometric]), 273: (4, [8]), 277: (3, [len(bps)]), 278: (4, [max(1, height)]),
        279: (4, [len(strip)]), 284: (3, [1]),
    }
    if sample_format is not None:
        tags[339] = (3, [sample_format] * len(bps))
    tags.update(extra or {})
    ifd_at = 8 + len(strip) + (len(strip) & 1)
    n = len(tags)
    overflow_at = ifd_at + 2 + 12 * n + 4
    entries, overflow = b"", b""
    for tag in sorted(tags):
        typ, vals = tags[tag]
        fmt, size = {3: ("H", 2), 4: ("I", 4), 1: ("B", 1)}.get(typ, ("I", 4))
        payload = b"".join(struct.pack("<" + fmt, v & ((1 << (8 * size)) - 1)) for v in vals)
        if len(payload) <= 4:
            entries += struct.pack("<HHI", tag, typ, len(vals)) + payload.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, typ, len(vals), overflow_at + len(overflow))
            overflow += payload + (b"\0" if len(payload) & 1 else b"")
    head = b"II*\0" + struct.pack("<I", ifd_at)
    return head + strip + b"\0" * (len(strip) & 1) + struct.pack("<H", n) + entries + b"\0\0\0\0" + overflow


def _smooth(rng: np.random.Generator, h: int, w: int, channels: int = 3) -> np.ndarray:
    """A smooth-ish uint8 image (coarse random grid, bilinear upsampling): JPEG-friendly."""
    gh, gw = max(1, min(h, h // 8 + 2)), max(1, min(w, w // 8 + 2))
    grid = rng.integers(0, 256, (gh, gw, channels), dtype=np.uint8)
    chans = [np.asarray(Image.fromarray(grid[..., c]).resize((w, h), Image.BILINEAR)) for c in range(channels)]
    return np.stack(chans, axis=-1)


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    return rgb.astype(np.float32) / 255.0 * a + (1.0 - a)


# ---------------------------------------------------------------------------------------- well-formed images

_LOSSY = {("JPEG", "any"), ("WEBP", "lossy")}


def _valid_image(rng: np.random.Generator, fmt: str, mode: str, h: int, w: int
                 ) -> tuple[bytes, np.ndarray | None, np.ndarray | None, float]:
    """Encode a random image; returns (bytes, expected pixels or None, expected channel means or None, tol)."""
    rgb = _smooth(rng, h, w, 3)
    exact: np.ndarray | None = None
    mean: np.ndarray | None = None
    tol = 2.5 / 255
    if mode == "RGB":
        im, exact = Image.fromarray(rgb, "RGB"), rgb / 255.0
    elif mode == "L":
        g = rgb[..., 0]
        im, exact = Image.fromarray(g, "L"), np.repeat(g[..., None], 3, 2) / 255.0
    elif mode == "1":
        g = (rgb[..., 0] > 127).astype(np.uint8) * 255
        im, exact = Image.fromarray(g, "L").convert("1"), np.repeat(g[..., None], 3, 2) / 255.0
    elif mode in ("RGBA", "LA"):
        alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
        base = rgb if mode == "RGBA" else np.repeat(rgb[..., :1], 3, 2)
        arr = np.dstack([rgb, alpha]) if mode == "RGBA" else np.dstack([rgb[..., 0], alpha])
        im, exact = Image.fromarray(arr, mode), _composite(base, alpha)
    elif mode in ("P", "P_trns", "P_alpha"):
        n = int(rng.integers(2, 257))
        pal = rng.integers(0, 256, (n, 3), dtype=np.uint8)
        idx = rng.integers(0, n, (h, w), dtype=np.uint8)
        im = Image.fromarray(idx, "P")
        im.putpalette(pal.tobytes())
        alpha = np.full(n, 255, np.uint8)
        kw_trns: object = None
        if mode == "P_trns":
            t = int(rng.integers(0, n))
            alpha[t], kw_trns = 0, t
        elif mode == "P_alpha":
            alpha = rng.integers(0, 256, n, dtype=np.uint8)
            kw_trns = alpha.tobytes()
        if kw_trns is not None:
            im.info["transparency"] = kw_trns
        exact = _composite(pal[idx], alpha[idx])
    elif mode == "I;16":
        v = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        if rng.random() < 0.3:
            v = v // 512  # dark: every value <= 127, must still be scaled by 65535
        im, exact = Image.fromarray(v), np.repeat((v / 65535.0)[..., None], 3, 2)
        tol = 1e-4
    elif mode == "I":
        v = rng.integers(256, 65536, (h, w)).astype(np.int32)
        im, exact = Image.fromarray(v), np.repeat((v / 65535.0)[..., None], 3, 2)
        tol = 1e-4
    elif mode == "F":
        v = rng.random((h, w), dtype=np.float32)
        im, exact = Image.fromarray(v), np.repeat(v[..., None], 3, 2)
        tol = 1e-5
    elif mode == "CMYK":
        cmyk = rng.integers(0, 256, (h, w, 4), dtype=np.uint8) if fmt != "JPEG" else _smooth(rng, h, w, 4)
        im = Image.fromarray(cmyk, "CMYK")
        c = cmyk.astype(np.float32) / 255.0
        exact = (1 - c[..., :3]) * (1 - c[..., 3:4])
    else:
        raise ValueError(mode)
    kw: dict[str, object] = {}
    lossy = False
    if fmt == "JPEG":
        kw = {"quality": int(rng.integers(30, 96)), "subsampling": int(rng.integers(0, 3)),
              "progressive": bool(rng.random() < 0.3)}
        lossy = True
    elif fmt == "WEBP":
        lossless = mode in ("RGBA",) or rng.random() < 0.5
        kw = {"lossless": bool(lossless), "quality": int(rng.integers(30, 96))}
        lossy = not lossless
    elif fmt == "TIFF":
        opts = ["raw", "tiff_lzw", "tiff_deflate", "packbits"]
        if mode == "1":
            opts += ["group4"]
        kw = {"compression": opts[int(rng.integers(0, len(opts)))]}
    elif fmt == "GIF":
        kw = {"optimize": False}
        if "transparency" in im.info:
            kw["transparency"] = im.info["transparency"]
    elif fmt == "PNG" and "transparency" in im.info:
        kw = {"transparency": im.info["transparency"]}
    elif fmt == "TGA":
        kw = {"compression": "tga_rle" if rng.random() < 0.5 else None}
    data = _save(im, fmt, **kw)
    if lossy:
        assert exact is not None
        mean, exact, tol = exact.reshape(-1, 3).mean(0), None, 0.08
    return data, exact, mean, tol


#: (format, mode) pairs Pillow writes and reads back faithfully.
_VALID_COMBOS: list[tuple[str, str]] = [
    ("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "L"), ("PNG", "LA"), ("PNG", "P"), ("PNG", "P_trns"),
    ("PNG", "P_alpha"), ("PNG", "1"), ("PNG", "I;16"),
    ("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK"),
    ("WEBP", "RGB"), ("WEBP", "RGBA"),
    ("GIF", "P"), ("GIF", "P_trns"),
    ("TIFF", "RGB"), ("TIFF", "RGBA"), ("TIFF", "L"), ("TIFF", "1"), ("TIFF", "I;16"), ("TIFF", "I"),
    ("TIFF", "F"), ("TIFF", "CMYK"), ("TIFF", "P"), ("TIFF", "LA"),
    ("BMP", "RGB"), ("BMP", "L"), ("BMP", "P"), ("BMP", "1"),
    ("PPM", "RGB"), ("PPM", "L"), ("PPM", "1"), ("PPM", "I;16"),
    ("TGA", "RGB"), ("TGA", "RGBA"), ("TGA", "L"), ("TGA", "P"),
    ("PCX", "RGB"), ("PCX", "L"), ("PCX", "P"), ("PCX", "1"),
]


def _pick(rng: np.random.Generator, seq: Sequence):  # noqa: ANN202
    return seq[int(rng.integers(0, len(seq)))]


def _gen_valid(rng: np.random.Generator, case: Case) -> None:
    fmt, mode = _pick(rng, _VALID_COMBOS)
    h, w = int(rng.integers(1, 97)), int(rng.integers(1, 97))
    data, exact, mean, tol = _valid_image(rng, fmt, mode, h, w)
    case.name, case.data, case.ext = f"{fmt} {mode} {w}x{h}", data, _EXT[fmt]
    case.expect, case.hw, case.pixels, case.mean, case.tol = "load", (h, w), exact, mean, tol


_EXTREME = [(1, 1), (10, 10000), (10000, 10), (1, 10000), (10000, 1), (2, 3), (3, 2), (1, 2), (2, 1), (16383, 1),
            (1, 16383), (4096, 64), (64, 4096)]
_MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "GIF": 65535, "TGA": 65535, "PCX": 65535}


def _gen_extreme(rng: np.random.Generator, case: Case) -> None:
    w, h = _pick(rng, _EXTREME)
    fmt, mode = _pick(rng, [c for c in _VALID_COMBOS if c[1] in ("RGB", "L", "RGBA", "P", "1", "I;16")])
    if max(w, h) > _MAX_SIDE.get(fmt, 1 << 30):
        fmt, mode = "PNG", "RGB"
    data, exact, mean, tol = _valid_image(rng, fmt, mode, h, w)
    if fmt in ("JPEG", "WEBP") and min(h, w) < 8:
        mean = None  # a one-pixel-wide JPEG's mean wanders with the chroma subsampling
    case.name, case.data, case.ext = f"{fmt} {mode} {w}x{h}", data, _EXT[fmt]
    case.expect, case.hw, case.pixels, case.mean, case.tol = "load", (h, w), exact, mean, tol


# EXIF orientation -> the displayed array, by numpy (independent of Pillow's exif_transpose).
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _exif_blob(entries: list[tuple[int, int, int, bytes]], *, next_ifd: int = 0, big: bool = False) -> bytes:
    """A raw TIFF-structured EXIF block (``Exif\\0\\0`` not included): entries (tag, type, count, 4 value bytes)."""
    e = ">" if big else "<"
    head = (b"MM\0*" if big else b"II*\0") + struct.pack(e + "I", 8)
    body = struct.pack(e + "H", len(entries))
    for tag, typ, count, val in entries:
        body += struct.pack(e + "HHI", tag, typ, count) + val[:4].ljust(4, b"\0")
    return head + body + struct.pack(e + "I", next_ifd)


def _gen_exif(rng: np.random.Generator, case: Case) -> None:
    h, w = int(rng.integers(6, 40)), int(rng.integers(6, 40))
    if h == w:
        w += 3
    quad = np.zeros((h, w, 3), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    quad[: h // 2, : w // 2], quad[: h // 2, w // 2 :] = colours[0], colours[1]
    quad[h // 2 :, : w // 2], quad[h // 2 :, w // 2 :] = colours[2], colours[3]
    fmt = _pick(rng, ["JPEG", "PNG", "WEBP", "TIFF"])
    r = rng.random()
    im = Image.fromarray(quad, "RGB")
    expect_arr: np.ndarray | None = None
    if r < 0.7:  # a well-formed orientation tag, 1..8
        o = int(rng.integers(1, 9))
        label = f"orientation {o}"
        expect_arr = _ORIENT[o](quad)
        exif = Image.Exif()
        exif[0x0112] = o
        blob = exif.tobytes()
    elif r < 0.85:  # an out-of-range value: no transpose
        o = _pick(rng, [0, 9, 10, 255, 0x7FFF, 0xFFFF])
        label = f"orientation {o} (invalid)"
        expect_arr = quad
        exif = Image.Exif()
        exif[0x0112] = o
        blob = exif.tobytes()
    else:  # a malformed EXIF block around the orientation tag
        big = bool(rng.random() < 0.5)
        e = ">" if big else "<"
        variant = int(rng.integers(0, 6))
        o = int(rng.integers(1, 9))
        if variant == 0:  # wrong type (LONG) and count 2
            ents = [(0x0112, 4, 2, struct.pack(e + "I", o))]
        elif variant == 1:  # huge count pointing past the end
            ents = [(0x0112, 3, 0x3FFFFFFF, struct.pack(e + "I", 0x7FFFFFF0))]
        elif variant == 2:  # the IFD links to itself (loop)
            ents = [(0x0112, 3, 1, struct.pack(e + "H", o))]
        elif variant == 3:  # unknown type codes
            ents = [(0x0112, int(rng.integers(13, 65536)), 1, struct.pack(e + "H", o))]
        elif variant == 4:  # an EXIF sub-IFD pointer to nowhere
            ents = [(0x0112, 3, 1, struct.pack(e + "H", o)), (0x8769, 4, 1, struct.pack(e + "I", 0xFFFFFFF0))]
        else:  # random bytes
            ents = []
        blob = _exif_blob(ents, next_ifd=8 if variant == 2 else 0, big=big) if ents else bytes(
            rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8))
        if variant == 5:
            blob = (b"MM\0*" if big else b"II*\0") + blob
        label = f"malformed EXIF variant {variant}"
    kw: dict[str, object] = {}
    if fmt == "TIFF":
        if expect_arr is not None:
            kw = {"tiffinfo": {274: o}}
        else:
            kw = {"exif": blob}
    else:
        kw = {"exif": blob}
    if fmt == "JPEG":
        kw["quality"] = 95
    if fmt == "WEBP":
        kw["lossless"] = True
    try:
        data = _save(im, fmt, **kw)
    except Exception:  # noqa: BLE001 - Pillow may refuse to write a malformed block: store it plainly
        data, label = _save(im, fmt), label + " (not writable; plain file)"
        expect_arr = quad
    case.name, case.data, case.ext = f"{fmt} {w}x{h} {label}", data, _EXT[fmt]
    if expect_arr is not None:
        case.expect, case.hw = "load", expect_arr.shape[:2]
        if fmt == "JPEG":  # compare the quadrant centres only (JPEG blurs the edges)
            case.mean = None
            case.pixels = expect_arr / 255.0
            case.tol = -1.0  # marker: centres of the 4 quadrants, tolerance 0.25
        else:
            case.pixels = expect_arr / 255.0
    else:
        case.expect = "any"


def _gen_high_bit(rng: np.random.Generator, case: Case) -> None:
    h, w = int(rng.integers(1, 65)), int(rng.integers(1, 65))
    r = int(rng.integers(0, 8))
    if r <= 3:  # Pillow-written 16/32-bit gray and float
        fmt, mode = _pick(rng, [("PNG", "I;16"), ("TIFF", "I;16"), ("PPM", "I;16"), ("TIFF", "I"), ("TIFF", "F")])
        data, exact, mean, tol = _valid_image(rng, fmt, mode, h, w)
        case.name, case.data, case.ext = f"{fmt} {mode} {w}x{h}", data, _EXT[fmt]
        case.expect, case.hw, case.pixels, case.tol = "load", (h, w), exact, tol
        return
    if r <= 5:  # hand-written 16-bit RGB / RGBA / LA PNG (Pillow keeps the high byte)
        ct, ch = _pick(rng, [(2, 3), (6, 4), (4, 2)])
        v = rng.integers(0, 65536, (h, w, ch), dtype=np.uint16)
        data = _png(w, h, 16, ct, zlib.compress(_png_rows(v, 16)))
        hi = (v >> 8).astype(np.uint8)
        if ct == 2:
            exact = hi / 255.0
        elif ct == 6:
            exact = _composite(hi[..., :3], hi[..., 3])
        else:
            exact = _composite(np.repeat(hi[..., :1], 3, 2), hi[..., 1])
        case.name, case.data, case.ext = f"PNG 16-bit colour type {ct} {w}x{h}", data, ".png"
        case.expect, case.hw, case.pixels, case.tol = "load", (h, w), exact, 1.5 / 255 + 1 / 255
        return
    if r == 6:  # float TIFF with NaN / inf (refused: issue 15) or negative / huge values (finite in [0, 1])
        v = rng.normal(0.5, 2.0, (h, w)).astype(np.float32)
        special = _pick(rng, [np.nan, np.inf, -np.inf, 1e30, -1e30])
        v.flat[rng.integers(0, v.size, max(1, v.size // 5))] = special
        data = _save(Image.fromarray(v), "TIFF")
        finite = bool(np.isfinite(special))
        case.name, case.data, case.ext = f"TIFF F with {'extreme' if finite else 'non-finite'} values {w}x{h}", data, ".tif"
        case.expect, case.hw = ("load", (h, w)) if finite else ("refuse", None)
        return
    # exotic TIFF sample layouts written by hand: any outcome but a crash
    bps = _pick(rng, [(16, 16, 16), (16, 16, 16, 16), (32, 32, 32), (12,), (4,), (2,), (64,), (32,)])
    sf = _pick(rng, [1, 2, 3])
    spp = len(bps)
    nbytes = (h * w * sum(bps) + 7) // 8
    strip = bytes(rng.integers(0, 256, nbytes, dtype=np.uint8))
    photometric = 2 if spp >= 3 else 1
    extra = {338: (3, [2])} if spp == 4 else None
    data = _tiff(w, h, strip, bps=bps, photometric=photometric, sample_format=sf, extra=extra)
    case.name, case.data, case.ext = f"TIFF bps={bps} sampleformat={sf} {w}x{h}", data, ".tif"
    case.expect = "any"


def _gen_cmyk(rng: np.random.Generator, case: Case) -> None:
    h, w = int(rng.integers(1, 65)), int(rng.integers(1, 65))
    r = rng.random()
    if r < 0.8:
        fmt = "JPEG" if r < 0.5 else "TIFF"
        data, exact, mean, tol = _valid_image(rng, fmt, "CMYK", h, w)
        case.name, case.data, case.ext = f"{fmt} CMYK {w}x{h}", data, _EXT[fmt]
        case.expect, case.hw, case.pixels, case.mean, case.tol = "load", (h, w), exact, mean, max(tol, 0.1 if mean is not None else tol)
        return
    # a CMYK JPEG without its Adobe APP14 marker (inverted or not: any image is fine), or a YCCK one
    data, _, _, _ = _valid_image(rng, "JPEG", "CMYK", h, w)
    segs = _jpeg_segments(data)
    adobe = [s for s in segs if s[0] == 0xEE]
    if adobe and rng.random() < 0.5:
        _, a, b = adobe[0]
        data, label = data[:a] + data[b:], "CMYK JPEG without APP14"
    elif adobe:
        _, a, b = adobe[0]
        d = bytearray(data)
        d[b - 1] = _pick(rng, [0, 1, 2, 3, 255])  # the transform byte
        data, label = bytes(d), f"CMYK JPEG APP14 transform {d[b - 1]}"
    else:
        label = "CMYK JPEG"
    case.name, case.data, case.ext = f"{label} {w}x{h}", data, ".jpg"
    case.expect, case.hw = "load", (h, w)


def _gen_palette(rng: np.random.Generator, case: Case) -> None:
    h, w = int(rng.integers(1, 65)), int(rng.integers(1, 65))
    r = int(rng.integers(0, 10))
    if r <= 5:
        fmt, mode = _pick(rng, [("PNG", "P_trns"), ("PNG", "P_alpha"), ("GIF", "P_trns"), ("PNG", "P"),
                                ("TIFF", "P"), ("BMP", "P"), ("GIF", "P")])
        data, exact, mean, tol = _valid_image(rng, fmt, mode, h, w)
        case.name, case.data, case.ext = f"{fmt} {mode} {w}x{h}", data, _EXT[fmt]
        case.expect, case.hw, case.pixels, case.tol = "load", (h, w), exact, tol
        return
    if r <= 7:  # hand-written low-bit-depth palette PNG with tRNS (1, 2, 4 bits)
        bd = _pick(rng, [1, 2, 4])
        n = 1 << bd
        pal = rng.integers(0, 256, (n, 3), dtype=np.uint8)
        alpha = rng.integers(0, 256, int(rng.integers(1, n + 1)), dtype=np.uint8)
        idx = rng.integers(0, n, (h, w), dtype=np.uint8)
        rows = b""
        per = 8 // bd
        for y in range(h):
            row = bytearray((w + per - 1) // per)
            for x in range(w):
                row[x // per] |= int(idx[y, x]) << (8 - bd * (x % per + 1))
            rows += b"\0" + bytes(row)
        data = _png(w, h, bd, 3, zlib.compress(rows), extra=[(b"PLTE", pal.tobytes()), (b"tRNS", alpha.tobytes())])
        full_alpha = np.full(n, 255, np.uint8)
        full_alpha[: len(alpha)] = alpha
        case.name, case.data, case.ext = f"PNG {bd}-bit palette + tRNS({len(alpha)}) {w}x{h}", data, ".png"
        case.expect, case.hw, case.pixels = "load", (h, w), _composite(pal[idx], full_alpha[idx])
        return
    # oddities: tRNS longer than PLTE, indices beyond PLTE, gray/RGB colour keys
    variant = int(rng.integers(0, 4))
    idx = rng.integers(0, 256, (h, w), dtype=np.uint8)
    if variant == 0:
        n = int(rng.integers(1, 16))
        data = _png(w, h, 8, 3, zlib.compress(_png_rows(idx, 8)),
                    extra=[(b"PLTE", bytes(rng.integers(0, 256, 3 * n, dtype=np.uint8)))])
        label = f"PNG P indices beyond a {n}-entry PLTE"
    elif variant == 1:
        n = int(rng.integers(1, 256))
        data = _png(w, h, 8, 3, zlib.compress(_png_rows(idx % n, 8)),
                    extra=[(b"PLTE", bytes(rng.integers(0, 256, 3 * n, dtype=np.uint8))),
                           (b"tRNS", bytes(rng.integers(0, 256, int(rng.integers(n, 400)), dtype=np.uint8)))])
        label = "PNG P tRNS longer than PLTE"
    elif variant == 2:
        data = _png(w, h, 8, 0, zlib.compress(_png_rows(idx, 8)), extra=[(b"tRNS", struct.pack(">H", int(idx[0, 0])))])
        label = "PNG gray colour key"
    else:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        data = _png(w, h, 8, 2, zlib.compress(_png_rows(rgb, 8)),
                    extra=[(b"tRNS", struct.pack(">HHH", *[int(v) for v in rgb[0, 0]]))])
        label = "PNG RGB colour key"
    case.name, case.data, case.ext = f"{label} {w}x{h}", data, ".png"
    case.expect, case.hw = ("any", None) if variant <= 1 else ("load", (h, w))


def _gen_animated(rng: np.random.Generator, case: Case) -> None:
    fmt = _pick(rng, ["GIF", "PNG", "WEBP", "TIFF"])
    n = int(rng.integers(2, 7))
    h, w = int(rng.integers(1, 49)), int(rng.integers(1, 49))
    cols = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]
    while len(set(cols)) < n:
        cols = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]
    frames = []
    for i, c in enumerate(cols):
        fh, fw = (h, w) if (i == 0 or fmt != "TIFF") else (int(rng.integers(1, 49)), int(rng.integers(1, 49)))
        mode = "RGB" if (i == 0 or rng.random() < 0.5) else _pick(rng, ["L", "RGBA", "P"])
        frames.append(Image.new("RGB", (fw, fh), c).convert(mode) if mode != "RGBA" else Image.new("RGBA", (fw, fh), (*c, 255)))
    kw: dict[str, object] = {"save_all": True, "append_images": frames[1:],
                             "duration": [int(v) for v in rng.integers(0, 200, n)], "loop": int(rng.integers(0, 3))}
    if fmt == "GIF":
        kw["disposal"] = [int(v) for v in rng.integers(0, 4, n)]
    if fmt == "WEBP":
        kw["lossless"] = True
    if fmt == "PNG":
        kw["disposal"] = int(rng.integers(0, 3))
        kw["blend"] = int(rng.integers(0, 2))
        if rng.random() < 0.3:
            kw["default_image"] = True  # the first image is not part of the animation: still the one shown
    if fmt == "TIFF":
        del kw["duration"], kw["loop"]
    data = _save(frames[0], fmt, **kw)
    expect = np.broadcast_to(np.array(cols[0], np.float32) / 255.0, (h, w, 3))
    case.name, case.data, case.ext = f"{fmt} animated {n} frames {w}x{h}", data, _EXT[fmt]
    case.expect, case.hw, case.pixels = "load", (h, w), np.array(expect)


# ------------------------------------------------------------------------------------- mutation bases


def _base(rng: np.random.Generator) -> tuple[bytes, str, str]:
    """A random well-formed file to mutate: (bytes, format, description)."""
    r = rng.random()
    sub = Case("base", 0, "", None, "")
    if r < 0.55:
        _gen_valid(rng, sub)
    elif r < 0.65:
        _gen_exif(rng, sub)
    elif r < 0.8:
        _gen_animated(rng, sub)
    elif r < 0.88:
        _gen_cmyk(rng, sub)
    elif r < 0.95:
        _gen_palette(rng, sub)
    else:
        _gen_high_bit(rng, sub)
    assert sub.data is not None
    fmt = next((f for f, e in _EXT.items() if e == sub.ext), "PNG")
    return sub.data, fmt, sub.name


def _gen_truncated(rng: np.random.Generator, case: Case) -> None:
    data, fmt, label = _base(rng)
    r = rng.random()
    if r < 0.3:
        cut = int(rng.integers(1, min(len(data), 96) + 1))
    elif r < 0.5:
        cut = len(data) - int(rng.integers(1, min(len(data), 32) + 1))
    else:
        cut = int(rng.integers(1, len(data) + 1))
    cut = max(1, min(cut, len(data) - 1)) if len(data) > 1 else 1
    case.name, case.data, case.ext = f"{label} cut at {cut}/{len(data)}", data[:cut], _EXT[fmt]


def _gen_bitflip(rng: np.random.Generator, case: Case) -> None:
    data, fmt, label = _base(rng)
    d = bytearray(data)
    ops = []
    for _ in range(int(rng.integers(1, 5))):
        header = rng.random() < 0.5
        hi = min(len(d), 128) if header else len(d)
        if hi == 0:
            break
        pos = int(rng.integers(0, hi))
        op = int(rng.integers(0, 7))
        if op <= 1:
            bit = int(rng.integers(0, 8))
            d[pos] ^= 1 << bit
            ops.append(f"flip {pos}.{bit}")
        elif op == 2:
            d[pos] = _pick(rng, _I8)
            ops.append(f"set {pos}={d[pos]}")
        elif op == 3 and pos + 4 <= len(d):
            d[pos:pos + 4] = struct.pack(_pick(rng, [">I", "<I"]), _pick(rng, _I32))
            ops.append(f"int32 at {pos}")
        elif op == 4 and pos + 2 <= len(d):
            d[pos:pos + 2] = struct.pack(_pick(rng, [">H", "<H"]), _pick(rng, _I16))
            ops.append(f"int16 at {pos}")
        elif op == 5:
            n = int(rng.integers(1, 64))
            d[pos:pos] = bytes(rng.integers(0, 256, n, dtype=np.uint8))
            ops.append(f"insert {n} at {pos}")
        else:
            n = int(rng.integers(1, 64))
            if rng.random() < 0.5:
                del d[pos:pos + n]
                ops.append(f"delete {n} at {pos}")
            else:
                d[pos:pos] = d[pos:pos + n]
                ops.append(f"duplicate {n} at {pos}")
    case.name, case.data, case.ext = f"{label}; " + ", ".join(ops), bytes(d), _EXT[fmt]


# ------------------------------------------------------------------------------ structure-aware fields


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment up to and including SOS."""
    out, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        m = data[i + 1]
        if m in (0xD8, 0x01) or 0xD0 <= m <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((m, i, i + 2 + length))
        if m == 0xDA:
            break
        i += 2 + length
    return out


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk."""
    out, i = [], 8
    while i + 12 <= len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        out.append((data[i + 4:i + 8], i, i + 12 + n))
        i += 12 + n
    return out


def _mutate_png(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    chunks = _png_chunks(data)
    parts = [(k, data[a + 8:b - 4]) for k, a, b in chunks]
    op = int(rng.integers(0, 9))
    if op <= 2:  # IHDR fields, CRC kept valid
        ihdr = bytearray(parts[0][1])
        field = int(rng.integers(0, 7))
        if field < 2:
            ihdr[4 * field:4 * field + 4] = struct.pack(">I", _pick(rng, _I32))
        else:
            ihdr[6 + field] = _pick(rng, [0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 255])
        parts[0] = (b"IHDR", bytes(ihdr))
        what = f"IHDR byte field {field}"
    elif op == 3:  # flip bits inside IDAT (CRC fixed): bad filters, bad deflate
        i = next((j for j, p in enumerate(parts) if p[0] == b"IDAT"), 0)
        d = bytearray(parts[i][1])
        for _ in range(int(rng.integers(1, 6))):
            if d:
                d[int(rng.integers(0, len(d)))] ^= 1 << int(rng.integers(0, 8))
        parts[i] = (parts[i][0], bytes(d))
        what = "IDAT bits (CRC fixed)"
    elif op == 4:  # ancillary chunks with junk or bombs
        kind = _pick(rng, [b"iCCP", b"eXIf", b"zTXt", b"iTXt", b"tEXt", b"pHYs", b"gAMA", b"sBIT", b"acTL",
                           b"fcTL", b"tRNS", b"PLTE", b"cHRM", b"sRGB", b"bKGD", b"hIST", b"sPLT", b"tIME"])
        if kind in (b"zTXt", b"iCCP") and rng.random() < 0.5:
            payload = b"k\0\0" + zlib.compress(b"\0" * int(rng.integers(1, 8)) * 1_000_000)
        else:
            payload = bytes(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8))
        parts.insert(1, (kind, payload))
        what = f"inserted {kind.decode()} ({len(payload)} bytes)"
    elif op == 5:  # unknown critical chunk
        parts.insert(1, (b"CRIT", b"\0" * 4))
        what = "unknown critical chunk"
    elif op == 6:  # reorder / drop chunks
        if len(parts) > 2 and rng.random() < 0.5:
            j = int(rng.integers(0, len(parts)))
            del parts[j]
            what = f"dropped chunk {j}"
        else:
            rng.shuffle(parts)
            what = "shuffled chunks"
    elif op == 7:  # split IDAT into many tiny chunks, or add an empty one
        i = next((j for j, p in enumerate(parts) if p[0] == b"IDAT"), 1)
        d = parts[i][1]
        step = int(rng.integers(1, 8))
        parts[i:i + 1] = [(b"IDAT", d[k:k + step]) for k in range(0, len(d), step)] or [(b"IDAT", b"")]
        what = f"IDAT split every {step} bytes"
    else:  # a wrong chunk length (CRC then misaligned)
        raw = bytearray(data)
        _, a, _ = chunks[int(rng.integers(0, len(chunks)))]
        raw[a:a + 4] = struct.pack(">I", _pick(rng, _I32))
        return bytes(raw), "chunk length"
    return _PNG_SIG + b"".join(_chunk(k, d) for k, d in parts), what


def _mutate_jpeg(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    segs = _jpeg_segments(data)
    d = bytearray(data)
    op = int(rng.integers(0, 6))
    sof = next((s for s in segs if s[0] in (0xC0, 0xC1, 0xC2)), None)
    if op <= 1 and sof:  # SOF fields: precision, height, width, components, sampling, table ids
        _, a, b = sof
        off = a + 4 + int(rng.integers(0, max(1, b - a - 4)))
        d[off] = _pick(rng, _I8)
        return bytes(d), f"SOF byte {off - a}"
    if op == 2:  # segment length
        _, a, _ = segs[int(rng.integers(0, len(segs)))]
        d[a + 2:a + 4] = struct.pack(">H", _pick(rng, _I16))
        return bytes(d), "segment length"
    if op == 3:  # DQT/DHT/SOS contents
        cand = [s for s in segs if s[0] in (0xDB, 0xC4, 0xDA, 0xDD)] or segs
        m, a, b = cand[int(rng.integers(0, len(cand)))]
        for _ in range(int(rng.integers(1, 4))):
            if b - a > 4:
                d[a + 4 + int(rng.integers(0, b - a - 4))] = _pick(rng, _I8)
        return bytes(d), f"marker {m:02X} contents"
    if op == 4:  # inserted APPn with junk (EXIF, ICC, Adobe, comment, MPF)
        kind = int(rng.integers(0, 5))
        if kind == 0:
            body = b"Exif\0\0" + bytes(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8))
            marker = 0xE1
        elif kind == 1:
            body = b"ICC_PROFILE\0" + bytes([1, 1]) + bytes(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8))
            marker = 0xE2
        elif kind == 2:
            body = b"Adobe" + bytes(rng.integers(0, 256, 7, dtype=np.uint8))
            marker = 0xEE
        elif kind == 3:
            body = b"MPF\0" + bytes(rng.integers(0, 256, int(rng.integers(0, 100)), dtype=np.uint8))
            marker = 0xE2
        else:
            body = bytes(rng.integers(0, 256, int(rng.integers(0, 100)), dtype=np.uint8))
            marker = 0xFE
        seg = bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body
        return bytes(d[:2]) + seg + bytes(d[2:]), f"inserted APP/COM {marker:02X}"
    # drop a segment
    _, a, b = segs[int(rng.integers(0, len(segs)))]
    return bytes(d[:a] + d[b:]), "dropped segment"


def _mutate_gif(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    d = bytearray(data)
    packed = d[10]
    i = 13 + (3 * (2 << (packed & 7)) if packed & 0x80 else 0)
    desc = None
    while i < len(d):
        if d[i] == 0x21:
            i += 2
            while i < len(d) and d[i]:
                i += d[i] + 1
            i += 1
        elif d[i] == 0x2C:
            desc = i
            break
        else:
            break
    op = int(rng.integers(0, 4))
    if op == 0:
        off = int(rng.integers(6, 13))
        d[off] = _pick(rng, _I8)
        return bytes(d), f"screen descriptor byte {off}"
    if op <= 2 and desc is not None and desc + 11 <= len(d):
        off = desc + 1 + int(rng.integers(0, 10))
        d[off] = _pick(rng, _I8)
        return bytes(d), f"image descriptor byte {off - desc} (incl. LZW code size)"
    # sub-block length bytes
    for _ in range(int(rng.integers(1, 4))):
        d[int(rng.integers(13, max(14, len(d))) ) % len(d)] = _pick(rng, [0, 1, 254, 255])
    return bytes(d), "block lengths"


def _mutate_webp(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    d = bytearray(data)
    op = int(rng.integers(0, 4))
    if op == 0:
        d[4:8] = struct.pack("<I", _pick(rng, _I32))
        return bytes(d), "RIFF size"
    if op == 1 and len(d) >= 20:
        d[16:20] = struct.pack("<I", _pick(rng, _I32))
        return bytes(d), "first chunk size"
    if op == 2 and len(d) >= 30:
        off = 20 + int(rng.integers(0, 10))
        d[off] = _pick(rng, _I8)
        return bytes(d), f"bitstream header byte {off}"
    # wrap in VP8X with a random canvas and flags
    flags = _pick(rng, [0, 0x02, 0x08, 0x10, 0x20, 0x3E])
    cw, ch = (int(v) for v in rng.integers(0, 1 << 24, 2))
    vp8x = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + cw.to_bytes(3, "little") + ch.to_bytes(3, "little"))
    body = b"WEBP" + vp8x + bytes(d[12:])
    return b"RIFF" + struct.pack("<I", len(body)) + body, f"VP8X canvas {cw + 1}x{ch + 1} flags {flags:#x}"


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def _mutate_bmp(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    d = bytearray(data)
    fields = [(2, 4), (10, 4), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2), (30, 4), (34, 4), (46, 4)]
    off, n = _pick(rng, fields)
    if off + n > len(d):
        return bytes(d), "short file"
    if n == 4:
        val = _pick(rng, _I32 + [(-v) & 0xFFFFFFFF for v in (1, 100, 0x7FFFFFFF)])
        d[off:off + 4] = struct.pack("<I", val)
    else:
        d[off:off + 2] = struct.pack("<H", _pick(rng, [0, 1, 2, 4, 8, 15, 16, 24, 32, 64, 0xFFFF]))
    return bytes(d), f"header field at {off}"


def _mutate_tiff(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
    d = bytearray(data)
    big = d[:2] == b"MM"
    e = ">" if big else "<"
    try:
        ifd = struct.unpack(e + "I", d[4:8])[0]
        n = struct.unpack(e + "H", d[ifd:ifd + 2])[0]
    except struct.error:
        return bytes(d), "no IFD"
    if n == 0 or ifd + 2 + 12 * n > len(d):
        return bytes(d), "no IFD"
    k = int(rng.integers(0, n))
    at = ifd + 2 + 12 * k
    tag = struct.unpack(e + "H", d[at:at + 2])[0]
    part = int(rng.integers(0, 3))
    if part == 0:
        d[at + 2:at + 4] = struct.pack(e + "H", _pick(rng, [0, 1, 2, 3, 4, 5, 7, 11, 12, 13, 16, 17, 18, 255]))
        what = "type"
    elif part == 1:
        d[at + 4:at + 8] = struct.pack(e + "I", _pick(rng, _I32))
        what = "count"
    else:
        d[at + 8:at + 12] = struct.pack(e + "I", _pick(rng, _I32 + [1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 32773, 34712]))
        what = "value"
    return bytes(d), f"IFD tag {tag} {what}"


def _gen_header_fields(rng: np.random.Generator, case: Case) -> None:
    fmt = _pick(rng, ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "TIFF_HAND"])
    h, w = int(rng.integers(1, 49)), int(rng.integers(1, 49))
    if fmt == "TIFF_HAND":  # hand-written TIFF with random tag values
        strip = bytes(rng.integers(0, 256, h * w * 3, dtype=np.uint8))
        extra: dict[int, tuple[int, list[int]]] = {}
        for _ in range(int(rng.integers(1, 4))):
            tag = _pick(rng, [258, 259, 262, 273, 277, 278, 279, 284, 317, 338, 339, 320, 322, 323, 324, 325, 530, 532])
            extra[tag] = (_pick(rng, [3, 4]), [_pick(rng, _I16 + [1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 32773])
                                             for _ in range(int(rng.integers(1, 5)))])
        data = _tiff(w, h, strip, extra=extra)
        case.name, case.data, case.ext = f"TIFF {w}x{h} tags {sorted(extra)}", data, ".tif"
        return
    modes = {"PNG": ["RGB", "RGBA", "P_trns", "L", "I;16"], "JPEG": ["RGB", "L", "CMYK"], "GIF": ["P"],
             "WEBP": ["RGB", "RGBA"], "BMP": ["RGB", "P", "L"], "TIFF": ["RGB", "I;16", "CMYK", "P", "F"]}
    mode = _pick(rng, modes[fmt])
    data, _, _, _ = _valid_image(rng, fmt, mode, h, w)
    mutate = {"PNG": _mutate_png, "JPEG": _mutate_jpeg, "GIF": _mutate_gif, "WEBP": _mutate_webp,
              "BMP": _mutate_bmp, "TIFF": _mutate_tiff}[fmt]
    data, what = mutate(rng, data)
    case.name, case.data, case.ext = f"{fmt} {mode} {w}x{h}: {what}", data, _EXT[fmt]


# ------------------------------------------------------------------------------- other categories

_NON_IMAGES: list[tuple[str, bytes]] = [
    ("text", b"This is a text file with an image name.\n"),
    ("html", b"<!DOCTYPE html><html><body><img src='x.png'></body></html>\n"),
    ("svg", b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>"),
    ("json", b'{"image": [1, 2, 3]}'),
    ("pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),
    ("zip", b"PK\x03\x04" + b"\0" * 26 + b"PK\x05\x06" + b"\0" * 18),
    ("gzip", zlib.compress(b"\0" * 1000)),
    ("elf", b"\x7fELF\x02\x01\x01" + b"\0" * 57),
    ("python", b"import os\nprint('hello')\n"),
    ("utf16 text", "image".encode("utf-16")),
    ("numpy .npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }" + b" " * 50 + b"\n" + b"\0" * 16),
]


def _gen_wrong_ext(rng: np.random.Generator, case: Case) -> None:
    exts = [".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".bmp", ".txt", "", ".PNG", ".JPG", ".png.jpg", ".heic",
            ".avif", ".exr", ".svg", ".pdf"]
    ext = _pick(rng, exts)
    if rng.random() < 0.7:
        sub = Case("base", 0, "", None, "")
        _gen_valid(rng, sub)
        while sub.ext == ext:
            _gen_valid(rng, sub)
        case.name, case.data, case.ext = f"{sub.name} named *{ext or '(no extension)'}", sub.data, ext
        case.expect, case.hw, case.pixels, case.mean, case.tol = "load", sub.hw, sub.pixels, sub.mean, sub.tol
    else:
        label, payload = _pick(rng, _NON_IMAGES)
        case.name, case.data, case.ext = f"{label} named *{ext or '(no extension)'}", payload, ext
        case.expect = "refuse"


_MAGICS: list[tuple[str, bytes, str]] = [
    ("PNG", _PNG_SIG, ".png"), ("PNG+IHDR", _PNG_SIG + b"\0\0\0\rIHDR", ".png"), ("JPEG", b"\xff\xd8\xff", ".jpg"),
    ("JPEG SOI+EOI", b"\xff\xd8\xff\xd9", ".jpg"), ("GIF89a", b"GIF89a", ".gif"), ("GIF87a", b"GIF87a", ".gif"),
    ("WebP", b"RIFF\0\0\0\0WEBP", ".webp"), ("WebP VP8", b"RIFF\x10\0\0\0WEBPVP8 ", ".webp"),
    ("TIFF II", b"II*\0", ".tif"), ("TIFF MM", b"MM\0*", ".tif"), ("BigTIFF", b"II+\0\x08\0\0\0", ".tif"),
    ("BMP", b"BM", ".bmp"), ("PPM", b"P6\n", ".ppm"), ("PBM", b"P4 ", ".pbm"), ("PFM", b"Pf\n", ".pfm"),
    ("ICO", b"\0\0\1\0", ".ico"), ("ICNS", b"icns", ".icns"), ("PSD", b"8BPS", ".psd"), ("QOI", b"qoif", ".qoi"),
    ("DDS", b"DDS ", ".dds"), ("JPEG2000", b"\0\0\0\x0cjP  \r\n\x87\n", ".jp2"), ("AVIF", b"\0\0\0\x1cftypavif", ".avif"),
    ("FITS", b"SIMPLE  =                    T", ".fits"), ("EPS", b"%!PS-Adobe-3.0 EPSF-3.0", ".eps"),
    ("XBM", b"#define im_width 8\n", ".xbm"), ("PCX", b"\x0a\x05\x01\x08", ".pcx"), ("SGI", b"\x01\xda", ".sgi"),
    ("MPO-ish", b"\xff\xd8\xff\xe2\0\x0eMPF\0", ".mpo"),
]


def _gen_tiny(rng: np.random.Generator, case: Case) -> None:
    r = rng.random()
    if r < 0.1:
        case.name, case.data, case.ext, case.expect = "0 bytes", b"", _pick(rng, [".png", ".jpg", ".gif", ""]), "refuse"
        return
    if r < 0.3:
        n = int(rng.integers(1, 33))
        case.name, case.data, case.ext = f"{n} random bytes", bytes(rng.integers(0, 256, n, dtype=np.uint8)), ".png"
        return
    if r < 0.35:
        payload = _pick(rng, [b"\n", b" ", b"\0", b"\xff", b"\0" * 64, b"\xff" * 64, b"  \n\t"])
        case.name, case.data, case.ext = f"{len(payload)} filler bytes", payload, ".jpg"
        return
    label, magic, ext = _pick(rng, _MAGICS)
    n = int(rng.integers(0, 48))
    case.name, case.data, case.ext = f"{label} magic + {n} random bytes", magic + bytes(
        rng.integers(0, 256, n, dtype=np.uint8)), ext


_CLAIMS: list[tuple[int, int]] = [
    (8001, 8000), (8000, 8001), (16384, 16384), (46341, 46341), (65535, 65535), (65536, 65536), (100000, 100000),
    (2**31 - 1, 1), (1, 2**31 - 1), (2**31 - 1, 2**31 - 1), (2**32 - 1, 2**32 - 1), (64_000_001, 1), (1, 64_000_001),
    (0, 0), (0, 100), (100, 0),
    (7000, 7000), (64_000_000, 1), (4000, 16000), (9000, 7000),
]


def _gen_size_claims(rng: np.random.Generator, case: Case) -> None:
    if rng.random() < 0.02:  # real bombs: valid zlib data for every claimed pixel (streamed, ~100-300 KB)
        variant = int(rng.integers(0, 4))
        if variant == 0:  # 8000 x 8000 RGB zeros: exactly the limit, must decode (to black)
            data = _png(8000, 8000, 8, 2, _zero_idat(8000, 8000, 3))
            case.expect, case.hw, case.mean, case.tol = "load", (8000, 8000), np.zeros(3), 1e-6
            label = "real 8000x8000 RGB PNG (at the pixel limit)"
        elif variant == 1:  # 16-bit gray at the limit (the costliest conversion path)
            data = _png(8000, 8000, 16, 0, _zero_idat(8000, 8000, 2))
            case.expect, case.hw, case.mean, case.tol = "load", (8000, 8000), np.zeros(3), 1e-6
            label = "real 8000x8000 16-bit gray PNG (at the pixel limit)"
        elif variant == 2:
            data = _png(8001, 8000, 8, 2, _zero_idat(8001, 8000, 3))
            case.expect, label = "refuse", "real 8001x8000 RGB PNG (one column over the limit)"
        else:
            data = _png(20000, 20000, 8, 0, _zero_idat(20000, 20000, 1))
            case.expect, label = "refuse", "real 20000x20000 gray PNG (400 Mpx)"
        case.name, case.data, case.ext, case.heavy = label, data, ".png", True
        return
    w, h = _pick(rng, _CLAIMS)
    fmt = _pick(rng, ["PNG", "PNG", "JPEG", "GIF", "WEBP_VP8L", "WEBP_VP8X", "TIFF", "BMP", "PPM", "TGA", "PSD"])
    small = _smooth(rng, 8, 8, 3)
    if fmt == "PNG":
        ct, bd = _pick(rng, [(2, 8), (6, 8), (0, 16), (6, 16), (3, 8), (0, 1)])
        extra = [(b"PLTE", b"\0\0\0\xff\xff\xff")] if ct == 3 else []
        data = _png(w & 0xFFFFFFFF, h & 0xFFFFFFFF, bd, ct, zlib.compress(b"\0" * 64), extra=extra)
    elif fmt == "JPEG":
        w, h = min(w, 65535), min(h, 65535)
        d = bytearray(_save(Image.fromarray(small), "JPEG"))
        _, a, _ = next(s for s in _jpeg_segments(bytes(d)) if s[0] == 0xC0)
        d[a + 5:a + 9] = struct.pack(">HH", h, w)
        data = bytes(d)
    elif fmt == "GIF":
        w, h = min(w, 65535), min(h, 65535)
        d = bytearray(_save(Image.fromarray(small).convert("P"), "GIF"))
        d[6:10] = struct.pack("<HH", w, h)
        desc = d.find(b"\x2c", 13 + 3 * 256 if d[10] & 0x80 else 13)
        if desc > 0:
            d[desc + 5:desc + 9] = struct.pack("<HH", w, h)
        data = bytes(d)
    elif fmt == "WEBP_VP8L":
        w, h = min(w, 16384), min(h, 16384)
        bits = (max(w, 1) - 1) | ((max(h, 1) - 1) << 14)
        payload = b"\x2f" + struct.pack("<I", bits) + b"\0" * 16
        body = b"WEBP" + _riff_chunk(b"VP8L", payload)
        data = b"RIFF" + struct.pack("<I", len(body)) + body
    elif fmt == "WEBP_VP8X":
        w, h = min(w, 1 << 24), min(h, 1 << 24)
        inner = _save(Image.fromarray(small), "WEBP", lossless=True)[12:]
        vp8x = _riff_chunk(b"VP8X", bytes([0, 0, 0, 0]) + (max(w, 1) - 1).to_bytes(3, "little")
                           + (max(h, 1) - 1).to_bytes(3, "little"))
        body = b"WEBP" + vp8x + inner
        data = b"RIFF" + struct.pack("<I", len(body)) + body
    elif fmt == "TIFF":
        w, h = min(w, 2**32 - 1), min(h, 2**32 - 1)
        bps, ph = _pick(rng, [((8, 8, 8), 2), ((16,), 1), ((32,), 1), ((8, 8, 8, 8), 5)])
        data = _tiff(w, h, b"\0" * 64, bps=bps, photometric=ph, compression=_pick(rng, [1, 5, 8, 32773]))
    elif fmt == "BMP":
        w, h = min(w, 2**31 - 1), min(h, 2**31 - 1)
        d = bytearray(_save(Image.fromarray(small), "BMP"))
        hh = -h if rng.random() < 0.3 else h  # negative height: top-down rows
        d[18:26] = struct.pack("<ii", w, hh)
        data = bytes(d)
    elif fmt == "PPM":
        data = f"P6\n{w} {h}\n255\n".encode() + b"\0" * 64
    elif fmt == "TGA":
        w, h = min(w, 65535), min(h, 65535)
        data = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 24, 0) + b"\0" * 64
    else:  # PSD
        w, h = min(w, 300000), min(h, 300000)
        data = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3) + b"\0" * 64
    case.name, case.data = f"{fmt} header claims {w}x{h}", data
    case.ext = {"WEBP_VP8L": ".webp", "WEBP_VP8X": ".webp", "PSD": ".psd"}.get(fmt, _EXT.get(fmt, ".bin"))
    # Over the pixel limit: must be refused from the header. Zero or under the limit: the pixel data is
    # missing, so a typed error or a padded image (libjpeg fills missing scans with grey) are both fine.
    case.expect = "refuse" if w * h > MAX_PIXELS else "any"
    case.heavy = 10_000_000 <= w * h <= MAX_PIXELS  # may really decode tens of Mpx (seconds, GBs): loader only


def _gen_random(rng: np.random.Generator, case: Case) -> None:
    n = int(rng.integers(33, 4097))
    payload = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    if rng.random() < 0.6:
        label, magic, ext = _pick(rng, _MAGICS)
        payload = magic + payload
    else:
        label, ext = "no magic", _pick(rng, [".png", ".jpg", ".tga", ".bin", ""])
    case.name, case.data, case.ext = f"{label} + {n} random bytes", payload, ext


_SPECIAL = ["missing", "directory", "dir_named_png", "fifo", "dev_null", "dangling_symlink", "symlink_loop",
            "symlink_to_valid", "space_unicode_name", "newline_name", "long_name"]


def _gen_special(rng: np.random.Generator, case: Case) -> None:
    kind = _pick(rng, _SPECIAL)
    case.kind, case.name, case.ext = kind, kind.replace("_", " "), ".png"
    if kind in ("symlink_to_valid", "space_unicode_name", "newline_name", "long_name"):
        sub = Case("base", 0, "", None, "")
        _gen_valid(rng, sub)
        case.data, case.ext, case.expect, case.hw, case.pixels, case.mean, case.tol = (
            sub.data, sub.ext, "load", sub.hw, sub.pixels, sub.mean, sub.tol)
        case.name += f" ({sub.name})"
    else:
        case.expect = "refuse"


_GENERATORS: dict[str, Callable[[np.random.Generator, Case], None]] = {
    "valid": _gen_valid, "extreme_dims": _gen_extreme, "exif_orientation": _gen_exif, "high_bit_depth": _gen_high_bit,
    "cmyk": _gen_cmyk, "palette_transparency": _gen_palette, "animated": _gen_animated, "truncated": _gen_truncated,
    "bit_flipped": _gen_bitflip, "header_fields": _gen_header_fields, "wrong_extension": _gen_wrong_ext,
    "zero_and_tiny": _gen_tiny, "size_claims": _gen_size_claims, "random_bytes": _gen_random,
    "special_paths": _gen_special,
}


def make_case(category: str, index: int, seed: int = 0, *, stream: int = 0) -> Case:
    """Generate case ``index`` of ``category`` from ``seed`` alone (stream 0: loader cases, 1: CLI cases)."""
    rng = np.random.default_rng([seed, stream, CATEGORIES.index(category), index])
    case = Case(category, index, "", None, "")
    _GENERATORS[category](rng, case)
    return case


def allocate(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split ``total`` over categories in proportion to ``weights`` (largest remainder, stable)."""
    if total <= 0:
        return {c: 0 for c in weights}
    wsum = sum(weights.values())
    raw = {c: total * w / wsum for c, w in weights.items()}
    out = {c: int(v) for c, v in raw.items()}
    for c in sorted(raw, key=lambda c: (out[c] - raw[c], CATEGORIES.index(c)))[: total - sum(out.values())]:
        out[c] += 1
    return out


def case_specs(total: int, weights: dict[str, int], categories: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """(category, index) of every case, categories in the fixed order."""
    counts = allocate(total, weights)
    return [(c, k) for c in CATEGORIES if (not categories or c in categories) for k in range(counts.get(c, 0))]


def materialize(case: Case, folder: Path) -> Path:
    """Write the case into ``folder`` (or build the special path) and return the path to load."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{case.category}-{case.index}"
    kind = case.kind
    if kind == "file":
        p = folder / f"{stem}{case.ext}"
        p.write_bytes(case.data or b"")
        return p
    if kind == "missing":
        return folder / f"{stem}-missing.png"
    if kind in ("directory", "dir_named_png"):
        p = folder / (f"{stem}-dir" if kind == "directory" else f"{stem}-dir.png")
        p.mkdir(exist_ok=True)
        return p
    if kind == "fifo":
        p = folder / f"{stem}-fifo.png"
        if not p.exists():
            os.mkfifo(p)
        return p
    if kind == "dev_null":
        return Path(os.devnull)
    if kind == "dangling_symlink":
        p = folder / f"{stem}-dangling.png"
        if not p.is_symlink():
            p.symlink_to(folder / "nowhere.png")
        return p
    if kind == "symlink_loop":
        a, b = folder / f"{stem}-loop-a.png", folder / f"{stem}-loop-b.png"
        if not a.is_symlink():
            a.symlink_to(b)
            b.symlink_to(a)
        return a
    # valid bytes under an odd name
    name = {"symlink_to_valid": f"{stem}-target", "space_unicode_name": f"{stem} ünïcødé 画像 'q\"",
            "newline_name": f"{stem}\nsecond line", "long_name": f"{stem}-" + "x" * 200}[kind]
    target = folder / f"{name}{case.ext}"
    target.write_bytes(case.data or b"")
    if kind == "symlink_to_valid":
        link = folder / f"{stem}-link{case.ext}"
        if not link.is_symlink():
            link.symlink_to(target)
        return link
    return target


# ---------------------------------------------------------------------------------------- classification


def check_image_result(case: Case, shape: tuple[int, ...], arr: np.ndarray | None) -> str | None:
    """None when a decoded ``(1, 3, H, W)`` array is correct for ``case``; else the reason."""
    if len(shape) != 4 or shape[0] != 1 or shape[1] != 3 or shape[2] < 1 or shape[3] < 1:
        return f"wrong shape {shape}"
    if arr is None:
        return None
    if arr.dtype != np.float32:
        return f"dtype {arr.dtype}"
    if not np.isfinite(arr).all():
        return "non-finite values"
    if float(arr.min()) < 0.0 or float(arr.max()) > 1.0:
        return f"values outside [0, 1]: {float(arr.min())}..{float(arr.max())}"
    if case.expect == "refuse":
        return "accepted a file that must be refused"
    if case.hw is not None and tuple(shape[2:]) != tuple(case.hw):
        return f"size {tuple(shape[2:])}, expected {tuple(case.hw)}"
    img = arr[0].transpose(1, 2, 0)
    if case.pixels is not None and case.tol < 0:  # centres of the 4 quadrants
        h, w = img.shape[:2]
        for y, x in ((h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)):
            if np.abs(img[y, x] - case.pixels[y, x]).max() > 0.25:
                return f"pixel ({y}, {x}) is {img[y, x].round(3).tolist()}, expected {case.pixels[y, x].round(3).tolist()}"
    elif case.pixels is not None:
        err = np.abs(img - case.pixels.astype(np.float32))
        if float(err.max()) > case.tol:
            y, x, _ = np.unravel_index(int(err.argmax()), err.shape)
            return (f"pixel ({y}, {x}) is {img[y, x].round(4).tolist()}, expected "
                    f"{case.pixels[y, x].round(4).tolist()} (max error {float(err.max()):.4f} > {case.tol:.4f})")
    if case.mean is not None:
        m = img.reshape(-1, 3).mean(0)
        if float(np.abs(m - case.mean).max()) > case.tol:
            return f"channel means {m.round(3).tolist()}, expected {np.asarray(case.mean).round(3).tolist()}"
    return None


class _CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case (a BaseException: the loader's ``except Exception`` cannot eat it)."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _CaseTimeout()


def _where(tb: traceback.StackSummary) -> str:
    frames = [f for f in tb if "fuzz_images" not in f.filename]
    f = frames[-1] if frames else tb[-1]
    return f"{Path(f.filename).name}:{f.lineno}"


def _leaked_warning(caught: Sequence[warnings.WarningMessage]) -> str | None:
    """A warning that a user would see printed (hidden-by-default deprecations aside)."""
    for w in caught:
        if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
            return f"warning printed: {w.category.__name__}: {str(w.message)[:120]}"
    return None


class _pil_log_records:  # noqa: N801 - used as a context manager
    """Collect Pillow's log records during the block instead of letting logging's last resort print them.

    A library leaves logging to the application; the CLIs mute Pillow's logger (``set_verbosity``) and
    the CLI cases check that. Here the records are only counted (``Outcome.pil_log``).
    """

    def __enter__(self) -> list[str]:
        import logging

        self.records: list[str] = []
        outer = self

        class _Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.WARNING:
                    outer.records.append(record.getMessage())

        self.logger = logging.getLogger("PIL")
        self.handler, self.propagate = _Keep(), self.logger.propagate
        self.logger.addHandler(self.handler)
        self.logger.propagate = False
        return self.records

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.propagate = self.propagate


class _capture_fd2:  # noqa: N801 - used as a context manager
    """Collect what C code writes to fd 2 during the block (main thread only), as ``[bytes]``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.out: list[bytes] = []

    def __enter__(self) -> list[bytes]:
        if self.enabled:
            sys.stderr.flush()
            self.tmp = tempfile.TemporaryFile()
            self.saved = os.dup(2)
            os.dup2(self.tmp.fileno(), 2)
        return self.out

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            os.dup2(self.saved, 2)
            os.close(self.saved)
            self.tmp.seek(0)
            data = self.tmp.read()
            self.tmp.close()
            if data:
                self.out.append(data)


def _leaked_stderr(fd2: Sequence[bytes]) -> str | None:
    if fd2 and fd2[0].strip():
        return f"wrote to stderr: {fd2[0].decode(errors='replace').strip().splitlines()[0][:120]!r}"
    return None


def run_loader_case(case: Case, folder: Path, *, max_pixels: int = MAX_PIXELS) -> Outcome:
    """Load one case in this process under a ``SIGALRM`` time bound and classify the result."""
    from adain.base.errors import ImageError
    from adain.base.image import load_image

    path = materialize(case, folder)
    limit = HEAVY_TIMEOUT_S if case.heavy else CASE_TIMEOUT_S
    use_alarm = hasattr(signal, "setitimer") and _in_main_thread()
    t0 = time.perf_counter()
    outcome, detail = "fail", ""
    caught: list[warnings.WarningMessage] = []
    fd2: list[bytes] = []
    logs: list[str] = []
    old = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            with warnings.catch_warnings(record=True) as caught, _pil_log_records() as logs, \
                    _capture_fd2(use_alarm) as fd2:
                warnings.simplefilter("always")
                x = load_image(path, max_pixels=max_pixels)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
        arr = x.numpy() if hasattr(x, "numpy") else None
        reason = _leaked_warning(caught) or _leaked_stderr(fd2) or check_image_result(case, tuple(x.shape), arr)
        if reason is None:
            outcome, detail = "ok", f"{tuple(x.shape[2:])}"
        else:
            detail = reason
    except _CaseTimeout:
        detail = f"timeout: over {limit:.0f} s"
    except ImageError as e:
        msg = str(e)
        leaked = _leaked_warning(caught) or _leaked_stderr(fd2)
        if leaked:
            detail = leaked
        elif "MemoryError" in msg:
            detail = f"memory: {msg}"
        elif "\n" in msg and "\n" not in str(path):
            detail = f"multi-line message: {msg!r}"
        elif not msg.startswith(f"cannot read '{path}': "):
            detail = f"message does not name the file: {msg!r}"
        elif case.expect == "load":
            detail = f"refused a well-formed file: {msg}"
        else:
            outcome, detail = "typed", e.reason
    except MemoryError:
        detail = "memory: MemoryError"
    except Exception as e:  # noqa: BLE001 - every other exception is the finding
        tb = traceback.extract_tb(e.__traceback__)
        detail = f"{type(e).__name__} at {_where(tb)}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    finally:
        if use_alarm and old is not None:
            signal.signal(signal.SIGALRM, old)
    dt = time.perf_counter() - t0
    if case.kind == "file" and path.exists():
        path.unlink()
    return Outcome(case.case_id, case.category, case.name, outcome, detail, round(dt, 4), pil_log=len(logs))


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _maxrss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _vm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1])
    return 0


def _loader_worker(args: argparse.Namespace) -> int:
    """Child process: run loader cases from ``--_start`` on, one JSON line per case on stdout."""
    import adain.base.image  # noqa: F401 - import before measuring the baseline

    limit = 0
    if args.mem_limit_gib > 0:
        limit = _vm_kb() * 1024 + int(args.mem_limit_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = sys.stdout
    out.write(json.dumps({"ready": True, "baseline_vm_kb": _vm_kb(), "baseline_rss_kb": _maxrss_kb(),
                          "rlimit_as_bytes": limit}) + "\n")
    out.flush()
    specs = case_specs(args.loader_cases, LOADER_WEIGHTS, args.category)
    with tempfile.TemporaryDirectory(prefix="fuzz-loader-") as tmp:
        for i in range(args._start, len(specs)):
            cat, k = specs[i]
            try:
                case = make_case(cat, k, args.seed)
                res = run_loader_case(case, Path(tmp) / f"c{i}")
            except _CaseTimeout:
                res = Outcome(f"{cat}:{k}", cat, "?", "fail", "timeout while generating", 0.0)
            except Exception as e:  # noqa: BLE001 - a generator bug must not hide the rest
                res = Outcome(f"{cat}:{k}", cat, "?", "fail", f"generator error {type(e).__name__}: {e}", 0.0)
            res.rss_kb = _maxrss_kb()
            rec = res.as_dict()
            rec["i"] = i
            out.write(json.dumps(rec) + "\n")
            out.flush()
    return 0


def run_loader(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[Outcome], dict]:
    """Run the loader cases in child processes (restarted after a hang or crash); returns outcomes and memory facts."""
    specs = case_specs(args.loader_cases, LOADER_WEIGHTS, args.category)
    results: list[Outcome] = []
    mem: dict = {"peak_rss_kb": 0, "baseline_rss_kb": 0, "baseline_vm_kb": 0, "rlimit_as_bytes": 0,
                 "largest_step_kb": 0, "largest_step_case": ""}
    start = 0
    last_print = time.monotonic()
    while start < len(specs):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_loader-worker", "--_start", str(start),
               "--seed", str(args.seed), "--loader-cases", str(args.loader_cases),
               "--mem-limit-gib", str(args.mem_limit_gib)]
        for c in args.category or []:
            cmd += ["--category", c]
        errlog = tempfile.TemporaryFile()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errlog, cwd=ROOT)
        assert p.stdout is not None
        buf, nxt, prev_rss = b"", start, 0
        last = time.monotonic()
        eof = False
        while not eof:
            ready, _, _ = select.select([p.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(p.stdout.fileno(), 1 << 16)
                if not chunk:
                    eof = True
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    rec = json.loads(line)
                    last = time.monotonic()
                    if rec.get("ready"):
                        for key in ("baseline_vm_kb", "baseline_rss_kb", "rlimit_as_bytes"):
                            mem[key] = rec[key]
                        prev_rss = rec["baseline_rss_kb"]
                        continue
                    nxt = rec.pop("i") + 1
                    out = Outcome(**rec)
                    results.append(out)
                    if out.rss_kb - prev_rss > mem["largest_step_kb"]:
                        mem["largest_step_kb"], mem["largest_step_case"] = out.rss_kb - prev_rss, out.case_id
                    prev_rss = out.rss_kb
                    mem["peak_rss_kb"] = max(mem["peak_rss_kb"], out.rss_kb)
                    if out.outcome == "fail":
                        log(f"FAIL {out.case_id} [{out.name}]: {out.detail}")
            elif time.monotonic() - last > WATCHDOG_S:
                p.kill()
                p.wait()
                cat, k = specs[nxt]
                results.append(Outcome(f"{cat}:{k}", cat, "?", "fail", f"hang: no progress for {WATCHDOG_S:.0f} s", WATCHDOG_S))
                log(f"FAIL {cat}:{k}: hang")
                nxt += 1
                break
            if time.monotonic() - last_print > 30:
                log(f"  loader: {len(results)}/{len(specs)} cases")
                last_print = time.monotonic()
        if eof:
            rc = p.wait()
            if nxt < len(specs):  # the child died inside case ``nxt``
                cat, k = specs[nxt]
                errlog.seek(0)
                tail = errlog.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
                results.append(Outcome(f"{cat}:{k}", cat, "?", "fail", f"crash: child exit {rc} ({tail[0][:160]})", 0.0))
                log(f"FAIL {cat}:{k}: crash rc={rc} {tail[0][:160]}")
                nxt += 1
        errlog.close()
        start = nxt
    return results, mem


# ------------------------------------------------------------------------------------------------ CLIs


def _good_images(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12345)
    out = {}
    for name, (h, w) in {"content": (40, 48), "style": (32, 32)}.items():
        p = folder / f"good_{name}.png"
        Image.fromarray(_smooth(rng, h, w, 3), "RGB").save(p)
        out[name] = p
    return out


def _expected_out_hw(ref_hw: tuple[int, int], size: int = CLI_SIZE) -> tuple[int, int]:
    h, w = ref_hw
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def cli_plan(case: Case, rng_index: int) -> tuple[str, str]:
    """(program, position) of a CLI case: alternate programs; mostly the content slot."""
    program = "adain" if rng_index % 2 == 0 else "warpstyle"
    r = np.random.default_rng([rng_index, 7]).random()
    if r < 0.7:
        return program, "content"
    if program == "adain" or r < 0.85:
        return program, "style"
    return program, "geometry"


def run_cli_case(case: Case, program: str, position: str, folder: Path, goods: dict[str, Path],
                 *, rss_limit_mib: int = 2048) -> Outcome:
    """Run one real CLI subprocess on the case and classify exit status, stderr and output."""
    path = materialize(case, folder / "in")
    out = folder / f"out-{case.category}-{case.index}.png"
    content, style = goods["content"], goods["style"]
    ref_hw: tuple[int, int] | None = None
    if position == "content":
        content, ref_hw = path, case.hw
    elif position == "style":
        style, ref_hw = path, (40, 48)
    if program == "adain":
        cmd = [sys.executable, "-m", "adain", "stylize", "--content", str(content), "--style", str(style),
               "--size", str(CLI_SIZE), "-o", str(out)]
    else:
        cmd = [sys.executable, "-m", "warpstyle", "run", "--content", str(content), "--texture", str(style),
               "--size", str(CLI_SIZE), "-o", str(out)]
        if position == "geometry":
            cmd += ["--geometry", str(path)]
            ref_hw = case.hw
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        # posix_spawn (vfork-like), not fork: a forked child inherits the parent's RSS high-water mark,
        # which would make ru_maxrss report the fuzzer's own peak instead of the CLI's.
        pid = os.posix_spawn(sys.executable, cmd, env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, fo.fileno(), 1), (os.POSIX_SPAWN_DUP2, fe.fileno(), 2)])
        status, rss_kb, timed_out = 0, 0, False
        while True:
            done, status, ru = os.wait4(pid, os.WNOHANG)
            if done:
                rss_kb = int(ru.ru_maxrss)
                break
            if time.perf_counter() - t0 > CLI_TIMEOUT_S:
                os.kill(pid, signal.SIGKILL)
                _, status, ru = os.wait4(pid, 0)
                timed_out = True
                break
            time.sleep(0.05)
        rc = os.waitstatus_to_exitcode(status)
        fe.seek(0)
        stderr = fe.read().decode(errors="replace")
    dt = time.perf_counter() - t0
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    outcome, detail = "fail", ""
    if timed_out:
        detail = f"timeout: over {CLI_TIMEOUT_S:.0f} s"
    elif rss_kb > rss_limit_mib * 1024:
        detail = f"memory: peak RSS {rss_kb // 1024} MiB > {rss_limit_mib} MiB"
    elif "Traceback" in stderr:
        detail = f"traceback (exit {rc}): {lines[-1][:200] if lines else ''}"
    elif rc == 0:
        try:
            with Image.open(out) as im:
                w, h = im.size
            reason = None
            if max(h, w) != CLI_SIZE:
                reason = f"output {w}x{h}, longer side should be {CLI_SIZE}"
            elif ref_hw is not None and (h, w) != _expected_out_hw(ref_hw):
                reason = f"output {w}x{h}, expected {_expected_out_hw(ref_hw)[::-1]}"
            elif case.expect == "refuse":
                reason = "exit 0 for a file that must be refused"
            outcome, detail = ("ok", f"{w}x{h}") if reason is None else ("fail", reason)
        except Exception as e:  # noqa: BLE001
            detail = f"exit 0 but no readable output: {type(e).__name__}: {e}"
    elif rc == 2 and len(lines) == 1 and lines[0].startswith(f"{program}: error: "):
        if case.expect == "load":
            detail = f"refused a well-formed file: {lines[0][:200]}"
        else:
            outcome, detail = "typed", lines[0][len(program) + 9:][:200]
    else:
        detail = f"exit {rc}, {len(lines)} stderr lines: {' | '.join(lines)[-300:]!r}"
    return Outcome(case.case_id, case.category, case.name, outcome, detail, round(dt, 2),
                   target=f"{program} ({position})", rss_kb=rss_kb)


def run_cli_cases(cases: Sequence[tuple[Case, str, str]], folder: Path, *, workers: int = 2,
                  rss_limit_mib: int = 2048, log: Callable[[str], None] = lambda s: None) -> list[Outcome]:
    """Run ``(case, program, position)`` triples with a small thread pool (each is a subprocess)."""
    goods = _good_images(folder / "goods")
    results: list[Outcome] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futs = [pool.submit(run_cli_case, c, prog, pos, folder / f"w{i}", goods, rss_limit_mib=rss_limit_mib)
                for i, (c, prog, pos) in enumerate(cases)]
        for n, f in enumerate(futs, 1):
            r = f.result()
            results.append(r)
            if r.outcome == "fail":
                log(f"FAIL cli {r.case_id} {r.target} [{r.name}]: {r.detail}")
            if n % 25 == 0:
                log(f"  cli: {n}/{len(cases)} cases")
    return results


def _cli_case_list(args: argparse.Namespace) -> list[tuple[Case, str, str]]:
    out = []
    for n, (cat, k) in enumerate(case_specs(args.cli_cases, CLI_WEIGHTS, args.category)):
        case = make_case(cat, k, args.seed, stream=1)
        while case.heavy:  # the at-limit bombs take seconds and GBs per call: loader-only
            k += 100_000
            case = make_case(cat, k, args.seed, stream=1)
        program, position = cli_plan(case, n)
        out.append((case, program, position))
    return out


# ---------------------------------------------------------------------------------------------- report


def summarize(results: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for r in results:
        row = rows.setdefault(r.category, {"cases": 0, "ok": 0, "typed": 0, "fail": 0, "max_s": 0.0})
        row["cases"] += 1
        row[r.outcome] += 1
        row["max_s"] = max(row["max_s"], r.seconds)
    return {c: rows[c] for c in CATEGORIES if c in rows}


def markdown_table(rows: dict[str, dict[str, float]], command: Callable[[str], str]) -> str:
    lines = ["| category | cases | ok image | typed error | failures | slowest case (s) | reproduce |",
             "|---|---:|---:|---:|---:|---:|---|"]
    tot = {"cases": 0, "ok": 0, "typed": 0, "fail": 0, "max_s": 0.0}
    for c, r in rows.items():
        lines.append(f"| {c} | {r['cases']} | {r['ok']} | {r['typed']} | {r['fail']} | {r['max_s']:.2f} | `{command(c)}` |")
        for k in ("cases", "ok", "typed", "fail"):
            tot[k] += r[k]
        tot["max_s"] = max(tot["max_s"], r["max_s"])
    lines.append(f"| **total** | {tot['cases']} | {tot['ok']} | {tot['typed']} | {tot['fail']} | {tot['max_s']:.2f} | |")
    return "\n".join(lines)


def _print_case(args: argparse.Namespace) -> int:
    cat, _, k = args.case.partition(":")
    stream = 1 if args.cli else 0
    case = make_case(cat, int(k), args.seed, stream=stream)
    print(f"case {case.case_id} (seed {args.seed}, {'CLI' if stream else 'loader'} stream): {case.name}")
    print(f"  {len(case.data or b'')} bytes, extension {case.ext!r}, kind {case.kind}, expect {case.expect}, hw {case.hw}")
    with tempfile.TemporaryDirectory(prefix="fuzz-case-") as tmp:
        if args.dump:
            p = materialize(case, Path(args.dump))
            print(f"  written to {p}")
        if stream == 0:
            r = run_loader_case(case, Path(tmp))
        else:
            n = [i for i, (c, kk) in enumerate(case_specs(args.cli_cases, CLI_WEIGHTS)) if (c, kk) == (cat, int(k))]
            program, position = cli_plan(case, n[0] if n else 0)
            r = run_cli_case(case, program, position, Path(tmp), _good_images(Path(tmp) / "goods"))
    print(f"  -> {r.target}: {r.outcome}: {r.detail} ({r.seconds:.3f} s)")
    return 1 if r.outcome == "fail" else 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="seed of every generated case (default 0)")
    ap.add_argument("--loader-cases", type=int, default=10_000, help="cases fed to load_image (default 10000)")
    ap.add_argument("--cli-cases", type=int, default=300, help="cases fed to the CLIs as subprocesses (default 300)")
    ap.add_argument("--category", action="append", choices=CATEGORIES, help="only these categories (repeatable)")
    ap.add_argument("--workers", type=int, default=2, help="parallel CLI subprocesses (default 2)")
    ap.add_argument("--mem-limit-gib", type=float, default=4.0,
                    help="loader child address-space cap above its post-import size, GiB (0: none; default 4)")
    ap.add_argument("--cli-rss-limit-mib", type=int, default=2048, help="peak RSS allowed per CLI call, MiB (default 2048)")
    ap.add_argument("--json", type=Path, default=None, help="also write every outcome and the summary as JSON")
    ap.add_argument("--case", default=None, help="run one case CATEGORY:INDEX verbosely (with --cli: the CLI stream)")
    ap.add_argument("--cli", action="store_true", help="with --case: the CLI stream")
    ap.add_argument("--dump", default=None, help="with --case: also write the case file into this folder")
    ap.add_argument("--_loader-worker", dest="_loader_worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_start", dest="_start", type=int, default=0, help=argparse.SUPPRESS)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args._loader_worker:
        return _loader_worker(args)
    if args.case:
        return _print_case(args)

    from adain.base.image import DEFAULT_MAX_PIXELS

    if DEFAULT_MAX_PIXELS != MAX_PIXELS:
        print(f"fuzz_images.py: MAX_PIXELS {MAX_PIXELS} differs from adain's {DEFAULT_MAX_PIXELS}", file=sys.stderr)
        return 1

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    loader, mem = run_loader(args, log) if args.loader_cases > 0 else ([], {})
    t_loader = time.perf_counter() - t0
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz-cli-") as tmp:
        cli = run_cli_cases(_cli_case_list(args), Path(tmp), workers=args.workers,
                            rss_limit_mib=args.cli_rss_limit_mib, log=log) if args.cli_cases > 0 else []
    t_cli = time.perf_counter() - t1

    cats = "".join(f" --category {c}" for c in args.category or [])
    base = f"python scripts/fuzz_images.py --seed {args.seed}"
    print(f"## Loader: `load_image` ({len(loader)} cases, {t_loader:.0f} s)\n")
    if loader:
        print(markdown_table(summarize(loader),
                             lambda c: f"{base} --loader-cases {args.loader_cases} --cli-cases 0 --category {c}"))
        gib = mem["rlimit_as_bytes"] / 2**30
        print(f"\nMemory: child peak RSS {mem['peak_rss_kb'] / 1024:.0f} MiB (after imports {mem['baseline_rss_kb'] / 1024:.0f} MiB;"
              f" largest single-case rise {mem['largest_step_kb'] / 1024:.0f} MiB at {mem['largest_step_case']}); "
              f"RLIMIT_AS {gib:.2f} GiB = post-import address space {mem['baseline_vm_kb'] / 2**20:.2f} GiB"
              f" + {args.mem_limit_gib} GiB.")
        logged = [r for r in loader if r.pil_log]
        print(f"Pillow logged an error/warning (captured; the CLIs mute Pillow's logger) in {len(logged)} loader cases"
              + (f", e.g. {logged[0].case_id}." if logged else "."))
    print(f"\n## CLIs: `adain stylize`, `warpstyle run` ({len(cli)} cases, {t_cli:.0f} s)\n")
    if cli:
        print(markdown_table(summarize(cli),
                             lambda c: f"{base} --loader-cases 0 --cli-cases {args.cli_cases} --category {c}"))
        targets: dict[str, int] = {}
        for r in cli:
            targets[r.target] = targets.get(r.target, 0) + 1
        print("\nCalls per program (slot): " + ", ".join(f"{k} {v}" for k, v in sorted(targets.items())))
        print(f"Peak RSS of one CLI call: {max(r.rss_kb for r in cli) / 1024:.0f} MiB (limit {args.cli_rss_limit_mib} MiB).")
    fails = [r for r in loader + cli if r.outcome == "fail"]
    print(f"\nWall time {time.perf_counter() - t0:.0f} s; {len(fails)} failures.{cats and ' Categories:' + cats}")
    for r in fails[:50]:
        print(f"- FAIL {r.target} {r.case_id} [{r.name}]: {r.detail}")
    if args.json:
        args.json.write_text(json.dumps({
            "seed": args.seed, "loader_cases": args.loader_cases, "cli_cases": args.cli_cases,
            "loader_summary": summarize(loader), "cli_summary": summarize(cli), "memory": mem,
            "seconds": {"loader": t_loader, "cli": t_cli},
            "outcomes": [r.as_dict() for r in loader + cli]}, indent=1) + "\n")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
