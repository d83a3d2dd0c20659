"""``adain stylize --engine``: the onnx engine never imports torch, refuses what it lacks, and
writes what the torch engine writes (within rounding)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adain.cli import main

ROOT = Path(__file__).resolve().parents[3]
CONTENT = ROOT / "datasets" / "samples" / "content" / "kodim04.jpg"
STYLE = ROOT / "datasets" / "samples" / "texture" / "vangogh_the-starry-night.jpg"
_RUN = ("import sys; from adain.cli import cli; from adain.base.cli_support import run_cli; "
        "rc = run_cli(cli, 'adain', sys.argv[1:]); print('rc', rc, 'torch' in sys.modules)")


def _run(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


def _subprocess(args: list[str], cache: Path, *flags: str) -> subprocess.CompletedProcess:
    env = os.environ | {"WARPSTYLE_ONNX_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *flags, "-c", _RUN, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


@pytest.mark.parametrize("engine", ["onnx", "auto"])
def test_the_onnx_engine_never_imports_torch(graph_cache, tmp_path, engine):
    out = tmp_path / "o.png"
    args = ["stylize", "-c", str(CONTENT), "-s", str(STYLE), "--size", "48", "--alpha", "0.8",
            "--preserve-color", "match", "--engine", engine, "-o", str(out)]
    proc = _subprocess(args, graph_cache, "-X", "importtime")
    assert proc.stdout.strip().endswith("rc 0 False"), proc.stdout + proc.stderr
    assert not re.search(r"\|\s+torch(\.|\s*$)", proc.stderr, re.M)  # -X importtime lists every import
    assert "onnxruntime" in proc.stderr
    assert Image.open(out).size == (48, 48)


def test_engines_write_the_same_image(with_graphs, tmp_path):
    outs = {}
    for engine in ("onnx", "torch"):
        outs[engine] = tmp_path / f"{engine}.png"
        assert _run(["stylize", "-c", str(CONTENT), "-s", str(STYLE), "--size", "64", "--fp32", "--engine", engine,
                     "-o", str(outs[engine])]) == 0
    a, b = (np.asarray(Image.open(outs[e]), dtype=np.int16) for e in ("onnx", "torch"))
    assert a.shape == b.shape == (64, 64, 3) and np.abs(a - b).max() <= 1  # 8-bit rounding at most


@pytest.mark.parametrize(("extra", "option"), [(["--refine", "2"], "--refine"), (["--bf16"], "--bf16"),
                                               (["--size", "2048"], "--size"), (["--mask", str(CONTENT)], "--mask")])
def test_onnx_refuses_what_it_lacks_in_one_line(tmp_path, capsys, extra, option):
    args = ["stylize", "-c", str(CONTENT), "-s", str(STYLE), "--size", "32", "--engine", "onnx", *extra,
            "-o", str(tmp_path / "o.png")]
    assert _run(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("adain: error: --engine onnx does not support " + option)
    assert not (tmp_path / "o.png").exists()


def test_auto_falls_back_to_torch_at_info(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="adain.engines.choose"):
        assert _run(["stylize", "-c", str(CONTENT), "-s", str(STYLE), "--size", "32", "--refine", "1",
                     "-o", str(tmp_path / "o.png")]) == 0
    assert "engine auto: torch (the onnx engine does not support --refine)" in caplog.text


def test_onnx_builds_missing_graphs_once(graph_cache, tmp_path, monkeypatch):
    from adain.engines import build
    from adain.engines.graphs import GraphSet

    calls = []

    def fake_build(decoder=None, vgg=None, *, cache=None):  # the fixture's graphs, copied: no second export
        calls.append(cache)
        (src,) = [p for p in graph_cache.iterdir() if (p / "manifest.json").is_file()]
        return GraphSet.load_manifest(shutil.copytree(src, tmp_path / "cache" / src.name))

    monkeypatch.setenv("WARPSTYLE_ONNX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "build_graphs", fake_build)
    for _ in range(2):
        assert _run(["stylize", "-c", str(CONTENT), "-s", str(STYLE), "--size", "32", "--engine", "onnx",
                     "-o", str(tmp_path / "o.png")]) == 0
    assert len(calls) == 1 and Image.open(tmp_path / "o.png").size == (32, 32)


def test_build_graphs_command_prints_the_folder(tmp_path, monkeypatch, capsys):
    from adain.engines import build
    from adain.engines.graphs import GraphSet

    monkeypatch.setattr(build, "build_graphs", lambda d, v: GraphSet(tmp_path / "g", ("relu4_1",), (), 3.0, {}))
    assert _run(["build-graphs"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "g")


def test_auto_keeps_a_user_error_to_one_line(tmp_path):
    """The fallback's info line comes after a successful run, so a bad input is still the one line."""
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    proc = _subprocess(["stylize", "-c", str(CONTENT), "-s", str(empty), "--size", "32", "-o", str(tmp_path / "o.png")],
                       tmp_path / "no_graphs")
    err = proc.stderr.strip().splitlines()
    assert proc.stdout.strip().startswith("rc 2") and len(err) == 1 and "file is empty" in err[0]
