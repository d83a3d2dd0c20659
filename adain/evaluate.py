"""Held-out quality figures of a styler: AdaIN losses, and the texture-stage scores of docs/quality.md."""

from __future__ import annotations

from pathlib import Path

import kornia
import torch

from .base.data import list_images, split_paths
from .functional import adaptive_instance_norm
from .base.image import load_image, resize_longer
from .losses import STYLE_TAPS, content_loss, style_loss
from .styler import Styler

__all__ = ["evaluate_styler", "heldout_pairs", "texture_scores"]


def heldout_pairs(content_dir: str | Path, style_dir: str | Path, *, holdout: float = 0.1, pairs: int = 48,
                  split: str = "heldout") -> list[tuple[Path, Path]]:
    """Content i with style i of the held-out splits (sorted, cycling the shorter list)."""
    cs = split_paths(list_images(content_dir), content_dir, split, holdout)  # type: ignore[arg-type]
    ss = split_paths(list_images(style_dir), style_dir, split, holdout)  # type: ignore[arg-type]
    if not cs or not ss:
        raise ValueError("no held-out images: check the folders and the holdout fraction")
    return [(cs[i % len(cs)], ss[i % len(ss)]) for i in range(pairs)]


@torch.no_grad()
def evaluate_styler(styler: Styler, pairs: list[tuple[Path, Path]], *, size: int = 512, bf16: bool = True,
                    identity: bool = False) -> dict[str, float]:
    """Mean content loss (output relu4_1 vs the AdaIN target) and style loss (output vs style).

    Single pass at ``size`` (longer side), the setting the decoder is trained for. ``identity=True``
    scores the un-stylized content instead (the starting point).
    """
    enc = styler.encoder
    lc_sum = ls_sum = 0.0
    for c_path, s_path in pairs:
        c = resize_longer(load_image(c_path), size).to(styler.device)
        s = resize_longer(load_image(s_path), size).to(styler.device)
        out = c if identity else styler.stylize(c, [s], size=size, scales=[size], bf16=bf16)
        fc = enc(c, taps=("relu4_1",))["relu4_1"]
        fs = enc(s, taps=STYLE_TAPS)
        fo = enc(out, taps=STYLE_TAPS)
        target = adaptive_instance_norm(fc, fs["relu4_1"])
        lc_sum += float(content_loss(fo["relu4_1"], target))
        ls_sum += float(style_loss([fo[t] for t in STYLE_TAPS], [fs[t] for t in STYLE_TAPS]))
    n = len(pairs)
    return {"pairs": n, "content_loss": lc_sum / n, "style_loss": ls_sum / n}


@torch.no_grad()
def texture_scores(encoder: torch.nn.Module, content: torch.Tensor, output: torch.Tensor,
                   texture: torch.Tensor) -> dict[str, float]:
    """How well ``output`` keeps ``content`` and takes ``texture``, as the texture-stage issue measures it.

    Args:
        encoder: a VGG-19 :class:`adain.base.encoder.vgg.VGGEncoder` (float32).
        content, output: ``(1, 3, H, W)`` in [0, 1], the same size.
        texture: ``(1, 3, H', W')`` in [0, 1], at the size the styler used.

    Returns:
        ``style_loss``: sum over relu1_1..relu4_1 of the MSE of channel means plus that of channel
        stds, output against texture; ``content_loss``: ``|relu4_1(output) - relu4_1(content)|^2``
        relative to ``|relu4_1(content)|^2``; ``ssim`` (11 px Gaussian window, RGB mean) and
        ``psnr`` (dB) of the output to the content.
    """
    fc = encoder(content, taps=("relu4_1",))["relu4_1"].float()
    fo = {k: v.float() for k, v in encoder(output, taps=STYLE_TAPS).items()}
    fs = {k: v.float() for k, v in encoder(texture, taps=STYLE_TAPS).items()}
    mse = float(torch.mean((output - content) ** 2))
    return {
        "style_loss": float(style_loss([fo[t] for t in STYLE_TAPS], [fs[t] for t in STYLE_TAPS])),
        "content_loss": float(((fo["relu4_1"] - fc) ** 2).sum() / (fc**2).sum().clamp_min(1e-12)),
        "ssim": float(kornia.metrics.ssim(output, content, window_size=11).mean()),
        "psnr": float(10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12)))),
    }
