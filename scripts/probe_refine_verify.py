"""Probe: choose the search's placement by how well the warper, refined, can match the pair through it.

For every face pair, each scale's best placement of warpstyle.geometry.scale_search (both branches, within the
frame check) and "not moving" are candidates (scripts/probe_search_verify.py's candidate list). Through
each candidate the content is seen as Warper.estimate(align=True) sees it (re-encoded at 256 px), the
network's field is estimated there and refined ``--steps`` Adam steps on the feature-matching
objective; the candidate's verification score is the refined field's feature agreement (pool4 +
relu4_1 cosine, higher is better). Prints PCK and mean landmark error of the composed refined field
chosen by S (the search's own choice: the best S, not moving unless it reaches S >= 8), by the agreement,
by S plus a multiple of the agreement or of what refinement gained (the same floor on the chosen one's
own S), and by the best candidate (chosen by the landmarks: the ceiling).

    python scripts/probe_refine_verify.py [--headshots] [--max-overshoot 0.25] [--max-pairs 40] --out rows.json

The previous re-scoring probe compared *unwarped* views cell for cell; this one lets the field move
first, so a candidate whose parts match up to a local deformation is not penalised.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from adain.base.image import load_image
from warpstyle.geometry.align import compose_similarity
from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
from warpstyle.evaluation.landmark_eval import face_pairs
from warpstyle.evaluation.landmarks import landmark_errors, map_landmarks, pck_summary
from warpstyle.geometry.objective import feature_agreement, objective_features
from warpstyle.geometry.refine import refine_field
from warpstyle.geometry.scale_search import MIN_EVIDENCE
from warpstyle.geometry.warper import Warper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_search_verify import candidates  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
THRESHOLDS = (0.05, 0.1)


def _gated(recs: list[dict], key) -> dict:
    """The candidate best by ``key``, or not moving when it is not S >= MIN_EVIDENCE (the search's gate)."""
    best = max(recs, key=key)
    return best if best["still"] or best["S"] >= MIN_EVIDENCE else next(r for r in recs if r["still"])


def choosers_table(rows: list[dict]) -> dict[str, dict[str, float]]:
    """PCK@0.05 / PCK@0.10 / mean error of the refined field of the candidate each chooser picks (prints them)."""
    def gain(r: dict) -> float:
        return r["agree"] - r["agree_net"]

    choosers = {
        "S, gated (the search)": lambda recs: _gated(recs, lambda r: r["S"]),
        "refined agreement": lambda recs: max(recs, key=lambda r: r["agree"]),
        "network agreement": lambda recs: max(recs, key=lambda r: r["agree_net"]),
        **{f"S + {w} x refined agreement, gated": (lambda recs, w=w: _gated(recs, lambda r: r["S"] + w * r["agree"]))
           for w in (5, 20, 50)},
        **{f"S + {w} x refinement's gain, gated": (lambda recs, w=w: _gated(recs, lambda r: r["S"] + w * gain(r)))
           for w in (10, 20, 80)},
        "best candidate (landmarks)": lambda recs: min(recs, key=lambda r: float(np.mean(r["err"]))),
    }
    table = {}
    for name, choose in choosers.items():
        table[name] = pck_summary(np.concatenate([choose(r["candidates"])["err"] for r in rows]), THRESHOLDS)
        print(f"{name:>36}: PCK@0.05 {table[name]['pck@0.05']:.3f}  PCK@0.10 {table[name]['pck@0.1']:.3f}  "
              f"mean error {table[name]['mean_error']:.3f}")
    return table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--headshots", action="store_true", help="all splits, faces of at least 0.2 of the image")
    ap.add_argument("--max-overshoot", type=float, default=None)
    ap.add_argument("--max-pairs", type=int, default=None)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    cache = LandmarkCache(default_cache_path(), None)
    dirs = ([DATA / "photos"], [DATA / "geometry", DATA / "paintings"])
    kw = dict(split="all", min_face=0.2) if a.headshots else {}
    pairs, _ = face_pairs(*dirs, cache, max_pairs=a.max_pairs, max_overshoot=a.max_overshoot, **kw)
    warper = Warper.from_pretrained()
    enc = warper.encoder
    rows, t0 = [], time.time()
    for n, pair in enumerate(pairs):
        c, g = load_image(pair.content), load_image(pair.geometry)
        c_hw, g_hw = pair.content_hw, pair.geometry_hw
        c_obj, g_obj = objective_features(enc, c), objective_features(enc, g)
        recs = []
        for s, sim, ok in candidates(enc, c, g):
            if not ok:
                continue
            if sim is None:
                view = c_obj
            else:
                _, view = warper._aligned_features(c, c_obj["pool4"], [sim], c_hw, g_hw, False, c_obj)
            grid = warper.regressor(view["pool4"], g_obj["pool4"])
            before = float(feature_agreement(view, g_obj, grid)[0])
            refined = refine_field(view, g_obj, grid, steps=a.steps)
            after = float(feature_agreement(view, g_obj, refined)[0])
            full = refined if sim is None else compose_similarity([sim], refined, c_hw, g_hw)
            err = landmark_errors(map_landmarks(full, pair.geometry_points, g_hw, c_hw), pair.content_points, c_hw)
            recs.append({"S": s, "still": sim is None, "scale": 1.0 if sim is None else sim.scale,
                         "agree_net": before, "agree": after, "err": err.tolist()})
        rows.append({"content": str(pair.content), "geometry": str(pair.geometry), "candidates": recs})
        print(f"{n + 1}/{len(pairs)} {time.time() - t0:.0f}s", end="\r", flush=True)
    seconds = (time.time() - t0) / max(1, len(rows))
    print(f"\n{seconds:.2f} s a pair (every candidate's view, network field and refinement)")
    table = choosers_table(rows)
    for r in rows:  # each candidate's summary, not its 68 errors
        for c in r["candidates"]:
            c.update(pck_summary(c.pop("err"), THRESHOLDS))
    report = {"probe": vars(a), "pairs": len(rows), "seconds_per_pair": seconds, "table": table, "rows": rows}
    json.dump(report, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
