"""Wrong shapes, dtypes, value ranges, devices and mask sizes at the public API: messages name the argument.

Devices are exercised with ``meta`` tensors, which every machine has, standing in for a GPU tensor.
"""

from __future__ import annotations

import re

import pytest
import torch

from adain.base.checks import check_image, check_range
from adain.base.image import as_image_batch
from adain.decoder import Decoder
from adain.functional import adaptive_instance_norm, calc_mean_std
from adain.styler import Styler
from adain.base.encoder.vgg import VGGEncoder
from warpstyle.geometry.correlation import correlation_4d
from warpstyle.fields.field import WarpField
from warpstyle.pipeline import Pipeline
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.fields.warp import apply_warp, identity_grid
from warpstyle.geometry.warper import Warper

IMG = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
NAN = torch.full((1, 3, 32, 32), float("nan"))


@pytest.fixture(scope="module")
def models():
    encoder = VGGEncoder()  # random weights: only the checks are under test
    styler = Styler(encoder, Decoder()).eval()
    warper = Warper(encoder, WarpRegressor()).eval()
    return styler, warper, Pipeline(warper, styler)


def _raises(fn, exc, text):
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value) == text or re.fullmatch(text, str(info.value)), str(info.value)


# ---------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("x,exc,text", [
    ([1, 2], TypeError, "content must be a torch.Tensor of shape (B, 3, H, W); got list"),
    (torch.rand(3, 32, 32, 3), ValueError, "content must have shape (B, 3, H, W); got (3, 32, 32, 3)"),
    (torch.rand(1, 4, 8, 8), ValueError, "content must have shape (B, 3, H, W); got (1, 4, 8, 8)"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.int32), TypeError,
     "content must be a floating-point tensor in [0, 1]; got dtype torch.int32"),
    (IMG * 255, ValueError, r"content must have values in \[0, 1\]; got range \[.*, 255\] \(did you pass 0\.\.255 pixels\?\)"),
    (NAN, ValueError, "content must have finite values in [0, 1]; got NaN"),
    (torch.zeros(0, 3, 8, 8), ValueError, "content must be non-empty; got shape (0, 3, 8, 8)"),
])
def test_check_image_messages(x, exc, text):
    _raises(lambda: check_image(x, "content"), exc, text)


def test_as_image_batch_accepts_chw_and_uint8():
    assert as_image_batch(torch.rand(3, 8, 8), "content").shape == (1, 3, 8, 8)
    u8 = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    assert torch.equal(as_image_batch(u8, "content"), torch.ones(1, 3, 4, 4))


def test_check_range_messages():
    _raises(lambda: check_range("a", "alpha", 0.0, 1.0), TypeError, "alpha must be a number in [0.0, 1.0]; got 'a'")
    _raises(lambda: check_range(float("nan"), "alpha", 0.0, 1.0), ValueError, "alpha must be in [0.0, 1.0]; got nan")


# ---------------------------------------------------------------------------- functional core
@pytest.mark.parametrize("args,kwargs,exc,text", [
    ((torch.rand(8, 4, 4), torch.rand(1, 8, 4, 4)), {}, ValueError,
     "content must have shape (B, C, H, W); got (8, 4, 4)"),
    ((torch.rand(1, 8, 4, 4), torch.rand(1, 4, 4, 4)), {}, ValueError,
     "style must have shape (B, 8, H, W); got (1, 4, 4, 4)"),
    ((torch.rand(2, 8, 4, 4), torch.rand(3, 8, 4, 4)), {}, ValueError,
     "style must have batch 1 or content's batch (2); got 3"),
    ((torch.rand(1, 8, 4, 4), torch.rand(1, 8, 4, 4)), {"content_mask": torch.rand(1, 1, 3, 3)}, ValueError,
     "content_mask must have shape (B, 1, 4, 4); got (1, 1, 3, 3)"),
    ((torch.rand(1, 8, 4, 4), torch.rand(1, 8, 4, 4, device="meta")), {}, ValueError,
     "style is on the meta device, which holds no data; pass a cpu or cuda tensor"),
    ((torch.rand(1, 8, 4, 4), torch.rand(1, 8, 4, 4)), {"content_mask": torch.rand(1, 1, 4, 4, device="meta")},
     ValueError, "content_mask is on the meta device, which holds no data; pass a cpu or cuda tensor"),
    (([0.5], torch.rand(1, 8, 4, 4)), {}, TypeError, "content must be a torch.Tensor of shape (B, C, H, W); got list"),
])
def test_adaptive_instance_norm_messages(args, kwargs, exc, text):
    _raises(lambda: adaptive_instance_norm(*args, **kwargs), exc, text)


def test_calc_mean_std_messages():
    _raises(lambda: calc_mean_std(torch.rand(4, 4)), ValueError, "feat must have shape (B, C, H, W); got (4, 4)")
    _raises(lambda: calc_mean_std(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4)), ValueError,
            "mask must have shape (B, 1, 4, 4); got (1, 2, 4, 4)")


