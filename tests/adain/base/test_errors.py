import pickle

import pytest

from adain.base.errors import CheckpointError, ConfigError, FieldError, ImageError, StyleTransferError


@pytest.mark.parametrize("cls", [ImageError, CheckpointError, FieldError, ConfigError])
def test_hierarchy(cls):
    assert issubclass(cls, StyleTransferError)
    assert issubclass(StyleTransferError, Exception)


def test_image_error_carries_data_and_one_line_message(tmp_path):
    e = ImageError(tmp_path / "c.jpg", "truncated JPEG file")
    assert e.path == str(tmp_path / "c.jpg") and e.reason == "truncated JPEG file"
    assert str(e) == f"cannot read '{tmp_path / 'c.jpg'}': truncated JPEG file"
    assert "\n" not in str(e)


def test_image_error_write_action():
    e = ImageError("out.xyz", "unknown output extension '.xyz'", action="write")
    assert str(e) == "cannot write 'out.xyz': unknown output extension '.xyz'"


def test_checkpoint_error_message():
    e = CheckpointError("w.pt", "file is empty (0 bytes)")
    assert (e.path, e.reason) == ("w.pt", "file is empty (0 bytes)")
    assert str(e) == "cannot load 'w.pt': file is empty (0 bytes)"


def test_field_error_is_not_a_checkpoint_error():
    e = FieldError("f.flo", "truncated .flo")
    assert (e.path, e.reason) == ("f.flo", "truncated .flo")
    assert str(e) == "cannot read field 'f.flo': truncated .flo"
    assert not isinstance(e, CheckpointError)


def test_config_error_with_and_without_path():
    assert str(ConfigError("c.toml", "unknown keys 'x'")) == "config 'c.toml': unknown keys 'x'"
    e = ConfigError(None, "lr must be float; got 'a'")
    assert e.path is None and str(e) == "config: lr must be float; got 'a'"


@pytest.mark.parametrize(
    "err",
    [ImageError("a.png", "bad", action="write"), CheckpointError("w.pt", "x"), FieldError("f.flo", "x"),
     ConfigError(None, "y"),
     ConfigError("c.toml", "z")],
)
def test_errors_survive_pickling(err):
    # Errors cross process boundaries (data-loader workers, multiprocessing pools).
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err) and back.path == err.path and back.reason == err.reason
