import re
from pathlib import Path

import pytest
import torch

import adain.base.memory
from adain.cli import main as adain_main
from adain.decoder import Decoder
from adain.base.errors import StyleTransferError
from adain.base.memory import available_bytes, check_memory, estimate_stylize_bytes
from adain.styler import Styler
from adain.base.encoder.vgg import VGGEncoder

SAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "samples"


def test_estimate_grows_with_pixels_alpha_and_precision():
    small, big = estimate_stylize_bytes((512, 512)), estimate_stylize_bytes((2160, 3840))
    assert small < big
    assert estimate_stylize_bytes((2160, 3840), alpha=0.5) > big
    assert estimate_stylize_bytes((2160, 3840), bf16=False) > big
    # Calibrated at 4K (docs/reliability.md): measured 4.66 GiB peak RSS in bf16, 6.56 GiB in fp32.
    assert 4.66 * 2**30 < big < 5.5 * 2**30
    assert 6.56 * 2**30 < estimate_stylize_bytes((2160, 3840), bf16=False) < 7.5 * 2**30


def test_available_bytes_reads_meminfo(tmp_path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n")
    assert available_bytes(f) == 1000 * 1024
    assert available_bytes(tmp_path / "missing") is None


def test_check_memory_message():
    with pytest.raises(StyleTransferError) as info:
        check_memory((2160, 3840), available=2**30)
    assert str(info.value) == ("a 3840x2160 output needs about 5.0 GiB of memory but only 1.0 GiB is available; "
                               "try a smaller output size, e.g. --size 2048 (the finest pass decides the peak; "
                               "--scales does not lower it)")
    check_memory((512, 512), available=2**30)  # fits


def test_stylize_stops_before_the_first_pass(monkeypatch):
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 1)
    styler = Styler(VGGEncoder(), Decoder())
    calls = []
    monkeypatch.setattr(styler, "_encode", lambda *a, **k: calls.append(1))
    with pytest.raises(StyleTransferError, match=r"^a 64x64 output needs about .* GiB of memory but only 0.0 GiB"):
        styler.stylize(torch.rand(1, 3, 64, 64), [torch.rand(1, 3, 32, 32)], size=64)
    assert calls == []


def test_cli_prints_the_advice_and_exits_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 2**30)
    with pytest.raises(SystemExit) as info:
        adain_main(["stylize", "-c", str(SAMPLES / "content" / "kodim23.jpg"), "-s",
                    str(SAMPLES / "texture" / "vangogh_the-starry-night.jpg"), "--size", "3840",
                    "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    # The pre-flight tries tiles before it refuses (issue 31): the message names the smallest.
    assert re.match(r"adain: error: a 3840x\d+ output needs about [\d.]+ GiB of memory even in 256 px tiles "
                    r"but only 1\.0 GiB", err[0])
    assert "--size 2048" in err[0]
    assert not (tmp_path / "o.png").exists()


# --- style images and runs without texture (issue 15 case 8) ---


def test_estimate_counts_styles_at_the_outputs_longer_side():
    from adain.base.memory import estimate_warp_bytes

    thin = estimate_stylize_bytes((60, 6000))
    with_style = estimate_stylize_bytes((60, 6000), styles=[(512, 512)])
    # A square style is encoded at 6000x6000 = 36 MP: far more than the 0.36 MP output itself.
    assert thin < 1.5 * 2**30 and with_style > 10 * 2**30
    # A style about the output's size barely moves the 4K estimate (measured 4.66 GiB with this style).
    at_4k = estimate_stylize_bytes((2160, 3840), styles=[(250, 400)])
    assert 4.66 * 2**30 < at_4k < 1.02 * estimate_stylize_bytes((2160, 3840))
    # Warp only at 16384 px: issue 15 measured 7.9 GB peak for a 16384x12780 output.
    assert estimate_warp_bytes((12780, 16384)) > 7.9e9
    assert estimate_warp_bytes((512, 512)) < 1.1 * 2**30


def test_check_memory_names_the_style_when_it_dominates():
    with pytest.raises(StyleTransferError, match=r"^a 6000x60 output needs about 16\.9 GiB of memory \(the style "
                                                 r"images are encoded at the output's longer side, 6000 px\)"):
        check_memory((60, 6000), styles=[(512, 512)], available=6 * 2**30)
    check_memory((60, 6000), available=6 * 2**30)  # without the style it would fit
    with pytest.raises(StyleTransferError, match=r"^a 16384x16384 output needs about 10\.0 GiB"):
        check_memory((16384, 16384), styles=None, available=7 * 2**30)


def test_stylize_counts_the_upscaled_style(monkeypatch):
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 6 * 2**30)
    styler = Styler(VGGEncoder(), Decoder())
    calls = []
    monkeypatch.setattr(styler, "_encode", lambda *a, **k: calls.append(1))
    with pytest.raises(StyleTransferError, match=r"^a 6000x64 output needs about"):
        styler.stylize(torch.rand(1, 3, 60, 6000), [torch.rand(1, 3, 512, 512)], bf16=True, tile=0)
    assert calls == []
    # Tiled (the default), the style is encoded in tiles too, and the run fits (issue 31).
    plan = styler.preflight((64, 6000), styler.plan(1, bf16=True), styles=[(512, 512)])
    assert plan.tile


def test_skip_taps_raise_the_estimate_by_what_they_hold():
    from adain.base.memory import estimate_stylize_bytes

    hw, style = (1000, 1000), [(500, 500)]
    plain = estimate_stylize_bytes(hw, styles=style)
    one = estimate_stylize_bytes(hw, styles=style, skips=["relu3_1"])
    two = estimate_stylize_bytes(hw, styles=style, skips=["relu3_1", "relu2_1"])
    assert plain < one < two
    # relu3_1 is 256 channels at 1/4 x 1/4, 64 float32 bytes per pixel, held twice at the content
    # pass's peak (measured: 1.8 times, see memory.py)
    assert 2 * 64 * 1e6 <= one - plain <= 4 * 64 * 1e6
