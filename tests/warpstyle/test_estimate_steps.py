"""Warper.estimate's steps: the method switch, a prior field, the architecture registry; the blur fill."""

from __future__ import annotations

import pytest
import torch

from adain.base.errors import CheckpointError
from adain.base.encoder.vgg import VGGEncoder
from adain.base.storage.weights import save_weights
from warpstyle.fields.field import WarpField
from warpstyle.fields.warp import apply_warp, identity_grid
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.geometry.registry import (DEFAULT_ARCHITECTURE, Architecture, architecture_names, get_architecture,
                                         register_architecture)
from warpstyle.geometry.warper import Warper


@pytest.fixture(scope="module")
def warper() -> Warper:
    torch.manual_seed(0)
    return Warper(VGGEncoder(), WarpRegressor(hidden=8)).eval().requires_grad_(False)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, 48, 64, generator=g), torch.rand(1, 3, 64, 48, generator=g)


def test_unknown_method_and_align_with_matching_are_refused(warper):
    c, g = _images()
    with pytest.raises(ValueError, match="method must be one of"):
        warper.estimate(c, g, method="optical-flow")
    with pytest.raises(ValueError, match="align applies to method='network'"):
        warper.estimate(c, g, method="match", align=True)


def test_a_prior_field_is_the_start_and_refinement_continues_from_it(warper):
    c, g = _images()
    shift = identity_grid(1, 16, 16) + torch.tensor([0.2, -0.1])
    prior = WarpField(shift, (64, 48))
    got = warper.estimate(c, g, prior=prior)
    torch.testing.assert_close(got.grid, shift)
    assert got.output_size == (64, 48)
    refined = warper.estimate(c, g, prior=prior, refine_steps=3, refine_size=16)
    assert not torch.equal(refined.grid, shift)
    # Three small Adam steps stay near the prior, far from the identity it would start from otherwise.
    assert (refined.grid - shift).abs().mean() < (refined.grid - identity_grid(1, 16, 16)).abs().mean()
    with pytest.raises(TypeError, match="prior must be a WarpField"):
        warper.estimate(c, g, prior=shift)


def test_network_method_gives_the_regressors_grid(warper):
    c, g = _images()
    field = warper.estimate(c, g, method="network")
    assert field.grid.shape == (1, 16, 16, 2) and field.output_size == (64, 48)
    torch.testing.assert_close(field.grid, warper(c, g))


def test_registry_names_builds_and_refuses():
    assert get_architecture("WarpRegressor") is DEFAULT_ARCHITECTURE
    assert "WarpRegressor" in architecture_names()
    with pytest.raises(ValueError, match="known: .*WarpRegressor"):
        get_architecture("NoSuchNet")
    with pytest.raises(ValueError, match="already registered"):
        register_architecture(DEFAULT_ARCHITECTURE)
    with pytest.raises(ValueError, match="hidden must be an int"):
        DEFAULT_ARCHITECTURE.shapes({"grid_size": 16, "hidden": 10**9, "refine_steps": 1})
    assert isinstance(DEFAULT_ARCHITECTURE, Architecture)


def test_weights_naming_an_unknown_architecture_are_refused(tmp_path):
    reg = WarpRegressor(grid_size=4, hidden=8, refine_steps=0)
    path = tmp_path / "w.safetensors"
    save_weights(path, "NoSuchNet", reg.state_dict(), reg.config(), dict(DEFAULT_ARCHITECTURE.input), "test")
    with pytest.raises(CheckpointError, match="unknown warper architecture 'NoSuchNet'"):
        Warper.from_pretrained(path, encoder=VGGEncoder())
    good = tmp_path / "good.safetensors"
    save_weights(good, "WarpRegressor", reg.state_dict(), reg.config(), dict(DEFAULT_ARCHITECTURE.input), "test")
    loaded = Warper.from_pretrained(good, encoder=VGGEncoder())
    assert loaded.regressor.config() == reg.config() and loaded.architecture is DEFAULT_ARCHITECTURE


def test_blur_fill_shows_no_mirrored_copy_beyond_the_content():
    # A bright square near the left edge; a zoom-out field samples beyond that edge.
    x = torch.zeros(1, 3, 64, 64)
    x[..., 24:40, 4:14] = 1.0
    grid = identity_grid(1, 64, 64) * 2.0  # shows the content at half size, centred
    mirrored = apply_warp(x, grid, padding="reflection")
    blurred = apply_warp(x, grid, padding="blur")
    border = apply_warp(x, grid, padding="border")
    inside = (grid.abs() < 1).all(-1)[0]
    torch.testing.assert_close(blurred[..., inside], border[..., inside])
    # Left of the content (x < 16 in the output): reflection repeats the square, blur leaves a soft glow.
    far = (slice(None), slice(None), slice(29, 35), slice(10, 14))
    assert mirrored[far].amax() > 0.9
    assert blurred[far].amax() < 0.6 and blurred[far].std() < 0.2
    with pytest.raises(ValueError, match="padding must be one of"):
        apply_warp(x, grid, padding="zeros")  # type: ignore[arg-type]


def test_cli_refuses_align_with_matching(tmp_path, capsys):
    from warpstyle.app.cli import main

    samples = "datasets/samples/"
    with pytest.raises(SystemExit) as e:
        main(["run", "-c", samples + "content/kodim04.jpg", "-g", samples + "geometry/munch_the-scream.jpg",
              "--align", "--geometry-method", "match", "-o", str(tmp_path / "o.png")])
    assert e.value.code == 2
    assert "--align is part of --geometry-method network" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_matching_from_features_alone_gives_the_images_field(samples):
    from adain.base.image import load_image

    bundled = Warper.from_pretrained()
    c = load_image(samples / "content" / "kodim04.jpg", working_size=256)
    g = load_image(samples / "geometry" / "juan-gris_portrait-of-pablo-picasso.jpg", working_size=256)
    fc, fg = bundled.encode(c, method="match"), bundled.encode(g, method="match")
    assert isinstance(fc, list) and len(fc) == 3  # one set of taps per matching size
    from_images = bundled.estimate(c, g, method="match")
    from_features = bundled.estimate(None, None, method="match", content_features=fc, geometry_features=fg,
                                     content_size=tuple(c.shape[-2:]), geometry_size=tuple(g.shape[-2:]))
    assert torch.equal(from_images.grid, from_features.grid) and from_features.output_size == tuple(g.shape[-2:])
    with pytest.raises(TypeError, match="content_features must be the taps"):
        bundled.estimate(None, None, method="match", content_features=fc[0], geometry_features=fg,
                         content_size=tuple(c.shape[-2:]), geometry_size=tuple(g.shape[-2:]))


def test_matching_features_of_one_content_refuse_a_geometry_batch(warper):
    c, g = _images()
    fc = warper.encode(c, method="match")
    with pytest.raises(ValueError, match="geometry must be one image"):
        warper.estimate(None, torch.cat([g, g, g]), method="match", content_features=fc, content_size=(48, 64))
