"""Probe: re-rank the alignment search's candidates by how the aligned pair compares at the warper's view.

For every face pair, every scale's best placement of warpstyle.geometry.scale_search (both branches, frame check
applied) and "not moving" are candidates. Each candidate's content view (the content seen through the
similarity, 256 px, as Warper._aligned_features makes it) is encoded and compared with the geometry's
256 px features, cell for cell, under several scores. Prints PCK@0.10 / mean error of the similarity
chosen by each score (no network field), beside the search's own choice and the best candidate.

    python scripts/probe_search_verify.py [--headshots] [--out rows.npy]
    python scripts/probe_search_verify.py --unrelated   # scores of face-less photos x portraits, noise

Measured 2026-12-02 (docs/quality.md, "The alignment search"): no verification score chose better than
the search's own S (48 held-out pairs: S 0.325, best verification cos pool4 0.322; 120 headshots: S 0.450,
z pool4 0.449, S + z pool4 0.467; the best candidate 0.595 / 0.727), so the search keeps S.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adain.base.image import load_image, resize_longer
from warpstyle import scale_search as ss
from warpstyle.geometry.align import compose_similarity, frame_overshoot
from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
from warpstyle.evaluation.landmark_eval import face_pairs
from warpstyle.evaluation.landmarks import landmark_errors, map_landmarks
from warpstyle.fields.warp import identity_grid
from warpstyle.geometry.warper import Warper

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TAPS = ("relu3_1", "relu4_1", "pool4")


def candidates(encoder, content, geometry, size=384, octaves=2, steps=4):
    """[(S, sim or None, frame_ok)] : each scale's best placement of both branches, and not moving."""
    c_hw, g_hw = tuple(content.shape[-2:]), tuple(geometry.shape[-2:])
    frames = ((g_hw[1] / max(g_hw), g_hw[0] / max(g_hw)), (c_hw[1] / max(c_hw), c_hw[0] / max(c_hw)))
    sizes = [max(16, round(size * 2 ** (-k / steps))) for k in range(octaves * steps + 1)]
    (gx, gy), (cx, cy) = frames
    max_scale = 1.25 * min(cx / gx, cy / gy) * 2 ** (0.5 / steps)
    fc, c_res = ss._encode(encoder, content, size)
    fg, g_res = ss._encode(encoder, geometry, size)
    still = l2_normalize_features(F.interpolate(fg[None], size=fc.shape[1:], mode="bilinear", align_corners=False))[0]
    out = [(ss._still_score(fc, still), None, True)]

    def add(found, sim):
        a = torch.tensor([complex(sim.scale, 0.0)], dtype=torch.complex128)
        b = torch.tensor([complex(*sim.shift)], dtype=torch.complex128)
        out.append((found, sim, float(frame_overshoot(a, b, frames)[0]) <= 0.25 + 1e-6))

    for s in sizes:
        g_small, g_small_res = (fg, g_res) if s == size else ss._encode(encoder, geometry, s)
        f = ss._best(fc, g_small, 0.75)
        if f is not None:
            add(f[0], ss._to_similarity((f[2] * 16, f[1] * 16), c_hw, c_res, g_hw, g_small_res))
        if s == size or size / s > max_scale:
            continue
        c_small, c_small_res = ss._encode(encoder, content, s)
        f = ss._best(fg, c_small, 0.75)
        if f is not None:
            add(f[0], ss._to_similarity((-f[2] * 16, -f[1] * 16), c_hw, c_small_res, g_hw, g_res))
    return out


def view(content, sim, c_hw, g_hw, n=256):
    x = content.float()
    if sim is None:
        return F.interpolate(x, size=(n, n), mode="bilinear", antialias=True, align_corners=False)
    gx, gy = g_hw[1] / max(g_hw), g_hw[0] / max(g_hw)
    need = math.ceil(n / (sim.scale * min(gx, gy)))
    if need < max(x.shape[-2:]):
        x = resize_longer(x, need)
    grid = compose_similarity([sim], identity_grid(1, n, n), c_hw, g_hw)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def zscore(fc, fg):
    """cell-for-cell z of geometry cell i against the view's cells: (n,)"""
    cos_all = fg.T @ fc  # (g cells, c cells)
    mu = cos_all.mean(1)
    sd = cos_all.std(1, unbiased=False).clamp_min(1e-6)
    return (cos_all.diagonal() - mu) / sd


def score_candidates(enc, c, g, c_hw, g_hw):
    gv = F.interpolate(g, size=(256, 256), mode="bilinear", antialias=True, align_corners=False)
    fgt = {k: l2_normalize_features(v)[0].flatten(1) for k, v in enc(gv, taps=TAPS).items()}
    cands = candidates(enc, c, g)
    views = torch.cat([view(c, sim, c_hw, g_hw) for _, sim, _ in cands])
    fct = {k: l2_normalize_features(v).flatten(2) for k, v in enc(views, taps=TAPS).items()}
    recs = []
    for j, (s, sim, ok) in enumerate(cands):
        r = {"S": s, "ok": ok, "still": sim is None, "scale": 1.0 if sim is None else sim.scale}
        for k in TAPS:
            z = zscore(fct[k][j], fgt[k])
            r[f"z_{k}"] = float(z.sum() / z.numel() ** 0.5)
        recs.append(r)
    return recs


