"""Side by side: the alignment search with a looser frame check, and what fills the output beyond the content.

    python scripts/compare_overshoot.py -o docs/figures/align_overshoot.jpg

Each row: content, geometry (corpus face pairs whose landmark-fitted similarity maps the geometry's
frame 0.4-1.7 content half-extents beyond the content), then ``warpstyle run --align`` (warp only,
320 px) with the search's frame check at 0.25 (the default), 1.0 and 2.0 content half-extents,
padded by reflection (the default) or by the border pixels (``PipelineOptions(padding="border")``).
Each warp is labelled with its setting. A probe, not a feature: it rebinds
``warpstyle.geometry.warper.search_similarity``.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import warpstyle.geometry.warper as warper_module
from adain.base.image import load_image, to_pil
from warpstyle.pipeline import Pipeline, PipelineOptions
from warpstyle.geometry.scale_search import search_similarity

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIRS = [("photos/bsds500_test_14092.jpg", "paintings/vermeer_girl-with-a-pearl-earring.jpg"),
         ("photos/bsds500_test_388006.jpg", "paintings/leonardo_mona-lisa.jpg"),
         ("photos/bsds500_train_198054.jpg", "paintings/holbein_edward-prince-of-wales-1543.jpg"),
         ("photos/bsds500_val_101085.jpg", "paintings/bosch_two-caricatured-heads.jpg"),
         ("photos/set5_baby.jpg", "geometry/caricature_qianyiwu_32.jpg"),
         ("photos/kodak_kodim04.jpg", "geometry/dia-pair05-man-face_A.jpg"),
         ("photos/set14_foreman.jpg", "geometry/caricature_qianyiwu_39.jpg")]
SETTINGS = [(0.25, "reflection"), (1.0, "reflection"), (1.0, "border"), (2.0, "reflection"), (2.0, "border")]
ROW = 160  # tile height, px


def _tile(image: torch.Tensor, label: str = "") -> Image.Image:
    im = to_pil(image)
    im.thumbnail((10 * ROW, ROW))
    if label:
        draw = ImageDraw.Draw(im)
        draw.rectangle((0, 0, 6 * len(label) + 6, 14), fill="white")
        draw.text((3, 2), label, fill="black")
    return im


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    pipe = Pipeline.from_pretrained()
    rows = []
    for c, g in PAIRS:
        content, geometry = CORPUS / c, CORPUS / g
        tiles = [_tile(load_image(content)), _tile(load_image(geometry))]
        for overshoot, padding in SETTINGS:
            warper_module.search_similarity = functools.partial(search_similarity, max_overshoot=overshoot)
            options = PipelineOptions(size=320, align=True, padding=padding)
            tiles.append(_tile(pipe.run(content, geometry, options=options).image, f"{overshoot:g} {padding}"))
        rows.append(tiles)
        print(f"{content.name} -> {geometry.name}", flush=True)
    gap, head = 8, 0
    width = max(sum(t.width for t in r) + gap * (len(r) - 1) for r in rows)
    sheet = Image.new("RGB", (width, head + len(rows) * (ROW + gap)), "white")
    y = head
    for r in rows:
        x = 0
        for t in r:
            sheet.paste(t, (x, y))
            x += t.width + gap
        y += ROW + gap
    sheet.save(args.output, quality=88)


if __name__ == "__main__":
    main()
