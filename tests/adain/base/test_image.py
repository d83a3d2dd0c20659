import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from adain.base.errors import ImageError
from adain.base.image import (
    labelled_row,
    load_image,
    resize_exact,
    resize_longer,
    resize_shorter,
    resize_to_multiple,
    save_image,
    to_pil,
)

WHITE, RED, GREEN, BLUE = (1.0, 1.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def _rgb(x: torch.Tensor, y: int, xx: int) -> tuple[float, ...]:
    return tuple(float(v) for v in x[0, :, y, xx])


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR claims ``width x height`` RGB pixels, with a tiny junk IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture()
def no_decoding(monkeypatch):
    """Fail the test if any image's pixel data is decoded."""

    def boom(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)


# ---------------------------------------------------------------- committed fixtures


@pytest.mark.parametrize(
    "name,shape",
    [("cmyk.jpg", (1, 3, 12, 16)), ("gray16.png", (1, 3, 2, 8)), ("exif_rotated.jpg", (1, 3, 16, 8)),
     ("palette_alpha.png", (1, 3, 8, 8)), ("animated.gif", (1, 3, 8, 8)), ("rgba.png", (1, 3, 1, 4))],
)
def test_fixture_loads_as_float_rgb(fixtures_dir, name, shape):
    x = load_image(fixtures_dir / name)
    assert tuple(x.shape) == shape
    assert x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


@pytest.mark.parametrize(
    "name,reason",
    [("empty.png", "file is empty (0 bytes)"), ("not_an_image.png", "not a recognised image format"),
     ("truncated.jpg", "truncated JPEG file")],
)
def test_bad_fixture_raises_naming_file_and_reason(fixtures_dir, name, reason):
    path = fixtures_dir / name
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value) == f"cannot read '{path}': {reason}"
    assert info.value.path == str(path) and info.value.reason == reason


def test_missing_file(tmp_path):
    path = tmp_path / "missing.jpg"
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value) == f"cannot read '{path}': no such file"


def test_directory(tmp_path):
    with pytest.raises(ImageError) as info:
        load_image(str(tmp_path))
    assert str(info.value) == f"cannot read '{tmp_path}': is a directory, not an image file"


def test_exif_orientation_is_applied(fixtures_dir):
    # Stored 16 wide x 8 high, red left / blue right; orientation 6 = rotate 90 degrees clockwise.
    x = load_image(fixtures_dir / "exif_rotated.jpg")
    assert tuple(x.shape[-2:]) == (16, 8)
    top, bottom = x[0, :, :4].mean((1, 2)), x[0, :, -4:].mean((1, 2))
    assert torch.allclose(top, torch.tensor(RED), atol=0.08)
    assert torch.allclose(bottom, torch.tensor(BLUE), atol=0.08)


def test_rgba_is_composited_on_white(fixtures_dir):
    x = load_image(fixtures_dir / "rgba.png")
    assert _rgb(x, 0, 0) == WHITE  # fully transparent black
    assert _rgb(x, 0, 1) == RED
    assert _rgb(x, 0, 3) == BLUE
    half = 1.0 - 128 / 255  # black at alpha 128 over white
    assert np.allclose(_rgb(x, 0, 2), (half,) * 3, atol=1 / 255)


def test_palette_transparency_is_composited_on_white(fixtures_dir):
    x = load_image(fixtures_dir / "palette_alpha.png")
    assert torch.equal(x[0, :, :, :4], torch.ones(3, 8, 4))
    assert _rgb(x, 3, 6) == GREEN


def test_16_bit_is_scaled_by_bit_depth(fixtures_dir):
    x = load_image(fixtures_dir / "gray16.png")
    ramp = torch.from_numpy(np.linspace(0, 65535, 8).round() / 65535).float()
    assert torch.allclose(x[0, 0, 0], ramp, atol=1e-6)
    assert torch.equal(x[0, :, 1], torch.ones(3, 8))  # 65535 -> 1.0
    assert torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])  # gray


def test_cmyk_is_converted_to_rgb(fixtures_dir):
    x = load_image(fixtures_dir / "cmyk.jpg")
    left, right = x[0, :, :, :6].mean((1, 2)), x[0, :, :, -6:].mean((1, 2))
    assert torch.allclose(left, torch.tensor((0.0, 1.0, 1.0)), atol=0.06)  # cyan
    assert torch.allclose(right, torch.tensor((1.0, 1.0, 0.0)), atol=0.06)  # yellow


def test_animated_uses_first_frame(fixtures_dir):
    x = load_image(fixtures_dir / "animated.gif")
    assert torch.equal(x, torch.tensor(RED).view(1, 3, 1, 1).expand(1, 3, 8, 8))


