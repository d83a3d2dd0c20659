"""Global alignment by a multi-scale search: where, and at what size, is the geometry's object in the content?

:mod:`warpstyle.geometry.align`'s matcher fits a similarity to mutual nearest neighbours of the two 16x16
pool4 maps; between two *different* faces those matches are too few and too often wrong, and its
scale is limited to 1/2..2. Here the smaller side is slid over the larger one instead, as a
template, at every scale of a pyramid (1/4..4, four steps an octave): the geometry's pool4 map,
encoded with its longer side at ``size * 2**(-k/4)`` px, over the content's map encoded at ``size``
px (the content's object is the smaller), and the content's map at those sizes over the geometry's
(the content's object is the larger). Each placement is scored by its summed per-cell evidence::

    S = sum_i z_i(p(i)) / sqrt(n),   z_i = (cos(g_i, .) - mu_i) / sigma_i

over the ``n`` cells ``i`` of the window that lie on the other map, where ``mu_i``, ``sigma_i`` are
the mean and deviation of the window cell's cosine against every cell of the other map.
Subtracting ``mu_i`` discounts cells that match everywhere (sky, a plain background); dividing by
``sqrt(n)`` makes small and large windows comparable when their cells are distinct (a window of
chance matches then scores about 0 +- 1). Windows of look-alike cells (noise, a plain texture)
are not: their ``z`` add up together, and such a geometry can pass the gate below with a wrong
zoom. Dividing by the spread of the summed ``z`` instead, which corrects that, ranked the face
pairs of docs/quality.md worse (PCK@0.10 0.22 against 0.32 on the 48 held-out pairs).
The best placement over all scales wins if it maps the geometry's frame at most
:data:`MAX_OVERSHOOT` beyond the content (no reflected copies filling the output), beats "not
moving" (the geometry stretched over the content, scored the same way) and reaches
:data:`MIN_EVIDENCE`.

Rotation is not searched (upright objects). Costs about 18 VGG passes at up to ``size`` px a pair.

Convention: :class:`warpstyle.geometry.align.Similarity` (aspect-corrected normalised units).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adain.base.checks import check_shape
from adain.base.encoder.vgg import VGGEncoder

from warpstyle.geometry.align import MAX_OVERSHOOT, Similarity, frame_overshoot
from warpstyle.geometry.correlation import l2_normalize_features

__all__ = ["search_similarity", "window_scores", "SEARCH_SIZE", "SEARCH_OCTAVES", "SEARCH_STEPS", "MIN_OVERLAP",
           "MIN_MARGIN", "MIN_EVIDENCE"]

#: Longer side (px) at which the larger image of each comparison is encoded.
SEARCH_SIZE = 384
#: Scales searched: ``2**-SEARCH_OCTAVES`` to ``2**SEARCH_OCTAVES``, ``SEARCH_STEPS`` per octave.
SEARCH_OCTAVES = 2
SEARCH_STEPS = 4
#: A placement counts when at least this share of the window's cells lies on the other map.
MIN_OVERLAP = 0.75
#: The chosen placement's evidence must exceed not moving's by MIN_MARGIN and reach MIN_EVIDENCE.
#: Six unrelated photo x painting pairs of the corpus scored 6.2-8.3 (three pass); face pairs
#: that the search lined up, mostly 10-25; random noise as the geometry 11-19, a known failure
#: (docs/quality.md). Each bar costs the 48 held-out face pairs some PCK@0.10 (0.35 with neither,
#: 0.30 with this floor, 0.27 with a margin of 2 as well): this one keeps unrelated images from
#: zooming half of the time.
MIN_MARGIN = 0.0
MIN_EVIDENCE = 8.0
#: Maps smaller than this many cells a side are not searched (too little evidence).
_MIN_CELLS = 2
_CELL = 16  # pool4 stride, px


def window_scores(big: torch.Tensor, small: torch.Tensor, min_overlap: float = MIN_OVERLAP) -> torch.Tensor:
    """Evidence ``S`` (module docstring) of every placement of ``small`` over ``big``.

    Args:
        big: ``(C, H, W)`` L2-normalised features.
        small: ``(C, h, w)`` L2-normalised features, the window.
        min_overlap: placements with a smaller share of the window on ``big`` get ``-inf``.

    Returns:
        ``(H + h - 1, W + w - 1)`` scores; entry ``(y, x)`` puts the window's top-left cell on
        ``big``'s cell ``(y - h + 1, x - w + 1)``.
    """
    # Scores in float32 even under a caller's bf16 autocast: they are compared across thousands of placements.
    with torch.autocast(big.device.type, enabled=False):
        big, small = big.float(), small.float()
        _, hb, wb = big.shape
        _, h, w = small.shape
        cos_all = torch.einsum("cij,chw->ijhw", small, big).reshape(h, w, hb * wb)
        mu = cos_all.mean(-1, keepdim=True)
        sigma = cos_all.var(-1, unbiased=False, keepdim=True).clamp_min(1e-8).sqrt()
        z = ((cos_all - mu) / sigma).reshape(h, w, hb, wb)
        # Each window cell (i, j) adds its z-map to every placement, shifted by its own offset: h * w
        # additions of an (hb, wb) map instead of a convolution over the channels again.
        scores = big.new_zeros(hb + h - 1, wb + w - 1)
        count = big.new_zeros(hb + h - 1, wb + w - 1)
        for i in range(h):
            for j in range(w):
                scores[h - 1 - i: h - 1 - i + hb, w - 1 - j: w - 1 - j + wb] += z[i, j]
                count[h - 1 - i: h - 1 - i + hb, w - 1 - j: w - 1 - j + wb] += 1.0
        scores = scores / count.clamp_min(1.0).sqrt()
        return scores.masked_fill(count < min_overlap * h * w, float("-inf"))


def _still_score(content: torch.Tensor, geometry: torch.Tensor) -> float:
    """``S`` of the geometry's map ``(C, h, w)`` laid cell for cell on the content's (same shape)."""
    with torch.autocast(content.device.type, enabled=False):
        content, geometry = content.float(), geometry.float()
        cos_all = geometry.flatten(1).T @ content.flatten(1)  # (geometry cells, content cells)
        mu = cos_all.mean(1, keepdim=True)
        z = (cos_all - mu) / cos_all.var(1, unbiased=False, keepdim=True).clamp_min(1e-8).sqrt()
        own = z.diagonal()  # each geometry cell against the content cell under it
        return float(own.sum() / own.numel() ** 0.5)


def _encode(encoder: VGGEncoder, image: torch.Tensor, longer: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """L2-normalised pool4 ``(C, h, w)`` of ``image`` ``(1, 3, H, W)`` resized to ``longer`` px, and that size."""
    h, w = image.shape[-2:]
    k = longer / max(h, w)
    hw = (max(_CELL, round(h * k)), max(_CELL, round(w * k)))
    x = F.interpolate(image, size=hw, mode="bilinear", antialias=True, align_corners=False)
    feats = encoder(x, taps=("pool4",))["pool4"]
    return l2_normalize_features(feats)[0].float(), hw


def _best(big: torch.Tensor, small: torch.Tensor, min_overlap: float) -> tuple[float, int, int] | None:
    """Best score and the window's top-left cell offset ``(dy, dx)`` on ``big`` (may be negative)."""
    if min(small.shape[1:]) < _MIN_CELLS:
        return None
    scores = window_scores(big, small, min_overlap)
    v, i = scores.flatten().max(0)
    if not bool(torch.isfinite(v)):
        return None
    y, x = divmod(int(i), scores.shape[1])
    return float(v), y - small.shape[1] + 1, x - small.shape[2] + 1


