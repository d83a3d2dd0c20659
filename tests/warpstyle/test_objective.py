import pytest
import torch
import torch.nn.functional as F

from warpstyle.fields.metrics import fold_fraction
from warpstyle.geometry.objective import (
    feature_agreement,
    feature_matching_objective,
    fold_penalty,
    objective_features,
    smoothness_energy,
)
from warpstyle.fields.warp import identity_grid


def _feats(gen, b=1, c=8):
    return {"pool4": F.normalize(torch.rand(b, c, 8, 8, generator=gen) - 0.5, dim=1),
            "relu4_1": F.normalize(torch.rand(b, c, 16, 16, generator=gen) - 0.5, dim=1)}


def _mirrored(h=8, w=8):
    g = identity_grid(1, h, w).clone()
    g[..., 0] = -g[..., 0]  # x -> -x: a fold everywhere
    return g


def test_identity_on_identical_features_is_the_maximal_agreement(gen):
    f = _feats(gen)
    out = feature_matching_objective(f, f, identity_grid(1, 8, 8))
    assert float(out["feature"]) == pytest.approx(-2.0, abs=1e-5)  # two taps, cosine 1 everywhere
    assert float(out["smooth"]) == 0.0 and float(out["fold"]) == 0.0
    # any other field agrees less
    shifted = identity_grid(1, 8, 8) + 0.3
    assert float(feature_matching_objective(f, f, shifted)["feature"]) > -2.0 + 1e-3


def test_agreement_finds_a_known_shift(gen):
    # geometry = content shifted right by 2 cells at 16x16; the field that samples 2 cells left agrees best
    fc = F.normalize(torch.rand(1, 8, 16, 16, generator=gen) - 0.5, dim=1)
    fg = torch.roll(fc, shifts=2, dims=3)
    ident = identity_grid(1, 16, 16)
    right = ident - torch.tensor([2 * 2 / 16, 0.0])
    wrong = ident + torch.tensor([2 * 2 / 16, 0.0])
    a = feature_agreement({"relu4_1": fc}, {"relu4_1": fg}, torch.cat([right, ident, wrong]))
    assert a[0] > a[1] and a[0] > a[2]


def test_folded_grid_has_positive_fold_penalty():
    assert float(fold_penalty(_mirrored())[0]) > 0.1
    assert float(fold_penalty(identity_grid(1, 8, 8))[0]) == 0.0
    # every cell fold_fraction counts as a fold costs at least eps
    g = _mirrored()
    assert float(fold_penalty(g, eps=0.1)[0]) >= 0.1 * float(fold_fraction(g)[0]) - 1e-6


def test_constant_displacement_has_zero_smoothness_and_a_bump_does_not():
    g = identity_grid(2, 8, 8) + torch.tensor([0.2, -0.1])
    assert smoothness_energy(g).abs().max() < 1e-10  # zero up to float rounding of the identity
    bumped = g.clone()
    bumped[1, 4, 4, 0] += 0.1
    e = smoothness_energy(bumped)
    assert e[0] < 1e-10 and float(e[1]) == pytest.approx(4 * 0.1**2, rel=1e-4)


def test_smoothness_is_about_resolution_free_for_a_smooth_field():
    def field(n):
        g = identity_grid(1, n, n)
        return g + 0.1 * torch.sin(g[..., 1:2] * 3.0)  # smooth x-displacement varying with y
    e16, e32 = float(smoothness_energy(field(16))[0]), float(smoothness_energy(field(32))[0])
    assert e32 == pytest.approx(e16, rel=0.1)


def test_loss_combines_terms_and_reduction(gen):
    fc, fg = _feats(gen, b=2), _feats(gen, b=2)
    grid = torch.cat([identity_grid(1, 8, 8), _mirrored()])
    out = feature_matching_objective(fc, fg, grid, smooth_weight=0.5, fold_weight=2.0, reduction="none")
    assert out["loss"].shape == (2,)
    torch.testing.assert_close(out["loss"], out["feature"] + 0.5 * out["smooth"] + 2.0 * out["fold"])
    mean = feature_matching_objective(fc, fg, grid, smooth_weight=0.5, fold_weight=2.0)
    torch.testing.assert_close(mean["loss"], out["loss"].mean())


def test_geometry_batch_one_broadcasts(gen):
    fc, fg = _feats(gen, b=2), _feats(gen, b=1)
    out = feature_matching_objective(fc, fg, identity_grid(2, 8, 8), reduction="none")
    assert out["feature"].shape == (2,)


def test_gradients_flow_to_the_grid(gen):
    f = _feats(gen)
    grid = (identity_grid(1, 8, 8) + 0.05).requires_grad_(True)
    feature_matching_objective(f, _feats(gen), grid)["loss"].backward()
    assert grid.grad is not None and grid.grad.abs().sum() > 0


def test_exceptions(gen):
    f = _feats(gen)
    with pytest.raises(ValueError, match="lacks the taps"):
        feature_matching_objective({"pool4": f["pool4"]}, f, identity_grid(1, 8, 8))
    with pytest.raises(ValueError, match="grid must have shape"):
        feature_matching_objective(f, f, torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="reduction"):
        feature_matching_objective(f, f, identity_grid(1, 8, 8), reduction="sum")


def test_objective_features_match_the_warper_pool4():
    from adain.base.encoder.vgg import VGGEncoder
    from warpstyle.geometry.regressor import WarpRegressor
    from warpstyle.geometry.warper import Warper

    torch.manual_seed(0)
    enc = VGGEncoder().eval()
    x = torch.rand(1, 3, 40, 56)
    feats = objective_features(enc, x)
    assert feats["pool4"].shape == (1, 512, 16, 16) and feats["relu4_1"].shape == (1, 512, 32, 32)
    torch.testing.assert_close(feats["pool4"], Warper(enc, WarpRegressor()).features(x))
    norms = feats["relu4_1"].norm(dim=1)
    assert torch.all(((norms - 1).abs() < 1e-4) | (norms < 1e-6))


def test_content_warped_compares_reencoded_features_directly(gen):
    f = _feats(gen, b=2)
    shifted = identity_grid(2, 8, 8) + 0.3  # the grid only feeds the regularisers then
    out = feature_matching_objective(f, f, shifted, content_warped=True, reduction="none")
    torch.testing.assert_close(out["feature"], torch.full((2,), -2.0), atol=1e-5, rtol=0)
    assert float(feature_matching_objective(f, f, shifted)["feature"]) > -2.0 + 1e-3


def test_objective_features_are_differentiable():
    from adain.base.encoder.vgg import VGGEncoder

    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    feats = objective_features(VGGEncoder().eval(), x, ("relu4_1",), size=32)
    feats["relu4_1"].sum().backward()
    assert x.grad is not None
