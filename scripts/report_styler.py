"""Held-out learning curve of the decoder (docs/quality.md): content and style loss at 512 px.

    python scripts/report_styler.py --content-dir ../shared/data/photos --style-dir ../shared/data/paintings \
        --decoders runs/styler_corpus_gpu/decoder_iter0002000.pt ... adain/weights/decoder.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from adain.evaluate import evaluate_styler, heldout_pairs
from adain.base.runtime import tune_cpu_allocator
from adain.styler import Styler
from adain.base.encoder.vgg import VGGEncoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content-dir", required=True)
    ap.add_argument("--style-dir", required=True)
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--pairs", type=int, default=48)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--decoders", nargs="+", required=True, help="decoder weight files, in training order")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    tune_cpu_allocator()  # 512 px passes: faster, same peak memory (adain/runtime.py)
    torch.manual_seed(0)
    pairs = heldout_pairs(args.content_dir, args.style_dir, holdout=args.holdout, pairs=args.pairs)
    encoder = VGGEncoder.from_pretrained()
    rows = []
    first = Styler.from_pretrained(args.decoders[0], encoder=encoder)
    rows.append({"decoder": "un-stylized content", **evaluate_styler(first, pairs, size=args.size, identity=True)})
    for d in args.decoders:
        styler = Styler.from_pretrained(d, encoder=encoder)
        rows.append({"decoder": d, **evaluate_styler(styler, pairs, size=args.size)})
        print(rows[-1], flush=True)
    print(f"| decoder | content loss | style loss |  ({len(pairs)} held-out pairs, {args.size} px)")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['decoder']} | {r['content_loss']:.3f} | {r['style_loss']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
