"""Probe: refine the search's similarity itself (scale, rotation, shift) on the feature-matching objective.

    python scripts/probe_similarity_refine.py [--pairs 20] [--steps 20] [--out out.json]

On headshot pairs whose landmark-fitted similarity stays within the search's frame check (all
splits, ``--min-face 0.2 --max-overshoot 0.25`` of ``warpstyle eval-warper``, spread evenly), the
search's similarity is refined by Adam on four parameters (log-scale, angle, shift): the content is
seen through the similarity at 256 px (differentiably, as ``grid_sample`` of the image), re-encoded,
and its relu3_1, relu4_1 and pool4 taps compared with the geometry's (minus the summed mean cosine).
Scores the similarity alone, before and after, by the landmarks (errors in units of the content's
longer side; no local field). A probe of a direction, not a feature.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adain.base.image import load_image, resize_longer
from warpstyle.geometry.align import Similarity, compose_similarity
from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
from warpstyle.evaluation.landmark_eval import face_pairs
from warpstyle.evaluation.landmarks import landmark_errors, map_landmarks, pck_summary
from warpstyle.geometry.objective import objective_features
from warpstyle.geometry.scale_search import search_similarity
from warpstyle.fields.warp import identity_grid
from warpstyle.geometry.warper import Warper

D = Path(__file__).resolve().parents[2] / "shared" / "data"
TAPS = ("relu3_1", "relu4_1", "pool4")
VIEW = 256


def _grid(log_s: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor, c_hw: tuple[int, int],
          g_hw: tuple[int, int], n: int) -> torch.Tensor:
    """Differentiable ``compose_similarity`` of the identity ``(1, n, n, 2)`` (aspect-corrected units)."""
    gx, gy = g_hw[1] / max(g_hw), g_hw[0] / max(g_hw)
    cx, cy = c_hw[1] / max(c_hw), c_hw[0] / max(c_hw)
    p = identity_grid(1, n, n) * torch.tensor([gx, gy])
    s = log_s.exp()
    c, si = s * angle.cos(), s * angle.sin()
    x = c * p[..., 0] - si * p[..., 1] + shift[0]
    y = si * p[..., 0] + c * p[..., 1] + shift[1]
    return torch.stack([x / cx, y / cy], -1)


def _errors(sim: Similarity | None, pair, out_hw: tuple[int, int]) -> np.ndarray:
    grid = identity_grid(1, *out_hw) if sim is None else compose_similarity(
        [sim], identity_grid(1, *out_hw), pair.content_hw, pair.geometry_hw)
    mapped = map_landmarks(grid, pair.geometry_points, pair.geometry_hw, pair.content_hw)
    return landmark_errors(mapped, pair.content_points, pair.content_hw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    cache = LandmarkCache(default_cache_path(), None)
    pairs = face_pairs([D / "photos"], [D / "geometry", D / "paintings"], cache, split="all", min_face=0.2,
                       max_overshoot=0.25, max_pairs=args.pairs)[0]
    warper = Warper.from_pretrained()
    enc = warper.encoder.requires_grad_(False)
    before, after, found, seconds = [], [], 0, 0.0
    for pair in pairs:
        c, g = load_image(pair.content), load_image(pair.geometry)
        out_hw = Warper.output_size(pair.geometry_hw, 512)
        sim = search_similarity(enc, c, g)
        before.append(_errors(sim, pair, out_hw))
        if sim is None:
            after.append(before[-1])
            continue
        found += 1
        t0 = time.perf_counter()
        with torch.no_grad():
            target = objective_features(enc, g, TAPS)
        small = resize_longer(c, max(VIEW, math.ceil(VIEW / sim.scale)))
        log_s = torch.tensor(math.log(sim.scale), requires_grad=True)
        angle = torch.tensor(0.0, requires_grad=True)
        shift = torch.tensor(sim.shift, requires_grad=True)
        opt = torch.optim.Adam([log_s, angle, shift], lr=args.lr)
        for _ in range(args.steps):
            grid = _grid(log_s, angle, shift, pair.content_hw, pair.geometry_hw, VIEW)
            view = F.grid_sample(small, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            feats = objective_features(enc, view, TAPS)
            loss = -sum((feats[k] * target[k]).sum(1).mean() for k in TAPS)
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds += time.perf_counter() - t0
        refined = Similarity(float(log_s.detach().exp()), float(angle.detach()), tuple(shift.detach().tolist()))
        after.append(_errors(refined, pair, out_hw))
        print(f"{pair.content.name} -> {pair.geometry.name}: error {before[-1].mean():.3f} -> {after[-1].mean():.3f} "
              f"(scale {sim.scale:.3f} -> {refined.scale:.3f}, angle {math.degrees(refined.angle):.1f})", flush=True)
    rows = {"search": pck_summary(np.concatenate(before)), "search + similarity refined": pck_summary(np.concatenate(after))}
    for name, row in rows.items():
        print(f"{name:<28}" + " ".join(f"{k} {v:.3f}" for k, v in row.items()))
    print(f"{found} of {len(pairs)} pairs had a similarity; {seconds / max(found, 1):.1f} s a pair to refine")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "pairs": len(pairs), "found": found, "steps": args.steps,
                                        "lr": args.lr, "taps": TAPS, "seconds_per_pair": seconds / max(found, 1)},
                                       indent=1))


if __name__ == "__main__":
    main()
