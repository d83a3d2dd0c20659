import torch

from warpstyle.training.data.synthetic import SyntheticWarpSpec, make_synthetic_pair, random_warp_params, synthetic_field
from warpstyle.fields.warp import apply_warp, identity_grid


def test_zero_ranges_give_identity(gen):
    spec = SyntheticWarpSpec(scale_min=1, scale_max=1, rotation_deg=0, shear_deg=0, translation=0, tps_jitter=0)
    p = random_warp_params(2, spec, gen)
    assert torch.allclose(synthetic_field(p, (8, 8)), identity_grid(2, 8, 8), atol=1e-5)


def test_pure_translation_known_answer(gen):
    spec = SyntheticWarpSpec(scale_min=1, scale_max=1, rotation_deg=0, shear_deg=0, translation=0, tps_jitter=0)
    p = random_warp_params(1, spec, gen)
    p.affine[0, :, 2] = torch.tensor([0.25, -0.5])
    f = synthetic_field(p, (4, 4))
    assert torch.allclose(f - identity_grid(1, 4, 4), torch.tensor([0.25, -0.5]).expand(1, 4, 4, 2), atol=1e-5)


def test_pair_ground_truth_reproduces_b(gen):
    a = torch.rand(2, 3, 32, 32, generator=gen)
    p = random_warp_params(2, SyntheticWarpSpec(), gen)
    b, field = make_synthetic_pair(a, p)
    # warping A by the ground-truth field reproduces B, in particular where both are defined
    inside = (field.abs() <= 1).all(-1)
    assert torch.allclose(apply_warp(a, field)[inside.unsqueeze(1).expand(-1, 3, -1, -1)],
                          b[inside.unsqueeze(1).expand(-1, 3, -1, -1)], atol=1e-5)
    assert field.shape == (2, 32, 32, 2)


def test_reproducible_with_seed():
    p1 = random_warp_params(3, SyntheticWarpSpec(), torch.Generator().manual_seed(5))
    p2 = random_warp_params(3, SyntheticWarpSpec(), torch.Generator().manual_seed(5))
    assert torch.equal(p1.affine, p2.affine) and torch.equal(p1.tps_offsets, p2.tps_offsets)
