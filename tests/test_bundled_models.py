"""The bundled weights load offline and give the output statistics their model cards document.

Figures (docs/models/decoder.md, docs/models/warper.md), measured with fp32 on CPU:

* decoder (skip inputs relu3_1, relu2_1, relu1_1; bilinear upsampling, replicate encoder padding),
  kodim04 x Starry Night at 256 px, single pass: style loss 2.00 (the content itself: 12.8), content
  loss 3.59 (the decoder before it: 1.51, 3.53); at alpha 0 (the keep path) SSIM 0.98 to the content;
* warper, kodim04 -> Gris portrait: mean displacement 18.1 px at 256 px, no folds.

The bounds leave room for other CPUs and BLAS builds, but a missing, untrained or mismatched file
fails them.
"""

from pathlib import Path

import kornia
import pytest
import torch

from adain import Styler, adaptive_instance_norm, load_image, resize_longer
from adain.losses import STYLE_TAPS, content_loss, style_loss
from warpstyle import Warper, identity_grid

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"


@torch.no_grad()
def test_bundled_decoder_statistics():
    styler = Styler.from_pretrained()
    assert styler.decoder.skips == ("relu3_1", "relu2_1", "relu1_1")
    assert (styler.decoder.upsample, styler.decoder.encoder_padding) == ("bilinear", "replicate")
    c = resize_longer(load_image(SAMPLES / "content" / "kodim04.jpg"), 256)
    s = resize_longer(load_image(SAMPLES / "texture" / "vangogh_the-starry-night.jpg"), 256)
    out = styler.stylize(c, [s], size=256, scales=[256], bf16=False)
    enc = styler.encoder
    fs = enc(s, taps=STYLE_TAPS)
    target = adaptive_instance_norm(enc(c, taps=("relu4_1",))["relu4_1"], fs["relu4_1"])

    def losses(img: torch.Tensor) -> tuple[float, float]:
        fo = enc(img, taps=STYLE_TAPS)
        return (float(content_loss(fo["relu4_1"], target)),
                float(style_loss([fo[t] for t in STYLE_TAPS], [fs[t] for t in STYLE_TAPS])))

    lc_in, ls_in = losses(c)
    lc, ls = losses(out)
    assert ls_in == pytest.approx(12.8, rel=0.05)  # the input side is fixed: guards the encoder
    assert ls == pytest.approx(2.00, rel=0.25)
    assert lc == pytest.approx(3.59, rel=0.25)
    # alpha 0 runs the keep path: the decoder gives the photo back (SSIM 0.98; 0.62 on average over
    # held-out photos without it)
    assert styler.decoder.keep == ("relu3_1", "relu2_1", "relu1_1")
    back = styler.stylize(c, [s], size=256, scales=[256], alpha=0.0, bf16=False)
    assert float(kornia.metrics.ssim(back, c, window_size=11).mean()) > 0.9


@torch.no_grad()
def test_bundled_warper_statistics():
    warper = Warper.from_pretrained()
    field = warper.estimate(load_image(SAMPLES / "content" / "kodim04.jpg"),
                            load_image(SAMPLES / "geometry" / "juan-gris_portrait-of-pablo-picasso.jpg"), method="network")
    disp = ((field.grid - identity_grid(1, 16, 16)) * 128).norm(dim=-1).mean()
    assert float(disp) == pytest.approx(18.1, rel=0.2)
    assert float(field.fold_fraction()[0]) < 0.01
