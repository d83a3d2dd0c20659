"""Regenerate the README gallery from the bundled samples with the bundled models.

    python scripts/make_gallery.py            # writes docs/gallery/*.jpg

Each row is a labelled comparison sheet (content, geometry, texture, warped, field, result) made by
``Pipeline.run`` with its defaults; ``gallery.jpg`` stacks the rows. Deterministic on CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from adain.base.image import save_image
from warpstyle.pipeline import Pipeline

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"

#: (name, content, geometry, texture): a face toward a deformed portrait, a face toward The Scream,
#: parrots with a Cubist geometry and a different painting's texture.
EXAMPLES = [
    ("face_gris_starry", "content/kodim04.jpg", "geometry/juan-gris_portrait-of-pablo-picasso.jpg",
     "texture/vangogh_the-starry-night.jpg"),
    ("face_scream_monet", "content/kodim15.jpg", "geometry/munch_the-scream.jpg",
     "texture/monet_water-lilies-1919.jpg"),
    ("parrots_gris_kandinsky", "content/kodim23.jpg", "geometry/juan-gris_portrait-of-pablo-picasso.jpg",
     "texture/kandinsky_composition-vii.jpg"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/gallery"))
    ap.add_argument("--height", type=int, default=200, help="height of each sheet row in px")
    args = ap.parse_args()
    pipe = Pipeline.from_pretrained(device="cpu")
    rows = []
    for name, content, geometry, texture in EXAMPLES:
        result = pipe.run(SAMPLES / content, geometry=SAMPLES / geometry, texture=SAMPLES / texture)
        sheet = result.sheet(height=args.height)
        save_image(sheet, args.out / f"{name}.jpg", quality=85)
        rows.append(sheet)
        print(args.out / f"{name}.jpg")
    width = max(r.width for r in rows)
    gallery = Image.new("RGB", (width, sum(r.height for r in rows) + 8 * (len(rows) - 1)), "white")
    y = 0
    for r in rows:
        gallery.paste(r, (0, y))
        y += r.height + 8
    save_image(gallery, args.out / "gallery.jpg", quality=85)
    print(args.out / "gallery.jpg")


if __name__ == "__main__":
    main()
