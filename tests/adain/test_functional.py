import pytest
import torch

from adain.functional import (
    adain_to_stats,
    adaptive_instance_norm,
    calc_mean_std,
    luminance_transfer,
    match_color,
    rgb_to_yuv,
    yuv_to_rgb,
)

EPS = 1e-5


def _feats(*shape: int, seed: int = 0, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale + shift


# ---------------------------------------------------------------- calc_mean_std


def test_calc_mean_std_cardinality():
    m, s = calc_mean_std(torch.rand(2, 5, 6, 7))
    assert m.shape == s.shape == (2, 5, 1, 1)
    assert m.dtype == s.dtype == torch.float32


def test_calc_mean_std_known_answer():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    m, s = calc_mean_std(x)
    assert float(m) == 2.5
    assert torch.allclose(s, torch.tensor(1.25 + EPS).sqrt().view(1, 1, 1, 1))  # population variance


def test_calc_mean_std_half_input_computes_in_float32():
    x = _feats(1, 4, 8, 8).to(torch.bfloat16)
    m, s = calc_mean_std(x)
    assert m.dtype == torch.float32
    ref_m, ref_s = calc_mean_std(x.float())
    assert torch.equal(m, ref_m) and torch.equal(s, ref_s)


def test_calc_mean_std_keeps_float64():
    m, s = calc_mean_std(_feats(1, 2, 3, 3).double())
    assert m.dtype == s.dtype == torch.float64


def test_masked_statistics_use_only_the_region():
    x = _feats(1, 3, 4, 6)
    mask = torch.zeros(1, 1, 4, 6)
    mask[..., :, :2] = 1.0
    m, s = calc_mean_std(x, mask)
    ref_m, ref_s = calc_mean_std(x[..., :, :2])
    assert torch.allclose(m, ref_m, atol=1e-6) and torch.allclose(s, ref_s, atol=1e-6)


def test_masked_statistics_weighted_and_all_ones():
    x = _feats(2, 3, 4, 4)
    m, s = calc_mean_std(x, torch.ones(2, 1, 4, 4))
    ref_m, ref_s = calc_mean_std(x)
    assert torch.allclose(m, ref_m, atol=1e-6) and torch.allclose(s, ref_s, atol=1e-6)
    # A constant weight below one is the same region.
    m2, s2 = calc_mean_std(x, torch.full((2, 1, 4, 4), 0.25))
    assert torch.allclose(m2, ref_m, atol=1e-6) and torch.allclose(s2, ref_s, atol=1e-6)


def test_empty_mask_does_not_divide_by_zero():
    m, s = calc_mean_std(_feats(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))
    assert torch.isfinite(m).all() and torch.isfinite(s).all()


def test_calc_mean_std_gradcheck():
    x = _feats(1, 2, 3, 3).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: calc_mean_std(t), (x,))
    mask = torch.rand(1, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.autograd.gradcheck(lambda t: calc_mean_std(t, mask), (x,))


# ---------------------------------------------------------------- AdaIN


def test_adain_smoke_and_shape():
    out = adaptive_instance_norm(_feats(2, 8, 4, 5), _feats(2, 8, 7, 3, seed=1))
    assert out.shape == (2, 8, 4, 5) and out.dtype == torch.float32


def test_adain_output_takes_the_style_statistics():
    content = _feats(2, 16, 8, 8, scale=3.0, shift=-1.0)
    style = _feats(2, 16, 6, 10, seed=1, scale=0.5, shift=2.0)
    out = adaptive_instance_norm(content, style)
    o_m, o_s = calc_mean_std(out)
    s_m, s_s = calc_mean_std(style)
    assert torch.allclose(o_m, s_m, atol=1e-5)
    assert torch.allclose(o_s, s_s, atol=1e-4)


def test_adain_with_itself_is_identity():
    x = _feats(1, 8, 5, 5, scale=2.0)
    assert torch.allclose(adaptive_instance_norm(x, x), x, atol=1e-5)


def test_adain_content_mask_normalises_by_region():
    content = _feats(1, 4, 6, 6)
    content[..., :, 3:] = content[..., :, 3:] * 5 + 3  # right half has other statistics
    style = _feats(1, 4, 6, 6, seed=2, scale=0.3, shift=1.0)
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., :, :3] = 1.0
    out = adaptive_instance_norm(content, style, content_mask=mask)
    # The masked region takes the style's statistics; the whole image does not.
    o_m, o_s = calc_mean_std(out, mask)
    s_m, s_s = calc_mean_std(style)
    assert torch.allclose(o_m, s_m, atol=1e-5) and torch.allclose(o_s, s_s, atol=1e-4)
    assert not torch.allclose(calc_mean_std(out)[0], s_m, atol=1e-2)


