"""Training-free semantic matching: a field from VGG best-buddy matches, a robust similarity and a thin-plate spline.

No network is trained here; only the VGG-19 encoder's features are used, and nothing is face-specific.

1. Both images are encoded at each longer side of :data:`MATCH_SIZES` (:func:`matching_features`,
   one pass per size); every tap is L2-normalised per location, and an activation map (per-location
   channel norm, min-max scaled per image) marks the cells that carry content. VGG features are not
   scale-invariant: a face half the size of the other one's matches poorly at one size, so steps
   2-4 run for each image at each size against the other at the base size (five candidates for
   three sizes), and the confident fit with the most inliers is kept (a candidate beyond the base
   sizes needs more support: :data:`MIN_INLIERS_EXTRA_SIZE`).
2. Coarse matches: mutual nearest neighbours ("best buddies", Aberman et al. 2018) of the full
   cosine matrix at ``pool4``, cells with weak activation on either side dropped.
3. Coarse to fine: at each finer tap, each match's 2x2 child cells plus a one-cell margin (a 4x4
   window) in both images, mutual nearest neighbours inside the window pair; each geometry cell
   keeps its best partner.
4. A similarity by RANSAC over two-point samples, scored by inlier weight *times a prior* toward no
   rotation and no scale change (global fits otherwise invent rotations and zooms on weak matches),
   then weighted least-squares refits; a rotation-free fit replaces the rotated one unless the
   rotation is clearly supported.
5. A thin-plate spline (:class:`scipy.interpolate.RBFInterpolator`) on the inliers' residuals after
   the similarity; its smoothing is raised (and, failing that, its amplitude shrunk) until the
   field does not fold.

The local soft-argmax refinement some matchers add after step 5 is deliberately absent: each cell
snaps to its own spot and the rendered image tears.

Known limits: when the geometry's object is much smaller than the content's (a small tiger in a wide
landscape), the prior keeps the scale modest and the fit can crop the content rather than shrink it
onto the object; in-plane tilts below about 15 degrees are left upright on purpose.

Convention:
    Fields are backward grids ``(1, N, N, 2)`` from the output (geometry) frame into the content,
    normalised ``[-1, 1]``, ``(x, y)``, ``align_corners=False`` (:mod:`warpstyle.fields.warp`).
    Matching works in *aspect-corrected* units ``(x * W / L, y * H / L)`` with ``L = max(H, W)`` of
    each original image (the longer side spans 2), as :class:`warpstyle.geometry.align.Similarity`
    does, so the fitted similarity is one in pixels whatever the two aspect ratios. Batch 1 only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.interpolate import RBFInterpolator

from adain.base.encoder.vgg import VGGEncoder

from warpstyle.fields.metrics import fold_fraction
from warpstyle.fields.warp import identity_grid
from warpstyle.geometry.align import Similarity, check_hw

__all__ = [
    "MATCH_SIZE", "MATCH_SIZES", "MATCH_TAPS", "MatchFeatures", "MatchResult", "matching_features", "match_field",
    "THRESHOLD", "ITERATIONS", "MIN_SCALE", "MAX_SCALE", "ANGLE_SIGMA_DEG", "SCALE_SIGMA", "ROTATION_GAIN",
    "MIN_INLIERS", "MIN_INLIERS_EXTRA_SIZE", "MIN_INLIER_RATIO", "MIN_SPREAD", "MAX_TPS_POINTS", "MIN_ACTIVATION",
]

#: Longer side of the matched images at the base scale, in pixels (a multiple of 16 so that pool4 cells tile it).
MATCH_SIZE = 256
#: Longer sides at which each image is encoded, the base first (steps of sqrt 2). Each image at each
#: size is matched against the other at the base size. On 80 face pairs of the train split, the
#: confident fit with the most inliers over these five candidates took PCK@0.10 from 0.614 (base
#: size only) to 0.705 and the pairs with no confident fit from 13 to 3.
MATCH_SIZES = (256, 362, 512)
#: Coarsest first; each tap has twice the resolution of the one before it.
MATCH_TAPS = ("pool4", "relu4_1", "relu3_1", "relu2_1")
#: Cells whose activation (min-max scaled channel norm) is at most this are not matched.
MIN_ACTIVATION = 0.05
#: Inlier radius in aspect-corrected units: 6 % of the longer side (which spans 2).
THRESHOLD = 0.12
ITERATIONS = 2000
#: Hypotheses outside this scale range are never scored.
MIN_SCALE, MAX_SCALE = 0.25, 4.0
#: Prior on the similarity: the support is divided by ``1 + (angle / ANGLE_SIGMA_DEG)^2`` and by
#: ``1 + (log scale / SCALE_SIGMA)^2``. On 40 face pairs (train split) 15 degrees beat 10 and 30, and
#: 1.5 beat log 2, 1 and 2.5 (mean error); without any prior the mean error rose from 0.127 to 0.150.
ANGLE_SIGMA_DEG = 15.0
SCALE_SIGMA = 1.5
#: A rotated fit is kept only if its prior-weighted support beats the rotation-free fit by this factor.
ROTATION_GAIN = 1.0
#: Confidence: pool4 matches with an inlier descendant (fine matches inherit their pool4 match's
#: placement, so they are not independent evidence), inlier share of the final matches (random
#: features give about 0.02, real pairs 0.07 and more), and the geometry frame's coverage. Stricter
#: thresholds lost more good fits than bad ones on the face pairs (identity is rarely better).
MIN_INLIERS = 6
#: The same for a candidate with either image beyond its base size: each extra size is one more
#: chance of a fit by accident (with 6, a girl's hair matched to The Scream's sky at 512 px). On the
#: 80 train-split face pairs 8 costs little (PCK@0.10 0.717 -> 0.705), 10 and more lose good fits.
MIN_INLIERS_EXTRA_SIZE = 8
MIN_INLIER_RATIO = 0.05
MIN_SPREAD = 0.1
#: The spline is fitted on at most this many inliers (its cost is cubic in their number).
MAX_TPS_POINTS = 600
#: Shortest two-point baseline for a hypothesis (closer points give wild scales and angles).
_MIN_BASELINE = 0.1
#: Cells of the occupancy grid that measures spread (per side).
_SPREAD_CELLS = 8
#: A field is accepted when nowhere is the local area shrunk below this share of the similarity's.
_MIN_JACOBIAN_RATIO = 0.2


#: One image's taps at one size: ``{tap: (1, C, h, w)}`` for each tap of :data:`MATCH_TAPS`.
MatchFeatures = dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class MatchResult:
    """What :func:`match_field` found.

    Attributes:
        grid: ``(1, N, N, 2)`` backward field, output (geometry) frame -> content (module Convention);
            the identity when not confident.
        similarity: the global fit (geometry -> content, aspect-corrected units), None when not confident.
        inliers: final-level matches within :data:`THRESHOLD` of the fit.
        spread: share of an 8x8 partition of the geometry frame holding at least one inlier, in ``[0, 1]``.
        confident: supporting pool4 matches, inlier share and spread all reach their thresholds
            (:data:`MIN_INLIERS`, :data:`MIN_INLIER_RATIO`, :data:`MIN_SPREAD`).
        reason: one line saying why not confident (``""`` when confident).
    """

    grid: torch.Tensor
    similarity: Similarity | None
    inliers: int
    spread: float
    confident: bool
    reason: str


def _match_hw(hw: tuple[int, int], size: int = MATCH_SIZE) -> tuple[int, int]:
    """``(H, W)`` resized so the longer side is ``size``, both sides multiples of 16."""
    h, w = hw
    scale = size / max(h, w)
    return max(16, round(h * scale / 16) * 16), max(16, round(w * scale / 16) * 16)


def matching_features(encoder: VGGEncoder, image: torch.Tensor,
                      sizes: tuple[int, ...] = MATCH_SIZES) -> list[MatchFeatures]:
    """Raw VGG taps of ``image`` resized so its longer side is each of ``sizes`` (aspect kept).

    One encoder pass per size; the caller handles ``no_grad`` / autocast.

    Args:
        encoder: the VGG-19 encoder.
        image: ``(1, 3, H, W)`` RGB in ``[0, 1]``.
        sizes: longer sides, the base size first.

    Returns:
        One ``{tap: (1, C, h, w)}`` per size, for each tap of :data:`MATCH_TAPS`; ``pool4`` has
        ``h, w`` of the resized image / 16, each later tap twice its predecessor's.
    """
    out = []
    for size in sizes:
        h, w = _match_hw((image.shape[-2], image.shape[-1]), size)
        x = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        taps = encoder(x, taps=MATCH_TAPS)
        out.append({t: taps[t] for t in MATCH_TAPS})  # coarsest first, as match_field walks them
    return out


def _prepare(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, C, h, w)`` raw tap -> ``(h*w, C)`` L2-normalised float64 features and ``(h*w,)`` activation."""
    f = feat[0].double().flatten(1).T  # (hw, C)
    norm = f.norm(dim=1)
    act = (norm - norm.min()) / (norm.max() - norm.min()).clamp_min(1e-12)
    return f / norm.clamp_min(1e-12)[:, None], act


