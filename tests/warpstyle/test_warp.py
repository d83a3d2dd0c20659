import pytest
import torch

from warpstyle.fields.warp import (
    apply_warp,
    grid_to_pixel_flow,
    identity_grid,
    pixel_flow_to_grid,
    resize_field,
    scale_field,
    smooth_field,
)


def test_identity_grid_pixel_centres():
    g = identity_grid(1, 2, 4)
    assert g.shape == (1, 2, 4, 2)
    assert torch.allclose(g[0, 0, :, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(g[0, :, 0, 1], torch.tensor([-0.5, 0.5]))


@pytest.mark.parametrize("padding", ["reflection", "border"])
def test_identity_leaves_image_unchanged(padding, gen):
    x = torch.rand(2, 3, 9, 13, generator=gen)
    assert torch.allclose(apply_warp(x, identity_grid(2, 9, 13), padding=padding), x, atol=1e-5)


def test_resized_identity_is_identity_at_any_size(gen):
    x = torch.rand(1, 3, 20, 30, generator=gen)
    g = resize_field(identity_grid(1, 16, 16), (20, 30))
    assert torch.allclose(apply_warp(x, g), x, atol=1e-5)


def test_resizing_keeps_an_affine_field_exact_and_unfolded():
    # a strong zoom (content = 0.25 * geometry + shift): PyTorch's cubic alone would ripple and fold it
    from warpstyle.fields.metrics import fold_fraction

    a = torch.tensor([[[0.25, 0.02], [-0.03, 0.3]], [[1.4, -0.1], [0.05, 0.9]]])  # one per batch element
    t = torch.tensor([[-0.4, 0.3], [0.1, 0.0]])

    def zoom(h, w):
        return torch.einsum("bij,bhwj->bhwi", a, identity_grid(2, h, w)) + t[:, None, None]
    out = resize_field(zoom(16, 12), (200, 150))
    assert torch.allclose(out, zoom(200, 150), atol=1e-5)
    assert float(fold_fraction(out).max()) == 0.0
    # anything else is still interpolated smoothly through the cell centres
    g = zoom(16, 12) + 0.02 * torch.sin(identity_grid(2, 16, 12) * 7)
    up = resize_field(g, (32, 24))
    assert torch.allclose(resize_field(up, (16, 12)), g, atol=0.01)


def test_integer_shift_moves_pixels(gen):
    x = torch.rand(1, 1, 8, 8, generator=gen)
    g = identity_grid(1, 8, 8) + torch.tensor([2 / 8, 0.0])  # sample one pixel to the right
    out = apply_warp(x, g, padding="border")
    assert torch.allclose(out[..., :, :-1], x[..., :, 1:], atol=1e-5)


def test_strength_scales_displacement(gen):
    g = identity_grid(1, 6, 6) + 0.1 * torch.rand(1, 6, 6, 2, generator=gen)
    ident = identity_grid(1, 6, 6)
    assert torch.allclose(scale_field(g, 0.0), ident)
    assert torch.allclose(scale_field(g, 0.5) - ident, 0.5 * (g - ident), atol=1e-6)


def test_smoothing_keeps_constant_displacement():
    g = identity_grid(1, 8, 8) + torch.tensor([0.1, -0.2])
    assert torch.allclose(smooth_field(g, 1.5), g, atol=1e-5)


def test_no_holes_with_large_displacement(gen):
    x = torch.rand(1, 3, 8, 8, generator=gen) * 0.5 + 0.25
    g = identity_grid(1, 8, 8) * 3.0  # samples far outside the content
    for padding in ("reflection", "border"):
        out = apply_warp(x, g, padding=padding)
        assert out.min() >= 0.25 - 1e-5  # no black (zero) fill


def test_exceptions():
    with pytest.raises(ValueError, match="padding must be"):
        apply_warp(torch.rand(1, 3, 4, 4), identity_grid(1, 4, 4), padding="zeros")
    with pytest.raises(ValueError, match="field must have shape"):
        apply_warp(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, 3))


def test_gradcheck_apply_warp():
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    g = (identity_grid(1, 4, 4, dtype=torch.float64) * 0.9).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: apply_warp(a, b, padding="border"), (x, g), eps=1e-6, atol=1e-4)


# --- grid <-> pixel flow ----------------------------------------------------------------------


def test_identity_grid_is_zero_flow():
    flow = grid_to_pixel_flow(identity_grid(2, 6, 9))
    assert flow.shape == (2, 6, 9, 2)
    assert flow.abs().max() < 1e-5


def test_shift_of_two_over_width_is_one_pixel():
    h, w = 6, 10
    grid = identity_grid(1, h, w) + torch.tensor([2.0 / w, 0.0])
    flow = grid_to_pixel_flow(grid)
    assert torch.allclose(flow[..., 0], torch.ones(1, h, w), atol=1e-5)
    assert torch.allclose(flow[..., 1], torch.zeros(1, h, w), atol=1e-5)
    # and in y: +2/H is one pixel down, independent of the width
    flow_y = grid_to_pixel_flow(identity_grid(1, h, w) + torch.tensor([0.0, 2.0 / h]))
    assert torch.allclose(flow_y[..., 1], torch.ones(1, h, w), atol=1e-5)


def test_pixel_flow_round_trip():
    g = torch.Generator().manual_seed(0)
    grid = torch.rand(2, 5, 8, 2, generator=g) * 2 - 1
    assert torch.allclose(pixel_flow_to_grid(grid_to_pixel_flow(grid)), grid, atol=1e-5)
    flow = torch.randn(2, 5, 8, 2, generator=g) * 4
    assert torch.allclose(grid_to_pixel_flow(pixel_flow_to_grid(flow)), flow, atol=1e-5)
    assert pixel_flow_to_grid(flow.double()).dtype == torch.float64


def test_pixel_flow_known_corner():
    # zero flow at pixel (0, 0) of a 4 x 8 field is that pixel's centre: (1/8 - 1, 1/4 - 1)
    grid = pixel_flow_to_grid(torch.zeros(1, 4, 8, 2))
    assert grid[0, 0, 0].tolist() == pytest.approx([-0.875, -0.75])


def test_grid_conversions_check_shape():
    with pytest.raises(ValueError, match=r"grid must have shape \(B, H, W, 2\)"):
        grid_to_pixel_flow(torch.zeros(4, 4, 2))
    with pytest.raises(TypeError, match="flow must be a floating tensor"):
        pixel_flow_to_grid(torch.zeros(1, 4, 4, 2, dtype=torch.int64))
