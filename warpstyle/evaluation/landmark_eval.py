"""Landmark evaluation of a warper on face pairs: does each part of the geometry's face land on the content's?

Pairs are (content photo with a detected face) x (geometry image with a detected face) from the
held-out part of each folder (the same hash split as training, :func:`adain.base.data.split_paths`,
with each folder as its own root, as ``train-warper`` treats ``--image-dir`` and ``--texture-dir``).
Landmarks come from dlib's 68-point model (:mod:`warpstyle.evaluation.face_landmarks`; evaluation only, its
training data is licensed for non-commercial research). Fields are scored *as applied*: smoothed and
resized to the output size that ``warpstyle run`` would use, then each geometry landmark is mapped
through the field into the content (:mod:`warpstyle.evaluation.landmarks`).

Convention:
    Fields are backward grids ``(B, H, W, 2)``, normalised ``[-1, 1]``, ``(x, y)``,
    ``align_corners=False`` (see :mod:`warpstyle.fields.warp`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from adain.base.data import list_images, split_paths
from adain.base.image import load_image

from warpstyle.evaluation.face_landmarks import LandmarkCache
from warpstyle.fields.metrics import fold_fraction
from warpstyle.evaluation.landmarks import (PCK_THRESHOLDS, apply_similarity, fit_similarity, landmark_errors, map_landmarks, pck_summary,
                        similarity_overshoot)
from warpstyle.geometry.objective import feature_matching_objective, objective_features
from warpstyle.geometry.refine import REFINE_SIZE
from warpstyle.fields.warp import identity_grid, resize_field, smooth_field
from warpstyle.geometry.warper import DEFAULT_SMOOTHNESS, Warper

__all__ = ["FacePair", "face_extent", "face_pairs", "evaluate_landmarks", "format_landmark_table"]


@dataclasses.dataclass
class FacePair:
    """A content photo and a geometry image, each with its ``(68, 2)`` landmarks and ``(H, W)``."""

    content: Path
    geometry: Path
    content_points: np.ndarray
    geometry_points: np.ndarray
    content_hw: tuple[int, int]
    geometry_hw: tuple[int, int]


def _faces(dirs: Sequence[str | Path], cache: LandmarkCache, split: str, holdout: float
           ) -> tuple[list[tuple[Path, np.ndarray, tuple[int, int]]], int]:
    found, total = [], 0
    for d in dirs:
        paths = split_paths(list_images(d), d, split, holdout)  # type: ignore[arg-type]
        total += len(paths)
        for p in paths:
            pts, hw = cache.get(p)
            if pts is not None:
                found.append((p, pts, hw))
    return found, total


def face_pairs(
    content_dirs: Sequence[str | Path],
    geometry_dirs: Sequence[str | Path],
    cache: LandmarkCache,
    *,
    holdout: float = 0.1,
    split: str = "heldout",
    max_pairs: int | None = None,
    min_face: float = 0.0,
    max_overshoot: float | None = None,
) -> tuple[list[FacePair], dict[str, int]]:
    """The (content face) x (geometry face) pairs of the chosen split, in sorted path order.

    Faces are kept by ``min_face``, then pairs by ``max_overshoot``, then ``max_pairs`` of those.

    Args:
        content_dirs, geometry_dirs: folders searched recursively; each is its own split root.
        cache: landmark cache (detects and stores on a miss).
        holdout, split: the hash split (``"heldout"``, ``"train"`` or ``"all"``).
        max_pairs: keep this many pairs, spread evenly over the list (None: all).
        min_face: keep only faces whose landmarks span at least this fraction of their image's
            longer side (e.g. 0.2: portraits and headshots, not a face in a crowd).
        max_overshoot: keep only pairs whose landmark-fitted similarity maps the geometry's frame at
            most this far beyond the content (:func:`warpstyle.evaluation.landmarks.similarity_overshoot`, in
            content half-extents): pairs that a global alignment can line up while the output still
            shows the content, not padding (None: all pairs).

    Returns:
        ``(pairs, counts)`` with counts of images searched, faces found (after ``min_face``), pairs
        of those (``all_pairs``), pairs within ``max_overshoot`` (``in_frame_pairs``, only when it
        is given) and pairs kept (``pairs``).
    """
    contents, n_c = _faces(content_dirs, cache, split, holdout)
    geometries, n_g = _faces(geometry_dirs, cache, split, holdout)
    cache.save()
    if min_face > 0:
        contents = [f for f in contents if face_extent(f[1], f[2]) >= min_face]
        geometries = [f for f in geometries if face_extent(f[1], f[2]) >= min_face]
    pairs = [FacePair(c, g, cp, gp, chw, ghw) for c, cp, chw in contents for g, gp, ghw in geometries if c != g]
    counts = {"content_images": n_c, "content_faces": len(contents), "geometry_images": n_g,
              "geometry_faces": len(geometries), "all_pairs": len(pairs)}
    if max_overshoot is not None:
        pairs = [p for p in pairs if similarity_overshoot(p.geometry_points, p.content_points, p.geometry_hw,
                                                          p.content_hw) <= max_overshoot]
        counts["in_frame_pairs"] = len(pairs)
    if max_pairs is not None and len(pairs) > max_pairs:
        idx = np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int)
        pairs = [pairs[i] for i in sorted(set(idx.tolist()))]
    counts["pairs"] = len(pairs)
    return pairs, counts


def face_extent(points: np.ndarray, hw: tuple[int, int]) -> float:
    """Larger side of the landmarks' bounding box, as a fraction of the image's longer side."""
    return float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1])) / max(hw))


class _ImageCache:
    """Each image read once and encoded once for all its pairs."""

    def __init__(self, warper: Warper) -> None:
        self.warper = warper
        self.loaded: dict[Path, torch.Tensor] = {}
        self.encoded: dict[Path, tuple[dict[str, torch.Tensor], float]] = {}

    def image(self, path: Path) -> torch.Tensor:
        """The image on the warper's device (the alignment search needs the pixels)."""
        if path not in self.loaded:
            self.loaded[path] = load_image(path).to(self.warper.device)
        return self.loaded[path]

    @torch.no_grad()
    def encode(self, path: Path) -> tuple[dict[str, torch.Tensor], float]:
        """The objective's features and the seconds their encoding took."""
        # The encoding time is kept so that it is still charged to each pair that reuses it.
        if path not in self.encoded:
            x = load_image(path).to(self.warper.device)
            t = time.perf_counter()
            self.encoded[path] = (objective_features(self.warper.encoder, x), time.perf_counter() - t)
        return self.encoded[path]


