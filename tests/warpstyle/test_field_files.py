"""Field files and fields that used to fail late or give a flat image (issue 15 cases 9, 10)."""

import numpy as np
import pytest
import torch

from adain.base.errors import FieldError
from warpstyle.fields.field import WarpField
from warpstyle.fields.flow_io import write_flo
from warpstyle.geometry.warper import Warper


def test_npy_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (1_000_000, 1_000_000, 2)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)  # a ~128-byte file claiming 8 TB
    assert path.stat().st_size < 200
    with pytest.raises(FieldError, match="not a readable .npy field"):
        WarpField.load(path)


def test_npy_over_the_pixel_limit_is_refused(tmp_path):
    path = tmp_path / "big.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(20_000, 5_001, 2)).flush()
    with pytest.raises(FieldError, match="implausible field size 5001x20000"):
        WarpField.load(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npy_with_non_finite_values_is_refused(tmp_path, bad):
    grid = WarpField.identity(4, 4).grid[0].numpy().copy()
    grid[1, 2, 0] = bad
    path = tmp_path / "f.npy"
    np.save(path, grid)
    with pytest.raises(FieldError, match=r"the field holds 1 NaN or infinite value\(s\)"):
        WarpField.load(path)


@pytest.mark.parametrize("unknown", [1e10, np.nan, np.inf])
def test_flo_unknown_flow_is_identity_there(tmp_path, unknown):
    flow = np.zeros((4, 5, 2), np.float32)
    flow[..., 0] = 1.0  # one pixel right everywhere
    flow[2, 3] = unknown
    path = tmp_path / "f.flo"
    write_flo(path, flow)
    field = WarpField.load(path)
    px = field.to_pixel_flow()
    assert np.isfinite(px).all()
    assert np.allclose(px[2, 3], 0.0, atol=1e-5)  # unknown: no displacement
    assert np.allclose(px[0, 0], [1.0, 0.0], atol=1e-5)


def test_all_unknown_flo_warps_nothing(tmp_path):
    path = tmp_path / "f.flo"
    write_flo(path, np.full((8, 8, 2), 1e10, np.float32))
    img = torch.rand(1, 3, 8, 8)
    out = Warper.apply(img, WarpField.load(path), smoothness=0)
    assert torch.allclose(out, img, atol=1e-5)  # not a flat image


def test_empty_and_non_finite_fields_fail_at_construction():
    with pytest.raises(ValueError, match=r"grid must have B, H, W >= 1; got shape \(1, 0, 0, 2\)"):
        WarpField(torch.zeros(1, 0, 0, 2))
    grid = WarpField.identity(4, 4).grid.clone()
    grid[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"grid must be finite; got 1 NaN or infinite value\(s\)"):
        WarpField(grid)
    with pytest.raises(ValueError, match="grid is on the meta device"):
        WarpField(torch.empty(1, 4, 4, 2, device="meta"))


def test_field_file_that_is_a_folder(tmp_path):
    d = tmp_path / "f.npy"
    d.mkdir()
    with pytest.raises(FieldError, match="is a directory, not a file"):
        WarpField.load(d)
