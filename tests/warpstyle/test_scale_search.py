import math

import pytest
import torch
import torch.nn.functional as F

from adain.base.image import load_image
from warpstyle.geometry.align import Similarity, compose_similarity
from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.geometry.scale_search import search_similarity, window_scores
from warpstyle.fields.warp import identity_grid, resize_field


@pytest.fixture(scope="module")
def encoder():
    from warpstyle.geometry.warper import Warper

    return Warper.from_pretrained().encoder


def test_a_window_cut_from_the_map_is_found_where_it_was_cut(gen):
    big = l2_normalize_features(torch.randn(1, 32, 7, 9, generator=gen))[0]
    small = big[:, 2:5, 3:7].clone()
    scores = window_scores(big, small)
    assert scores.shape == (7 + 3 - 1, 9 + 4 - 1)
    y, x = divmod(int(scores.flatten().argmax()), scores.shape[1])
    assert (y - 2, x - 3) == (2, 3)  # entry (y, x) puts the window's top-left cell at (y - h + 1, x - w + 1)
    # a window of n exact matches scores about sqrt(n) standard deviations
    assert float(scores.max()) > 0.8 * math.sqrt(12) * 2
    # placements with less than MIN_OVERLAP of the window on the map are ruled out
    assert scores[0, 0] == float("-inf") and torch.isfinite(scores[2, 3])


def test_scores_of_unrelated_windows_stay_near_chance(gen):
    big = l2_normalize_features(torch.randn(1, 64, 10, 10, generator=gen))[0]
    small = l2_normalize_features(torch.randn(1, 64, 4, 4, generator=gen))[0]
    scores = window_scores(big, small)
    finite = scores[torch.isfinite(scores)]
    assert abs(float(finite.mean())) < 0.5 and float(finite.max()) < 4.0


def _through(image: torch.Tensor, sim: Similarity, hw: tuple[int, int]) -> torch.Tensor:
    """The geometry that ``sim`` maps into ``image`` (content = sim(geometry)), rendered at ``hw``."""
    grid = compose_similarity([sim], identity_grid(1, *hw), tuple(image.shape[-2:]), hw)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# the geometry's object smaller (a crop of the content), and larger (the content shrunk inside it)
@pytest.mark.parametrize("sim", [Similarity(0.5, 0.0, (0.25, -0.2)), Similarity(0.71, 0.0, (-0.2, 0.1)),
                                 Similarity(1.19, 0.0, (0.0, 0.05))])
def test_search_recovers_a_zoomed_crop(samples, encoder, sim):
    content = load_image(samples / "content" / "kodim23.jpg")
    geometry = _through(content, sim, (192, 160))  # another aspect ratio than the content's
    found = search_similarity(encoder, content, geometry, size=256)
    assert found is not None and found.angle == 0.0
    assert abs(math.log2(found.scale / sim.scale)) <= 0.25 + 1e-6  # within one step of the pyramid
    assert max(abs(a - b) for a, b in zip(found.shift, sim.shift)) < 0.15


def test_the_same_image_is_not_moved(samples, encoder):
    content = load_image(samples / "content" / "kodim15.jpg")
    assert search_similarity(encoder, content, content.clone(), size=192) is None


def test_weak_evidence_never_moves(samples, encoder):
    content = load_image(samples / "content" / "kodim23.jpg")
    geometry = _through(content, Similarity(0.5, 0.0, (0.25, -0.2)), (192, 160))
    assert search_similarity(encoder, content, geometry, size=256, min_evidence=1e6) is None


def test_arguments_are_checked(encoder):
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="content"):
        search_similarity(encoder, torch.rand(2, 3, 64, 64), x)
    with pytest.raises(ValueError, match="size"):
        search_similarity(encoder, x, x, size=32)
    with pytest.raises(ValueError, match="steps"):
        search_similarity(encoder, x, x, steps=0)


