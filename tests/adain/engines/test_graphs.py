"""The graph cache: keys, manifests, and refusing graphs that are not what the manifest says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adain.base.errors import CheckpointError
from adain.engines import graphs
from adain.engines.graphs import DECODER_FILE, ENCODER_FILE, MANIFEST, GraphSet, find_graphs, graph_dir


def _copy(graph_cache: Path, tmp_path: Path) -> Path:
    (src,) = [p for p in graph_cache.iterdir() if (p / MANIFEST).is_file()]
    return Path(shutil.copytree(src, tmp_path / src.name))


def test_bundled_names_are_the_loaders():
    from adain.base.encoder.vgg import BUNDLED_WEIGHTS
    from adain.decoder import BUNDLED_DECODER

    assert (graphs.BUNDLED_VGG, graphs.BUNDLED_DECODER) == (BUNDLED_WEIGHTS, BUNDLED_DECODER)


def test_key_depends_on_both_weights(tmp_path):
    a = graph_dir({"vgg": "1" * 64, "decoder": "2" * 64}, tmp_path)
    assert a.parent == tmp_path
    assert a != graph_dir({"vgg": "1" * 64, "decoder": "3" * 64}, tmp_path)
    assert a != graph_dir({"vgg": "4" * 64, "decoder": "2" * 64}, tmp_path)


def test_no_graphs_yet_is_none_and_other_weights_do_not_find_them(graph_cache, tmp_path):
    assert find_graphs(cache=tmp_path) is None
    other = tmp_path / "decoder.safetensors"
    other.write_bytes(graphs.weights_paths()[1].read_bytes() + b" ")  # other bytes: another key
    assert find_graphs(other, cache=graph_cache) is None
    assert find_graphs(cache=graph_cache) is not None


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WARPSTYLE_ONNX_CACHE", str(tmp_path / "a"))
    assert graphs.cache_root() == tmp_path / "a"
    monkeypatch.delenv("WARPSTYLE_ONNX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert graphs.cache_root() == tmp_path / "x" / "warpstyle" / "onnx"


def test_a_changed_graph_is_refused(graph_cache, tmp_path):
    pytest.importorskip("onnxruntime")
    from adain.engines.onnx_styler import OnnxStyler

    folder = _copy(graph_cache, tmp_path)
    with open(folder / DECODER_FILE, "r+b") as f:  # same size, one byte changed
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(CheckpointError, match="SHA-256 differs from the manifest"):
        OnnxStyler(GraphSet.load_manifest(folder))


def test_a_graph_over_its_size_is_refused_before_reading(graph_cache, tmp_path, monkeypatch):
    folder = _copy(graph_cache, tmp_path)
    monkeypatch.setattr(graphs, "MAX_GRAPH_BYTES", 1000)
    with pytest.raises(CheckpointError, match="over the limit of 1,000"):
        GraphSet.load_manifest(folder).read(ENCODER_FILE)
    monkeypatch.undo()
    with open(folder / ENCODER_FILE, "ab") as f:  # grown beyond what the manifest says
        f.write(b"\0" * 10)
    with pytest.raises(CheckpointError, match="over the limit"):
        GraphSet.load_manifest(folder).read(ENCODER_FILE)


@pytest.mark.parametrize("text", ["not json", "{}", json.dumps({"format": "other", "version": 1})])
def test_a_damaged_manifest_is_refused(graph_cache, tmp_path, text):
    folder = _copy(graph_cache, tmp_path)
    (folder / MANIFEST).write_text(text)
    with pytest.raises(CheckpointError, match="not a manifest of ONNX graphs"):
        GraphSet.load_manifest(folder)


def test_graphs_with_other_inputs_are_refused(graph_cache, tmp_path):
    pytest.importorskip("onnxruntime")
    from adain.engines.onnx_styler import OnnxStyler

    folder = _copy(graph_cache, tmp_path)
    m = json.loads((folder / MANIFEST).read_text())
    enc, dec = (folder / ENCODER_FILE).read_bytes(), (folder / DECODER_FILE).read_bytes()
    (folder / ENCODER_FILE).write_bytes(dec)  # swapped, with a manifest that vouches for the swap
    (folder / DECODER_FILE).write_bytes(enc)
    m["files"] = {ENCODER_FILE: m["files"][DECODER_FILE], DECODER_FILE: m["files"][ENCODER_FILE]}
    (folder / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="graph inputs"):
        OnnxStyler(GraphSet.load_manifest(folder))
