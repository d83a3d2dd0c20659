import pytest
import torch
import torch.nn as nn

from adain.base.storage.checkpoint import save_checkpoint
from adain.decoder import Decoder
from adain.base.errors import CheckpointError

CONV_INDEX = (1, 5, 8, 11, 14, 18, 21, 25, 28)
EXPECTED_KEYS = [f"{i}.{p}" for i in CONV_INDEX for p in ("weight", "bias")]


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    torch.manual_seed(0)
    return Decoder().eval()


def test_output_is_8x(decoder):
    with torch.no_grad():
        assert decoder(torch.rand(2, 512, 4, 3)).shape == (2, 3, 32, 24)
        assert decoder(torch.rand(1, 512, 2, 2)).shape == (1, 3, 16, 16)  # reflection pad needs >= 2 px


def test_state_dict_keys_match_decoder_pth(decoder):
    sd = decoder.state_dict()
    assert list(sd) == EXPECTED_KEYS
    shapes = [tuple(sd[f"{i}.weight"].shape) for i in CONV_INDEX]
    assert shapes == [(256, 512, 3, 3), (256, 256, 3, 3), (256, 256, 3, 3), (256, 256, 3, 3), (128, 256, 3, 3),
                      (128, 128, 3, 3), (64, 128, 3, 3), (64, 64, 3, 3), (3, 64, 3, 3)]


def test_layout_is_the_ports():
    dec = Decoder()
    assert isinstance(dec, nn.Sequential) and len(dec) == 29
    assert all(isinstance(dec[i - 1], nn.ReflectionPad2d) for i in CONV_INDEX)
    assert [i for i, m in enumerate(dec) if isinstance(m, nn.Upsample)] == [3, 16, 23]
    assert not isinstance(dec[-1], nn.ReLU)  # the last conv is linear


