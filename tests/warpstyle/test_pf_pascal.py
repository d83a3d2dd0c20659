"""PF-PASCAL pairs and keypoint metrics on the committed fixture in the real layout."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import scipy.io
import torch

from adain.base.errors import ConfigError, ImageError
from warpstyle.training.data.pf_pascal import MAX_KEYPOINTS, PFPascalPairs, pck, transfer_keypoints
from warpstyle.fields.warp import identity_grid

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pf_pascal"
IMAGES = "PF-dataset-PASCAL/JPEGImages"


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)
    return path


# --- dataset ----------------------------------------------------------------------------------


def test_item_layout():
    ds = PFPascalPairs(FIXTURE, "test_pairs_pf_pascal.csv", image_size=32)
    assert len(ds) == 2
    item = ds[0]
    assert item["source"].shape == (3, 32, 32) and item["target"].shape == (3, 32, 32)
    assert item["source"].dtype == torch.float32 and 0 <= item["source"].min() and item["source"].max() <= 1
    assert item["source_points"].shape == (MAX_KEYPOINTS, 2) and item["target_points"].shape == (MAX_KEYPOINTS, 2)
    assert item["mask"].dtype == torch.bool and item["mask"].tolist() == [True] * 3 + [False] * 17
    assert item["num_points"] == 3
    assert item["source_size"].tolist() == [48, 64] and item["target_size"].tolist() == [48, 64]
    assert item["class"] == "1" and item["flip"] == 0
    assert ds[1]["target_size"].tolist() == [64, 48]  # the portrait image


def test_keypoints_normalise_align_corners_false():
    item = PFPascalPairs(FIXTURE, FIXTURE / "test_pairs_pf_pascal.csv", image_size=16)[0]
    src = item["source_points"]
    # (31.5, 23.5) is the centre of a 64 x 48 image
    assert src[0].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    # pixel (0, 0) is the centre of the first pixel, (63, 47) of the last
    assert src[1].tolist() == pytest.approx([1 / 64 - 1, 1 / 48 - 1], abs=1e-6)
    assert src[2].tolist() == pytest.approx([1 - 1 / 64, 1 - 1 / 48], abs=1e-6)
    assert (item["source_points"][3:] == 0).all()  # padding
    # portrait target of pair 1: (23.5, 31.5) is the centre of a 48 x 64 (W x H) image
    assert PFPascalPairs(FIXTURE, "test_pairs_pf_pascal.csv")[1]["target_points"][0].tolist() == pytest.approx(
        [0.0, 0.0], abs=1e-6
    )


def test_csv_keypoints_agree_with_the_mat_annotation():
    """The fixture is in the real format: the CSV's keypoints are the .mat's `kps` rows."""
    kps = scipy.io.loadmat(FIXTURE / "PF-dataset-PASCAL" / "Annotations" / "aeroplane" / "2007_000001.mat")["kps"]
    assert kps.shape == (5, 2) and math.isnan(kps[4, 0])
    item = PFPascalPairs(FIXTURE, "test_pairs_pf_pascal.csv")[0]
    pixels = (item["source_points"][:3] + 1) * torch.tensor([64.0, 48.0]) / 2 - 0.5
    assert pixels.flatten().tolist() == pytest.approx(kps[:3].flatten().tolist(), abs=1e-4)


def test_default_collate():
    ds = PFPascalPairs(FIXTURE, "test_pairs_pf_pascal.csv", image_size=16)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["source"].shape == (2, 3, 16, 16)
    assert batch["target_points"].shape == (2, MAX_KEYPOINTS, 2) and batch["mask"].shape == (2, MAX_KEYPOINTS)
    assert batch["source_size"].tolist() == [[48, 64], [48, 64]]
    assert batch["num_points"].tolist() == [3, 3] and batch["class"] == ["1", "1"]


def test_train_csv_has_no_keypoints_and_flips_images():
    ds = PFPascalPairs(FIXTURE, "train_pairs_pf_pascal.csv", image_size=24)
    assert len(ds) == 4
    plain, flipped = ds[0], ds[1]
    assert plain["num_points"] == 0 and not plain["mask"].any() and (plain["source_points"] == 0).all()
    assert flipped["flip"] == 1
    assert torch.equal(flipped["source"], plain["source"].flip(-1))
    assert torch.equal(flipped["target"], plain["target"].flip(-1))
    # the fixture images are dark on the left: after the flip the right is dark
    assert plain["source"][:, :, :4].mean() < plain["source"][:, :, -4:].mean()
    assert flipped["source"][:, :, :4].mean() > flipped["source"][:, :, -4:].mean()


def test_flip_mirrors_keypoints(tmp_path):
    path = _write_csv(
        tmp_path / "pairs.csv",
        ["source_image", "target_image", "class", "XA", "YA", "XB", "YB", "flip"],
        [[f"{IMAGES}/2007_000001.jpg", f"{IMAGES}/2007_000002.jpg", 1, "0;40", "0;10", "4;60", "2;44", f]
         for f in (0, 1)],
    )
    ds = PFPascalPairs(FIXTURE, path)
    plain, flipped = ds[0], ds[1]
    assert torch.equal(flipped["source_points"][:, 0], -plain["source_points"][:, 0])
    assert torch.equal(flipped["source_points"][:, 1], plain["source_points"][:, 1])
    # pixel x -> W - 1 - x: x = 0 becomes 63 of 64
    assert flipped["source_points"][0].tolist() == pytest.approx([1 - 1 / 64, 1 / 48 - 1], abs=1e-6)
    assert torch.equal(flipped["target_points"][:, 0], -plain["target_points"][:, 0])


def test_missing_keypoints_are_masked(tmp_path):
    path = _write_csv(
        tmp_path / "pairs.csv",
        ["source_image", "target_image", "class", "XA", "YA", "XB", "YB"],
        [[f"{IMAGES}/2007_000001.jpg", f"{IMAGES}/2007_000002.jpg", 1, "1;nan;3", "1;2;3", "1;2;nan", "1;2;3"]],
    )
    item = PFPascalPairs(FIXTURE, path)[0]
    assert item["mask"][:3].tolist() == [True, False, False] and item["num_points"] == 1
    assert torch.isfinite(item["source_points"]).all() and torch.isfinite(item["target_points"]).all()


def test_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no_such_root"):
        PFPascalPairs(tmp_path / "no_such_root", "test_pairs_pf_pascal.csv")
    with pytest.raises(ConfigError, match="nope.csv.*not found"):
        PFPascalPairs(FIXTURE, "nope.csv")
    bad = _write_csv(tmp_path / "cols.csv", ["a", "b"], [[1, 2]])
    with pytest.raises(ConfigError, match="cols.csv.*source_image"):
        PFPascalPairs(FIXTURE, bad)
    header = ["source_image", "target_image", "class", "XA", "YA", "XB", "YB"]
    uneven = _write_csv(tmp_path / "uneven.csv", header, [["a.jpg", "b.jpg", 1, "1;2", "1", "1;2", "1;2"]])
    with pytest.raises(ConfigError, match="uneven.csv.*line 2.*2/1/2/2"):
        PFPascalPairs(FIXTURE, uneven)
    words = _write_csv(tmp_path / "words.csv", header, [["a.jpg", "b.jpg", 1, "x", "1", "1", "1"]])
    with pytest.raises(ConfigError, match="line 2: column XA"):
        PFPascalPairs(FIXTURE, words)
    many = ";".join(["1"] * 3)
    with pytest.raises(ConfigError, match="more than max_points=2"):
        PFPascalPairs(FIXTURE, _write_csv(tmp_path / "many.csv", header, [["a", "b", 1, many, many, many, many]]),
                      max_points=2)
    with pytest.raises(ConfigError, match="no pairs"):
        PFPascalPairs(FIXTURE, _write_csv(tmp_path / "empty.csv", header, []))
    missing = _write_csv(tmp_path / "missing.csv", ["source_image", "target_image"], [[f"{IMAGES}/gone.jpg", "x.jpg"]])
    with pytest.raises(ImageError, match="gone.jpg"):
        PFPascalPairs(FIXTURE, missing)[0]
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        PFPascalPairs(FIXTURE, "test_pairs_pf_pascal.csv", image_size=0)


# --- transfer_keypoints -----------------------------------------------------------------------


def test_transfer_identity_returns_the_points():
    pts = torch.tensor([[[0.1, -0.2], [0.5, 0.5], [-0.9, 0.9]]])
    out = transfer_keypoints(identity_grid(1, 16, 12), pts)
    assert out.shape == (1, 3, 2)
    assert torch.allclose(out, pts, atol=1e-6)


def test_transfer_shift_grid_shifts_the_points():
    pts = torch.tensor([[[0.1, -0.2], [0.5, 0.5]], [[0.0, 0.0], [-0.5, 0.25]]])
    shift = torch.tensor([[0.25, 0.0], [-0.1, 0.3]]).view(2, 1, 1, 2)
    out = transfer_keypoints(identity_grid(2, 16, 16) + shift, pts)
    assert torch.allclose(out, pts + shift.view(2, 1, 2), atol=1e-6)


def test_transfer_on_a_dataset_item_and_dtypes():
    batch = next(iter(torch.utils.data.DataLoader(PFPascalPairs(FIXTURE, "test_pairs_pf_pascal.csv", 16), 2)))
    grid = identity_grid(2, 16, 16, dtype=torch.float64)
    out = transfer_keypoints(grid, batch["target_points"])
    assert out.dtype == torch.float64
    # identity: only points beyond the outermost pixel centres move (border padding), by < half a cell
    assert torch.allclose(out.float(), batch["target_points"], atol=1 / 16 + 1e-6)
    assert pck(out, batch["target_points"], batch["mask"], batch["target_size"]).tolist() == [1.0, 1.0]


def test_transfer_checks_shapes():
    with pytest.raises(ValueError, match=r"target_points must have shape \(B, N, 2\)"):
        transfer_keypoints(identity_grid(1, 4, 4), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="batch size 1; got 2"):
        transfer_keypoints(identity_grid(1, 4, 4), torch.zeros(2, 3, 2))


# --- pck --------------------------------------------------------------------------------------


def test_pck_known_answers():
    pts = torch.tensor([[[0.1, -0.2], [0.5, 0.5]]])
    mask = torch.tensor([[True, True]])
    size = torch.tensor([[100, 100]])
    assert pck(pts, pts, mask, size).tolist() == [1.0]
    far = pts.clone()
    far[0, 1, 0] += 0.5  # 0.5 * 100 / 2 = 25 px, beyond 0.1 * 100
    assert pck(far, pts, mask, size).tolist() == [0.5]
    assert pck(far, pts, torch.tensor([[True, False]]), size).tolist() == [1.0]  # the far one is masked
    assert pck(far, pts, mask, size, alpha=0.3).tolist() == [1.0]  # 25 px <= 30 px
    assert math.isnan(pck(pts, pts, torch.tensor([[False, False]]), size).item())


def test_pck_uses_per_axis_pixels_and_the_longer_side():
    # H=100, W=200: threshold 0.1 * 200 = 20 px; x scales by 100 px per unit, y by 50
    truth = torch.zeros(1, 3, 2)
    pred = torch.tensor([[[0.19, 0.0], [0.0, 0.39], [0.0, 0.41]]])  # 19 px, 19.5 px, 20.5 px
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert pck(pred, truth, mask, (100, 200)).item() == pytest.approx(2 / 3)
    batch = torch.cat([pred, pred])
    # second pair H=1000, W=100: threshold 100 px; x is 50 px per unit (9.5 px), y 500 (195, 205 px)
    sizes = torch.tensor([[100, 200], [1000, 100]])
    assert pck(batch, torch.zeros(2, 3, 2), torch.ones(2, 3, dtype=torch.bool), sizes).tolist() == pytest.approx(
        [2 / 3, 1 / 3]
    )


def test_pck_checks_arguments():
    p = torch.zeros(1, 2, 2)
    with pytest.raises(ValueError, match="alpha must be a positive"):
        pck(p, p, torch.ones(1, 2, dtype=torch.bool), (10, 10), alpha=0)
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 2\)"):
        pck(p, p, torch.ones(2, dtype=torch.bool), (10, 10))
    with pytest.raises(ValueError, match="image_size_hw must be"):
        pck(p, p, torch.ones(1, 2, dtype=torch.bool), torch.tensor([[10, 10], [10, 10]]))
