"""The numpy mirrors of adain.engines.ops against the torch functions they mirror."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adain.base.image import resize_exact
from adain.engines import ops
from adain.functional import calc_mean_std, luminance_transfer, match_color


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)[None]


@pytest.mark.parametrize(("src", "dst"), [((37, 53), (16, 24)), ((20, 16), (64, 48)), ((64, 64), (64, 40)),
                                          ((65, 48), (64, 48)), ((400, 600), (171, 256))])
def test_resize_matches_torch_antialiased_bilinear(src, dst):
    x = np.random.default_rng(0).random((3, *src), dtype=np.float32)
    got = ops.resize_exact(x, dst)
    assert got.shape == (3, *dst)
    np.testing.assert_allclose(got, resize_exact(_t(x), dst)[0].numpy(), atol=2e-5)


def test_resize_to_own_size_is_the_same_array():
    x = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    assert ops.resize_exact(x, (8, 8)) is x


def test_calc_mean_std_matches_torch():
    f = (np.random.default_rng(1).random((40, 9, 13)) * 5).astype(np.float32)
    mean, std = ops.calc_mean_std(f)
    t_mean, t_std = calc_mean_std(_t(f))
    assert mean.shape == std.shape == (40,)
    np.testing.assert_allclose(mean, t_mean.numpy().ravel(), rtol=1e-5)
    np.testing.assert_allclose(std, t_std.numpy().ravel(), rtol=1e-5)


def test_mix_stats_gives_the_style_statistics_and_alpha_zero_gives_the_features():
    rng = np.random.default_rng(2)
    f = rng.random((8, 6, 7), dtype=np.float32)
    style = (rng.random(8).astype(np.float32) * 3, rng.random(8).astype(np.float32) + 0.5)
    out = ops.mix_stats(f, [style], [1.0])
    mean, std = ops.calc_mean_std(out)
    np.testing.assert_allclose(mean, style[0], atol=1e-4)
    np.testing.assert_allclose(std, style[1], rtol=1e-3)
    np.testing.assert_allclose(ops.mix_stats(f, [style], [1.0], alpha=0.0), f, atol=1e-6)


def test_colour_functions_match_torch():
    rng = np.random.default_rng(3)
    a, b = rng.random((3, 12, 10), dtype=np.float32), (rng.random((3, 9, 11), dtype=np.float32) ** 2)
    np.testing.assert_allclose(ops.match_color(a, b), match_color(_t(a), _t(b))[0].numpy(), atol=1e-5)
    c = rng.random((3, 12, 10), dtype=np.float32)
    np.testing.assert_allclose(ops.luminance_transfer(a, c), luminance_transfer(_t(a), _t(c))[0].numpy(), atol=1e-5)
