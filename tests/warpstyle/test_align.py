import math

import pytest
import torch
import torch.nn.functional as F

from adain.base.image import load_image
from warpstyle.geometry.align import (
    Similarity,
    align_features,
    compose_similarity,
    estimate_similarity,
    fit_similarity_ransac,
    mutual_matches,
)
from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.fields.warp import apply_warp, identity_grid


def _rotate(points: torch.Tensor, scale: float, angle: float, shift: tuple[float, float]) -> torch.Tensor:
    return Similarity(scale, angle, shift).apply(points)


def test_ransac_recovers_a_similarity_despite_outliers(gen):
    g = torch.rand(60, 2, generator=gen, dtype=torch.float64) * 2 - 1
    c = _rotate(g, 1.7, math.radians(12), (0.2, -0.3))
    c[:20] = torch.rand(20, 2, generator=gen, dtype=torch.float64) * 2 - 1  # a third are wrong matches
    sim = fit_similarity_ransac(g, c, torch.ones(60))  # (1.7 is within MAX_SCALE)
    assert sim is not None
    assert sim.scale == pytest.approx(1.7, abs=1e-6)
    assert sim.angle == pytest.approx(math.radians(12), abs=1e-6)
    assert sim.shift == pytest.approx((0.2, -0.3), abs=1e-6)
    assert sim.inliers >= 40 and sim.matches == 60


def test_ransac_refuses_too_few_matches_and_implausible_transforms(gen):
    g = torch.rand(30, 2, generator=gen, dtype=torch.float64) * 2 - 1
    assert fit_similarity_ransac(g[:3], g[:3], torch.ones(3)) is None  # below MIN_INLIERS
    assert fit_similarity_ransac(g, _rotate(g, 1.0, math.radians(90), (0, 0)), torch.ones(30)) is None
    assert fit_similarity_ransac(g, 3.0 * g, torch.ones(30)) is None  # beyond MAX_SCALE
    noise = torch.rand(30, 2, generator=gen, dtype=torch.float64) * 2 - 1
    sim = fit_similarity_ransac(g, noise, torch.ones(30))  # no consistent transform
    assert sim is None or sim.inliers < 15


def test_compose_maps_points_in_pixels_across_aspect_ratios():
    # content 100x200 (H, W), geometry 200x100: scale 0.5 about the centre, in pixels
    sim = Similarity(0.5, 0.0, (0.0, 0.0))
    grid = compose_similarity([sim], identity_grid(1, 200, 100, dtype=torch.float64), (100, 200), (200, 100))
    # geometry pixel centre (x=99.5... ) -> take the geometry's top-left pixel centre (0.5, 0.5) px
    # normalised (-0.99, -0.995); aspect-corrected (-0.495, -0.995); * 0.5 -> (-0.2475, -0.4975);
    # content normalised (-0.2475, -0.995)
    assert grid[0, 0, 0].tolist() == pytest.approx([-0.2475, -0.995], abs=1e-9)
    # a square stays square in pixels: geometry 20 px wide maps to 10 content px wide, same for height
    px = (grid[0] + 1) / 2 * torch.tensor([200.0, 100.0], dtype=torch.float64)
    assert float(px[0, 20, 0] - px[0, 0, 0]) == pytest.approx(10.0)
    assert float(px[0, 20, 1] - px[0, 0, 1]) == pytest.approx(0.0)
    assert float(px[20, 0, 1] - px[0, 0, 1]) == pytest.approx(10.0)


def test_compose_leaves_none_entries_unchanged(gen):
    grid = identity_grid(2, 8, 8) + 0.01 * torch.randn(2, 8, 8, 2, generator=gen)
    out = compose_similarity([None, Similarity(1.0, 0.0, (0.5, 0.0))], grid, (64, 64), (64, 64))
    assert torch.equal(out[0], grid[0])
    assert torch.allclose(out[1], grid[1] + torch.tensor([0.5, 0.0]))


