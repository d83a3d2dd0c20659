"""Build the onnxruntime engine's graphs from weights files, with torch (once per weights).

:func:`export_onnx` is the one ONNX export of the project (``warpstyle export`` calls it too):
``torch.onnx.export(..., dynamo=True)``, opset :data:`ONNX_OPSET`, weights inside the file (no
external data), written atomically. :func:`build_graphs` exports the two graphs the engine runs:

* ``encoder.onnx``: ``image (1, 3, H, W)`` RGB in [0, 1] -> the decoder's taps (relu4_1, then its
  skip taps), each ``(1, C, H / s, W / s)``; H and W dynamic (at least 16).
* ``decoder.onnx``: ``features (1, 512, h, w)``, then ``skip_<tap>`` per skip tap and, for a decoder
  with keep taps, ``keep_<tap>`` (the content's own features) and ``keep`` ``(1,)`` (their weight,
  ``(1 - alpha) ** keep_power``) -> ``image (1, 3, 8h, 8w)``, not clamped; h and w dynamic (at least 2).

and a ``manifest.json`` (:mod:`.graphs`) naming the weights' hashes and each graph's size and hash.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from adain.base.errors import StyleTransferError
from adain.base.storage.files import atomic_path
from adain.base.encoder.vgg import VGGEncoder
from adain.decoder import SKIP_SHAPES, Decoder

from .graphs import (DECODER_FILE, ENCODER_FILE, MANIFEST, MANIFEST_FORMAT, ONNX_OPSET, GraphSet, file_digest, graph_dir,
                     weights_paths)

__all__ = ["ONNX_OPSET", "export_onnx", "build_graphs", "EncoderGraph", "DecoderGraph"]

logger = logging.getLogger(__name__)



def export_onnx(module: nn.Module, inputs: Mapping[str, torch.Tensor], outputs: Sequence[str],
                dynamic: Sequence[Mapping[int, Any] | None], path: str | Path) -> None:
    """Write ``module`` as an ONNX graph to ``path`` atomically.

    Args:
        module: in eval mode; called positionally with ``inputs``' values.
        inputs: example inputs by graph input name, in call order (size-1 axes are specialised:
            give dynamic axes another size).
        outputs: graph output names.
        dynamic: per input, ``{axis: torch.export.Dim}`` or None (static).
        path: the ``.onnx`` file.
    """
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        # Inputs that share an axis share its name: the exporter says so once per input.
        warnings.filterwarnings("ignore", message=r".*axis name: .* will not be used", category=UserWarning)
        torch.onnx.export(
            module, tuple(inputs.values()), str(tmp), dynamo=True, external_data=False,
            input_names=list(inputs), output_names=list(outputs), opset_version=ONNX_OPSET,
            dynamic_shapes=tuple(dynamic), verbose=False,
        )


class EncoderGraph(nn.Module):
    """The encoder's ``taps`` of an image, as a tuple (graph outputs are positional), padded as the
    decoder it feeds was trained with (``Decoder.encoder_padding``)."""

    def __init__(self, encoder: VGGEncoder, taps: Sequence[str], padding: str | None = None) -> None:
        super().__init__()
        self.encoder, self.taps, self.padding = encoder, tuple(taps), padding

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.encoder(image, taps=self.taps, padding=self.padding)
        return tuple(f[t] for t in self.taps)


class DecoderGraph(nn.Module):
    """A decoder with its skip taps, keep taps and keep weight as positional graph inputs."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    # Named parameters, not *args: torch.export matches dynamic shapes to a fixed signature.
    def forward(self, features: torch.Tensor, a: torch.Tensor | None = None, b: torch.Tensor | None = None,
                c: torch.Tensor | None = None, d: torch.Tensor | None = None, e: torch.Tensor | None = None,
                f: torch.Tensor | None = None, g: torch.Tensor | None = None) -> torch.Tensor:
        rest = [a, b, c, d, e, f, g]
        skips, keep = self.decoder.skips, self.decoder.keep
        skip_f = dict(zip(skips, rest[: len(skips)]))
        if not keep:
            return self.decoder(features, skip_f or None)
        keep_f = dict(zip(keep, rest[len(skips) : len(skips) + len(keep)]))
        weight = rest[len(skips) + len(keep)]
        assert weight is not None
        return self.decoder(features, skip_f, content=keep_f, keep=weight.view(1, 1, 1, 1))


