"""Pure tensor functions of the texture stage: channel statistics, AdaIN, colour preservation."""

from __future__ import annotations

import torch

from .base.checks import check_same_device, check_shape

__all__ = [
    "calc_mean_std",
    "adaptive_instance_norm",
    "adain_to_stats",
    "match_color",
    "luminance_transfer",
    "rgb_to_yuv",
    "yuv_to_rgb",
]


def _upcast(x: torch.Tensor) -> torch.Tensor:
    # Statistics in at least float32 (half/bf16 under autocast lose them); never downcast float64.
    return x if x.dtype == torch.float64 else x.float()


def calc_mean_std(
    feat: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation over space, optionally weighted by a mask.

    Args:
        feat: ``(B, C, H, W)`` features.
        mask: optional ``(B, 1, H, W)`` weights in [0, 1]; statistics are over the weighted region.
        eps: added to the variance before the square root.

    Returns:
        ``(mean, std)``, each ``(B, C, 1, 1)``, in float32 (float64 for float64 input).

    Example:
        >>> m, s = calc_mean_std(torch.rand(2, 4, 8, 8))
        >>> m.shape
        torch.Size([2, 4, 1, 1])
    """
    check_shape(feat, "feat", ("B", "C", "H", "W"))
    if mask is not None:
        _check_mask(mask, "mask", feat, "feat")
    x = _upcast(feat)
    if mask is None:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        return mean, (var + eps).sqrt()
    w = mask.to(x.dtype)
    total = w.sum(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    mean = (x * w).sum(dim=(2, 3), keepdim=True) / total
    var = ((x - mean) ** 2 * w).sum(dim=(2, 3), keepdim=True) / total
    return mean, (var + eps).sqrt()


def _check_mask(mask: object, name: str, feat: torch.Tensor, feat_name: str) -> None:
    b, _, h, w = feat.shape
    check_shape(mask, name, ("B", 1, h, w))
    assert isinstance(mask, torch.Tensor)
    if mask.shape[0] not in (1, b):
        raise ValueError(f"{name} must have batch 1 or {feat_name}'s batch ({b}); got {mask.shape[0]}")
    check_same_device(mask, name, feat, feat_name)


def adaptive_instance_norm(
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    content_mask: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017, eq. 8): give ``content`` the channel mean/std of ``style``.

    Args:
        content: ``(B, C, H, W)`` content features.
        style: ``(B, C, Hs, Ws)`` style features (any spatial size).
        content_mask: optional ``(B, 1, H, W)``: normalise the content by the statistics of this
            region only (spatial control, section 7.3 of the paper).

    Returns:
        ``(B, C, H, W)`` float32 features (float64 for float64 input) whose channel statistics
        equal the style's.

    Example:
        >>> adaptive_instance_norm(torch.rand(1, 8, 4, 4), torch.rand(1, 8, 6, 6)).shape
        torch.Size([1, 8, 4, 4])
    """
    check_shape(content, "content", ("B", "C", "H", "W"))
    check_shape(style, "style", ("B", content.shape[1], "H", "W"))
    if style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"style must have batch 1 or content's batch ({content.shape[0]}); got {style.shape[0]}")
    check_same_device(style, "style", content, "content")
    if content_mask is not None:
        _check_mask(content_mask, "content_mask", content, "content")
    return _adain_to_stats(content, *calc_mean_std(style, None, eps), content_mask, eps)


def adain_to_stats(content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *,
                   content_mask: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN to given channel statistics: :func:`adaptive_instance_norm` with the style's
    ``(mean, std)`` from :func:`calc_mean_std` instead of its features (each ``(1 or B, C, 1, 1)``),
    so a caller can keep a style's statistics rather than its feature maps.
    """
    check_shape(content, "content", ("B", "C", "H", "W"))
    check_shape(mean, "mean", ("B", content.shape[1], 1, 1))
    check_shape(std, "std", ("B", content.shape[1], 1, 1))
    return _adain_to_stats(content, mean, std, content_mask, eps)


def _adain_to_stats(content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                    content_mask: torch.Tensor | None, eps: float) -> torch.Tensor:
    c_mean, c_std = calc_mean_std(content, content_mask, eps)
    # One full-size temporary besides the output: these maps can be relu1_1 at 4K (2 GB each).
    return torch.addcmul(mean, _upcast(content) - c_mean, std / c_std)


def _sqrtm_and_inv(cov: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    evals, evecs = torch.linalg.eigh(cov + eps * torch.eye(3, dtype=cov.dtype, device=cov.device))
    evals = evals.clamp_min(eps)
    sqrt = evecs @ torch.diag_embed(evals.sqrt()) @ evecs.transpose(-1, -2)
    inv_sqrt = evecs @ torch.diag_embed(evals.rsqrt()) @ evecs.transpose(-1, -2)
    return sqrt, inv_sqrt


def match_color(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Linearly map ``source``'s colours so their mean and covariance equal ``target``'s.

    Colour preservation by "colour histogram matching" of Gatys et al. 2016: apply it to the
    style image with the content as target before stylizing.

    Args:
        source: ``(B, 3, H, W)`` in [0, 1].
        target: ``(B, 3, H2, W2)`` in [0, 1].

    Returns:
        ``(B, 3, H, W)`` in [0, 1].
    """
    b = source.shape[0]
    s = source.float().reshape(b, 3, -1)
    t = target.float().reshape(target.shape[0], 3, -1)
    s_mean, t_mean = s.mean(-1, keepdim=True), t.mean(-1, keepdim=True)
    s_c, t_c = s - s_mean, t - t_mean
    s_cov = s_c @ s_c.transpose(1, 2) / s.shape[-1]
    t_cov = t_c @ t_c.transpose(1, 2) / t.shape[-1]
    _, s_inv_sqrt = _sqrtm_and_inv(s_cov)
    t_sqrt, _ = _sqrtm_and_inv(t_cov)
    out = t_sqrt @ s_inv_sqrt @ s_c + t_mean
    return out.reshape(source.shape).clamp(0, 1).to(source.dtype)


_RGB2YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])


def rgb_to_yuv(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB -> YUV (BT.601)."""
    return torch.einsum("oc,bchw->bohw", _RGB2YUV.to(x), x)


def yuv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` YUV (BT.601) -> RGB."""
    return torch.einsum("oc,bchw->bohw", torch.linalg.inv(_RGB2YUV).to(x), x)


def luminance_transfer(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep the luminance of ``stylized`` and the chrominance of ``content`` (same size).

    Args:
        stylized: ``(B, 3, H, W)`` in [0, 1].
        content: ``(B, 3, H, W)`` in [0, 1].

    Returns:
        ``(B, 3, H, W)`` in [0, 1].
    """
    y = rgb_to_yuv(stylized.float())[:, :1]
    uv = rgb_to_yuv(content.float())[:, 1:]
    return yuv_to_rgb(torch.cat([y, uv], dim=1)).clamp(0, 1)
