"""AdaIN training losses (Huang & Belongie 2017, eqs. 11-12)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .functional import calc_mean_std

__all__ = ["STYLE_TAPS", "content_loss", "style_loss", "identity_feature_loss", "lattice_loss", "lattice_power", "lattice_spectrum", "LATTICE_PERIODS"]

#: Layers of the style loss, as in the paper.
STYLE_TAPS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: Periods (px) of the grid an upsampling decoder prints (Odena et al. 2016): one and two doublings.
LATTICE_PERIODS: tuple[int, ...] = (2, 4)


def content_loss(output_feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between relu4_1 of the output ``(B, 512, H, W)`` and the AdaIN target of the same shape."""
    return F.mse_loss(output_feat.float(), target.float())


def style_loss(output_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of MSE(channel means) + MSE(channel stds).

    The MSE averages over batch and channels, as the PyTorch AdaIN port does (the original Torch
    code sums over channels instead, so its style weight of 1e-2 corresponds to a larger one here);
    ``style_weight`` in our configs refers to this averaged form.
    """
    if len(output_feats) != len(style_feats):  # zip would silently drop layers
        raise ValueError(
            f"output_feats and style_feats must hold the same layers; got {len(output_feats)} and {len(style_feats)}"
        )
    total = output_feats[0].new_zeros((), dtype=torch.float32)
    for o, s in zip(output_feats, style_feats):
        o_mean, o_std = calc_mean_std(o)
        s_mean, s_std = calc_mean_std(s)
        total = total + F.mse_loss(o_mean, s_mean) + F.mse_loss(o_std, s_std)
    return total


def identity_feature_loss(output_feats: Sequence[torch.Tensor], input_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the MSE between features of a reconstruction and of its input (SANet's L_id2)."""
    if len(output_feats) != len(input_feats):
        raise ValueError(
            f"output_feats and input_feats must hold the same layers; got {len(output_feats)} and {len(input_feats)}"
        )
    total = output_feats[0].new_zeros((), dtype=torch.float32)
    for o, i in zip(output_feats, input_feats):
        total = total + F.mse_loss(o.float(), i.float())
    return total


def lattice_spectrum(image: torch.Tensor, periods: Sequence[int] = LATTICE_PERIODS
                     ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Windowed luminance power spectrum ``(B, H, W)`` of ``(B, 3, H, W)`` (in its dtype) and the
    lattice frequencies ``(row, column)``: periods of ``periods`` px along rows, columns and both (a
    Hann window first, so the image's borders do not leak onto the axes)."""
    y = 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]
    y = y - y.mean((-2, -1), keepdim=True)
    h, w = y.shape[-2:]
    win = torch.hann_window(h, periodic=False, dtype=y.dtype, device=y.device)[:, None] * \
        torch.hann_window(w, periodic=False, dtype=y.dtype, device=y.device)[None]
    power = torch.fft.fft2(y * win).abs() ** 2
    rows = sorted({0} | {s * round(h / p) % h for p in periods for s in (1, -1)})
    cols = sorted({0} | {s * round(w / p) % w for p in periods for s in (1, -1)})
    return power, [(a, b) for a in rows for b in cols if (a, b) != (0, 0)]


def lattice_power(image: torch.Tensor, periods: Sequence[int] = LATTICE_PERIODS) -> torch.Tensor:
    """``(B,)`` luminance power of ``(B, 3, H, W)`` at the lattice frequencies of
    :func:`lattice_spectrum`, each with its 8 neighbours (the Hann window's leakage)."""
    power, bins = lattice_spectrum(image, periods)
    h, w = power.shape[-2:]
    mask = torch.zeros(h, w, dtype=torch.bool, device=power.device)
    for a, b in bins:
        for i in (-1, 0, 1):
            for j in (-1, 0, 1):
                mask[(a + i) % h, (b + j) % w] = True
    return (power * mask).sum((-2, -1))


def lattice_loss(output: torch.Tensor, content: torch.Tensor,
                 periods: Sequence[int] = LATTICE_PERIODS) -> torch.Tensor:
    """How far the output's luminance energy at a 2/4 px lattice exceeds the content's, as a log ratio.

    The batch mean of ``relu(log E(output) - log E(content))``, ``E`` the energy at those periods
    (:func:`adain.evaluate.lattice_energy` measures the same ratio): zero once the output holds no
    more of it than the photo, so it does not flatten a painting's other fine texture.

    Args:
        output, content: ``(B, 3, H, W)`` in [0, 1]; computed in float32 (the FFT's range).
    """
    if output.shape != content.shape:
        raise ValueError(f"output and content must have the same shape; got {tuple(output.shape)} and {tuple(content.shape)}")
    eps = 1e-8
    e_out = lattice_power(output.float(), periods)
    e_content = lattice_power(content.float().detach(), periods)
    return F.relu(torch.log(e_out + eps) - torch.log(e_content + eps)).mean()
