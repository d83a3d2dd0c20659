"""Red-team round 2 (issue 33): each test names the issue's item number and fails on the code before the fix."""

from __future__ import annotations

import os
import socket
import stat

import pytest
import torch
from PIL import Image

from adain.base.errors import CheckpointError, OutputError, StyleTransferError
from adain.base.storage.files import atomic_path, check_output_path
from adain.base.image import save_image
from adain.cli import main as adain_main
from warpstyle.app.cli import main as ws_main


def _run(main, args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr().err


def _img(path, size=(16, 16), colour=(120, 80, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _one_line_error(err, prog="warpstyle"):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


# 1. eval-warper --json never replaces an input -------------------------------------------------------------

def test_i1_eval_json_onto_a_photo_of_image_dir_is_refused(tmp_path, capsys):
    photo = _img(tmp_path / "in" / "kodim04.jpg")
    before = photo.read_bytes()
    code, err = _run(ws_main, ["eval-warper", "--image-dir", str(tmp_path / "in"), "--json", str(photo)], capsys)
    assert code == 2 and "--image-dir" in _one_line_error(err)
    assert photo.read_bytes() == before


def test_i1_eval_json_onto_the_warper_is_refused(tmp_path, capsys):
    _img(tmp_path / "in" / "a.jpg")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    code, err = _run(ws_main, ["eval-warper", "--image-dir", str(tmp_path / "in"), "--warper", str(weights),
                               "--json", str(weights)], capsys)
    assert code == 2 and "--warper" in _one_line_error(err)
    assert weights.read_bytes() == b"weights"


# 2. trainers never overwrite a folder's files without a checkpoint to resume ----------------------------------

def _train_args(tmp_path, out):
    _img(tmp_path / "c" / "a.jpg", (64, 64))
    _img(tmp_path / "s" / "b.jpg", (64, 64))
    return ["train-styler", "--content-dir", str(tmp_path / "c"), "--style-dir", str(tmp_path / "s"),
            "--output-dir", str(out), "--iterations", "1", "--no-progress"]


@pytest.mark.parametrize("held", ["config.json", "losses.csv", "decoder.safetensors", "samples/mine.jpg"])
def test_i2_new_run_refuses_a_folder_holding_run_files(tmp_path, capsys, held):
    out = tmp_path / "run"
    f = out / held
    f.parent.mkdir(parents=True)
    f.write_text("the user's own")
    code, err = _run(adain_main, _train_args(tmp_path, out), capsys)
    assert code == 2 and held.split("/")[0] in _one_line_error(err, "adain")
    assert f.read_text() == "the user's own"


def test_i2_resume_auto_without_checkpoint_does_not_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "losses.csv").write_text("iteration,x\n1,2\n2,3\n")
    code, err = _run(adain_main, [*_train_args(tmp_path, out), "--resume", "auto"], capsys)
    assert code == 2 and "losses.csv" in _one_line_error(err, "adain")
    assert (out / "losses.csv").read_text().count("\n") == 3


def test_i2_init_decoder_inside_its_own_run_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "decoder.safetensors").write_bytes(b"w")
    code, err = _run(adain_main, [*_train_args(tmp_path, out), "--init-decoder", str(out / "decoder.safetensors")],
                     capsys)
    assert code == 2 and "--init-decoder" in _one_line_error(err, "adain")
    assert (out / "decoder.safetensors").read_bytes() == b"w"


# 3. export never writes onto its own weights ------------------------------------------------------------------

def test_i3_export_card_onto_the_decoder_weights_is_refused(tmp_path, capsys):
    out = tmp_path / "exp3"
    out.mkdir()
    weights = out / "decoder.json"
    weights.write_bytes(b"weights")
    code, err = _run(ws_main, ["export", "--format", "torchscript", "-o", str(out), "--model", "decoder",
                               "--decoder", str(weights)], capsys)
    assert code == 2 and "--decoder" in _one_line_error(err)
    assert weights.read_bytes() == b"weights"


# 4. --overwrite replaces only earlier outputs, never a user's photo ---------------------------------------------

def test_i4_overwrite_keeps_a_real_photo_in_the_output_folder(tmp_path, capsys):
    _img(tmp_path / "in3" / "a.jpg")
    photo = _img(tmp_path / "in3" / "sub" / "a.png", colour=(1, 2, 3))
    before = photo.read_bytes()
    code, err = _run(ws_main, ["run", "-c", str(tmp_path / "in3"), "-t", str(tmp_path / "in3" / "a.jpg"),
                               "-o", str(tmp_path / "in3" / "sub"), "--overwrite", "--size", "16"], capsys)
    assert code == 2 and "not written by this program" in err
    assert photo.read_bytes() == before


def test_i4_outputs_carry_the_marker(tmp_path):
    from adain.base.image import is_marked_output

    for name in ("o.png", "o.jpg"):
        save_image(torch.rand(1, 3, 8, 8), tmp_path / name)
        assert is_marked_output(tmp_path / name)
    assert not is_marked_output(_img(tmp_path / "photo.png"))


# 5. permissions of replaced files ---------------------------------------------------------------------------

def test_i5_replaced_file_keeps_its_mode(tmp_path):
    out = tmp_path / "o.png"
    save_image(torch.rand(1, 3, 8, 8), out)
    os.chmod(out, 0o600)
    save_image(torch.rand(1, 3, 8, 8), out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_i5_read_only_output_is_refused_unless_told(tmp_path):
    out = tmp_path / "o.png"
    save_image(torch.rand(1, 3, 8, 8), out)
    os.chmod(out, 0o444)
    before = out.read_bytes()
    with pytest.raises(OutputError, match="read-only"):
        save_image(torch.zeros(1, 3, 8, 8), out)
    assert out.read_bytes() == before
    save_image(torch.zeros(1, 3, 8, 8), out, replace_readonly=True)
    assert out.read_bytes() != before and stat.S_IMODE(os.stat(out).st_mode) == 0o444


# 10. non-finite weights and results ---------------------------------------------------------------------------

def _nan_decoder(path):
    from adain.decoder import Decoder

    torch.save({k: torch.full_like(v, float("nan")) for k, v in Decoder().state_dict().items()}, path)
    return path


def test_i10_nan_decoder_is_refused_at_load_naming_the_file(tmp_path, capsys):
    dec = _nan_decoder(tmp_path / "nan_decoder.pth")
    c = _img(tmp_path / "c.png")
    code, err = _run(adain_main, ["stylize", "-c", str(c), "-s", str(c), "--decoder", str(dec), "-o",
                                  str(tmp_path / "o.png")], capsys)
    assert code == 2 and "nan_decoder.pth" in _one_line_error(err, "adain") and "NaN" in err
    assert not (tmp_path / "o.png").exists()


def test_i10_nan_warper_message_names_the_file(tmp_path):
    from warpstyle.geometry.warper import Warper

    w = Warper.from_pretrained()
    path = tmp_path / "nan_warper.pth"
    torch.save({k: torch.full_like(v, float("nan")) for k, v in w.regressor.state_dict().items()}, path)
    with pytest.raises(CheckpointError, match="nan_warper.pth"):
        Warper.from_pretrained(path)


def test_i10_non_finite_result_is_not_written(tmp_path):
    from adain.base.errors import ImageError

    with pytest.raises(ImageError, match="NaN"):
        save_image(torch.full((1, 3, 8, 8), float("nan")), tmp_path / "o.png")
    assert not (tmp_path / "o.png").exists()


# 11. side files that cannot be written are refused up front -----------------------------------------------------

@pytest.mark.parametrize("flags", [["--save-field", "npy"], ["--save-warped"]])
def test_i11_side_files_without_geometry_are_refused(tmp_path, capsys, flags):
    c = _img(tmp_path / "c.png")
    code, err = _run(ws_main, ["run", "-c", str(c), "-t", str(c), *flags, "-o", str(tmp_path / "f.png")], capsys)
    assert code == 2 and "--geometry" in _one_line_error(err) and flags[0] in err
    assert not (tmp_path / "f.png").exists()


# 12. one line instead of a traceback -------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["file", "/dev/full"])
def test_i12_trainer_output_dir_that_is_not_a_folder(tmp_path, capsys, target):
    out = tmp_path / "afile" if target == "file" else target
    if target == "file":
        out.write_text("x")
    code, err = _run(adain_main, _train_args(tmp_path, out), capsys)
    assert code == 2 and "not a folder" in _one_line_error(err, "adain")


def test_i12_unwritable_folder_is_refused_before_work(tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if str(p) == str(tmp_path) else real(p, m, **kw))
    with pytest.raises(OutputError, match="not writable"):
        check_output_path(tmp_path / "out.json")


def test_i12_atomic_path_turns_os_errors_into_one_line(tmp_path, monkeypatch):
    import tempfile

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", deny)
    with pytest.raises(OutputError, match="permission denied"):
        with atomic_path(tmp_path / "x.json"):
            pass


def test_i12_demo_port_in_use_is_one_line():
    from warpstyle.app.demo import launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(StyleTransferError, match="choose another --port"):
            launch(None, host="127.0.0.1", port=port, block=False)


# 7. a zip-compressed legacy .pt is refused before it expands ---------------------------------------------------

def test_i7_compressed_zero_tensor_checkpoint_is_refused_before_loading(tmp_path, monkeypatch):
    import zipfile

    from adain.decoder import Decoder

    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(20 * 2**20)}, plain)  # 80 MB of zeros
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 2**20

    def no_load(*a, **k):
        raise AssertionError("torch.load reached")

    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(CheckpointError, match="bomb.pt.*refused: its entries expand"):
        Decoder.from_pretrained(bomb)


