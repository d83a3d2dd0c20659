"""Probe: gate the alignment search on how far its chosen placement stands out among its scale's placements.

    python scripts/probe_search_gate.py unrelated   # face-less held-out photos x noise and held-out paintings
    python scripts/probe_search_gate.py ho          # 48 held-out face pairs: S, that z, PCK@0.10 of the pick
    python scripts/probe_search_gate.py head        # 40 headshot pairs, all splits

Reimplements warpstyle.geometry.scale_search.search_similarity's choice (same defaults) and prints, for the pick,
``pz`` = (S - mean S) / std S over the valid placements of its scale. Measured 2026-12-02: noise
geometries 2.4-4.3, unrelated paintings 2.3-4.2; face pairs picked right (80 % of landmarks within
0.10) 2.6-7.6, picked wrong 2.3-5.6. It does not separate them, so the search keeps its S >= 8 gate.
"""
import sys
from pathlib import Path
import torch
import torch.nn.functional as F
from adain.base.image import load_image
from adain.base.data import list_images, split_paths
from warpstyle import scale_search as ss
from warpstyle.geometry.align import frame_overshoot, compose_similarity
from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
from warpstyle.evaluation.landmark_eval import face_pairs
from warpstyle.evaluation.landmarks import landmark_errors, map_landmarks
from warpstyle.fields.warp import identity_grid
from warpstyle.geometry.warper import Warper
torch.set_grad_enabled(False)
D = Path(__file__).resolve().parents[2] / "shared" / "data"
enc = Warper.from_pretrained().encoder

def best(big, small):
    if min(small.shape[1:]) < 2: return None
    sc = ss.window_scores(big, small)
    fin = sc[torch.isfinite(sc)]
    v, i = sc.flatten().max(0)
    if not torch.isfinite(v): return None
    y, x = divmod(int(i), sc.shape[1])
    pz = float((v - fin.mean()) / fin.std().clamp_min(1e-6)) if fin.numel() > 2 else 0.0
    return float(v), y - small.shape[1] + 1, x - small.shape[2] + 1, pz

def search(content, geometry, size=384, steps=4, octaves=2):
    c_hw, g_hw = tuple(content.shape[-2:]), tuple(geometry.shape[-2:])
    frames = ((g_hw[1] / max(g_hw), g_hw[0] / max(g_hw)), (c_hw[1] / max(c_hw), c_hw[0] / max(c_hw)))
    sizes = [max(16, round(size * 2 ** (-k / steps))) for k in range(octaves * steps + 1)]
    (gx, gy), (cx, cy) = frames
    max_scale = 1.25 * min(cx / gx, cy / gy) * 2 ** (0.5 / steps)
    fc, c_res = ss._encode(enc, content, size); fg, g_res = ss._encode(enc, geometry, size)
    still = l2_normalize_features(F.interpolate(fg[None], size=fc.shape[1:], mode="bilinear", align_corners=False))[0]
    floor = max(ss._still_score(fc, still), 8.0)
    out = None
    def consider(f, sim):
        nonlocal out, floor
        a = torch.tensor([complex(sim.scale, 0.0)], dtype=torch.complex128); b = torch.tensor([complex(*sim.shift)], dtype=torch.complex128)
        if f[0] > floor and float(frame_overshoot(a, b, frames)[0]) <= 0.25 + 1e-6:
            out, floor = (sim, f[0], f[3]), f[0]
    for s in sizes:
        gsm, gr = (fg, g_res) if s == size else ss._encode(enc, geometry, s)
        f = best(fc, gsm)
        if f: consider(f, ss._to_similarity((f[2] * 16, f[1] * 16), c_hw, c_res, g_hw, gr))
        if s == size or size / s > max_scale: continue
        csm, cr = ss._encode(enc, content, s)
        f = best(fg, csm)
        if f: consider(f, ss._to_similarity((-f[2] * 16, -f[1] * 16), c_hw, cr, g_hw, g_res))
    return out

cache = LandmarkCache(default_cache_path(), None)
dirs = ([D / "photos"], [D / "geometry", D / "paintings"])
mode = sys.argv[1]
if mode in ("ho", "head"):
    pairs = face_pairs(*dirs, cache, split="all", min_face=0.2, max_pairs=40)[0] if mode == "head" else face_pairs(*dirs, cache)[0]
    for p in pairs:
        r = search(load_image(p.content), load_image(p.geometry))
        if r is None: print("none"); continue
        grid = compose_similarity([r[0]], identity_grid(1, 16, 16), p.content_hw, p.geometry_hw)
        e = landmark_errors(map_landmarks(grid, p.geometry_points, p.geometry_hw, p.content_hw), p.content_points, p.content_hw)
        print(f"S {r[1]:.2f} pz {r[2]:.2f} pck {(e <= 0.1).mean():.2f}", flush=True)
else:
    photos = split_paths(list_images(D / "photos"), D / "photos", "heldout", 0.1)
    photos = [p for p in photos if cache.get(p)[0] is None][::4][:10]
    gen = torch.Generator().manual_seed(0)
    geos = [("noise", torch.rand(1, 3, 256, 256, generator=gen)), ("noise_lowfreq", F.interpolate(torch.rand(1, 3, 16, 16, generator=gen), size=(256, 256), mode="bicubic").clamp(0, 1))]
    paints = split_paths(list_images(D / "paintings"), D / "paintings", "heldout", 0.1)[::10][:4]
    geos += [(q.name, load_image(q)) for q in paints]
    for p in photos:
        c = load_image(p)
        for name, g in geos:
            r = search(c, g)
            print(f"{p.name[:18]:>18} {name[:18]:>18} " + ("none" if r is None else f"S {r[1]:.2f} pz {r[2]:.2f} scale {r[0].scale:.2f}"), flush=True)
