"""Convolution followed by ReLU, as one oneDNN call on CPU at inference time.

Eager PyTorch runs ``relu(conv2d(x))`` as two passes over the output; oneDNN can apply the ReLU
as a post-op while the convolution writes its result. Measured on the 2-core CPU (bf16, channels
last, interleaved in one process): about 30 ms, 2 %, off a 512 px ``warpstyle`` run, whose 85
convolutions take about 1.4 s. The pipeline's pixels at 300 and 512 px, bf16 and fp32, are the
same bits as with the two-op path, which runs the same oneDNN convolution there; for tiny fp32
inputs PyTorch may pick another algorithm for ``conv2d``, and the two differ in the last bits.

The fused operator (``torch.ops.mkldnn._convolution_pointwise``, the one TorchInductor emits for
CPU) has no autograd formula, so the fused path is taken only when no gradient is needed, on CPU,
for float32 or bfloat16; every other case (training, CUDA, float16, a PyTorch build without it)
runs the plain ``conv2d`` + ``relu``.

Graph capture also takes the plain path: ``torch.jit.trace`` and the ONNX exporter cannot record
the oneDNN op ("unsupported input list type: Scalar?"), and under ``torch.compile`` its per-call
branches on grad mode, autocast and dtype cost guards and recompiles, while Inductor fuses
``conv2d`` + ``relu`` itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..runtime import cpu_has_fast_bf16

try:
    from torch.compiler import is_compiling as _is_compiling
except ImportError:  # torch < 2.3
    from torch._dynamo import is_compiling as _is_compiling

__all__ = ["conv2d_relu", "fused_conv_relu_available", "capturing_graph"]


def _fused_op() -> object | None:
    try:
        return torch.ops.mkldnn._convolution_pointwise.default
    except (AttributeError, RuntimeError):  # a build without oneDNN or a future rename
        return None


_FUSED = _fused_op()
_FUSED_DTYPES = (torch.float32, torch.bfloat16)


def fused_conv_relu_available() -> bool:
    """Whether :func:`conv2d_relu` can take the fused path in this PyTorch build."""
    return _FUSED is not None and torch.backends.mkldnn.is_available() and bool(torch.backends.mkldnn.enabled)


def capturing_graph() -> bool:
    """Whether a tracer, exporter or compiler is recording this call rather than running it."""
    # is_compiling first: Dynamo folds it to a constant, so the other two are never traced.
    return bool(_is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _autocast(t: torch.Tensor) -> torch.Tensor:
    # Autocast's rule for conv2d: floating tensors other than float64 go to the autocast dtype.
    return t.to(torch.get_autocast_dtype("cpu")) if t.is_floating_point() and t.dtype != torch.float64 else t


def conv2d_relu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, padding: int = 0
) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias, padding=padding))`` with stride 1, fused where possible.

    Under CPU autocast to bf16 the inputs are cast as autocast would cast them for ``conv2d``.

    Args:
        x: ``(B, C_in, H, W)``.
        weight: ``(C_out, C_in, k, k)``.
        bias: ``(C_out,)`` or None.
        padding: zero padding on each side.

    Returns:
        ``(B, C_out, H + 2 * padding - k + 1, W + 2 * padding - k + 1)``, non-negative.

    Example:
        >>> conv2d_relu(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), padding=1).shape
        torch.Size([1, 4, 8, 8])
    """
    if capturing_graph():
        return F.relu(F.conv2d(x, weight, bias, padding=padding))
    if x.device.type == "cpu" and x.dim() == 4 and not _needs_grad(x, weight, bias) and fused_conv_relu_available():
        if torch.is_autocast_enabled("cpu"):
            x, weight = _autocast(x), _autocast(weight)
            bias = None if bias is None else _autocast(bias)
        if (x.dtype in _FUSED_DTYPES and weight.dtype == x.dtype and (bias is None or bias.dtype == x.dtype)
                and (x.dtype == torch.float32 or cpu_has_fast_bf16())):  # oneDNN refuses bf16 without AVX512
            pad = [int(padding)] * 2
            return _FUSED(x, weight, bias, pad, [1, 1], [1, 1], 1, "relu", [], "")  # type: ignore[operator]
    return F.relu(F.conv2d(x, weight, bias, padding=padding), inplace=True)  # the conv output has no other user
