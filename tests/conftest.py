"""Shared fixtures: seeded tiny images made in code, the committed oddities, tiny image folders.

Everything written goes under ``tmp_path``; nothing is written into the repository.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def smooth_image(height: int = 32, width: int = 32, *, seed: int = 0) -> torch.Tensor:
    """A ``(1, 3, H, W)`` float32 image in [0, 1]: per-channel sinusoids with seeded phases.

    Smooth rather than white noise, so it behaves like a photo under resizing and JPEG.
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij"
    )
    r = torch.rand(4, 3, generator=g)
    a, b, f, ph = 2 * r[0] - 1, 2 * r[1] - 1, 6 * r[2], 6 * r[3]  # direction, frequency, phase
    chans = [0.5 + 0.4 * torch.sin((3 + f[c]) * (a[c] * xx + b[c] * yy) + ph[c]) for c in range(3)]
    return torch.stack(chans).unsqueeze(0).clamp(0, 1)


@pytest.fixture()
def gen() -> torch.Generator:
    """A fresh CPU generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture()
def image() -> torch.Tensor:
    """A smooth ``(1, 3, 32, 32)`` image in [0, 1]."""
    return smooth_image(32, 32, seed=0)


@pytest.fixture()
def image_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two different smooth ``(1, 3, 32, 32)`` images (content, style)."""
    return smooth_image(32, 32, seed=1), smooth_image(32, 32, seed=2)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures``: tiny committed oddities (see ``make_fixtures.py``)."""
    return FIXTURES


@pytest.fixture()
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing tiny 8-bit PNGs into a folder under ``tmp_path``.

    ``make_folder(names, size=(H, W), bad=())`` writes each relative name in ``names`` as a
    seeded random image, and each name in ``bad`` as an unreadable file; returns the folder.
    """

    def _make(names: list[str], *, size: tuple[int, int] = (24, 20), bad: tuple[str, ...] = (),
              folder: str = "images", seed: int = 0) -> Path:
        root = tmp_path / folder
        rng = np.random.default_rng(seed)
        for name in names:
            p = root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8), "RGB").save(p)
        for name in bad:
            p = root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 not really a jpeg")
        root.mkdir(parents=True, exist_ok=True)
        return root

    return _make


@contextlib.contextmanager
def _onnx_cache_at(path: Path) -> Iterator[Path]:
    """``$WARPSTYLE_ONNX_CACHE`` set to ``path`` for the block, then restored."""
    old = os.environ.get("WARPSTYLE_ONNX_CACHE")
    os.environ["WARPSTYLE_ONNX_CACHE"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("WARPSTYLE_ONNX_CACHE", None)
        else:
            os.environ["WARPSTYLE_ONNX_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def _empty_onnx_graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point the onnx engine's graph cache at an empty folder for the whole run, so ``--engine auto``
    takes torch in every test unless a test asks for the built graphs (:func:`with_graphs`)."""
    with _onnx_cache_at(tmp_path_factory.mktemp("onnx_cache_empty")) as path:
        yield path


# The bundled weights' ONNX graphs, built once per test run into a temporary cache (about 10 s), only
# when a test asks for them (tests/adain/engines, tests/warpstyle/test_texture_onnx.py).
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
    with _onnx_cache_at(graph_cache) as path:
        yield path


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
