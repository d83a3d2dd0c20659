"""Choosing the engine: what the onnx engine refuses, and what auto falls back from."""

from __future__ import annotations

import logging

import pytest

from adain.base.errors import StyleTransferError
from adain.engines import choose
from adain.engines.choose import choose_engine, onnx_unsupported


@pytest.mark.parametrize(("options", "option"), [
    ({"masks": True}, "--mask"), ({"refine_steps": 3}, "--refine"), ({"bf16": True}, "--bf16"),
    ({"device": "cuda"}, "--device"), ({"tile": 256}, "--tile"), ({"size": 2048}, "--size"),
])
def test_unsupported_options_are_named(options, option):
    size = options.pop("size", 512)
    assert onnx_unsupported((size, size * 3 // 4), size=size, **options) == option


def test_supported_runs_have_no_objection():
    assert onnx_unsupported((512, 384), size=512, bf16=False, device="cpu", tile=0) is None
    assert onnx_unsupported((1024, 1024), size=1024, tile=1024) is None  # 1 MP passes, no tile needed
    assert onnx_unsupported((4, 6)) is None  # too small: the styler's own message, whichever engine


def test_torch_is_always_torch():
    choice = choose_engine("torch", "--mask")
    assert choice.engine == "torch" and choice.message is None


def test_onnx_refuses_an_unsupported_option_in_one_line():
    with pytest.raises(StyleTransferError) as e:
        choose_engine("onnx", "--refine")
    assert str(e.value) == "--engine onnx does not support --refine; use --engine torch or auto"


def test_onnx_without_onnxruntime_says_how_to_install(monkeypatch):
    monkeypatch.setattr(choose, "onnxruntime_available", lambda: False)
    with pytest.raises(StyleTransferError, match=r"pip install -e '\.\[export\]'"):
        choose_engine("onnx", None)


@pytest.mark.parametrize(("unsupported", "available", "why"), [
    ("--mask", True, "does not support --mask"), (None, False, "onnxruntime is not installed"),
    (None, True, "no ONNX graphs for these weights yet"),
])
def test_auto_falls_back_to_torch_saying_why(monkeypatch, caplog, tmp_path, unsupported, available, why):
    monkeypatch.setattr(choose, "onnxruntime_available", lambda: available)
    with caplog.at_level(logging.INFO, logger="adain.engines.choose"):
        choice = choose_engine("auto", unsupported, cache=tmp_path)
        assert choice.engine == "torch" and not caplog.text  # said only when the CLI logs it, after the run
        choice.log()
    assert why in caplog.text and "engine auto: torch" in caplog.text


def test_auto_takes_onnx_when_the_graphs_exist(graph_cache, caplog):
    choice = choose_engine("auto", None, cache=graph_cache)
    assert choice.engine == "onnx" and choice.message == "engine auto: onnx"