# ---------------------------------------------------------------- pixel limit


def test_huge_header_is_refused_without_decoding(tmp_path, no_decoding):
    path = _png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ImageError) as info:
        load_image(path)
    msg = str(info.value)
    assert msg.startswith(f"cannot read '{path}': image is too large")
    assert "pixels" in msg


def test_header_over_our_limit_is_refused_without_decoding(tmp_path, no_decoding):
    path = _png_header_only(tmp_path / "big.png", 10_000, 10_000)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value) == (
        f"cannot read '{path}': 10000x10000 has 100,000,000 pixels, over the limit of 64,000,000 "
        "(raise max_pixels if intended)"
    )


def test_max_pixels_per_call(tmp_path):
    path = tmp_path / "p.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    with pytest.raises(ImageError, match="8x8 has 64 pixels, over the limit of 63"):
        load_image(path, max_pixels=63)
    assert load_image(path, max_pixels=64).shape == (1, 3, 8, 8)


# ---------------------------------------------------------------- in-memory inputs


def test_str_and_path_and_pil_agree(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    a, b, c = load_image(path), load_image(str(path)), load_image(Image.fromarray(arr))
    assert torch.equal(a, b) and torch.equal(a, c)
    assert torch.equal(a, torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255)


def test_numpy_uint8():
    arr = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    x = load_image(arr)
    assert x.shape == (1, 3, 4, 5) and x.dtype == torch.float32
    assert torch.equal(x[0].permute(1, 2, 0), torch.from_numpy(arr).float() / 255)


def test_numpy_uint16():
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    x = load_image(arr)
    assert x.shape == (1, 3, 1, 3)
    assert torch.allclose(x[0, 0, 0], torch.tensor([0.0, 32768 / 65535, 1.0]))
    assert float(x[0, 2, 0, 2]) == 1.0


def test_numpy_float_gray_and_rgba():
    gray = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float64)
    x = load_image(gray)
    assert x.dtype == torch.float32 and x.shape == (1, 3, 2, 2)
    assert torch.equal(x[0, 1], torch.from_numpy(gray).float())
    rgba = np.zeros((1, 2, 4), dtype=np.float32)
    rgba[0, 1] = (1.0, 0.0, 0.0, 1.0)  # pixel 0: transparent black
    x = load_image(rgba)
    assert _rgb(x, 0, 0) == WHITE and _rgb(x, 0, 1) == RED


@pytest.mark.parametrize(
    "arr,reason",
    [(np.full((2, 2, 3), 1.5, dtype=np.float32), "float arrays must hold finite values in [0, 1]"),
     (np.full((2, 2, 3), np.nan, dtype=np.float32), "float arrays must hold finite values in [0, 1]"),
     (np.zeros((2, 2, 3), dtype=np.int64), "unsupported array dtype int64 (expected uint8, uint16 or float)"),
     (np.zeros((2, 2, 2), dtype=np.uint8),
      "array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape (2, 2, 2)"),
     (np.zeros((0, 2, 3), dtype=np.uint8),
      "array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape (0, 2, 3)")],
)
def test_numpy_errors(arr, reason):
    with pytest.raises(ImageError) as info:
        load_image(arr)
    assert str(info.value) == f"cannot read '<array>': {reason}"


def test_tensor_inputs():
    t = torch.rand(3, 4, 5)
    x = load_image(t)
    assert x.shape == (1, 3, 4, 5) and torch.equal(x[0], t)
    u = torch.randint(0, 256, (1, 3, 4, 5), dtype=torch.uint8)
    assert torch.equal(load_image(u), u.float() / 255)
    assert load_image(t.double()).dtype == torch.float32
    assert load_image(t, device="cpu").device.type == "cpu"


def test_tensor_input_is_not_aliased():
    t = torch.rand(1, 3, 4, 4)
    x = load_image(t)
    x.zero_()
    assert float(t.sum()) > 0


def test_tensor_errors():
    with pytest.raises(ValueError, match=r"did you pass 0\.\.255 pixels\?"):
        load_image(torch.rand(1, 3, 4, 4) * 255)
    with pytest.raises(ValueError, match=r"image must hold one image \(1, 3, H, W\); got batch of 2"):
        load_image(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"image must have shape \(B, 3, H, W\); got \(1, 1, 4, 4\)"):
        load_image(torch.rand(1, 4, 4))


def test_unsupported_type():
    with pytest.raises(TypeError, match="image must be a path, PIL image, numpy array or tensor; got int"):
        load_image(123)  # type: ignore[arg-type]