def _coarse_matches(fc: torch.Tensor, fg: torch.Tensor, ac: torch.Tensor, ag: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best buddies of the full cosine matrix: ``(content_index, geometry_index, score)``."""
    corr = fc @ fg.T  # (Nc, Ng)
    best_c = corr.argmax(0)
    best_g = corr.argmax(1)
    gi = torch.arange(fg.shape[0])
    keep = (best_g[best_c] == gi) & (ac[best_c] > MIN_ACTIVATION) & (ag > MIN_ACTIVATION)
    gi, ci = gi[keep], best_c[keep]
    return ci, gi, corr[ci, gi]


def _window(idx: torch.Tensor, w_coarse: int, hw_fine: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fine cells of each coarse cell's 2x2 children plus a one-cell margin: ``(M, 16)`` indices and validity."""
    hf, wf = hw_fine
    y, x = idx // w_coarse, idx % w_coarse
    off = torch.arange(-1, 3)
    ys = (2 * y)[:, None, None] + off[None, :, None]  # (M, 4, 1)
    xs = (2 * x)[:, None, None] + off[None, None, :]  # (M, 1, 4)
    valid = ((ys >= 0) & (ys < hf) & (xs >= 0) & (xs < wf)).reshape(-1, 16)
    flat = (ys.clamp(0, hf - 1) * wf + xs.clamp(0, wf - 1)).reshape(-1, 16)
    return flat, valid


def _refine_matches(ci: torch.Tensor, gi: torch.Tensor, coarse_w: tuple[int, int],
                    fc: torch.Tensor, fg: torch.Tensor, ac: torch.Tensor, ag: torch.Tensor,
                    hw_c: tuple[int, int], hw_g: tuple[int, int]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One coarse-to-fine step: best buddies inside each match's 4x4 window pair, best partner per geometry cell.

    Returns ``(content_index, geometry_index, score, source)``, ``source`` the coarse match each came from.
    """
    wc_idx, wc_ok = _window(ci, coarse_w[0], hw_c)
    wg_idx, wg_ok = _window(gi, coarse_w[1], hw_g)
    wc_ok = wc_ok & (ac[wc_idx] > MIN_ACTIVATION)
    wg_ok = wg_ok & (ag[wg_idx] > MIN_ACTIVATION)
    corr = torch.einsum("mic,mjc->mij", fc[wc_idx], fg[wg_idx])  # (M, 16 content, 16 geometry)
    corr = corr.masked_fill(~(wc_ok[:, :, None] & wg_ok[:, None, :]), -math.inf)
    best_c = corr.argmax(1)  # (M, 16): per geometry cell, its content cell
    best_g = corr.argmax(2)  # (M, 16): per content cell, its geometry cell
    j = torch.arange(16)[None].expand_as(best_c)
    mutual = (torch.gather(best_g, 1, best_c) == j) & wg_ok & torch.gather(wc_ok, 1, best_c)
    score = torch.gather(corr, 1, best_c[:, None, :])[:, 0]
    g_all, c_all = wg_idx[mutual], torch.gather(wc_idx, 1, best_c)[mutual]
    s_all = score[mutual]
    src_all = torch.arange(len(ci))[:, None].expand_as(best_c)[mutual]
    # Windows overlap: a geometry cell matched from several windows keeps its best partner.
    order = torch.argsort(s_all, descending=True, stable=True)
    g_all, c_all, s_all, src_all = g_all[order], c_all[order], s_all[order], src_all[order]
    first = torch.from_numpy(np.unique(g_all.numpy(), return_index=True)[1])
    return c_all[first], g_all[first], s_all[first], src_all[first]


def _cell_points(idx: torch.Tensor, hw_feat: tuple[int, int], hw_image: tuple[int, int]) -> np.ndarray:
    """Complex aspect-corrected centres of flat cell indices of an ``hw_feat`` grid over an ``hw_image`` image."""
    h, w = hw_feat
    i = idx.numpy()
    x = (2 * (i % w) + 1) / w - 1
    y = (2 * (i // w) + 1) / h - 1
    L = max(hw_image)
    return x * hw_image[1] / L + 1j * y * hw_image[0] / L


def _angle_prior(a: np.ndarray) -> np.ndarray:
    """Cauchy-shaped weight of the rotation of complex factors ``a``: 1 upright (heavy tails, so a
    rotation that many more matches support still wins)."""
    return 1.0 / (1.0 + (np.angle(a) / math.radians(ANGLE_SIGMA_DEG)) ** 2)


def _prior(a: np.ndarray) -> np.ndarray:
    """Prior weight of complex similarity factors ``a``: 1 at no rotation and no scale change."""
    return _angle_prior(a) / (1.0 + (np.log(np.abs(a)) / SCALE_SIGMA) ** 2)


def _solve(zg: np.ndarray, zc: np.ndarray, w: np.ndarray, rotate: bool) -> tuple[complex, complex]:
    """Weighted least squares ``zc ~ a zg + b``; ``a`` real (positive) when not ``rotate``."""
    sw = np.sqrt(w)
    if rotate:
        design = np.stack([zg, np.ones_like(zg)], 1) * sw[:, None]
        sol = np.linalg.lstsq(design, zc * sw, rcond=None)[0]
        return complex(sol[0]), complex(sol[1])
    # Real unknowns (s, bx, by): x and y equations stacked.
    ones, zeros = np.ones(len(zg)), np.zeros(len(zg))
    sw2 = np.concatenate([sw, sw])
    design = np.concatenate([np.stack([zg.real, ones, zeros], 1), np.stack([zg.imag, zeros, ones], 1)]) * sw2[:, None]
    sol = np.linalg.lstsq(design, np.concatenate([zc.real, zc.imag]) * sw2, rcond=None)[0]
    return complex(max(sol[0], 1e-6)), complex(sol[1], sol[2])


def _refit(zg: np.ndarray, zc: np.ndarray, w: np.ndarray, inl: np.ndarray, rotate: bool
           ) -> tuple[complex, complex, np.ndarray]:
    """Two rounds of weighted least squares with the inliers re-selected after each."""
    a, b = 1 + 0j, 0j
    for _ in range(2):
        if inl.sum() < 2:
            break
        a, b = _solve(zg[inl], zc[inl], w[inl], rotate)
        a = a / abs(a) * min(max(abs(a), MIN_SCALE), MAX_SCALE)
        inl = np.abs(zc - (a * zg + b)) < THRESHOLD
    return a, b, inl


def _ransac(zg: np.ndarray, zc: np.ndarray, w: np.ndarray, rng: np.random.Generator
            ) -> tuple[complex, complex, np.ndarray] | None:
    """Prior-weighted RANSAC similarity with refits; ``(a, b, inlier mask)`` or None without a hypothesis."""
    n = len(zg)
    i = rng.integers(n, size=ITERATIONS)
    j = rng.integers(n, size=ITERATIONS)
    dz = zg[i] - zg[j]
    ok = np.abs(dz) > _MIN_BASELINE
    i, j, dz = i[ok], j[ok], dz[ok]
    a = (zc[i] - zc[j]) / dz
    ok = (np.abs(a) >= MIN_SCALE) & (np.abs(a) <= MAX_SCALE)
    a, i = a[ok], i[ok]
    if len(a) == 0:
        return None
    b = zc[i] - a * zg[i]
    support = np.zeros(len(a))
    for k in range(0, len(a), 256):  # in chunks: (hypotheses, matches) residuals stay small
        resid = np.abs(zc[None] - (a[k:k + 256, None] * zg[None] + b[k:k + 256, None]))
        support[k:k + 256] = ((resid < THRESHOLD) * w[None]).sum(1)
    # The upright fit starts from the best hypothesis under the full prior, the rotated one from the
    # best under the scale prior alone (else a well-supported rotation is never even tried).
    fits = []
    for rotate, weight in ((False, _prior(a)), (True, _prior(a) / _angle_prior(a))):
        best = int(np.argmax(support * weight))
        fits.append(_refit(zg, zc, w, np.abs(zc - (a[best] * zg + b[best])) < THRESHOLD, rotate))
    value = [float(w[f[2]].sum() * _angle_prior(np.array([f[0]]))[0]) for f in fits]
    # Rotation only when clearly supported: faces and objects are mostly upright in both images.
    return fits[1] if value[1] > ROTATION_GAIN * value[0] else fits[0]


def _spread(zg_inliers: np.ndarray, frame: tuple[float, float]) -> float:
    """Share of an 8x8 partition of the geometry frame holding at least one of the points."""
    if len(zg_inliers) == 0:
        return 0.0
    u = np.clip(((zg_inliers.real / frame[0] + 1) / 2 * _SPREAD_CELLS).astype(int), 0, _SPREAD_CELLS - 1)
    v = np.clip(((zg_inliers.imag / frame[1] + 1) / 2 * _SPREAD_CELLS).astype(int), 0, _SPREAD_CELLS - 1)
    return len(set(zip(u.tolist(), v.tolist()))) / _SPREAD_CELLS**2


def _jacobian_det(grid: torch.Tensor) -> torch.Tensor:
    """``(N-1, N-1)`` forward-difference Jacobian determinants of a ``(1, N, N, 2)`` grid (any units)."""
    g = grid[0]
    dx = g[:-1, 1:] - g[:-1, :-1]
    dy = g[1:, :-1] - g[:-1, :-1]
    return dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]


def _check_one(feats: object, name: str) -> None:
    if not isinstance(feats, dict):
        raise ValueError(f"{name} must be a dict of VGG taps {MATCH_TAPS} (or a list of them, one per size); "
                         f"got {type(feats).__name__}")
    missing = [t for t in MATCH_TAPS if t not in feats]
    if missing:
        raise ValueError(f"{name} lacks the taps {missing}; matching_features gives all of {MATCH_TAPS}")
    prev: tuple[int, int] | None = None
    for t in MATCH_TAPS:
        x = feats[t]
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name}[{t!r}] must be a floating (1, C, h, w) tensor (batch 1 only); got {shape}")
        if not bool(torch.isfinite(x.sum(dtype=torch.float64))):  # one reduction: NaN or inf anywhere makes it non-finite
            raise ValueError(f"{name}[{t!r}] holds non-finite values")
        hw = (x.shape[2], x.shape[3])
        if prev is not None and hw != (2 * prev[0], 2 * prev[1]):
            raise ValueError(f"{name}[{t!r}] must be twice the previous tap's size {prev}; got {hw}")
        prev = hw


def _as_sizes(feats: object, name: str) -> list[MatchFeatures]:
    """One size's taps, or a list of them (the base size first), as a checked list."""
    sizes = list(feats) if isinstance(feats, (list, tuple)) else [feats]
    if not sizes:
        raise ValueError(f"{name} must hold the taps of at least one size; got an empty {type(feats).__name__}")
    for k, f in enumerate(sizes):
        _check_one(f, name if len(sizes) == 1 else f"{name}[{k}]")
    return sizes  # type: ignore[return-value]


def _check_match_args(content: list[MatchFeatures], geometry: list[MatchFeatures],
                      content_hw: tuple[int, int], geometry_hw: tuple[int, int],
                      grid_size: int, smoothing: float, seed: int) -> None:
    """Raise ValueError naming the first malformed argument of :func:`match_field` (features already listed)."""
    for name, sizes in (("content", content), ("geometry", geometry)):
        for k, f in enumerate(sizes):
            for t in MATCH_TAPS:
                if int(f[t].shape[1]) != int(content[0][t].shape[1]):
                    label = name if len(sizes) == 1 else f"{name}[{k}]"
                    raise ValueError(f"{label}[{t!r}] must have the channels of content's {t!r} "
                                     f"({int(content[0][t].shape[1])}); got {int(f[t].shape[1])}")
    check_hw(content_hw, "content_hw")
    check_hw(geometry_hw, "geometry_hw")
    if isinstance(grid_size, bool) or not isinstance(grid_size, numbers.Integral) or grid_size < 2:
        raise ValueError(f"grid_size must be an int >= 2; got {grid_size!r}")
    if (isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real) or not math.isfinite(smoothing)
            or smoothing < 0):
        raise ValueError(f"smoothing must be a finite number >= 0; got {smoothing!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")


@dataclasses.dataclass(frozen=True)
class _Matches:
    """Finest-tap matches: cell indices, scores and the pool4 match each descends from."""

    ci: torch.Tensor
    gi: torch.Tensor
    score: torch.Tensor
    root: torch.Tensor
    n_coarse: int
    hw_c: tuple[int, int]
    hw_g: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """One image at one size: per tap, L2-normalised features ``(h*w, C)``, activation ``(h*w,)`` and ``(h, w)``."""

    feats: list[torch.Tensor]
    act: list[torch.Tensor]
    shapes: list[tuple[int, int]]

    @classmethod
    def of(cls, taps: MatchFeatures) -> _Prepared:
        with torch.no_grad():
            prep = [_prepare(taps[t].detach().cpu()) for t in MATCH_TAPS]
        return cls([p[0] for p in prep], [p[1] for p in prep], [tuple(taps[t].shape[2:]) for t in MATCH_TAPS])


def _coarse_to_fine_matches(c: _Prepared, g: _Prepared) -> _Matches:
    """Steps 2-3: best buddies at pool4, refined through every finer tap of :data:`MATCH_TAPS`."""
    ci, gi, score = _coarse_matches(c.feats[0], g.feats[0], c.act[0], g.act[0])
    n_coarse = len(gi)
    root = torch.arange(n_coarse)  # the pool4 match each fine match descends from
    for k in range(1, len(MATCH_TAPS)):
        if len(gi) == 0:
            break
        ci, gi, score, src = _refine_matches(ci, gi, (c.shapes[k - 1][1], g.shapes[k - 1][1]),
                                             c.feats[k], g.feats[k], c.act[k], g.act[k], c.shapes[k], g.shapes[k])
        root = root[src]
    return _Matches(ci, gi, score, root, n_coarse, c.shapes[-1], g.shapes[-1])


def _support_problems(inl: np.ndarray, root: torch.Tensor, n: int, spread: float,
                      min_inliers: int = MIN_INLIERS) -> list[str]:
    """Why a fit with these inliers is not to be trusted (empty when it is)."""
    inliers = int(inl.sum())
    # Fine matches inherit their pool4 match's placement, so evidence is counted in pool4 matches.
    coarse_inliers = len(np.unique(root.numpy()[inl]))
    problems = []
    if coarse_inliers < min_inliers:
        problems.append(f"{coarse_inliers} pool4 matches support the fit (need {min_inliers})")
    if inliers < MIN_INLIER_RATIO * n:
        problems.append(f"inlier share {inliers / n:.2f} < {MIN_INLIER_RATIO}")
    if spread < MIN_SPREAD:
        problems.append(f"spread {spread:.2f} < {MIN_SPREAD}")
    return problems


def _to_grid(zmap: np.ndarray, content_aspect: tuple[float, float], grid_size: int,
             device: torch.device) -> torch.Tensor:
    """Aspect-corrected content points ``(N*N,)`` complex to a ``(1, N, N, 2)`` float32 normalised grid."""
    cx, cy = content_aspect
    xy = np.stack([zmap.real / cx, zmap.imag / cy], 1).reshape(1, grid_size, grid_size, 2)
    return torch.from_numpy(xy).to(device=device, dtype=torch.float32)


def _fold_free_spline(zg: np.ndarray, zc: np.ndarray, idx: np.ndarray, a: complex, b: complex,
                      zq: np.ndarray, sim_grid: torch.Tensor, smoothing: float,
                      to_grid: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor | None:
    """Step 5: the similarity plus a spline on the residuals of ``idx``; None when none is fold-free."""
    # Units of the longer side (the smoothing's units), hence the halving.
    pts = np.stack([zg[idx].real, zg[idx].imag], 1) / 2
    res = zc[idx] - (a * zg[idx] + b)
    vals = np.stack([res.real, res.imag], 1) / 2
    query = np.stack([zq.real, zq.imag], 1) / 2
    zsim = a * zq + b
    sim_det = float(_jacobian_det(sim_grid.double()).mean())
    lam = float(smoothing)
    for _ in range(6):
        try:
            tps = RBFInterpolator(pts, vals, kernel="thin_plate_spline", degree=1, smoothing=lam)(query) * 2
        except np.linalg.LinAlgError:  # degenerate inlier layout (e.g. collinear): no non-rigid part
            break
        # Shrink the non-rigid part only once a much smoother spline still folds.
        for amp in ((1.0, 0.5, 0.25) if lam >= 16 * smoothing else (1.0,)):
            grid = to_grid(zsim + amp * (tps[:, 0] + 1j * tps[:, 1]))
            det = _jacobian_det(grid.double())
            # Fold-free with a margin: nowhere may the area shrink to a sliver of the similarity's.
            if float(fold_fraction(grid)[0]) == 0 and float(det.min()) >= _MIN_JACOBIAN_RATIO * sim_det:
                return grid
        lam *= 4
    return None


@dataclasses.dataclass(frozen=True)
class _Fit:
    """Steps 2-4 for one (content size, geometry size) candidate."""

    zc: np.ndarray
    zg: np.ndarray
    a: complex
    b: complex
    inl: np.ndarray
    spread: float
    problems: list[str]


def _fit(c: _Prepared, g: _Prepared, content_hw: tuple[int, int], geometry_hw: tuple[int, int],
         frame: tuple[float, float], seed: int, min_inliers: int = MIN_INLIERS) -> _Fit | str:
    """The candidate's similarity and its support, or why there is none."""
    m = _coarse_to_fine_matches(c, g)
    n = len(m.gi)
    if m.n_coarse < MIN_INLIERS or n < 2:
        return f"only {m.n_coarse} pool4 matches (need {MIN_INLIERS})"
    zc = _cell_points(m.ci, m.hw_c, content_hw)
    zg = _cell_points(m.gi, m.hw_g, geometry_hw)
    w = m.score.numpy().clip(min=1e-6)
    found = _ransac(zg, zc, w, np.random.default_rng(seed))
    if found is None:
        return "no plausible similarity hypothesis"
    a, b, inl = found
    spread = _spread(zg[inl], frame)
    return _Fit(zc, zg, a, b, inl, spread, _support_problems(inl, m.root, n, spread, min_inliers))


def match_field(content: MatchFeatures | list[MatchFeatures], geometry: MatchFeatures | list[MatchFeatures],
                content_hw: tuple[int, int], geometry_hw: tuple[int, int], *,
                grid_size: int = 64, smoothing: float = 0.1, seed: int = 0) -> MatchResult:
    """A fold-free backward field from the geometry frame into the content, from feature matches alone.

    Args:
        content, geometry: :func:`matching_features` of each image: a list of ``{tap: (1, C, h, w)}``
            raw taps, one per size with the base size first (or one such dict), each tap twice the
            size of the one before it, channels shared. Each image at each size is matched against
            the other at its first; the confident fit with the most inliers is kept (beyond the
            first sizes, confident needs :data:`MIN_INLIERS_EXTRA_SIZE` pool4 matches). Batch 1 only.
        content_hw, geometry_hw: ``(H, W)`` of the *original* images (their aspect ratio makes the
            fit a similarity in pixels).
        grid_size: ``N``, the returned field's side.
        smoothing: thin-plate spline smoothing in units of the longer side; raised automatically
            (x4 steps) while the field folds. 0 gives a pure similarity.
        seed: seed of the RANSAC hypotheses (a local numpy Generator; same inputs, same result).

    Returns:
        A :class:`MatchResult`; its ``grid`` is ``(1, N, N, 2)`` float32 on the first content tap's
        device, the identity when no candidate is confident (``reason`` then says why the base
        sizes' fit was not).

    Raises:
        ValueError: an argument (named in the message) is malformed.

    Example:
        >>> torch.manual_seed(0) and None
        >>> f = {t: torch.rand(1, 8, 2 * 2**k, 2 * 2**k) for k, t in enumerate(MATCH_TAPS)}
        >>> r = match_field(f, f, (32, 32), (32, 32), grid_size=4)
        >>> r.grid.shape, r.confident
        (torch.Size([1, 4, 4, 2]), False)
    """
    cs, gs = _as_sizes(content, "content"), _as_sizes(geometry, "geometry")
    _check_match_args(cs, gs, content_hw, geometry_hw, grid_size, smoothing, seed)
    device = cs[0]["pool4"].device
    gx, gy = geometry_hw[1] / max(geometry_hw), geometry_hw[0] / max(geometry_hw)
    cx, cy = content_hw[1] / max(content_hw), content_hw[0] / max(content_hw)
    cells = identity_grid(1, grid_size, grid_size, dtype=torch.float64)[0].reshape(-1, 2).numpy()
    zq = cells[:, 0] * gx + 1j * cells[:, 1] * gy  # the output grid, aspect-corrected geometry units

    pc, pg = [_Prepared.of(f) for f in cs], [_Prepared.of(f) for f in gs]
    candidates = [(0, 0)] + [(i, 0) for i in range(1, len(pc))] + [(0, j) for j in range(1, len(pg))]
    best: _Fit | None = None
    base: _Fit | str | None = None
    for i, j in candidates:
        fit = _fit(pc[i], pg[j], content_hw, geometry_hw, (gx, gy), seed,
                   MIN_INLIERS if (i, j) == (0, 0) else MIN_INLIERS_EXTRA_SIZE)
        base = fit if base is None else base
        if isinstance(fit, _Fit) and not fit.problems and (best is None or fit.inl.sum() > best.inl.sum()):
            best = fit
    if best is None:
        reason = base if isinstance(base, str) else "; ".join(base.problems)  # type: ignore[union-attr]
        if len(candidates) > 1:
            reason = f"no size gave a confident fit (at the base size: {reason})"
        inliers, spread = (0, 0.0) if isinstance(base, str) else (int(base.inl.sum()), base.spread)  # type: ignore[union-attr]
        return MatchResult(identity_grid(1, grid_size, grid_size, device=device), None, inliers, spread, False, reason)
    a, b, inl = best.a, best.b, best.inl
    inliers = int(inl.sum())
    sim = Similarity(abs(a), math.atan2(a.imag, a.real), (b.real, b.imag), inliers, len(inl))
    to_grid = functools.partial(_to_grid, content_aspect=(cx, cy), grid_size=grid_size, device=device)
    sim_grid = to_grid(a * zq + b)
    if smoothing == 0:
        return MatchResult(sim_grid, sim, inliers, best.spread, True, "")
    idx = np.flatnonzero(inl)
    rng = np.random.default_rng(seed)
    if len(idx) > MAX_TPS_POINTS:
        idx = np.sort(rng.choice(idx, MAX_TPS_POINTS, replace=False))
    grid = _fold_free_spline(best.zg, best.zc, idx, a, b, zq, sim_grid, smoothing, to_grid)
    return MatchResult(sim_grid if grid is None else grid, sim, inliers, best.spread, True, "")
