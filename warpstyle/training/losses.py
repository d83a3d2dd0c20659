"""Warper losses with a known target: field supervision, keypoint transfer, end-point error.

The unsupervised feature-matching objective, with its smoothness and fold terms, is
:mod:`warpstyle.geometry.objective`.
"""

from __future__ import annotations

import torch

__all__ = ["field_l1_loss", "keypoint_loss", "end_point_error"]


def field_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between fields ``(B, H, W, 2)`` (the official release's synthetic-pair loss)."""
    return (pred.float() - target.float()).abs().mean()


def keypoint_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean L1 between predicted and true content keypoints ``(B, N, 2)`` over valid ``mask (B, N)``."""
    err = (pred.float() - target.float()).abs().sum(-1)
    m = mask.float()
    return (err * m).sum() / m.sum().clamp_min(1.0)


def end_point_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean end-point error in pixels between fields ``(B, H, W, 2)`` of the same size.

    Normalised units are converted with the field's own width and height (``x * W / 2``).
    """
    h, w = pred.shape[1:3]
    scale = torch.tensor([w / 2.0, h / 2.0], device=pred.device)
    return ((pred.float() - target.float()) * scale).norm(dim=-1).mean(dim=(1, 2))