# 6. every size and count of the trainers has an upper bound ------------------------------------------------------

@pytest.mark.parametrize("key", ["workers", "load_size", "batch_size"])
def test_i6_huge_training_values_are_refused(key):
    from adain.base.errors import ConfigError
    from adain.config import StylerTrainConfig
    from warpstyle.training.config import WarperTrainConfig

    for cls in (StylerTrainConfig, WarperTrainConfig):
        with pytest.raises(ConfigError, match=key):
            cls(**{key: 100000})


def test_i6_huge_workers_flag_is_one_line(tmp_path, capsys):
    code, err = _run(ws_main, ["train-warper", "--image-dir", str(tmp_path), "--workers", "100000"], capsys)
    assert code == 2 and "--workers" in _one_line_error(err)


# 13. messages -----------------------------------------------------------------------------------------------------

def test_i13_same_folder_twice_is_one_input(tmp_path):
    from adain.base.storage.outputs import plan_batch

    _img(tmp_path / "in2" / "a.jpg")
    plan = plan_batch([tmp_path / "in2", tmp_path / "in2"], tmp_path / "out")
    assert [it.input.name for it in plan.items] == ["a.jpg"]


def test_i13_input_folder_inside_the_output_folder_holds_inputs(tmp_path):
    from adain.base.storage.outputs import plan_batch

    _img(tmp_path / "out" / "in" / "a.jpg")
    plan = plan_batch([tmp_path / "out" / "in"], tmp_path / "out")
    assert [it.input.name for it in plan.items] == ["a.jpg"] and not plan.excluded


