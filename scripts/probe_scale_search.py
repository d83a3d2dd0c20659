"""Probe behind warpstyle/geometry/scale_search.py: how to score the placements of a multi-scale template search.

    python scripts/probe_scale_search.py            # 48 held-out face pairs
    python scripts/probe_scale_search.py --headshots # 120 headshot pairs, all splits (evaluation only)

For every pair, the geometry's pool4 map (longer side 384 * 2**(-k/4) px, k = 0..8) slides over the
content's (384 px), and the content's map at those sizes over the geometry's (384 px); each window's
best placement is kept under three scores: ``raw`` (mean of cos - mu_i), ``z`` (that mean's z-score
over the placements) and ``S`` (summed per-cell z / sqrt n, what scale_search uses). Prints, per
score (and ``votesK``: how many window cells have the cell under them among their K best matches, as
a binomial z; measured 2026-12-02, no clear gain over ``S`` on the 48 held-out pairs: PCK@0.10 0.45
against 0.43, but mean error 0.34 against 0.26), PCK@0.10 and mean landmark error of the similarity alone (no network field, no frame check),
and the best any of the candidates reaches (chosen by the landmarks: the search space's ceiling).
Also ``Ssym`` (``S`` plus each big-map cell's z against the whole window) and ``ds<T>`` (dual softmax),
measured 2026-12-02 (stop 26): neither beats ``S`` with the frame check. Every score is reported twice:
without a frame check, and with the search's (each scale's best placement within 0.25 of the content's
half-extent, else not moving), ungated. ``--dump F`` writes ``S``'s framed pick per pair (JSON).
Needs the landmark cache of ``warpstyle eval-warper``'s face mode (``pip install -e '.[eval]'``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adain.base.image import load_image
from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
from warpstyle.evaluation.landmark_eval import face_pairs
from warpstyle.evaluation.landmarks import landmark_errors
from warpstyle.geometry.warper import Warper

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZE = 384
SIZES = [round(SIZE * 2 ** (-k / 4)) for k in range(9)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--headshots", action="store_true")
    ap.add_argument("--dump", type=Path, help="write the S chooser's per-pair record (JSON)")
    args = ap.parse_args()
    records: list[dict] = []
    cache = LandmarkCache(default_cache_path(), None)
    dirs = ([DATA / "photos"], [DATA / "geometry", DATA / "paintings"])
    if args.headshots:
        pairs, _ = face_pairs(*dirs, cache, split="all", min_face=0.2, max_pairs=120)
    else:
        pairs, _ = face_pairs(*dirs, cache)
    encoder = Warper.from_pretrained().encoder
    feats: dict = {}

    def encode(path: Path, longer: int) -> tuple[torch.Tensor, tuple[int, int]]:
        if (path, longer) not in feats:
            x = load_image(path)
            h, w = x.shape[-2:]
            hw = (max(32, round(h * longer / max(h, w))), max(32, round(w * longer / max(h, w))))
            with torch.no_grad():
                f = encoder(F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False), taps=("pool4",))
            feats[(path, longer)] = (l2_normalize_features(f["pool4"])[0], hw)
        return feats[(path, longer)]

    def scores(big: torch.Tensor, small: torch.Tensor) -> dict[str, torch.Tensor]:
        _, hb, wb = big.shape
        _, h, w = small.shape
        pad = (h - 1, w - 1)
        cos_all = torch.einsum("chw,cij->hwij", big, small)
        mu = cos_all.mean((0, 1))
        sigma = (cos_all.pow(2).mean((0, 1)) - mu ** 2).clamp_min(1e-8).sqrt()
        ones = torch.ones(1, 1, hb, wb)
        cnt = F.conv2d(ones, torch.ones(1, 1, h, w), padding=pad)[0, 0]
        valid = cnt >= 0.75 * h * w
        raw = (F.conv2d(big[None], small[None], padding=pad) - F.conv2d(ones, mu[None, None], padding=pad))[0, 0] / (h * w)
        z = (raw - raw[valid].mean()) / raw[valid].std().clamp_min(1e-6)
        s = (F.conv2d(big[None], (small / sigma)[None], padding=pad)
             - F.conv2d(ones, (mu / sigma)[None, None], padding=pad))[0, 0] / cnt.clamp_min(1).sqrt()
        out = {"raw": raw, "z": z, "S": s}
        # Ssym: S with the other side's evidence added: each big-map cell under the window scored by its
        # z against the whole window map (a cell of the big map that matches everything counts for nothing).
        mu2 = cos_all.mean((2, 3))  # (hb, wb)
        sigma2 = (cos_all.pow(2).mean((2, 3)) - mu2 ** 2).clamp_min(1e-8).sqrt()
        s2 = (F.conv2d((big / sigma2)[None], small[None], padding=pad)
              - F.conv2d((mu2 / sigma2)[None, None], torch.ones(1, 1, h, w), padding=pad))[0, 0]
        s_sum = s * cnt.clamp_min(1).sqrt()
        out["Ssym"] = (s_sum + s2) / (2 * cnt.clamp_min(1)).sqrt()
        # dual softmax (LoFTR-style mutual matching): log P = log softmax over the big map + over the window,
        # each cell's gain over chance (log of the two maps' cell counts), summed / sqrt n.
        for t in (0.05, 0.1):
            lg = cos_all / t
            lp = (lg - lg.flatten(0, 1).logsumexp(0)[None, None]) + (lg - lg.flatten(2, 3).logsumexp(-1)[..., None, None])
            lp = lp + float(np.log(hb * wb) + np.log(h * w))
            lpm = lp.permute(2, 3, 0, 1)  # (h, w, hb, wb)
            acc = big.new_zeros(hb + h - 1, wb + w - 1)
            for i in range(h):
                for j in range(w):
                    acc[h - 1 - i: h - 1 - i + hb, w - 1 - j: w - 1 - j + wb] += lpm[i, j]
            out[f"ds{t}"] = acc / cnt.clamp_min(1).sqrt()
        # votes: a window cell votes for a placement when the cell under it is among its K best matches
        # on the big map; the count's binomial z (chance p = K / cells) makes window sizes comparable.
        for k_top in (1, 3, 8):
            kth = cos_all.flatten(0, 1).topk(k_top, dim=0).values[-1]  # (h, w)
            hits = (cos_all >= kth).float().permute(2, 3, 0, 1)  # (h, w, hb, wb)
            votes = big.new_zeros(hb + h - 1, wb + w - 1)
            for i in range(h):
                for j in range(w):
                    votes[h - 1 - i: h - 1 - i + hb, w - 1 - j: w - 1 - j + wb] += hits[i, j]
            p = k_top / (hb * wb)
            out[f"votes{k_top}"] = (votes - cnt * p) / (cnt * p * (1 - p)).clamp_min(1e-8).sqrt()
        return {k: v.masked_fill(~valid, float("-inf")) for k, v in out.items()}

    crits = ("raw", "z", "S", "Ssym", "ds0.05", "ds0.1", "votes1", "votes3", "votes8")
    picks: dict[str, list[np.ndarray]] = {c: [] for c in crits + ("best candidate",)}
    picks_framed: dict[str, list[np.ndarray]] = {c: [] for c in crits + ("best candidate",)}
    for n, pair in enumerate(pairs):
        cands = []  # (kind, scores, window size in cells, resized geometry hw, resized content hw)
        fc, c_hw = encode(pair.content, SIZE)
        for s in SIZES:
            fg, g_hw = encode(pair.geometry, s)
            cands.append(("g_in_c", scores(fc, fg), fg.shape[1:], g_hw, c_hw))
        fg, g_hw = encode(pair.geometry, SIZE)
        for s in SIZES[1:]:
            fc2, c2_hw = encode(pair.content, s)
            cands.append(("c_in_g", scores(fg, fc2), fc2.shape[1:], g_hw, c2_hw))
        (gh, gw), (ch, cw) = pair.geometry_hw, pair.content_hw
        # not moving: the geometry's points stretched onto the content's frame
        still_err = landmark_errors(pair.geometry_points * np.array([cw / gw, ch / gh]), pair.content_points,
                                    pair.content_hw)
        per = {}
        for crit in crits:
            rows = []
            for kind, sc, (h, w), (rgh, rgw), (rch, rcw) in cands:
                v, i = sc[crit].flatten().max(0)
                oy, ox = divmod(int(i), sc[crit].shape[1])
                off = 16 * np.array([ox - w + 1, oy - h + 1])
                gp = pair.geometry_points * np.array([rgw / gw, rgh / gh])
                cp = (gp + off if kind == "g_in_c" else gp - off) * np.array([cw / rcw, ch / rch])
                # the geometry's frame in content px, and how far beyond the content it reaches
                lo = (off if kind == "g_in_c" else -off) * np.array([cw / rcw, ch / rch])
                hi = lo + np.array([rgw, rgh]) * np.array([cw / rcw, ch / rch])
                half = np.array([cw, ch]) / 2
                over = max(0.0, float((np.maximum(abs(lo - half), abs(hi - half)) / half).max() - 1))
                rows.append((float(v), landmark_errors(cp, pair.content_points, pair.content_hw), over))
            per[crit] = rows
            picks[crit].append(max(rows, key=lambda r: r[0])[1])
            framed = [r for r in rows if r[2] <= 0.25 + 1e-6]
            picks_framed[crit].append(max(framed, key=lambda r: r[0])[1] if framed else still_err)
            if crit == "S" and args.dump:
                free = max(rows, key=lambda r: r[0])
                top = max(range(len(framed)), key=lambda k: framed[k][0]) if framed else None
                kinds = [(kind, rgh, rch) for kind, _, _, (rgh, _), (rch, _) in cands]
                idx = [k for k, r in enumerate(rows) if r[2] <= 0.25 + 1e-6]
                k = idx[top] if framed else None
                records.append({"pair": [str(pair.content.name), str(pair.geometry.name)],
                                "S": framed[top][0] if framed else None,
                                "zoom": None if k is None else (kinds[k][0], kinds[k][1], kinds[k][2]),
                                "pick_pck10": float((picks_framed[crit][-1] <= 0.1).mean()),
                                "still_pck10": float((still_err <= 0.1).mean()),
                                # the unconstrained winner: its overshoot and PCK@0.10
                                "free_over": free[2], "free_pck10": float((free[1] <= 0.1).mean())})
        every = [e for rows in per.values() for _, e, _ in rows]
        every_framed = [e for rows in per.values() for _, e, o in rows if o <= 0.25 + 1e-6]
        every_framed.append(still_err)
        picks_framed["best candidate"].append(max(every_framed, key=lambda e: (e <= 0.1).mean()))
        picks["best candidate"].append(max(every, key=lambda e: (e <= 0.1).mean()))
        print(f"{n + 1}/{len(pairs)}", end="\r", flush=True)
    print(f"{len(pairs)} pairs; similarity alone (no frame check), 384 px, scales 1/4..4")
    for name, errs in picks.items():
        e = np.concatenate(errs)
        print(f"{name:>15}: PCK@0.05 {(e <= 0.05).mean():.3f}  PCK@0.10 {(e <= 0.1).mean():.3f}  mean error {e.mean():.3f}")
    if args.dump:
        import json
        args.dump.write_text(json.dumps(records, indent=1))
    print("each scale's best placement within 0.25 of the content's half-extent (the search's frame check; "
          "none: not moving); ungated")
    for name, errs in picks_framed.items():
        e = np.concatenate(errs)
        print(f"{name:>15}: PCK@0.05 {(e <= 0.05).mean():.3f}  PCK@0.10 {(e <= 0.1).mean():.3f}  mean error {e.mean():.3f}")


if __name__ == "__main__":
    main()
