import torch

from adain.base.encoder.vgg import VGGEncoder
from adain.decoder import Decoder
from adain.functional import adaptive_instance_norm
from warpstyle.training.augment import texture_augment


def _models():
    torch.manual_seed(0)
    dec = Decoder(skips=["relu3_1", "relu1_1"]).eval()
    for name, p in dec.named_parameters():
        if name.startswith("skip_"):
            p.data = 0.05 * torch.randn(p.shape)
    return VGGEncoder().eval(), dec


def test_a_skip_decoder_gets_every_tap_stylized_at_each_samples_alpha():
    enc, dec = _models()
    g = torch.Generator().manual_seed(1)
    images, styles = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    out = texture_augment(images, styles, enc, dec, torch.tensor([0.0, 1.0]))
    taps = ("relu4_1", "relu3_1", "relu1_1")
    with torch.no_grad():
        fc, fs = enc(images, taps=taps), enc(styles, taps=taps)
        own = dec(fc["relu4_1"], fc).clamp(0, 1)  # alpha 0: the content's own taps
        t = {k: adaptive_instance_norm(fc[k], fs[k]) for k in taps}
        styled = dec(t["relu4_1"], t).clamp(0, 1)  # alpha 1: every tap AdaIN'd
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out[0], own[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], styled[1], atol=1e-4, rtol=0)
    assert float((styled[1] - own[1]).abs().mean()) > 1e-4
