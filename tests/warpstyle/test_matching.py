import math

import pytest
import torch

from adain.base.encoder.vgg import VGGEncoder
from warpstyle.fields.metrics import fold_fraction
from warpstyle.fields.warp import identity_grid
from warpstyle.geometry.align import Similarity
from warpstyle.geometry.matching import MATCH_SIZE, MATCH_SIZES, MATCH_TAPS, MatchResult, match_field, matching_features

# Hand-made taps: pool4 8x8, then 16, 32, 64 (each twice the one before, as matching_features gives).
SIDES = (8, 16, 32, 64)


def _fourier(points: torch.Tensor, gen_seed: int = 0, channels: int = 48) -> torch.Tensor:
    """Smooth, locally unique features ``(C, h, w)`` of ``(h, w, 2)`` points: random Fourier features."""
    g = torch.Generator().manual_seed(gen_seed)
    k = torch.randn(channels, 2, generator=g, dtype=torch.float64) * 3.0
    phase = torch.rand(channels, generator=g, dtype=torch.float64) * 2 * math.pi
    return (1.2 + torch.cos(points @ k.T + phase)).permute(2, 0, 1).float()  # positive, like ReLU taps


def _taps(points_of, rows: int = 8, cols: int = 8) -> dict[str, torch.Tensor]:
    """``{tap: (1, C, h, w)}``, features of ``points_of(aspect-corrected cell centres)``; pool4 ``rows x cols``."""
    out = {}
    aspect = torch.tensor([cols / max(rows, cols), rows / max(rows, cols)], dtype=torch.float64)
    for k, t in enumerate(MATCH_TAPS):
        p = identity_grid(1, rows * 2**k, cols * 2**k, dtype=torch.float64)[0] * aspect
        out[t] = _fourier(points_of(p)).unsqueeze(0)
    return out


def _pair(sim: Similarity):
    """Content features of the plane; geometry features of the plane seen through ``sim`` (geometry -> content)."""
    return _taps(lambda p: p), _taps(lambda p: sim.apply(p))


def test_a_known_shift_and_scale_is_recovered():
    truth = Similarity(0.8, 0.0, (0.15, -0.1))
    content, geometry = _pair(truth)
    r = match_field(content, geometry, (64, 64), (64, 64), grid_size=16)
    assert isinstance(r, MatchResult) and r.confident and r.reason == ""
    assert r.similarity is not None
    assert r.similarity.scale == pytest.approx(0.8, abs=0.03)
    assert r.similarity.angle == 0.0  # the prior: no rotation unless it is clearly supported
    assert r.similarity.shift == pytest.approx((0.15, -0.1), abs=0.03)
    assert r.grid.shape == (1, 16, 16, 2) and r.grid.dtype == torch.float32
    want = truth.apply(identity_grid(1, 16, 16, dtype=torch.float64)).float()
    assert (r.grid - want).abs().max() < 0.06  # the spline stays close to the true map
    assert r.spread > 0.5 and r.inliers > 100
    assert float(fold_fraction(r.grid)[0]) == 0.0


def test_a_strongly_supported_rotation_is_recovered_across_aspect_ratios():
    # Content 64x128 (H, W): aspect-corrected content spans x in [-1, 1], y in [-0.5, 0.5].
    truth = Similarity(0.8, math.radians(30), (0.05, 0.0))
    content = _taps(lambda p: p, rows=4, cols=8)
    geometry = _taps(lambda p: truth.apply(p))
    r = match_field(content, geometry, (64, 128), (64, 64), grid_size=8, smoothing=0.0)
    assert r.confident and r.similarity is not None
    assert math.degrees(r.similarity.angle) == pytest.approx(30, abs=2)
    assert r.similarity.scale == pytest.approx(0.8, abs=0.03)
    # smoothing 0: the grid is the similarity itself, in the content's normalised frame
    want = truth.apply(identity_grid(1, 8, 8, dtype=torch.float64)) / torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert (r.grid.double() - want).abs().max() < 0.08


