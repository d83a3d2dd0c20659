"""``warpstyle run --engine``: the texture-only run on onnxruntime, torch-free, and what it refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from warpstyle.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "datasets" / "samples"
CONTENT = SAMPLES / "content" / "kodim23.jpg"
TEXTURE = SAMPLES / "texture" / "monet_water-lilies-1919.jpg"
GEOMETRY = SAMPLES / "geometry" / "juan-gris_portrait-of-pablo-picasso.jpg"


def _run(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


def test_texture_only_run_never_imports_torch(graph_cache, tmp_path):
    out = tmp_path / "o.png"
    code = ("import sys; from warpstyle.app.cli import cli; from adain.base.cli_support import run_cli; "
            "rc = run_cli(cli, 'warpstyle', sys.argv[1:]); print('rc', rc, 'torch' in sys.modules)")
    env = os.environ | {"WARPSTYLE_ONNX_CACHE": str(graph_cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, "run", "-c", str(CONTENT), "-t", str(TEXTURE), "--size", "48",
                           "-o", str(out)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.stdout.strip().endswith("rc 0 False"), proc.stdout + proc.stderr
    assert "engine auto: onnx" in proc.stderr
    assert Image.open(out).size == (48, 48)


def test_texture_only_run_matches_the_torch_pipeline(with_graphs, tmp_path):
    outs = {}
    for engine in ("onnx", "torch"):
        outs[engine] = tmp_path / f"{engine}.png"
        assert _run(["run", "-c", str(CONTENT), "-t", str(TEXTURE), "-t", str(SAMPLES / "texture" / "kandinsky_composition-vii.jpg"),
                     "--texture-weight", "1", "--texture-weight", "3", "--alpha", "0.7", "--preserve-color", "match",
                     "--size", "80", "--fp32", "--engine", engine, "-o", str(outs[engine])]) == 0
    a, b = (np.asarray(Image.open(outs[e]), dtype=np.int16) for e in ("onnx", "torch"))
    assert a.shape == b.shape == (80, 80, 3) and np.abs(a - b).max() <= 1


@pytest.mark.parametrize(("extra", "option"), [(["-g", str(GEOMETRY)], "--geometry"), (["--save-sheet"], "--save-sheet"),
                                               (["--refine", "1"], "--refine")])
def test_onnx_refuses_what_it_lacks(tmp_path, capsys, extra, option):
    assert _run(["run", "-c", str(CONTENT), "-t", str(TEXTURE), "--size", "32", "--engine", "onnx", *extra,
                 "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"warpstyle: error: --engine onnx does not support {option}")


def test_auto_with_a_geometry_runs_torch_saying_why(tmp_path, caplog, monkeypatch):
    import logging

    from adain.engines import choose

    monkeypatch.setattr(choose, "onnxruntime_available", lambda: True)
    with caplog.at_level(logging.INFO, logger="adain.engines.choose"):
        assert _run(["run", "-c", str(CONTENT), "-g", str(GEOMETRY), "--size", "32", "--geometry-method", "network",
                     "-o", str(tmp_path / "o.png")]) == 0
    assert "engine auto: torch (the onnx engine does not support --geometry)" in caplog.text
