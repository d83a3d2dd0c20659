"""OnnxStyler against the torch Styler (the reference) on the bundled samples, in float32.

Documented tolerance (docs/engines.md): PSNR >= 60 dB and max abs difference <= 2e-3 against the
torch engine in float32 (measured: 120-130 dB; the two run the same graphs' maths in float32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

SAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "samples"
CONTENT = SAMPLES / "content"
TEXTURE = SAMPLES / "texture"
MIN_PSNR_DB = 60.0
MAX_ABS = 2e-3


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _images(content: str, styles: list[str], size: int):
    from adain.engines.onnx_styler import read_chw

    c = read_chw(CONTENT / content, working_size=size)
    return c, [read_chw(TEXTURE / s, working_size=size) for s in styles]


CASES = [
    ("kodim04.jpg", ["vangogh_the-starry-night.jpg"], {}),
    ("kodim23.jpg", ["monet_water-lilies-1919.jpg", "kandinsky_composition-vii.jpg"],
     {"weights": [2, 1], "alpha": 0.6, "preserve_color": "match"}),
    ("kodim15.jpg", ["kandinsky_composition-vii.jpg"], {"preserve_color": "luminance", "scales": [48]}),
    ("kodim04.jpg", ["monet_water-lilies-1919.jpg"], {"schedule": "restylize", "scales": [48], "alpha": 0.7}),
]


@pytest.mark.parametrize(("content", "styles", "options"), CASES)
def test_engines_agree_on_the_bundled_samples(onnx_styler, torch_styler, content, styles, options):
    c, s = _images(content, styles, 96)
    got = onnx_styler.stylize(c, s, size=96, **options)
    want = torch_styler.stylize(torch.from_numpy(c)[None], [torch.from_numpy(x)[None] for x in s], size=96,
                                bf16=False, **options)[0].numpy()
    assert got.shape == want.shape and got.shape[0] == 3 and max(got.shape[1:]) == 96
    assert _psnr(got, want) >= MIN_PSNR_DB
    assert np.abs(got - want).max() <= MAX_ABS


def test_alpha_zero_is_not_the_style(onnx_styler):
    c, s = _images("kodim23.jpg", ["vangogh_the-starry-night.jpg"], 64)
    painted = onnx_styler.stylize(c, s, size=64)
    kept = onnx_styler.stylize(c, s, size=64, alpha=0.0)
    from adain.engines.ops import resize_exact

    ref = resize_exact(c, kept.shape[1:])
    # The keep path reconstructs the content at alpha 0; alpha 1 paints it.
    assert np.abs(kept - ref).mean() < 0.5 * np.abs(painted - ref).mean()
    assert 0.0 <= painted.min() and painted.max() <= 1.0


def test_progress_reports_pixels(onnx_styler):
    c, s = _images("kodim04.jpg", ["vangogh_the-starry-night.jpg"], 64)
    calls = []
    onnx_styler.stylize(c, s, size=64, scales=[32], progress=lambda d, t: calls.append((d, t)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] and len(calls) == 3


@pytest.mark.parametrize(("options", "message"), [({"alpha": 1.5}, "alpha must be in"),
                                                   ({"schedule": "fast"}, "schedule must be one of"),
                                                   ({"preserve_color": "hsv"}, "preserve_color must be"),
                                                   ({"weights": [0]}, "must not all be zero")])
def test_bad_options_are_refused_naming_them(onnx_styler, options, message):
    c, s = _images("kodim04.jpg", ["vangogh_the-starry-night.jpg"], 32)
    with pytest.raises(ValueError, match=message):
        onnx_styler.stylize(c, s, size=32, **options)