def _swapped(p: torch.Tensor) -> torch.Tensor:
    """Neighbouring columns and rows swapped at every tap: locally crossing matches."""
    n = p.shape[1]
    step = torch.where(torch.arange(n) % 2 == 0, 2.0 / n, -2.0 / n).double()
    q = p.clone()
    q[..., 0] += step[None, :]
    q[..., 1] += step[:, None]
    return q


def test_the_field_never_folds_even_with_almost_no_smoothing(monkeypatch):
    import warpstyle.geometry.matching as matching

    content, geometry = _taps(lambda p: p), _taps(_swapped)
    r = match_field(content, geometry, (64, 64), (64, 64), grid_size=64, smoothing=1e-6)
    assert r.confident
    assert float(fold_fraction(r.grid)[0]) == 0.0
    # The guard is what does it: accepting the first spline gives a folded field on these matches.
    monkeypatch.setattr(matching, "fold_fraction", lambda grid: torch.zeros(1))
    monkeypatch.setattr(matching, "_MIN_JACOBIAN_RATIO", -math.inf)
    bare = match_field(content, geometry, (64, 64), (64, 64), grid_size=64, smoothing=1e-6)
    assert float(fold_fraction(bare.grid)[0]) > 0.01


def test_deterministic_for_a_seed():
    content, geometry = _pair(Similarity(0.9, 0.0, (0.1, 0.05)))
    a = match_field(content, geometry, (64, 64), (64, 64), grid_size=8, seed=7)
    b = match_field(content, geometry, (64, 64), (64, 64), grid_size=8, seed=7)
    assert torch.equal(a.grid, b.grid) and a.similarity == b.similarity and a.inliers == b.inliers


def test_not_confident_on_noise():
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        content = {t: torch.rand(1, 48, n, n, generator=g) for t, n in zip(MATCH_TAPS, SIDES)}
        geometry = {t: torch.rand(1, 48, n, n, generator=g) for t, n in zip(MATCH_TAPS, SIDES)}
        r = match_field(content, geometry, (64, 64), (64, 64), grid_size=8)
        assert not r.confident and r.reason and r.similarity is None
        assert torch.equal(r.grid, identity_grid(1, 8, 8))


