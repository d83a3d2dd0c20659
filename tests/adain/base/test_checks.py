import pytest
import torch

from adain.base.checks import check_image, check_range, check_shape


def test_smoke():
    check_shape(torch.zeros(2, 512, 4, 5), "feat", ("B", 512, "H", "W"))
    check_image(torch.rand(2, 3, 8, 8), "content")
    check_image(torch.rand(1, 1, 8, 8), "mask", channels=1)
    check_range(0.5, "alpha", 0.0, 1.0)
    check_range(0, "alpha", 0.0, 1.0)  # ends are inclusive
    check_range(1, "alpha", 0.0, 1.0)


def test_check_shape_names_argument_expectation_and_shape():
    with pytest.raises(ValueError) as info:
        check_shape(torch.zeros(3, 4, 4), "content", ("B", 3, "H", "W"))
    assert str(info.value) == "content must have shape (B, 3, H, W); got (3, 4, 4)"


def test_check_shape_wrong_size():
    with pytest.raises(ValueError, match=r"^feat must have shape \(B, 512, H, W\); got \(1, 256, 4, 4\)$"):
        check_shape(torch.zeros(1, 256, 4, 4), "feat", ("B", 512, "H", "W"))


def test_check_shape_not_a_tensor():
    with pytest.raises(TypeError) as info:
        check_shape([[1.0]], "style", ("B", 3, "H", "W"))
    assert str(info.value) == "style must be a torch.Tensor of shape (B, 3, H, W); got list"


def test_check_image_dtype():
    with pytest.raises(TypeError) as info:
        check_image(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "content")
    assert "content must be a floating-point tensor in [0, 1]; got dtype torch.uint8" in str(info.value)


def test_check_image_channels():
    with pytest.raises(ValueError, match=r"mask must have shape \(B, 1, H, W\); got \(1, 3, 4, 4\)"):
        check_image(torch.rand(1, 3, 4, 4), "mask", channels=1)


def test_check_image_empty():
    with pytest.raises(ValueError, match=r"content must be non-empty; got shape \(1, 3, 0, 4\)"):
        check_image(torch.rand(1, 3, 0, 4), "content")


def test_check_image_0_255_hint():
    x = torch.rand(1, 3, 4, 4) * 255
    x[0, 0, 0, 0] = 255.0
    with pytest.raises(ValueError) as info:
        check_image(x, "content")
    msg = str(info.value)
    assert msg.startswith("content must have values in [0, 1]; got range [")
    assert msg.endswith("255] (did you pass 0..255 pixels?)")


def test_check_image_slightly_out_of_range_no_hint():
    x = torch.full((1, 3, 2, 2), 1.2)
    with pytest.raises(ValueError) as info:
        check_image(x, "style")
    assert str(info.value) == "style must have values in [0, 1]; got range [1.2, 1.2]"


def test_check_image_negative():
    with pytest.raises(ValueError, match=r"content must have values in \[0, 1\]; got range \[-0\.5, -0\.5\]$"):
        check_image(torch.full((1, 3, 2, 2), -0.5), "content")


def test_check_image_tolerates_resampling_overshoot():
    check_image(torch.full((1, 3, 2, 2), 1.0005), "content")
    check_image(torch.full((1, 3, 2, 2), -0.0005), "content")


def test_check_range():
    with pytest.raises(ValueError) as info:
        check_range(1.5, "alpha", 0.0, 1.0)
    assert str(info.value) == "alpha must be in [0.0, 1.0]; got 1.5"