@dataclasses.dataclass
class _Tally:
    """Per-row landmark errors, and objective, folds and seconds summed over the pairs."""

    errors: dict[str, list[np.ndarray]]
    sums: dict[str, dict[str, float]]

    @classmethod
    def empty(cls, names: Sequence[str]) -> _Tally:
        """No pairs scored yet for any of ``names``."""
        return cls({k: [] for k in names},
                   {k: {"feature": 0.0, "objective": 0.0, "fold": 0.0, "fold_grid": 0.0, "seconds": 0.0}
                    for k in names})


def _network_field(warper: Warper, pair: FacePair, images: tuple[torch.Tensor | None, torch.Tensor | None],
                   features: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], encode_seconds: float, *,
                   steps: list[int], align: bool | str, refine_size: int
                   ) -> tuple[torch.Tensor, float, dict[int, tuple[torch.Tensor, float]]]:
    """The network's field and its seconds, and the refined snapshot at each of ``steps``."""
    snapshots: dict[int, tuple[torch.Tensor, float]] = {}
    t0 = time.perf_counter()

    def keep(step: int, field: torch.Tensor) -> None:
        if step == 0 or step in steps:
            snapshots[step] = (field, time.perf_counter() - t0)

    if steps:
        # One estimate gives the network's field (step 0) and every refined snapshot; with the
        # search, refinement runs on the aligned view, as warpstyle run --align --warp-refine does.
        warper.estimate(*images, method="network", content_size=pair.content_hw, geometry_size=pair.geometry_hw, align=align,
                        refine_steps=steps[-1], refine_size=refine_size, on_refine_step=keep)
        grid, t_net = snapshots[0]  # the encoding is inside this estimate
    else:
        cf, gf = features
        grid = warper.estimate(*images, method="network", content_features=cf["pool4"], geometry_features=gf["pool4"],
                               geometry_size=pair.geometry_hw, content_size=pair.content_hw, align=align).grid
        t_net = time.perf_counter() - t0 + encode_seconds
    return grid, t_net, snapshots


