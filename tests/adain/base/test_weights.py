"""adain.base.storage.weights: the self-describing weights format and its one loader."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

import adain.base.storage.weights as weights_mod
from adain.base.storage.checkpoint import save_checkpoint
from adain.base.errors import CheckpointError
from adain.base.encoder.vgg import BUNDLED_WEIGHTS, VGGEncoder
from adain.base.storage.weights import (
    WEIGHTS_FORMAT, WeightsMeta, bundled_weights, check_state, load_weights, meta_shapes, save_weights,
)
from adain.decoder import BUNDLED_DECODER, Decoder
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.geometry.warper import BUNDLED_WARPER, Warper

ROOT = Path(__file__).resolve().parents[3]
BUNDLED = {
    "VGGEncoder": ROOT / "adain" / "weights" / BUNDLED_WEIGHTS,
    "Decoder": ROOT / "adain" / "weights" / BUNDLED_DECODER,
    "WarpRegressor": ROOT / "warpstyle" / "weights" / BUNDLED_WARPER,
}
SHAPES = {"a.weight": (4, 3), "a.bias": (4,)}


def _shapes(config):
    if config != {"n": 4}:
        raise ValueError(f"n must be 4; got {config}")
    return SHAPES


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(4, 3, generator=g).half(), "a.bias": torch.randn(4, generator=g)}


def _save(path: Path, **kw) -> Path:
    args = dict(model_name="Toy", state=_state(), config={"n": 4}, input_spec={"x": "RGB [0, 1]"}, provenance="test")
    args.update(kw)
    return save_weights(path, args.pop("model_name"), args.pop("state"), args.pop("config"), args.pop("input_spec"),
                        args.pop("provenance"))


def _load(path: Path, model: str = "Toy"):
    return load_weights(path, model, _shapes, describe="a toy")


def _raw(path: Path, header: dict, data: bytes) -> Path:
    """Write a safetensors file by hand (for headers the library would refuse to write)."""
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def _meta(**over) -> dict:
    return {"format": WEIGHTS_FORMAT, "version": "1", "model": "Toy", "config": json.dumps({"n": 4}),
            "input": "{}", "provenance": "", **over}


# ---------------------------------------------------------------- round trip and metadata
def test_round_trip_keeps_values_dtypes_and_metadata(tmp_path):
    path = _save(tmp_path / "w.safetensors")
    state, meta = _load(path)
    assert meta == WeightsMeta(model="Toy", config={"n": 4}, input={"x": "RGB [0, 1]"}, provenance="test")
    for k, v in _state().items():
        assert state[k].dtype == v.dtype and torch.equal(state[k], v)


def test_same_tensors_and_metadata_give_the_same_bytes(tmp_path):
    # safetensors itself writes the metadata map in hash order; model cards quote a sha256.
    a, b = _save(tmp_path / "a.safetensors"), _save(tmp_path / "b.safetensors")
    assert a.read_bytes() == b.read_bytes()
    (n,) = struct.unpack("<Q", a.read_bytes()[:8])
    assert n % 8 == 0


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path):
    _save(tmp_path / "w.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_save_refuses_other_dtypes(tmp_path):
    with pytest.raises(ValueError, match="float16/bfloat16/float32 or uint8"):
        _save(tmp_path / "w.safetensors", state={"a.weight": torch.zeros(4, 3, dtype=torch.int64)})


@pytest.mark.parametrize("model", list(BUNDLED))
def test_bundled_files_describe_themselves(model):
    from safetensors import safe_open

    with safe_open(BUNDLED[model], "pt") as f:
        meta = f.metadata()
    assert meta["format"] == WEIGHTS_FORMAT and meta["version"] == "1" and meta["model"] == model
    assert isinstance(json.loads(meta["config"]), dict) and json.loads(meta["input"])
    assert meta["provenance"]


def test_bundled_warper_config_is_the_model_card():
    _, meta = load_weights(BUNDLED["WarpRegressor"], "WarpRegressor",
                           lambda c: meta_shapes(lambda: WarpRegressor(**c)), describe="a warper")
    assert meta.config == {"grid_size": 16, "hidden": 128, "refine_steps": 1}
    assert "align_corners=False" in meta.input["field"]


def test_bundled_weights_lookup_names_a_missing_file(tmp_path, monkeypatch):
    import types

    monkeypatch.setattr(weights_mod, "resources", types.SimpleNamespace(files=lambda _pkg: tmp_path))
    with pytest.raises(CheckpointError, match=r"the bundled adain weights 'x\.safetensors' are missing"):
        bundled_weights("adain", "x.safetensors")


# ---------------------------------------------------------------- the three models
def test_warper_is_built_from_the_file_config(tmp_path):
    torch.manual_seed(0)
    reg = WarpRegressor(grid_size=4, hidden=16, refine_steps=2)
    path = save_weights(tmp_path / "w.safetensors", "WarpRegressor", reg.state_dict(), reg.config(), {}, "")
    loaded = Warper.from_pretrained(path, encoder=VGGEncoder()).regressor
    assert loaded.config() == {"grid_size": 4, "hidden": 16, "refine_steps": 2}
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in reg.state_dict().items())


def test_warper_config_out_of_range_is_refused_before_building(tmp_path, monkeypatch):
    reg = WarpRegressor(grid_size=4, hidden=16, refine_steps=0)
    path = save_weights(tmp_path / "w.safetensors", "WarpRegressor", reg.state_dict(),
                        {"grid_size": 4, "hidden": 2**20, "refine_steps": 0}, {}, "")
    with pytest.raises(CheckpointError, match=r"invalid architecture config \(hidden must be an int in \[2, 2048\]"):
        Warper.from_pretrained(path, encoder=VGGEncoder())


def test_vgg_round_trip_in_each_layout(tmp_path):
    torch.manual_seed(0)
    for layout in ("oxford", "adain", "torchvision"):
        enc = VGGEncoder(layout)
        path = save_weights(tmp_path / f"{layout}.safetensors", "VGGEncoder", enc.state_dict(), enc.config(), {}, "")
        back = VGGEncoder.from_pretrained(path)
        assert back.layout == layout and back.pad_mode == enc.pad_mode
        assert all(torch.equal(back.state_dict()[k], v) for k, v in enc.state_dict().items())


def test_decoder_weights_file_and_legacy_channels_last_pt_load_the_same(tmp_path):
    # The old bundled decoder.pt held channels_last fp16 convs: dense, just not contiguous. Legacy
    # files predate skip inputs, so the bundled decoder's plain layers stand in for one.
    new = Decoder.from_pretrained()
    state, _ = load_weights(BUNDLED["Decoder"], "Decoder",
                            lambda c: meta_shapes(lambda: Decoder(skips=new.skips, keep=new.keep)), describe="a decoder")
    legacy = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v) for k, v in state.items()
              if not k.startswith(("skip_", "keep_"))}
    assert not legacy["1.weight"].is_contiguous()
    old = Decoder.from_pretrained(save_checkpoint(legacy, tmp_path / "decoder.pt"))
    assert old.skips == () and old.state_dict().keys() == legacy.keys()
    assert all(torch.equal(v, new.state_dict()[k]) for k, v in old.state_dict().items())


def test_a_model_refuses_another_models_file():
    with pytest.raises(CheckpointError, match=r"not an AdaIN decoder state_dict .*: the file holds 'WarpRegressor'"):
        Decoder.from_pretrained(BUNDLED["WarpRegressor"])


# ---------------------------------------------------------------- legacy files
def test_legacy_torch_file_returns_raw_tensors_without_meta(tmp_path):
    path = save_checkpoint(_state(), tmp_path / "w.pt")
    state, meta = _load(path)
    assert meta is None and state["a.weight"].dtype == torch.float16


def test_sniffing_is_by_content_not_name(tmp_path):
    sf = _save(tmp_path / "w.safetensors")
    renamed = tmp_path / "w.pt"
    renamed.write_bytes(sf.read_bytes())
    assert _load(renamed)[1] is not None
    # A torch file named .safetensors still goes through torch.load(weights_only=True) (torch itself
    # would hand such a path to safetensors unchecked).
    pt = save_checkpoint(_state(), tmp_path / "x.safetensors")
    assert _load(pt)[1] is None


def test_check_state_accepts_dense_permutations():
    w = torch.zeros(8, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    check_state({"w": w, "t": torch.zeros(3, 5).t()}, {"w": (8, 4, 3, 3), "t": (5, 3)}, "f", "x")


@pytest.mark.parametrize("tensor", [
    torch.zeros(1, 1).expand(4, 3),  # zero strides: one element posing as twelve
    torch.zeros(8)[:6].as_strided((4, 3), (1, 1)),  # overlapping
    torch.zeros(4, 6)[:, ::2],  # gaps
], ids=["expanded", "overlapping", "strided"])
def test_check_state_refuses_non_dense(tensor):
    with pytest.raises(CheckpointError, match=r"^cannot load 'f': refused: tensor 'a\.weight' of shape \(4, 3\) is not "
                                              r"dense \(strides .*\); a crafted file would expand in memory$"):
        check_state({"a.weight": tensor, "a.bias": torch.zeros(4)}, SHAPES, "f", "a toy")


def test_check_state_names_missing_unexpected_and_shape():
    with pytest.raises(CheckpointError, match=r"not a toy: missing 'a\.bias'; unexpected 'b'$"):
        check_state({"a.weight": torch.zeros(4, 3), "b": torch.zeros(1)}, SHAPES, "f", "a toy")
    with pytest.raises(CheckpointError, match=r"'a\.bias' has shape \(5,\), expected \(4,\)$"):
        check_state({"a.weight": torch.zeros(4, 3), "a.bias": torch.zeros(5)}, SHAPES, "f", "a toy")
    check_state({"a.weight": torch.zeros(4, 3), "a.bias": torch.zeros(4), "b": torch.zeros(1)}, SHAPES, "f", "a toy",
                extra_ok=True)


# ---------------------------------------------------------------- hostile safetensors files
def test_wrong_model_version_and_config(tmp_path):
    path = _save(tmp_path / "w.safetensors", model_name="Other")
    with pytest.raises(CheckpointError, match=r"not a toy: the file holds 'Other' weights$"):
        _load(path)
    data = _state()
    h = {"a.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "a.weight": {"dtype": "F16", "shape": [4, 3], "data_offsets": [16, 40]}}
    raw = data["a.bias"].numpy().tobytes() + data["a.weight"].numpy().tobytes()
    with pytest.raises(CheckpointError, match=r"weights format version '2' is not supported"):
        _load(_raw(tmp_path / "v.safetensors", {**h, "__metadata__": _meta(version="2")}, raw))
    with pytest.raises(CheckpointError, match=r"not a toy: invalid architecture config \(n must be 4"):
        _load(_raw(tmp_path / "c.safetensors", {**h, "__metadata__": _meta(config='{"n": 5}')}, raw))
    with pytest.raises(CheckpointError, match=r"'config' and 'input' must be JSON objects"):
        _load(_raw(tmp_path / "j.safetensors", {**h, "__metadata__": _meta(config="[")}, raw))
    with pytest.raises(CheckpointError, match=r"a safetensors file without 'warpstyle\.weights' metadata"):
        _load(_raw(tmp_path / "m.safetensors", h, raw))
    assert _load(_raw(tmp_path / "ok.safetensors", {**h, "__metadata__": _meta()}, raw))[1].config == {"n": 4}


def _hostile_header(tmp_path: Path, name: str, **entry) -> Path:
    """A valid toy file whose 'a.weight' header entry is replaced (the data stay 40 bytes)."""
    h = {"__metadata__": _meta(), "a.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "a.weight": {"dtype": "F16", "shape": [4, 3], "data_offsets": [16, 40], **entry}}
    return _raw(tmp_path / name, h, bytes(40))


@pytest.mark.parametrize("entry, message", [
    ({"shape": [2**20, 2**20]}, r"'a\.weight' has shape \[1048576, 1048576\], expected \[4, 3\]"),
    ({"dtype": "I64"}, r"'a\.weight' has dtype 'I64', expected one of"),
    ({"data_offsets": [16, 2**40]}, r"declares offsets \[16, 1099511627776\] for 24 bytes"),
    ({"data_offsets": [0, 24]}, r"tensor data overlaps or leaves gaps"),
], ids=["huge_shape", "dtype", "huge_offsets", "overlap"])
def test_header_is_checked_before_any_data(tmp_path, entry, message):
    with pytest.raises(CheckpointError, match=message) as info:
        _load(_hostile_header(tmp_path, "h.safetensors", **entry))
    assert "\n" not in str(info.value)


def test_truncated_and_absurd_header_lengths(tmp_path):
    full = _save(tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(full[:-3])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt checkpoint \(file is \d+ bytes; its header declares"):
        _load(tmp_path / "t.safetensors")
    (tmp_path / "n.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(CheckpointError, match=r"safetensors header of 1152921504606846976 bytes"):
        _load(tmp_path / "n.safetensors")
    (tmp_path / "g.safetensors").write_bytes(struct.pack("<Q", 4) + b"{x}\x00")
    with pytest.raises(CheckpointError, match=r"unreadable safetensors header"):
        _load(tmp_path / "g.safetensors")


def test_malformed_header_entries_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"'a\.weight' has shape 12, expected \[4, 3\]"):
        _load(_hostile_header(tmp_path, "s.safetensors", shape=12))
    deep = {"__metadata__": _meta(), "x": [[[[[[]]]]]] * 1}
    deep_json = "[" * 100_000 + "]" * 100_000
    h = json.dumps(deep).replace('[[[[[[]]]]]]', deep_json).encode()
    (tmp_path / "d.safetensors").write_bytes(struct.pack("<Q", len(h)) + h)
    with pytest.raises(CheckpointError, match=r"unreadable safetensors header"):
        _load(tmp_path / "d.safetensors")
