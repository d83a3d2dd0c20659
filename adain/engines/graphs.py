"""Where the onnxruntime engine's graphs live, and loading them safely (torch-free).

Provisioning (docs/engines.md): graphs are built once per pair of weights files by
:func:`adain.engines.build.build_graphs` (torch, ``adain build-graphs`` or the first
``--engine onnx`` run) into ``<cache>/<key>/``, where ``<cache>`` is ``$WARPSTYLE_ONNX_CACHE`` if set,
else ``$XDG_CACHE_HOME/warpstyle/onnx`` (``~/.cache/warpstyle/onnx`` when unset) and ``<key>`` hashes the SHA-256 of both weights files'
bytes and the opset, so other weights never reuse them and changed weights get new graphs.

A folder holds ``encoder.onnx``, ``decoder.onnx`` and ``manifest.json``, written last. Graphs are
data from disk: a manifest over 64 KiB, a graph over :data:`MAX_GRAPH_BYTES`, a size or SHA-256 that
differs from the manifest's, or graph inputs and outputs other than the manifest's are refused
with a :class:`~adain.base.errors.CheckpointError` naming the file. Graphs are handed to
onnxruntime as bytes, so nothing beside them (external data) is ever read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from adain.base.errors import CheckpointError

__all__ = ["ENCODER_FILE", "DECODER_FILE", "MANIFEST", "MANIFEST_FORMAT", "ONNX_OPSET", "MAX_GRAPH_BYTES",
           "GraphSet", "cache_root", "graph_dir", "file_digest", "weights_paths", "find_graphs"]

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "adain.onnx-graphs"
ONNX_OPSET = 18  # the first opset whose Resize has the antialias attribute (the warper's input resize)
#: The largest graph file loaded (the bundled ones are about 15 MB each).
MAX_GRAPH_BYTES = 1 << 30
_MAX_MANIFEST_BYTES = 1 << 16
#: The bundled weights (``adain/weights/``); tests check them against decoder.py and vgg.py.
BUNDLED_VGG = "vgg19_pool4_oxford_q8.safetensors"
BUNDLED_DECODER = "decoder.safetensors"
_KEY_VERSION = 1  # bump when the graphs' layout changes: old folders are then never used


def cache_root(cache: str | Path | None = None) -> Path:
    """``cache``, else ``$WARPSTYLE_ONNX_CACHE``, else ``$XDG_CACHE_HOME/warpstyle/onnx``
    (``~/.cache/warpstyle/onnx`` when unset)."""
    if cache is not None:
        return Path(cache)
    if os.environ.get("WARPSTYLE_ONNX_CACHE"):
        return Path(os.environ["WARPSTYLE_ONNX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "warpstyle" / "onnx"


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex (about 10 ms for the bundled 18 MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def graph_dir(digests: Mapping[str, str], cache: str | Path | None = None) -> Path:
    """The folder of the graphs of weights with these ``{"vgg": sha256, "decoder": sha256}``."""
    key = json.dumps({"v": _KEY_VERSION, "opset": ONNX_OPSET, "vgg": digests["vgg"], "decoder": digests["decoder"]},
                     sort_keys=True)
    return cache_root(cache) / hashlib.sha256(key.encode()).hexdigest()[:24]


def weights_paths(decoder: str | Path | None = None, vgg: str | Path | None = None) -> tuple[Path, Path]:
    """``(vgg, decoder)`` weights files: the given ones, or the bundled ones.

    Raises:
        CheckpointError: a file is missing.
    """
    out = []
    for given, bundled in ((vgg, BUNDLED_VGG), (decoder, BUNDLED_DECODER)):
        path = Path(str(resources.files("adain") / "weights" / bundled)) if given is None else Path(given)
        if not path.is_file():
            raise CheckpointError(path, "no such file" if given is not None else "the bundled weights are missing")
        out.append(path)
    return out[0], out[1]


def _read_capped(path: Path, cap: int) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(path, (e.strerror or str(e)).lower()) from None
    if size > cap:
        raise CheckpointError(path, f"{size:,} bytes, over the limit of {cap:,} for this file")
    with open(path, "rb") as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise CheckpointError(path, "grew beyond its size limit while being read")
    return data


@dataclasses.dataclass(frozen=True)
class GraphSet:
    """One folder of graphs, described by its manifest.

    Attributes:
        folder: the folder.
        taps: the encoder's outputs in order: relu4_1, then the decoder's skip taps.
        keep: the decoder's keep taps (its ``keep_<tap>`` inputs), or ().
        keep_power: the keep weight is ``(1 - alpha) ** keep_power``.
        files: per graph file name, ``{"bytes": int, "sha256": str}``.
    """

    folder: Path
    taps: tuple[str, ...]
    keep: tuple[str, ...]
    keep_power: float
    files: Mapping[str, Mapping[str, Any]]

    @classmethod
    def load_manifest(cls, folder: str | Path) -> GraphSet:
        """Read and check ``folder/manifest.json``.

        Raises:
            CheckpointError: missing, too large, not JSON, or not a manifest of this format.
        """
        path = Path(folder) / MANIFEST
        try:
            m = json.loads(_read_capped(path, _MAX_MANIFEST_BYTES))
            taps = tuple(str(t) for t in m["taps"])
            dec = m["decoder"]
            files = {n: {"bytes": int(m["files"][n]["bytes"]), "sha256": str(m["files"][n]["sha256"])}
                     for n in (ENCODER_FILE, DECODER_FILE)}
            ok = m["format"] == MANIFEST_FORMAT and m["version"] == 1 and taps and taps[0] == "relu4_1"
            keep, power = tuple(str(t) for t in dec.get("keep", [])), float(dec.get("keep_power", 3.0))
        except CheckpointError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise CheckpointError(path, f"not a manifest of ONNX graphs ({MANIFEST_FORMAT} version 1); "
                                        "delete the folder to rebuild it")
        return cls(Path(folder), taps, keep, power, files)

    def read(self, name: str) -> bytes:
        """The bytes of graph file ``name``, checked against the manifest's size and SHA-256."""
        path = self.folder / name
        want = self.files[name]
        data = _read_capped(path, min(MAX_GRAPH_BYTES, int(want["bytes"])))
        if len(data) != want["bytes"] or hashlib.sha256(data).hexdigest() != want["sha256"]:
            raise CheckpointError(path, "its size or SHA-256 differs from the manifest's (changed or corrupt); "
                                        "delete the folder to rebuild it")
        return data

    def decoder_inputs(self) -> list[str]:
        """The decoder graph's input names, in order."""
        names = ["features", *(f"skip_{t}" for t in self.taps[1:]), *(f"keep_{t}" for t in self.keep)]
        return names + (["keep"] if self.keep else [])


def find_graphs(decoder: str | Path | None = None, vgg: str | Path | None = None, *,
                cache: str | Path | None = None) -> GraphSet | None:
    """The built graphs of these weights (default: bundled), or None when there are none yet.

    Raises:
        CheckpointError: a weights file is missing, or the folder's manifest is damaged.
    """
    vgg_path, dec_path = weights_paths(decoder, vgg)
    folder = graph_dir({"vgg": file_digest(vgg_path), "decoder": file_digest(dec_path)}, cache)
    if not (folder / MANIFEST).is_file():
        return None
    return GraphSet.load_manifest(folder)
