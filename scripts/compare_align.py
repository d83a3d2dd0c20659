"""Side by side: the warp without and with global alignment (``warpstyle run --align``), warp only.

    python scripts/compare_align.py                       # bundled samples -> docs/figures/align_samples.jpg
    python scripts/compare_align.py --pair photo.jpg caricature.jpg --pair ... -o sheet.jpg

Each row: content, geometry, warped without alignment, with the feature-match alignment
(``align="matches"``, ``--align`` until 2026-12-02), with the search (``--align``) and with the search
and per-pair refinement on the aligned view (``--align --warp-refine 100``; ``--refine 0`` drops that
column); no texture, 384 px. Deterministic on CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from adain.base.image import load_image, to_pil
from warpstyle.pipeline import Pipeline, PipelineOptions

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "datasets" / "samples"
CORPUS = ROOT.parent / "shared" / "data"
ROW = 192  # tile height, px


def default_pairs() -> list[tuple[Path, Path]]:
    """Every bundled content against every bundled geometry, plus the corpus's Set5 baby toward a caricature."""
    pairs = [(c, g) for c in sorted((SAMPLES / "content").glob("*.jpg")) for g in sorted((SAMPLES / "geometry").glob("*.jpg"))]
    baby, cari = CORPUS / "photos" / "set5_baby.jpg", CORPUS / "geometry" / "caricature_qianyiwu_42.jpg"
    if baby.is_file() and cari.is_file():
        pairs.append((baby, cari))
    return pairs


def _tile(image) -> Image.Image:
    im = to_pil(image)
    im.thumbnail((10 * ROW, ROW))
    return im


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pair", nargs=2, action="append", type=Path, metavar=("CONTENT", "GEOMETRY"))
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "figures" / "align_samples.jpg")
    ap.add_argument("--size", type=int, default=384, help="output longer side of each warp (px)")
    ap.add_argument("--refine", type=int, default=100, help="refinement steps of the last column (0: no column)")
    args = ap.parse_args()
    pipe = Pipeline.from_pretrained()
    rows = []
    for content, geometry in args.pair or default_pairs():
        tiles = [_tile(load_image(content)), _tile(load_image(geometry))]
        settings = [(False, 0), ("matches", 0), (True, 0)] + ([(True, args.refine)] if args.refine else [])
        for align, refine in settings:
            options = PipelineOptions(size=args.size, align=align, warp_refine=refine)
            tiles.append(_tile(pipe.run(content, geometry, options=options).image))
        rows.append(tiles)
        print(f"{content.name} -> {geometry.name}")
    gap = 8
    width = max(sum(t.width for t in r) + gap * (len(r) - 1) for r in rows)
    sheet = Image.new("RGB", (width, (ROW + gap) * len(rows) - gap), "white")
    for k, r in enumerate(rows):
        x = 0
        for t in r:
            sheet.paste(t, (x, k * (ROW + gap)))
            x += t.width + gap
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, quality=80)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
