"""Probe: centre crops of the geometry as extra templates of the alignment search, chosen by S.

    python scripts/probe_search_crops.py ho 0.7,0.5     # 48 held-out face pairs
    python scripts/probe_search_crops.py head 0.7,0.5   # 120 headshot pairs, all splits

Similarity alone, no frame check, as scripts/probe_scale_search.py. Measured 2026-12-02 on the 48
held-out pairs: S over full and cropped templates PCK@0.10 0.373 (mean error 0.288) against 0.429
(0.259) with the full template only; the best candidate 0.755 against 0.738. Not adopted.
"""
import sys
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
from adain.base.image import load_image
from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
from warpstyle.evaluation.landmark_eval import face_pairs
from warpstyle.evaluation.landmarks import landmark_errors
from warpstyle.geometry.scale_search import window_scores
from warpstyle.geometry.warper import Warper
torch.set_grad_enabled(False)
D = Path(__file__).resolve().parents[2] / "shared" / "data"; SIZE = 384; SIZES = [round(SIZE * 2 ** (-k / 4)) for k in range(9)]
CROPS = [float(c) for c in sys.argv[2].split(",")]
cache = LandmarkCache(default_cache_path(), None)
dirs = ([D / "photos"], [D / "geometry", D / "paintings"])
pairs = face_pairs(*dirs, cache, split="all", min_face=0.2, max_pairs=120)[0] if sys.argv[1] == "head" else face_pairs(*dirs, cache)[0]
enc = Warper.from_pretrained().encoder
imgs = {}
def encode(path, longer, crop=1.0):
    if path not in imgs: imgs[path] = load_image(path)
    x = imgs[path]; H, W = x.shape[-2:]
    ch, cw = round(H * crop), round(W * crop); oy, ox = (H - ch) // 2, (W - cw) // 2
    x = x[..., oy:oy + ch, ox:ox + cw]
    hw = (max(32, round(ch * longer / max(ch, cw))), max(32, round(cw * longer / max(ch, cw))))
    f = enc(F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False), taps=("pool4",))["pool4"]
    return l2_normalize_features(f)[0], hw, (ox, oy), (ch, cw)
res = {k: [] for k in ["S full", "S full+crops", "oracle full", "oracle full+crops"]}
for n, pair in enumerate(pairs):
    fc, c_hw, _, _ = encode(pair.content, SIZE)
    rows = []  # (S, errors, is_crop)
    for crop in [1.0] + CROPS:
        for s in SIZES:
            fg, g_hw, (ox, oy), (gch, gcw) = encode(pair.geometry, s, crop)
            if min(fg.shape[1:]) < 2: continue
            sc = window_scores(fc, fg)
            v, i = sc.flatten().max(0)
            if not torch.isfinite(v): continue
            y, x = divmod(int(i), sc.shape[1]); h, w = fg.shape[1:]
            off = 16 * np.array([x - w + 1, y - h + 1])
            gp = (pair.geometry_points - np.array([ox, oy])) * np.array([g_hw[1] / gcw, g_hw[0] / gch])
            cp = (gp + off) * np.array([pair.content_hw[1] / c_hw[1], pair.content_hw[0] / c_hw[0]])
            rows.append((float(v), landmark_errors(cp, pair.content_points, pair.content_hw), crop != 1.0))
        if crop == 1.0:
            fg, g_hw, _, _ = encode(pair.geometry, SIZE)
            for s in SIZES[1:]:
                fc2, c2_hw, _, _ = encode(pair.content, s)
                sc = window_scores(fg, fc2); v, i = sc.flatten().max(0)
                if not torch.isfinite(v): continue
                y, x = divmod(int(i), sc.shape[1]); h, w = fc2.shape[1:]
                off = 16 * np.array([x - w + 1, y - h + 1])
                gp = pair.geometry_points * np.array([g_hw[1] / pair.geometry_hw[1], g_hw[0] / pair.geometry_hw[0]])
                cp = (gp - off) * np.array([pair.content_hw[1] / c2_hw[1], pair.content_hw[0] / c2_hw[0]])
                rows.append((float(v), landmark_errors(cp, pair.content_points, pair.content_hw), False))
    full = [r for r in rows if not r[2]]
    res["S full"].append(max(full, key=lambda r: r[0])[1]); res["S full+crops"].append(max(rows, key=lambda r: r[0])[1])
    res["oracle full"].append(max(full, key=lambda r: (r[1] <= 0.1).mean())[1])
    res["oracle full+crops"].append(max(rows, key=lambda r: (r[1] <= 0.1).mean())[1])
    print(f"{n+1}/{len(pairs)}", end="\r", flush=True)
print(sys.argv[1:], len(pairs))
for k, v in res.items():
    e = np.concatenate(v); print(f"{k:>20}: PCK@0.10 {(e <= 0.1).mean():.3f} mean error {e.mean():.3f}")
