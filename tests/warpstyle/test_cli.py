import os
import stat

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from adain.base.image import load_image
from warpstyle.app.cli import cli, main
from warpstyle.fields.field import WarpField


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
    # The field as applied, at the output's resolution (issue 15 case 13), not the 16x16 estimate.
    assert WarpField.load(tmp_path / "out_field.flo").grid.shape == (1, *img.shape[-2:], 2)


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


# Issue 15: never lose a user's file, never report a false success, never waste a run on a bad path.
CONTENT = "content/kodim23.jpg"
GEOMETRY = "geometry/munch_the-scream.jpg"
TEXTURE = "texture/vangogh_the-starry-night.jpg"


def _no_models(monkeypatch):
    from warpstyle.pipeline import Pipeline
    from warpstyle.geometry.warper import Warper

    def boom(*a, **k):
        raise AssertionError("models were loaded before the paths were checked")

    monkeypatch.setattr(Pipeline, "from_pretrained", boom)
    monkeypatch.setattr(Warper, "from_pretrained", boom)


def _copy_inputs(tmp_path, samples):
    paths = {}
    for key, rel in (("content", CONTENT), ("geometry", GEOMETRY), ("texture", TEXTURE)):
        paths[key] = tmp_path / f"{key[0]}.jpg"
        paths[key].write_bytes((samples / rel).read_bytes())
    return paths