def _score_field(tally: _Tally, name: str, raw: torch.Tensor, seconds: float, sigma: float, *, pair: FacePair,
                 out_hw: tuple[int, int], features: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]) -> None:
    """Apply ``raw`` as warpstyle run does and add its landmark errors, objective, folds and seconds to ``name``."""
    applied = resize_field(smooth_field(raw, sigma), out_hw)
    mapped = map_landmarks(applied, pair.geometry_points, pair.geometry_hw, pair.content_hw)
    tally.errors[name].append(landmark_errors(mapped, pair.content_points, pair.content_hw))
    obj = feature_matching_objective(*features, applied)
    acc = tally.sums[name]
    acc["feature"] += float(obj["feature"])
    acc["objective"] += float(obj["loss"])
    acc["fold"] += float(fold_fraction(applied)[0])
    acc["fold_grid"] += float(fold_fraction(raw)[0])
    acc["seconds"] += seconds


def _similarity_errors(pair: FacePair) -> np.ndarray:
    """Landmark errors of the least-squares similarity fitted on the pair's own landmarks."""
    s, r, t = fit_similarity(pair.geometry_points, pair.content_points)
    return landmark_errors(apply_similarity(pair.geometry_points, s, r, t), pair.content_points, pair.content_hw)


def _timed_match(warper: Warper, cache: _ImageCache, pair: FacePair) -> tuple[torch.Tensor, float]:
    """Semantic matching's field from the images, and its seconds with its own encoding included."""
    c_img, g_img = cache.image(pair.content), cache.image(pair.geometry)
    t = time.perf_counter()
    found = warper.estimate(c_img, g_img, method="match", content_size=pair.content_hw,
                            geometry_size=pair.geometry_hw)
    return found.grid, time.perf_counter() - t


def _landmark_report(pairs: Sequence[FacePair], names: list[str], tally: _Tally, thresholds: Sequence[float],
                     settings: dict[str, object]) -> dict[str, object]:
    """The report of :func:`evaluate_landmarks`: pooled rows, per-pair rows and the settings."""
    n = max(len(pairs), 1)
    # Per pair, so that figures can be split afterwards (e.g. by how far the fitted similarity overshoots).
    per_pair = [{"content": str(p.content), "geometry": str(p.geometry),
                 "overshoot": similarity_overshoot(p.geometry_points, p.content_points, p.geometry_hw, p.content_hw),
                 "rows": {k: pck_summary(tally.errors[k][i], thresholds) for k in names}}
                for i, p in enumerate(pairs)]
    rows: dict[str, dict[str, float]] = {}
    for name in names:
        row = pck_summary(np.concatenate(tally.errors[name]) if tally.errors[name] else np.zeros(0), thresholds)
        if name != "similarity":
            row.update({k: v / n for k, v in tally.sums[name].items()})
        rows[name] = row
    return {"pairs": len(pairs), "rows": rows, "per_pair": per_pair, "settings": settings}


