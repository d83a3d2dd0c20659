import math

import torch

from warpstyle.losses import fold_loss, jacobian_determinant, multi_tap_feature_loss, smoothness_loss
from warpstyle.warp import identity_grid


def test_identity_has_unit_determinant_and_no_fold_penalty():
    g = identity_grid(2, 16, 16)
    assert torch.allclose(jacobian_determinant(g), torch.ones(2, 15, 15), atol=1e-5)
    assert float(fold_loss(g)) == 0.0
    assert float(smoothness_loss(g + 0.1)) < 1e-6  # a translation is smooth


def test_a_mirrored_field_folds():
    g = identity_grid(1, 16, 16)
    mirrored = g.clone()
    mirrored[..., 0] = -g[..., 0]
    assert torch.allclose(jacobian_determinant(mirrored), -torch.ones(1, 15, 15), atol=1e-5)
    assert math.isclose(float(fold_loss(mirrored)), 1.1, rel_tol=1e-5)


def test_feature_matching_is_zero_for_the_true_field():
    torch.manual_seed(0)
    f = torch.rand(1, 8, 16, 16) + 0.1
    shifted = torch.roll(f, shifts=2, dims=-1)  # geometry = content moved right by 2 cells
    feats_c = {"a": f, "b": torch.nn.functional.avg_pool2d(f, 2)}
    g = identity_grid(1, 16, 16)
    true = g.clone()
    true[..., 0] -= 2 * 2 / 16  # sample 2 cells to the left
    ident = multi_tap_feature_loss({"a": f}, {"a": shifted}, g)
    right = multi_tap_feature_loss({"a": f}, {"a": shifted}, true)
    assert float(right) < 0.1 * float(ident)
    both = multi_tap_feature_loss(feats_c, {"a": f, "b": feats_c["b"]}, g)  # identical features, any tap size
    assert float(both) < 1e-5
