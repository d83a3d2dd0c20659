"""Global alignment: a similarity (scale, rotation, shift) between two images from mutual feature matches.

The warper's network learned mostly on synthetic warps of one photo (then a little on mined pairs of
different images), so it tracks small and medium displacements but not the large offset and scale
between two *different* objects (a small face in a
photo, a face filling a caricature). Here the two images' L2-normalised pool4 features are matched
(mutual nearest neighbours under the cosine), a similarity is fitted to the matches by RANSAC with
a weighted least-squares refit on the inliers, and the network's local field is then estimated
against the aligned content and composed with it (:meth:`warpstyle.geometry.warper.Warper.estimate`,
``align="matches"``; ``align=True`` is the multi-scale search of :mod:`warpstyle.geometry.scale_search`,
which finds the right one more often). Deterministic: a fixed seed for the hypotheses. The
:class:`Similarity` and its composition with a field serve both.

Convention:
    A :class:`Similarity` maps a geometry point to a content point in *aspect-corrected*
    normalised units, ``(x * W / L, y * H / L)`` with ``(x, y)`` normalised ``[-1, 1]``
    (``align_corners=False``) and ``L = max(H, W)`` of each image, so it is a similarity in pixels
    whatever the two aspect ratios. Fields are backward grids ``(B, H, W, 2)`` as in
    :mod:`warpstyle.fields.warp`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from adain.base.checks import check_shape

from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.fields.warp import identity_grid

__all__ = ["Similarity", "mutual_matches", "fit_similarity_ransac", "estimate_similarity", "align_features",
           "compose_similarity", "frame_overshoot", "MIN_INLIERS", "THRESHOLD", "ITERATIONS", "MAX_SCALE", "MAX_ANGLE_DEG",
           "MAX_OVERSHOOT", "MIN_GAIN"]

#: Fewer inlier matches than this and no similarity is reported (the plain network field is used).
MIN_INLIERS = 6
#: Inlier threshold in aspect-corrected units (the longer side spans 2): 6 % of the longer side.
THRESHOLD = 0.12
ITERATIONS = 1000
#: Plausible range of a global alignment; wilder hypotheses are never chosen.
MAX_SCALE = 2.0
MAX_ANGLE_DEG = 30.0
#: The geometry's frame, mapped into the content, may reach this far (a quarter of the content's
#: half-extent) beyond it: more would fill the output with reflected copies of the content.
MAX_OVERSHOOT = 0.25
#: The similarity must gather this much more match weight than not moving (the normalised identity) does.
MIN_GAIN = 0.5


@dataclasses.dataclass(frozen=True)
class Similarity:
    """``content = scale * R(angle) @ geometry + shift`` in aspect-corrected units (module docstring).

    Attributes:
        scale: content length per geometry length (above 1: the content's object is larger).
        angle: rotation in radians (counter-clockwise in image coordinates, y down).
        shift: ``(x, y)`` translation.
        inliers, matches: RANSAC inliers among the mutual matches it was fitted on.
    """

    scale: float
    angle: float
    shift: tuple[float, float]
    inliers: int = 0
    matches: int = 0

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """Map ``(..., 2)`` aspect-corrected geometry points to content points."""
        c, s = self.scale * math.cos(self.angle), self.scale * math.sin(self.angle)
        x, y = points[..., 0], points[..., 1]
        return torch.stack([c * x - s * y + self.shift[0], s * x + c * y + self.shift[1]], dim=-1)


def check_hw(hw: tuple[int, int], name: str) -> None:
    """Raise ValueError naming ``name`` unless ``hw`` is ``(H, W)`` with positive ints (as WarpField takes)."""
    try:
        bad = len(hw) != 2 or any(isinstance(v, bool) or operator.index(v) <= 0 for v in hw)
    except (TypeError, ValueError):
        bad = True
    if bad:
        raise ValueError(f"{name} must be (H, W) with positive ints; got {hw!r}")


def _aspect(hw: tuple[int, int]) -> tuple[float, float]:
    h, w = hw
    return w / max(h, w), h / max(h, w)


def _cell_points(n: int, hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """``(n*n, 2)`` aspect-corrected centres of an ``n x n`` feature grid over an image of size ``hw``."""
    g = identity_grid(1, n, n, device=device, dtype=torch.float64)[0].reshape(-1, 2)
    ax, ay = _aspect(hw)
    return g * torch.tensor([ax, ay], dtype=torch.float64, device=device)


def mutual_matches(content: torch.Tensor, geometry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mutual nearest neighbours between two L2-normalised feature maps ``(C, n, n)``.

    Returns:
        ``(content_index, geometry_index, score)``: flat cell indices and cosine scores (``>= 0``)
        of each geometry cell whose best content cell has it as its own best match.
    """
    corr = content.flatten(1).T.double() @ geometry.flatten(1).double()  # (Nc, Ng)
    best_c = corr.argmax(0)
    best_g = corr.argmax(1)
    g_idx = torch.arange(corr.shape[1], device=corr.device)
    keep = best_g[best_c] == g_idx
    g_idx, c_idx = g_idx[keep], best_c[keep]
    return c_idx, g_idx, corr[c_idx, g_idx].clamp_min(0.0)


def _solve(zg: torch.Tensor, zc: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted least squares ``zc ~ a * zg + b`` over complex points; returns ``(a, b)``."""
    sw = w.sqrt().to(zg.dtype)
    design = torch.stack([zg, torch.ones_like(zg)], dim=1) * sw[:, None]
    sol = torch.linalg.lstsq(design, (zc * sw).unsqueeze(1)).solution.squeeze(1)
    return sol[0], sol[1]


def _plausible(a: torch.Tensor, b: torch.Tensor, *, max_scale: float, max_angle_deg: float,
               frames: tuple[tuple[float, float], tuple[float, float]] | None, max_overshoot: float) -> torch.Tensor:
    """``(K,)`` bool: which similarities ``z -> a z + b`` have a plausible scale, angle and overshoot."""
    s = a.abs()
    # A relative slack of 1e-9 at the scale bounds: an exact 1/2 or 2 must not flip with rounding.
    ok = ((s >= (1 - 1e-9) / max_scale) & (s <= max_scale * (1 + 1e-9))
          & (torch.angle(a).abs() <= math.radians(max_angle_deg)))
    return ok & (frame_overshoot(a, b, frames) <= max_overshoot) if frames is not None else ok


def _support(resid: torch.Tensor, tol: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Summed weight of the matches whose residual is within ``tol`` (over the last dimension)."""
    return ((resid < tol).double() * w).sum(-1)


def _best_hypothesis(zg: torch.Tensor, zc: torch.Tensor, w: torch.Tensor, *, threshold: float, iterations: int,
                     seed: int, plausible: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                     ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The best-supported plausible two-point hypothesis ``(a, b)`` and its inliers; None if none is plausible."""
    n = zg.shape[0]
    gen = torch.Generator().manual_seed(seed)
    i = torch.randint(n, (iterations,), generator=gen).to(zg.device)
    j = torch.randint(n, (iterations,), generator=gen).to(zg.device)
    dz = zg[i] - zg[j]
    ok = dz.abs() > 1e-9
    i, j, dz = i[ok], j[ok], dz[ok]
    a = (zc[i] - zc[j]) / dz
    b = zc[i] - a * zg[i]
    keep = plausible(a, b)
    if not bool(keep.any()):
        return None
    a, b = a[keep], b[keep]
    tol = threshold * a.abs().clamp_min(1.0)  # residuals are in the content: a larger scale, a larger spread
    resid = (zc[None] - (a[:, None] * zg[None] + b[:, None])).abs()  # (hypotheses, N)
    best = int(_support(resid, tol[:, None], w).argmax())
    return (a[best], b[best]), resid[best] < tol[best]


def _refit(zg: torch.Tensor, zc: torch.Tensor, w: torch.Tensor, ab: tuple[torch.Tensor, torch.Tensor],
           inl: torch.Tensor, *, threshold: float, min_inliers: int
           ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """Three rounds of weighted least squares on the inliers; None once too few inliers remain."""
    for _ in range(3):
        if int(inl.sum()) < max(2, min_inliers):
            return None
        ab = _solve(zg[inl], zc[inl], w[inl].clamp_min(1e-6))
        inl = (zc - (ab[0] * zg + ab[1])).abs() < threshold * max(float(ab[0].abs()), 1.0)
    return ab, inl


def _gains_over_still(zg: torch.Tensor, zc: torch.Tensor, w: torch.Tensor, ab: tuple[torch.Tensor, torch.Tensor], *,
                      threshold: float, min_gain: float,
                      frames: tuple[tuple[float, float], tuple[float, float]] | None) -> bool:
    """Whether the fit gathers ``1 + min_gain`` times the weight that not moving gathers."""
    # "Not moving" is the normalised identity, which stretches between the two frames' aspect ratios.
    stretch = (1.0, 1.0) if frames is None else (frames[1][0] / frames[0][0], frames[1][1] / frames[0][1])
    z_still = torch.complex(zg.real * stretch[0], zg.imag * stretch[1])
    final_tol = threshold * max(float(ab[0].abs()), 1.0)
    moved = float(_support((zc - (ab[0] * zg + ab[1])).abs(), final_tol, w))
    still = float(_support((zc - z_still).abs(), final_tol, w))
    return moved > 0 and moved >= (1 + min_gain) * still  # written so that no evidence never passes


def fit_similarity_ransac(
    geometry_points: torch.Tensor,
    content_points: torch.Tensor,
    weights: torch.Tensor,
    *,
    threshold: float = THRESHOLD,
    iterations: int = ITERATIONS,
    max_scale: float = MAX_SCALE,
    max_angle_deg: float = MAX_ANGLE_DEG,
    min_inliers: int = MIN_INLIERS,
    min_gain: float = MIN_GAIN,
    frames: tuple[tuple[float, float], tuple[float, float]] | None = None,
    max_overshoot: float = MAX_OVERSHOOT,
    seed: int = 0,
) -> Similarity | None:
    """RANSAC similarity ``content ~ s R geometry + t`` from ``(N, 2)`` matched points.

    Hypotheses come from random pairs of matches; each is scored by the summed ``weights`` of the
    matches within ``threshold`` (times the hypothesis' scale when it is above 1, since the residual
    is measured in the content); the best is refitted on its inliers (weighted least squares, three
    rounds), and the refit, which is what gets applied, must pass every check below.

    Args:
        geometry_points, content_points: ``(N, 2)`` aspect-corrected matched points.
        weights: ``(N,)`` non-negative match weights (cosine scores).
        min_gain: the refit must gather ``1 + min_gain`` times the weight that not moving (the
            normalised identity, stretched between the frames' aspect ratios) gathers at the same
            tolerance, or no similarity is reported (weak evidence never moves the content).
        frames: ``((gx, gy), (cx, cy))``, half-extents of the geometry and content frames in
            aspect-corrected units; with them, hypotheses mapping the geometry frame more than
            ``max_overshoot`` (in content half-extents) beyond the content are not considered.

    Returns:
        The :class:`Similarity`, or None when the refit keeps fewer than ``min_inliers`` inliers,
        gains too little over not moving, or is not plausible (scale within ``[1/max_scale,
        max_scale]``, bounds included up to a relative 1e-9, angle within ``max_angle_deg``, overshoot
        within ``max_overshoot``; the raw
        hypotheses are filtered by the same checks before they are scored).

    Example:
        >>> g = torch.rand(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
        >>> sim = fit_similarity_ransac(g, 0.5 * g + 0.1, torch.ones(20))
        >>> round(sim.scale, 6), round(sim.angle, 6) + 0.0, [round(v, 6) for v in sim.shift]
        (0.5, 0.0, [0.1, 0.1])
    """
    n = geometry_points.shape[0]
    if weights.shape != (n,) or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError(f"weights must be ({n},), finite and non-negative; got shape {tuple(weights.shape)}")
    if n < max(2, min_inliers):
        return None
    zg = torch.complex(geometry_points[:, 0].double(), geometry_points[:, 1].double())
    zc = torch.complex(content_points[:, 0].double(), content_points[:, 1].double())
    w = weights.double()
    plausible = functools.partial(_plausible, max_scale=max_scale, max_angle_deg=max_angle_deg, frames=frames,
                                  max_overshoot=max_overshoot)
    hypothesis = _best_hypothesis(zg, zc, w, threshold=threshold, iterations=iterations, seed=seed,
                                  plausible=plausible)
    if hypothesis is None:
        return None
    fit = _refit(zg, zc, w, *hypothesis, threshold=threshold, min_inliers=min_inliers)
    if fit is None:
        return None
    ab, inl = fit
    # The refit is what is applied, so it is what must pass every check.
    if int(inl.sum()) < min_inliers or not bool(plausible(ab[0].reshape(1), ab[1].reshape(1))[0]):
        return None
    if not _gains_over_still(zg, zc, w, ab, threshold=threshold, min_gain=min_gain, frames=frames):
        return None
    return Similarity(float(ab[0].abs()), float(torch.angle(ab[0])), (float(ab[1].real), float(ab[1].imag)),
                      int(inl.sum()), n)


def frame_overshoot(a: torch.Tensor, b: torch.Tensor, frames: tuple[tuple[float, float], tuple[float, float]]) -> torch.Tensor:
    """How far the geometry frame's corners, mapped by ``z -> a z + b``, fall outside the content frame.

    ``frames = ((gx, gy), (cx, cy))``: half-widths and half-heights in aspect-corrected units.
    Returned in units of the content's half-extent (0: inside).
    """
    (gx, gy), (cx, cy) = frames
    corners = torch.tensor([complex(gx, gy), complex(-gx, gy), complex(gx, -gy), complex(-gx, -gy)],
                           dtype=a.dtype, device=a.device)
    m = a[:, None] * corners[None] + b[:, None]  # (hypotheses, 4)
    over = torch.maximum((m.real.abs() - cx) / cx, (m.imag.abs() - cy) / cy)
    return over.amax(1).clamp_min(0.0)


def estimate_similarity(
    content: torch.Tensor,
    geometry: torch.Tensor,
    content_hw: tuple[int, int],
    geometry_hw: tuple[int, int],
    **ransac: Any,
) -> list[Similarity | None]:
    """One similarity per batch element from L2-normalised features ``(B, C, n, n)``.

    Args:
        content, geometry: L2-normalised features on the same ``n x n`` grid (geometry batch 1 or B).
        content_hw, geometry_hw: ``(H, W)`` of the images they were computed from (the aspect
            ratio makes the fitted transform a similarity in pixels).
        ransac: keyword arguments of :func:`fit_similarity_ransac`.

    Returns:
        ``B`` entries, None where no reliable similarity was found.
    """
    check_shape(content, "content", ("B", "C", "H", "W"))
    check_shape(geometry, "geometry", ("B", "C", "H", "W"))
    n = content.shape[-1]
    if content.shape[-2] != n or geometry.shape[1:] != content.shape[1:]:
        raise ValueError(f"content and geometry must share channels and one square grid; got {tuple(content.shape)} "
                         f"and {tuple(geometry.shape)}")
    if geometry.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"geometry must have batch 1 or content's batch ({content.shape[0]}); got {geometry.shape[0]}")
    check_hw(content_hw, "content_hw")
    check_hw(geometry_hw, "geometry_hw")
    pc = _cell_points(n, content_hw, content.device)
    pg = _cell_points(n, geometry_hw, content.device)
    frames = (_aspect(geometry_hw), _aspect(content_hw))
    out: list[Similarity | None] = []
    for k in range(content.shape[0]):
        ci, gi, score = mutual_matches(content[k], geometry[k if geometry.shape[0] > 1 else 0])
        out.append(fit_similarity_ransac(pg[gi], pc[ci], score, frames=frames, **ransac))
    return out


def compose_similarity(
    sims: list[Similarity | None], grid: torch.Tensor, content_hw: tuple[int, int], geometry_hw: tuple[int, int]
) -> torch.Tensor:
    """``S(grid)``: map each point of a backward grid through its batch element's similarity.

    ``grid`` maps the geometry frame into an *aligned* content (the content seen through ``S``, in
    the geometry's frame); the result maps the geometry frame into the content itself. None
    entries leave their grid unchanged. The identity grid gives the similarity's own field.

    Shape:
        ``grid``: ``(B, H, W, 2)``, normalised, ``(x, y)``; ``sims``: 1 or ``B`` entries; result as ``grid``.

    Example:
        >>> from warpstyle.fields.warp import identity_grid
        >>> out = compose_similarity([Similarity(0.5, 0.0, (0.0, 0.0))], identity_grid(1, 2, 2), (8, 8), (8, 8))
        >>> out[0, 0, 0].tolist()  # the top-left cell centre (-0.5, -0.5), halved toward the centre
        [-0.25, -0.25]
    """
    check_shape(grid, "grid", ("B", "H", "W", 2))
    if len(sims) not in (1, grid.shape[0]):
        raise ValueError(f"sims must have 1 or grid's batch ({grid.shape[0]}) entries; got {len(sims)}")
    check_hw(content_hw, "content_hw")
    check_hw(geometry_hw, "geometry_hw")
    gx, gy = _aspect(geometry_hw)
    cx, cy = _aspect(content_hw)
    rows = []
    for k in range(grid.shape[0]):
        sim = sims[k if len(sims) > 1 else 0]
        g = grid[k]
        if sim is None:
            rows.append(g)
            continue
        p = sim.apply(g.double() * torch.tensor([gx, gy], dtype=torch.float64, device=g.device))
        rows.append((p / torch.tensor([cx, cy], dtype=torch.float64, device=g.device)).to(grid.dtype))
    return torch.stack(rows)


def align_features(
    content: torch.Tensor, sims: list[Similarity | None], content_hw: tuple[int, int], geometry_hw: tuple[int, int]
) -> torch.Tensor:
    """Content features seen through each similarity, in the geometry's frame, re-normalised.

    What the network would see from the aligned content image, without encoding it again
    (bilinear, reflection beyond the content as :func:`warpstyle.fields.warp.apply_warp` pads images).

    Shape:
        ``content``: ``(B, C, n, n)``; ``sims``: 1 or ``B`` entries; result ``(B, C, n, n)``, float32.
    """
    b, _, h, w = content.shape
    grid = compose_similarity(sims, identity_grid(b, h, w, device=content.device), content_hw, geometry_hw)
    warped = F.grid_sample(content.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return l2_normalize_features(warped)