def _search_found(samples, monkeypatch, sim):
    """The warper, a content and a geometry with the search stubbed to find ``sim``, and what the
    network then sees: the content through ``sim`` on a 256 x 256 grid of the geometry's frame."""
    import warpstyle.geometry.warper as warper_module
    from warpstyle.geometry.warper import Warper

    warper = Warper.from_pretrained()
    content = load_image(samples / "content" / "kodim23.jpg")
    geometry = load_image(samples / "geometry" / "munch_the-scream.jpg")
    monkeypatch.setattr(warper_module, "search_similarity", lambda *a, **k: sim)
    c_hw, g_hw = tuple(content.shape[-2:]), tuple(geometry.shape[-2:])
    grid = compose_similarity([sim], identity_grid(1, 256, 256), c_hw, g_hw)
    seen = F.grid_sample(content, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return warper, content, geometry, seen, c_hw, g_hw


def test_warper_composes_the_found_similarity_with_its_field_on_the_aligned_content(samples, monkeypatch):
    import warpstyle.geometry.warper as warper_module

    sim = Similarity(0.6, 0.0, (0.1, -0.2))
    warper, content, geometry, seen, c_hw, g_hw = _search_found(samples, monkeypatch, sim)
    got = warper.estimate(content, geometry, align=True).grid
    want = compose_similarity([sim], warper(seen, geometry), c_hw, g_hw)
    assert torch.allclose(got, want, atol=2e-3)
    # no similarity found (not moving scored as well): the plain network field
    monkeypatch.setattr(warper_module, "search_similarity", lambda enc, c, g, **k: None)
    assert torch.allclose(warper.estimate(content, geometry, align=True).grid,
                          warper.estimate(content, geometry, method="network").grid)


def test_the_search_encodes_the_plain_content_only_where_it_finds_no_similarity(samples, monkeypatch):
    import warpstyle.geometry.warper as warper_module

    sim = Similarity(0.6, 0.0, (0.1, -0.2))
    warper, content, geometry, _, _, _ = _search_found(samples, monkeypatch, sim)
    calls = []
    encode = warper._pool4
    monkeypatch.setattr(warper, "_pool4", lambda x, bf16: calls.append(tuple(x.shape)) or encode(x, bf16))
    warper.estimate(content, geometry, align=True)
    assert len(calls) == 2  # the geometry, and the content seen through the similarity
    # a batch with one element unaligned encodes the plain content too, and matches each element alone
    answers = iter([sim, None, sim, None])
    monkeypatch.setattr(warper_module, "search_similarity", lambda *a, **k: next(answers))
    contents = torch.cat([content, content.flip(-1)])
    calls.clear()
    both = warper.estimate(contents, geometry, align=True).grid
    assert len(calls) == 3
    alone = [warper.estimate(contents[k:k + 1], geometry, align=True).grid for k in range(2)]
    assert torch.allclose(both, torch.cat(alone), atol=1e-4)


def test_refinement_after_the_search_runs_on_the_aligned_view_and_is_composed(samples, monkeypatch):
    from warpstyle.geometry.objective import objective_features
    from warpstyle.geometry.refine import refine_field

    sim = Similarity(0.6, 0.0, (0.1, -0.2))
    warper, content, geometry, seen, c_hw, g_hw = _search_found(samples, monkeypatch, sim)
    seen_steps = []
    got = warper.estimate(content, geometry, align=True, refine_steps=3, refine_size=8,
                          on_refine_step=lambda k, f: seen_steps.append((k, f))).grid
    with torch.no_grad():
        c_obj, g_obj = objective_features(warper.encoder, seen), objective_features(warper.encoder, geometry)
        start = warper(seen, geometry)
    want = compose_similarity([sim], refine_field(c_obj, g_obj, start, steps=3, size=8), c_hw, g_hw)
    assert got.shape == (1, 8, 8, 2)
    assert torch.allclose(got, want, atol=2e-3)
    # the callback sees the network's field (step 0) and each step, composed as returned
    assert [k for k, _ in seen_steps] == [0, 1, 2, 3]
    assert torch.allclose(seen_steps[0][1], compose_similarity([sim], start, c_hw, g_hw), atol=2e-3)
    assert torch.equal(seen_steps[-1][1], got)
    # the steps moved the field off the network's start (resized to the refined size)
    assert not torch.allclose(got, compose_similarity([sim], resize_field(start, (8, 8)), c_hw, g_hw), atol=1e-4)


def _small(path, hw: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(load_image(path), size=hw, mode="bilinear", antialias=True, align_corners=False)


def test_refined_batches_mix_aligned_and_plain_elements_as_each_alone(samples, monkeypatch):
    import warpstyle.geometry.warper as warper_module
    from warpstyle.geometry.warper import Warper

    warper = Warper.from_pretrained()
    contents = torch.cat([_small(samples / "content" / "kodim23.jpg", (96, 96))] * 2)
    contents[1] = contents[1].flip(-1)
    geometry = _small(samples / "geometry" / "munch_the-scream.jpg", (96, 96))
    sim = Similarity(0.7, 0.0, (0.1, 0.0))
    answers = iter([sim, None, sim, None])
    monkeypatch.setattr(warper_module, "search_similarity", lambda *a, **k: next(answers))
    both = warper.estimate(contents, geometry, align=True, refine_steps=2).grid
    alone = [warper.estimate(contents[k:k + 1], geometry, align=True, refine_steps=2).grid for k in range(2)]
    assert torch.allclose(both, torch.cat(alone), atol=1e-4)
    assert not torch.allclose(alone[0], warper.estimate(contents[:1], geometry, refine_steps=2).grid, atol=1e-3)


def test_the_matcher_still_refines_in_the_content_frame(samples):
    from warpstyle.geometry.warper import Warper

    warper = Warper.from_pretrained()
    content = _small(samples / "content" / "kodim23.jpg", (64, 96))
    geometry = _small(samples / "geometry" / "munch_the-scream.jpg", (96, 80))
    steps = []
    got = warper.estimate(content, geometry, align="matches", refine_steps=2,
                          on_refine_step=lambda k, f: steps.append((k, f))).grid
    assert [k for k, _ in steps] == [0, 1, 2] and torch.equal(steps[-1][1], got)
    # step 0 is the matcher's composed network field, as estimated without refinement
    assert torch.allclose(steps[0][1], warper.estimate(content, geometry, align="matches").grid, atol=1e-5)
