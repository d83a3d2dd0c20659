"""Semantically related image pairs mined without labels, for the warper's feature-matching objective.

Every image of the given folders (photos, paintings, geometry exemplars) gets a global descriptor:
its VGG-19 pool4 features at 192x192, channel-L2-normalised, average-pooled to a 2x2 layout and
L2-normalised again (2048 numbers: what is in the image and roughly where). Each image is paired with
its ``k`` nearest neighbours by cosine similarity over the union of the folders, so pairs form both
within photos and across photos, paintings and exemplars (a face with portraits and caricatures, an
animal with animals). Near-duplicates (similarity above ``max_similarity``) are skipped: a pair of
one photo with itself teaches nothing the synthetic pairs do not.

Deterministic: descriptors depend only on the pixels, ties break by path order, and the result is
cached in a ``.npz`` keyed by the files' paths, sizes and modification times and by the encoder's
weights. The split is the
project's hash hold-out (:func:`adain.base.data.split_paths`), per folder, so held-out images never
enter training pairs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adain.base.data import list_images, load_rgb_pil, split_paths
from adain.base.errors import ImageError
from adain.base.storage.files import atomic_path
from adain.base.encoder.vgg import VGGEncoder

__all__ = ["DESCRIPTOR_SIZE", "image_descriptors", "nearest_pairs", "MinedPairs", "pairs_cache_key"]

log = logging.getLogger(__name__)

#: Side (px) at which descriptors are computed.
DESCRIPTOR_SIZE = 192


def _to_tensor(path: Path, size: int) -> torch.Tensor:
    img = load_rgb_pil(path).resize((size, size), resample=3)  # bicubic
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


@torch.no_grad()
def image_descriptors(encoder: VGGEncoder, paths: Sequence[Path], *, batch_size: int = 16,
                      progress: bool = False) -> tuple[torch.Tensor, list[int]]:
    """Unit-norm global descriptors ``(N', 2048)`` of the readable images at ``paths`` (module docstring).

    Returns:
        The descriptors and the indices into ``paths`` they belong to (unreadable files are skipped).
    """
    out, kept = [], []
    images: list[torch.Tensor] = []
    for i, p in enumerate(paths):
        try:
            images.append(_to_tensor(p, DESCRIPTOR_SIZE))
            kept.append(i)
        except ImageError as e:
            log.warning("skipping %s", e)
    device = next(encoder.parameters()).device
    for i in range(0, len(images), batch_size):
        x = torch.stack(images[i : i + batch_size]).float().div(255)
        f = encoder(x.to(device), taps=("pool4",))["pool4"].float()
        f = F.normalize(f, dim=1)
        d = F.adaptive_avg_pool2d(f, 2).flatten(1)
        out.append(F.normalize(d, dim=1).cpu())
        if progress:
            log.info("descriptors: %d / %d", min(i + batch_size, len(images)), len(images))
    return (torch.cat(out) if out else torch.zeros(0, 2048)), kept


def nearest_pairs(desc: torch.Tensor, k: int, *, max_similarity: float = 0.95) -> list[tuple[int, int, float]]:
    """Each row's ``k`` nearest other rows by cosine, near-duplicates skipped; ``(i, j, similarity)``.

    Args:
        desc: ``(N, D)`` unit-norm descriptors.
        k: neighbours per image.
        max_similarity: pairs more similar than this are treated as duplicates and skipped.
    """
    sim = desc @ desc.T
    sim.fill_diagonal_(-2.0)
    sim[sim > max_similarity] = -2.0
    pairs = []
    for i in range(sim.shape[0]):
        # stable sort: equal similarities keep index order, so the result is deterministic
        order = torch.sort(sim[i], descending=True, stable=True).indices[:k]
        pairs.extend((i, int(j), float(sim[i, j])) for j in order if sim[i, j] > -2.0)
    return pairs


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """SHA-256 of the encoder's weights: descriptors from another VGG (``--vgg``) get another cache."""
    h = hashlib.sha256(str(getattr(encoder, "layout", "")).encode())  # the layout sets padding and input scaling
    for name, t in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _cache_key(paths: Sequence[Path], k: int, max_similarity: float, encoder: str) -> str:
    h = hashlib.sha256(f"v2 {DESCRIPTOR_SIZE} {k} {max_similarity} {encoder}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def pairs_cache_key(settings: str, pairs: MinedPairs, indices: Sequence[int]) -> str:
    """A cache key of ``settings`` and the files of ``pairs[k]``, ``k`` in ``indices`` (paths, sizes,
    modification times, in order): a cache of per-pair targets is reused only for the same pairs."""
    h = hashlib.sha256(settings.encode())
    for k in indices:
        for p in pairs.describe(k)[:2]:
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


class MinedPairs(torch.utils.data.Dataset):
    """Mined (content, geometry) pairs of one split, as uint8 ``(3, size, size)`` tensors.

    Args:
        folders: image folders (searched recursively), e.g. photos, paintings, geometry exemplars.
        encoder: the VGG-19 encoder for the descriptors (only used when the cache is missing).
        cache_dir: where the ``pairs_<key>.npz`` cache lives.
        k: neighbours per image.
        split: ``"train"`` or ``"heldout"`` of the hash hold-out with fraction ``holdout``.
        size: side of the returned images (the warper works at 256x256).
        max_similarity: pairs above this descriptor similarity count as duplicates and are skipped.
    """

    def __init__(self, folders: Sequence[str | Path], encoder: VGGEncoder, *, cache_dir: str | Path, k: int = 4,
                 split: str = "train", holdout: float = 0.1, size: int = 256, max_similarity: float = 0.95,
                 progress: bool = False) -> None:
        self.size = size
        paths: list[Path] = []
        for folder in folders:
            paths += split_paths(list_images(folder), folder, split, holdout)  # type: ignore[arg-type]
        if len(paths) < 2:
            raise ValueError(f"need at least two {split} images in {list(map(str, folders))} to mine pairs")
        self.paths = paths
        cache = Path(cache_dir) / f"pairs_{_cache_key(paths, k, max_similarity, encoder_fingerprint(encoder))}.npz"
        if cache.is_file():
            data = np.load(cache)
            idx, sims = data["pairs"], data["similarity"]
        else:
            desc, kept = image_descriptors(encoder, paths, progress=progress)
            mined = nearest_pairs(desc, k, max_similarity=max_similarity)
            idx = np.array([(kept[i], kept[j]) for i, j, _ in mined], dtype=np.int64).reshape(-1, 2)
            sims = np.array([s for _, _, s in mined], dtype=np.float32)
            with atomic_path(cache) as tmp, open(tmp, "wb") as f:
                np.savez(f, pairs=idx, similarity=sims)
        self.pairs, self.similarity = idx, sims

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, j = self.pairs[index]
        return _to_tensor(self.paths[i], self.size), _to_tensor(self.paths[j], self.size)

    def describe(self, index: int) -> tuple[Path, Path, float]:
        """The pair's two files and their descriptor similarity."""
        i, j = self.pairs[index]
        return self.paths[i], self.paths[j], float(self.similarity[index])
