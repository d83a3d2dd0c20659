import pytest
import torch

from adain.losses import STYLE_TAPS, content_loss, style_loss


def _feats(seed: int, scale: float = 1.0, shift: float = 0.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, s, s, generator=g) * scale + shift for c, s in ((8, 16), (16, 8), (32, 4), (64, 2))]


def test_style_taps_are_the_papers():
    assert STYLE_TAPS == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def test_content_loss_zero_and_positive():
    a = torch.randn(2, 512, 4, 4)
    assert float(content_loss(a, a.clone())) == 0.0
    b = a + 0.5
    assert torch.isclose(content_loss(a, b), torch.tensor(0.25))  # known answer: MSE of a constant 0.5
    assert content_loss(a.half(), b.half()).dtype == torch.float32


def test_style_loss_zero_for_the_style_itself():
    s = _feats(0)
    assert float(style_loss(s, [t.clone() for t in s])) == 0.0


def test_style_loss_zero_for_same_statistics_other_layout():
    s = _feats(0)
    shuffled = [t.flip(-1).flip(-2) for t in s]  # same channel statistics, different pixels
    assert float(style_loss(shuffled, s)) < 1e-10


def test_style_loss_positive_and_known_answer():
    s = _feats(0)
    shifted = [t + 1.0 for t in s]  # every mean moves by exactly 1, stds unchanged
    assert torch.isclose(style_loss(shifted, s), torch.tensor(4.0), atol=1e-5)
    assert float(style_loss(_feats(1, scale=2.0), s)) > 0


def test_style_loss_gradient_flows():
    o = [t.requires_grad_() for t in _feats(1)]
    style_loss(o, _feats(0)).backward()
    assert all(t.grad is not None and float(t.grad.abs().sum()) > 0 for t in o)


def test_style_loss_layer_count_mismatch():
    with pytest.raises(ValueError, match="output_feats and style_feats must hold the same layers; got 4 and 3"):
        style_loss(_feats(0), _feats(1)[:3])


def test_lattice_loss_sees_a_printed_grid_and_training_removes_it():
    from adain.losses import lattice_loss

    torch.manual_seed(0)
    content = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 68, 68), 5, 1)  # smooth, 64x64
    grid = torch.zeros(1, 1, 64, 64)
    grid[..., ::2, :] = 0.06
    grid[..., ::4] += 0.04
    assert float(lattice_loss(content, content)) == 0.0
    assert float(lattice_loss(content + grid, content)) > 1.0
    # A smooth change of the same strength is not a lattice.
    assert float(lattice_loss(content + 0.1 * torch.linspace(0, 1, 64), content)) < 0.05
    out = (content + grid).clone().requires_grad_(True)
    opt = torch.optim.Adam([out], lr=0.01)
    first = float(lattice_loss(out, content))
    for _ in range(30):
        opt.zero_grad()
        lattice_loss(out, content).backward()
        opt.step()
    assert float(lattice_loss(out, content)) < 0.5 * first
    with pytest.raises(ValueError, match="same shape"):
        lattice_loss(content, content[..., :32])
