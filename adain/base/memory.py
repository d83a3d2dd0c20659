"""Pre-flight memory check for large outputs: refuse early, with advice, rather than be OOM-killed.

The estimate is linear in the output's pixels and was calibrated on CPU by
``benchmarks/bench_memory_4k.py`` (measured peak RSS of ``adain stylize`` and ``warpstyle run`` at
3840x2160, see docs/reliability.md). It covers the finest pass of the coarse-to-fine schedule, which
dominates: VGG-19 to relu4_1 and the decoder at full resolution, whose 64-channel layers hold
several full-size activations at once. The check only runs on CPU; on CUDA the allocator's own
out-of-memory error is caught by the CLI, which prints the same advice.
"""

from __future__ import annotations

from pathlib import Path

from .errors import StyleTransferError

__all__ = ["estimate_stylize_bytes", "available_bytes", "check_memory", "MEMORY_ADVICE"]

#: Models, libraries and interpreter (measured: about 0.9 GiB RSS before the first pass).
_BASE_BYTES = 1.0 * 2**30
#: Peak bytes per output pixel of the finest pass, measured peak RSS of ``adain stylize --size 3840``
#: of a 3840x2160 content (8.29 MP), plus about 8 % margin. bf16: 4.66 GiB, (4.66 - 1.0) GiB / 8.29 MP
#: = 474 B/px. fp32 (``--fp32``): 6.56 GiB, 720 B/px.
_BYTES_PER_PIXEL = {True: 520, False: 780}  # bf16 (the CPU default), fp32
#: alpha < 1 encodes the content once more per pass (its features are kept for the blend). The 4K
#: ``warpstyle run`` (alpha 0.8) measured 464 B/px, so this is margin rather than a measured need.
_ALPHA_EXTRA = 1.10

MEMORY_ADVICE = "try a smaller output size, e.g. --size 2048 (the finest pass decides the peak; --scales does not lower it)"


def estimate_stylize_bytes(hw: tuple[int, int], *, alpha: float = 1.0, bf16: bool = True) -> int:
    """Estimated peak process memory (bytes) of stylizing to an ``(H, W)`` output on CPU.

    Example:
        >>> round(estimate_stylize_bytes((2160, 3840)) / 2**30, 1)
        5.0
    """
    h, w = hw
    per_px = _BYTES_PER_PIXEL[bool(bf16)] * (_ALPHA_EXTRA if alpha < 1 else 1.0)
    return int(_BASE_BYTES + per_px * h * w)


def available_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes, or None where there is no such file (not Linux)."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(hw: tuple[int, int], *, alpha: float = 1.0, bf16: bool = True, advice: str = MEMORY_ADVICE,
                 available: int | None = None) -> None:
    """Raise :class:`StyleTransferError` when the estimate for ``hw`` exceeds the available memory.

    Args:
        hw: output ``(H, W)`` of the finest pass.
        alpha, bf16: as passed to ``Styler.stylize``.
        advice: what to suggest (the CLI's option names).
        available: bytes available; default: ``MemAvailable`` (no check when unknown).
    """
    avail = available_bytes() if available is None else available
    if avail is None:
        return
    need = estimate_stylize_bytes(hw, alpha=alpha, bf16=bf16)
    # The estimate already holds the interpreter and models, which are resident by now, so
    # MemAvailable undercounts what we have by about _BASE_BYTES: compare the increments.
    if need - _BASE_BYTES > avail:
        raise StyleTransferError(
            f"a {hw[1]}x{hw[0]} output needs about {need / 2**30:.1f} GiB of memory but only "
            f"{avail / 2**30:.1f} GiB is available; {advice}"
        )
