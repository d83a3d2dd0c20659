"""The texture-polish issue's two artefact measures (adain.evaluate): each finds what it names."""

import pytest
import torch

from adain.evaluate import SIDES, band_ratio, edge_bands, lattice_energy, lattice_ratio


def _photo_like(h: int = 96, w: int = 128, seed: int = 0) -> torch.Tensor:
    """A smooth gradient with mild noise, (1, 3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.5 - 0.2 * xx * yy])[None]
    return (base + 0.03 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def test_a_coloured_band_stands_out_on_its_side_only():
    clean = _photo_like()
    banded = clean.clone()
    banded[:, 0, :8, :] += 0.25  # an orange-ish stripe along the top
    before, after = edge_bands(clean), edge_bands(banded)
    assert list(after) == list(SIDES)
    assert after["top"] > 5 and before["top"] < 2
    for side in ("left", "right", "bottom"):
        assert after[side] == pytest.approx(before[side], rel=0.3)


def test_band_ratio_measures_a_seam_from_either_side():
    img = _photo_like()
    img[..., :, 56:64] += 0.2  # a bright column band just left of x = 64
    assert band_ratio(img, axis="x", at=64, inward=-1) > 5
    assert band_ratio(img, axis="x", at=64, inward=1) < 3  # the right side does not hold the band
    with pytest.raises(ValueError, match="strips"):
        band_ratio(img, axis="x", at=8, inward=-1)
    with pytest.raises(ValueError, match="axis"):
        band_ratio(img, axis="z", at=0, inward=1)


def test_lattice_ratio_finds_a_two_pixel_grid_and_not_noise():
    clean = _photo_like(seed=1)
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(128), indexing="ij")
    grid = (((yy // 1) % 2) ^ ((xx // 2) % 2)).float() - 0.5  # periods 2 (rows) and 4 (columns)
    latticed = (clean + 0.04 * grid).clamp(0, 1)
    noisy = (clean + 0.04 * torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    assert lattice_ratio(clean, clean) == pytest.approx(1.0)
    assert lattice_ratio(latticed, clean) > 20
    assert lattice_ratio(noisy, clean) < 5


def test_lattice_energy_counts_the_grid_and_also_broad_fine_texture():
    clean = _photo_like(seed=1)
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(128), indexing="ij")
    grid = (((yy // 1) % 2) ^ ((xx // 2) % 2)).float() - 0.5
    latticed = (clean + 0.04 * grid).clamp(0, 1)
    noisy = (clean + 0.04 * torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(clean, 3, 1, 1, count_include_pad=False)
    assert lattice_energy(clean, clean) == pytest.approx(1.0)
    assert lattice_energy(latticed, clean) > 20
    # Energy, unlike the peak's prominence, also rises with noise (fine texture everywhere) ...
    assert lattice_energy(noisy, clean) > 1.5 and lattice_ratio(noisy, clean) < 5
    # ... and falls when the output is smoother than the photo.
    assert lattice_energy(blurred, clean) < 0.5
