from pathlib import Path

import pytest
import torch

from adain.decoder import Decoder
from adain.functional import calc_mean_std, rgb_to_yuv
from adain.base.image import load_image, resize_exact
from adain.styler import Styler, scale_schedule
from adain.base.encoder.vgg import VGGEncoder

SAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "samples"


@pytest.fixture(scope="module")
def styler():
    return Styler.from_pretrained()


@pytest.fixture(scope="module")
def images():
    c = resize_exact(load_image(SAMPLES / "content" / "kodim23.jpg"), (96, 96))
    s1 = load_image(SAMPLES / "texture" / "vangogh_the-starry-night.jpg")
    s2 = load_image(SAMPLES / "texture" / "monet_water-lilies-1919.jpg")
    return c, s1, s2


def test_schedule():
    assert scale_schedule(2048) == [512, 1024, 2048]
    assert scale_schedule(1024) == [512, 1024]
    assert scale_schedule(512) == [512]
    assert scale_schedule(300) == [300]
    assert scale_schedule(512, [128, 256, 2048]) == [128, 256, 512]


def test_output_size_and_range(styler, images):
    c, s1, _ = images
    out = styler.stylize(c, [s1], size=72, scales=[72])
    assert out.shape == (1, 3, 72, 72)
    assert out.min() >= 0 and out.max() <= 1


def test_output_takes_the_style_statistics(styler, images):
    c, s1, _ = images
    out = styler.stylize(c, [s1], size=96, scales=[96], bf16=False)
    enc = styler.encoder
    f_out = enc(out, taps=("relu1_1",))["relu1_1"]
    f_style = enc(resize_exact(s1, (60, 96)), taps=("relu1_1",))["relu1_1"]
    f_content = enc(c, taps=("relu1_1",))["relu1_1"]
    m_o, s_o = calc_mean_std(f_out)
    m_s, s_s = calc_mean_std(f_style)
    m_c, s_c = calc_mean_std(f_content)
    # the trained decoder moves the output's statistics towards the style's
    assert (m_o - m_s).abs().mean() < (m_c - m_s).abs().mean()


def test_alpha_zero_reconstructs_content(styler, images):
    c, s1, _ = images
    recon = styler.stylize(c, [s1], alpha=0.0, size=96, scales=[96], bf16=False)
    styled = styler.stylize(c, [s1], alpha=1.0, size=96, scales=[96], bf16=False)
    # alpha=0 decodes the content's own relu4_1 features, which the decoder is trained to reproduce
    enc = styler.encoder
    f_c = enc(c)["relu4_1"]
    err_recon = (enc(recon)["relu4_1"] - f_c).pow(2).mean()
    err_styled = (enc(styled)["relu4_1"] - f_c).pow(2).mean()
    assert err_recon < 0.8 * err_styled


def test_style_weights_interpolate(styler, images):
    c, s1, s2 = images
    only1 = styler.stylize(c, [s1], size=64, scales=[64], bf16=False)
    w10 = styler.stylize(c, [s1, s2], weights=[1, 0], size=64, scales=[64], bf16=False)
    assert torch.allclose(only1, w10, atol=1e-5)
    mid = styler.stylize(c, [s1, s2], weights=[1, 1], size=64, scales=[64], bf16=False)
    assert (mid - only1).abs().mean() > 1e-3


def test_masks_paint_each_region_with_its_style(styler, images):
    c, s1, s2 = images
    left = torch.zeros(1, 1, 96, 96)
    left[..., :48] = 1
    out = styler.stylize(c, [s1, s2], masks=[left, 1 - left], size=96, scales=[96], bf16=False)
    only1 = styler.stylize(c, [s1], size=96, scales=[96], bf16=False)
    only2 = styler.stylize(c, [s2], size=96, scales=[96], bf16=False)
    # away from the seam each half resembles the single-style result for its mask
    d11 = (out[..., 8:40] - only1[..., 8:40]).abs().mean()
    d12 = (out[..., 8:40] - only2[..., 8:40]).abs().mean()
    d22 = (out[..., 56:88] - only2[..., 56:88]).abs().mean()
    d21 = (out[..., 56:88] - only1[..., 56:88]).abs().mean()
    assert d11 < d12 and d22 < d21


def test_preserve_color_luminance_keeps_content_chroma(styler, images):
    c, s1, _ = images
    out = styler.stylize(c, [s1], preserve_color="luminance", size=96, scales=[96])
    uv_out = rgb_to_yuv(out)[:, 1:].mean((2, 3))
    uv_c = rgb_to_yuv(c)[:, 1:].mean((2, 3))
    uv_plain = rgb_to_yuv(styler.stylize(c, [s1], size=96, scales=[96]))[:, 1:].mean((2, 3))
    assert (uv_out - uv_c).abs().sum() < (uv_plain - uv_c).abs().sum()