def _ok():
    return _pair(Similarity(1.0, 0.0, (0.0, 0.0)))


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda c, g, kw: c.pop("relu3_1"), "content"),
        (lambda c, g, kw: g.__setitem__("pool4", torch.rand(2, 48, 8, 8)), "geometry"),
        (lambda c, g, kw: g.__setitem__("relu4_1", torch.rand(1, 48, 12, 12)), "geometry"),
        (lambda c, g, kw: c.__setitem__("pool4", torch.full((1, 48, 8, 8), math.nan)), "content"),
        (lambda c, g, kw: g.__setitem__("pool4", torch.rand(1, 40, 8, 8)), "geometry"),
        (lambda c, g, kw: kw.__setitem__("content_hw", (0, 64)), "content_hw"),
        (lambda c, g, kw: kw.__setitem__("geometry_hw", (64,)), "geometry_hw"),
        (lambda c, g, kw: kw.__setitem__("grid_size", 1), "grid_size"),
        (lambda c, g, kw: kw.__setitem__("smoothing", -0.1), "smoothing"),
        (lambda c, g, kw: kw.__setitem__("seed", 1.5), "seed"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(change, name):
    content, geometry = _ok()
    kw = {"content_hw": (64, 64), "geometry_hw": (64, 64), "grid_size": 8, "smoothing": 0.1, "seed": 0}
    change(content, geometry, kw)
    with pytest.raises(ValueError, match=name):
        match_field(content, geometry, kw.pop("content_hw"), kw.pop("geometry_hw"), **kw)


def test_matching_features_resizes_to_each_match_size_keeping_aspect():
    torch.manual_seed(0)
    enc = VGGEncoder().eval()  # random weights: only shapes matter here
    with torch.no_grad():
        sizes = matching_features(enc, torch.rand(1, 3, 100, 200))
    assert len(sizes) == len(MATCH_SIZES) and MATCH_SIZES[0] == MATCH_SIZE
    for f, size in zip(sizes, MATCH_SIZES):
        assert tuple(f) == MATCH_TAPS
        w = round(size / 16)
        h = round(size / 2 / 16)  # 1:2 aspect kept, sides multiples of 16 px
        assert f["pool4"].shape[2:] == (h, w)
        for k, t in enumerate(MATCH_TAPS):
            assert f[t].shape[0] == 1 and f[t].shape[2:] == (h * 2**k, w * 2**k)


def test_a_size_where_the_objects_match_is_found_when_the_base_size_does_not():
    truth = Similarity(0.7, 0.0, (0.1, 0.05))
    g = torch.Generator().manual_seed(1)
    noise = {t: torch.rand(1, 48, n, n, generator=g) for t, n in zip(MATCH_TAPS, SIDES)}
    geometry = _taps(lambda p: truth.apply(p))
    alone = match_field(noise, geometry, (64, 64), (64, 64), grid_size=8)
    assert not alone.confident
    twice = match_field([noise, noise], geometry, (64, 64), (64, 64), grid_size=8)
    assert not twice.confident and twice.reason.startswith("no size gave a confident fit (at the base size: ")
    # The content also at 1.5x the base size (pool4 12x12), where its features match the geometry's.
    larger = _taps(lambda p: p, rows=12, cols=12)
    r = match_field([noise, larger], [geometry], (64, 64), (64, 64), grid_size=8)
    assert r.confident and r.similarity is not None
    assert r.similarity.scale == pytest.approx(0.7, abs=0.03)  # in the images' own units, whatever the size
    assert r.similarity.shift == pytest.approx((0.1, 0.05), abs=0.03)


def test_of_two_confident_sizes_the_one_with_more_inliers_wins_however_listed():
    truth = Similarity(0.7, 0.0, (0.1, 0.05))
    geometry = _taps(lambda p: truth.apply(p))
    strong = _taps(lambda p: p, rows=12, cols=12)
    weak = _taps(lambda p: p)
    g = torch.Generator().manual_seed(3)
    for t in MATCH_TAPS:  # the right half of the weak size's cells carry no match
        x = weak[t]
        x[..., x.shape[-1] // 2:] = torch.rand(x[..., x.shape[-1] // 2:].shape, generator=g) * 2
    alone = {k: match_field(v, geometry, (64, 64), (64, 64), grid_size=8) for k, v in (("weak", weak), ("strong", strong))}
    assert alone["weak"].confident and alone["strong"].confident
    assert alone["weak"].inliers < alone["strong"].inliers
    for sizes in ([weak, strong], [strong, weak]):
        r = match_field(sizes, geometry, (64, 64), (64, 64), grid_size=8)
        assert r.inliers == alone["strong"].inliers and r.similarity == alone["strong"].similarity


def test_sizes_are_checked_one_by_one():
    content, geometry = _ok()
    bad = dict(content)
    bad.pop("relu2_1")
    with pytest.raises(ValueError, match=r"content\[1\] lacks"):
        match_field([content, bad], geometry, (64, 64), (64, 64))
    with pytest.raises(ValueError, match="at least one size"):
        match_field(content, [], (64, 64), (64, 64))
    narrow = {t: v[:, :40] for t, v in content.items()}
    with pytest.raises(ValueError, match=r"content\[1\]\['pool4'\] must have the channels"):
        match_field([content, narrow], geometry, (64, 64), (64, 64))
    half = {t: v.half() for t, v in content.items()}  # float16 taps: checked without overflowing
    assert match_field(half, geometry, (64, 64), (64, 64), grid_size=8).grid.shape == (1, 8, 8, 2)