def test_adain_gradcheck():
    c = _feats(1, 2, 3, 3).double().requires_grad_()
    s = _feats(1, 2, 2, 2, seed=1).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: adaptive_instance_norm(a, b), (c, s))


# ---------------------------------------------------------------- colour


def _cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = x.double().reshape(x.shape[0], 3, -1)
    mean = f.mean(-1, keepdim=True)
    c = f - mean
    return mean, c @ c.transpose(1, 2) / f.shape[-1]


def test_match_color_gives_target_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    # Mid-range colours with a non-trivial covariance, so nothing is clamped.
    source = (0.5 + 0.1 * torch.randn(1, 3, 24, 24, generator=g)).clamp(0, 1)
    mix = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]])
    target = (0.4 + 0.08 * torch.einsum("oc,bchw->bohw", mix, torch.randn(1, 3, 20, 20, generator=g))).clamp(0, 1)
    out = match_color(source, target)
    assert out.shape == source.shape and out.dtype == source.dtype
    assert float(out.min()) > 0 and float(out.max()) < 1  # no clamping happened
    o_mean, o_cov = _cov(out)
    t_mean, t_cov = _cov(target)
    assert torch.allclose(o_mean, t_mean, atol=1e-4)
    assert torch.allclose(o_cov, t_cov, atol=2e-4)


def test_match_color_output_range():
    out = match_color(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_yuv_round_trip_and_luma():
    x = torch.rand(2, 3, 5, 5)
    assert torch.allclose(yuv_to_rgb(rgb_to_yuv(x)), x, atol=1e-5)
    y = rgb_to_yuv(torch.ones(1, 3, 1, 1))
    assert torch.allclose(y.flatten(), torch.tensor([1.0, 0.0, 0.0]), atol=1e-4)  # white: Y=1, no chroma


def test_luminance_transfer_keeps_stylized_luma_and_content_chroma():
    g = torch.Generator().manual_seed(0)
    stylized = 0.3 + 0.4 * torch.rand(1, 3, 8, 8, generator=g)
    content = 0.45 + 0.1 * torch.rand(1, 3, 8, 8, generator=g)
    out = luminance_transfer(stylized, content)
    assert out.shape == stylized.shape
    yo, ys, yc = rgb_to_yuv(out), rgb_to_yuv(stylized), rgb_to_yuv(content)
    assert torch.allclose(yo[:, :1], ys[:, :1], atol=1e-5)
    assert torch.allclose(yo[:, 1:], yc[:, 1:], atol=1e-5)


def test_luminance_transfer_clamps():
    out = luminance_transfer(torch.ones(1, 3, 2, 2), torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2))
    assert float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 7.8e-3)])
def test_adain_dtypes(dtype, tol):
    c, s = _feats(1, 8, 6, 6).to(dtype), _feats(1, 8, 6, 6, seed=1, scale=2.0).to(dtype)
    out = adaptive_instance_norm(c, s)
    assert out.dtype == torch.float32
    ref = adaptive_instance_norm(c.float(), s.float())
    assert torch.allclose(out, ref, atol=tol * float(ref.abs().max()))


def test_adain_to_stats_gives_the_stats_and_equals_adain_from_features():
    torch.manual_seed(0)
    c, s = torch.rand(2, 5, 7, 9) * 3, torch.rand(1, 5, 4, 6) + 1
    mean, std = calc_mean_std(s)
    out = adain_to_stats(c, mean, std)
    torch.testing.assert_close(out, adaptive_instance_norm(c, s))
    m_out, s_out = calc_mean_std(out)
    torch.testing.assert_close(m_out, mean.expand_as(m_out), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_out, std.expand_as(s_out), atol=1e-4, rtol=1e-4)