def test_estimate_similarity_finds_a_zoomed_crop(gen):
    # geometry = the central half of the content, enlarged: content = 0.5 * geometry
    fc = l2_normalize_features(torch.randn(1, 32, 32, 32, generator=gen))
    grid = compose_similarity([Similarity(0.5, 0.0, (0.0, 0.0))], identity_grid(1, 32, 32), (64, 64), (64, 64))
    fg = l2_normalize_features(F.grid_sample(fc, grid, mode="nearest", align_corners=False))
    (sim,) = estimate_similarity(fc, fg, (64, 64), (64, 64))
    assert sim is not None
    assert sim.scale == pytest.approx(0.5, abs=0.05)
    assert abs(sim.angle) < 0.05 and max(map(abs, sim.shift)) < 0.05


@pytest.mark.parametrize("scale", [0.5, 2.0])  # exactly 1 / MAX_SCALE and MAX_SCALE
def test_ransac_keeps_a_similarity_at_the_scale_bounds_only(gen, scale):
    # a fit at the bound must not flip with the last bit of rounding (the refit lands within 1e-16 of it)
    g = torch.rand(30, 2, dtype=torch.float64, generator=gen) * 0.8 - 0.4
    sim = fit_similarity_ransac(g, scale * g + 0.01, torch.ones(30))
    assert sim is not None and sim.scale == pytest.approx(scale, abs=1e-9)
    beyond = scale * 1.01 if scale > 1 else scale / 1.01
    assert fit_similarity_ransac(g, beyond * g + 0.01, torch.ones(30)) is None


def test_mutual_matches_of_a_map_with_itself_are_every_cell(gen):
    f = l2_normalize_features(torch.randn(1, 16, 5, 5, generator=gen))[0]
    ci, gi, score = mutual_matches(f, f)
    assert torch.equal(ci, torch.arange(25)) and torch.equal(gi, ci)
    assert torch.allclose(score, torch.ones(25, dtype=score.dtype))


def test_align_features_is_identity_without_a_similarity(gen):
    f = l2_normalize_features(torch.randn(1, 8, 6, 6, generator=gen))
    assert torch.allclose(align_features(f, [None], (6, 6), (6, 6)), f, atol=1e-6)


@pytest.mark.parametrize("align", [True, "matches"])  # the search, and the matcher
def test_warper_aligns_a_zoomed_photo(samples, align):
    from warpstyle.geometry.warper import Warper

    warper = Warper.from_pretrained()
    c = load_image(samples / "content" / "kodim23.jpg")
    h, w = c.shape[-2:]
    # geometry: the content's centre, at 0.6 scale (a 1.7x zoom), same frame size
    zoom = compose_similarity([Similarity(0.6, 0.0, (0.0, 0.0))], identity_grid(1, h, w), (h, w), (h, w))
    g = apply_warp(c, zoom)
    truth = compose_similarity([Similarity(0.6, 0.0, (0.0, 0.0))], identity_grid(1, 16, 16), (h, w), (h, w))
    err_plain = (warper.estimate(c, g, method="network").grid - truth).norm(dim=-1).mean()
    field = warper.estimate(c, g, align=align)
    err_align = (field.grid - truth).norm(dim=-1).mean()
    assert field.grid.shape == (1, 16, 16, 2) and field.output_size == (h, w)
    assert err_align < 0.06 < err_plain  # the network alone does not find the zoom


def test_ransac_keeps_the_identity_when_it_explains_the_matches(gen):
    g = torch.rand(40, 2, generator=gen, dtype=torch.float64) * 2 - 1
    c = g + 0.01 * torch.randn(40, 2, generator=gen, dtype=torch.float64)
    assert fit_similarity_ransac(g, c, torch.ones(40)) is None  # no gain over not moving
    assert fit_similarity_ransac(g, c, torch.ones(40), min_gain=0.0) is not None


def test_ransac_never_maps_the_frame_far_outside_the_content(gen):
    # content = 1.6 * geometry: the output would sample 60 % beyond the content (reflected copies)
    g = torch.rand(40, 2, generator=gen, dtype=torch.float64) * 2 - 1
    frames = ((1.0, 1.0), (1.0, 1.0))
    assert fit_similarity_ransac(g, 1.6 * g, torch.ones(40), frames=frames) is None
    assert fit_similarity_ransac(g, 1.6 * g, torch.ones(40), frames=frames, max_overshoot=1.0).scale == pytest.approx(1.6)
    sim = fit_similarity_ransac(g, 0.7 * g + 0.2, torch.ones(40), frames=frames)  # a crop inside: kept
    assert sim is not None and sim.scale == pytest.approx(0.7)


