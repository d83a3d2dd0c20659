"""Image folders, a seeded resumable infinite sampler, and training crops (shared with warpstyle)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from .errors import ImageError
from .image import DEFAULT_MAX_PIXELS, _decode, _open_checked

__all__ = [
    "IMAGE_EXTENSIONS",
    "list_images",
    "split_paths",
    "load_rgb_pil",
    "RandomCropFolder",
    "InfiniteSampler",
    "infinite_loader",
    "random_resized_crop",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

Split = Literal["all", "train", "heldout"]


def list_images(root: str | Path) -> list[Path]:
    """All image files under ``root`` (recursive, sorted, by extension), e.g. COCO ``train2017/`` or WikiArt."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(root, "not a directory")
    paths = [
        Path(dirpath) / f
        for dirpath, _, files in os.walk(root)
        for f in files
        if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
    ]
    return sorted(paths)


def _in_heldout(path: Path, root: Path, fraction: float) -> bool:
    # A hash of the relative path: stable across machines, independent of listing order.
    rel = path.relative_to(root).as_posix()
    h = int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


def split_paths(paths: Sequence[Path], root: str | Path, split: Split, holdout: float) -> list[Path]:
    """Select the ``train`` or ``heldout`` part of ``paths`` (a fixed hash split) or ``all``."""
    if split == "all" or holdout <= 0:
        return list(paths)
    root = Path(root)
    keep_heldout = split == "heldout"
    return [p for p in paths if _in_heldout(p, root, holdout) == keep_heldout]


def load_rgb_pil(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file by the rules of :func:`adain.base.image.load_image`, as an 8-bit RGB PIL image."""
    im, name = _open_checked(path, max_pixels)
    arr = _decode(im, name, max_pixels)
    return Image.fromarray((arr * 255.0 + 0.5).astype(np.uint8), "RGB")


def random_resized_crop(
    im: Image.Image, load_size: int, crop_size: int, rng: np.random.Generator
) -> torch.Tensor:
    """Resize the shorter side to ``load_size`` then take a random ``crop_size`` square; ``(3, S, S)``."""
    w, h = im.size
    s = load_size / min(w, h)
    nw, nh = max(crop_size, round(w * s)), max(crop_size, round(h * s))
    im = im.resize((nw, nh), Image.BILINEAR)
    x0 = int(rng.integers(0, nw - crop_size + 1))
    y0 = int(rng.integers(0, nh - crop_size + 1))
    im = im.crop((x0, y0, x0 + crop_size, y0 + crop_size))
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


class RandomCropFolder(torch.utils.data.Dataset):
    """Random crops of the images of a folder, indexed by a *global sample index*.

    Item ``code`` encodes a file index and a sample number; the crop's RNG is seeded by both, so a
    run is reproducible for any number of workers and resumes exactly. An unreadable file is skipped
    (the next file is used) and counted in the item's second value.

    Returns:
        ``(crop, skipped)``: uint8 ``(3, crop_size, crop_size)`` and the number of files skipped.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        load_size: int = 512,
        crop_size: int = 256,
        split: Split = "all",
        holdout: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.paths = split_paths(list_images(self.root), self.root, split, holdout)
        if not self.paths:
            raise ImageError(self.root, f"no image files found (split '{split}')")
        self.load_size, self.crop_size, self.seed = load_size, crop_size, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, code: int) -> tuple[torch.Tensor, int]:
        # ``code = file_index + len(self) * sample_number`` (see InfiniteSampler); a plain index
        # below len(self) is sample 0 of that file.
        n = len(self.paths)
        file_index, sample = code % n, code // n
        rng = np.random.default_rng([self.seed, sample, file_index])
        for skipped in range(min(n, 100)):
            path = self.paths[(file_index + skipped) % n]
            try:
                im = load_rgb_pil(path)
            except ImageError:
                continue
            return random_resized_crop(im, self.load_size, self.crop_size, rng), skipped
        raise ImageError(self.root, f"{min(n, 100)} consecutive files were unreadable")


class InfiniteSampler(torch.utils.data.Sampler[int]):
    """Endless stream of global sample indices mapped onto a dataset by seeded per-epoch shuffles.

    Sample ``k`` (0-based, counted over the whole run and all ranks) is item
    ``perm_epoch[k % n]`` of epoch ``k // n``. Rank ``r`` of ``world`` takes every ``world``-th
    block of ``batch_size`` samples, so resuming at ``start`` samples continues exactly.
    The yielded value encodes the file index and the sample number so the dataset can seed its crop.
    """

    def __init__(self, n: int, *, seed: int = 0, start: int = 0, rank: int = 0, world: int = 1,
                 batch_size: int = 1) -> None:
        self.n, self.seed, self.start = n, seed, start
        self.rank, self.world, self.batch_size = rank, world, batch_size

    def _perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[int]:
        k = self.start
        epoch, perm = -1, None
        while True:
            block = k // self.batch_size
            if block % self.world == self.rank:
                e = k // self.n
                if e != epoch:
                    epoch, perm = e, self._perm(e)
                yield int(perm[k % self.n]) + self.n * k  # decoded by RandomCropFolder.__getitem__
            k += 1


def infinite_loader(
    dataset: RandomCropFolder, *, batch_size: int, workers: int, seed: int, start: int = 0,
    rank: int = 0, world: int = 1,
) -> Iterator[tuple[torch.Tensor, int]]:
    """Yield ``(batch uint8 (B, 3, S, S), skipped files)`` forever, starting after ``start`` samples."""
    sampler = InfiniteSampler(len(dataset), seed=seed, start=start, rank=rank, world=world, batch_size=batch_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(), drop_last=True,
        prefetch_factor=4 if workers > 0 else None,
    )
    for crops, skipped in loader:
        yield crops, int(skipped.sum())
