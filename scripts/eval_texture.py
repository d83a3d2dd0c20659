"""Texture-stage scores on held-out photo x painting pairs (docs/quality.md, the texture-stage issue).

For each decoder, schedule and alpha: style loss, relative content loss, SSIM and PSNR to the
content (``adain.evaluate.texture_scores``), averaged over the pairs, and the two artefacts of the
texture-polish issue as medians over the pairs: the band along each edge (``edge_bands``; the
worst side is printed) and the 2/4 px lattice (its spectral prominence, ``lattice_ratio``, and its
energy, ``lattice_energy``), 1 meaning none; at ``--size``
with the styler's default scale schedule (``--scales`` to override), float32 unless the CPU has
native bf16.

    python scripts/eval_texture.py --decoders adain/weights/decoder.safetensors runs/styler_identity/decoder.safetensors \
        --schedules guided restylize --alphas 0 0.5 1 --pairs 12 --json texture.json
    python scripts/eval_texture.py --refine 0 10 30 --from-content 30 90 --pairs 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from adain.base.image import labelled_row, load_image, resize_longer
from adain.base.encoder.vgg import VGGEncoder
from adain.evaluate import heldout_pairs, texture_scores
from adain.styler import SCHEDULES, Styler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content-dir", default="../shared/data/photos")
    ap.add_argument("--style-dir", default="../shared/data/paintings")
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--scales", type=int, nargs="*", default=None, help="pass sizes (default: the styler's)")
    ap.add_argument("--decoders", nargs="+", default=["adain/weights/decoder.safetensors"])
    ap.add_argument("--schedules", nargs="+", default=["guided"], choices=SCHEDULES)
    ap.add_argument("--alphas", type=float, nargs="+", default=[1.0])
    ap.add_argument("--refine", type=int, nargs="+", default=[0], help="refine_steps values to score")
    ap.add_argument("--from-content", type=int, nargs="*", default=[],
                    help="also score optimisation from the content image itself for these step counts "
                         "(Gatys et al.'s method, with the styler's Adam objective), per decoder-free row")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--sheet", type=Path, default=None,
                    help="also write a JPEG: per pair, the content, the style and every scored output side by side")
    ap.add_argument("--sheet-pairs", type=int, default=4, help="pairs (rows) in --sheet")
    args = ap.parse_args()
    torch.manual_seed(0)
    pairs = heldout_pairs(args.content_dir, args.style_dir, holdout=args.holdout, pairs=args.pairs)
    encoder = VGGEncoder.from_pretrained()
    images = [(resize_longer(load_image(c), args.size), resize_longer(load_image(s), args.size)) for c, s in pairs]
    rows = []
    sheet_rows: list[list[tuple[str, torch.Tensor]]] = [[("content", c), ("style", s)]
                                                        for c, s in images[:args.sheet_pairs]] if args.sheet else []
    print(f"| decoder | schedule | alpha | refine | style loss | content loss | SSIM | PSNR | band (worst side) | "
          f"lattice (peak) | lattice (energy) | s/image |  ({len(pairs)} held-out pairs, {args.size} px)", flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    def score(label: str, sched: str, alpha: float, refine: int, run) -> None:
        per_pair: dict[str, list[float]] = {}
        t0 = time.perf_counter()
        for i, (c, s) in enumerate(images):
            out = run(c, s)
            if i < len(sheet_rows):
                sheet_rows[i].append((f"{Path(label).stem} a={alpha:g}" + (f" r={refine}" if refine else ""), out))
            for k, v in texture_scores(encoder, c, out, s).items():
                per_pair.setdefault(k, []).append(v)
        # ratios (one odd pair can dominate a mean) by the median, losses by the mean
        acc = {k: statistics.median(v) if k.startswith("band_") or k.startswith("lattice") else statistics.fmean(v)
               for k, v in per_pair.items()}
        worst = max((k for k in acc if k.startswith("band_")), key=acc.__getitem__)
        row = {"decoder": label, "schedule": sched, "alpha": alpha, "refine": refine, "pairs": len(images),
               "size": args.size, "seconds_per_image": (time.perf_counter() - t0) / len(images), **acc}
        rows.append(row)
        print(f"| {label} | {sched} | {alpha:g} | {refine} | {acc['style_loss']:.3f} | {acc['content_loss']:.3f} | "
              f"{acc['ssim']:.3f} | {acc['psnr']:.2f} | {acc[worst]:.2f} ({worst[5:]}) | {acc['lattice']:.2f} | "
              f"{acc['lattice_energy']:.2f} | {row['seconds_per_image']:.1f} |", flush=True)

    for d in args.decoders:
        styler = Styler.from_pretrained(d, encoder=encoder)
        for sched in args.schedules:
            for alpha in args.alphas:
                for n in args.refine:
                    score(d, sched, alpha, n, lambda c, s: styler.stylize(
                        c, [s], alpha=alpha, size=args.size, scales=args.scales, schedule=sched, refine_steps=n))
    for n in args.from_content:
        styler = Styler.from_pretrained(args.decoders[0], encoder=encoder)
        score("none: optimised from the content", "-", 1.0, n, lambda c, s: styler.refine(
            c, c, styler.encode_styles([s]), torch.ones(1), steps=n, size=args.size))
    if sheet_rows:
        strips = [labelled_row(r, height=192) for r in sheet_rows]
        sheet = Image.new("RGB", (max(x.width for x in strips), sum(x.height for x in strips)), "white")
        y = 0
        for strip in strips:
            sheet.paste(strip, (0, y))
            y += strip.height
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.sheet, quality=88)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
