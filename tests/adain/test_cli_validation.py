"""Option validation of the ``adain`` command: one line, exit 2, naming the option (issue 15)."""

import pytest

from adain.cli import main


def _run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    return e.value.code, err


def test_crop_size_below_16_is_refused(tmp_path, capsys):
    code, err = _run(["train-styler", "--content-dir", str(tmp_path), "--style-dir", str(tmp_path),
                      "--crop-size", "8", "--output-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and "--crop-size" in err and "8 is not in the range 16<=x<=4096" in err
    assert len(err.strip().splitlines()) == 1


def test_seed_beyond_64_bits_is_refused(tmp_path, capsys):
    code, err = _run(["train-styler", "--content-dir", str(tmp_path), "--style-dir", str(tmp_path),
                      "--seed", str(2**70), "--output-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and "--seed" in err and "Overflow" not in err


def test_config_file_iterations_refused_before_training(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'content_dir = "{tmp_path}"\nstyle_dir = "{tmp_path}"\noutput_dir = "{tmp_path / "run"}"\n'
                   "iterations = -5\n")
    code, err = _run(["train-styler", "--config", str(cfg)], capsys)
    assert code == 2 and "iterations must be >= 1; got -5" in err
    assert not (tmp_path / "run").exists()


def _img(path, size=(16, 16)):
    from PIL import Image

    Image.new("RGB", size, (120, 80, 40)).save(path)
    return str(path)


@pytest.mark.parametrize("weight", ["nan", "inf"])
def test_non_finite_weight_is_refused(tmp_path, capsys, weight):
    c, s = _img(tmp_path / "c.png"), _img(tmp_path / "s.png")
    code, err = _run(["stylize", "-c", c, "-s", s, "--weight", weight, "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and f"weights must be finite and >= 0; got {weight}" in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("device", ["mps", "meta", "xla"])
def test_unsupported_device_is_one_line_without_config_prefix(tmp_path, capsys, device):
    c = _img(tmp_path / "c.png")
    code, err = _run(["stylize", "-c", c, "-s", c, "--device", device, "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and err.strip() == f"adain: error: device must be auto, cpu, cuda or cuda:N; got '{device}'"
    code, err = _run(["train-styler", "--content-dir", str(tmp_path), "--style-dir", str(tmp_path), "--device", device,
                      "--output-dir", str(tmp_path / "run"), "--iterations", "1"], capsys)
    assert code == 2 and "device must be auto, cpu, cuda or cuda:N" in err and "config" not in err
    assert len(err.strip().splitlines()) == 1


def test_scales_error_names_the_option(tmp_path, capsys):
    c = _img(tmp_path / "c.png")
    code, err = _run(["stylize", "-c", c, "-s", c, "--scales", "256,abc", "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and "--scales" in err and "256,abc" in err


def test_one_pixel_content_says_what_the_image_was(tmp_path, capsys):
    c, s = _img(tmp_path / "c.png", (1, 1)), _img(tmp_path / "s.png")
    code, err = _run(["stylize", "-c", c, "-s", s, "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and "content is 1x1 px" in err and "--size" in err
