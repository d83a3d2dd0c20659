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


def test_train_styler_bad_config_key(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("iteration = 3\n")
    code = _run(["train-styler", "--config", str(cfg), "--content-dir", "x", "--style-dir", "y"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown keys 'iteration'" in err and "did you mean 'iterations'" in err
