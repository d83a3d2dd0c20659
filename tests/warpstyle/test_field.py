import numpy as np
import pytest
import torch

from adain.base.errors import FieldError
from warpstyle.fields.field import WarpField
from warpstyle.fields.warp import identity_grid


def _field(gen):
    return WarpField(identity_grid(1, 12, 10) + 0.05 * torch.randn(1, 12, 10, 2, generator=gen))


def test_npy_round_trip_is_exact(tmp_path, gen):
    f = _field(gen)
    g = WarpField.load(f.save(tmp_path / "f.npy"))
    assert torch.equal(g.grid, f.grid)


def test_flo_round_trip(tmp_path, gen):
    f = _field(gen)
    g = WarpField.load(f.save(tmp_path / "f.flo"))
    assert torch.allclose(g.grid, f.grid, atol=1e-6)


def test_bad_extension_and_bad_file(tmp_path, gen):
    with pytest.raises(ValueError, match=r"\.npy or \.flo"):
        _field(gen).save(tmp_path / "f.txt")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 3)))
    with pytest.raises(FieldError, match="bad.npy"):
        WarpField.load(bad)


def test_strength_zero_is_identity(gen):
    f = _field(gen).scaled(0.0)
    assert torch.allclose(f.grid, identity_grid(1, 12, 10))


def test_visualisation_and_folds(gen):
    f = _field(gen)
    vis = f.visualize()
    assert vis.shape == (12, 10, 3) and vis.dtype == np.uint8
    assert float(WarpField.identity(8, 8).fold_fraction()[0]) == 0.0
    mirrored = WarpField(identity_grid(1, 8, 8) * torch.tensor([-1.0, 1.0]))
    assert float(mirrored.fold_fraction()[0]) == 1.0


def test_shape_check():
    with pytest.raises(ValueError, match="grid must have shape"):
        WarpField(torch.zeros(4, 4, 2))
