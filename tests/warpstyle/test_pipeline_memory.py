"""The pipeline's memory pre-flight also covers runs without a texture (issue 15 case 8)."""

import pytest
import torch

import adain.base.memory
from adain.base.errors import StyleTransferError
from adain.base.encoder.vgg import VGGEncoder
from adain.decoder import Decoder
from adain.styler import Styler
from warpstyle.pipeline import Pipeline
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.geometry.warper import Warper


@pytest.fixture()
def pipe():
    enc = VGGEncoder()
    return Pipeline(Warper(enc, WarpRegressor()), Styler(enc, Decoder()))


def test_warp_only_is_checked_before_the_warp(monkeypatch, pipe):
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 2**30)
    calls = []
    monkeypatch.setattr(pipe.warper, "estimate", lambda *a, **k: calls.append(1))
    with pytest.raises(StyleTransferError, match=r"^a 16384x16384 output needs about 10\.0 GiB of memory but only 1\.0 GiB"):
        pipe.run(torch.rand(1, 3, 32, 32), geometry=torch.rand(1, 3, 32, 32), size=16384, max_size=16384)
    assert calls == []


def test_resize_only_is_checked(monkeypatch, pipe):
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 2**30)
    with pytest.raises(StyleTransferError, match=r"^a 16384x16384 output needs about"):
        pipe.run(torch.rand(1, 3, 32, 32), size=16384, max_size=16384)


def test_texture_counts_the_style_at_the_outputs_longer_side(monkeypatch, pipe):
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 6 * 2**30)
    monkeypatch.setattr(pipe.styler, "_encode", lambda *a, **k: pytest.fail("encoded before the check"))
    with pytest.raises(StyleTransferError, match=r"style images are encoded at the output's longer side, 6000 px"):
        pipe.run(torch.rand(1, 3, 6, 600), texture=torch.rand(1, 3, 512, 512), size=6000, max_size=6000, bf16=True,
                 tile=0)


def test_texture_plans_tiles_instead_of_refusing(monkeypatch, pipe):
    """Issue 31: where the whole image does not fit, the pre-flight picks tiles and the stylization gets them."""
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 6 * 2**30)
    plans = []
    monkeypatch.setattr(pipe.styler, "stylize_planned", lambda x, bank, plan, **k: plans.append(plan) or x)
    pipe.run(torch.rand(1, 3, 6, 600), texture=torch.rand(1, 3, 512, 512), size=6000, max_size=6000, bf16=True)
    assert len(plans) == 1 and plans[0].tile is not None and plans[0].tile > 0
