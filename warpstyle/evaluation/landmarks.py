"""Landmark scoring of a warp: map geometry landmarks into the content, PCK, and a fitted-similarity baseline.

Convention:
    Landmarks are ``(N, 2)`` ``(x, y)`` in pixels of their own image, pixel centres at integer
    coordinates. A field is a backward grid ``(B, H, W, 2)`` from the geometry (output) frame to the
    content, normalised ``[-1, 1]``, ``(x, y)``, ``align_corners=False`` (see :mod:`warpstyle.fields.warp`):
    a geometry landmark maps to where the field samples the content at that landmark. Errors are
    in units of the content image's longer side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from warpstyle.training.data.pf_pascal import transfer_keypoints

__all__ = [
    "PCK_THRESHOLDS",
    "pixels_to_normalized",
    "normalized_to_pixels",
    "map_landmarks",
    "landmark_errors",
    "pck_summary",
    "fit_similarity",
    "apply_similarity",
    "similarity_overshoot",
]

#: PCK thresholds reported, as fractions of the content's longer side.
PCK_THRESHOLDS: tuple[float, ...] = (0.02, 0.05, 0.10)


def pixels_to_normalized(points: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """``(N, 2)`` pixel ``(x, y)`` -> normalised ``[-1, 1]`` (``align_corners=False``: ``(2x + 1) / W - 1``)."""
    h, w = size_hw
    p = np.asarray(points, dtype=np.float64)
    return np.stack([(2 * p[:, 0] + 1) / w - 1, (2 * p[:, 1] + 1) / h - 1], axis=1)


def normalized_to_pixels(points: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pixels_to_normalized`."""
    h, w = size_hw
    p = np.asarray(points, dtype=np.float64)
    return np.stack([((p[:, 0] + 1) * w - 1) / 2, ((p[:, 1] + 1) * h - 1) / 2], axis=1)


def map_landmarks(grid: torch.Tensor, geometry_points: np.ndarray, geometry_hw: tuple[int, int],
                  content_hw: tuple[int, int]) -> np.ndarray:
    """Content-pixel positions ``(N, 2)`` of geometry landmarks under the first field of ``grid``.

    The field is sampled bilinearly at each landmark (border values beyond the outer pixel centres).

    Example:
        >>> from warpstyle.fields.warp import identity_grid
        >>> map_landmarks(identity_grid(1, 4, 4), np.array([[10.0, 20.0]]), (40, 40), (80, 80)).tolist()
        [[20.5, 40.5]]
    """
    where = torch.from_numpy(pixels_to_normalized(geometry_points, geometry_hw)).unsqueeze(0)  # (1, N, 2)
    mapped = transfer_keypoints(grid[:1].double().cpu(), where)[0].numpy()  # (N, 2) normalised content
    return normalized_to_pixels(mapped, content_hw)


def landmark_errors(pred: np.ndarray, true: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """``(N,)`` Euclidean distances between ``(N, 2)`` pixel points, divided by ``max(H, W)``."""
    d = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(true, np.float64), axis=1)
    return d / float(max(size_hw))


def pck_summary(errors: np.ndarray | Sequence[float], thresholds: Sequence[float] = PCK_THRESHOLDS) -> dict[str, float]:
    """``{"pck@T": share of errors <= T, ..., "mean_error": mean}`` over all given errors.

    Example:
        >>> {k: round(v, 4) for k, v in pck_summary([0.01, 0.04, 0.25], (0.02, 0.05)).items()}
        {'pck@0.02': 0.3333, 'pck@0.05': 0.6667, 'mean_error': 0.1}
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    if e.size == 0:
        return {**{f"pck@{t:g}": float("nan") for t in thresholds}, "mean_error": float("nan")}
    out = {f"pck@{t:g}": float((e <= t).mean()) for t in thresholds}
    out["mean_error"] = float(e.mean())
    return out


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` (Umeyama 1991): scale, rotation, translation.

    Args:
        src, dst: ``(N, 2)`` corresponding points, ``N >= 2``, not all equal.

    Returns:
        ``(s, R (2, 2), t (2,))`` with ``R`` a proper rotation (no reflection).

    Example:
        >>> src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> s, R, t = fit_similarity(src, 2 * src + 3)
        >>> round(s, 6), np.allclose(R, np.eye(2)), t.round(6).tolist()
        (2.0, True, [3.0, 3.0])
    """
    x, y = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 2 or x.shape[0] < 2:
        raise ValueError(f"src and dst must both be (N, 2) with N >= 2; got {x.shape} and {y.shape}")
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    var = (xc**2).sum() / len(x)
    if var <= 0:
        raise ValueError("src points must not all coincide")
    cov = yc.T @ xc / len(x)  # (2, 2)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0  # keep a rotation: a reflection is not a similarity here
    r = u @ sign @ vt
    s = float(np.trace(np.diag(d) @ sign) / var)
    return s, r, my - s * r @ mx


def apply_similarity(points: np.ndarray, s: float, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``s * R @ p + t`` for each row ``p`` of ``(N, 2)`` points."""
    return s * np.asarray(points, np.float64) @ r.T + t


def similarity_overshoot(geometry_points: np.ndarray, content_points: np.ndarray, geometry_hw: tuple[int, int],
                         content_hw: tuple[int, int]) -> float:
    """How far the geometry's frame falls beyond the content under the similarity fitted on the landmarks.

    The geometry frame's corners are mapped by :func:`fit_similarity` (geometry -> content pixels);
    the result is how far the farthest lands outside the content, in units of the content's half
    width or height (0: the whole frame maps inside), as :func:`warpstyle.geometry.align.frame_overshoot`
    measures a found similarity. Above 0, a field that lines the faces up globally must sample
    beyond the content for part of the output (padding there, not content).

    Args:
        geometry_points, content_points: ``(N, 2)`` corresponding landmarks, ``(x, y)`` pixels.
        geometry_hw, content_hw: the images' ``(H, W)``.

    Example:
        >>> pts = np.array([[10.0, 10.0], [30.0, 10.0], [20.0, 30.0]])
        >>> round(similarity_overshoot(pts, pts, (40, 40), (40, 40)), 6)
        0.0
        >>> round(similarity_overshoot(pts, (pts - 19.5) * 2 + 19.5, (40, 40), (40, 40)), 6)  # doubled about the centre
        1.0
    """
    s, r, t = fit_similarity(geometry_points, content_points)
    (hg, wg), (hc, wc) = geometry_hw, content_hw
    # pixel centres at integers: the frame's edges lie half a pixel outside the outer centres
    corners = np.array([[-0.5, -0.5], [wg - 0.5, -0.5], [-0.5, hg - 0.5], [wg - 0.5, hg - 0.5]])
    m = apply_similarity(corners, s, r, t)
    half = np.array([wc / 2, hc / 2])
    over = (np.abs(m - (half - 0.5)) - half) / half
    return float(max(over.max(), 0.0))
