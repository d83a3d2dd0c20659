"""Seams of tiled stylization: the jump across tile borders against elsewhere, and against the whole image.

    python benchmarks/bench_tiles_seam.py [--size 2048] [--tile 512] [--fp32] [--crop docs/figures/tiles_seam_crop.png]

Stylizes kodim23 (upscaled to 16:9) with Starry Night at ``--size`` twice, whole (``tile=0``) and in
tiles of ``--tile`` px, and prints, for each tile border, the mean absolute difference between the two
pixel rows (or columns) either side of it, next to the median of that measure over all rows
(columns) and the whole-image result's at the same place, and the texture-polish issue's band
measure (``adain.evaluate.band_ratio``, 1 = no band) on each side of the seam; then how far the tiled result is from
the whole one, in a 32 px band around the borders and elsewhere, per channel (a coloured band would
show as a channel mean offset there). ``--crop`` saves a 100 % crop (256x256) at a tile corner,
tiled beside whole.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from adain.base.image import load_image, resize_exact, to_pil
from adain.evaluate import band_ratio
from adain.styler import Styler, tile_spans

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "datasets" / "samples"


def jumps(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean absolute step between neighbouring rows (dim=2) or columns (dim=3): ``(n - 1,)``; step i is
    between i and i + 1."""
    d = x.diff(dim=dim).abs().mean(dim=1)[0]  # (H-1, W) or (H, W-1)
    return d.mean(dim=1) if dim == 2 else d.mean(dim=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--crop", type=Path, default=None)
    args = ap.parse_args()
    styler = Styler.from_pretrained()
    h, w = round(args.size * 9 / 16), args.size
    content = resize_exact(load_image(SAMPLES / "content" / "kodim23.jpg"), (h, w))
    style = load_image(SAMPLES / "texture" / "vangogh_the-starry-night.jpg")
    kw = dict(size=args.size, bf16=not args.fp32)
    t = time.perf_counter()
    whole = styler.stylize(content, [style], tile=0, **kw)
    t_whole = time.perf_counter() - t
    t = time.perf_counter()
    tiled = styler.stylize(content, [style], tile=args.tile, **kw)
    t_tiled = time.perf_counter() - t
    hh, ww = tiled.shape[-2:]
    report: dict = {"size": [ww, hh], "tile": args.tile, "bf16": not args.fp32,
                    "seconds": {"whole": round(t_whole, 1), "tiled": round(t_tiled, 1)}, "borders": []}
    band = torch.zeros(hh, ww, dtype=torch.bool)
    for dim, n in ((3, ww), (2, hh)):
        j_t, j_w = jumps(tiled, dim), jumps(whole, dim)
        for _, _, c0, _ in tile_spans(n, args.tile)[1:]:
            report["borders"].append({"axis": "x" if dim == 3 else "y", "at": c0,
                                      "tiled": round(float(j_t[c0 - 1]) * 255, 2),
                                      "whole_same_place": round(float(j_w[c0 - 1]) * 255, 2),
                                      "tiled_median_elsewhere": round(float(j_t.median()) * 255, 2),
                                      **{f"band_{name}_before_after": [
                                          round(band_ratio(im, axis="x" if dim == 3 else "y", at=c0, inward=s), 2)
                                          for s in (-1, 1)] for name, im in (("tiled", tiled), ("whole", whole))}})
            if dim == 3:
                band[:, c0 - 16 : c0 + 16] = True
            else:
                band[c0 - 16 : c0 + 16, :] = True
    d = (tiled - whole)[0]  # (3, H, W)
    report["tiled_minus_whole_x255"] = {
        "mean_abs_near_borders": round(float(d[:, band].abs().mean()) * 255, 2),
        "mean_abs_elsewhere": round(float(d[:, ~band].abs().mean()) * 255, 2),
        "channel_mean_near_borders": [round(float(v) * 255, 2) for v in d[:, band].mean(dim=1)],
        "channel_mean_elsewhere": [round(float(v) * 255, 2) for v in d[:, ~band].mean(dim=1)],
        "p99_abs": round(float(d.abs().flatten()[::7].quantile(0.99)) * 255, 2),
    }
    print(json.dumps(report, indent=1))
    if args.crop is not None:
        xs = [c0 for _, _, c0, _ in tile_spans(ww, args.tile)[1:]]
        ys = [c0 for _, _, c0, _ in tile_spans(hh, args.tile)[1:]]
        cx, cy = xs[len(xs) // 2], ys[len(ys) // 2]
        x0, y0 = cx - 128, cy - 128
        crops = [to_pil(im[..., y0 : y0 + 256, x0 : x0 + 256]) for im in (tiled, whole)]
        sheet = Image.new("RGB", (2 * 256 + 8, 256 + 22), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (crop, label) in enumerate(zip(crops, (f"tiled ({args.tile} px tiles)", "whole image"))):
            sheet.paste(crop, (i * 264, 22))
            draw.text((i * 264 + 4, 4), label, fill=(0, 0, 0))
            # ticks on the tile borders (x = 128, y = 128 in the crop), outside the image
            draw.line([(i * 264 + 128, 16), (i * 264 + 128, 21)], fill=(255, 0, 0))
        args.crop.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.crop, optimize=True)
        print(f"crop at ({cx}, {cy}) -> {args.crop} ({args.crop.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