def test_i13_weights_file_as_resume_says_what_it_is(tmp_path):
    from adain.base.storage.checkpoint import load_checkpoint
    from adain.decoder import Decoder

    path = tmp_path / "decoder.safetensors"
    Decoder().save(path) if hasattr(Decoder, "save") else None
    if not path.exists():
        from adain.base.storage.weights import save_weights

        save_weights(path, "Decoder", Decoder().state_dict(), {}, {})
    with pytest.raises(CheckpointError, match="weights file.*not a 'adain.train' training checkpoint") as e:
        load_checkpoint(path, expected_format="adain.train")
    assert "operand" not in str(e.value)


def test_i13_truncated_checkpoint_message_is_not_cut_mid_sentence(tmp_path, monkeypatch):
    from adain.base.storage.checkpoint import load_checkpoint

    path = tmp_path / "ck.pt"
    torch.save({"format": "adain.train"}, path)

    def cut(*a, **k):
        raise RuntimeError("PytorchStreamReader failed reading file data/0: file read failed at the record of "
                           "the tensor storage declared in the archive. " + "More detail follows here " * 10)

    monkeypatch.setattr(torch, "load", cut)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, expected_format="adain.train")
    assert str(e.value).endswith("declared in the archive)"), str(e.value)


def test_i13_trainer_out_of_memory_names_its_own_options(monkeypatch, capsys, tmp_path):
    import adain.cli as acli

    def boom(*a, **k):
        raise MemoryError

    monkeypatch.setattr("adain.train.train_styler", boom)
    out = _train_args(tmp_path, tmp_path / "run")
    code, err = _run(adain_main, out, capsys)
    assert code == 2 and "--batch-size" in err and "--size 1024" not in err


def test_i13_scales_above_the_output_size_are_refused(tmp_path, capsys):
    c = _img(tmp_path / "c.png")
    code, err = _run(ws_main, ["run", "-c", str(c), "-t", str(c), "--size", "256", "--scales", "16384",
                               "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and "--scales" in _one_line_error(err) and "16384" in err


# 8. (part) a MemoryError while decoding is reported as memory, not corruption -------------------------------------

def test_i8_memory_error_while_decoding_is_reported_as_memory(tmp_path, monkeypatch):
    from adain.base.errors import ImageError
    from adain.base.image import load_image

    path = _img(tmp_path / "big.png", (64, 48))

    def no_memory(*a, **k):
        raise MemoryError("Unable to allocate 732. MiB for an array with shape (8000, 8000, 3) and data type float32")

    monkeypatch.setattr("adain.base.imagefile._pil_to_rgb_array", no_memory)
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert "out of memory decoding its 64x48 pixels" in str(e.value) and "corrupt" not in str(e.value)
