"""Opt-in, process-wide CPU settings for applications that run many inferences (our CLIs call them)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys

import torch

__all__ = ["tune_cpu_allocator", "TUNED_MAX_SIDE", "cpu_has_fast_bf16", "default_bf16", "training_bf16",
           "bf16_autocast"]

#: The CLIs tune the allocator for outputs up to this longer side (px). Measured peak RSS, tuned
#: against glibc's default: the same at 512 px, +0.3 to 0.6 GiB at 1024 px, +2.0 to 2.5 GiB at 2048 px.
TUNED_MAX_SIDE = 1024

# glibc mallopt() parameters, from <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD_BYTES = 2**31 - 1  # the largest value the C int parameter takes


def tune_cpu_allocator() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    Why: glibc serves every block above 32 MiB with a fresh ``mmap`` and unmaps it on free. A
    ``(1, 64, 512, 512)`` activation is such a block, so by default each VGG or decoder layer at full
    resolution page-faults its output in anew: about 200,000 page faults and 0.4 s of kernel time per
    512 px stylization on a 2-core CPU, a quarter of the run. With ``mmap`` off and heap trimming
    only above 2 GiB, freed blocks are reused (``benchmarks/bench_stylize.py`` shows both).

    Trade-off: freed blocks that a larger one cannot reuse stay in the heap, so the peak grows with
    the output: unchanged at 512 px, +0.3 to 0.6 GiB at 1024 px, +2.0 to 2.5 GiB (about double) at 2048 px; the
    process also keeps its heap until it exits. So this is for applications, never done on import.
    The CLIs use it for training and for outputs up to :data:`TUNED_MAX_SIDE`, where the measured
    peak stays under 2 GiB (1.8 GiB for ``adain stylize``, 1.7 GiB for ``warpstyle run`` at 1024 px,
    0.3 to 0.6 GiB above the default-allocator figures that ``adain.base.memory`` is calibrated on).
    Above it they keep glibc's default, so the large-output figures and pre-flight checks hold.
    It only affects later allocations, and calling it again changes nothing.

    Returns:
        True where applied (Linux with glibc); False elsewhere, with nothing changed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname; musl and others raise OSError here
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; both settings are needed for freed blocks to be reused.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (AVX512-BF16/AMX, or AVX512BW+VL+DQ for oneDNN).

    Without that, oneDNN refuses fused bf16 convolutions and PyTorch emulates bf16 ones, measured
    about 200x slower than float32 on an AVX2-only EPYC, so bf16 must never be a default there.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def default_bf16(device: torch.device | str) -> bool:
    """The one bf16 policy of both stages: on for a CPU with native bf16 (about 2x faster), else off.

    CUDA stays float32 by default: bf16 changes the look slightly and the GPU is fast enough.
    """
    return torch.device(device).type == "cpu" and cpu_has_fast_bf16()


def training_bf16(device: torch.device | str, requested: bool) -> bool:
    """The trainers' reading of their config key ``bf16`` (on by default): ``requested``, except on a
    CPU without native bf16, where it is off (float32), since emulated bf16 would make training about
    200x slower. Resolved once per run and handed to :func:`bf16_autocast`.
    """
    return bool(requested) and (torch.device(device).type != "cpu" or cpu_has_fast_bf16())


def bf16_autocast(device: torch.device | str, enabled: bool) -> contextlib.AbstractContextManager:
    """The one bf16 autocast of both stages: ``torch.autocast(device.type, dtype=torch.bfloat16)``
    when ``enabled``, else a no-op context.

    ``enabled`` is taken as given, on every device: the callers resolve their defaults first
    (:func:`default_bf16` for inference, :func:`training_bf16` for training). So an explicit bf16
    request (``--bf16``, ``bf16=True``) on a CPU without native bf16 runs under bf16 autocast too,
    with PyTorch emulating bf16: it works, with bf16's results, but about 200x slower than float32.
    """
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