@pytest.mark.parametrize("a,b,text", [
    (torch.rand(8, 4, 4), torch.rand(1, 8, 4, 4), "content must have shape (B, C, H, W); got (8, 4, 4)"),
    (torch.rand(1, 8, 4, 4), torch.rand(1, 8, 4), "geometry must have shape (B, C, H, W); got (1, 8, 4)"),
    (torch.rand(1, 8, 4, 4), torch.rand(1, 4, 4, 4),
     "content and geometry must share batch and channels; got (1, 8, 4, 4) and (1, 4, 4, 4)"),
    (torch.rand(1, 8, 4, 4), torch.rand(1, 8, 4, 4, device="meta"),
     "geometry is on the meta device, which holds no data; pass a cpu or cuda tensor"),
])
def test_correlation_4d_messages(a, b, text):
    _raises(lambda: correlation_4d(a, b), ValueError, text)


@pytest.mark.parametrize("image,grid,kwargs,exc,text", [
    (torch.rand(3, 8, 8), identity_grid(1, 8, 8), {}, ValueError, "image must have shape (B, C, H, W); got (3, 8, 8)"),
    (IMG, torch.rand(1, 2, 8, 8), {}, ValueError, "field must have shape (B, H, W, 2); got (1, 2, 8, 8)"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), identity_grid(1, 8, 8), {}, TypeError,
     "image must be a floating-point tensor; got dtype torch.uint8"),
    (IMG, identity_grid(1, 8, 8).long(), {}, TypeError, "field must be a floating-point tensor; got dtype torch.int64"),
    (torch.rand(3, 3, 8, 8), identity_grid(2, 8, 8), {}, ValueError, "field batch 2 does not match image batch 3"),
    (IMG, identity_grid(1, 8, 8), {"padding": "zeros"}, ValueError,
     "padding must be one of ['blur', 'border', 'reflection']; got 'zeros'"),
    (IMG, identity_grid(1, 8, 8), {"mode": "area"}, ValueError,
     "mode must be 'bilinear', 'bicubic' or 'nearest'; got 'area'"),
])
def test_apply_warp_messages(image, grid, kwargs, exc, text):
    _raises(lambda: apply_warp(image, grid, **kwargs), exc, text)


@pytest.mark.parametrize("grid,size,exc,text", [
    (torch.rand(16, 16, 2), None, ValueError, "grid must have shape (B, H, W, 2); got (16, 16, 2)"),
    (torch.zeros(1, 16, 16, 2, dtype=torch.long), None, TypeError,
     "grid must be a floating-point tensor; got dtype torch.int64"),
    (identity_grid(1, 16, 16), (0, 5), ValueError, "output_size must be (H, W) with positive ints, or None; got (0, 5)"),
    (identity_grid(1, 16, 16), (5,), ValueError, "output_size must be (H, W) with positive ints, or None; got (5,)"),
])
def test_warp_field_messages(grid, size, exc, text):
    _raises(lambda: WarpField(grid, size), exc, text)


# ---------------------------------------------------------------------------- façades
@pytest.mark.parametrize("kwargs,exc,text", [
    ({"content": torch.rand(32, 32, 3)}, ValueError, "content must have shape (B, 3, H, W); got (1, 32, 32, 3)"),
    ({"content": NAN}, ValueError, "content must have finite values in [0, 1]; got NaN"),
    ({"content": torch.rand(2, 3, 32, 32)}, ValueError, "content must be a single image (1, 3, H, W); got batch of 2"),
    ({"styles": [torch.rand(1, 1, 32, 32)]}, ValueError, "styles[0] must have shape (B, 3, H, W); got (1, 1, 32, 32)"),
    ({"styles": [IMG, IMG * 255]}, ValueError, r"styles\[1\] must have values in \[0, 1\].*"),
    ({"masks": [torch.rand(1, 1, 16, 16)]}, ValueError, "masks[0] must be the content's size (32, 32); got (16, 16)"),
    ({"masks": [torch.rand(2, 1, 32, 32)]}, ValueError,
     "masks[0] must be (1, 1, H, W) or (H, W) with the content's (H, W) = (32, 32); got shape (2, 1, 32, 32)"),
    ({"masks": [torch.rand(1, 3, 32, 32)]}, ValueError,
     "masks[0] must be (1, 1, H, W) or (H, W) with the content's (H, W) = (32, 32); got shape (1, 3, 32, 32)"),
    ({"masks": [torch.rand(32, 32)] * 2}, ValueError, "masks must hold one mask per style (1); got 2"),
    ({"masks": [torch.full((32, 32), 2.0)]}, ValueError, r"masks\[0\] must have values in \[0, 1\]; got range \[2, 2\]"),
    ({"alpha": 1.5}, ValueError, "alpha must be in [0.0, 1.0]; got 1.5"),
    ({"alpha": "strong"}, TypeError, "alpha must be a number in [0.0, 1.0]; got 'strong'"),
    ({"weights": [1, 2]}, ValueError, r"weights must hold one weight per style \(1\); got 2"),
    ({"weights": [-1]}, ValueError, r"weights must be finite and >= 0; got -1\.0"),
    ({"preserve_color": "hsv"}, ValueError, "preserve_color must be None, 'match' or 'luminance'; got 'hsv'"),
    ({"size": 4}, ValueError, "size must be at least 8 px; got 4"),
])
def test_stylize_messages(models, kwargs, exc, text):
    styler = models[0]
    args = {"content": IMG, "styles": [IMG], "size": 32, **kwargs}
    content, styles = args.pop("content"), args.pop("styles")
    _raises(lambda: styler.stylize(content, styles, **args), exc, text)


