"""Pre-flight memory check for large outputs: refuse early, with advice, rather than be OOM-killed.

The estimate is linear in the output's pixels and was calibrated on CPU by
``benchmarks/bench_memory_4k.py`` (measured peak RSS of ``adain stylize`` and ``warpstyle run`` at
3840x2160, see docs/reliability.md). It covers the finest pass of the coarse-to-fine schedule, which
dominates: VGG-19 to relu4_1 and the decoder at full resolution, whose 64-channel layers hold
several full-size activations at once. The check only runs on CPU; on CUDA the allocator's own
out-of-memory error is caught by the CLI, which prints the same advice.

Style images count too: each pass resizes every style to the pass's longer side, so at the finest
pass a style is encoded at the *output's* longer side whatever the output's shape (a 6000x60
output encodes a square style at 6000x6000). Encodings run one after the other, so the peak is the
larger of the content pass and the largest style encoding plus the cached style features.

Large outputs run in tiles (``adain.styler``: passes over 1 MP, issue 31): then the peak is one
tile's pass plus a few full-size RGB images (:func:`estimate_tiled_bytes`), and ``Styler.preflight``
picks the largest tile that fits instead of refusing; only a run that cannot be tiled (masks, the
refinement) is refused on the whole-image estimate.

Without a texture (warp only, or a plain resize) there is no VGG pass at full size; the peak is the
content, the field resized to the output and the warped output, with their float copies.

Inputs count before any of that: :func:`check_decode_memory` reads each input's header (width,
height, mode; nothing is decoded) and refuses, naming the file, an input whose decode cannot fit
beside the inputs decoded before it (:func:`adain.base.image.decode_cost`: one full-size decode in
Pillow's layout, then the image at its working size).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import ImageError, StyleTransferError
from .imagefile import decode_cost, fit_longer, no_memory_reason  # torch-free: the onnx engine checks too

__all__ = ["estimate_stylize_bytes", "estimate_tiled_bytes", "estimate_warp_bytes", "available_bytes", "check_memory",
           "check_decode_memory", "MEMORY_ADVICE", "MODELS_BYTES"]

#: Models, libraries and interpreter (measured: about 0.9 GiB RSS before the first pass).
_BASE_BYTES = 1.0 * 2**30
#: Peak bytes per output pixel of the finest pass, measured peak RSS of ``adain stylize --size 3840``
#: of a 3840x2160 content (8.29 MP), plus about 8 % margin. bf16: 4.66 GiB, (4.66 - 1.0) GiB / 8.29 MP
#: = 474 B/px. fp32 (``--fp32``): 6.56 GiB, 720 B/px.
_BYTES_PER_PIXEL = {True: 520, False: 780}  # bf16 (the CPU default), fp32
#: alpha < 1 encodes the content once more per pass (its features are kept for the blend). The 4K
#: ``warpstyle run`` (alpha 0.8) measured 464 B/px, so this is margin rather than a measured need.
_ALPHA_EXTRA = 1.10

#: Peak bytes per pixel of encoding one style to relu4_1 (VGG-19 only, no decoder), over the loaded
#: models. fp32, measured on the 2-core development CPU (torch 2.14.1): a bare ``_encode`` took 558 and
#: 541 B/px at 1024x1024 and 1448x1448 (default allocator, as outputs over 1024 px run); ``adain
#: stylize`` of a 1024x10 content with a 256x256 style at ``--size 1024`` (tuned allocator, the style
#: encoded at 1024x1024) peaked at 1.41 GiB RSS against 0.75 GiB at ``--size 128``: 672 B/px, which
#: 640 plus the cache below covers. bf16 could not be measured on this AVX2-only CPU: scaled by the
#: content pass's bf16/fp32 ratio (520/780); the 4K bf16 run of docs/reliability.md (4.66 GiB with
#: a 3840x2400 style) bounds it at 438 B/px.
_STYLE_BYTES_PER_PIXEL = {True: 430, False: 640}
#: relu4_1 features cached per style pixel: 512 channels at 1/8 x 1/8 in float32 (32 B/px), over all
#: passes of the halving schedule (1 + 1/4 + 1/16 + ... < 4/3). Since 2026-12 the style bank keeps only
#: channel statistics, so this (and the skip taps' cache term below) is margin until the 4K run is re-measured.
_STYLE_CACHE_BYTES_PER_PIXEL = 43
#: A decoder with skip inputs also keeps these taps, float32 bytes per image pixel (channels over the
#: tap's area: relu3_1 256 / 16 x 4 B). At the content pass's peak (the guided schedule's second
#: encoding at full size) two copies are alive: the content's taps, held for the blend, and the
#: encoder's own, which it returns rather than frees. Measured, fp32, 2048x2048 output, peak RSS
#: sampled every 5 ms: 6.41 GiB with relu3_1 + relu2_1 + relu1_1 skips against 3.22 GiB for the
#: plain decoder, 817 B/px more = 1.8 copies of the taps' 448 B/px (2026-12, after the decoder's
#: full-resolution layers began to run in row bands). bf16 runs keep features in float32 too.
_SKIP_TAP_BYTES_PER_PIXEL = {"relu3_1": 64, "relu2_1": 128, "relu1_1": 256}
_SKIP_COPIES = 2
#: alpha < 1 without the fold (several passes, or masks) keeps the content's taps beside the features
#: being stylized and the targets: counted as one more copy, not measured.
_SKIP_COPIES_ALPHA = 3
#: Peak bytes per output pixel without a texture (warp only or resize), over the loaded models:
#: ``warpstyle run -c kodim... -g juan-gris... --size 4096`` (a 4096x3195 output) peaked at 1.21 GB RSS
#: against 0.86 GB at ``--size 256``: 27 B/px; issue 15 reports 7.9 GB at 16384 px (16384x12780,
#: about 34 B/px: the float output, the full-size field, their uint8 and PNG copies). Plus margin.
_WARP_BYTES_PER_PIXEL = 36

#: A tiled run (``Styler``'s tiles) holds, beside one tile's features, a few full-size RGB float images:
#: the input pass image, the upsampled coarser result, the blended output, the pipeline's warped image
#: and applied field, and the output's copies on the way to the file (12 B/px each in float32).
#: An estimate to be checked against the 8K run of benchmarks/bench_memory_4k.py (docs/speed.md).
_TILED_BYTES_PER_PIXEL = 96

#: The three models' weights and buffers, for a check made before they load: ``Pipeline.from_pretrained``
#: raised the RSS by 0.27 GiB after torch was imported (2-core development machine, torch 2.14.1).
MODELS_BYTES = int(0.3 * 2**30)

MEMORY_ADVICE = "try a smaller output size, e.g. --size 2048 (the finest pass decides the peak; --scales does not lower it)"


#: Refinement (``refine_steps``): VGG-19 activations kept for the backward pass in float32, plus their
#: gradients. Measured peak RSS of ``stylize(..., refine_steps=2)``, fp32: 1.76 GiB at 512x512 and
#: 2.8 GiB at 768x768, so 3.4 KB per added pixel; plus 8 %.
_REFINE_BYTES_PER_PIXEL = 3700


def estimate_stylize_bytes(hw: tuple[int, int], *, alpha: float = 1.0, bf16: bool = True,
                           styles: Sequence[tuple[int, int]] = (), refine: bool = False,
                           skips: Sequence[str] = ()) -> int:
    """Estimated peak process memory (bytes) of stylizing to an ``(H, W)`` output on CPU.

    Args:
        hw: output ``(H, W)`` of the finest pass.
        alpha, bf16: as passed to ``Styler.stylize``.
        styles: ``(H, W)`` of each style image as given; each is encoded at the output's longer side.
        refine: ``refine_steps > 0``: the refinement back-propagates through VGG-19 in float32 at the
            output's size (:data:`_REFINE_BYTES_PER_PIXEL`).
        skips: the decoder's skip taps (``Decoder.skips``), whose features are held beside relu4_1's.

    Example:
        >>> round(estimate_stylize_bytes((2160, 3840)) / 2**30, 1)
        5.0
        >>> round(estimate_stylize_bytes((60, 6000), styles=[(512, 512)]) / 2**30, 1)
        16.9
    """
    h, w = hw
    skip_px = sum(_SKIP_TAP_BYTES_PER_PIXEL[t] for t in skips)
    copies = _SKIP_COPIES_ALPHA if alpha < 1 else _SKIP_COPIES
    per_px = _BYTES_PER_PIXEL[bool(bf16)] * (_ALPHA_EXTRA if alpha < 1 else 1.0) + copies * skip_px
    style_px = [a * b for a, b in (fit_longer(s, max(h, w)) for s in styles)]
    # The content pass's calibration already holds the cached features of a style of about its size.
    cache_px = _STYLE_CACHE_BYTES_PER_PIXEL + skip_px * 4 / 3
    style_peak = _STYLE_BYTES_PER_PIXEL[bool(bf16)] * max(style_px, default=0) + cache_px * sum(style_px) \
        + skip_px * max(style_px, default=0)
    if refine:
        per_px = max(per_px, _REFINE_BYTES_PER_PIXEL)
    return int(_BASE_BYTES + max(per_px * h * w, style_peak))


def estimate_tiled_bytes(hw: tuple[int, int], tile: int, *, margin: int, alpha: float = 1.0, bf16: bool = True,
                         skips: Sequence[str] = ()) -> int:
    """Estimated peak process memory (bytes) of stylizing to ``(H, W)`` on CPU in tiles of core side
    ``tile`` with ``margin`` px of context: one tile's pass (content or style, whichever is larger;
    styles are encoded in tiles too) plus the full-size images (:data:`_TILED_BYTES_PER_PIXEL`).

    Example:
        >>> round(estimate_tiled_bytes((4320, 7680), 1024, margin=96) / 2**30, 1)
        4.7
    """
    th, tw = min(hw[0], tile + 2 * margin), min(hw[1], tile + 2 * margin)
    per_tile = estimate_stylize_bytes((th, tw), alpha=alpha, bf16=bf16, styles=[(th, tw)], skips=skips) - _BASE_BYTES
    return int(_BASE_BYTES + per_tile + _TILED_BYTES_PER_PIXEL * hw[0] * hw[1])


def estimate_warp_bytes(hw: tuple[int, int]) -> int:
    """Estimated peak process memory (bytes) of a run without texture (warp or resize) to ``(H, W)`` on CPU.

    Example:
        >>> round(estimate_warp_bytes((16384, 16384)) / 2**30, 1)
        10.0
    """
    h, w = hw
    return int(_BASE_BYTES + _WARP_BYTES_PER_PIXEL * h * w)


def available_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes, or None where there is no such file (not Linux)."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(hw: tuple[int, int], *, alpha: float = 1.0, bf16: bool = True,
                 styles: Sequence[tuple[int, int]] | None = (), refine: bool = False, advice: str = MEMORY_ADVICE,
                 available: int | None = None, skips: Sequence[str] = (), tile: int | None = None,
                 margin: int = 0) -> None:
    """Raise :class:`StyleTransferError` when the estimate for ``hw`` exceeds the available memory.

    Args:
        hw: output ``(H, W)`` of the finest pass.
        alpha, bf16, refine, skips: as for :func:`estimate_stylize_bytes`.
        styles: ``(H, W)`` of each style image (see :func:`estimate_stylize_bytes`); None: no
            texture, so the warp-only estimate (:func:`estimate_warp_bytes`) applies.
        advice: what to suggest (the CLI's option names).
        available: bytes available; default: ``MemAvailable`` (no check when unknown).
        tile, margin: a tiled run's core side and context (:func:`estimate_tiled_bytes`); None: whole image.
    """
    avail = available_bytes() if available is None else available
    if avail is None:
        return
    if styles is None:
        need = estimate_warp_bytes(hw)
    elif tile:
        need = estimate_tiled_bytes(hw, tile, margin=margin, alpha=alpha, bf16=bf16, skips=skips)
    else:
        need = estimate_stylize_bytes(hw, alpha=alpha, bf16=bf16, styles=styles, refine=refine, skips=skips)
    # The estimate already holds the interpreter and models, which are resident by now, so
    # MemAvailable undercounts what we have by about _BASE_BYTES: compare the increments.
    if need - _BASE_BYTES > avail:
        big_style = styles and not tile and estimate_stylize_bytes(hw, alpha=alpha, bf16=bf16, skips=skips) < need / 2
        why = (" (the style images are encoded at the output's longer side, "
               f"{max(hw)} px)" if big_style else "")
        why = why or (f" even in {tile} px tiles" if tile else "")
        raise StyleTransferError(
            f"a {hw[1]}x{hw[0]} output needs about {need / 2**30:.1f} GiB of memory{why} but only "
            f"{avail / 2**30:.1f} GiB is available; {advice}"
        )


def check_decode_memory(images: Sequence[tuple[str | os.PathLike, int | None]], *, extra: int = 0,
                        available: int | None = None) -> None:
    """Refuse, before anything is decoded, a run whose input images cannot be decoded in the available memory.

    The images are decoded in turn, each kept at its working size while the next decodes, so input
    ``i`` needs its own decode peak plus the results of those before it (plus ``extra``).

    Args:
        images: ``(path, working_size)`` of each input file, in the order the run decodes them
            (``working_size`` as passed to :func:`adain.base.image.load_image`).
        extra: bytes the run will hold beside them by then (e.g. :data:`MODELS_BYTES` when the
            models load first).
        available: bytes available; default: ``MemAvailable`` (no check when unknown).

    Raises:
        ImageError: ``cannot read 'x.png': not enough memory to decode its 8000x8000 pixels (about
            1.2 GiB, 0.8 GiB available); ...``, naming the first input that does not fit; or what
            :func:`adain.base.image.load_image` would raise for an unreadable file.
    """
    avail = available_bytes() if available is None else available
    if avail is None:
        return
    kept = extra
    for path, working_size in images:
        cost = decode_cost(path, working_size=working_size)
        if kept + cost.peak_bytes > avail:
            raise ImageError(cost.path, no_memory_reason(cost.size, kept + cost.peak_bytes, avail))
        kept += cost.result_bytes
