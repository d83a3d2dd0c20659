import numpy as np
import pytest
import torch

from warpstyle.evaluation.landmarks import (
    apply_similarity,
    fit_similarity,
    landmark_errors,
    map_landmarks,
    normalized_to_pixels,
    pck_summary,
    pixels_to_normalized,
    similarity_overshoot,
)
from warpstyle.fields.warp import identity_grid


def _points(n=68, seed=0):
    return np.random.default_rng(seed).uniform(20, 180, size=(n, 2))


def test_similarity_recovers_a_known_transform():
    src = _points()
    angle, s, t = 0.4, 1.7, np.array([12.0, -5.0])
    r = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = s * src @ r.T + t
    s2, r2, t2 = fit_similarity(src, dst)
    assert s2 == pytest.approx(s) and np.allclose(r2, r) and np.allclose(t2, t)
    assert np.allclose(apply_similarity(src, s2, r2, t2), dst)


def test_similarity_is_least_squares_and_never_reflects():
    src = _points(seed=1)
    mirrored = src * np.array([-1.0, 1.0])
    s, r, _ = fit_similarity(src, mirrored)
    assert np.linalg.det(r) == pytest.approx(1.0)
    noisy = src + np.random.default_rng(2).normal(0, 3, src.shape)
    s, r, t = fit_similarity(src, noisy)
    best = np.linalg.norm(apply_similarity(src, s, r, t) - noisy)
    for ds in (0.99, 1.01):  # perturbing the scale only makes the fit worse
        assert np.linalg.norm(apply_similarity(src, s * ds, r, t) - noisy) > best


def test_similarity_rejects_bad_input():
    with pytest.raises(ValueError, match="N >= 2"):
        fit_similarity(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="coincide"):
        fit_similarity(np.ones((5, 2)), _points(5))


def test_pck_and_mean_error_known_answers():
    pred = np.array([[0.0, 0.0], [3.0, 4.0], [30.0, 40.0]])
    true = np.zeros((3, 2))
    e = landmark_errors(pred, true, (50, 100))  # longer side 100
    assert e.tolist() == pytest.approx([0.0, 0.05, 0.5])
    out = pck_summary(e)
    assert out == pytest.approx({"pck@0.02": 1 / 3, "pck@0.05": 2 / 3, "pck@0.1": 2 / 3, "mean_error": 0.55 / 3})
    assert np.isnan(pck_summary([])["mean_error"])


def test_pixel_normalised_round_trip_and_centres():
    p = _points(10)
    assert np.allclose(normalized_to_pixels(pixels_to_normalized(p, (120, 200)), (120, 200)), p)
    assert pixels_to_normalized(np.array([[0.0, 0.0]]), (2, 2)).tolist() == [[-0.5, -0.5]]


def test_map_landmarks_identity_scales_between_image_sizes():
    geo = np.array([[5.0, 3.0], [94.0, 46.0], [50.0, 20.0]])  # inside the field's outer cell centres
    out = map_landmarks(identity_grid(1, 64, 64), geo, (50, 100), (100, 200))
    # identity in normalised coordinates: the same relative position in the bigger content
    assert np.allclose(out, (geo + 0.5) * 2 - 0.5, atol=1e-6)


def test_map_landmarks_follows_a_translation():
    shift = torch.tensor([0.5, 0.0])  # half the half-width: a quarter of the image to the right
    grid = identity_grid(1, 32, 32) + shift
    geo = np.array([[40.0, 40.0]])
    out = map_landmarks(grid, geo, (100, 100), (100, 100))
    assert np.allclose(out, [[65.0, 40.0]], atol=1e-4)


def test_similarity_overshoot_known_answers():
    pts = _points()
    hw = (200, 200)
    assert similarity_overshoot(pts, pts, hw, hw) == pytest.approx(0.0, abs=1e-9)
    centre = np.array([99.5, 99.5])  # pixel centres at integers: the frame's centre
    # content face twice the geometry's: the geometry's frame maps to twice the content's
    assert similarity_overshoot(pts, (pts - centre) * 2 + centre, hw, hw) == pytest.approx(1.0)
    # content face half the geometry's: inside
    assert similarity_overshoot(pts, (pts - centre) * 0.5 + centre, hw, hw) == 0.0
    # shifted by a quarter of the width: the right edge lands half a half-width beyond
    assert similarity_overshoot(pts, pts + [50.0, 0.0], hw, hw) == pytest.approx(0.5)
    # a geometry frame 100 px wider, same points: its right edge lands a whole half-width beyond
    assert similarity_overshoot(pts, pts, (200, 300), (200, 200)) == pytest.approx(1.0)
    # non-square frames, sizes (H, W): a landscape geometry 40 x 120 on a portrait content 100 x 60, same
    # points: the geometry's right edge (119.5) lies 60 px beyond the content's (59.5), two half-widths
    # of 30 px; had either size been read as (W, H), the answer would be 0.4
    p2 = np.array([[10.0, 10.0], [40.0, 12.0], [20.0, 30.0]])
    assert similarity_overshoot(p2, p2, (40, 120), (100, 60)) == pytest.approx(2.0)
    assert similarity_overshoot(p2, p2, (120, 40), (100, 60)) == pytest.approx(0.4)
