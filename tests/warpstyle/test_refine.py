import pytest
import torch
import torch.nn.functional as F

from adain.base.encoder.vgg import VGGEncoder
from warpstyle.fields.metrics import fold_fraction
from warpstyle.geometry.objective import feature_matching_objective
from warpstyle.geometry.refine import refine_field
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.fields.warp import identity_grid
from warpstyle.geometry.warper import Warper


def _blob_features(cx: float, cy: float, n: int = 16, c: int = 4) -> torch.Tensor:
    """Smooth synthetic features ``(1, c, n, n)``: a blob at normalised (cx, cy) over a background."""
    ys = (torch.arange(n) * 2 + 1) / n - 1
    gy, gx = torch.meshgrid(ys, ys, indexing="ij")
    blob = torch.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / 0.1)
    f = torch.stack([blob, 1 - blob, 0.3 * gx + 0.5, 0.3 * gy + 0.5])[:c].unsqueeze(0)
    return F.normalize(f, dim=1)


def _pair():
    # geometry has the blob where the content has it shifted: the best field moves it back
    cf = {"pool4": _blob_features(0.3, 0.2), "relu4_1": _blob_features(0.3, 0.2, n=32)}
    gf = {"pool4": _blob_features(-0.2, -0.1), "relu4_1": _blob_features(-0.2, -0.1, n=32)}
    return cf, gf


def test_refinement_lowers_the_objective_and_keeps_folds_small():
    cf, gf = _pair()
    start = identity_grid(1, 16, 16)
    before = feature_matching_objective(cf, gf, start)
    refined = refine_field(cf, gf, start, steps=60, lr=0.02)
    after = feature_matching_objective(cf, gf, refined)
    assert float(after["loss"]) < float(before["loss"]) - 0.01
    assert float(after["feature"]) < float(before["feature"])
    assert float(fold_fraction(refined)[0]) <= 0.02
    assert refined.shape == (1, 16, 16, 2) and not refined.requires_grad


def test_refinement_moves_the_blob_toward_its_match():
    cf, gf = _pair()
    refined = refine_field(cf, gf, identity_grid(1, 16, 16), steps=80, lr=0.02)
    # the geometry blob's cell should now sample the content nearer its blob at (0.3, 0.2)
    i, j = 7, 6  # row (y ~ -0.1), column (x ~ -0.2)
    before = torch.tensor([-0.1875 - 0.3, -0.0625 - 0.2]).norm()
    after = (refined[0, i, j] - torch.tensor([0.3, 0.2])).norm()
    assert after < before


def test_zero_steps_returns_the_grid_and_snapshots_match_shorter_runs():
    cf, gf = _pair()
    start = identity_grid(1, 16, 16) + 0.01
    assert refine_field(cf, gf, start, steps=0) is start
    seen = {}
    refine_field(cf, gf, start, steps=6, on_step=lambda n, g: seen.__setitem__(n, g))
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]
    torch.testing.assert_close(seen[3], refine_field(cf, gf, start, steps=3), rtol=0, atol=1e-6)


def test_refine_size_resamples_the_field():
    cf, gf = _pair()
    out = refine_field(cf, gf, identity_grid(1, 16, 16), steps=2, size=32)
    assert out.shape == (1, 32, 32, 2)


def test_bad_steps():
    cf, gf = _pair()
    with pytest.raises(ValueError, match="steps"):
        refine_field(cf, gf, identity_grid(1, 16, 16), steps=-1)


@pytest.fixture(scope="module")
def tiny_warper():
    torch.manual_seed(0)
    return Warper(VGGEncoder(), WarpRegressor()).eval().requires_grad_(False)


def test_estimate_refine_zero_is_bit_identical(tiny_warper):
    c, g = torch.rand(1, 3, 48, 40), torch.rand(1, 3, 40, 56)
    a = tiny_warper.estimate(c, g)
    b = tiny_warper.estimate(c, g, refine_steps=0)
    assert torch.equal(a.grid, b.grid) and a.output_size == b.output_size == (40, 56)


def test_estimate_with_refinement(tiny_warper):
    c, g = torch.rand(1, 3, 48, 40), torch.rand(1, 3, 40, 56)
    f = tiny_warper.estimate(c, g, method="network", refine_steps=3)
    assert f.grid.shape == (1, 16, 16, 2) and f.output_size == (40, 56)
    assert not torch.equal(f.grid, tiny_warper.estimate(c, g, method="network").grid)
    # precomputed pool4 features for the network's pass are accepted alongside the images
    gf = tiny_warper.encode(g)
    f2 = tiny_warper.estimate(c, g, geometry_features=gf, geometry_size=(40, 56), refine_steps=3)
    torch.testing.assert_close(f2.grid, f.grid)
    with pytest.raises(ValueError, match="needs the content and geometry images"):
        tiny_warper.estimate(None, None, content_features=gf, geometry_features=gf, refine_steps=2)
    with pytest.raises(ValueError, match="refine_steps"):
        tiny_warper.estimate(c, g, refine_steps=-2)


def test_pipeline_warp_refine_option(pipeline, samples):
    content = samples / "content" / "kodim04.jpg"
    geometry = samples / "geometry" / "juan-gris_portrait-of-pablo-picasso.jpg"
    plain = pipeline.run(content, geometry, size=64)
    again = pipeline.run(content, geometry, size=64, warp_refine=0)
    refined = pipeline.run(content, geometry, size=64, warp_refine=3)
    assert torch.equal(plain.image, again.image)
    assert refined.image.shape == plain.image.shape
    assert not torch.equal(refined.field.grid, plain.field.grid)
