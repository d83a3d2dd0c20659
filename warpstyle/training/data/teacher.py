"""The alignment search as a teacher: global similarities of mined pairs, as field targets for the warper.

The network alone lines up two different faces far less often than the multi-scale search of
:mod:`warpstyle.geometry.scale_search` (``--align``), which costs about 18 VGG passes a pair. Here the search runs
once per mined training pair, on the 256x256 squares the trainer sees, and its similarity, where it
finds one, becomes a target field for the network, so that one pass may learn the global part the
search finds. No labels are involved: the teacher is the project's own search on VGG features.

Not quite the search of ``--align``: that one sees each image at its own aspect ratio with the larger
encoded at 384 px (a content map of up to 24x24 cells); here both are squashed 256 px squares (16x16
cells), so shifts come in steps of an eighth of the frame and, since ``S`` grows with the square root
of the cells compared, the same ``S >= 8`` gate lets fewer pairs through. A found similarity of scale 1
and no shift is the same placement as not moving (two squares tie there, decided by rounding) and is
stored as no target.

Cached in a ``.npz`` keyed by the pairs' files (paths, sizes, modification times, in order), the
search's settings, the precision and the encoder's weights; written every ``chunk`` pairs, so an
interrupted computation resumes. Another selection of pairs computes afresh.

Convention: targets are backward grids ``(16, 16, 2)`` as :class:`warpstyle.fields.field.WarpField` (normalised
``(x, y)``, ``align_corners=False``), the identity grid mapped through the similarity.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from adain.base.storage.files import atomic_path
from adain.base.runtime import bf16_autocast, training_bf16
from adain.base.encoder.vgg import VGGEncoder

from warpstyle.geometry.align import MAX_OVERSHOOT, Similarity, compose_similarity
from warpstyle.geometry.scale_search import MIN_EVIDENCE, MIN_MARGIN, MIN_OVERLAP, SEARCH_OCTAVES, SEARCH_STEPS, search_similarity
from warpstyle.fields.warp import identity_grid
from warpstyle.training.data.pairs import MinedPairs, encoder_fingerprint, pairs_cache_key

__all__ = ["TEACHER_SIZE", "teacher_similarities", "TeacherPairs"]

log = logging.getLogger(__name__)

#: Longer side (px) of the search's larger image: the pairs are 256x256 squares, so no upsampling.
TEACHER_SIZE = 256


def _cache_key(pairs: MinedPairs, indices: Sequence[int], encoder: str, bf16: bool) -> str:
    return pairs_cache_key(f"teacher v2 {TEACHER_SIZE} {SEARCH_OCTAVES} {SEARCH_STEPS} {MIN_EVIDENCE} {MIN_MARGIN} "
                           f"{MIN_OVERLAP} {MAX_OVERSHOOT} {pairs.size} bf16={bf16} {encoder}", pairs, indices)


@torch.no_grad()
def teacher_similarities(pairs: MinedPairs, encoder: VGGEncoder, indices: Sequence[int], *, cache_dir: str | Path,
                         bf16: bool = True, chunk: int = 100) -> np.ndarray:
    """The search's similarity for each pair ``pairs[k]``, ``k`` in ``indices``.

    Returns:
        ``(len(indices), 3)`` float64: ``scale, shift_x, shift_y`` (:class:`warpstyle.geometry.align.Similarity`,
        rotation 0) per pair, NaN where the search keeps the plain field (or finds not moving).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got {chunk}")
    device = next(encoder.parameters()).device
    cache = Path(cache_dir) / f"teacher_{_cache_key(pairs, indices, encoder_fingerprint(encoder), bf16)}.npz"
    out = np.full((len(indices), 3), np.nan)
    done = 0
    if cache.is_file():
        with np.load(cache) as data:
            done = int(data["done"])
            out[:done] = data["sims"][:done]
        if done == len(indices):
            return out
        log.info("teacher: resuming at %d / %d pairs", done, len(indices))
    enabled = training_bf16(device, bf16)  # the key keeps ``bf16`` as asked
    start = time.monotonic()
    for n in range(done, len(indices)):
        c, g = (x[None].float().div(255).to(device) for x in pairs[indices[n]])
        with bf16_autocast(device, enabled):
            sim = search_similarity(encoder, c, g, size=TEACHER_SIZE)
        if sim is not None and (sim.scale, *sim.shift) != (1.0, 0.0, 0.0):  # that one is not moving
            out[n] = (sim.scale, *sim.shift)
        if (n + 1) % chunk == 0 or n + 1 == len(indices):
            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache) as tmp, open(tmp, "wb") as f:
                np.savez(f, sims=out, done=np.int64(n + 1))
            rate = (n + 1 - done) / max(time.monotonic() - start, 1e-9)
            log.info("teacher: %d / %d pairs (%.2f pairs/s; %d with a similarity)", n + 1, len(indices), rate,
                     int(np.isfinite(out[: n + 1, 0]).sum()))
    return out


class TeacherPairs(torch.utils.data.Dataset):
    """Mined pairs with the teacher's target: ``(content, geometry, target (16, 16, 2), has_target)``.

    Args:
        pairs: the mined pairs (uint8 ``(3, 256, 256)`` squares).
        indices: which of them to serve.
        sims: :func:`teacher_similarities` of ``indices``.
        grid_size: the network's field size.
    """

    def __init__(self, pairs: MinedPairs, indices: Sequence[int], sims: np.ndarray, grid_size: int = 16) -> None:
        if sims.shape != (len(indices), 3):
            raise ValueError(f"sims must have shape ({len(indices)}, 3); got {tuple(sims.shape)}")
        self.pairs, self.indices, self.sims, self.grid_size = pairs, list(indices), sims, grid_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c, g = self.pairs[self.indices[n]]
        scale, sx, sy = self.sims[n]
        ident = identity_grid(1, self.grid_size, self.grid_size)
        if math.isnan(scale):
            return c, g, ident[0], torch.tensor(False)
        hw = (self.pairs.size, self.pairs.size)
        target = compose_similarity([Similarity(float(scale), 0.0, (float(sx), float(sy)))], ident, hw, hw)
        return c, g, target[0], torch.tensor(True)
