"""Split a landmark evaluation by how far each pair's landmark-fitted similarity overshoots the content.

    warpstyle eval-warper ... --json ho.json
    python scripts/split_landmarks.py ho.json [0.25]

``warpstyle eval-warper`` (landmark mode) records every pair with the frame overshoot of the
similarity fitted on its landmarks (:func:`warpstyle.evaluation.landmarks.similarity_overshoot`). Pairs within
``0.25`` (the alignment search's frame check, warpstyle.geometry.align.MAX_OVERSHOOT) can be lined up by a
global alignment whose output still shows the content; the others need the content shrunk inside
the geometry's frame, with padding around it. Prints each row's figures on both parts. Every pair
has 68 landmarks, so the mean of the pairs' figures is the pooled figure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python scripts/split_landmarks.py REPORT.json [OVERSHOOT, default 0.25]")
    path, limit = Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.25
    report = json.loads(path.read_text())
    report = report.get("landmarks", report)
    pairs = report.get("per_pair")
    if not pairs:
        raise SystemExit(f"{path}: no per-pair records (a report written before they were added)")
    if "rows" not in pairs[0]:  # the first form of the record: each row's mean error only
        pairs = [{**p, "rows": {k: {"mean_error": v} for k, v in p["mean_error"].items()}} for p in pairs]
    parts = {f"overshoot <= {limit:g}": [p for p in pairs if p["overshoot"] <= limit],
             f"overshoot > {limit:g}": [p for p in pairs if p["overshoot"] > limit]}
    keys = [k for k in pairs[0]["rows"]["identity"] if k.startswith("pck@")] + ["mean_error"]
    for label, part in parts.items():
        print(f"{label}: {len(part)} of {len(pairs)} pairs")
        if not part:
            continue
        print(f"  {'field':<12}" + "".join(f"{k:>11}" for k in keys))
        for name in part[0]["rows"]:
            vals = [sum(p["rows"][name][k] for p in part) / len(part) for k in keys]
            print(f"  {name:<12}" + "".join(f"{v:>11.3f}" for v in vals))


if __name__ == "__main__":
    main()
