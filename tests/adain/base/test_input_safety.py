"""Inputs that used to give silent nonsense or misleading messages (issue 15 cases 9, 10, 14)."""

import os
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from adain.base.storage.checkpoint import checkpoint_digest, load_checkpoint, load_error_detail, save_checkpoint, training_header
from adain.base.checks import check_device, check_image, check_weights
from adain.base.config import load_config
from adain.base.errors import CheckpointError, ConfigError, ImageError
from adain.base.storage.files import input_file_problem
from adain.base.image import load_image
from adain.config import StylerTrainConfig


# --- devices and meta tensors ---


@pytest.mark.parametrize("name", ["mps", "meta", "xla", "gpu", "cuda:x"])
def test_unsupported_devices_are_one_line_value_errors(name):
    with pytest.raises(ValueError, match=rf"^device must be cpu, cuda or cuda:N; got '{name}'$"):
        check_device(name)
    from adain.base.training import resolve_device

    with pytest.raises(ValueError, match=rf"^device must be auto, cpu, cuda or cuda:N; got '{name}'$"):
        resolve_device(name)


def test_device_checks_at_the_api():
    from adain.styler import Styler
    from warpstyle.geometry.warper import Warper

    assert check_device(torch.device("cpu")) == torch.device("cpu") and check_device(None) is None
    for load in (Styler.from_pretrained, Warper.from_pretrained):
        with pytest.raises(ValueError, match="device must be cpu, cuda or cuda:N; got 'meta'"):
            load(device="meta")


def test_meta_tensors_are_refused_by_name():
    with pytest.raises(ValueError, match="^content is on the meta device, which holds no data"):
        check_image(torch.empty(1, 3, 8, 8, device="meta"), "content")


# --- weights ---


@pytest.mark.parametrize("weights, msg", [
    ([float("nan")], "weights must be finite and >= 0; got nan"),
    ([float("inf")], "weights must be finite and >= 0; got inf"),
    ([1.0, -1.0], "weights must be finite and >= 0; got -1.0"),
    ([0.0, 0.0], r"weights must not all be zero; got \[0.0, 0.0\]"),
])
def test_weights_that_would_give_flat_grey_are_refused(weights, msg):
    with pytest.raises(ValueError, match=f"^{msg}$"):
        check_weights(weights, "weights", len(weights))
    assert check_weights([0, 3], "weights", 2) == [0.0, 3.0]


def test_styler_refuses_nan_weight():
    from adain.decoder import Decoder
    from adain.base.encoder.vgg import VGGEncoder
    from adain.styler import Styler

    s = Styler(VGGEncoder(), Decoder())
    with pytest.raises(ValueError, match="weights must be finite and >= 0; got nan"):
        s.stylize(torch.rand(1, 3, 16, 16), [torch.rand(1, 3, 16, 16)], weights=[float("nan")])


def test_tiny_content_message_names_the_image():
    from adain.decoder import Decoder
    from adain.base.encoder.vgg import VGGEncoder
    from adain.styler import Styler

    s = Styler(VGGEncoder(), Decoder())
    with pytest.raises(ValueError, match=r"^content is 1x1 px, too small to stylize at its own size .* give size"):
        s.stylize(torch.rand(1, 3, 1, 1), [torch.rand(1, 3, 16, 16)])


# --- image files ---


def test_float_tiff_with_an_infinite_pixel_is_refused(tmp_path):
    arr = np.full((8, 8), 100.0, dtype=np.float32)
    arr[3, 3] = np.inf
    path = tmp_path / "f.tif"
    Image.fromarray(arr, mode="F").save(path)
    with pytest.raises(ImageError, match=r"float image has 1 non-finite pixel\(s\) \(NaN or infinity\)"):
        load_image(path)
    arr[3, 3] = 100.0
    Image.fromarray(arr, mode="F").save(path)
    assert torch.allclose(load_image(path), torch.full((1, 3, 8, 8), 100 / 255))


def test_oversized_icc_profile_is_named(tmp_path):
    path = tmp_path / "icc.png"
    Image.new("RGB", (8, 8)).save(path, icc_profile=os.urandom(2 * 2**20))
    with pytest.raises(ImageError, match="embedded ICC profile or text\\) is over Pillow's 1 MiB safety limit"):
        load_image(path)


def test_special_files_are_named_not_empty(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"not a regular file \(a FIFO \(named pipe\)\)"):
        load_image(fifo)
    if os.path.exists("/dev/urandom"):
        with pytest.raises(ImageError, match=r"not a regular file \(a character device\)"):
            load_image("/dev/urandom")
    loop = tmp_path / "loop.png"
    os.symlink(loop, loop)
    with pytest.raises(ImageError, match="symbolic link loop"):
        load_image(loop)
    dangling = tmp_path / "dangling.png"
    os.symlink(tmp_path / "gone.png", dangling)
    assert input_file_problem(dangling) == "broken symbolic link (its target does not exist)"
    with pytest.raises(ImageError, match="is a directory, not an image file"):
        load_image(tmp_path)
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        assert input_file_problem(sock_path) == "not a regular file (a socket)"


def test_checkpoint_and_config_paths_say_what_they_are(tmp_path):
    from adain.decoder import Decoder

    with pytest.raises(CheckpointError, match=f"^cannot load '{tmp_path}': is a directory, not a file$"):
        Decoder.from_pretrained(tmp_path)
    loop = tmp_path / "loop.pt"
    os.symlink(loop, loop)
    with pytest.raises(CheckpointError, match="symbolic link loop"):
        Decoder.from_pretrained(loop)
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"not a regular file \(a FIFO"):  # used to block forever reading
        load_config(StylerTrainConfig, fifo)


def test_decoder_message_names_the_problem_not_just_the_header(tmp_path):
    from adain.decoder import Decoder

    state = Decoder().state_dict()
    del state["1.weight"]
    path = tmp_path / "d.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as e:
        Decoder.from_pretrained(path)
    assert "missing '1.weight'" in str(e.value)
    assert not str(e.value).rstrip().endswith(":")
    assert load_error_detail(RuntimeError("plain")) == "plain"


# --- training checkpoint digest ---


def _training_checkpoint():
    model = {"w": torch.arange(4096, dtype=torch.float32), "b": torch.ones(3)}
    return {**training_header("adain.train", 7, {"lr": 1e-4}), "model": model,
            "optimizer": {"state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.zeros(4096)}}, "param_groups": []}}


def test_checkpoint_digest_catches_inverted_bytes(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ck = _training_checkpoint()
    save_checkpoint(ck, path)
    loaded = load_checkpoint(path, expected_format="adain.train")
    assert loaded["sha256"] == checkpoint_digest(ck) and loaded["iteration"] == 7
    raw = bytearray(path.read_bytes())
    at = raw.find(ck["model"]["w"].numpy().tobytes()[4096:8192])
    assert at > 0
    raw[at:at + 4096] = bytes(b ^ 0xFF for b in raw[at:at + 4096])  # 4 KB of inverted bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt checkpoint: its contents do not match the SHA-256 digest"):
        load_checkpoint(path, expected_format="adain.train")


def test_checkpoints_without_a_digest_still_load(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(_training_checkpoint(), path)  # as written before the digest existed
    assert "sha256" not in load_checkpoint(path, expected_format="adain.train")
