"""Warper training losses: field supervision, keypoint transfer, feature matching, smoothness."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .warp import identity_grid

__all__ = ["field_l1_loss", "keypoint_loss", "feature_matching_loss", "smoothness_loss", "end_point_error"]


def field_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between fields ``(B, H, W, 2)`` (the official release's synthetic-pair loss)."""
    return (pred.float() - target.float()).abs().mean()


def keypoint_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean L1 between predicted and true content keypoints ``(B, N, 2)`` over valid ``mask (B, N)``."""
    err = (pred.float() - target.float()).abs().sum(-1)
    m = mask.float()
    return (err * m).sum() / m.sum().clamp_min(1.0)


def feature_matching_loss(content_feat: torch.Tensor, geometry_feat: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Unsupervised: 1 - cosine similarity of warped content features and geometry features.

    Args:
        content_feat: ``(B, C, H, W)`` content features.
        geometry_feat: ``(B, C, H, W)`` geometry features.
        grid: ``(B, H, W, 2)`` backward field at the features' resolution.
    """
    warped = F.grid_sample(content_feat.float(), grid.float(), mode="bilinear", padding_mode="border",
                           align_corners=False)
    return (1.0 - F.cosine_similarity(warped, geometry_feat.float(), dim=1)).mean()


def smoothness_loss(grid: torch.Tensor) -> torch.Tensor:
    """Mean absolute first difference of the displacement (total variation), ``(B, H, W, 2)``."""
    b, h, w, _ = grid.shape
    d = grid.float() - identity_grid(b, h, w, device=grid.device)
    return (d[:, 1:] - d[:, :-1]).abs().mean() + (d[:, :, 1:] - d[:, :, :-1]).abs().mean()


def end_point_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean end-point error in pixels between fields ``(B, H, W, 2)`` of the same size.

    Normalised units are converted with the field's own width and height (``x * W / 2``).
    """
    h, w = pred.shape[1:3]
    scale = torch.tensor([w / 2.0, h / 2.0], device=pred.device)
    return ((pred.float() - target.float()) * scale).norm(dim=-1).mean(dim=(1, 2))