def test_preserve_color_match_runs_and_differs(styler, images):
    c, s1, _ = images
    a = styler.stylize(c, [s1], preserve_color="match", size=64, scales=[64])
    b = styler.stylize(c, [s1], size=64, scales=[64])
    assert (a - b).abs().mean() > 1e-3


def test_preserve_color_match_with_a_shared_bank_uses_each_contents_colours(styler, images):
    # A bank outlives one content (batches, the demo's cache): the colour-matched style must follow
    # the content of this call, not the first one the bank saw.
    c, s1, _ = images
    other = resize_exact(load_image(SAMPLES / "content" / "kodim04.jpg"), (96, 96))
    bank = styler.encode_styles([s1])
    styler.stylize(c, bank, preserve_color="match", size=64, scales=[64])
    shared = styler.stylize(other, bank, preserve_color="match", size=64, scales=[64])
    fresh = styler.stylize(other, [s1], preserve_color="match", size=64, scales=[64])
    assert torch.equal(shared, fresh)


def test_multiscale_output_size(styler, images):
    c, s1, _ = images
    out = styler.stylize(c, [s1], size=100, scales=[48, 100])
    assert out.shape[-2:] == (100, 100)


def test_bf16_close_to_fp32(styler, images):
    c, s1, _ = images
    a = styler.stylize(c, [s1], size=96, scales=[96], bf16=True)
    b = styler.stylize(c, [s1], size=96, scales=[96], bf16=False)
    assert (a - b).abs().mean() < 0.03


def test_argument_errors(styler, images):
    c, s1, s2 = images
    with pytest.raises(ValueError, match="alpha must be in"):
        styler.stylize(c, [s1], alpha=1.5)
    with pytest.raises(ValueError, match=r"weights must hold one weight per style \(2\); got 1"):
        styler.stylize(c, [s1, s2], weights=[1])
    with pytest.raises(ValueError, match=r"masks\[0\] must be the content's size"):
        styler.stylize(c, [s1], masks=[torch.ones(1, 1, 10, 10)])
    with pytest.raises(ValueError, match="content must have values in"):
        styler.stylize(c * 255, [s1])


def test_untrained_models_for_shapes():
    s = Styler(VGGEncoder(), Decoder())
    assert s.stylize(torch.rand(1, 3, 40, 56), [torch.rand(1, 3, 32, 32)], size=56).shape == (1, 3, 40, 56)


def test_bf16_decode_skips_autocast_without_changing_pixels(styler):
    # The bf16-weight decoder copy runs without autocast (which would do its padding and upsampling
    # in float32); the pixels must be those of the autocast run.
    from adain.decoder import SKIP_SHAPES

    g = torch.Generator().manual_seed(0)
    feats = {"relu4_1": torch.rand(1, 512, 6, 5, generator=g)}
    feats |= {t: torch.rand(1, SKIP_SHAPES[t][0], 6 * SKIP_SHAPES[t][1], 5 * SKIP_SHAPES[t][1], generator=g)
              for t in styler.decoder.skips}  # the bundled decoder's skip taps
    dec = styler._decoder_for(True)
    assert next(dec.parameters()).dtype == torch.bfloat16
    got = styler._decode(feats, True, dec)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        cast = {k: v.to(torch.bfloat16).contiguous(memory_format=torch.channels_last) for k, v in feats.items()}
        want = dec(cast["relu4_1"], cast)
    assert got.dtype == torch.float32 and got.shape == (1, 3, 48, 40)
    torch.testing.assert_close(got, want.float().clamp(0, 1), atol=0, rtol=0)


def test_refine_lowers_both_losses(styler, images):
    from adain.evaluate import texture_scores

    c, s1, _ = images
    s = resize_exact(s1, (64, 64))
    c64 = resize_exact(c, (64, 64))
    plain = styler.stylize(c64, [s], size=64, scales=[64], bf16=False)
    calls = []
    refined = styler.stylize(c64, [s], size=64, scales=[64], bf16=False, refine_steps=15,
                             progress=lambda done, total: calls.append((done, total)))
    # progress covers the refinement too: one call per pass and per step, ending at the total
    assert len(calls) == 1 + 1 + 15 and len({t for _, t in calls}) == 1
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1][0] == calls[-1][1]
    assert refined.shape == plain.shape and 0 <= float(refined.min()) and float(refined.max()) <= 1
    before = texture_scores(styler.encoder, c64, plain, s)
    after = texture_scores(styler.encoder, c64, refined, s)
    assert after["content_loss"] < before["content_loss"]
    assert after["style_loss"] < before["style_loss"]


