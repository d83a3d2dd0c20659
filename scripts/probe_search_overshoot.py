"""Probe: the alignment search with a looser frame check (how far the geometry's frame may map beyond the content).

    python scripts/probe_search_overshoot.py ho 0.5 out.json     # 48 held-out face pairs
    python scripts/probe_search_overshoot.py head 0.5 out.json   # 120 headshot pairs, all splits
    python scripts/probe_search_overshoot.py ho 8 out.json 3     # and scales 1/8..8 (three octaves)

Scores ``warpstyle eval-warper --align`` (no refinement) with ``search_similarity(max_overshoot=...)``
instead of the default (warpstyle.geometry.align.MAX_OVERSHOOT, 0.25). Beyond the content the warped image is
filled by the padding (reflection by default), so a looser check trades mirrored borders for placements.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import warpstyle.geometry.warper as wm
from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
from warpstyle.evaluation.landmark_eval import evaluate_landmarks, face_pairs, format_landmark_table
from warpstyle.geometry.scale_search import SEARCH_OCTAVES, search_similarity

D = Path(__file__).resolve().parents[2] / "shared" / "data"
mode, overshoot, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
octaves = int(sys.argv[4]) if len(sys.argv) > 4 else SEARCH_OCTAVES
wm.search_similarity = functools.partial(search_similarity, max_overshoot=overshoot, octaves=octaves)
dirs = ([D / "photos"], [D / "geometry", D / "paintings"])
cache = LandmarkCache(default_cache_path(), None)
if mode == "head":
    pairs = face_pairs(*dirs, cache, split="all", min_face=0.2, max_pairs=120)[0]
else:
    pairs = face_pairs(*dirs, cache)[0]
rep = evaluate_landmarks(wm.Warper.from_pretrained(), pairs, align=True)
rep["probe"] = {"mode": mode, "max_overshoot": overshoot, "octaves": octaves}
print(format_landmark_table(rep))
Path(out).write_text(json.dumps(rep, indent=1, default=float))
