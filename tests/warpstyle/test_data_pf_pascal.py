"""PF-PASCAL loader and metrics on a tiny fixture written in the real layout."""

import csv

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from adain.base.errors import ConfigError
from warpstyle.training.data.pf_pascal import PFPascalPairs, pck, transfer_keypoints
from warpstyle.fields.warp import identity_grid


@pytest.fixture()
def pf_root(tmp_path):
    root = tmp_path / "pf"
    jpeg = root / "PF-dataset-PASCAL" / "JPEGImages"
    ann = root / "PF-dataset-PASCAL" / "Annotations" / "aeroplane"
    jpeg.mkdir(parents=True)
    ann.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (h, w) in {"2007_000001": (48, 64), "2007_000002": (40, 60)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(jpeg / f"{name}.jpg")
        kps = np.array([[10.0, 12.0], [31.5, 23.5], [np.nan, np.nan]])
        scipy.io.savemat(ann / f"{name}.mat", {"kps": kps})
    with open(root / "test_pairs_pf_pascal.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source_image", "target_image", "class", "XA", "YA", "XB", "YB"])
        w.writerow(["PF-dataset-PASCAL/JPEGImages/2007_000001.jpg", "PF-dataset-PASCAL/JPEGImages/2007_000002.jpg", "1",
                    "10;31.5", "12;23.5", "8;29.5", "10;19.5"])
    with open(root / "train_pairs_pf_pascal.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source_image", "target_image", "class", "flip"])
        w.writerow(["PF-dataset-PASCAL/JPEGImages/2007_000001.jpg", "PF-dataset-PASCAL/JPEGImages/2007_000002.jpg", "1", "0"])
    return root


def test_item_layout_and_normalised_points(pf_root):
    ds = PFPascalPairs(pf_root, "test_pairs_pf_pascal.csv", image_size=32)
    item = ds[0]
    assert item["source"].shape == (3, 32, 32) and item["num_points"] == 2
    # x = 31.5 is the centre of a 64 px wide image -> 0 in normalised coordinates
    assert item["source_points"][1, 0] == pytest.approx(0.0, abs=1e-6)
    assert item["mask"].tolist()[:3] == [True, True, False]
    assert tuple(item["source_size"].tolist()) == (48, 64)


def test_train_csv_without_keypoints(pf_root):
    item = PFPascalPairs(pf_root, "train_pairs_pf_pascal.csv")[0]
    assert item["num_points"] == 0


def test_missing_csv(pf_root):
    with pytest.raises(ConfigError, match="nope.csv"):
        PFPascalPairs(pf_root, "nope.csv")


def test_transfer_and_pck_known_answers():
    pts = torch.tensor([[[0.1, -0.2], [0.5, 0.5]]])
    assert torch.allclose(transfer_keypoints(identity_grid(1, 16, 16), pts), pts, atol=1e-5)
    shift = identity_grid(1, 16, 16) + torch.tensor([0.25, 0.0])
    assert torch.allclose(transfer_keypoints(shift, pts), pts + torch.tensor([0.25, 0.0]), atol=1e-5)
    mask = torch.tensor([[True, True]])
    size = torch.tensor([[100, 100]])
    assert float(pck(pts, pts, mask, size)[0]) == 1.0
    far = pts.clone()
    far[0, 1] += 0.5  # 25 px away at 100 px, beyond 0.1 * 100
    assert float(pck(far, pts, mask, size)[0]) == 0.5
    assert float(pck(far, pts, torch.tensor([[True, False]]), size)[0]) == 1.0


def test_eval_cli_reports_pck(pf_root, capsys):
    from warpstyle.app.cli import main

    with pytest.raises(SystemExit) as e:
        main(["eval-warper", "--pf-pascal-root", str(pf_root), "--pf-pascal-csv", "test_pairs_pf_pascal.csv"])
    assert e.value.code == 0 and "PCK@0.1" in capsys.readouterr().out


def test_eval_cli_align_reaches_pf_pascal(pf_root, capsys, monkeypatch):
    import warpstyle.geometry.warper as warper_module
    from warpstyle.app.cli import main

    sizes = []
    real = warper_module.search_similarity
    monkeypatch.setattr(warper_module, "search_similarity",
                        lambda enc, c, g, **k: sizes.append((tuple(c.shape[-2:]), tuple(g.shape[-2:]))) or real(enc, c, g, **k))
    with pytest.raises(SystemExit) as e:
        main(["eval-warper", "--pf-pascal-root", str(pf_root), "--pf-pascal-csv", "test_pairs_pf_pascal.csv", "--align"])
    assert e.value.code == 0 and "PCK@0.1" in capsys.readouterr().out
    # searched at the original aspect ratios, not on the squared 256 px images
    assert sizes and all(c != (256, 256) or g != (256, 256) for c, g in sizes)