def evaluate_landmarks(
    warper: Warper,
    pairs: Sequence[FacePair],
    *,
    refine_steps: Sequence[int] = (),
    refine_size: int = REFINE_SIZE,
    smoothness: float = DEFAULT_SMOOTHNESS,
    refined_smoothness: float | None = None,
    size: int = 512,
    thresholds: Sequence[float] = PCK_THRESHOLDS,
    progress: bool = False,
    align: bool | str = False,
    match: bool = True,
) -> dict[str, object]:
    """Landmark accuracy, feature-matching objective and folds of identity, a fitted similarity and the warper.

    Rows: ``identity``; ``similarity`` (least-squares similarity fitted on the pair's own landmarks:
    the best global alignment, no local shape; no field, so no objective or folds); ``warper`` (the
    network, ``method="network"``); ``refine N`` for each ``N`` in ``refine_steps`` (one run per
    pair, scored after ``N`` steps); and with ``match``, ``match``: semantic matching
    (``method="match"``, the default of ``warpstyle run``), timed with its own encoding.

    Each field is applied as ``warpstyle run`` applies it: Gaussian-smoothed by ``smoothness`` cells,
    then resized (bicubic) to the output size (geometry aspect, ``size`` px longer side). Landmarks,
    fold share and the objective (pool4 + relu4_1 at 256 px, default weights) are measured on that
    applied field. ``refined_smoothness`` smooths the refined fields instead (None: ``smoothness``).
    ``align``: the warper's field (and the refinement's start) with its global similarity first
    (``Warper.estimate``'s ``align``; its time is charged to the warper's row). With the search, the
    refinement runs on the content seen through the similarity and is composed with it, as
    ``warpstyle run --align --warp-refine`` does (``settings["refine_view"]``: ``"aligned"``; else
    ``"content"``). Refined rows come from one :meth:`Warper.estimate` per pair (the network's field
    is its step 0), which encodes both images itself; their seconds count everything from the start.

    Returns:
        ``{"pairs", "rows": {name: {"pck@T"..., "mean_error", "feature", "objective", "fold",
        "fold_grid", "seconds"}}, "per_pair": [{"content", "geometry", "overshoot",
        "rows": {name: {"pck@T"..., "mean_error"}}}], "settings"}``; errors in units of the content's longer side,
        ``content``, ``geometry`` the image paths, ``overshoot`` that of the landmark-fitted
        similarity (:func:`warpstyle.evaluation.landmarks.similarity_overshoot`),
        ``fold`` at the applied resolution, ``fold_grid`` on the unsmoothed estimated grid,
        ``seconds`` per pair for the field (refinement included).
    """
    steps = sorted({int(n) for n in refine_steps if int(n) > 0})
    names = ["identity", "similarity", "warper"] + [f"refine {n}" for n in steps] + (["match"] if match else [])
    tally = _Tally.empty(names)
    cache = _ImageCache(warper)
    for pair in tqdm(pairs, disable=not progress, desc="landmarks", unit="pair"):
        out_hw = Warper.output_size(pair.geometry_hw, size)  # what warpstyle run applies by default
        (cf, t_c), (gf, t_g) = cache.encode(pair.content), cache.encode(pair.geometry)
        # The alignment search and the refinement need the images themselves (the matcher works from
        # features); they are read before the clock starts.
        need_images = bool(steps) or Warper.align_method(align) == "search"
        images = (cache.image(pair.content), cache.image(pair.geometry)) if need_images else (None, None)
        grid, t_net, snapshots = _network_field(warper, pair, images, (cf, gf), t_c + t_g,
                                                steps=steps, align=align, refine_size=refine_size)
        score = functools.partial(_score_field, tally, pair=pair, out_hw=out_hw, features=(cf, gf))
        score("identity", identity_grid(1, *grid.shape[1:3], device=grid.device), 0.0, smoothness)
        tally.errors["similarity"].append(_similarity_errors(pair))
        score("warper", grid, t_net, smoothness)
        for n in steps:
            field, dt = snapshots[n]
            score(f"refine {n}", field, dt,  # from the clock's start: encoding, search, network, n steps
                  smoothness if refined_smoothness is None else refined_smoothness)
        if match:
            score("match", *_timed_match(warper, cache, pair), smoothness)
    return _landmark_report(pairs, names, tally, thresholds, {
        "align": align, "refine_view": "aligned" if Warper.align_method(align) == "search" else "content",
        "smoothness": smoothness, "refined_smoothness": refined_smoothness, "size": size, "refine_size": refine_size,
        "thresholds": list(thresholds)})


def format_landmark_table(report: dict[str, object]) -> str:
    """The rows of :func:`evaluate_landmarks` as an aligned text table."""
    rows: dict[str, dict[str, float]] = report["rows"]  # type: ignore[assignment]
    thresholds = report["settings"]["thresholds"]  # type: ignore[index]
    pck_cols = [f"pck@{t:g}" for t in thresholds]
    head = f"{'field':<12}" + "".join(f"{c:>10}" for c in pck_cols) + f"{'mean err':>10}{'feature':>9}{'fold %':>8}{'s/pair':>8}"
    lines = [head]
    for name, row in rows.items():
        line = f"{name:<12}" + "".join(f"{row[c]:>10.3f}" for c in pck_cols) + f"{row['mean_error']:>10.4f}"
        if "feature" in row:
            line += f"{row['feature']:>9.3f}{100 * row['fold']:>8.2f}{row['seconds']:>8.2f}"
        else:
            line += f"{'-':>9}{'-':>8}{'-':>8}"
        lines.append(line)
    return "\n".join(lines)
