import csv

import pytest
import torch

from adain.base.storage.checkpoint import load_checkpoint
from adain.base.config import load_config
from tests.train_fixtures import make_image_folder
from warpstyle.training.config import WarperTrainConfig
from warpstyle.evaluation.evaluate import evaluate_synthetic
from warpstyle.training.train import train_warper
from warpstyle.geometry.warper import Warper


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("wdata")
    return make_image_folder(root / "photos", count=4, seed=5), make_image_folder(root / "paint", count=3, seed=6, corrupt=False)


def _cfg(folders, out, **kw):
    photos, paint = folders
    base = dict(image_dir=str(photos), texture_dir=str(paint), output_dir=str(out), iterations=3, batch_size=2,
                workers=0, log_every=1, checkpoint_every=2, bf16=False, texture_prob=1.0, load_size=256,
                smooth_weight=0.1, fold_weight=0.1, pair_dirs=f"{folders[0]},{folders[1]}", pair_batch_size=2,
                pair_k=2, pair_texture_prob=0.5, pair_max_similarity=1.01)
    return load_config(WarperTrainConfig, None, {**base, **kw})


def test_short_run_loads_with_from_pretrained(folders, tmp_path):
    r = train_warper(_cfg(folders, tmp_path / "w"), progress=False)
    assert r.iteration == 3 and r.weights.is_file() and r.weights.name == "warper.safetensors"
    assert r.losses["field_l1"] > 0 and r.losses["match"] < 0  # minus the summed cosines
    warper = Warper.from_pretrained(r.weights)
    assert warper.estimate(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), method="network").grid.shape == (1, 16, 16, 2)
    warper2 = Warper.from_pretrained(r.checkpoint)  # a training checkpoint loads too
    assert torch.allclose(warper2.regressor.heads[0].out.weight, warper.regressor.heads[0].out.weight, atol=1e-3)


def test_resume_continues_the_count(folders, tmp_path):
    train_warper(_cfg(folders, tmp_path / "r", iterations=2), progress=False)
    r = train_warper(_cfg(folders, tmp_path / "r", iterations=3), resume="auto", progress=False)
    assert r.iteration == 3
    assert load_checkpoint(r.checkpoint, expected_format="warpstyle.train")["iteration"] == 3
    with open(tmp_path / "r" / "losses.csv") as f:
        assert [row["iteration"] for row in csv.DictReader(f)] == ["1", "2", "3"]


def _loss_rows(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_resume_matches_a_straight_run(folders, tmp_path):
    # N iterations straight == N/2, then resume for N/2: same losses (CPU, fp32) and same weights.
    # N = 2 at batch 1 keeps it to 4 small steps (the 256 px crop is fixed); texture augmentation stays on,
    # since its loader and RNG draws must resume too.
    straight = train_warper(_cfg(folders, tmp_path / "a", iterations=2, batch_size=1), progress=False)
    train_warper(_cfg(folders, tmp_path / "b", iterations=1, batch_size=1), progress=False)
    resumed = train_warper(_cfg(folders, tmp_path / "b", iterations=2, batch_size=1), resume="auto", progress=False)
    assert resumed.iteration == 2
    a, b = _loss_rows(tmp_path / "a" / "losses.csv"), _loss_rows(tmp_path / "b" / "losses.csv")
    assert [r["iteration"] for r in b] == [1, 2] and len(a) == 2
    for ra, rb in zip(a, b):
        for key in ("loss", "field_l1", "match", "lr"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-7), (ra["iteration"], key)
    sa = load_checkpoint(straight.checkpoint, expected_format="warpstyle.train")["model"]
    sb = load_checkpoint(resumed.checkpoint, expected_format="warpstyle.train")["model"]
    assert sa.keys() == sb.keys()
    assert all(torch.allclose(sa[k], sb[k], rtol=1e-4, atol=1e-6) for k in sa)


def test_the_search_teaches_mined_pairs(folders, tmp_path, monkeypatch):
    import numpy as np

    import warpstyle.training.train as train_module
    from adain.base.errors import ConfigError
    from warpstyle.geometry.align import Similarity, compose_similarity
    from warpstyle.fields.warp import identity_grid

    # one pair with a target and one without; the untrained regressor starts at the identity field, so the
    # first step's teacher loss is the target's mean distance from it, over the one pair that has a target
    monkeypatch.setattr(train_module, "teacher_similarities",
                        lambda pairs, enc, indices, **k: np.array([[0.5, 0.2, -0.1], [np.nan] * 3]))
    train_warper(_cfg(folders, tmp_path / "t", iterations=2, teacher_weight=1.0, teacher_pairs=2), progress=False)
    rows = _loss_rows(tmp_path / "t" / "losses.csv")
    ident = identity_grid(1, 16, 16)
    want = (compose_similarity([Similarity(0.5, 0.0, (0.2, -0.1))], ident, (256, 256), (256, 256)) - ident).abs().mean()
    assert len(rows) == 2 and rows[0]["teacher"] == pytest.approx(float(want), rel=1e-4)
    assert rows[1]["teacher"] != rows[0]["teacher"]  # the step moved the field
    with pytest.raises(ConfigError, match="teacher_pairs"):
        _cfg(folders, tmp_path / "u", teacher_weight=1.0, teacher_pairs=1)
    with pytest.raises(ConfigError, match="teacher_weight"):
        _cfg(folders, tmp_path / "u", teacher_weight=1.0, pair_batch_size=0)


def test_a_run_without_a_teacher_keeps_the_older_log_columns(folders, tmp_path):
    # logs written before the teacher existed have no teacher column: resuming them must keep their rows
    train_warper(_cfg(folders, tmp_path / "o", iterations=1), progress=False)
    with open(tmp_path / "o" / "losses.csv") as f:
        assert "teacher" not in f.readline()
    train_warper(_cfg(folders, tmp_path / "o", iterations=2), resume="auto", progress=False)
    assert [r["iteration"] for r in _loss_rows(tmp_path / "o" / "losses.csv")] == [1, 2]