def test_the_refit_must_pass_the_frame_check_too(gen):
    # true scale 1.3 (30 % beyond the frame): hypotheses from noisy pairs may pass, their refit must not
    g = torch.rand(80, 2, generator=gen, dtype=torch.float64) * 2 - 1
    c = 1.3 * g + 0.03 * torch.randn(80, 2, generator=gen, dtype=torch.float64)
    frames = ((1.0, 1.0), (1.0, 1.0))
    for seed in range(5):
        sim = fit_similarity_ransac(g, c, torch.ones(80), frames=frames, seed=seed, min_gain=0.0)
        assert sim is None or sim.scale <= 1.25 + 1e-9


def test_not_moving_is_the_normalised_identity_across_aspect_ratios():
    # matches that the plain (normalised) identity explains between a 300x400 content and a 400x300
    # geometry: not a reason to move anything
    fc = l2_normalize_features(torch.randn(1, 64, 16, 16, generator=torch.Generator().manual_seed(1)))
    (sim,) = estimate_similarity(fc, fc.clone(), (300, 400), (400, 300))
    assert sim is None


def test_batches_and_bad_sizes_are_checked(gen):
    f = l2_normalize_features(torch.randn(2, 8, 4, 4, generator=gen))
    assert len(estimate_similarity(f, f[:1], (32, 32), (32, 32))) == 2
    with pytest.raises(ValueError, match="geometry must have batch 1"):
        estimate_similarity(f[:1], torch.cat([f, f]), (32, 32), (32, 32))
    with pytest.raises(ValueError, match="sims must have 1 or grid's batch"):
        compose_similarity([None, None, None], identity_grid(2, 4, 4), (32, 32), (32, 32))
    with pytest.raises(ValueError, match="content_hw"):
        estimate_similarity(f, f, (0, 32), (32, 32))


def test_estimate_with_features_uses_the_content_image_aspect(samples):
    from warpstyle.geometry.warper import Warper

    warper = Warper.from_pretrained()
    c = load_image(samples / "content" / "kodim23.jpg")[..., :, :400]  # not square
    g = load_image(samples / "geometry" / "munch_the-scream.jpg")
    fc = warper.encode(c)
    a = warper.estimate(c, g, align="matches").grid
    b = warper.estimate(c, g, content_features=fc, align="matches").grid
    d = warper.estimate(None, g, content_features=fc, content_size=tuple(c.shape[-2:]), align="matches").grid
    assert torch.allclose(a, b) and torch.allclose(a, d)
    two = warper.estimate(torch.cat([c, c]), g, align="matches").grid  # batch 2 content, batch 1 geometry
    assert two.shape == (2, 16, 16, 2) and torch.allclose(two[1], a[0], atol=1e-5)
    with pytest.raises(ValueError, match="content_size"):
        warper.estimate(c, g, content_size=(0, 5), align="matches")
    # the search (align=True) needs the images themselves
    with pytest.raises(ValueError, match="needs the content and geometry images"):
        warper.estimate(None, g, content_features=fc, content_size=tuple(c.shape[-2:]), align=True)
    with pytest.raises(ValueError, match="align must be"):
        warper.estimate(c, g, align="ransac")


def test_weights_are_checked_and_no_evidence_never_moves(gen):
    g = torch.rand(20, 2, generator=gen, dtype=torch.float64) * 2 - 1
    with pytest.raises(ValueError, match="weights"):
        fit_similarity_ransac(g, 0.8 * g, torch.full((20,), float("nan")))
    with pytest.raises(ValueError, match="weights"):
        fit_similarity_ransac(g, 0.8 * g, -torch.ones(20))
    assert fit_similarity_ransac(g, 0.8 * g, torch.zeros(20)) is None


def test_sizes_must_be_ints(samples):
    from warpstyle.geometry.warper import Warper

    from adain.base.encoder.vgg import VGGEncoder
    from warpstyle.geometry.regressor import WarpRegressor

    warper = Warper(VGGEncoder(), WarpRegressor())
    f = torch.zeros(1, 512, 16, 16)
    with pytest.raises(ValueError, match="geometry_size"):
        warper.estimate(None, None, content_features=f, geometry_features=f, geometry_size=(40.0, 60.0))