# ---------------------------------------------------------------- saving


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p for p in os.listdir(folder) if p not in keep)


def test_png_round_trip_is_exact(tmp_path, gen):
    x = torch.randint(0, 256, (1, 3, 9, 11), generator=gen).float() / 255
    out = save_image(x, tmp_path / "deep" / "er" / "x.png")
    assert out == tmp_path / "deep" / "er" / "x.png"
    assert torch.equal(load_image(out), x)


def test_save_accepts_3d_tensor_and_pil(tmp_path, image):
    save_image(image[0], tmp_path / "a.png")
    save_image(to_pil(image), tmp_path / "b.png")
    assert torch.equal(load_image(tmp_path / "a.png"), load_image(tmp_path / "b.png"))


def test_jpeg_round_trip_is_close(tmp_path, image):
    out = save_image(image, tmp_path / "x.JPG", quality=95)
    with Image.open(out) as im:
        assert im.format == "JPEG"
    y = load_image(out)
    assert y.shape == image.shape
    assert float((y - image).abs().mean()) < 0.02


def test_save_leaves_no_temp_files(tmp_path, image):
    save_image(image, tmp_path / "x.png")
    save_image(image, tmp_path / "x.png")  # overwrite
    assert _leftovers(tmp_path, set()) == ["x.png"]


def test_save_unknown_extension_writes_nothing(tmp_path, image):
    path = tmp_path / "sub" / "out.xyz"
    with pytest.raises(ImageError) as info:
        save_image(image, path)
    assert str(info.value) == (
        f"cannot write '{path}': unknown output extension '.xyz' "
        "(use one of .bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp)"
    )
    assert _leftovers(tmp_path, set()) == []


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path, image):
    path = tmp_path / "x.jpg"
    save_image(image, path)
    before = path.read_bytes()
    rgba = Image.new("RGBA", (4, 4))  # JPEG cannot store alpha: the encoder fails mid-save
    with pytest.raises(ImageError) as info:
        save_image(rgba, path)
    assert str(info.value).startswith(f"cannot write '{path}': ")
    assert "RGBA" in str(info.value)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, set()) == ["x.jpg"]


def test_to_pil():
    x = torch.tensor([0.0, 0.5, 1.0, 2.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    im = to_pil(x)
    assert im.mode == "RGB" and im.size == (4, 1)
    assert np.asarray(im)[0, :, 0].tolist() == [0, 128, 255, 255]  # rounded and clamped
    with pytest.raises(ValueError, match=r"image must be \(1, 3, H, W\) or \(3, H, W\); got \(2, 3, 1, 4\)"):
        to_pil(torch.rand(2, 3, 1, 4))


# ---------------------------------------------------------------- resizing


def test_resize_longer_and_shorter():
    x = torch.rand(2, 3, 48, 64)
    assert resize_longer(x, 32).shape == (2, 3, 24, 32)
    assert resize_shorter(x, 24).shape == (2, 3, 24, 32)
    assert resize_shorter(x, 96).shape == (2, 3, 96, 128)
    assert resize_longer(torch.rand(1, 3, 1, 64), 8).shape == (1, 3, 1, 8)  # never below 1 px


def test_resize_exact_and_to_multiple():
    x = torch.rand(1, 3, 50, 70)
    assert resize_exact(x, (10, 20)).shape == (1, 3, 10, 20)
    assert resize_to_multiple(x, 16).shape == (1, 3, 48, 64)
    assert resize_to_multiple(torch.rand(1, 3, 5, 5), 16).shape == (1, 3, 16, 16)


def test_resize_same_size_is_identity_and_output_stays_in_range(image):
    assert resize_exact(image, (32, 32)) is image
    y = resize_longer(image, 17)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    z = resize_shorter(torch.ones(1, 3, 8, 8), 16)
    assert torch.allclose(z, torch.ones_like(z))


def test_labelled_row_scales_each_panel_to_the_height_and_keeps_pixels():
    red = torch.zeros(1, 3, 10, 20)
    red[:, 0] = 1.0
    row = labelled_row([("a", red), ("b", torch.zeros(3, 30, 30))], height=40, gap=5)
    assert row.size == (80 + 5 + 40, 60)  # widths 80 and 40 at height 40, under a 20 px label
    assert row.getpixel((40, 40)) == (255, 0, 0)  # the first panel, below its label
    assert row.getpixel((82, 40)) == (255, 255, 255)  # the gap
    assert row.getpixel((100, 40)) == (0, 0, 0)  # the black second panel
