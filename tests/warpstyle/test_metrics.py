"""Known answers for warpstyle.fields.metrics: folds of a warp field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from warpstyle.fields.metrics import fold_fraction
from warpstyle.fields.warp import identity_grid


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
