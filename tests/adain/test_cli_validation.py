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
    assert code == 2 and "--crop-size" in err and "8 is not in the range x>=16" in err
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
