"""Per-pair refinement: optimise one pair's field on the feature-matching objective, from the network's field.

DST (Kim et al. 2020) optimises a warp per pair from scratch for minutes; here the warper's field is
the starting point, the features are computed once (the field moves, the images are never
re-encoded) and a few hundred Adam steps on the displacement take seconds on a CPU.

Convention:
    Fields are backward grids ``(B, H, W, 2)``, normalised ``[-1, 1]``, ``(x, y)``,
    ``align_corners=False`` (see :mod:`warpstyle.fields.warp`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from adain.base.checks import check_shape

from warpstyle.geometry.objective import FOLD_EPS, FOLD_WEIGHT, SMOOTH_WEIGHT, feature_matching_objective
from warpstyle.fields.warp import identity_grid, resize_field

__all__ = ["refine_field", "REFINE_LR", "REFINE_SIZE"]

#: Adam step size on the displacement (normalised units): 0.01 moves a cell by at most ~1/200 of
#: the image per step, so 100 steps can cross half the image.
REFINE_LR = 0.01
#: Side of the optimised field; the network's 16x16 field is resized to it first.
REFINE_SIZE = 16


def refine_field(
    content_feats: Mapping[str, torch.Tensor],
    geometry_feats: Mapping[str, torch.Tensor],
    grid: torch.Tensor,
    *,
    steps: int,
    lr: float = REFINE_LR,
    size: int = REFINE_SIZE,
    smooth_weight: float = SMOOTH_WEIGHT,
    fold_weight: float = FOLD_WEIGHT,
    fold_eps: float = FOLD_EPS,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Minimise :func:`~warpstyle.geometry.objective.feature_matching_objective` over the field, from ``grid``.

    Args:
        content_feats, geometry_feats: tap -> channel-L2-normalised features, computed once
            (:func:`~warpstyle.geometry.objective.objective_features`); batch ``B`` or 1.
        grid: ``(B, H, W, 2)`` starting field (the warper's estimate).
        steps: Adam steps (0 returns ``grid`` itself, untouched).
        lr: Adam learning rate on the displacement.
        size: side of the optimised field (``grid`` is resized to ``size x size`` first).
        smooth_weight, fold_weight, fold_eps: the objective's regularisers.
        on_step: called as ``on_step(step, field)`` after each step (1-based, detached field), e.g.
            to score several step counts in one run (the first ``n`` steps of a longer run are
            exactly an ``n``-step run).

    Returns:
        ``(B, size, size, 2)`` refined field, detached, float32 (``grid`` itself when ``steps == 0``).
    """
    check_shape(grid, "grid", ("B", "H", "W", 2))
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    if steps == 0:
        return grid
    if size < 2:
        raise ValueError(f"size must be at least 2; got {size}")
    start = resize_field(grid.detach().float(), (size, size))
    b = start.shape[0]
    ident = identity_grid(b, size, size, device=start.device)
    disp = (start - ident).clone().requires_grad_(True)
    cf = {k: v.detach().float() for k, v in content_feats.items()}
    gf = {k: v.detach().float() for k, v in geometry_feats.items()}
    opt = torch.optim.Adam([disp], lr=lr)
    with torch.enable_grad():  # callers such as Warper.estimate run under no_grad
        for step in range(int(steps)):
            out = feature_matching_objective(cf, gf, ident + disp, smooth_weight=smooth_weight,
                                             fold_weight=fold_weight, fold_eps=fold_eps, reduction="none")
            opt.zero_grad(set_to_none=True)
            out["loss"].sum().backward()  # sum: each pair's field follows its own objective
            opt.step()
            if on_step is not None:
                on_step(step + 1, (ident + disp).detach())
    return (ident + disp).detach()
