"""Warper losses: field supervision, keypoint transfer, feature matching, smoothness, folds.

Field convention throughout: a backward grid ``(B, H, W, 2)``, for each output (geometry) position
the content position to sample, normalised to [-1, 1] in (x, y) order with ``align_corners=False``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .warp import identity_grid, resize_field

__all__ = [
    "field_l1_loss", "keypoint_loss", "feature_matching_loss", "multi_tap_feature_loss", "smoothness_loss", "fold_loss",
    "jacobian_determinant", "end_point_error",
]


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


def multi_tap_feature_loss(
    content_feats: dict[str, torch.Tensor], geometry_feats: dict[str, torch.Tensor], grid: torch.Tensor
) -> torch.Tensor:
    """Mean over taps of :func:`feature_matching_loss`, the field resized to each tap's resolution.

    Args:
        content_feats, geometry_feats: the same taps (e.g. ``pool4``, ``relu4_1``), ``(B, C_k, H_k, W_k)``.
        grid: ``(B, h, w, 2)`` backward field at any resolution.
    """
    total = grid.new_zeros((), dtype=torch.float32)
    for k, fg in geometry_feats.items():
        g = grid if tuple(grid.shape[1:3]) == tuple(fg.shape[-2:]) else resize_field(grid, tuple(fg.shape[-2:]))
        total = total + feature_matching_loss(content_feats[k], fg, g)
    return total / max(len(geometry_feats), 1)


def jacobian_determinant(grid: torch.Tensor) -> torch.Tensor:
    """``(B, H-1, W-1)`` determinant of the backward map's Jacobian, relative to the identity's.

    Forward differences over each grid cell; 1 for the identity or a translation, below 0 where the
    field folds (the content is sampled in reversed order there).
    """
    g = grid.float()
    h, w = g.shape[1:3]
    dx = (g[:, :-1, 1:] - g[:, :-1, :-1]) * (w / 2.0)  # d(content x, y) / d(output x), in cells
    dy = (g[:, 1:, :-1] - g[:, :-1, :-1]) * (h / 2.0)
    return dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]


def fold_loss(grid: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Mean of ``relu(margin - det)`` over cells: penalises folds and near-folds of the field."""
    return F.relu(margin - jacobian_determinant(grid)).mean()


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
