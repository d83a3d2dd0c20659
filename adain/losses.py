"""AdaIN training losses (Huang & Belongie 2017, eqs. 11-12)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .functional import calc_mean_std

__all__ = ["STYLE_TAPS", "content_loss", "style_loss", "identity_feature_loss"]

#: Layers of the style loss, as in the paper.
STYLE_TAPS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


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
