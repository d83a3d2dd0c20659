"""warpstyle.app.export: ONNX graphs agree with PyTorch in onnxruntime, TorchScript round trips, the CLI.

The ONNX tests need the ``export`` extra (onnx, onnxscript, onnxruntime) and skip without it. Each
format is exported once per module (tens of seconds on 2 cores) and checked at another batch and
size than the one it was exported at, so a shape baked into a graph fails here.
"""

from __future__ import annotations

import importlib.util
import json
import logging

import numpy as np
import pytest
import torch

from adain import Styler
from warpstyle.app.cli import cli, main
from warpstyle.app.export import EXPORT_MODELS, export_models
from warpstyle.geometry.warper import Warper

ONNX_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_onnx = pytest.mark.skipif(bool(ONNX_MISSING), reason=f"the 'export' extra is not installed ({ONNX_MISSING})")
TOL = 1e-4  # float32 graphs; measured differences are about 1e-5 or less


@pytest.fixture(scope="module")
def models():
    styler = Styler.from_pretrained().eval()
    return styler, Warper.from_pretrained(encoder=styler.encoder)


@pytest.fixture(scope="module")
def inputs():
    """One input set per graph: batch and sizes other than the ones the graphs were exported at."""
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    return {
        "warper": (r(1, 3, 256, 256), r(1, 3, 256, 256)),
        # relu4_1, then the bundled decoder's skip taps relu3_1, relu2_1, relu1_1 (docs/models/decoder.md)
        "decoder": (r(3, 512, 5, 3), r(3, 256, 10, 6), r(3, 128, 20, 12), r(3, 64, 40, 24)),
        "styler": (r(1, 3, 40, 24), r(1, 3, 20, 36), torch.tensor([0.6])),
    }


@pytest.fixture(scope="module")
def expected(models, inputs):
    styler, warper = models
    with torch.no_grad():
        c, s, a = inputs["styler"]
        return {
            "warper": warper(*inputs["warper"]).numpy(),
            "decoder": styler.decoder(inputs["decoder"][0],
                                      dict(zip(styler.decoder.skips, inputs["decoder"][1:]))).numpy(),
            "styler": styler(c, s, a.view(-1, 1, 1, 1)).numpy(),
        }


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    if ONNX_MISSING:
        pytest.skip(f"the 'export' extra is not installed ({ONNX_MISSING})")
    return export_models(tmp_path_factory.mktemp("onnx"), "onnx")


@pytest.fixture(scope="module")
def torchscript_export(tmp_path_factory):
    return export_models(tmp_path_factory.mktemp("torchscript"), "torchscript")


@needs_onnx
@pytest.mark.slow
@pytest.mark.parametrize("name", EXPORT_MODELS)
def test_onnx_agrees_with_pytorch(onnx_export, inputs, expected, name):
    import onnxruntime as ort

    model = next(m for m in onnx_export if m.name == name)
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs[name])}
    got = session.run(None, feeds)[0]
    assert got.shape == expected[name].shape
    diff = float(np.abs(got - expected[name]).max())
    print(f"onnx {name}: max abs difference {diff:.2e}")
    assert diff < TOL


