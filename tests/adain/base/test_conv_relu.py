import pytest
import torch
import torch.nn.functional as F

import adain.base.encoder.conv_relu as conv_relu_module
from adain.base.encoder.conv_relu import conv2d_relu, fused_conv_relu_available

from adain.base.runtime import cpu_has_fast_bf16

needs_fused = pytest.mark.skipif(not fused_conv_relu_available(), reason="this PyTorch build has no fused oneDNN op")
needs_bf16 = pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16 (oneDNN refuses it)")


def _inputs(dtype: torch.dtype, channels_last: bool, *, bias: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 8, 13, 11, generator=g).to(dtype).contiguous(memory_format=fmt)
    w = (0.2 * torch.randn(16, 8, 3, 3, generator=g)).to(dtype).contiguous(memory_format=fmt)
    b = (0.1 * torch.randn(16, generator=g)).to(dtype) if bias else None
    return x, w, b


def _reference(x, w, b, padding):
    return F.relu(F.conv2d(x, w, b, padding=padding))


@pytest.fixture()
def spy(monkeypatch):
    """Count the calls that reach the fused operator."""
    calls = []
    real = conv_relu_module._FUSED

    def fused(*args):
        calls.append(args[0].dtype)
        return real(*args)

    monkeypatch.setattr(conv_relu_module, "_FUSED", fused)
    return calls


@needs_fused
@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=needs_bf16)])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_equals_conv_then_relu(dtype, channels_last, padding, bias, spy):
    x, w, b = _inputs(dtype, channels_last, bias=bias)
    with torch.no_grad():
        got = conv2d_relu(x, w, b, padding=padding)
        want = _reference(x, w, b, padding)
    assert spy == [dtype]  # the fused path ran
    assert got.shape == want.shape == (2, 16, 13 - 2 + 2 * padding, 11 - 2 + 2 * padding)
    assert got.dtype == dtype
    assert bool((got >= 0).all())
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


@needs_fused
@needs_bf16
def test_fused_under_autocast_matches_autocast_conv(spy):
    x, w, b = _inputs(torch.float32, True)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = conv2d_relu(x, w, b, padding=1)
        want = _reference(x, w, b, 1)
    assert spy == [torch.bfloat16]  # cast as autocast casts conv2d's inputs, then fused
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), atol=2e-2, rtol=2e-2)


def test_gradients_take_the_plain_path(spy):
    x, w, b = _inputs(torch.float32, False)
    x.requires_grad_(True)
    w.requires_grad_(True)
    out = conv2d_relu(x, w, b, padding=1)
    assert spy == []  # the fused op has no autograd formula
    out.square().sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    _reference(x, w, b, 1).square().sum().backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


def test_grad_enabled_without_leaves_needing_grad_can_fuse(spy):
    x, w, b = _inputs(torch.float32, True)  # e.g. a frozen encoder outside no_grad
    out = conv2d_relu(x, w, b, padding=1)
    assert out.grad_fn is None
    assert spy == ([torch.float32] if fused_conv_relu_available() else [])


def test_float64_and_missing_operator_fall_back(monkeypatch):
    x, w, b = _inputs(torch.float64, False)
    with torch.no_grad():
        torch.testing.assert_close(conv2d_relu(x, w, b, padding=1), _reference(x, w, b, 1))
    monkeypatch.setattr(conv_relu_module, "_FUSED", None)
    assert not fused_conv_relu_available()
    x, w, b = _inputs(torch.float32, True)
    with torch.no_grad():
        torch.testing.assert_close(conv2d_relu(x, w, b, padding=1), _reference(x, w, b, 1))


def test_bf16_without_native_support_takes_the_plain_path(spy, monkeypatch):
    # oneDNN raises on fused bf16 convolutions on CPUs without AVX512; conv2d_relu must not go there.
    monkeypatch.setattr(conv_relu_module, "cpu_has_fast_bf16", lambda: False)
    x, w, b = _inputs(torch.bfloat16, True)
    with torch.no_grad():
        got = conv2d_relu(x, w, b, padding=1)
    assert spy == []
    assert torch.equal(got, _reference(x, w, b, 1))


@needs_fused
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace is deprecated upstream
def test_tracing_takes_the_plain_path(spy):
    # The fused oneDNN op cannot be recorded ("unsupported input list type: Scalar?").
    x, w, b = _inputs(torch.float32, False)
    with torch.no_grad():
        traced = torch.jit.trace(lambda t: conv2d_relu(t, w, b, padding=1), (x,), check_trace=False)
        got = traced(x)
    assert spy == []
    assert "mkldnn" not in str(traced.graph) and "aten::relu" in str(traced.graph)
    torch.testing.assert_close(got, _reference(x, w, b, 1))


@needs_fused
def test_compiling_takes_the_plain_path_in_one_graph(spy):
    # Under torch.compile the per-call grad/autocast/dtype branches would cost guards and recompiles.
    import torch._dynamo

    x, w, b = _inputs(torch.float32, True)
    with torch.no_grad():
        report = torch._dynamo.explain(conv2d_relu)(x, w, b, 1)
    assert spy == []
    assert report.graph_count == 1 and report.graph_break_count == 0
