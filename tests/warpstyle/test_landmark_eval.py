import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from adain.base.encoder.vgg import VGGEncoder
from warpstyle.app.cli import main
from warpstyle.evaluation.face_landmarks import LandmarkCache
from warpstyle.evaluation.landmark_eval import evaluate_landmarks, face_pairs, format_landmark_table
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.geometry.warper import Warper


class _FakeLandmarker:
    """Stands in for dlib: a fixed 68-point pattern, scaled to the image, in files named face*."""

    name = "fake"

    def __init__(self):
        self.calls = 0

    def __call__(self, rgb):
        self.calls += 1
        h, w = rgb.shape[:2]
        t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        return np.stack([w / 2 + 0.3 * w * np.cos(t), h / 2 + 0.35 * h * np.sin(t)], 1)


def _folders(tmp_path, samples):
    c, g = tmp_path / "photos", tmp_path / "geometry"
    c.mkdir(), g.mkdir()
    src = samples / "content" / "kodim04.jpg"
    shutil.copy(src, c / "face_a.jpg")
    ImageOps.mirror(Image.open(src)).save(g / "face_b.jpg")
    ImageOps.flip(Image.open(src)).resize((200, 240)).save(g / "face_c.jpg")
    return c, g


def test_face_pairs_cache_and_evaluation_without_dlib(tmp_path, samples):
    c, g = _folders(tmp_path, samples)
    fake = _FakeLandmarker()
    cache = LandmarkCache(tmp_path / "lm.json", fake)
    pairs, counts = face_pairs([c], [g], cache, split="all")
    assert counts == {"content_images": 1, "content_faces": 1, "geometry_images": 2, "geometry_faces": 2,
                      "all_pairs": 2, "pairs": 2}
    assert fake.calls == 3 and (tmp_path / "lm.json").is_file()
    # a second cache reads the file: no detector needed
    again, _ = face_pairs([c], [g], LandmarkCache(tmp_path / "lm.json"), split="all")
    assert [p.geometry.name for p in again] == ["face_b.jpg", "face_c.jpg"]
    assert face_pairs([c], [g], cache, split="all", max_pairs=1)[1]["pairs"] == 1
    # the fake faces span 0.6-0.7 of each image: kept at min_face 0.5, all dropped at 0.8
    assert face_pairs([c], [g], cache, split="all", min_face=0.5)[1]["pairs"] == 2
    assert face_pairs([c], [g], cache, split="all", min_face=0.8)[1]["content_faces"] == 0
    # face_b's landmarks sit where the content's do (overshoot 0); squeezed face_c's frame, scaled to
    # the content's face, is wider than the content: only face_b lines up inside the frame
    kept, in_frame = face_pairs([c], [g], cache, split="all", max_overshoot=0.01)
    assert [p.geometry.name for p in kept] == ["face_b.jpg"] and in_frame["in_frame_pairs"] == 1
    assert in_frame["all_pairs"] == 2 and "in_frame_pairs" not in counts

    torch.manual_seed(0)
    warper = Warper(VGGEncoder(), WarpRegressor()).eval().requires_grad_(False)  # untrained: identity
    report = evaluate_landmarks(warper, pairs, refine_steps=[2, 1], size=64)
    rows = report["rows"]
    assert list(rows) == ["identity", "similarity", "warper", "refine 1", "refine 2", "match"]
    # the fake landmarks sit at the same relative place in every image, so identity is exact
    assert rows["identity"]["mean_error"] < 0.01 and rows["identity"]["pck@0.02"] == 1.0
    # face_c is squeezed to another aspect ratio, which a similarity cannot follow exactly
    assert 0 < rows["similarity"]["mean_error"] < 0.05 and "fold" not in rows["similarity"]
    assert rows["warper"]["mean_error"] == pytest.approx(rows["identity"]["mean_error"], abs=1e-6)
    assert rows["identity"]["fold"] == 0.0 and rows["refine 2"]["seconds"] > 0
    per_pair = report["per_pair"]
    assert [(Path(p["content"]).name, Path(p["geometry"]).name) for p in per_pair] == [("face_a.jpg", "face_b.jpg"),
                                                                                     ("face_a.jpg", "face_c.jpg")]
    assert per_pair[0]["overshoot"] < 1e-6 < 0.05 < per_pair[1]["overshoot"]
    # each pair's own figures: face_b's landmarks are fitted exactly, squeezed face_c's are not
    assert per_pair[0]["rows"]["similarity"]["mean_error"] < 1e-6 < per_pair[1]["rows"]["similarity"]["mean_error"]
    for name in rows:  # the pairs' errors average to the row's (68 landmarks each)
        for key in ("mean_error", "pck@0.05"):
            assert np.mean([p["rows"][name][key] for p in per_pair]) == pytest.approx(rows[name][key])
    table = format_landmark_table(report)
    assert "similarity" in table and "refine 2" in table
    import warpstyle.geometry.warper as warper_module
    from warpstyle.geometry.align import Similarity

    # a stand-in similarity (a 0.8 zoom) shows that the alignment reaches the scored field
    orig = warper_module.search_similarity
    warper_module.search_similarity = lambda *a, **k: Similarity(0.8, 0.0, (0.0, 0.0))
    try:
        aligned = evaluate_landmarks(warper, pairs, size=64, align=True, refine_steps=[1])
    finally:
        warper_module.search_similarity = orig
    assert aligned["settings"]["align"] is True
    assert (report["settings"]["refine_view"], aligned["settings"]["refine_view"]) == ("content", "aligned")
    arows = aligned["rows"]
    assert arows["warper"]["mean_error"] > rows["warper"]["mean_error"] + 0.01
    # the refinement starts from the aligned field (one small step), not from the plain one
    assert arows["refine 1"]["mean_error"] == pytest.approx(arows["warper"]["mean_error"], abs=0.01)
    assert arows["refine 1"]["seconds"] >= arows["warper"]["seconds"] > 0


def test_landmark_mode_without_the_extra_is_a_one_line_error(tmp_path, samples, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "dlib", None)  # import dlib -> ImportError
    c, g = _folders(tmp_path, samples)
    with pytest.raises(SystemExit) as e:
        main(["eval-warper", "--faces-content", str(c), "--faces-geometry", str(g)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "warpstyle[eval]" in err[0]


def test_landmark_mode_cli_with_dlib(tmp_path, samples, capsys):
    pytest.importorskip("dlib")
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models not installed")
    c, g = _folders(tmp_path, samples)
    cache = tmp_path / "cache.json"
    args = ["eval-warper", "--faces-content", str(c), "--faces-geometry", str(g), "--split", "all",
            "--refine", "2", "--max-pairs", "1", "--max-overshoot", "100", "--size", "96", "--landmark-cache", str(cache),
            "--json", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr().out
    assert e.value.code == 0, out
    assert "similarity" in out and "refine 2" in out and "non-commercial" in out
    lm = json.loads((tmp_path / "r.json").read_text())["landmarks"]
    assert lm["pairs"] == 1 and lm["counts"]["content_faces"] == 1
    n = lm["counts"]["all_pairs"]  # every pair lies within a 100-half-extent overshoot
    assert lm["counts"]["in_frame_pairs"] == n and f"{n} pairs, {n} whose fitted similarity maps" in out
    assert len(lm["per_pair"]) == 1 and set(lm["per_pair"][0]["rows"]) == set(lm["rows"])
    assert lm["rows"]["similarity"]["mean_error"] < lm["rows"]["identity"]["mean_error"]
    assert len(json.loads(cache.read_text())["entries"]) == 3
