"""The feature-matching objective of a warp: parts agree in VGG features, the field stays smooth and unfolded.

One definition, used by the trainer (learning a field from related pairs) and by per-pair refinement
(:mod:`warpstyle.geometry.refine`), after DST (Kim et al. 2020): warp the content's features by the field and
compare them with the geometry's, so a field scores well when it brings each part of the content to
where the corresponding part of the geometry is.

Convention:
    ``grid`` is a *backward* field from the output (geometry) frame to the content: ``(B, H, W, 2)``
    normalised sampling coordinates in ``[-1, 1]``, ``(x, y)`` order, ``align_corners=False`` (the
    same as :mod:`warpstyle.fields.warp`). Feature maps are ``(B, C, h, w)``: the geometry's taps in the
    output frame, the content's in the content frame. The field is resized to each tap's ``(h, w)``
    (bicubic on the displacement, :func:`~warpstyle.fields.warp.resize_field`), so one field of any size
    scores against every tap.

Terms (each ``(B,)`` before reduction):
    * ``feature``: ``-sum_k mean_xy cos(grid_sample(F_c[k], grid_k), F_g[k])`` over the taps ``k``;
      ``-len(taps)`` (its minimum) when every warped content feature points where the geometry's does.
    * ``smooth``: sum over neighbouring cells (both axes) of the squared difference of the
      displacement, in normalised units. For a smooth field this sum does not depend on the grid's
      resolution (a discrete Dirichlet energy), so one weight serves 16x16 and 32x32 fields.
    * ``fold``: mean of ``relu(eps - det J)``, ``J`` the Jacobian of the backward map in pixels of
      the field (identity: ``det J = 1``), forward differences; positive where the map folds
      (``det <= 0``) or squeezes the content by more than ``1 / eps``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F

from adain.base.checks import check_shape
from adain.base.encoder.vgg import VGGEncoder

from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.fields.warp import identity_grid, resize_field

__all__ = [
    "OBJECTIVE_TAPS",
    "OBJECTIVE_SIZE",
    "SMOOTH_WEIGHT",
    "FOLD_WEIGHT",
    "FOLD_EPS",
    "objective_features",
    "feature_agreement",
    "smoothness_energy",
    "fold_penalty",
    "feature_matching_objective",
]

#: VGG taps compared by default: pool4 (16x16 at 256 px) for parts, relu4_1 (32x32) for their outlines.
OBJECTIVE_TAPS: tuple[str, ...] = ("pool4", "relu4_1")
#: Images are resized to this square before encoding (the warper's feature size).
OBJECTIVE_SIZE = 256
#: Default weight of ``smooth``: 0.01 gave the best landmark figures of the December prototypes
#: (PCK@0.10 0.83 against 0.77 at 0.05 on 45 face x caricature pairs).
SMOOTH_WEIGHT = 0.01
#: Default weight and threshold of ``fold``.
FOLD_WEIGHT = 1.0
FOLD_EPS = 0.1


def objective_features(
    encoder: VGGEncoder,
    image: torch.Tensor,
    taps: Iterable[str] = OBJECTIVE_TAPS,
    *,
    size: int = OBJECTIVE_SIZE,
) -> dict[str, torch.Tensor]:
    """Channel-L2-normalised VGG taps of ``image`` ``(B, 3, H, W)`` in [0, 1], resized to ``size`` square.

    Returns:
        tap -> float32 ``(B, C, h, w)``, unit length over ``C`` at each location (zero where the
        feature is zero). The resize matches :meth:`Warper.features`, so ``["pool4"]`` equals it.
        Differentiable (to re-encode a warped image in training); wrap constant features in
        ``torch.no_grad()``.
    """
    x = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False,
                      antialias=True).contiguous(memory_format=torch.channels_last)
    feats = encoder(x, taps=tuple(taps))
    return {k: l2_normalize_features(v).float() for k, v in feats.items()}


def _grid_at(grid: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return grid if tuple(grid.shape[1:3]) == hw else resize_field(grid, hw)


def feature_agreement(
    content_feats: Mapping[str, torch.Tensor],
    geometry_feats: Mapping[str, torch.Tensor],
    grid: torch.Tensor,
    *,
    content_warped: bool = False,
) -> torch.Tensor:
    """``(B,)`` sum over the geometry's taps of the mean cosine of warped content and geometry features.

    Both sides must be channel-L2-normalised (:func:`objective_features`). Content features are
    sampled with border padding (a part beyond the edge keeps the edge's
    feature, so leaving the image is not rewarded). With ``content_warped=True`` the content
    features are those of the content already warped by ``grid`` and re-encoded (output frame):
    they are compared as they are.
    """
    total = grid.new_zeros(grid.shape[0], dtype=torch.float32)
    for k, fg in geometry_feats.items():
        fc = content_feats[k]
        if content_warped:
            warped = fc.float()
        else:
            g = _grid_at(grid.float(), (int(fg.shape[-2]), int(fg.shape[-1])))
            if fc.shape[0] != g.shape[0]:
                fc = fc.expand(g.shape[0], -1, -1, -1)
            warped = F.grid_sample(fc.float(), g, mode="bilinear", padding_mode="border", align_corners=False)
        if warped.shape[0] != grid.shape[0]:
            warped = warped.expand(grid.shape[0], -1, -1, -1)
        if fg.shape[0] != grid.shape[0]:
            fg = fg.expand(grid.shape[0], -1, -1, -1)
        # fg has unit length, so the cosine is <warped, fg> / |warped| (cheaper than cosine_similarity).
        dot = (warped * fg.float()).sum(dim=1)  # (B, h, w)
        total = total + (dot / warped.norm(dim=1).clamp_min(1e-6)).mean(dim=(1, 2))
    return total


def smoothness_energy(grid: torch.Tensor) -> torch.Tensor:
    """``(B,)`` sum of squared displacement differences between neighbouring cells (both axes).

    Zero for any constant displacement (a translation), the identity included.
    """
    b, h, w, _ = grid.shape
    d = grid.float() - identity_grid(b, h, w, device=grid.device)
    return (d[:, 1:] - d[:, :-1]).pow(2).sum(dim=(1, 2, 3)) + (d[:, :, 1:] - d[:, :, :-1]).pow(2).sum(dim=(1, 2, 3))


def fold_penalty(grid: torch.Tensor, eps: float = FOLD_EPS) -> torch.Tensor:
    """``(B,)`` mean of ``relu(eps - det J)`` over the field's cells (see the module's Terms).

    The Jacobian uses the same differences as :func:`~warpstyle.fields.metrics.fold_fraction`, so a
    cell that function counts as a fold has a penalty of at least ``eps`` here.
    """
    b, h, w, _ = grid.shape
    if h < 2 or w < 2:
        return grid.new_zeros(b, dtype=torch.float32)
    p = grid.float() * grid.new_tensor([w / 2.0, h / 2.0], dtype=torch.float32)  # content pixels of the field
    dx = p[:, :, 1:] - p[:, :, :-1]  # (B, H, W-1, 2)
    dy = p[:, 1:] - p[:, :-1]  # (B, H-1, W, 2)
    dx = torch.cat([dx, dx[:, :, -1:]], dim=2)  # (B, H, W, 2)
    dy = torch.cat([dy, dy[:, -1:]], dim=1)  # (B, H, W, 2)
    det = dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]  # (B, H, W); identity: 1
    return F.relu(eps - det).mean(dim=(1, 2))


def feature_matching_objective(
    content_feats: Mapping[str, torch.Tensor],
    geometry_feats: Mapping[str, torch.Tensor],
    grid: torch.Tensor,
    *,
    smooth_weight: float = SMOOTH_WEIGHT,
    fold_weight: float = FOLD_WEIGHT,
    fold_eps: float = FOLD_EPS,
    content_warped: bool = False,
    reduction: Literal["mean", "none"] = "mean",
) -> dict[str, torch.Tensor]:
    """The objective to minimise: ``loss = feature + smooth_weight * smooth + fold_weight * fold``.

    Args:
        content_feats: tap -> ``(B or 1, C, h, w)`` channel-L2-normalised content features
            (:func:`objective_features`); every tap of ``geometry_feats`` must be present.
        geometry_feats: tap -> ``(B or 1, C, h, w)`` normalised geometry features; its taps are the
            ones compared.
        grid: ``(B, H, W, 2)`` backward field (module Convention), any ``H, W``; differentiable.
        smooth_weight, fold_weight: weights of the regularisers (>= 0).
        fold_eps: the determinant below which ``fold`` is positive.
        content_warped: ``content_feats`` are features of the content already warped by ``grid``
            and re-encoded (the paper's training objective); the regularisers still read ``grid``.
        reduction: ``"mean"`` over the batch (scalars) or ``"none"`` (``(B,)`` each).

    Returns:
        ``{"loss", "feature", "smooth", "fold"}``; ``feature`` is minus the agreement of
        :func:`feature_agreement` (``-len(taps)`` at best).

    Example:
        >>> f = {"pool4": torch.nn.functional.normalize(torch.rand(1, 8, 4, 4), dim=1)}
        >>> out = feature_matching_objective(f, f, identity_grid(1, 4, 4))
        >>> round(float(out["feature"]), 4), float(out["smooth"]), float(out["fold"])
        (-1.0, 0.0, 0.0)
    """
    check_shape(grid, "grid", ("B", "H", "W", 2))
    if not geometry_feats:
        raise ValueError("geometry_feats must hold at least one tap")
    missing = [k for k in geometry_feats if k not in content_feats]
    if missing:
        raise ValueError(f"content_feats lacks the taps {missing} of geometry_feats")
    if smooth_weight < 0 or fold_weight < 0:
        raise ValueError(f"smooth_weight and fold_weight must be >= 0; got {smooth_weight}, {fold_weight}")
    feature = -feature_agreement(content_feats, geometry_feats, grid, content_warped=content_warped)
    smooth = smoothness_energy(grid)
    fold = fold_penalty(grid, fold_eps)
    out = {"loss": feature + smooth_weight * smooth + fold_weight * fold, "feature": feature,
           "smooth": smooth, "fold": fold}
    if reduction == "mean":
        return {k: v.mean() for k, v in out.items()}
    if reduction != "none":
        raise ValueError(f"reduction must be 'mean' or 'none'; got {reduction!r}")
    return out
