"""The bundled weights' ONNX graphs, built once per test run into a temporary cache (about 10 s)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the graphs of the bundled weights; skips without the export extra."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from adain.engines.build import build_graphs

    cache = tmp_path_factory.mktemp("onnx_cache")
    build_graphs(cache=cache)
    return cache


@pytest.fixture()
def with_graphs(graph_cache: Path) -> Iterator[Path]:
    """:func:`graph_cache` as the process's cache (``$WARPSTYLE_ONNX_CACHE``) for one test."""
    old = os.environ.get("WARPSTYLE_ONNX_CACHE")
    os.environ["WARPSTYLE_ONNX_CACHE"] = str(graph_cache)
    yield graph_cache
    if old is None:
        os.environ.pop("WARPSTYLE_ONNX_CACHE", None)
    else:
        os.environ["WARPSTYLE_ONNX_CACHE"] = old


@pytest.fixture(scope="session")
def onnx_styler(graph_cache: Path):
    """An :class:`adain.engines.OnnxStyler` on the bundled weights."""
    from adain.engines.onnx_styler import OnnxStyler

    return OnnxStyler.from_pretrained(cache=graph_cache)


@pytest.fixture(scope="session")
def torch_styler():
    """The reference :class:`adain.Styler` on the bundled weights."""
    from adain.styler import Styler

    return Styler.from_pretrained()
