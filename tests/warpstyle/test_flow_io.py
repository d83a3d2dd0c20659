"""Known answers for warpstyle.fields.flow_io: .flo bytes and the colour wheel."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from adain.base.errors import FieldError
from warpstyle.fields.flow_io import (
    FLO_MAGIC,
    flow_to_color,
    read_flo,
    write_flo,
)


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
