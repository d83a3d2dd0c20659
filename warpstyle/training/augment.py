"""Art augmentation for warper training: repaint images with the AdaIN styler."""

from __future__ import annotations

import torch

from adain.base.encoder.vgg import VGGEncoder
from adain.decoder import Decoder
from adain.functional import adaptive_instance_norm

__all__ = ["texture_augment"]


@torch.no_grad()
def texture_augment(
    images: torch.Tensor, styles: torch.Tensor, encoder: VGGEncoder, decoder: Decoder, alpha: torch.Tensor,
) -> torch.Tensor:
    """Repaint ``images`` ``(B, 3, H, W)`` with ``styles`` by AdaIN at per-sample ``alpha`` ``(B,)``.

    Every tap the decoder takes (relu4_1 and its skip taps, if any) is AdaIN'd and blended alike; a
    decoder with keep taps also gets the images' own features there (:meth:`Decoder.keep_weight`).
    """
    taps = ("relu4_1", *decoder.skips)
    fc = encoder(images, taps=taps, padding=decoder.encoder_padding)
    fs = encoder(styles, taps=taps, padding=decoder.encoder_padding)
    a = alpha.view(-1, 1, 1, 1).to(images.device)
    t = {k: (a * adaptive_instance_norm(fc[k], fs[k]) + (1 - a) * fc[k].float()).to(fc[k].dtype) for k in taps}
    return decoder(t["relu4_1"], t, content=fc, keep=decoder.keep_weight(a)).float().clamp(0, 1)