@needs_onnx
@pytest.mark.slow
def test_onnx_card_matches_graph(onnx_export):
    import onnx

    assert [m.name for m in onnx_export] == list(EXPORT_MODELS)
    for m in onnx_export:
        card = json.loads(m.card_path.read_text())
        graph = onnx.load(str(m.path)).graph
        for side, values in (("inputs", graph.input), ("outputs", graph.output)):
            want = [(t["name"], t["shape"]) for t in card[side]]
            got = [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]
            assert got == want, f"{m.name} {side}"
        assert card["format"] == "onnx" and card["file"] == m.path.name
    warper_card = json.loads(onnx_export[0].card_path.read_text())
    assert "backward" in warper_card["convention"] and "align_corners=False" in warper_card["convention"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*torch.jit.load.* is deprecated:FutureWarning")
@pytest.mark.parametrize("name", EXPORT_MODELS)
def test_torchscript_round_trip(torchscript_export, inputs, expected, name):
    model = next(m for m in torchscript_export if m.name == name)
    loaded = torch.jit.load(str(model.path))
    with torch.no_grad():
        got = loaded(*inputs[name]).numpy()
    assert got.shape == expected[name].shape
    assert float(np.abs(got - expected[name]).max()) < TOL
    card = json.loads(model.card_path.read_text())
    assert card["model"] == name and [t["name"] for t in card["inputs"]]


def test_cli_writes_graph_and_card(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--format", "torchscript", "--model", "decoder", "-o", str(tmp_path / "out")])
    assert e.value.code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["decoder.json", "decoder.torchscript.pt"]
    assert "decoder.torchscript.pt" in capsys.readouterr().out
    # The ONNX exporter's per-pass INFO logs stay out of the default CLI output.
    assert logging.getLogger("onnx_ir.passes").getEffectiveLevel() == logging.WARNING


def test_cli_missing_extra_is_one_line(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(SystemExit) as e:
        main(["export", "--format", "onnx", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2
    assert len(err) == 1 and "onnxscript" in err[0] and "pip install -e '.[export]'" in err[0]
    assert not (tmp_path / "out").exists()


def test_cli_help_describes_every_option():
    command = cli.commands["export"]
    assert all(p.help for p in command.params if p.param_type_name == "option")


def test_unknown_format_and_model():
    with pytest.raises(ValueError, match="format must be"):
        export_models("unused", "tflite")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="models must name"):
        export_models("unused", "torchscript", models=["encoder"])


@pytest.mark.slow
def test_compile_captures_styler_and_warper_in_one_graph_each():
    import torch._dynamo

    from adain import Decoder, VGGEncoder
    from warpstyle.geometry.regressor import WarpRegressor

    encoder = VGGEncoder()  # random weights: graph capture does not depend on them
    styler = Styler(encoder, Decoder()).eval().requires_grad_(False)
    warper = Warper(encoder, WarpRegressor()).eval().requires_grad_(False)
    with torch.no_grad():
        for module, args in ((styler, (torch.rand(1, 3, 32, 40), torch.rand(1, 3, 24, 24))),
                             (warper, (torch.rand(1, 3, 32, 40), torch.rand(1, 3, 24, 24)))):
            report = torch._dynamo.explain(module)(*args)
            assert (report.graph_count, report.graph_break_count) == (1, 0), report.break_reasons


@pytest.fixture(scope="module")
def skip_decoder_file(tmp_path_factory):
    from adain.base.storage.weights import save_weights
    from adain.decoder import Decoder

    dec = Decoder(skips=["relu3_1", "relu2_1"])  # a subset of the bundled decoder's skips, its weights
    own = dec.state_dict()
    dec.load_state_dict({k: v for k, v in Decoder.from_pretrained().state_dict().items() if k in own})
    g = torch.Generator().manual_seed(0)
    for name, p in dec.named_parameters():
        if name.startswith("skip_"):
            p.data = 0.05 * torch.randn(p.shape, generator=g)
    path = tmp_path_factory.mktemp("skip") / "decoder.safetensors"
    save_weights(path, "Decoder", dec.state_dict(), dec.config(), {}, "test")
    return path


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*torch.jit.load.* is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_a_skip_decoder_exports_with_its_skip_inputs(skip_decoder_file, tmp_path, fmt):
    if fmt == "onnx" and ONNX_MISSING:
        pytest.skip(f"the 'export' extra is not installed ({ONNX_MISSING})")
    styler = Styler.from_pretrained(skip_decoder_file).eval()
    r = lambda *shape: torch.rand(*shape, generator=torch.Generator().manual_seed(1))  # noqa: E731
    feats = (r(3, 512, 5, 3), r(3, 256, 10, 6), r(3, 128, 20, 12))  # another batch and size than exported
    c, s, a = r(1, 3, 40, 24), r(1, 3, 20, 36), torch.tensor([0.6])
    with torch.no_grad():
        want = {"decoder": styler.decoder(feats[0], dict(zip(("relu3_1", "relu2_1"), feats[1:]))).numpy(),
                "styler": styler(c, s, a.view(-1, 1, 1, 1)).numpy()}
    out = export_models(tmp_path, fmt, models=["decoder", "styler"], decoder=skip_decoder_file)
    card = json.loads(out[0].card_path.read_text())
    assert [t["name"] for t in card["inputs"]] == ["features", "skip_relu3_1", "skip_relu2_1"]
    for m, args in zip(out, (feats, (c, s, a))):
        if fmt == "torchscript":
            with torch.no_grad():
                got = torch.jit.load(str(m.path))(*args).numpy()
        else:
            import onnxruntime as ort

            session = ort.InferenceSession(str(m.path), providers=["CPUExecutionProvider"])
            got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), args)})[0]
        assert got.shape == want[m.name].shape
        assert float(np.abs(got - want[m.name]).max()) < TOL, m.name
