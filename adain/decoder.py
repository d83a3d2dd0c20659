"""The AdaIN decoder: relu4_1 features back to an RGB image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .base.checks import check_device
from .base.conv_relu import conv2d_relu
from .base.weights import bundled_weights, check_state, load_weights, meta_shapes

__all__ = ["Decoder", "BUNDLED_DECODER", "DECODER_INPUT"]

BUNDLED_DECODER = "decoder.safetensors"
#: The decoder's input convention, stored in every weights file it writes.
DECODER_INPUT: dict[str, Any] = {
    "features": "relu4_1 of the paired VGGEncoder (bundled: Oxford VGG-19, tap scales applied), (B, 512, H, W), "
                "after AdaIN",
    "output": "RGB (B, 3, 8H, 8W), approximately in [0, 1], not clamped",
}
_LAYOUT = "adain-port"  # the only decoder architecture: the AdaIN port's flat nn.Sequential
_DESCRIBE = "an AdaIN decoder state_dict (expected keys '1.weight' ... '28.bias')"


def _shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    if config != {"layout": _LAYOUT}:
        raise ValueError(f"expected {{'layout': '{_LAYOUT}'}}; got {config}")
    return meta_shapes(Decoder)


class Decoder(nn.Sequential):
    """Mirror of VGG-19 up to relu4_1: reflection padding, 3x3 convs, nearest upsampling, no norms.

    The layout is byte-compatible with the PyTorch AdaIN port, so its ``decoder.pth`` loads
    unchanged (keys ``1.weight`` ... ``28.bias``).

    Shape:
        - Input: ``(B, 512, H, W)`` relu4_1-like features.
        - Output: ``(B, 3, 8H, 8W)`` RGB, approximately in [0, 1] (not clamped).

    Example:
        >>> Decoder()(torch.rand(1, 512, 4, 4)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(self) -> None:
        pad = lambda: nn.ReflectionPad2d(1)  # noqa: E731
        up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
        super().__init__(
            pad(), nn.Conv2d(512, 256, 3), nn.ReLU(inplace=True),  # 0-2: relu4-1 mirror
            up(),  # 3
            pad(), nn.Conv2d(256, 256, 3), nn.ReLU(inplace=True),  # 4-6: relu3-4
            pad(), nn.Conv2d(256, 256, 3), nn.ReLU(inplace=True),  # 7-9: relu3-3
            pad(), nn.Conv2d(256, 256, 3), nn.ReLU(inplace=True),  # 10-12: relu3-2
            pad(), nn.Conv2d(256, 128, 3), nn.ReLU(inplace=True),  # 13-15: relu3-1
            up(),  # 16
            pad(), nn.Conv2d(128, 128, 3), nn.ReLU(inplace=True),  # 17-19: relu2-2
            pad(), nn.Conv2d(128, 64, 3), nn.ReLU(inplace=True),  # 20-22: relu2-1
            up(),  # 23
            pad(), nn.Conv2d(64, 64, 3), nn.ReLU(inplace=True),  # 24-26: relu1-2
            pad(), nn.Conv2d(64, 3, 3),  # 27-28: relu1-1 mirror, to RGB
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the layers in order; each conv + ReLU pair is one fused call at inference on CPU."""
        layers = list(self)
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU):
                x = conv2d_relu(x, layer.weight, layer.bias)  # the convs here are unpadded, stride 1
                i += 2
            else:
                x = layer(x)
                i += 1
        return x

    def config(self) -> dict[str, Any]:
        """The architecture config stored in weights files (the layout is fixed)."""
        return {"layout": _LAYOUT}

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, device: torch.device | str | None = None) -> Decoder:
        """Load the bundled decoder (``path=None``), a weights file, a ``decoder.pth`` of the AdaIN port,
        a legacy ``.pt`` state_dict or a training checkpoint.

        Every tensor's shape is checked against the architecture before anything is converted.
        Returns an eval-mode float32 decoder.
        """
        device = check_device(device)
        source = Path(path) if path is not None else bundled_weights("adain", BUNDLED_DECODER)
        state, meta = load_weights(source, "Decoder", _shapes, describe=_DESCRIBE)
        if meta is None:  # legacy torch file: DDP-saved keys carry a "module." prefix
            state = {k.removeprefix("module."): v for k, v in state.items()}
            check_state(state, meta_shapes(cls), source, _DESCRIBE)
        dec = cls()
        dec.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        dec.eval()
        return dec.to(device) if device is not None else dec
