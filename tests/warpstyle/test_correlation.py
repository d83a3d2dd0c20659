import pytest
import torch

from warpstyle.geometry.correlation import correlation_4d, l2_normalize_features, normalize_correlation


def _feats(gen, b=2, c=32, h=8, w=8):
    return l2_normalize_features(torch.randn(b, c, h, w, generator=gen))


def test_shapes(gen):
    f = _feats(gen)
    corr = correlation_4d(f, f)
    assert corr.shape == (2, 8, 8, 8, 8)
    assert normalize_correlation(corr).shape == (2, 64, 8, 8)


def test_identical_inputs_peak_on_diagonal(gen):
    f = _feats(gen)
    corr = correlation_4d(f, f).reshape(2, 64, 64)  # (B, content, geometry)
    best_content = corr.argmax(dim=1)  # for each geometry location
    assert torch.equal(best_content, torch.arange(64).expand(2, 64))
    assert torch.allclose(torch.diagonal(corr, dim1=1, dim2=2), torch.ones(2, 64), atol=1e-5)


def test_shifted_input_peaks_at_the_shift(gen):
    f = _feats(gen, b=1, h=10, w=10)
    shifted = torch.roll(f, shifts=(2, 3), dims=(2, 3))  # geometry[k, l] = content[k - 2, l - 3]
    corr = correlation_4d(f, shifted)[0]  # (Hc, Wc, Hg, Wg)
    for k, l in [(5, 5), (2, 3), (9, 9)]:
        idx = int(corr[:, :, k, l].argmax())
        assert divmod(idx, 10) == ((k - 2) % 10, (l - 3) % 10)


def test_normalize_correlation_unit_norm_and_nonnegative(gen):
    f = _feats(gen)
    n = normalize_correlation(correlation_4d(f, f))
    assert (n >= 0).all()
    assert torch.allclose(n.norm(dim=1), torch.ones(2, 8, 8), atol=1e-5)


def test_exception_names_arguments():
    with pytest.raises(ValueError, match="content must have shape"):
        correlation_4d(torch.zeros(3, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="share batch and channels"):
        correlation_4d(torch.zeros(1, 3, 4, 4), torch.zeros(1, 5, 4, 4))
