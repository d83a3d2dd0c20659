"""Dense 4-D correlation between two feature maps (Rocco et al. 2017; Liu et al. 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adain.base.checks import check_same_device, check_shape

__all__ = ["l2_normalize_features", "correlation_4d", "normalize_correlation"]


def l2_normalize_features(feat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """L2-normalise ``(B, C, H, W)`` features over channels at each location."""
    return F.normalize(feat.float(), p=2.0, dim=1, eps=eps)


def correlation_4d(content: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
    """Full 4-D correlation: every content location against every geometry location.

    Args:
        content: ``(B, C, Hc, Wc)`` features (L2-normalise them first for cosine scores).
        geometry: ``(B, C, Hg, Wg)`` features.

    Returns:
        ``(B, Hc, Wc, Hg, Wg)`` with ``out[b, i, j, k, l] = <content[b, :, i, j], geometry[b, :, k, l]>``.
        ``out.flatten(1, 2)`` is the ``(B, Hc*Wc, Hg, Wg)`` view the regressor reads: for each
        geometry (output) location, one channel per content location.

    Example:
        >>> f = l2_normalize_features(torch.rand(1, 8, 4, 4))
        >>> correlation_4d(f, f).shape
        torch.Size([1, 4, 4, 4, 4])
    """
    check_shape(content, "content", ("B", "C", "H", "W"))
    check_shape(geometry, "geometry", ("B", "C", "H", "W"))
    if content.shape[:2] != geometry.shape[:2]:
        raise ValueError(
            f"content and geometry must share batch and channels; got {tuple(content.shape)} and {tuple(geometry.shape)}"
        )
    check_same_device(geometry, "geometry", content, "content")
    b, c, hc, wc = content.shape
    hg, wg = geometry.shape[-2:]
    corr = torch.einsum("bci,bcj->bij", content.reshape(b, c, hc * wc), geometry.reshape(b, c, hg * wg))
    return corr.view(b, hc, wc, hg, wg)  # (B, Hc, Wc, Hg, Wg)


def normalize_correlation(corr: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """ReLU, then L2 over the content (matched) dimension, per geometry location.

    Makes scores comparable across locations, as in Rocco et al.'s CNNGeometric.

    Args:
        corr: ``(B, Hc, Wc, Hg, Wg)``.

    Returns:
        ``(B, Hc*Wc, Hg, Wg)``.
    """
    b, hc, wc, hg, wg = corr.shape
    x = F.relu(corr).reshape(b, hc * wc, hg, wg)  # (B, 256, 16, 16) at the default size
    return F.normalize(x, p=2.0, dim=1, eps=eps)