def unrelated(enc, cache, face_pairs_, out):
    from adain.base.data import list_images, split_paths
    photos = [p for p in split_paths(list_images(DATA / "photos"), DATA / "photos", "heldout", 0.1)
              if cache.get(p)[0] is None]
    photos = photos[:: max(1, len(photos) // 8)][:8]
    portraits = sorted({fp.geometry for fp in face_pairs_})
    portraits = portraits[:: max(1, len(portraits) // 4)][:4]
    gen = torch.Generator().manual_seed(0)
    rows = []
    for p in photos:
        c = load_image(p)
        gs = [(str(q), load_image(q)) for q in portraits] + [("noise", torch.rand(1, 3, 256, 256, generator=gen))]
        for name, g in gs:
            recs = score_candidates(enc, c, g, tuple(c.shape[-2:]), tuple(g.shape[-2:]))
            rows.append((str(p), name, recs))
            ok = [r for r in recs if r["ok"]]
            bs = max(ok, key=lambda r: r["S"])
            bz = max(ok, key=lambda r: r["z_pool4"])
            print(f"{Path(p).name[:20]:>20} {Path(name).name[:20]:>20}  S-pick S {bs['S']:5.1f} scale {bs['scale']:.2f} still "
                  f"S {recs[0]['S']:5.1f} | z-pick z {bz['z_pool4']:5.1f} scale {bz['scale']:.2f} still z {recs[0]['z_pool4']:5.1f}",
                  flush=True)
    np.save(out, np.array(rows, dtype=object), allow_pickle=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--headshots", action="store_true")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", default="/tmp/probe_verify.npy")
    ap.add_argument("--unrelated", action="store_true", help="face-less photos x portraits, and noise geometries")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    cache = LandmarkCache(default_cache_path(), None)
    dirs = ([DATA / "photos"], [DATA / "geometry", DATA / "paintings"])
    if args.headshots:
        pairs, _ = face_pairs(*dirs, cache, split="all", min_face=0.2, max_pairs=120)
    else:
        pairs, _ = face_pairs(*dirs, cache)
    if args.limit:
        pairs = pairs[:: max(1, len(pairs) // args.limit)]
    warper = Warper.from_pretrained()
    enc = warper.encoder
    if args.unrelated:
        return unrelated(enc, cache, pairs, args.out)
    rows = []  # per pair: list of dicts per candidate
    t0 = time.time()
    gcache = {}
    for n, pair in enumerate(pairs):
        c = load_image(pair.content)
        g = load_image(pair.geometry)
        c_hw, g_hw = pair.content_hw, pair.geometry_hw
        if pair.geometry not in gcache:
            gv = F.interpolate(g, size=(256, 256), mode="bilinear", antialias=True, align_corners=False)
            gcache[pair.geometry] = {k: l2_normalize_features(v)[0].flatten(1) for k, v in enc(gv, taps=TAPS).items()}
        fgt = gcache[pair.geometry]
        cands = candidates(enc, c, g)
        views = torch.cat([view(c, sim, c_hw, g_hw) for _, sim, _ in cands])
        fct = {k: l2_normalize_features(v).flatten(2) for k, v in enc(views, taps=TAPS).items()}
        recs = []
        for j, (s, sim, ok) in enumerate(cands):
            grid = compose_similarity([sim], identity_grid(1, 16, 16), c_hw, g_hw)
            err = landmark_errors(map_landmarks(grid, pair.geometry_points, g_hw, c_hw), pair.content_points, c_hw)
            r = {"S": s, "ok": ok, "still": sim is None, "pck": float((err <= 0.1).mean()), "err": err,
                 "scale": 1.0 if sim is None else sim.scale}
            for k in TAPS:
                a, b = fct[k][j], fgt[k]
                r[f"cos_{k}"] = float((a * b).sum(0).mean())
                z = zscore(a, b)
                r[f"z_{k}"] = float(z.sum() / z.numel() ** 0.5)
            recs.append(r)
        rows.append(recs)
        print(f"{n + 1}/{len(pairs)} {time.time() - t0:.0f}s", end="\r", flush=True)
    print()
    np.save(args.out, np.array(rows, dtype=object), allow_pickle=True)

    def report(name, key, gate=None):
        errs = []
        for recs in rows:
            ok = [r for r in recs if r["ok"]]
            best = max(ok, key=key)
            if gate is not None and not gate(best, recs):
                best = recs[0]
            errs.append(best["err"])
        e = np.concatenate(errs)
        print(f"{name:>28}: PCK@0.10 {(e <= 0.1).mean():.3f}  mean error {e.mean():.3f}")

    report("still", lambda r: r["still"])
    report("S (search, ungated)", lambda r: r["S"])
    report("S, gated 8", lambda r: r["S"], lambda b, rs: b["S"] >= 8)
    for k in TAPS:
        report(f"cos {k}", lambda r, k=k: r[f"cos_{k}"])
        report(f"z {k}", lambda r, k=k: r[f"z_{k}"])
    report("z relu4_1+pool4", lambda r: r["z_relu4_1"] + r["z_pool4"])
    report("z all", lambda r: r["z_relu3_1"] + r["z_relu4_1"] + r["z_pool4"])
    report("S + z pool4", lambda r: r["S"] + r["z_pool4"])
    e = np.concatenate([max(recs, key=lambda r: r["pck"])["err"] for recs in rows])
    print(f"{'best candidate':>28}: PCK@0.10 {(e <= 0.1).mean():.3f}  mean error {e.mean():.3f}")


if __name__ == "__main__":
    main()
