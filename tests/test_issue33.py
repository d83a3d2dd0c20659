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
    message = str(e.value)
    assert message.startswith(f"cannot read '{path}': not enough memory to decode its 64x48 pixels (about ")
    assert "corrupt" not in message and "\n" not in message


# 8. decoding large inputs: the pre-flight from the headers, bands instead of full-size copies, one line -----------

@pytest.fixture(scope="module")
def pipeline():
    from warpstyle.pipeline import Pipeline

    return Pipeline.from_pretrained()


def _no_models(*a, **k):
    raise AssertionError("the models were loaded")


def test_i8_decode_cost_is_read_from_the_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    from adain.base.image import decode_cost

    path = _img(tmp_path / "big.png", (3000, 2000))
    monkeypatch.setattr(ImageFile.ImageFile, "load", _no_models)  # nothing may be decoded
    cost = decode_cost(path, working_size=500)  # 3000 // 500 = 6: 500x334, float32
    assert cost.size == (3000, 2000) and cost.result_bytes == 500 * 334 * 12
    # The 8-bit decode in Pillow's 4-byte layout, then the reduced image's RGB bytes and float copy.
    assert cost.peak_bytes == 3000 * 2000 * 4 + 500 * 334 * (4 + 15)
    assert decode_cost(path).peak_bytes == 3000 * 2000 * (4 + 15)  # full size: no reduction


def test_i8_decode_preflight_counts_the_inputs_decoded_before(tmp_path):
    from adain.base.errors import ImageError
    from adain.base.image import decode_cost
    from adain.base.memory import check_decode_memory

    a, b = _img(tmp_path / "a.png", (800, 600)), _img(tmp_path / "b.png", (800, 600))
    one = decode_cost(a)
    check_decode_memory([(a, None)], available=one.peak_bytes)
    with pytest.raises(ImageError) as e:  # each fits alone; b's decode beside a's result does not
        check_decode_memory([(a, None), (b, None)], available=one.peak_bytes)
    assert str(e.value).startswith(f"cannot read '{b}': not enough memory to decode its 800x600 pixels (about ")
    assert "available); give a smaller image or free memory" in str(e.value)


def test_i8_stylize_refuses_an_input_too_large_to_decode_before_loading_models(tmp_path, monkeypatch, capsys):
    import adain.base.memory

    c, s = _img(tmp_path / "c.png"), _img(tmp_path / "s.png", (1200, 1200))
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 2 * 2**20)  # 16x16 fits, 1200x1200 not
    monkeypatch.setattr("adain.styler.Styler.from_pretrained", _no_models)
    code, err = _run(adain_main, ["stylize", "-c", str(c), "-s", str(s), "--size", "64", "-o",
                                  str(tmp_path / "o.png")], capsys)
    line = _one_line_error(err, "adain")
    assert code == 2 and f"cannot read '{s}': not enough memory to decode its 1200x1200 pixels" in line