@pytest.mark.parametrize("content,geometry,kwargs,text", [
    (torch.rand(1, 2, 32, 32), IMG, {}, "content must have shape (B, 3, H, W); got (1, 2, 32, 32)"),
    (IMG, IMG * 255, {}, r"geometry must have values in \[0, 1\].*"),
    (torch.rand(3, 3, 32, 32), torch.rand(2, 3, 32, 32), {}, r"geometry must have batch 1 or content's batch \(3\); got 2"),
    (None, IMG, {"content_features": torch.rand(1, 512, 8, 8)},
     r"content_features must have shape \(B, C, 16, 16\); got \(1, 512, 8, 8\)"),
    (None, IMG, {}, r"content must be given \(or content_features\)"),
])
def test_warper_estimate_messages(models, content, geometry, kwargs, text):
    warper = models[1]
    _raises(lambda: warper.estimate(content, geometry, **kwargs), ValueError, text)


@pytest.mark.parametrize("image,field,kwargs,exc,text", [
    (IMG, identity_grid(1, 16, 16), {}, TypeError,
     "field must be a WarpField (wrap a (B, H, W, 2) grid as WarpField(grid)); got Tensor"),
    (torch.rand(1, 1, 32, 32), WarpField.identity(16, 16), {}, ValueError,
     "image must have shape (B, 3, H, W); got (1, 1, 32, 32)"),
    (torch.rand(3, 3, 32, 32), WarpField.identity(16, 16, batch=2), {}, ValueError,
     "field must have batch 1 or image's batch (3); got 2"),
    (IMG, WarpField.identity(16, 16), {"strength": 5}, ValueError, "strength must be in [0.0, 4.0]; got 5"),
    (IMG, WarpField.identity(16, 16), {"smoothness": -1}, ValueError, "smoothness must be in [0.0, 16.0]; got -1"),
    (IMG, WarpField.identity(16, 16), {"size": (0, 10)}, ValueError,
     "size must be (H, W) with positive ints, or None; got (0, 10)"),
])
def test_warper_apply_messages(image, field, kwargs, exc, text):
    _raises(lambda: Warper.apply(image, field, **kwargs), exc, text)


@pytest.mark.parametrize("content,geometry,texture,kwargs,exc,text", [
    (IMG * 255, IMG, [IMG], {}, ValueError, r"content must have values in \[0, 1\].*"),
    (torch.rand(2, 3, 32, 32), IMG, [IMG], {}, ValueError, r"content must be a single image \(1, 3, H, W\); got batch of 2"),
    (IMG, torch.rand(1, 1, 32, 32), [IMG], {}, ValueError, r"geometry must have shape \(B, 3, H, W\); got \(1, 1, 32, 32\)"),
    (IMG, IMG, [torch.rand(1, 1, 32, 32)], {}, ValueError, r"texture\[0\] must have shape \(B, 3, H, W\); got \(1, 1, 32, 32\)"),
    (IMG, IMG, [IMG], {"texture_weights": [1, 2]}, ValueError,
     r"texture_weights must hold one weight per texture \(1\); got 2"),
    (IMG, IMG, [IMG], {"texture_weights": [0]}, ValueError,
     r"texture_weights must not all be zero; got \[0\.0\]"),
    (IMG, IMG, [IMG], {"smoothness": 20}, ValueError, r"smoothness must be in \[0\.0, 16\.0\]; got 20"),
    (IMG, IMG, [IMG], {"max_size": 0}, ValueError, r"max_size must be at least 8 px; got 0"),
    (IMG, IMG, [IMG], {"strength": -1}, ValueError, r"strength must be in \[0\.0, 4\.0\]; got -1"),
    (IMG, IMG, [IMG], {"alpha": 2}, ValueError, r"alpha must be in \[0\.0, 1\.0\]; got 2"),
    (IMG, IMG, [IMG], {"padding": "zeros"}, ValueError, r"padding must be one of \['blur', 'border', 'reflection'\]; got 'zeros'"),
])
def test_pipeline_run_messages(models, content, geometry, texture, kwargs, exc, text):
    pipe = models[2]
    _raises(lambda: pipe.run(content, geometry, texture, size=32, **kwargs), exc, text)


def test_uint8_tensors_are_accepted_like_load_image(models):
    styler = models[0]
    u8 = (IMG * 255).round().to(torch.uint8)
    assert styler.stylize(u8, [u8], size=32).shape == (1, 3, 32, 32)