def _decoder_inputs(decoder: Decoder) -> tuple[dict[str, torch.Tensor], list[dict[int, Any] | None]]:
    dim = torch.export.Dim
    h, w = dim("h", min=2, max=2048), dim("w", min=2, max=2048)
    g = torch.Generator().manual_seed(0)
    inputs = {"features": torch.rand(1, 512, 4, 6, generator=g)}
    dynamic: list[dict[int, Any] | None] = [{2: h, 3: w}]
    for kind, taps in (("skip", decoder.skips), ("keep", decoder.keep)):
        for t in taps:
            c, k = SKIP_SHAPES[t]
            inputs[f"{kind}_{t}"] = torch.rand(1, c, 4 * k, 6 * k, generator=g)
            dynamic.append({2: k * h, 3: k * w})
    if decoder.keep:
        inputs["keep"] = torch.tensor([0.3])
        dynamic.append(None)
    return inputs, dynamic


def build_graphs(decoder: str | Path | None = None, vgg: str | Path | None = None, *,
                 cache: str | Path | None = None) -> GraphSet:
    """Export the encoder and decoder of these weights (default: the bundled ones) into their
    cache folder (:func:`adain.engines.graphs.graph_dir`), replacing what is there.

    About 10 s on 2 CPU cores. Each file is written atomically and the manifest last, so an
    interrupted build leaves no manifest and is never used.

    Returns:
        The written :class:`~adain.engines.graphs.GraphSet`.

    Raises:
        CheckpointError: a weights file is missing or not one.
        StyleTransferError: onnx or onnxscript (the 'export' extra) is missing.
    """
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise StyleTransferError(f"building the ONNX graphs needs the 'export' extra (missing: {', '.join(missing)}); "
                                 "install it with: pip install -e '.[export]'")
    t0 = time.perf_counter()
    vgg_path, dec_path = weights_paths(decoder, vgg)
    digests = {"vgg": file_digest(vgg_path), "decoder": file_digest(dec_path)}
    folder = graph_dir(digests, cache)
    enc = VGGEncoder.from_pretrained(vgg_path).eval().requires_grad_(False)
    dec = Decoder.from_pretrained(dec_path).eval().requires_grad_(False)
    taps = ("relu4_1", *dec.skips)
    dim = torch.export.Dim
    side = {2: dim("H", min=16, max=16384), 3: dim("W", min=16, max=16384)}
    export_onnx(EncoderGraph(enc, taps, dec.encoder_padding).eval(), {"image": torch.rand(1, 3, 40, 56)}, taps, [side],
                folder / ENCODER_FILE)
    inputs, dynamic = _decoder_inputs(dec)
    export_onnx(DecoderGraph(dec).eval(), inputs, ("image",), dynamic, folder / DECODER_FILE)
    manifest = {
        "format": MANIFEST_FORMAT, "version": 1, "opset": ONNX_OPSET, "weights": digests,
        "weights_files": {"vgg": str(vgg_path), "decoder": str(dec_path)},
        "taps": list(taps), "decoder": dec.config(),
        "files": {name: {"bytes": (folder / name).stat().st_size, "sha256": file_digest(folder / name)}
                  for name in (ENCODER_FILE, DECODER_FILE)},
        "torch_version": torch.__version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("built the ONNX graphs in %s (%.1f s)", folder, time.perf_counter() - t0)
    return GraphSet.load_manifest(folder)