def test_i8_run_refuses_an_input_too_large_to_decode_before_loading_models(tmp_path, monkeypatch, capsys):
    import adain.base.memory

    c, t = _img(tmp_path / "c.png"), _img(tmp_path / "t.png", (1200, 1200))
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: adain.base.memory.MODELS_BYTES + 2 * 2**20)
    monkeypatch.setattr("warpstyle.pipeline.Pipeline.from_pretrained", _no_models)
    code, err = _run(ws_main, ["run", "-c", str(c), "-t", str(t), "--size", "64", "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and f"cannot read '{t}': not enough memory to decode its 1200x1200" in _one_line_error(err)


def test_i8_memory_error_while_decoding_is_one_cli_line_naming_the_file(tmp_path, monkeypatch, capsys):
    c = _img(tmp_path / "c.png", (64, 48))

    def no_memory(*a, **k):
        raise MemoryError("Unable to allocate 732. MiB for an array with shape (8000, 8000, 3) and data type float32")

    monkeypatch.setattr("adain.base.imagefile._pil_to_rgb_array", no_memory)
    code, err = _run(adain_main, ["stylize", "-c", str(c), "-s", str(c), "-o", str(tmp_path / "o.png")], capsys)
    line = _one_line_error(err, "adain")
    assert code == 2 and f"cannot read '{c}': not enough memory to decode its 64x48 pixels (about 1 MiB)" in line
    assert "corrupt" not in line and "Unable to allocate" not in line


def test_i8_memory_error_reading_the_file_names_it(tmp_path, monkeypatch):
    from pathlib import Path

    from adain.base.errors import ImageError
    from adain.base.image import load_image

    path = _img(tmp_path / "c.png")
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(ImageError, match=r"^cannot read '.*c\.png': not enough memory to read the file \("):
        load_image(path)


def _alpha_photo(w, h):
    import numpy as np

    g = np.random.default_rng(0)
    return Image.fromarray(g.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")


@pytest.mark.parametrize("mode", ["P", "P+transparency", "RGBA", "LA", "CMYK", "1", "I;16"])
def test_i8_banded_reduce_equals_the_whole_image_reduce(monkeypatch, mode):
    import adain.base.imagefile as image

    im = _alpha_photo(301, 97)
    im = (im.convert("L").convert("I;16") if mode == "I;16" else im.convert("RGB").convert("P")
          if mode.startswith("P") else im.convert(mode))
    if mode == "P+transparency":
        im.info["transparency"] = 3
    target = "I" if mode == "I;16" else "RGBA" if mode in ("P+transparency", "RGBA") else "LA" if mode == "LA" else (
        "RGB")
    whole = im.convert(target).reduce(4)
    monkeypatch.setattr(image, "_BAND_PIXELS", 2000)  # bands of 4 rows: 25 of them
    banded = image._reduce(im, 4)
    assert banded.mode == whole.mode and banded.size == whole.size == (76, 25)
    assert banded.tobytes() == whole.tobytes()


@pytest.mark.parametrize("kind", ["RGBA", "P", "rotated"])
def test_i8_no_second_full_size_image_while_decoding_to_the_working_size(tmp_path, monkeypatch, kind):
    """Only the decode itself is full size: no full-size conversion, premultiplied copy or turned copy."""
    import adain.base.imagefile as image
    from adain.base.image import load_image, resize_exact
    from PIL import ImageOps

    path = tmp_path / "big.png"
    quads = Image.new("RGB", (900, 600), (255, 0, 0))
    quads.paste((0, 255, 0), (450, 0, 900, 300))
    quads.paste((0, 0, 255), (0, 300, 450, 600))
    if kind == "rotated":
        exif = quads.getexif()
        exif[0x0112] = 6  # shown turned 90 degrees clockwise
        quads.save(path, exif=exif.tobytes())
    else:
        quads.convert(kind).save(path)
    full = load_image(path)
    calls = []
    for owner, name in ((Image.Image, "convert"), (Image.Image, "transpose"), (Image.Image, "reduce")):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda self, *a, _o=original, _n=name, **k: calls.append((_n, self.size))
                            or _o(self, *a, **k))
    exif_transpose = ImageOps.exif_transpose
    monkeypatch.setattr(ImageOps, "exif_transpose", lambda im, **k: calls.append(("exif", im.size)) or
                        exif_transpose(im, **k))
    monkeypatch.setattr(image, "_BAND_PIXELS", 20_000, raising=False)  # (absent before bands)
    small = load_image(path, working_size=100)  # 900 // 100 = 9
    full_size = [n for n, size in calls if size == (900, 600) and not (n == "reduce" and kind == "rotated")]
    assert full_size == [], f"full-size copies: {full_size}"
    assert tuple(small.shape[-2:]) == (-(-full.shape[-2] // 9), -(-full.shape[-1] // 9))
    assert float((resize_exact(full, tuple(small.shape[-2:])) - small).abs().mean()) < 0.02


def test_i8_batch_decodes_the_shared_texture_to_the_working_size(tmp_path, pipeline):
    c, t = _img(tmp_path / "c.png", (40, 30)), _img(tmp_path / "t.png", (1000, 600))
    [(_, result)] = list(pipeline.run_batch([c], texture=t, size=64))
    assert tuple(result.textures[0].shape[-2:]) == (40, 67)  # 1000 // 64 = 15: reduced, not 600x1000


def test_i8_video_decodes_the_shared_texture_to_the_working_size(tmp_path, pipeline):
    from warpstyle.pipeline import PipelineOptions
    from warpstyle.video.temporal import TemporalStylizer

    t = _img(tmp_path / "t.png", (1000, 600))
    stylizer = TemporalStylizer(pipeline, None, t, PipelineOptions(size=64))
    assert tuple(stylizer.prep.textures[0].shape[-2:]) == (40, 67)


# 9. the demo: uploads decoded to the working size, a cache bounded by bytes, uploads that cannot fit refused -----

def test_i9_demo_decodes_uploads_to_the_working_size_and_caches_them_so(tmp_path, pipeline):
    from warpstyle.app.demo import DemoEngine

    engine = DemoEngine(lambda: pipeline)
    out = engine.run(str(_img(tmp_path / "c.png", (900, 600))), None, str(_img(tmp_path / "t.png", (1000, 600))),
                     size=64)
    assert out.result.size == (64, 42)
    [bank] = [v for k, v in engine.cache.items() if k[0] == "texture"]
    assert tuple(bank.images[0].shape[-2:]) == (40, 67)  # at the working size, not 600x1000
    assert engine.cache.nbytes() < 100_000


def test_i9_demo_cache_is_bounded_by_bytes():
    from warpstyle.app.demo import CACHE_BYTES, DemoEngine, _LRUCache

    cache = _LRUCache(6, max_bytes=1000)
    for key in "abc":
        cache[key] = {"features": torch.zeros(100)}  # 400 bytes each
    assert list(cache) == ["b", "c"] and cache.nbytes() == 800
    cache["d"] = (torch.zeros(1000),)  # over the budget alone: not kept
    assert "d" not in cache and cache.nbytes() <= 1000
    assert DemoEngine(lambda: None).cache.max_bytes == CACHE_BYTES == 256 * 2**20


def test_i9_demo_refuses_an_upload_it_cannot_decode_naming_it(tmp_path, pipeline, monkeypatch):
    import adain.base.memory
    from warpstyle.app.demo import DemoEngine

    engine = DemoEngine(lambda: pipeline)
    monkeypatch.setattr(adain.base.memory, "available_bytes", lambda: 2 * 2**20)
    with pytest.raises(StyleTransferError) as e:
        engine.run(str(_img(tmp_path / "c.png")), None, str(_img(tmp_path / "upload" / "holiday.png", (1200, 1200))),
                   size=64)
    message = str(e.value)
    assert message.startswith("cannot read 'holiday.png': not enough memory to decode its 1200x1200 pixels (about ")
    assert message.endswith("(the texture image)") and str(tmp_path) not in message
