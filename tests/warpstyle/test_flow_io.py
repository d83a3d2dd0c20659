"""Known answers for warpstyle.flow_io: .flo bytes, grid <-> pixel flow, colour wheel, folds."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from adain.base.errors import FieldError
from warpstyle.flow_io import (
    FLO_MAGIC,
    flow_to_color,
    fold_fraction,
    grid_to_pixel_flow,
    pixel_flow_to_grid,
    read_flo,
    write_flo,
)
from warpstyle.warp import identity_grid


def _flow(h: int = 5, w: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (h, w, 2)).astype(np.float32)


# --- .flo -------------------------------------------------------------------------------------


def test_flo_round_trip_is_exact(tmp_path):
    flow = _flow()
    flow[0, 0] = [np.float32(1e-30), np.float32(-3.4e38)]  # extremes survive bit for bit
    back = read_flo(write_flo(tmp_path / "f.flo", flow))
    assert back.dtype == np.float32 and back.shape == (5, 7, 2)
    assert back.tobytes() == flow.tobytes()
    back[0, 0, 0] = 1.0  # the result is a fresh, writable array


def test_flo_bytes_follow_middlebury(tmp_path):
    flow = np.arange(3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2)  # H=2, W=3
    data = write_flo(tmp_path / "f.flo", flow).read_bytes()
    assert data[:4] == b"PIEH"  # 202021.25 as little-endian float32
    assert struct.unpack("<f", data[:4])[0] == FLO_MAGIC == 202021.25
    assert struct.unpack("<ii", data[4:12]) == (3, 2)  # width first, then height
    assert len(data) == 12 + 2 * 3 * 2 * 4
    # row-major, u and v interleaved: pixel (x=1, y=0) holds (2, 3)
    assert struct.unpack("<2f", data[12 + 8 : 12 + 16]) == (2.0, 3.0)


def test_flo_write_accepts_tensor_and_rejects_bad_shape(tmp_path):
    t = torch.ones(2, 2, 2, dtype=torch.float64)
    assert read_flo(write_flo(tmp_path / "t.flo", t)).sum() == 8.0
    with pytest.raises(ValueError, match=r"flow must have shape \(H, W, 2\).*\(2, 2, 3\)"):
        write_flo(tmp_path / "bad.flo", np.zeros((2, 2, 3)))
    assert not (tmp_path / "bad.flo").exists()


def test_flo_write_is_atomic(tmp_path):
    """Writing over a file leaves no temp files behind."""
    path = tmp_path / "f.flo"
    write_flo(path, _flow(seed=1))
    write_flo(path, _flow(seed=2))
    assert read_flo(path).tobytes() == _flow(seed=2).tobytes()
    assert [p.name for p in tmp_path.iterdir()] == ["f.flo"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (struct.pack("<fii", 123.0, 2, 2) + bytes(32), "magic number"),
        (struct.pack("<fii", FLO_MAGIC, 0, 2), "implausible .flo size 0x2"),
        (struct.pack("<fii", FLO_MAGIC, -3, 2), "implausible"),
        (struct.pack("<fii", FLO_MAGIC, 20_000, 20_000), "implausible"),  # 400 M pixels
        (struct.pack("<fii", FLO_MAGIC, 2, 2) + bytes(31), "truncated .flo: 31 data bytes, expected 32"),
        (struct.pack("<fii", FLO_MAGIC, 2, 2) + bytes(33), "trailing bytes"),
    ],
)
def test_flo_read_rejects_bad_files(tmp_path, data, reason):
    path = tmp_path / "bad.flo"
    path.write_bytes(data)
    with pytest.raises(FieldError, match="bad.flo") as e:
        read_flo(path)
    assert reason in e.value.reason


def test_flo_read_missing_file(tmp_path):
    with pytest.raises(FieldError, match="nope.flo"):
        read_flo(tmp_path / "nope.flo")


# --- grid <-> pixel flow ----------------------------------------------------------------------


def test_identity_grid_is_zero_flow():
    flow = grid_to_pixel_flow(identity_grid(2, 6, 9))
    assert flow.shape == (2, 6, 9, 2)
    assert flow.abs().max() < 1e-5


def test_shift_of_two_over_width_is_one_pixel():
    h, w = 6, 10
    grid = identity_grid(1, h, w) + torch.tensor([2.0 / w, 0.0])
    flow = grid_to_pixel_flow(grid)
    assert torch.allclose(flow[..., 0], torch.ones(1, h, w), atol=1e-5)
    assert torch.allclose(flow[..., 1], torch.zeros(1, h, w), atol=1e-5)
    # and in y: +2/H is one pixel down, independent of the width
    flow_y = grid_to_pixel_flow(identity_grid(1, h, w) + torch.tensor([0.0, 2.0 / h]))
    assert torch.allclose(flow_y[..., 1], torch.ones(1, h, w), atol=1e-5)


def test_pixel_flow_round_trip():
    g = torch.Generator().manual_seed(0)
    grid = torch.rand(2, 5, 8, 2, generator=g) * 2 - 1
    assert torch.allclose(pixel_flow_to_grid(grid_to_pixel_flow(grid)), grid, atol=1e-5)
    flow = torch.randn(2, 5, 8, 2, generator=g) * 4
    assert torch.allclose(grid_to_pixel_flow(pixel_flow_to_grid(flow)), flow, atol=1e-5)
    assert pixel_flow_to_grid(flow.double()).dtype == torch.float64


def test_pixel_flow_known_corner():
    # zero flow at pixel (0, 0) of a 4 x 8 field is that pixel's centre: (1/8 - 1, 1/4 - 1)
    grid = pixel_flow_to_grid(torch.zeros(1, 4, 8, 2))
    assert grid[0, 0, 0].tolist() == pytest.approx([-0.875, -0.75])


def test_grid_conversions_check_shape():
    with pytest.raises(ValueError, match=r"grid must have shape \(B, H, W, 2\)"):
        grid_to_pixel_flow(torch.zeros(4, 4, 2))
    with pytest.raises(TypeError, match="flow must be a floating tensor"):
        pixel_flow_to_grid(torch.zeros(1, 4, 4, 2, dtype=torch.int64))


# --- colour wheel -----------------------------------------------------------------------------


def test_color_zero_flow_is_white():
    img = flow_to_color(np.zeros((3, 4, 2), np.float32))
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8
    assert (img == 255).all()


def test_color_directions_follow_the_wheel():
    flow = np.zeros((1, 4, 2), np.float32)
    flow[0, 0] = [1, 0]  # +x: the wheel's first colour, pure red
    flow[0, 1] = [-1, 0]  # -x: opposite, in the cyan-blue segment
    flow[0, 2] = [0.5, 0]  # +x at half the maximum: half-saturated red
    img = flow_to_color(torch.from_numpy(flow))
    assert img[0, 0].tolist() == [255, 0, 0]
    r, g, b = img[0, 1].tolist()
    assert r == 0 and b == 255 and 150 < g < 255
    assert img[0, 2].tolist() == [255, 127, 127]
    assert img[0, 3].tolist() == [255, 255, 255]


def test_color_max_magnitude_and_unknown_flow():
    flow = np.array([[[2.0, 0.0], [4.0, 0.0], [np.nan, 0.0], [2e9, 0.0]]], np.float32)
    img = flow_to_color(flow, max_magnitude=2.0)
    assert img[0, 0].tolist() == [255, 0, 0]  # exactly at the maximum: full saturation
    assert img[0, 1].tolist() == [191, 0, 0]  # beyond it: darkened to 75 %, as flowToColor.m
    assert img[0, 2].tolist() == [0, 0, 0] and img[0, 3].tolist() == [0, 0, 0]  # unknown: black
    # the default maximum ignores unknown pixels
    assert flow_to_color(flow)[0, 1].tolist() == [255, 0, 0]


def test_color_rejects_bad_input():
    with pytest.raises(ValueError, match=r"flow must have shape \(H, W, 2\)"):
        flow_to_color(np.zeros((1, 3, 4, 2)))
    with pytest.raises(ValueError, match="max_magnitude must be a positive"):
        flow_to_color(np.zeros((3, 4, 2)), max_magnitude=0.0)


# --- folds ------------------------------------------------------------------------------------


def test_fold_fraction_identity_is_zero():
    out = fold_fraction(identity_grid(3, 8, 12))
    assert out.shape == (3,) and out.tolist() == [0.0, 0.0, 0.0]


def test_fold_fraction_mirror_is_one():
    mirrored = identity_grid(1, 8, 12) * torch.tensor([-1.0, 1.0])
    assert fold_fraction(mirrored).tolist() == [1.0]
    flipped_y = identity_grid(1, 8, 12) * torch.tensor([1.0, -1.0])
    assert fold_fraction(flipped_y).tolist() == [1.0]


def test_fold_fraction_smooth_small_warp_is_zero():
    grid = identity_grid(1, 16, 16)
    x, y = grid[..., 0], grid[..., 1]
    warped = grid + 0.05 * torch.stack([torch.sin(np.pi * y), torch.cos(np.pi * x)], dim=-1)
    assert fold_fraction(warped).tolist() == [0.0]
    assert fold_fraction(torch.stack([grid[0], warped[0]])).tolist() == [0.0, 0.0]


def test_fold_fraction_counts_a_local_fold():
    # Mirror the left half of an 8 x 8 grid: x samples 7,5,3,1,1,3,5,7 (eighths). Columns 0..2 step
    # backwards; column 3 steps by zero (columns 3 and 4 sample the same place), which also counts.
    grid = identity_grid(1, 8, 8)
    grid[:, :, :4, 0] = -grid[:, :, :4, 0]
    assert fold_fraction(grid).item() == pytest.approx(4 / 8)
    # mirroring only columns 0..2 leaves column 2 -> 3 a positive step: 2 of 8 columns fold
    grid = identity_grid(1, 8, 8)
    grid[:, :, :3, 0] = -grid[:, :, :3, 0] - 0.75  # samples 1, -1, -3, then -1, 1, 3 ... (eighths)
    assert fold_fraction(grid).item() == pytest.approx(2 / 8)


def test_fold_fraction_degenerate_and_nan():
    assert fold_fraction(identity_grid(2, 1, 5)).tolist() == [0.0, 0.0]
    grid = identity_grid(1, 4, 4)
    grid[0, 0, 0] = float("nan")
    assert fold_fraction(grid).item() > 0  # non-finite determinants count as folds
