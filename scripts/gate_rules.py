"""Gate and frame rules of the alignment search, replayed on ``probe_scale_search.py --dump`` records.

    python scripts/gate_rules.py docs/runs/search_mutual/S_framed_ho48.json docs/runs/search_mutual/S_framed_head120.json

For each file prints PCK@0.10 (similarity alone) of the search's pick with the gate's floor (``S >= 8``, else not
moving; the shipped gate also asks the pick to beat not moving's ``S``, which the dumps do not hold), of the same
with "decline" (also not moving where the overall winner lies beyond the frame check), and of an oracle gate (pick
or not moving, whichever the landmarks prefer), ungated figures beside.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from warpstyle.geometry.align import MAX_OVERSHOOT
from warpstyle.geometry.scale_search import MIN_EVIDENCE


def main() -> None:
    for path in sys.argv[1:]:
        recs = json.loads(open(path).read())
        pick = np.array([r["pick_pck10"] for r in recs])
        still = np.array([r["still_pck10"] for r in recs])
        score = np.array([-np.inf if r["S"] is None else r["S"] for r in recs])
        framed = np.array([r["free_over"] <= MAX_OVERSHOOT + 1e-6 for r in recs])
        gate = score >= MIN_EVIDENCE
        changed = gate & ~framed
        print(f"{path}: {len(recs)} pairs")
        print(f"  gated:   search {np.where(gate, pick, still).mean():.3f}  decline {np.where(gate & framed, pick, still).mean():.3f}"
              f"  ({int(changed.sum())} pairs declined: pick {pick[changed].mean():.3f}, not moving {still[changed].mean():.3f})")
        print(f"  ungated: search {pick.mean():.3f}  decline {np.where(framed, pick, still).mean():.3f}"
              f"  oracle gate {np.maximum(pick, still).mean():.3f}")


if __name__ == "__main__":
    main()