@pytest.mark.parametrize("which", ["content", "geometry", "texture"])
def test_output_equal_to_an_input_is_refused(tmp_path, samples, capsys, monkeypatch, which):
    # Case 1: `warpstyle run -c c.jpg -t t.jpg -o c.jpg` overwrote c.jpg and exited 0.
    p = _copy_inputs(tmp_path, samples)
    before = p[which].read_bytes()
    _no_models(monkeypatch)
    code = _run(["run", "-c", str(p["content"]), "-g", str(p["geometry"]), "-t", str(p["texture"]), "--size", "32",
                 "-o", str(p[which])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"it is the --{which} input" in err[0]
    assert p[which].read_bytes() == before


def test_side_output_onto_an_input_is_refused(tmp_path, samples, capsys, monkeypatch):
    # --save-warped writes <output>_warped.png: that must not replace an input either.
    tex = tmp_path / "o_warped.png"
    tex.write_bytes(b"precious")
    p = _copy_inputs(tmp_path, samples)
    _no_models(monkeypatch)
    code = _run(["run", "-c", str(p["content"]), "-g", str(p["geometry"]), "-t", str(tex), "--save-warped",
                 "-o", str(tmp_path / "o.png")])
    assert code == 2 and "it is the --texture input" in capsys.readouterr().err
    assert tex.read_bytes() == b"precious"


def _folder(tmp_path, samples, names, folder="in"):
    root = tmp_path / folder
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((samples / "content" / "kodim04.jpg").read_bytes())
    return root


def test_batch_output_is_the_input_folder(tmp_path, samples, capsys, monkeypatch):
    # Case 2: `warpstyle run -c in -t t.jpg -o in` replaced every input with its stylized version.
    root = _folder(tmp_path, samples, ["a.jpg", "b.png"])
    # b.png would be replaced by its own output; a.jpg would gain a sibling a.png.
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    _no_models(monkeypatch)
    code = _run(["run", "-c", str(root), "--size", "32", "--no-progress", "-o", str(root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "it is the input folder" in err[-1]
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before


def test_batch_output_inside_the_input_folder_and_earlier_runs(tmp_path, samples, capsys):
    # Case 2: with -o in/out a second run stylized its own outputs; case 3: earlier outputs are
    # refused by default, kept with --skip-existing, replaced with --overwrite.
    root = _folder(tmp_path, samples, ["a.jpg", "a.png", "x/c.jpg", "y/c.jpg"])
    out = root / "out"
    base = ["run", "-c", str(root), "--size", "24", "--no-progress", "-o", str(out)]
    assert _run(base) == 0
    assert "4 of 4 done, 0 failed" in capsys.readouterr().err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a_jpg.png", "a_png.png", "x/c.png", "y/c.png"]  # case 3: no output lost
    first = {p: p.read_bytes() for p in out.rglob("*.png")}
    (out / "a_png.png").write_bytes(b"edited by the user")

    assert _run(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "4 images under the output folder" in err[-2]  # (after the no-geometry-no-texture warning)
    assert "--skip-existing" in err[-1] and "--overwrite" in err[-1]
    assert (out / "a_png.png").read_bytes() == b"edited by the user"

    (out / "y" / "c.png").unlink()
    assert _run(base + ["--skip-existing"]) == 0
    assert "1 of 1 done, 0 failed, 3 skipped" in capsys.readouterr().err
    assert (out / "a_png.png").read_bytes() == b"edited by the user" and (out / "y" / "c.png").is_file()

    # Issue 33 item 4: --overwrite replaces only files this program wrote, not the user's edit.
    assert _run(base + ["--overwrite"]) == 2
    assert "not written by this program" in capsys.readouterr().err
    assert (out / "a_png.png").read_bytes() == b"edited by the user"
    (out / "a_png.png").write_bytes(first[out / "a_png.png"])
    assert _run(base + ["--overwrite"]) == 0
    assert "4 of 4 done, 0 failed" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == first
    assert not (out / "out").exists()  # its own outputs never became inputs


def test_batch_same_name_from_two_folders_is_refused(tmp_path, samples, capsys, monkeypatch):
    one = _folder(tmp_path, samples, ["x.jpg"], folder="one")
    two = _folder(tmp_path, samples, ["x.jpg"], folder="two")
    _no_models(monkeypatch)
    code = _run(["run", "-c", str(one), "-c", str(two), "--no-progress", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 2 and "would both write it" in err[1]


@pytest.mark.parametrize("case", ["gif", "missing-folder", "missing-geometry"])
def test_paths_checked_before_models_load(tmp_path, samples, capsys, monkeypatch, case):
    # Case 12: `-o out.gif` failed after the whole run; a missing folder after the models loaded.
    content, geometry, out = str(samples / CONTENT), str(samples / GEOMETRY), str(tmp_path / "o.png")
    if case == "gif":
        out = str(tmp_path / "o.gif")
    elif case == "missing-folder":
        content = str(tmp_path / "no-such-folder")
    else:
        geometry = str(tmp_path / "g.jpg")
    _no_models(monkeypatch)
    code = _run(["run", "-c", content, "-g", geometry, "-o", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert {"gif": "unknown output extension '.gif'", "missing-folder": "no-such-folder': no such file or folder",
            "missing-geometry": "g.jpg': no such file"}[case] in err[0]


def test_eval_warper_json_onto_a_fifo_is_refused_first(tmp_path, samples, capsys, monkeypatch):
    # Case 6: `--json /dev/full` (as root) replaced the device node; a FIFO stands in for it.
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    _no_models(monkeypatch)
    code = _run(["eval-warper", "--image-dir", str(samples / "content"), "--pairs", "1", "--json", str(fifo)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "it exists and is a FIFO" in err[0]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _run(["eval-warper", "--image-dir", str(tmp_path / "nope"), "--pairs", "1"]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["npy", "flo"])
def test_saved_field_reproduces_the_output(tmp_path, samples, fmt):
    # Case 13: --save-field wrote the raw 16x16 estimate, ignoring --strength and --smoothness.
    from warpstyle.geometry.warper import Warper

    fields = {}
    for strength in ("0.5", "2"):
        out = tmp_path / f"s{strength}.png"
        code = _run(["run", "-c", str(samples / CONTENT), "-g", str(samples / GEOMETRY), "--size", "64",
                     "--strength", strength, "--smoothness", "1.5", "--save-warped", "--save-field", fmt, "-o", str(out)])
        assert code == 0
        field = WarpField.load(tmp_path / f"s{strength}_field.{fmt}")
        warped = load_image(tmp_path / f"s{strength}_warped.png")
        assert field.shape == tuple(warped.shape[-2:]) and max(field.shape) == 64
        again = Warper.apply(load_image(samples / CONTENT, working_size=64), field, smoothness=0, size=field.shape)
        assert (again - warped).abs().max() <= 1 / 255 + 1e-4  # the PNG holds 8 bits
        fields[strength] = field.grid
    assert not torch.allclose(fields["0.5"], fields["2"], atol=1e-3)


def test_single_run_progress_per_pass(tmp_path, samples, capsys):
    # Case 15: a long single run printed nothing until the end.
    code = _run(["run", "-c", str(samples / CONTENT), "-t", str(samples / TEXTURE), "--size", "64", "--scales", "32,64",
                 "--progress", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 0 and "warpstyle run" in err and "100%" in err and "2 passes done" in err


def test_align_flag_reaches_the_warper(tmp_path, samples, pipeline, monkeypatch):
    import warpstyle.geometry.warper as warper_module
    from warpstyle.geometry.align import Similarity

    # a stand-in for the search's answer (a zoom), so that the test shows the wiring, not the search
    monkeypatch.setattr(warper_module, "search_similarity", lambda *a, **k: Similarity(0.7, 0.0, (0.1, 0.0)))
    c, g = samples / "content" / "kodim23.jpg", samples / "geometry" / "munch_the-scream.jpg"
    out = tmp_path / "aligned.png"
    assert _run(["run", "-c", str(c), "-g", str(g), "--size", "64", "--align", "-o", str(out)]) == 0
    api = pipeline.run(c, g, size=64, align=True).image
    plain = pipeline.run(c, g, size=64).image
    cli_img = load_image(out)
    assert torch.allclose(cli_img, (api.clamp(0, 1) * 255).round() / 255, atol=1 / 255 + 1e-6)
    assert not torch.allclose(api, plain, atol=0.05)  # the similarity moved the content
    # with per-pair refinement the aligned field is the starting point (the refined one differs from both)
    aligned_field = pipeline.run(c, g, size=64, align=True).field.grid
    refined_field = pipeline.run(c, g, size=64, align=True, warp_refine=3).field.grid
    plain_refined = pipeline.run(c, g, size=64, warp_refine=3).field.grid
    assert not torch.allclose(refined_field, aligned_field) and not torch.allclose(refined_field, plain_refined, atol=0.02)


def test_eval_warper_with_align(tmp_path, samples, capsys, monkeypatch):
    import warpstyle.geometry.warper as warper_module

    calls = []
    real = warper_module.search_similarity
    monkeypatch.setattr(warper_module, "search_similarity", lambda *a, **k: calls.append(a[1].shape[0]) or real(*a, **k))
    code = _run(["eval-warper", "--image-dir", str(samples / "content"), "--split", "all", "--pairs", "2",
                 "--align", "--json", str(tmp_path / "r.json")])
    assert code == 0 and calls == [1, 1]  # each pair was estimated with the alignment search
    import json

    r = json.loads((tmp_path / "r.json").read_text())["synthetic"]
    assert r["pairs"] == 2 and np.isfinite(r["epe"])
    # the older matcher on request, from the features alone
    matched = []
    real_match = warper_module.estimate_similarity
    monkeypatch.setattr(warper_module, "estimate_similarity", lambda fc, *a, **k: matched.append(fc.shape[0]) or real_match(fc, *a, **k))
    code = _run(["eval-warper", "--image-dir", str(samples / "content"), "--split", "all", "--pairs", "2",
                 "--align", "--align-method", "matches"])
    assert code == 0 and matched == [2] and calls == [1, 1]  # one batch of two, features only
