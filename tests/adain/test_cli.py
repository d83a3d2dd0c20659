import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from adain.cli import cli, main
from adain.base.image import load_image
from tests.train_fixtures import make_image_folder

SAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "samples"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _run(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


def test_every_option_has_help():
    for name, command in cli.commands.items():
        for p in command.params:
            if p.param_type_name == "option":
                assert p.help, f"{name} {p.opts} lacks help"
        assert CliRunner().invoke(cli, [name, "--help"]).exit_code == 0


def test_stylize_end_to_end(tmp_path):
    out = tmp_path / "o.jpg"
    code = _run(["stylize", "-c", str(SAMPLES / "content" / "kodim23.jpg"), "-s", str(SAMPLES / "texture" / "vangogh_the-starry-night.jpg"),
                 "-s", str(SAMPLES / "texture" / "monet_water-lilies-1919.jpg"), "--weight", "2", "--weight", "1",
                 "--alpha", "0.8", "--preserve-color", "luminance", "--size", "64", "--scales", "32,64", "-o", str(out)])
    assert code == 0 and load_image(out).shape == (1, 3, 64, 64)


def test_stylize_with_masks(tmp_path):
    from PIL import Image

    mask = tmp_path / "m.png"
    Image.new("L", (10, 10), 255).save(mask)
    code = _run(["stylize", "-c", str(SAMPLES / "content" / "kodim23.jpg"), "-s", str(SAMPLES / "texture" / "vangogh_the-starry-night.jpg"),
                 "--mask", str(mask), "--size", "48", "--scales", "48", "-o", str(tmp_path / "o.png")])
    assert code == 0


@pytest.mark.parametrize("content,reason", [("missing.jpg", "no such file"), ("empty.png", "empty"), ("text.png", "not a recognised image")])
def test_bad_inputs_one_line_exit_2(tmp_path, capsys, content, reason):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    code = _run(["stylize", "-c", str(tmp_path / content), "-s", str(SAMPLES / "texture" / "vangogh_the-starry-night.jpg"), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and content in err[0] and reason in err[0]


def test_mismatched_weights(tmp_path, capsys):
    code = _run(["stylize", "-c", "a.jpg", "-s", "b.jpg", "--weight", "1", "--weight", "2", "-o", str(tmp_path / "o.png")])
    assert code == 2 and "--weight" in capsys.readouterr().err


def test_train_styler_cli_and_resume(tmp_path):
    content = make_image_folder(tmp_path / "c", seed=3)
    style = make_image_folder(tmp_path / "s", seed=4, corrupt=False)
    base = ["train-styler", "--config", str(CONFIGS / "train_styler_smoke.toml"), "--content-dir", str(content),
            "--style-dir", str(style), "--output-dir", str(tmp_path / "run"), "--no-progress"]
    assert _run(base + ["--iterations", "2"]) == 0
    assert _run(base + ["--iterations", "3", "--resume", "auto"]) == 0
    lines = (tmp_path / "run" / "losses.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]


def test_train_styler_refuses_to_restart_an_existing_run(tmp_path, capsys):
    # Issue 15 case 4: without --resume, an existing run folder is never silently overwritten.
    content = make_image_folder(tmp_path / "c", seed=3)
    style = make_image_folder(tmp_path / "s", seed=4, corrupt=False)
    base = ["train-styler", "--config", str(CONFIGS / "train_styler_smoke.toml"), "--content-dir", str(content),
            "--style-dir", str(style), "--output-dir", str(tmp_path / "run"), "--no-progress", "--iterations", "2"]
    assert _run(base) == 0
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes(), (tmp_path / "run" / "losses.csv").read_text()
    capsys.readouterr()
    assert _run(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--resume auto" in err[0]
    assert ((tmp_path / "run" / "checkpoint.pt").read_bytes(), (tmp_path / "run" / "losses.csv").read_text()) == before


def test_train_styler_stops_on_divergence_and_keeps_the_good_checkpoint(tmp_path, capsys):
    # Issue 15 case 5: --lr 1e30 gives non-finite losses; exit non-zero with one line, weights kept.
    content = make_image_folder(tmp_path / "c", seed=3)
    style = make_image_folder(tmp_path / "s", seed=4, corrupt=False)
    base = ["train-styler", "--config", str(CONFIGS / "train_styler_smoke.toml"), "--content-dir", str(content),
            "--style-dir", str(style), "--output-dir", str(tmp_path / "run"), "--no-progress"]
    assert _run(base + ["--iterations", "2"]) == 0
    good = (tmp_path / "run" / "decoder.safetensors").read_bytes()
    capsys.readouterr()
    code = _run(base + ["--iterations", "6", "--resume", "auto", "--lr", "1e30"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "non-finite" in err[0] and "last good checkpoint" in err[0]
    assert (tmp_path / "run" / "decoder.safetensors").read_bytes() == good


def test_train_styler_bad_config_key(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("iteration = 3\n")
    code = _run(["train-styler", "--config", str(cfg), "--content-dir", "x", "--style-dir", "y"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown keys 'iteration'" in err and "did you mean 'iterations'" in err


# Issue 15: never lose a user's file, never waste a run on a bad path.
STYLE = SAMPLES / "texture" / "vangogh_the-starry-night.jpg"


def _no_models(monkeypatch):
    from adain.styler import Styler

    def boom(*a, **k):
        raise AssertionError("models were loaded before the paths were checked")

    monkeypatch.setattr(Styler, "from_pretrained", boom)


@pytest.mark.parametrize("which", ["content", "style", "mask"])
def test_output_equal_to_an_input_is_refused(tmp_path, capsys, monkeypatch, which):
    # Case 1: `adain stylize -c c.jpg -s t.jpg -o c.jpg` overwrote c.jpg and exited 0.
    from PIL import Image

    c, s, m = tmp_path / "c.jpg", tmp_path / "t.jpg", tmp_path / "m.png"
    c.write_bytes((SAMPLES / "content" / "kodim23.jpg").read_bytes())
    s.write_bytes(STYLE.read_bytes())
    Image.new("L", (10, 10), 255).save(m)
    target = {"content": c, "style": s, "mask": m}[which]
    before = target.read_bytes()
    _no_models(monkeypatch)
    code = _run(["stylize", "-c", str(c), "-s", str(s), "--mask", str(m), "--size", "32", "-o", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"it is the --{which} input" in err[0]
    assert target.read_bytes() == before


def test_unsupported_output_fails_before_models_load(tmp_path, capsys, monkeypatch):
    # Case 12: `-o out.gif` failed only after the whole run.
    _no_models(monkeypatch)
    code = _run(["stylize", "-c", str(SAMPLES / "content" / "kodim23.jpg"), "-s", str(STYLE), "-o", str(tmp_path / "o.gif")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown output extension '.gif'" in err[0]


def test_output_onto_a_fifo_is_refused(tmp_path, capsys, monkeypatch):
    # Case 6 at the CLI: an existing non-regular file is refused, and before any work.
    os.mkfifo(tmp_path / "o.png")
    _no_models(monkeypatch)
    code = _run(["stylize", "-c", str(SAMPLES / "content" / "kodim23.jpg"), "-s", str(STYLE), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "it exists and is a FIFO" in err[0]


def test_stylize_progress_per_pass(tmp_path, capsys):
    # Case 15: one long run printed nothing; --progress shows the passes with an ETA.
    code = _run(["stylize", "-c", str(SAMPLES / "content" / "kodim23.jpg"), "-s", str(STYLE), "--size", "64",
                 "--scales", "32,64", "--progress", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 0
    assert "adain stylize" in err and "100%" in err and "2 passes done" in err