@pytest.mark.parametrize("schedule", ["guided", "restylize"])
def test_every_schedule_gives_the_output_size(styler, images, schedule):
    c, s1, _ = images
    out = styler.stylize(c, [s1], size=96, scales=[48, 96], schedule=schedule, bf16=False)
    assert out.shape == (1, 3, 96, 96) and 0 <= float(out.min()) and float(out.max()) <= 1


def test_guided_schedule_keeps_more_content_than_restylize(styler, images):
    # the guided finer pass starts from the content's own features; restylize only from the coarse result
    from adain.evaluate import texture_scores

    c, s1, _ = images
    c96 = resize_exact(c, (96, 96))
    s = resize_exact(s1, (96, 96))
    scores = {k: texture_scores(styler.encoder, c96, styler.stylize(c96, [s], size=96, scales=[48, 96], schedule=k,
                                                                    bf16=False), s)
              for k in ("guided", "restylize")}
    assert scores["guided"]["content_loss"] < scores["restylize"]["content_loss"]


def test_unknown_schedule_is_refused(styler, images):
    c, s1, _ = images
    with pytest.raises(ValueError, match="schedule must be one of"):
        styler.stylize(c, [s1], size=64, schedule="bogus")  # type: ignore[arg-type]
def test_forward_is_one_stylize_pass(styler, images):
    # forward = the single-pass core of stylize: at a size where stylize runs one pass without
    # resizing (sides multiples of 8, style's longer side equal to the output's), they agree.
    c = images[0][..., :96, :80]
    s = resize_exact(images[1], (64, 96))
    with torch.no_grad():
        one_pass = styler(c, s)
        half = styler(c, s, alpha=0.5)
    assert one_pass.shape == c.shape and 0 <= float(one_pass.min()) and float(one_pass.max()) <= 1
    torch.testing.assert_close(one_pass, styler.stylize(c, [s], bf16=False), atol=1e-4, rtol=0)
    torch.testing.assert_close(half, styler.stylize(c, [s], alpha=0.5, bf16=False), atol=1e-4, rtol=0)
    assert float((one_pass - half).abs().mean()) > 1e-3  # alpha reaches the graph


# ---- a decoder with skip inputs -------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_styler(styler):
    """The bundled decoder without its skip convolutions: a plain decoder with its other weights."""
    dec = Decoder()
    dec.load_state_dict({k: v for k, v in styler.decoder.state_dict().items() if not k.startswith(("skip_", "keep_"))})
    return Styler(styler.encoder, dec.eval()).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def skip_styler(plain_styler):
    dec = plain_styler.decoder.with_skips(["relu3_1", "relu2_1"]).eval()
    g = torch.Generator().manual_seed(0)
    for name, p in dec.named_parameters():
        if name.startswith("skip_"):
            p.data = 0.05 * torch.randn(p.shape, generator=g)
    return Styler(plain_styler.encoder, dec).eval().requires_grad_(False)


