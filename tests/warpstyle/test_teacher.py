import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import warpstyle.training.data.teacher as teacher_module
from adain.base.image import load_image
from warpstyle.geometry.align import Similarity, compose_similarity
from warpstyle.training.data.teacher import TeacherPairs, teacher_similarities
from warpstyle.fields.warp import identity_grid


class _Pairs:
    """Stands in for MinedPairs: fixed uint8 (3, 256, 256) pairs, and their files for the cache key."""

    size = 256

    def __init__(self, items: list[tuple[torch.Tensor, torch.Tensor]], files: tuple[Path, Path]) -> None:
        self.items, self.files = items, files

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[k]

    def describe(self, k: int) -> tuple[Path, Path, float]:
        return (*self.files, 1.0)


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x[0] * 255).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def encoder():
    from warpstyle.geometry.warper import Warper

    return Warper.from_pretrained().encoder


@pytest.fixture(scope="module")
def pairs(samples):
    path = samples / "content" / "kodim23.jpg"
    image = F.interpolate(load_image(path), size=(256, 256), mode="bilinear", antialias=True, align_corners=False)
    # the geometry: the content's middle half, zoomed (content = 0.5 * geometry + shift)
    sim = Similarity(0.5, 0.0, (0.2, -0.1))
    crop = torch.nn.functional.grid_sample(image, compose_similarity([sim], identity_grid(1, 256, 256), (256, 256),
                                                                     (256, 256)), align_corners=False)
    return _Pairs([(_u8(image), _u8(crop)), (_u8(image), _u8(image))], (path, path)), sim


def test_the_teacher_finds_the_zoom_and_keeps_the_same_image_still(pairs, encoder, tmp_path):
    data, sim = pairs
    sims = teacher_similarities(data, encoder, [0, 1], cache_dir=tmp_path, bf16=False)
    assert sims.shape == (2, 3)
    assert abs(math.log2(sims[0, 0] / sim.scale)) <= 0.25 + 1e-6  # within one step of the pyramid
    assert np.abs(sims[0, 1:] - np.array(sim.shift)).max() < 0.15
    assert np.isnan(sims[1]).all()  # not moving scores as well: no target


def test_the_cache_is_reused_and_an_interrupted_run_resumes(pairs, encoder, tmp_path, monkeypatch):
    data, _ = pairs
    real = teacher_module.search_similarity
    calls = []

    def once_then_fail(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(teacher_module, "search_similarity", once_then_fail)
    with pytest.raises(KeyboardInterrupt):
        teacher_similarities(data, encoder, [0, 1], cache_dir=tmp_path, bf16=False, chunk=1)
    # resumes after the first pair: only the second is searched
    monkeypatch.setattr(teacher_module, "search_similarity", lambda *a, **k: calls.append(2) or real(*a, **k))
    sims = teacher_similarities(data, encoder, [0, 1], cache_dir=tmp_path, bf16=False, chunk=1)
    assert calls == [1, 2] and np.isfinite(sims[0]).all() and np.isnan(sims[1]).all()
    # complete: nothing is searched again
    monkeypatch.setattr(teacher_module, "search_similarity", lambda *a, **k: pytest.fail("searched again"))
    assert np.array_equal(teacher_similarities(data, encoder, [0, 1], cache_dir=tmp_path, bf16=False), sims,
                          equal_nan=True)


def test_teacher_pairs_serve_the_similarity_field(pairs):
    data, _ = pairs
    sims = np.array([[0.5, 0.2, -0.1], [np.nan] * 3])
    served = TeacherPairs(data, [0, 1], sims, grid_size=16)
    c, g, target, has = served[0]
    assert c.dtype == torch.uint8 and target.shape == (16, 16, 2) and bool(has)
    # the cell centres mapped through the similarity: the top-left one is (-15/16, -15/16) * 0.5 + shift
    assert torch.allclose(target[0, 0], torch.tensor([-15 / 32 + 0.2, -15 / 32 - 0.1]), atol=1e-6)
    _, _, target, has = served[1]
    assert not bool(has) and torch.equal(target, identity_grid(1, 16, 16)[0])
    with pytest.raises(ValueError, match="sims"):
        TeacherPairs(data, [0, 1], sims[:1])
