"""The matcher as the network's teacher: cached targets and features, and a training step without VGG."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import warpstyle.training.data.distill as distill_module
from adain.base.image import load_image
from warpstyle.fields.warp import identity_grid
from warpstyle.geometry.warper import Warper
from warpstyle.training.data.distill import distill_set


class _Pairs:
    """Stands in for MinedPairs: one uint8 (3, 256, 256) pair of the same photo, and its files."""

    size = 256

    def __init__(self, path: Path) -> None:
        image = F.interpolate(load_image(path), size=(256, 256), mode="bilinear", antialias=True, align_corners=False)
        self.item = ((image[0] * 255).round().to(torch.uint8),) * 2
        self.path = path

    def __len__(self) -> int:
        return 1

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.item

    def describe(self, k: int) -> tuple[Path, Path, float]:
        return self.path, self.path, 1.0


@pytest.fixture(scope="module")
def warper() -> Warper:
    return Warper.from_pretrained()


def test_the_matcher_teaches_the_identity_on_a_same_image_pair_and_the_cache_resumes(warper, samples, tmp_path,
                                                                                      monkeypatch):
    pairs = _Pairs(samples / "content" / "kodim23.jpg")
    data = distill_set(pairs, warper, [0], cache_dir=tmp_path, bf16=False)
    assert data.content.shape == data.geometry.shape == (1, 512, 16, 16) and data.content.dtype == torch.float16
    assert bool(data.confident[0])
    assert (data.target - identity_grid(1, 16, 16)).abs().max() < 0.05  # one photo against itself stays put
    torch.testing.assert_close(data.content.float(), warper.features(pairs[0][0][None].float() / 255), atol=2e-3,
                               rtol=0)
    # A second call reads the cache: nothing is matched again.
    monkeypatch.setattr(distill_module, "match_field", lambda *a, **k: pytest.fail("matched again"))
    again = distill_set(pairs, warper, [0], cache_dir=tmp_path, bf16=False)
    assert torch.equal(again.target, data.target) and torch.equal(again.content, data.content)
    with pytest.raises(ValueError, match="chunk"):
        distill_set(pairs, warper, [0], cache_dir=tmp_path, chunk=0)


def test_distillation_needs_mined_pairs():
    from adain.base.errors import ConfigError
    from warpstyle.training.config import WarperTrainConfig

    with pytest.raises(ConfigError, match="distill_weight > 0 teaches mined pairs"):
        WarperTrainConfig(distill_weight=1.0)
    with pytest.raises(ConfigError, match="distill_batch_size"):
        WarperTrainConfig(pair_dirs="x", distill_weight=1.0, distill_batch_size=0)