def test_skip_styler_alpha_zero_decodes_the_contents_own_taps(skip_styler, images):
    c, s1, _ = images
    got = skip_styler.stylize(c, [s1], alpha=0.0, size=96, scales=[96], bf16=False)
    with torch.no_grad():
        f = skip_styler.encoder(c, taps=("relu4_1", "relu3_1", "relu2_1"))
        want = skip_styler.decoder(f["relu4_1"], f).clamp(0, 1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_skip_styler_stylizes_every_tap(skip_styler, plain_styler, images):
    # Same relu4_1 target, so any difference from the plain decoder comes from the skips; and they
    # must carry the style's statistics, not the content's: the skip output is closer to the plain
    # stylization than to the decode of the content's own skip taps.
    c, s1, _ = images
    plain = plain_styler.stylize(c, [s1], size=96, scales=[96], bf16=False)
    skip = skip_styler.stylize(c, [s1], size=96, scales=[96], bf16=False)
    with torch.no_grad():
        target = skip_styler._mix(skip_styler._encode(c, False), skip_styler.encode_styles([s1]), torch.ones(1),
                                  None, 96, None, False)
        unstyled_skips = skip_styler._encode(c, False)
        mixed = skip_styler.decoder(target["relu4_1"], unstyled_skips).clamp(0, 1)
    assert float((skip - plain).abs().mean()) > 1e-3
    torch.testing.assert_close(skip, skip_styler.decoder(target["relu4_1"], target).clamp(0, 1), atol=1e-4, rtol=0)
    assert float((skip - mixed).abs().mean()) > 1e-3


def test_skip_styler_masks_weights_and_schedules(skip_styler, images):
    c, s1, s2 = images
    zero = torch.zeros(1, 1, 96, 96)
    kept = skip_styler.stylize(c, [s1], masks=[zero], size=96, scales=[96], bf16=False)
    recon = skip_styler.stylize(c, [s1], alpha=0.0, size=96, scales=[96], bf16=False)
    torch.testing.assert_close(kept, recon, atol=1e-4, rtol=0)  # uncovered regions keep every tap
    only1 = skip_styler.stylize(c, [s1], size=64, scales=[64], bf16=False)
    w10 = skip_styler.stylize(c, [s1, s2], weights=[1, 0], size=64, scales=[64], bf16=False)
    torch.testing.assert_close(only1, w10, atol=1e-5, rtol=0)
    for schedule in ("guided", "restylize"):
        out = skip_styler.stylize(c, [s1], size=88, scales=[48, 88], schedule=schedule, bf16=False)
        assert out.shape == (1, 3, 88, 88)


def test_skip_styler_forward_is_one_stylize_pass(skip_styler, images):
    c = images[0][..., :96, :80]
    s = resize_exact(images[1], (64, 96))
    with torch.no_grad():
        one_pass = skip_styler(c, s, alpha=0.7)
    torch.testing.assert_close(one_pass, skip_styler.stylize(c, [s], alpha=0.7, bf16=False), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def keep_styler(skip_styler):
    dec = skip_styler.decoder.with_keep(["relu2_1"]).eval()
    g = torch.Generator().manual_seed(1)
    for name, p in dec.named_parameters():
        if name.startswith("keep_"):
            p.data = 0.05 * torch.randn(p.shape, generator=g)
    return Styler(skip_styler.encoder, dec).eval().requires_grad_(False)


def test_keep_styler_alpha_one_is_the_skip_decoders_and_alpha_zero_uses_the_keep_path(keep_styler, skip_styler,
                                                                                         images):
    c, s1, _ = images
    torch.testing.assert_close(keep_styler.stylize(c, [s1], size=96, scales=[96], bf16=False),
                               skip_styler.stylize(c, [s1], size=96, scales=[96], bf16=False), atol=0, rtol=0)
    got = keep_styler.stylize(c, [s1], alpha=0.0, size=96, scales=[96], bf16=False)
    with torch.no_grad():
        f = keep_styler.encoder(c, taps=("relu4_1", "relu3_1", "relu2_1"))
        want = keep_styler.decoder(f["relu4_1"], f, content=f, keep=1.0).clamp(0, 1)
        without = keep_styler.decoder(f["relu4_1"], f).clamp(0, 1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert float((got - without).abs().mean()) > 1e-3


@pytest.mark.parametrize("schedule", ["guided", "restylize"])
def test_keep_styler_forward_and_schedules_at_partial_alpha(keep_styler, images, schedule):
    c = images[0][..., :96, :80]
    s = resize_exact(images[1], (64, 96))
    with torch.no_grad():
        one_pass = keep_styler(c, s, alpha=0.7)
    torch.testing.assert_close(one_pass, keep_styler.stylize(c, [s], alpha=0.7, bf16=False), atol=1e-4, rtol=0)
    two = keep_styler.stylize(c, [s], alpha=0.5, size=88, scales=[48, 88], schedule=schedule, bf16=False)
    assert two.shape == (1, 3, 88, 73) and torch.isfinite(two).all()


def test_mix_folds_weights_and_alpha_into_one_affine_map():
    # Without masks, the weighted AdaIN targets and the alpha blend with the features themselves
    # are one per-channel affine map; it must equal the sum of the parts.
    from adain.functional import adain_to_stats

    g = torch.Generator().manual_seed(0)
    f = torch.rand(1, 8, 6, 5, generator=g) * 3
    styles = [calc_mean_std(torch.rand(1, 8, 4, 4, generator=g) * k) for k in (1.0, 5.0)]
    w = torch.tensor([0.3, 0.7])
    got = Styler._mix_tap(f, styles, w, None, alpha=0.6)
    want = 0.6 * (0.3 * adain_to_stats(f, *styles[0]) + 0.7 * adain_to_stats(f, *styles[1])) + 0.4 * f
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_content_stats_filter_known_answers():
    """``stylize_planned(content_stats=...)``: the identity filter changes nothing; the filter sees each
    tap of each pass and what it returns is what AdaIN normalises with."""
    styler = Styler(VGGEncoder(), Decoder()).eval()
    g = torch.Generator().manual_seed(0)
    x, s = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    bank = styler.encode_styles([s])
    plan = styler.plan(1, alpha=1.0, bf16=False)
    seen = []

    def identity(tap, size, stats):
        seen.append((tap, size))
        return stats

    plain = styler.stylize_planned(x, bank, plan)
    assert torch.equal(styler.stylize_planned(x, bank, plan, content_stats=identity), plain)
    assert seen == [(t, 32) for t in styler.taps]
    shifted = styler.stylize_planned(x, bank, plan, content_stats=lambda t, n, st: (st[0] + 1.0, st[1]))
    assert not torch.allclose(shifted, plain)
