"""Render a sheet comparing the warper's estimation methods on image pairs, to judge them by eye.

    python scripts/geometry_sheet.py --out docs/figures/geometry_sheet.jpg            # the corpus pairs below
    python scripts/geometry_sheet.py --pair a.jpg b.jpg --pair c.jpg d.jpg --out x.jpg

Each row: content, geometry, then the content warped toward the geometry by each method (with a red
lattice drawn on the content, so that the deformation shows), labelled: the network, matching with
both images at the base size only (the default until 2026-12-08) and matching as it is now (each
image at every size of ``MATCH_SIZES``). Prints, per pair and method, the seconds and the fold share
at the output (the log says where matching was not confident).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from adain.base.image import labelled_row, load_image, resize_longer, save_image
from warpstyle.geometry.matching import MATCH_SIZE, matching_features
from warpstyle.geometry.warper import Warper

#: Non-face and face pairs of the corpus's geometry exemplars and paintings (content, geometry).
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIRS = [
    ("geometry/dia-pair04-cat-tiger_A.jpg", "geometry/dia-pair04-cat-tiger_B.jpg"),
    ("geometry/dia-pair04-cat-tiger_A.jpg", "paintings/friese_the-tiger-1890.jpg"),
    ("geometry/dia-pair10-husky-wolf_A.jpg", "geometry/dia-pair10-husky-wolf_B.jpg"),
    ("geometry/dia-pair06-bird_A.jpg", "geometry/dia-pair06-bird_B.jpg"),
    ("geometry/learning-warp-st_clock.jpg", "geometry/learning-warp-st_dali-melting-clock.jpg"),
    ("geometry/dst_example-content.jpg", "geometry/dst_example-style.jpg"),
    ("geometry/dia-pair03-face_A.jpg", "geometry/dia-pair03-face_B.jpg"),
    ("geometry/dia-pair05-man-face_A.jpg", "geometry/dia-pair05-man-face_B.jpg"),
    ("geometry/dia-pair05-man-face_A.jpg", "geometry/caricature_qianyiwu_12.jpg"),
    ("geometry/dia-pair03-face_A.jpg", "geometry/caricature_qianyiwu_29.jpg"),
]


def _lattice(x: torch.Tensor, cells: int = 12) -> torch.Tensor:
    """``x`` ``(1, 3, H, W)`` with a red lattice of ``cells`` x ``cells``."""
    x = x.clone()
    h, w = x.shape[-2:]
    red = torch.tensor([1.0, 0.0, 0.0])[:, None]
    for k in range(1, cells):
        x[0, :, int(k * h / cells), :] = red
        x[0, :, :, int(k * w / cells)] = red
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", nargs=2, action="append", type=Path, metavar=("CONTENT", "GEOMETRY"))
    ap.add_argument("--out", type=Path, default=Path("docs/figures/geometry_sheet.jpg"))
    ap.add_argument("--height", type=int, default=180, help="height of each panel in px")
    ap.add_argument("--warper", type=Path, default=None, help="network weights [default: bundled]")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    pairs = args.pair or [(CORPUS / c, CORPUS / g) for c, g in PAIRS]
    warper = Warper.from_pretrained(args.warper)
    rows = []
    for content, geometry in pairs:
        c, g = resize_longer(load_image(content), 512), load_image(geometry)
        panels = [("content", c), ("geometry", g)]
        for method in ("network", "match, one size", "match"):
            start = time.perf_counter()
            if method == "match, one size":
                with torch.no_grad():
                    one = [matching_features(warper.encoder, x, sizes=(MATCH_SIZE,))[0] for x in (c, g)]
                field = warper.estimate(None, None, method="match", content_features=one[:1], geometry_features=one[1:],
                                        content_size=tuple(c.shape[-2:]), geometry_size=tuple(g.shape[-2:]))
            else:
                field = warper.estimate(c, g, method=method)
            seconds = time.perf_counter() - start
            warped, applied = Warper.apply_with_field(_lattice(c), field)
            print(f"{content.name} -> {geometry.name}: {method} {seconds:.2f} s, folds "
                  f"{100 * float(applied.fold_fraction()[0]):.2f} %", flush=True)
            panels.append((f"{method}{' (default)' if method == 'match' else ''}", warped))
        rows.append(labelled_row(panels, args.height))
    width = max(r.width for r in rows)
    from PIL import Image

    sheet = Image.new("RGB", (width, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    save_image(sheet, args.out, quality=85)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
