"""Option validation of the ``warpstyle`` command (issue 15 cases 9, 10, 14)."""

import pytest
from PIL import Image

from warpstyle.app.cli import main


def _run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr().err


def _img(path, size=(16, 16)):
    Image.new("RGB", size, (120, 80, 40)).save(path)
    return str(path)


def test_nan_texture_weight_is_refused(tmp_path, capsys):
    c, t = _img(tmp_path / "c.png"), _img(tmp_path / "t.png")
    code, err = _run(["run", "-c", c, "-t", t, "--texture-weight", "nan", "--size", "32", "-o",
                      str(tmp_path / "o.png")], capsys)
    assert code == 2 and "texture_weights must be finite and >= 0; got nan" in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("device", ["mps", "meta", "xla"])
def test_unsupported_device(tmp_path, capsys, device):
    c = _img(tmp_path / "c.png")
    code, err = _run(["run", "-c", c, "-t", c, "--device", device, "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and err.strip() == f"warpstyle: error: device must be auto, cpu, cuda or cuda:N; got '{device}'"


def test_scales_error_names_the_option(tmp_path, capsys):
    c = _img(tmp_path / "c.png")
    code, err = _run(["run", "-c", c, "-t", c, "--scales", "4", "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and "--scales" in err


def test_seed_beyond_64_bits(tmp_path, capsys):
    c = _img(tmp_path / "c.png")
    code, err = _run(["run", "-c", c, "--seed", str(2**64), "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and "--seed" in err and "Overflow" not in err
