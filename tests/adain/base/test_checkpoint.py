import os
import pathlib

import pytest
import torch

from adain.base.storage.checkpoint import (
    load_checkpoint,
    load_state_dict_file,
    rng_state,
    save_checkpoint,
    set_rng_state,
    training_header,
)
from adain.base.errors import CheckpointError


class _TouchOnUnpickle:
    """Unpickling this object would create ``path`` (a stand-in for arbitrary code execution)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"1.weight": torch.randn(4, 3, generator=g), "1.bias": torch.zeros(4)}


def test_state_dict_round_trip(tmp_path):
    sd = _state()
    out = save_checkpoint(sd, tmp_path / "w.pt")
    assert out == tmp_path / "w.pt"
    back = load_state_dict_file(out)
    assert type(back) is dict and back.keys() == sd.keys()
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_state_dict_from_training_checkpoint(tmp_path):
    sd = _state()
    save_checkpoint({**training_header("adain.train", 3, {"lr": 1e-4}), "model": sd, "optimizer": {}}, tmp_path / "c.pt")
    back = load_state_dict_file(tmp_path / "c.pt")
    assert back.keys() == sd.keys()


def test_code_executing_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": _TouchOnUnpickle(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    assert not marker.exists()
    msg = str(info.value)
    assert msg.startswith(f"cannot load '{path}': refused: not a plain tensor checkpoint; loading it would run code (")
    assert info.value.path == str(path)


def test_code_executing_training_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "adain.train", "model": _TouchOnUnpickle(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path, expected_format="adain.train")
    assert not marker.exists()


def test_missing_and_empty(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(tmp_path / "none.pt")
    assert str(info.value) == f"cannot load '{tmp_path / 'none.pt'}': no such file"
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(tmp_path / "empty.pt")
    assert str(info.value) == f"cannot load '{tmp_path / 'empty.pt'}': file is empty (0 bytes)"


def test_truncated(tmp_path):
    path = save_checkpoint(_state(), tmp_path / "w.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    assert str(info.value).startswith(f"cannot load '{path}': truncated or corrupt checkpoint (")


def test_garbage_is_reported_as_corrupt_not_as_an_attack(tmp_path):
    path = tmp_path / "w.pt"
    path.write_text("not a checkpoint at all")
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    assert str(info.value).startswith(f"cannot load '{path}': truncated or corrupt checkpoint (not a torch.save file")


def test_legacy_code_opcode_is_refused(tmp_path):
    # A protocol-0 pickle whose INST opcode would call pathlib.Path('x') (harmless, but code).
    path = tmp_path / "inst.pt"
    path.write_bytes(b"(X\x01\x00\x00\x00xipathlib\nPath\n.")
    with pytest.raises(CheckpointError, match=r"loading it would run code \(Unsupported operand 105\)"):
        load_state_dict_file(path)


@pytest.mark.parametrize("obj", [[torch.zeros(1)], torch.zeros(3), {"a": 1}, {"a": {"b": torch.zeros(1)}}])
def test_not_a_state_dict(tmp_path, obj):
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    assert str(info.value) == f"cannot load '{path}': expected a state_dict (a mapping of names to tensors)"


def test_save_is_atomic(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(_state(), path)
    save_checkpoint(_state(), path)
    assert os.listdir(tmp_path) == ["c.pt"]
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint({"bad": lambda: None}, path)  # unpicklable: torch.save fails mid-write
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.pt"]


def test_save_failure_writes_nothing(tmp_path):
    with pytest.raises(Exception):
        save_checkpoint({"bad": lambda: None}, tmp_path / "new.pt")
    assert os.listdir(tmp_path) == []


def _training_checkpoint(**extra) -> dict:
    return {**training_header("adain.train", 7, {"lr": 1e-4, "output_dir": "runs/x"}), "model": _state(),
            "optimizer": {"state": {}, "param_groups": []}, **extra}


def test_load_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(5)
    path = save_checkpoint(_training_checkpoint(rng=rng_state(g)), tmp_path / "c.pt")
    ck = load_checkpoint(path, expected_format="adain.train")
    assert ck["format"] == "adain.train" and ck["version"] == 1 and ck["iteration"] == 7
    assert ck["config"] == {"lr": 1e-4, "output_dir": "runs/x"}
    assert isinstance(ck["created"], str) and isinstance(ck["torch_version"], str)


def test_load_checkpoint_checks_the_format_tag(tmp_path):
    path = save_checkpoint(_training_checkpoint(), tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expected_format="warpstyle.train")
    assert str(info.value) == f"cannot load '{path}': expected a 'warpstyle.train' training checkpoint; got 'adain.train'"
    path = save_checkpoint(_state(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="expected a 'adain.train' training checkpoint; got None"):
        load_checkpoint(path, expected_format="adain.train")
    torch.save([1, 2], tmp_path / "l.pt")
    with pytest.raises(CheckpointError, match="expected a 'adain.train' training checkpoint; got 'list'"):
        load_checkpoint(tmp_path / "l.pt", expected_format="adain.train")


def test_load_checkpoint_requires_entries(tmp_path):
    ck = _training_checkpoint()
    del ck["optimizer"]
    path = save_checkpoint(ck, tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expected_format="adain.train")
    assert str(info.value) == f"cannot load '{path}': training checkpoint lacks 'optimizer'"


def test_rng_state_round_trip(tmp_path):
    g = torch.Generator().manual_seed(11)
    path = save_checkpoint(_training_checkpoint(rng=rng_state(g)), tmp_path / "c.pt")
    expected_g = torch.randn(3, generator=g)
    expected_global = torch.randn(3)
    g2 = torch.Generator().manual_seed(0)
    set_rng_state(g2, load_checkpoint(path, expected_format="adain.train")["rng"])
    assert torch.equal(torch.randn(3, generator=g2), expected_g)
    assert torch.equal(torch.randn(3), expected_global)