def _state(seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return Decoder().state_dict()


def test_from_pretrained_path(tmp_path, decoder):
    sd = _state()
    path = save_checkpoint(sd, tmp_path / "decoder.pth")
    dec = Decoder.from_pretrained(path)
    assert not dec.training
    assert all(torch.equal(dec.state_dict()[k], sd[k]) for k in EXPECTED_KEYS)


def test_from_pretrained_module_prefix_and_half(tmp_path):
    sd = _state()
    path = save_checkpoint({f"module.{k}": v.half() for k, v in sd.items()}, tmp_path / "ddp.pt")
    dec = Decoder.from_pretrained(path)
    got = dec.state_dict()
    assert all(got[k].dtype == torch.float32 for k in got)
    assert all(torch.equal(got[k], sd[k].half().float()) for k in EXPECTED_KEYS)


def test_from_pretrained_training_checkpoint(tmp_path):
    sd = _state()
    path = save_checkpoint({"format": "adain.train", "model": sd, "iteration": 1}, tmp_path / "checkpoint.pt")
    assert torch.equal(Decoder.from_pretrained(path)[28].bias, sd["28.bias"])


def test_bundled_decoder_loads():
    dec = Decoder.from_pretrained()
    skip_keys = [f"{kind}_{t}.{p}" for kind in ("skip", "keep") for t in ("relu3_1", "relu2_1", "relu1_1")
                 for p in ("weight", "bias")]
    assert not dec.training and list(dec.state_dict()) == EXPECTED_KEYS + skip_keys  # docs/models/decoder.md


def test_wrong_keys(tmp_path):
    sd = _state()
    sd["2.weight"] = sd.pop("1.weight")
    path = save_checkpoint(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        Decoder.from_pretrained(path)
    assert str(info.value).startswith(
        f"cannot load '{path}': not an AdaIN decoder state_dict (expected keys '1.weight' ... '28.bias'): "
    )


def test_wrong_shape(tmp_path):
    sd = _state()
    sd["28.weight"] = torch.zeros(4, 64, 3, 3)
    path = save_checkpoint(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not an AdaIN decoder state_dict"):
        Decoder.from_pretrained(path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="file is empty"):
        Decoder.from_pretrained(path)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_equals_the_plain_layer_sequence(decoder, dtype):
    # Decoder.forward fuses each conv + ReLU pair at inference; the result must be the layers' own.
    dec = decoder.to(dtype)
    try:
        x = torch.rand(1, 512, 4, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
        with torch.no_grad():
            got = dec(x)
            want = nn.Sequential.forward(dec, x.clone())
        tol = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)
    finally:
        decoder.float()


def test_forward_trains(decoder):
    dec = Decoder()
    dec.load_state_dict(decoder.state_dict())
    x = torch.rand(1, 512, 3, 3, generator=torch.Generator().manual_seed(1))
    dec(x).square().mean().backward()
    got = {n: p.grad.clone() for n, p in dec.named_parameters()}
    dec.zero_grad()
    nn.Sequential.forward(dec, x).square().mean().backward()
    for n, p in dec.named_parameters():
        torch.testing.assert_close(got[n], p.grad, msg=n)


# ---- skip inputs ----------------------------------------------------------------------------------

SKIP_SHAPES = {"relu3_1": (256, 2), "relu2_1": (128, 4), "relu1_1": (64, 8)}


def _skip_feats(b, h, w, taps, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {t: torch.rand(b, SKIP_SHAPES[t][0], h * SKIP_SHAPES[t][1], w * SKIP_SHAPES[t][1], generator=g)
            for t in taps}


@pytest.mark.parametrize("taps", [("relu3_1",), ("relu3_1", "relu2_1"), ("relu1_1", "relu3_1", "relu2_1")])
def test_skips_start_at_zero_and_keep_the_ports_keys(decoder, taps):
    dec = decoder.with_skips(taps).eval()
    assert dec.skips == tuple(t for t in ("relu3_1", "relu2_1", "relu1_1") if t in taps)  # coarse to fine
    assert list(dec.state_dict())[: len(EXPECTED_KEYS)] == EXPECTED_KEYS
    x = torch.rand(2, 512, 3, 4)
    with torch.no_grad():
        torch.testing.assert_close(dec(x, _skip_feats(2, 3, 4, taps)), decoder(x), atol=0, rtol=0)


def test_skips_change_the_output_once_trained():
    dec = Decoder(skips=["relu2_1"]).eval()
    torch.nn.init.normal_(dec.skip_relu2_1.weight, std=0.1)
    x, sk = torch.rand(1, 512, 3, 3), _skip_feats(1, 3, 3, ["relu2_1"])
    sk2 = {"relu2_1": sk["relu2_1"].flip(-1)}
    with torch.no_grad():
        assert dec(x, sk).shape == (1, 3, 24, 24)
        assert not torch.allclose(dec(x, sk), dec(x, sk2))


def test_skips_odd_sizes_are_cropped_to_the_decoder():
    # relu3_1 of a 44 px image is 11 px; relu4_1 is 5 px, decoded to 10 at relu3_1's level.
    dec = Decoder(skips=["relu3_1"]).eval()
    with torch.no_grad():
        assert dec(torch.rand(1, 512, 5, 5), {"relu3_1": torch.rand(1, 256, 11, 11)}).shape == (1, 3, 40, 40)


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
@pytest.mark.parametrize("band_pixels", [1, 24 * 9, 24 * 13, 1 << 30])
@pytest.mark.parametrize("taps", [(), ("relu3_1", "relu2_1", "relu1_1")])
def test_full_resolution_tail_in_bands_gives_the_whole_pass(monkeypatch, taps, band_pixels, upsample):
    # Bands of 8, 9 and 13 rows (and one band) of a 72x24 output: each band carries its own context
    # rows through the two 3x3 convolutions and pads only at the image's border, so the output
    # is that of one pass over the whole image; odd skip sizes are cropped as in the whole pass.
    # Bilinear rows also read their half-resolution neighbours: a band takes one more row each side.
    import adain.decoder as decoder_module

    dec = Decoder(skips=taps, upsample=upsample).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in dec.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    x = torch.rand(1, 512, 9, 3, generator=g)
    sk = {"relu3_1": torch.rand(1, 256, 19, 6, generator=g), "relu2_1": torch.rand(1, 128, 36, 13, generator=g),
          "relu1_1": torch.rand(1, 64, 73, 25, generator=g)}
    with torch.enable_grad():  # the whole-image path
        want = dec(x, sk).detach()
    monkeypatch.setattr(decoder_module, "BAND_PIXELS", band_pixels)
    with torch.no_grad():
        got = dec(x, sk)
    assert got.shape == want.shape == (1, 3, 72, 24)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # fused vs plain conv: rounding only


def test_skip_decoder_needs_its_skips():
    dec = Decoder(skips=["relu3_1"])
    with pytest.raises(ValueError, match="relu3_1"):
        dec(torch.rand(1, 512, 3, 3))
    with pytest.raises(ValueError, match="relu3_1"):
        dec(torch.rand(1, 512, 3, 3), {"relu2_1": torch.rand(1, 128, 12, 12)})


@pytest.mark.parametrize("bad", [["relu4_1"], ["relu3_1", "relu3_1"], "relu3_1", ["conv1_1"]])
def test_bad_skips_are_refused(bad):
    with pytest.raises(ValueError, match="skips"):
        Decoder(skips=bad)


@pytest.mark.parametrize("skips, keep", [(("relu3_1", "relu2_1"), ()),
                                         (("relu3_1", "relu2_1", "relu1_1"), ("relu2_1", "relu1_1"))])
def test_skip_and_keep_decoders_round_trip_through_weights_and_checkpoints(tmp_path, skips, keep):
    from adain.base.storage.weights import save_weights

    dec = Decoder(skips=skips, keep=keep)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in dec.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    path = tmp_path / "dec.safetensors"
    save_weights(path, "Decoder", dec.state_dict(), dec.config(), dec.input_spec(), "test")
    got = Decoder.from_pretrained(path)
    assert got.skips == skips and got.keep == keep and got.config() == dec.config()
    assert all(torch.equal(got.state_dict()[k], v) for k, v in dec.state_dict().items())
    ck = Decoder.from_pretrained(save_checkpoint({"format": "adain.train", "model": dec.state_dict(), "iteration": 1},
                                                 tmp_path / "checkpoint.pt"))
    assert ck.skips == skips and ck.keep == keep


def test_skip_config_is_checked_before_loading(tmp_path):
    from adain.base.storage.weights import save_weights

    dec = Decoder(skips=["relu3_1"])
    path = tmp_path / "bad.safetensors"
    save_weights(path, "Decoder", dec.state_dict(), {"layout": "adain-port", "skips": ["relu9_9"]}, {}, "test")
    with pytest.raises(CheckpointError, match="skips"):
        Decoder.from_pretrained(path)
    plain = tmp_path / "plain.safetensors"
    save_weights(plain, "Decoder", dec.state_dict(), {"layout": "adain-port"}, {}, "test")
    with pytest.raises(CheckpointError):  # a skip's tensors in a file that declares none
        Decoder.from_pretrained(plain)


def _random_skip_decoder(keep=("relu1_1",), seed=5) -> Decoder:
    dec = Decoder(skips=["relu3_1", "relu2_1", "relu1_1"], keep=keep).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in dec.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return dec


def _skip_inputs(seed=6, h=4, w=3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 512, h, w, generator=g), {
        "relu3_1": torch.rand(1, 256, 2 * h, 2 * w, generator=g), "relu2_1": torch.rand(1, 128, 4 * h, 4 * w, generator=g),
        "relu1_1": torch.rand(1, 64, 8 * h, 8 * w, generator=g)}


def test_keep_path_starts_at_zero_and_is_off_at_keep_zero():
    plain = _random_skip_decoder(keep=())
    grown = plain.with_keep(["relu1_1", "relu2_1"])
    assert grown.keep == ("relu2_1", "relu1_1") and float(grown.keep_relu1_1.weight.detach().abs().sum()) == 0
    x, sk = _skip_inputs()
    content = {k: torch.rand_like(v) for k, v in sk.items()}
    with torch.no_grad():
        want = plain(x, sk)
        torch.testing.assert_close(grown(x, sk, content=content, keep=0.7), want)  # zero convolutions
        trained = _random_skip_decoder(keep=("relu1_1",))
        base = trained(x, sk)
        torch.testing.assert_close(trained(x, sk, content=content, keep=0.0), base)  # keep 0: content unused
        assert not torch.allclose(trained(x, sk, content=content, keep=1.0), base, atol=1e-4)


def test_keep_path_adds_its_weighted_convolution_where_the_skip_joins():
    # At the join, the input gains keep * keep_conv(content): a known answer from the skip itself,
    # since the same map through skip_ and keep_ convolutions with equal weights adds up.
    dec = _random_skip_decoder(keep=("relu1_1",))
    x, sk = _skip_inputs()
    twin = Decoder(skips=["relu3_1", "relu2_1", "relu1_1"]).eval()
    state = {k: v for k, v in dec.state_dict().items() if not k.startswith("keep_")}
    with torch.no_grad():
        dec.keep_relu1_1.weight.copy_(dec.skip_relu1_1.weight)
        dec.keep_relu1_1.bias.copy_(dec.skip_relu1_1.bias)
        # skip(s) + 0.5 * keep(s) with keep's weights equal to skip's is a skip of 1.5x the weights
        for name in ("skip_relu1_1.weight", "skip_relu1_1.bias"):
            state[name] = 1.5 * state[name]
        twin.load_state_dict(state)
        torch.testing.assert_close(dec(x, sk, content=sk, keep=0.5), twin(x, sk), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("band_pixels", [1, 24 * 9])
def test_keep_path_in_bands_gives_the_whole_pass(monkeypatch, band_pixels):
    import adain.decoder as decoder_module

    dec = _random_skip_decoder(keep=("relu2_1", "relu1_1"))
    x, sk = _skip_inputs(h=9, w=3)
    content = {k: torch.rand_like(v) for k, v in sk.items()}
    keep = torch.tensor([0.3]).view(1, 1, 1, 1)
    with torch.enable_grad():
        want = dec(x, sk, content=content, keep=keep).detach()
    monkeypatch.setattr(decoder_module, "BAND_PIXELS", band_pixels)
    with torch.no_grad():
        got = dec(x, sk, content=content, keep=keep)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_keep_needs_its_content_and_must_be_some_skips():
    dec = _random_skip_decoder(keep=("relu1_1",))
    x, sk = _skip_inputs()
    with pytest.raises(ValueError, match="keeps content features"):
        dec(x, sk, keep=0.5)
    with pytest.raises(ValueError, match="keep must be some"):
        Decoder(skips=["relu3_1"], keep=["relu1_1"])
    with pytest.raises(ValueError, match="keep"):
        Decoder(skips=["relu1_1"], keep="relu1_1")


def test_keep_config_is_checked_before_loading(tmp_path):
    from adain.base.storage.weights import save_weights

    dec = _random_skip_decoder(keep=("relu2_1", "relu1_1"))
    bad = tmp_path / "bad.safetensors"
    save_weights(bad, "Decoder", dec.state_dict(), {"layout": "adain-port", "skips": ["relu1_1"], "keep": ["relu9_9"]},
                 {}, "test")
    with pytest.raises(CheckpointError, match="keep"):
        Decoder.from_pretrained(bad)


def test_keep_weight_is_one_at_alpha_zero_and_fades_to_zero_at_one():
    from adain.decoder import KEEP_POWER

    dec = Decoder(skips=["relu1_1"], keep=["relu1_1"])
    assert dec.keep_power == KEEP_POWER and dec.config()["keep_power"] == KEEP_POWER
    assert dec.keep_weight(0.0) == 1.0 and dec.keep_weight(1.0) == 0.0
    assert dec.keep_weight(0.8) == pytest.approx(0.2 ** KEEP_POWER)
    w = dec.keep_weight(torch.linspace(0, 1, 11))
    assert bool((w[1:] < w[:-1]).all())
    assert Decoder(skips=["relu1_1"], keep=["relu1_1"], keep_power=1.0).keep_weight(0.8) == pytest.approx(0.2)


def test_keep_power_travels_in_the_weights_file(tmp_path):
    from adain.base.storage.weights import save_weights

    dec = Decoder(skips=["relu1_1"], keep=["relu1_1"], keep_power=2.0)
    path = tmp_path / "p2.safetensors"
    save_weights(path, "Decoder", dec.state_dict(), dec.config(), dec.input_spec(), "test")
    got = Decoder.from_pretrained(path)
    assert got.keep_power == 2.0 and "** 2" in dec.input_spec()["keep"]
    assert got.with_skips(["relu2_1"]).keep_power == 2.0
    for bad in (0, -1.0, "3", True):
        save_weights(path, "Decoder", dec.state_dict(), dec.config() | {"keep_power": bad}, {}, "test")
        with pytest.raises(CheckpointError, match="keep_power"):
            Decoder.from_pretrained(path)
    with pytest.raises(ValueError, match="keep_power"):
        Decoder(keep_power=0.0)


def test_upsample_and_encoder_padding_travel_in_the_weights_file(tmp_path):
    from adain.base.storage.weights import save_weights

    dec = _random_skip_decoder()
    new = dec.reconfigured(upsample="bilinear", encoder_padding="replicate")
    assert all(torch.equal(new.state_dict()[k], v) for k, v in dec.state_dict().items())
    path = tmp_path / "d.safetensors"
    save_weights(path, "Decoder", new.state_dict(), new.config(), new.input_spec(), "test")
    got = Decoder.from_pretrained(path)
    assert (got.upsample, got.encoder_padding) == ("bilinear", "replicate")
    assert got.with_skips(["relu3_1"]).upsample == "bilinear" and got.with_keep(["relu2_1"]).encoder_padding == "replicate"
    # files that do not say keep decoding as they always did
    assert "upsample" not in dec.config() and "encoder_padding" not in dec.config()
    save_weights(path, "Decoder", dec.state_dict(), dec.config(), dec.input_spec(), "test")
    assert (Decoder.from_pretrained(path).upsample, Decoder.from_pretrained(path).encoder_padding) == ("nearest", "zeros")
    for key, bad in (("upsample", "bicubic"), ("encoder_padding", "circular")):
        save_weights(path, "Decoder", dec.state_dict(), dec.config() | {key: bad}, {}, "test")
        with pytest.raises(CheckpointError, match=key):
            Decoder.from_pretrained(path)


def test_bilinear_upsampling_prints_no_two_pixel_lattice():
    # A constant map through the port's layers: nearest doubling + 3x3 convolution alternates two
    # values per period of 2 px only where the map changes; on a ramp, nearest gives steps of 2 px
    # (every second row difference zero), bilinear a smooth ramp.
    ramp = torch.linspace(0, 1, 8).view(1, 1, 8, 1).expand(1, 1, 8, 8)
    near = nn.Upsample(scale_factor=2, mode="nearest")(ramp)[0, 0, :, 0].diff()
    dec = Decoder(upsample="bilinear")
    up = [m for m in dec if isinstance(m, nn.Upsample)]
    assert len(up) == 3 and all(m.mode == "bilinear" for m in up)
    bil = up[0](ramp)[0, 0, 2:-2, 0].diff()
    assert float(near[::2].abs().max()) == 0 and float(bil.min()) > 0


def test_styler_encodes_with_the_decoders_padding():
    # Zero padding (the Oxford VGG's) frames the image in black: the features along the border of a
    # flat image differ from its middle; replicate padding continues the image, so they do not.
    from adain.base.encoder.vgg import VGGEncoder
    from adain.styler import Styler

    enc = VGGEncoder()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in enc.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 0.1)
    flat = torch.full((1, 3, 32, 32), 0.5)
    for padding, flat_border in (("zeros", False), ("replicate", True)):
        styler = Styler(enc, Decoder(encoder_padding=padding))
        f = styler._encode(flat, bf16=False)["relu4_1"]
        assert torch.allclose(f[..., 0, 0], f[..., 2, 2], atol=1e-5) is flat_border
    with pytest.raises(ValueError, match="padding"):
        enc(flat, padding="circular")
    with pytest.raises(ValueError, match="encoder_padding"):
        Decoder(encoder_padding="circular")
