"""Make a short test clip from still photos: a pan, a zoom, a moving cut-out, a cut between two shots, or a still.

    python scripts/make_test_clip.py --kind pan --photo a.jpg -o pan.mp4 [--frames 24 --size 192x128 --fps 12 --audio]

``--kind cut`` takes two ``--photo``s (the second shot pans over the second photo); ``--kind cutout``
moves a disc cut from the first photo over the second. ``--audio`` adds a 440 Hz sine track (AAC),
``--rotation 90`` a display-rotation tag, ``--noise`` per-frame grain (a still shot with sensor noise).
Needs PyAV (the ``video`` extra). Deterministic: the same arguments give the same pixels.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

KINDS = ("pan", "zoom", "cutout", "cut", "still")


def _load(path: str | Path, long_side: int) -> Image.Image:
    im = Image.open(path).convert("RGB")
    s = long_side / max(im.size)
    return im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)


def _crop(im: Image.Image, cx: float, cy: float, scale: float, w: int, h: int) -> np.ndarray:
    """A ``w x h`` view of ``im`` centred at (cx, cy) (fractions of its size), ``scale`` of its largest fit."""
    fit = min(im.width / w, im.height / h) * scale
    box = (cx * im.width - w * fit / 2, cy * im.height - h * fit / 2, cx * im.width + w * fit / 2, cy * im.height + h * fit / 2)
    return np.asarray(im.transform((w, h), Image.EXTENT, box, Image.BICUBIC))


def frames(kind: str, photos: list[str], n: int, w: int, h: int, noise: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    a = _load(photos[0], 2 * max(w, h))
    out = []
    for i in range(n):
        t = i / max(1, n - 1)
        if kind == "pan":
            f = _crop(a, 0.4 + 0.2 * t, 0.5, 0.75, w, h)
        elif kind == "zoom":
            f = _crop(a, 0.5, 0.5, 0.9 - 0.35 * t, w, h)
        elif kind == "still":
            f = _crop(a, 0.5, 0.5, 0.8, w, h)
        elif kind == "cutout":
            b = _load(photos[1] if len(photos) > 1 else photos[0], 2 * max(w, h))
            bg, fg = _crop(b, 0.5, 0.5, 0.9, w, h), _crop(a, 0.5, 0.5, 0.6, w, h)
            yy, xx = np.mgrid[0:h, 0:w]
            cx, cy, r = w * (0.3 + 0.4 * t), h * 0.5, 0.3 * min(w, h)
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
            shifted = np.roll(fg, int(cx - w / 2), axis=1)
            f = np.where(disc, shifted, bg)
        elif kind == "cut":
            if i < n // 2:
                f = _crop(a, 0.45 + 0.1 * t, 0.5, 0.8, w, h)
            else:
                b = _load(photos[1], 2 * max(w, h))
                f = _crop(b, 0.45 + 0.1 * t, 0.5, 0.8, w, h)
        else:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        f = f.astype(np.float32)
        if noise:
            f = f + rng.normal(0, noise, f.shape)
        out.append(np.clip(f, 0, 255).round().astype(np.uint8))
    return out


def write_clip(path: str | Path, images: list[np.ndarray], fps: int = 12, *, audio: bool = False,
               rotation: int = 0, crf: int = 23) -> None:
    """Encode RGB frames ``(H, W, 3)`` uint8 as H.264 (+ an AAC sine track with ``audio``)."""
    import av

    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"crf": str(crf)})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = out.add_stream("aac", rate=16000)
            a.layout = "mono"
        for im in images:
            for p in v.encode(av.VideoFrame.from_ndarray(im, format="rgb24")):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            rate, total = 16000, int(16000 * len(images) / fps)
            t = np.arange(total) / rate
            pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, total, 1024):
                fr = av.AudioFrame.from_ndarray(pcm[None, k:k + 1024].copy(), format="fltp", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = rate, k, Fraction(1, rate)
                for p in a.encode(fr):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--photo", action="append", required=True, help="source photo (repeat: --kind cut/cutout take two)")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="192x128", help="WxH in px (even)")
    ap.add_argument("--fps", type=int, default=12)
    ap.add_argument("--audio", action="store_true")
    ap.add_argument("--rotation", type=int, default=0, choices=(0, 90, 180, 270))
    ap.add_argument("--noise", type=float, default=0.0, help="per-frame Gaussian grain, grey levels")
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    if args.kind == "cut" and len(args.photo) < 2:
        ap.error("--kind cut needs two --photo")
    w, h = (int(v) for v in args.size.lower().split("x"))
    write_clip(args.output, frames(args.kind, args.photo, args.frames, w, h, args.noise), args.fps,
               audio=args.audio, rotation=args.rotation, crf=args.crf)
    print(args.output)


if __name__ == "__main__":
    main()
