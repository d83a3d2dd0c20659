"""Semantic matching as the network's teacher: its fields on mined pairs, cached with the pairs' features.

The feed-forward network learns to reproduce what :mod:`warpstyle.geometry.matching` finds (the
default estimator, each image at three sizes: about 1 s a pair in bf16, 2.4 s in fp32), so that one pass of the network places and shapes like
the matcher. Everything a training step needs is computed once per pair and cached: the network's
input features of both images (pool4 of the 256x256 squares, as :meth:`Warper.features`) and the
matcher's field on the images at their own aspect ratios (as ``Warper.estimate(method="match")``
computes it for a user), resized to the network's grid. A step is then the small network alone:
no VGG pass.

Cached in a ``.npz`` keyed by the pairs' files (paths, sizes, modification times, in order), the
precision, the grid size and the encoder's weights; written every ``chunk`` pairs, so an interrupted
computation resumes. Features are stored as float16 (about 0.5 MB a pair).

Convention: targets are backward grids ``(G, G, 2)`` as :class:`warpstyle.fields.field.WarpField`
(normalised ``(x, y)``, ``align_corners=False``); ``confident`` marks the pairs where the matcher
was confident (the others carry the identity and no weight).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from adain.base.storage.files import atomic_path
from adain.base.image import load_image
from adain.base.runtime import bf16_autocast, training_bf16

from warpstyle.fields.warp import identity_grid, resize_field
from warpstyle.geometry.matching import MATCH_SIZES, match_field, matching_features
from warpstyle.geometry.warper import Warper
from warpstyle.training.data.pairs import MinedPairs, encoder_fingerprint, pairs_cache_key

__all__ = ["DistillSet", "distill_set"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DistillSet:
    """Cached training items: ``content``/``geometry`` features ``(N, C, G, G)`` float16, ``target``
    fields ``(N, G, G, 2)`` float32 and ``confident`` ``(N,)`` bool."""

    content: torch.Tensor
    geometry: torch.Tensor
    target: torch.Tensor
    confident: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])


def _cache_key(pairs: MinedPairs, indices: Sequence[int], grid: int, encoder: str, bf16: bool) -> str:
    return pairs_cache_key(f"distill v2 {MATCH_SIZES} {grid} {pairs.size} bf16={bf16} {encoder}", pairs, indices)


@torch.no_grad()
def distill_set(pairs: MinedPairs, warper: Warper, indices: Sequence[int], *, cache_dir: str | Path,
                bf16: bool = True, chunk: int = 50) -> DistillSet:
    """The matcher's target and the network's input features for each pair ``pairs[k]``, ``k`` in ``indices``."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got {chunk}")
    n, g = len(indices), warper.regressor.grid_size
    device = warper.device
    key = _cache_key(pairs, indices, g, encoder_fingerprint(warper.encoder), bf16)
    cache = Path(cache_dir) / f"distill_{key}.npz"
    fc = np.zeros((n, 512, g, g), np.float16)
    fg = np.zeros_like(fc)
    target = np.zeros((n, g, g, 2), np.float32)
    confident = np.zeros(n, bool)
    done = 0
    if cache.is_file():
        with np.load(cache) as data:
            done = int(data["done"])
            fc[:done], fg[:done] = data["content"][:done], data["geometry"][:done]
            target[:done], confident[:done] = data["target"][:done], data["confident"][:done]
        if done < n:
            log.info("distill: resuming at %d / %d pairs", done, n)
    enabled = training_bf16(device, bf16)  # the key keeps ``bf16`` as asked
    start = time.monotonic()
    for m in range(done, n):
        squares = [x[None].float().div(255).to(device) for x in pairs[indices[m]]]
        paths = pairs.describe(indices[m])[:2]
        images = [load_image(p).to(device) for p in paths]
        with bf16_autocast(device, enabled):
            feats = [warper.features(x).float() for x in squares]
            taps = [[{k: v.float() for k, v in t.items()} for t in matching_features(warper.encoder, x)] for x in images]
        hw = [tuple(int(s) for s in x.shape[-2:]) for x in images]
        found = match_field(taps[0], taps[1], hw[0], hw[1])  # type: ignore[arg-type]
        fc[m], fg[m] = feats[0][0].cpu().numpy(), feats[1][0].cpu().numpy()
        grid = resize_field(found.grid, (g, g)) if found.confident else identity_grid(1, g, g)
        target[m], confident[m] = grid[0].cpu().numpy(), found.confident
        if (m + 1) % chunk == 0 or m + 1 == n:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache) as tmp, open(tmp, "wb") as f:
                np.savez(f, content=fc, geometry=fg, target=target, confident=confident, done=np.int64(m + 1))
            rate = (m + 1 - done) / max(time.monotonic() - start, 1e-9)
            log.info("distill: %d / %d pairs (%.2f pairs/s; %d confident)", m + 1, n, rate,
                     int(confident[: m + 1].sum()))
    return DistillSet(torch.from_numpy(fc), torch.from_numpy(fg), torch.from_numpy(target),
                      torch.from_numpy(confident))
