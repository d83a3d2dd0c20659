"""Export the models as ONNX or TorchScript graphs, each with a JSON card of its inputs and outputs.

Three graphs, all float32 on CPU:

* ``warper``: content and geometry images ``(B, 3, 256, 256)`` -> backward field ``(B, 16, 16, 2)``.
* ``decoder``: relu4_1 features ``(B, 512, h, w)`` -> image ``(B, 3, 8h, 8w)`` (not clamped).
* ``styler``: content ``(B, 3, H, W)``, style ``(B, 3, Hs, Ws)``, alpha ``(1,)`` -> stylized
  ``(B, 3, H, W)`` in [0, 1]; one AdaIN pass (:meth:`adain.Styler.forward`), no scale schedule.

How each format is made, and why:

* ONNX: ``torch.onnx.export(..., dynamo=True)``, PyTorch's default exporter since 2.9 (the
  TorchScript-based one is deprecated and cannot export the warper's antialiased resize). Needs
  the ``export`` extra (onnx, onnxscript; onnxruntime to run the graphs). Batch and spatial sizes
  are dynamic where the model allows; opset 18.
* TorchScript: ``torch.jit.trace`` checked on a second input of another batch and size (the trace
  must reproduce eager outputs there, so a shape baked into the graph fails the export).
  ``torch.jit.script`` is not used: the modules' Python (keyword-only tap lists, mixed-type layer
  lists, dict outputs) is outside the TorchScript language, and upstream deprecates both.

Every call of ``conv2d_relu`` takes the plain ``conv2d`` + ``relu`` path while a graph is being
captured (see :mod:`adain.base.encoder.conv_relu`).

Field convention (as in :mod:`warpstyle.fields.warp`): a *backward* warp from the output (geometry) frame
to the content; normalised sampling coordinates in ``[-1, 1]``, ``(x, y)`` order,
``align_corners=False``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from adain import Styler, __version__
from adain.base.errors import OutputError, StyleTransferError
from adain.base.storage.files import atomic_path, check_output_path
from adain.base.storage.outputs import check_not_inputs
from adain.base.encoder.vgg import VGGEncoder
from adain.decoder import SKIP_SHAPES, Decoder
from adain.engines.build import export_onnx
from adain.engines.graphs import ONNX_OPSET

from warpstyle.geometry.warper import Warper

__all__ = ["ExportFormat", "EXPORT_MODELS", "ExportedModel", "export_models", "FIELD_CONVENTION", "ONNX_OPSET"]

ExportFormat = Literal["onnx", "torchscript"]
#: The graphs :func:`export_models` can write, in the order it writes them.
EXPORT_MODELS: tuple[str, ...] = ("warper", "decoder", "styler")
FIELD_CONVENTION = (
    "backward warp from the output (geometry) frame to the content: field[b, i, j] = (x, y) is where output "
    "cell (i, j) samples the content, in normalised coordinates [-1, 1], align_corners=False; apply it by "
    "upsampling the displacement (field - identity) to the output size and grid_sample(content, field, "
    "align_corners=False, padding_mode='reflection')"
)
_SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
_ONNX_MODULES = ("onnx", "onnxscript")


@dataclasses.dataclass(frozen=True)
class _Spec:
    name: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]  # example inputs, by graph input name, in call order
    check_inputs: tuple[torch.Tensor, ...]  # another batch and size: the TorchScript trace must match there
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, Any]]  # input name -> {axis: torch.export.Dim}
    card: dict[str, Any]  # inputs/outputs/conventions for the JSON beside the graph


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """One written graph: ``path`` (the .onnx / .torchscript.pt file) and ``card`` (its JSON beside it)."""

    name: str
    path: Path
    card_path: Path


class _StylerGraph(nn.Module):
    """``Styler.forward`` with alpha as a graph input rather than a constant."""

    def __init__(self, styler: Styler) -> None:
        super().__init__()
        self.styler = styler

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return self.styler(content, style, alpha.view(-1, 1, 1, 1))


class _SkipDecoderGraph(nn.Module):
    """A decoder with skips, its skip taps as positional graph inputs after relu4_1's."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    # Named parameters, not *skips: torch.export matches dynamic shapes to a fixed signature.
    def forward(self, features: torch.Tensor, skip0: torch.Tensor, skip1: torch.Tensor | None = None,
                skip2: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(features, dict(zip(self.decoder.skips, (skip0, skip1, skip2))))



def _tensor(name: str, shape: Sequence[int | str], meaning: str) -> dict[str, Any]:
    return {"name": name, "dtype": "float32", "shape": list(shape), "meaning": meaning}


def _image_in(name: str, shape: Sequence[int | str], role: str) -> dict[str, Any]:
    return _tensor(name, shape, f"RGB in [0, 1], channels first; {role}")


def _specs(warper: Warper | None, styler: Styler, names: Sequence[str]) -> list[_Spec]:
    dim = torch.export.Dim
    batch = dim("batch", min=1, max=1024)
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    specs: list[_Spec] = []
    if warper is not None and "warper" in names:
        n = warper.regressor.grid_size
        side = warper.architecture.feature_size
        specs.append(_Spec(
            "warper", warper,
            # Batch 2, not 1: torch.export specialises size-1 axes.
            {"content": rand(2, 3, side, side), "geometry": rand(2, 3, side, side)},
            (rand(1, 3, side, side), rand(1, 3, side, side)),
            ("field",),
            {"content": {0: batch}, "geometry": {0: batch}},
            {
                "inputs": [_image_in("content", ["batch", 3, side, side], "the photo to warp"),
                           _image_in("geometry", ["batch", 3, side, side], "the image whose shapes the output takes")],
                "outputs": [_tensor("field", ["batch", n, n, 2], "backward warp field, float32")],
                "convention": FIELD_CONVENTION,
                "notes": f"Resize both images to {side}x{side} first (bilinear, antialiased); the field is "
                         "resolution-free and applies to the full-size content. Smooth it (Gaussian, sigma 0.75 "
                         "cells) before upsampling, as warpstyle does by default. This is the network's field "
                         "alone: the optional global alignment (warpstyle run --align, warpstyle/geometry/align.py) and "
                         "per-pair refinement (--warp-refine) are not part of the graph.",
            },
        ))
    if "decoder" in names:
        h, w = dim("h", min=2, max=1024), dim("w", min=2, max=1024)
        skips = styler.decoder.skips
        shape = {t: SKIP_SHAPES[t] for t in skips}
        specs.append(_Spec(
            "decoder", _SkipDecoderGraph(styler.decoder).eval() if skips else styler.decoder,
            {"features": rand(2, 512, 4, 6)} | {f"skip_{t}": rand(2, c, 4 * k, 6 * k) for t, (c, k) in shape.items()},
            (rand(3, 512, 5, 3), *(rand(3, c, 5 * k, 3 * k) for c, k in shape.values())),
            ("image",),
            {"features": {0: batch, 2: h, 3: w}} | {f"skip_{t}": {0: batch, 2: k * h, 3: k * w}
                                                      for t, (c, k) in shape.items()},
            {
                "inputs": [_tensor("features", ["batch", 512, "h", "w"],
                                   "VGG-19 relu4_1 features (of the bundled Oxford encoder), e.g. AdaIN targets")]
                + [_tensor(f"skip_{t}", ["batch", c, f"{k}*h", f"{k}*w"],
                           f"VGG-19 {t} features of the same image, treated as relu4_1 was (AdaIN / alpha blend)")
                   for t, (c, k) in shape.items()],
                "outputs": [_tensor("image", ["batch", 3, "8*h", "8*w"],
                                    "RGB, approximately in [0, 1] and not clamped: clamp before display")],
                "notes": "h and w are at least 2 (the reflection padding of the first layer needs 2 pixels)."
                         + (" The decoder's keep path (the content's own features at alpha < 1) is not part of "
                            "this graph, which decodes as at alpha 1; the styler graph includes it."
                            if styler.decoder.keep else ""),
            },
        ))
    if "styler" in names:
        h, w = dim("h", min=2, max=1024), dim("w", min=2, max=1024)  # relu4_1 size; the image is 8x that
        hs, ws = dim("hs", min=16, max=8192), dim("ws", min=16, max=8192)
        specs.append(_Spec(
            "styler", _StylerGraph(styler).eval(),
            {"content": rand(2, 3, 32, 48), "style": rand(2, 3, 40, 56), "alpha": torch.tensor([0.8])},
            (rand(3, 3, 24, 40), rand(3, 3, 48, 32), torch.tensor([0.5])),
            ("stylized",),
            {"content": {0: batch, 2: 8 * h, 3: 8 * w}, "style": {0: batch, 2: hs, 3: ws}, "alpha": None},
            {
                "inputs": [_image_in("content", ["batch", 3, "8*h", "8*w"], "the photo to paint; sides multiples of 8, at least 16"),
                           _image_in("style", ["batch", 3, "hs", "ws"], "the painting whose texture and colours the output takes; at least 16 px a side"),
                           _tensor("alpha", [1], "content-style trade-off in [0, 1] (1: full style)")],
                "outputs": [_image_in("stylized", ["batch", 3, "8*h", "8*w"], "the result")],
                "notes": "One AdaIN pass (adain.Styler.forward) at the input size; `adain stylize` adds a "
                         "coarse-to-fine scale schedule, colour preservation and style mixing around it.",
            },
        ))
    return specs


def _require_onnx() -> None:
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise StyleTransferError(f"ONNX export needs torch >= 2.5 (its torch.export-based exporter); this is {torch.__version__}")
    missing = [m for m in _ONNX_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise StyleTransferError(
            f"ONNX export needs the 'export' extra (missing: {', '.join(missing)}); "
            "install it with: pip install -e '.[export]'"
        )


def _export_onnx(spec: _Spec, path: Path) -> None:
    export_onnx(spec.module, spec.inputs, spec.outputs, [spec.dynamic.get(k) for k in spec.inputs], path)


def _export_torchscript(spec: _Spec, path: Path) -> None:
    with warnings.catch_warnings():
        # The shape checks at the modules' boundaries are Python bools the tracer records as
        # constants (it says so); check_inputs at another batch and size is the real test.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
        traced = torch.jit.trace(spec.module, tuple(spec.inputs.values()),
                                 check_inputs=[tuple(spec.inputs.values()), spec.check_inputs])
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.save.* is deprecated", category=FutureWarning)
        torch.jit.save(traced, str(tmp))


def export_models(
    output_dir: str | Path,
    format: ExportFormat = "onnx",
    *,
    models: Sequence[str] = EXPORT_MODELS,
    warper: str | Path | None = None,
    decoder: str | Path | None = None,
    vgg: str | Path | None = None,
) -> list[ExportedModel]:
    """Write the warper, decoder and single-pass styler as graphs, each with a JSON card beside it.

    Args:
        output_dir: folder to write ``<model>.onnx`` (or ``<model>.torchscript.pt``) and ``<model>.json``;
            created if missing.
        format: ``"onnx"`` (needs the ``export`` extra) or ``"torchscript"``.
        models: which of :data:`EXPORT_MODELS` to write.
        warper, decoder, vgg: weights files (default: the bundled ones).

    Returns:
        One :class:`ExportedModel` per written graph, in :data:`EXPORT_MODELS` order.

    Raises:
        StyleTransferError: the ONNX packages are missing, or a weights file is not one.
        ValueError: an unknown format or model name.
    """
    if format not in _SUFFIX:
        raise ValueError(f"format must be 'onnx' or 'torchscript'; got {format!r}")
    unknown = [m for m in models if m not in EXPORT_MODELS]
    if unknown or not models:
        raise ValueError(f"models must name some of {list(EXPORT_MODELS)}; got {list(models)}")
    if format == "onnx":
        _require_onnx()
    out = Path(output_dir)
    # Every file this call writes, checked before any model loads: never onto an input, a device or a
    # read-only file, and never into a folder that cannot be written.
    if out.exists() and not out.is_dir():
        raise OutputError(out, "it exists and is not a folder; --output is the folder that receives the graphs")
    planned = [out / f"{m}{s}" for m in EXPORT_MODELS if m in models for s in (_SUFFIX[format], ".json")]
    for p in planned:
        check_output_path(p)
    check_not_inputs(planned, [("--warper", None if warper is None else Path(warper)),
                               ("--decoder", None if decoder is None else Path(decoder)),
                               ("--vgg", None if vgg is None else Path(vgg))])
    encoder = VGGEncoder.from_pretrained(vgg)
    # Plain float32, contiguous weights: the graphs should not carry this CPU's layout choices.
    styler = Styler(encoder, Decoder.from_pretrained(decoder)).eval().requires_grad_(False)
    warp = Warper.from_pretrained(warper, encoder=encoder) if "warper" in models else None
    styler.to(memory_format=torch.contiguous_format)
    written: list[ExportedModel] = []
    for spec in _specs(warp, styler, models):  # type: ignore[arg-type]
        path = out / f"{spec.name}{_SUFFIX[format]}"
        with torch.no_grad():
            (_export_onnx if format == "onnx" else _export_torchscript)(spec, path)
        card = {
            "model": spec.name, "format": format, "file": path.name,
            **({"opset": ONNX_OPSET} if format == "onnx" else {"how": "torch.jit.trace; call it positionally"}),
            "dtype": "float32", "device": "cpu",
            **spec.card,
            "shapes": "named axes (batch, h, w, ...) are dynamic; numbers are fixed",
            "warpstyle_version": __version__, "torch_version": torch.__version__,
        }
        card_path = out / f"{spec.name}.json"
        with atomic_path(card_path) as tmp:
            tmp.write_text(json.dumps(card, indent=2) + "\n")
        written.append(ExportedModel(spec.name, path, card_path))
    return written
