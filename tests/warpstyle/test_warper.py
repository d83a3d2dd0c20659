import pytest
import torch

from adain.base.errors import CheckpointError
from adain.base.image import load_image
from warpstyle.geometry.warper import Warper
from warpstyle.fields.warp import identity_grid


@pytest.fixture(scope="module")
def warper():
    return Warper.from_pretrained()


def test_estimate_shapes_and_output_size(warper, samples):
    c = load_image(samples / "content" / "kodim04.jpg")
    g = load_image(samples / "geometry" / "munch_the-scream.jpg")
    field = warper.estimate(c, g, method="network", bf16=True)
    assert field.grid.shape == (1, 16, 16, 2)
    assert field.output_size == tuple(g.shape[-2:])
    out = warper.apply(c, field)
    # geometry's aspect ratio at the content's longer side: the content's resolution is kept
    assert max(out.shape[-2:]) == max(c.shape[-2:])
    assert abs(out.shape[-1] / out.shape[-2] - g.shape[-1] / g.shape[-2]) < 0.01


def test_bundled_warper_is_trained_and_smooth(warper, samples):
    c = load_image(samples / "content" / "kodim04.jpg")
    g = load_image(samples / "geometry" / "munch_the-scream.jpg")
    field = warper.estimate(c, g, method="network")
    disp = (field.grid - identity_grid(1, 16, 16)).abs().mean()
    assert disp > 0.01  # an untrained (zero-init) warper would return identity
    assert float(field.fold_fraction()[0]) < 0.05


def test_strength_zero_returns_content(warper, samples):
    c = load_image(samples / "content" / "kodim23.jpg")
    field = warper.estimate(c, samples / "geometry" / "munch_the-scream.jpg")
    assert torch.equal(warper.apply(c, field, strength=0.0), c)


@pytest.mark.parametrize("method", ["network", "match"])
def test_same_image_gives_near_identity(warper, samples, method):
    c = load_image(samples / "content" / "kodim23.jpg")
    field = warper.estimate(c, c, method=method)
    # mean distance from identity below 8 px at 256 px (synthetic warps average 32 px)
    err = ((field.grid - identity_grid(1, *field.grid.shape[1:3])) * 128).norm(dim=-1).mean()
    assert err < (8.0 if method == "network" else 2.0)


def test_from_pretrained_rejects_wrong_file(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"foo": torch.zeros(3)}, p)
    with pytest.raises(CheckpointError, match="not a warper state_dict"):
        Warper.from_pretrained(p)


def test_apply_checks_inputs(warper, samples):
    field = warper.estimate(samples / "content" / "kodim23.jpg", samples / "content" / "kodim04.jpg")
    with pytest.raises(ValueError, match="strength must be in"):
        warper.apply(torch.rand(1, 3, 8, 8), field, strength=-1)
    with pytest.raises(ValueError, match="image must have values in"):
        warper.apply(torch.rand(1, 3, 8, 8) * 255, field)


@pytest.mark.parametrize("strength,smoothness", [(1.0, 0.75), (0.5, 2.0), (3.0, 0.0)])
def test_applied_field_reproduces_apply_exactly(gen, strength, smoothness):
    # What `warpstyle run --save-field` writes (issue 15 case 13): the field apply really samples with.
    from warpstyle.fields.field import WarpField

    image = torch.rand(1, 3, 20, 28, generator=gen)
    field = WarpField(identity_grid(1, 16, 16) + 0.2 * torch.rand(1, 16, 16, 2, generator=gen) - 0.1, (30, 24))
    applied = Warper.applied_field(field, strength=strength, smoothness=smoothness, size=(30, 24))
    assert applied.shape == (30, 24) and applied.output_size == (30, 24)
    direct = Warper.apply(image, field, strength=strength, smoothness=smoothness, size=(30, 24))
    assert torch.equal(Warper.apply(image, applied, smoothness=0, size=applied.shape), direct)


def test_applied_field_at_strength_zero_is_the_identity(gen):
    # No warp: the saved field is the identity (the output is the content resized with antialiasing).
    from warpstyle.fields.field import WarpField

    field = WarpField(identity_grid(1, 16, 16) + 0.2 * torch.rand(1, 16, 16, 2, generator=gen) - 0.1, (30, 24))
    applied = Warper.applied_field(field, strength=0.0, smoothness=0.75, size=(30, 24))
    assert torch.allclose(applied.grid, identity_grid(1, 30, 24), atol=1e-6)