def _to_similarity(offset: tuple[float, float], content_hw: tuple[int, int], content_resized: tuple[int, int],
                   geometry_hw: tuple[int, int], geometry_resized: tuple[int, int]) -> Similarity:
    """``u_c = u_g + offset`` between the resized images (pixels) as a :class:`Similarity` of the originals."""
    (hc, wc), (rhc, rwc) = content_hw, content_resized
    (hg, wg), (rhg, rwg) = geometry_hw, geometry_resized
    lc, lg = max(hc, wc), max(hg, wg)
    # content px u_c = a * u_g + b per axis, with a and b from the resized sizes; then to aspect-corrected
    # units x = (2u - W) / L on each side: x_c = x_g * a * lg / lc + (a * W_g + 2 b - W_c) / lc.
    ax, ay = (rwg / wg) * (wc / rwc), (rhg / hg) * (hc / rhc)
    bx, by = offset[0] * wc / rwc, offset[1] * hc / rhc
    scale = 0.5 * (ax + ay) * lg / lc
    shift = ((ax * wg + 2 * bx - wc) / lc, (ay * hg + 2 * by - hc) / lc)
    return Similarity(scale, 0.0, shift)


@torch.no_grad()
def search_similarity(
    encoder: VGGEncoder,
    content: torch.Tensor,
    geometry: torch.Tensor,
    *,
    size: int = SEARCH_SIZE,
    octaves: int = SEARCH_OCTAVES,
    steps: int = SEARCH_STEPS,
    min_overlap: float = MIN_OVERLAP,
    max_overshoot: float = MAX_OVERSHOOT,
    min_margin: float = MIN_MARGIN,
    min_evidence: float = MIN_EVIDENCE,
) -> Similarity | None:
    """The similarity that best places the geometry's object in the content (module docstring).

    Args:
        encoder: the warper's VGG encoder (pool4).
        content, geometry: ``(1, 3, H, W)`` and ``(1, 3, H2, W2)`` in [0, 1].
        size: longer side (px) of the larger image of each comparison.
        octaves, steps: scales ``2**(-octaves)`` to ``2**octaves``, ``steps`` per octave.
        min_overlap: share of a window that must lie on the other map.
        max_overshoot: how far (in content half-extents) the geometry's frame may be mapped beyond
            the content. Checked on each scale's best placement (masking every placement beyond it
            before choosing measured worse: more in-frame wrong placements compete).
        min_margin, min_evidence: the best placement must score ``min_margin`` above not moving
            and at least ``min_evidence``.

    Returns:
        The :class:`Similarity` (rotation 0), or None when not moving scores as well or no
        placement is plausible.
    """
    check_shape(content, "content", (1, 3, "H", "W"))
    check_shape(geometry, "geometry", (1, 3, "H", "W"))
    if size < 4 * _CELL:
        raise ValueError(f"size must be at least {4 * _CELL} px; got {size}")
    if steps < 1 or octaves < 0:
        raise ValueError(f"steps must be >= 1 and octaves >= 0; got steps={steps}, octaves={octaves}")
    c_hw, g_hw = (int(content.shape[-2]), int(content.shape[-1])), (int(geometry.shape[-2]), int(geometry.shape[-1]))
    frames = ((g_hw[1] / max(g_hw), g_hw[0] / max(g_hw)), (c_hw[1] / max(c_hw), c_hw[0] / max(c_hw)))
    sizes = [max(_CELL, round(size * 2 ** (-k / steps))) for k in range(octaves * steps + 1)]
    # Larger scales map the geometry's frame beyond the content by more than max_overshoot anyway.
    (gx, gy), (cx, cy) = frames
    max_scale = (1 + max_overshoot) * min(cx / gx, cy / gy) * 2 ** (0.5 / steps)
    fc, c_res = _encode(encoder, content, size)
    fg, g_res = _encode(encoder, geometry, size)

    # Not moving: the geometry stretched over the content, cell for cell. A placement must beat it
    # (by min_margin) and gather min_evidence.
    still = l2_normalize_features(F.interpolate(fg[None], size=fc.shape[1:], mode="bilinear", align_corners=False))[0]
    best: Similarity | None = None
    best_score = max(_still_score(fc, still) + min_margin, min_evidence)

    def consider(score: float, sim: Similarity) -> None:
        nonlocal best, best_score
        a = torch.tensor([complex(sim.scale, 0.0)], dtype=torch.complex128)
        b = torch.tensor([complex(*sim.shift)], dtype=torch.complex128)
        if score > best_score and float(frame_overshoot(a, b, frames)[0]) <= max_overshoot + 1e-6:
            best, best_score = sim, score

    for s in sizes:
        # the geometry's object the smaller: its map, encoded at s px, slides over the content's at size px
        g_small, g_small_res = (fg, g_res) if s == size else _encode(encoder, geometry, s)
        found = _best(fc, g_small, min_overlap)
        if found is not None:
            v, dy, dx = found
            consider(v, _to_similarity((dx * _CELL, dy * _CELL), c_hw, c_res, g_hw, g_small_res))
        if s == size or size / s > max_scale:
            continue
        # the content's object the smaller: its map at s px slides over the geometry's at size px
        c_small, c_small_res = _encode(encoder, content, s)
        found = _best(fg, c_small, min_overlap)
        if found is not None:
            v, dy, dx = found
            # geometry px (at size) u_g = u_c + d  ->  u_c = u_g - d
            consider(v, _to_similarity((-dx * _CELL, -dy * _CELL), c_hw, c_small_res, g_hw, g_res))
    return best
