"""The warper's held-out metrics: synthetic recovery (end-point error, folds) and PF-PASCAL keypoint PCK."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from adain.base.data import RandomCropFolder

from warpstyle.training.data.pf_pascal import PFPascalPairs, pck, transfer_keypoints
from warpstyle.training.data.synthetic import SyntheticWarpSpec, make_synthetic_pair, random_warp_params
from warpstyle.fields.metrics import fold_fraction
from warpstyle.training.losses import end_point_error
from warpstyle.fields.warp import identity_grid, resize_field, smooth_field
from warpstyle.geometry.warper import Warper

__all__ = ["evaluate_synthetic", "evaluate_pf_pascal"]

CROP = 256


@torch.no_grad()
def evaluate_synthetic(
    warper: Warper,
    image_dir: str | Path,
    *,
    pairs: int = 200,
    holdout: float = 0.1,
    split: str = "heldout",
    spec: SyntheticWarpSpec | None = None,
    seed: int = 1234,
    smoothness: float = 0.0,
    batch_size: int = 16,
    load_size: int = 288,
    progress: bool = False,
    align: bool | str = False,
    method: str = "network",
) -> dict[str, float]:
    """Mean end-point error (px at 256) and fold share on seeded synthetic pairs of held-out images.

    ``align``: estimate with the global similarity first (``Warper.estimate``'s ``align``).
    ``method``: ``Warper.estimate``'s (``"match"`` estimates pair by pair).

    Returns:
        ``{"pairs", "epe", "epe_identity", "epe_ratio", "fold", "fold_identity", "fold_ground_truth"}``.
    """
    spec = spec or SyntheticWarpSpec()
    device = warper.device
    data = RandomCropFolder(image_dir, load_size=load_size, crop_size=CROP, split=split, holdout=holdout, seed=seed)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    n = len(data)
    epe, epe_id, fold, fold_id, fold_gt, count = 0.0, 0.0, 0.0, 0.0, 0.0, 0
    for start in tqdm(range(0, pairs, batch_size), disable=not progress, desc="eval-warper"):
        codes = range(start, min(pairs, start + batch_size))
        content = torch.stack([data[c % n + n * (c // n)][0] for c in codes]).float().div(255).to(device)
        params = random_warp_params(content.shape[0], spec, gen)
        params.affine, params.tps_offsets = params.affine.to(device), params.tps_offsets.to(device)
        geometry, gt = make_synthetic_pair(content, params)
        if method == "match":
            grid = torch.cat([resize_field(warper.estimate(content[k:k + 1], geometry[k:k + 1], method="match").grid,
                                           (CROP, CROP)) for k in range(content.shape[0])])
        elif align:
            grid = warper.estimate(content, geometry, method="network", align=align).grid
        else:
            grid = warper(content, geometry)
        pred = resize_field(smooth_field(grid, smoothness), (CROP, CROP))
        ident = identity_grid(content.shape[0], CROP, CROP, device=device)
        epe += float(end_point_error(pred, gt).sum())
        epe_id += float(end_point_error(ident, gt).sum())
        fold += float(fold_fraction(pred).sum())
        fold_gt += float(fold_fraction(gt).sum())
        fold_id += float(fold_fraction(ident).sum())
        count += content.shape[0]
    res = {"pairs": count, "epe": epe / count, "epe_identity": epe_id / count, "fold": fold / count,
           "fold_identity": fold_id / count, "fold_ground_truth": fold_gt / count}
    res["epe_ratio"] = res["epe"] / max(res["epe_identity"], 1e-9)
    return res


@torch.no_grad()
def evaluate_pf_pascal(warper: Warper, root: str | Path, csv_path: str | Path, *, alpha: float = 0.1,
                       batch_size: int = 8, align: bool | str = False) -> dict[str, float]:
    """PCK@alpha of keypoint transfer on PF-PASCAL pairs, with the identity field as baseline.

    ``align``: each pair's field with its global similarity first (at the images' original aspect ratios).

    The geometry (target) keypoints are mapped through the field into the content (source) and
    scored against the source keypoints, with the threshold in the source image's pixels.
    """
    data = PFPascalPairs(root, csv_path, image_size=CROP)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    total, total_id, n = 0.0, 0.0, 0
    for b in loader:
        src, tgt = b["source"].to(warper.device), b["target"].to(warper.device)
        if align:
            grid = torch.cat([warper.estimate(src[k:k + 1], tgt[k:k + 1], method="network", align=align,
                                              content_size=tuple(b["source_size"][k].tolist()),
                                              geometry_size=tuple(b["target_size"][k].tolist())).grid
                              for k in range(src.shape[0])]).cpu()
        else:
            grid = warper(src, tgt).cpu()
        ident = identity_grid(grid.shape[0], grid.shape[1], grid.shape[2])
        for g, acc in ((grid, "w"), (ident, "i")):
            pts = transfer_keypoints(g, b["target_points"])
            score = pck(pts, b["source_points"], b["mask"], b["source_size"], alpha)
            valid = torch.isfinite(score)
            if acc == "w":
                total += float(score[valid].sum())
                n += int(valid.sum())
            else:
                total_id += float(score[valid].sum())
    return {"pairs": n, "pck": total / max(n, 1), "pck_identity": total_id / max(n, 1), "alpha": alpha}
