"""Probe: refinement settings on the aligned view (40 headshot pairs, as docs/runs/search_refine/head40_refine_aligned.json).

    python scripts/probe_refine_settings.py --refined-smoothness 0 --out p_unsm.json
    python scripts/probe_refine_settings.py --lr 0.03 --out p_lr03.json
    python scripts/probe_refine_settings.py --size 32 --smooth-weight 0.002 --out p_s32.json
    python scripts/probe_refine_settings.py --max-overshoot 0.25 --taps pool4,relu4_1,relu3_1 --out p_r31.json

Measured 2026-12-02 (docs/quality.md): none beats the defaults within the 1 % fold target.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import warpstyle.geometry.warper as wm
from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
from warpstyle.evaluation.landmark_eval import evaluate_landmarks, face_pairs, format_landmark_table
from warpstyle.geometry.objective import objective_features
from warpstyle.geometry.refine import refine_field

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, default=0.01)
ap.add_argument("--smooth-weight", type=float, default=0.01)
ap.add_argument("--refined-smoothness", type=float, default=None)
ap.add_argument("--size", type=int, default=16)
ap.add_argument("--steps", default="50,100")
ap.add_argument("--taps", default=None, help="the refinement's VGG taps, pool4 among them (the network reads it; default: the objective's pool4,relu4_1)")
ap.add_argument("--max-overshoot", type=float, default=None, help="only pairs a frame-respecting alignment can line up")
ap.add_argument("--out", required=True)
a = ap.parse_args()
# the refinement's lr and smoothness are not options of estimate: the probe swaps in its own defaults
wm.refine_field = functools.partial(refine_field, lr=a.lr, smooth_weight=a.smooth_weight)
if a.taps:  # the content's and geometry's refinement taps (the aligned view re-encodes the content's keys)
    wm.objective_features = lambda encoder, image, taps=None, **kw: objective_features(
        encoder, image, tuple(a.taps.split(",")), **kw)
D = Path(__file__).resolve().parents[2] / "shared" / "data"
pairs, _ = face_pairs([D / "photos"], [D / "geometry", D / "paintings"], LandmarkCache(default_cache_path(), None),
                      split="all", min_face=0.2, max_pairs=40, max_overshoot=a.max_overshoot)
rep = evaluate_landmarks(wm.Warper.from_pretrained(), pairs, refine_steps=[int(x) for x in a.steps.split(",")],
                         refine_size=a.size, refined_smoothness=a.refined_smoothness, align=True)
rep["probe"] = vars(a)
print(vars(a)); print(format_landmark_table(rep))
json.dump(rep, open(a.out, "w"), indent=1, default=float)
