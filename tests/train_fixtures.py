"""Tiny image folders for training tests, made in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_image_folder(root: Path, count: int = 6, size: int = 80, seed: int = 0, corrupt: bool = True,
                      blobs: bool = False) -> Path:
    """Smooth random colour images and, optionally, one corrupt file.

    Each image is a per-channel sinusoid gradient. ``blobs=True`` paints a few random solid
    ellipses on top. A pure gradient is nearly periodic, so a matcher cannot tell a shift from its
    period; the blobs give the warper's tests unambiguous structure to match.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        img = np.zeros((size, size, 3))
        for c in range(3):
            a, b, f = rng.uniform(-1, 1, 3)
            img[..., c] = 0.5 + 0.4 * np.sin(6 * f * (a * xx + b * yy) + rng.uniform(0, 6))
        if blobs:
            for _ in range(5):
                cy, cx = rng.uniform(0.1, 0.9, 2)
                ry, rx = rng.uniform(0.06, 0.2, 2)
                inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
                img[inside] = rng.uniform(0, 1, 3)
        sub = root / ("sub" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        Image.fromarray((img * 255).astype(np.uint8)).save(sub / f"img{i}.png")
    if corrupt:
        (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 not really a jpeg")
    return root
