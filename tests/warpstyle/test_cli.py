import numpy as np
import pytest
import torch
from click.testing import CliRunner

from adain.base.image import load_image
from warpstyle.cli import cli, main
from warpstyle.field import WarpField


def _run(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


def test_help_describes_every_option():
    for cmd in ("run", "demo", "train-warper", "eval-warper"):
        command = cli.commands[cmd]
        for param in command.params:
            if getattr(param, "help", None) is None and param.param_type_name == "option":
                raise AssertionError(f"{cmd} {param.opts} has no help text")
        res = CliRunner().invoke(cli, [cmd, "--help"])
        assert res.exit_code == 0 and "--help" in res.output


def test_missing_file_one_line_error(capsys, tmp_path, samples):
    texture = samples / "texture" / "vangogh_the-starry-night.jpg"
    code = _run(["run", "--content", str(tmp_path / "nope.jpg"), "--texture", str(texture), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "nope.jpg" in err[0] and "no such file" in err[0]
    assert "Traceback" not in "".join(err)


def test_bad_option_value_one_line(capsys, tmp_path):
    code = _run(["run", "--content", "x.jpg", "--strength", "-3", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "strength" in err[0]


def test_end_to_end_with_extras(tmp_path, samples):
    out = tmp_path / "out.png"
    code = _run(["run", "-c", str(samples / "content" / "kodim04.jpg"), "-g", str(samples / "geometry" / "munch_the-scream.jpg"),
                 "-t", str(samples / "texture" / "vangogh_the-starry-night.jpg"), "--size", "96", "--scales", "96",
                 "--save-warped", "--save-field", "flo", "--save-sheet", "-o", str(out)])
    assert code == 0
    img = load_image(out)
    assert max(img.shape[-2:]) == 96
    for suffix in ("_warped.png", "_field.flo", "_field.png", "_sheet.jpg"):
        assert (tmp_path / f"out{suffix}").is_file()
    assert WarpField.load(tmp_path / "out_field.flo").grid.shape == (1, 16, 16, 2)


def test_api_and_cli_give_the_same_pixels(tmp_path, samples, pipeline):
    args = dict(size=80, scales=[80], strength=0.7, alpha=0.6, seed=3)
    api = pipeline.run(samples / "content" / "kodim23.jpg", samples / "geometry" / "munch_the-scream.jpg",
                       samples / "texture" / "kandinsky_composition-vii.jpg", **args).image
    out = tmp_path / "cli.png"
    code = _run(["run", "-c", str(samples / "content" / "kodim23.jpg"), "-g", str(samples / "geometry" / "munch_the-scream.jpg"),
                 "-t", str(samples / "texture" / "kandinsky_composition-vii.jpg"), "--size", "80", "--scales", "80",
                 "--strength", "0.7", "--alpha", "0.6", "--seed", "3", "-o", str(out)])
    assert code == 0
    cli_img = load_image(out)
    api_8bit = (api.clamp(0, 1) * 255).round() / 255
    assert torch.allclose(cli_img, api_8bit, atol=1 / 255 + 1e-6)


def test_batch_with_corrupt_file(tmp_path, samples, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("kodim04.jpg", "kodim23.jpg"):
        (folder / name).write_bytes((samples / "content" / name).read_bytes())
    (folder / "broken.jpg").write_bytes((samples / "content" / "kodim15.jpg").read_bytes()[:2000])
    (folder / "notes.png").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    code = _run(["run", "-c", str(folder), "-g", str(samples / "geometry" / "munch_the-scream.jpg"), "--size", "64",
                 "--no-progress", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "'" + str(folder / "broken.jpg") + "': truncated" in err
    assert "'" + str(folder / "notes.png") + "': not a recognised image format" in err
    assert "'" + str(folder / "empty.jpg") + "': file is empty" in err
    assert "2 of 5 done, 3 failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["kodim04.png", "kodim23.png"]


def test_version():
    res = CliRunner().invoke(cli, ["--version"])
    assert res.exit_code == 0 and "0.1.0" in res.output


def test_eval_warper_on_tiny_folder(tmp_path, samples, capsys):
    code = _run(["eval-warper", "--image-dir", str(samples / "content"), "--split", "all", "--pairs", "3",
                 "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0 and "identity" in out and "warper" in out
    import json

    r = json.loads((tmp_path / "r.json").read_text())["synthetic"]
    assert r["pairs"] == 3 and r["epe_identity"] > 0 and np.isfinite(r["epe"])
