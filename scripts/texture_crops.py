"""100 % crops of the texture stage's artefacts, one decoder beside another: a corner and a flat region.

    python scripts/texture_crops.py --decoders OLD.safetensors NEW.safetensors --out docs/figures/texture_crops.png

From ``--pairs`` held-out photo x painting pairs (``adain.evaluate.heldout_pairs``) stylized at
``--size`` with each decoder, it picks the pair whose first decoder's output has the strongest band
along an edge (``adain.evaluate.edge_bands``) and crops the middle of that edge's corner region, and
the pair whose content has the flattest ``--crop`` px window (least luminance variance, where a
lattice shows) and crops it there; each crop at 100 %, decoders side by side, under the content's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from adain.base.image import labelled_row, load_image, resize_longer
from adain.evaluate import edge_bands, heldout_pairs
from adain.styler import Styler


def flattest_window(image: torch.Tensor, size: int) -> tuple[int, int, float]:
    """Top-left ``(y, x)`` of the ``size`` px window of ``image`` ``(1, 3, H, W)`` with the least
    luminance variance (stride ``size // 4``), and that variance."""
    y = image.mean(dim=1, keepdim=True)
    stride = max(1, size // 4)
    mean = F.avg_pool2d(y, size, stride)
    var = F.avg_pool2d(y * y, size, stride) - mean**2
    i = int(var.flatten().argmin())
    r, c = divmod(i, var.shape[-1])
    return r * stride, c * stride, float(var.flatten()[i])


def edge_crop(shape: tuple[int, int], side: str, size: int) -> tuple[int, int]:
    """Top-left of a ``size`` px crop touching ``side``, at the top-left end of that side."""
    h, w = shape
    return {"left": (0, 0), "top": (0, 0), "right": (0, w - size), "bottom": (h - size, 0)}[side]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content-dir", default="../shared/data/photos")
    ap.add_argument("--style-dir", default="../shared/data/paintings")
    ap.add_argument("--decoders", nargs="+", required=True)
    ap.add_argument("--labels", nargs="+", default=None, help="one per decoder (default: the file names)")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    labels = args.labels or [Path(d).stem for d in args.decoders]
    if len(labels) != len(args.decoders):
        ap.error("--labels takes one label per decoder")
    pairs = heldout_pairs(args.content_dir, args.style_dir, pairs=args.pairs)
    stylers = [Styler.from_pretrained(d) for d in args.decoders]
    contents = [resize_longer(load_image(c), args.size) for c, _ in pairs]
    outputs = [[s.stylize(c, [load_image(p[1])], size=args.size) for s in stylers] for c, p in zip(contents, pairs)]
    bands = [max(edge_bands(o[0]).items(), key=lambda kv: kv[1]) for o in outputs]
    bi = max(range(len(pairs)), key=lambda i: bands[i][1])
    flats = [flattest_window(c, args.crop) for c in contents]
    fi = min(range(len(pairs)), key=lambda i: flats[i][2])
    k = args.crop
    rows = []
    for title, i, (y, x) in ((f"edge ({bands[bi][0]})", bi, edge_crop(tuple(contents[bi].shape[-2:]), bands[bi][0], k)),
                             ("flat region", fi, flats[fi][:2])):
        crop = lambda im: im[..., y : y + k, x : x + k]  # noqa: E731
        panels = [(f"{title}: content", crop(contents[i]))]
        panels += [(label, crop(o)) for label, o in zip(labels, outputs[i])]
        rows.append(labelled_row(panels, height=k))
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    for j, r in enumerate(rows):
        sheet.paste(r, (0, sum(rr.height for rr in rows[:j])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"{args.out}: edge crop from pair {bi} ({pairs[bi][0].name}), flat crop from pair {fi} ({pairs[fi][0].name})")


if __name__ == "__main__":
    with torch.no_grad():
        main()
