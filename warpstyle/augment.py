"""Art augmentation for warper training: repaint images with the AdaIN styler."""

from __future__ import annotations

import torch

from adain.base.vgg import VGGEncoder
from adain.decoder import Decoder
from adain.functional import adaptive_instance_norm

__all__ = ["texture_augment"]


@torch.no_grad()
def texture_augment(
    images: torch.Tensor, styles: torch.Tensor, encoder: VGGEncoder, decoder: Decoder, alpha: torch.Tensor,
) -> torch.Tensor:
    """Repaint ``images`` ``(B, 3, H, W)`` with ``styles`` by AdaIN at per-sample ``alpha`` ``(B,)``."""
    fc = encoder(images, taps=("relu4_1",))["relu4_1"]
    fs = encoder(styles, taps=("relu4_1",))["relu4_1"]
    a = alpha.view(-1, 1, 1, 1).to(fc.device)
    t = a * adaptive_instance_norm(fc, fs) + (1 - a) * fc.float()
    return decoder(t.to(fc.dtype)).float().clamp(0, 1)
