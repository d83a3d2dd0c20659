"""Every checkpoint loader refuses hostile files with a clear, one-line message.

Loaders: the bundled weights (decoder, VGG, warper), the path loaders behind ``--decoder``,
``--vgg`` and ``--warper``, and ``--resume`` of both trainers. Hostile files: a pickle whose
unpickling would create a file (the test asserts the file never appears), the same as a bare
pickle and in torch's legacy format, a truncated file, and a state_dict of the wrong architecture.
The CLI rows check that each command prints one line on stderr and exits 2.
"""

from __future__ import annotations

import importlib.resources
import pathlib
import pickle
import shutil
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import adain.base.encoder.vgg
import adain.base.storage.weights
import adain.decoder
import warpstyle.geometry.warper
from adain.base.storage.checkpoint import save_checkpoint, training_header
from adain.cli import main as adain_main
from adain.base.config import load_config
from adain.config import StylerTrainConfig
from adain.decoder import Decoder
from adain.base.errors import CheckpointError
from adain.train import train_styler
from adain.base.encoder.vgg import VGGEncoder
from tests.train_fixtures import make_image_folder
from warpstyle.app.cli import main as warpstyle_main
from warpstyle.training.config import WarperTrainConfig
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.training.train import train_warper
from warpstyle.geometry.warper import Warper

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "datasets" / "samples"
CONTENT = SAMPLES / "content" / "kodim23.jpg"
TEXTURE = SAMPLES / "texture" / "vangogh_the-starry-night.jpg"
GEOMETRY = SAMPLES / "geometry" / "munch_the-scream.jpg"
BUNDLED = {
    "decoder": ROOT / "adain" / "weights" / adain.decoder.BUNDLED_DECODER,
    "vgg": ROOT / "adain" / "weights" / adain.base.encoder.vgg.BUNDLED_WEIGHTS,
    "warper": ROOT / "warpstyle" / "weights" / warpstyle.geometry.warper.BUNDLED_WARPER,
}


class _TouchOnUnpickle:
    """Unpickling this object would create ``path`` (a stand-in for arbitrary code execution)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


# ---------------------------------------------------------------------------- hostile files
def _training_checkpoint(fmt: str, model: torch.nn.Module) -> dict:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    return {**training_header(fmt, 1, {"lr": 1e-4}), "model": state, "optimizer": opt.state_dict(),
            "rng": {"generator": torch.Generator().get_state(), "torch": torch.get_rng_state()}}


# What each loader reads: a valid file of its kind (to truncate), and a well-formed file of another
# architecture. Training checkpoints carry the right format tag so the model check is what trips.
def _valid_file(kind: str, tmp: Path) -> Path:
    if kind in BUNDLED:
        return BUNDLED[kind]
    if kind == "styler_resume":
        return save_checkpoint(_training_checkpoint("adain.train", Decoder()), tmp / "valid.pt")
    return save_checkpoint(_training_checkpoint("warpstyle.train", WarpRegressor()), tmp / "valid.pt")


def _wrong_architecture(kind: str, tmp: Path) -> Path:
    path = tmp / "wrong.pt"
    if kind == "decoder":
        shutil.copy(BUNDLED["warper"], path)
    elif kind in ("vgg", "warper"):
        shutil.copy(BUNDLED["decoder"], path)
    elif kind == "styler_resume":  # a decoder run resumed from a warper's weights under the styler's tag
        save_checkpoint(_training_checkpoint("adain.train", WarpRegressor(hidden=32)), path)
    else:  # same format, other width: hidden=32 against the default 128
        save_checkpoint(_training_checkpoint("warpstyle.train", WarpRegressor(hidden=32)), path)
    return path


def _code_payload(kind: str, marker: Path) -> dict:
    evil = _TouchOnUnpickle(str(marker))
    if kind.endswith("_resume"):
        fmt = "adain.train" if kind == "styler_resume" else "warpstyle.train"
        return {**training_header(fmt, 1, {}), "model": {"w": torch.zeros(1)}, "optimizer": evil}
    return {"1.weight": torch.zeros(1), "x": evil}


def make_hostile(case: str, kind: str, tmp: Path, marker: Path) -> Path:
    path = tmp / f"{case}.pt"
    if case == "code":
        torch.save(_code_payload(kind, marker), path)
    elif case == "code_legacy":
        torch.save(_code_payload(kind, marker), path, _use_new_zipfile_serialization=False)
    elif case == "code_bare_pickle":
        path.write_bytes(pickle.dumps(_code_payload(kind, marker), protocol=4))
    elif case == "truncated":
        data = _valid_file(kind, tmp).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "wrong_architecture":
        return _wrong_architecture(kind, tmp)
    else:
        raise AssertionError(case)
    assert not marker.exists()
    return path


EXPECTED = {
    "code": "refused: not a plain tensor checkpoint; loading it would run code (",
    "code_legacy": "refused: not a plain tensor checkpoint; loading it would run code (",
    "code_bare_pickle": "refused: not a plain tensor checkpoint; loading it would run code (",
    "truncated": "truncated or corrupt checkpoint (",
}
WRONG_ARCH = {
    "decoder": "not an AdaIN decoder state_dict (expected keys '1.weight' ... '28.bias')",
    "vgg": "not a VGG-19 state_dict",
    "warper": "not a warper state_dict (expected 'heads.N...' keys)",
    "styler_resume": "the checkpoint's model does not fit this Decoder (",
    "warper_resume": "the checkpoint's model does not fit this WarpRegressor (",
}


def _expected(case: str, kind: str) -> str:
    return WRONG_ARCH[kind] if case == "wrong_architecture" else EXPECTED[case]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hostile_data")
    return make_image_folder(root / "photos", count=3, seed=3), make_image_folder(root / "paint", count=3, seed=4)


def _bundle_from(monkeypatch: pytest.MonkeyPatch, package_dir: Path) -> None:
    """Make the one bundled-weights lookup read from ``package_dir/weights``."""
    fake = types.SimpleNamespace(files=lambda _pkg: package_dir, as_file=importlib.resources.as_file)
    monkeypatch.setattr(adain.base.storage.weights, "resources", fake)


def _bundled_loader(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp: Path, hostile: Path
) -> tuple[Callable[[], object], Path]:
    """A loader of the bundled ``kind`` that finds ``hostile`` in its place, and where that copy lives."""
    name, load = {
        "decoder": (adain.decoder.BUNDLED_DECODER, lambda: Decoder.from_pretrained()),
        "vgg": (adain.base.encoder.vgg.BUNDLED_WEIGHTS, lambda: VGGEncoder.from_pretrained()),
        "warper": (warpstyle.geometry.warper.BUNDLED_WARPER, lambda: Warper.from_pretrained(encoder=VGGEncoder())),
    }[kind]
    pkg = tmp / "pkg"
    (pkg / "weights").mkdir(parents=True)
    shutil.copy(hostile, pkg / "weights" / name)
    _bundle_from(monkeypatch, pkg)
    return load, pkg / "weights" / name


def _styler_cfg(folders: tuple[Path, Path], out: Path) -> StylerTrainConfig:
    photos, paint = folders
    return load_config(StylerTrainConfig, ROOT / "configs" / "train_styler_smoke.toml",
                       {"content_dir": str(photos), "style_dir": str(paint), "output_dir": str(out), "device": "cpu"})


def _warper_cfg(folders: tuple[Path, Path], out: Path) -> WarperTrainConfig:
    photos, _ = folders
    return load_config(WarperTrainConfig, None, {"image_dir": str(photos), "output_dir": str(out), "iterations": 2,
                                                 "batch_size": 1, "workers": 0, "load_size": 256, "bf16": False,
                                                 "device": "cpu"})


# ---------------------------------------------------------------------------- library loaders
LIBRARY_LOADERS = ["decoder_path", "decoder_bundled", "vgg_path", "vgg_bundled", "warper_path", "warper_bundled",
                   "styler_resume", "warper_resume"]
CASES = ["code", "code_legacy", "code_bare_pickle", "truncated", "wrong_architecture"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("loader", LIBRARY_LOADERS)
def test_library_loader_refuses(loader, case, tmp_path, monkeypatch, folders):
    kind = loader.removesuffix("_path").removesuffix("_bundled")
    marker = tmp_path / "pwned"
    hostile = make_hostile(case, kind, tmp_path, marker)
    if loader.endswith("_bundled"):
        load, shown = _bundled_loader(kind, monkeypatch, tmp_path, hostile)  # the message names the bundled file
    elif loader == "styler_resume":
        def load():
            return train_styler(_styler_cfg(folders, tmp_path / "run"), resume=hostile, progress=False)
        shown = hostile
    elif loader == "warper_resume":
        def load():
            return train_warper(_warper_cfg(folders, tmp_path / "run"), resume=hostile, progress=False)
        shown = hostile
    else:
        load = {"decoder": lambda: Decoder.from_pretrained(hostile),
                "vgg": lambda: VGGEncoder.from_pretrained(hostile),
                "warper": lambda: Warper.from_pretrained(hostile, encoder=VGGEncoder())}[kind]
        shown = hostile
    with pytest.raises(CheckpointError) as info:
        load()
    assert not marker.exists(), "unpickling ran code"
    msg = str(info.value)
    assert "\n" not in msg
    assert info.value.path == str(shown)
    assert msg.startswith(f"cannot load '{shown}': "), msg
    assert _expected(case, kind) in msg, msg


def test_wrong_width_resume_names_the_config_keys(tmp_path, folders):
    path = _wrong_architecture("warper_resume", tmp_path)
    with pytest.raises(CheckpointError, match=r"size mismatch for .*hidden and refine_steps must match"):
        train_warper(_warper_cfg(folders, tmp_path / "run"), resume=path, progress=False)


def test_resume_with_a_foreign_optimizer_state(tmp_path, folders):
    ck = _training_checkpoint("adain.train", Decoder())
    ck["optimizer"] = torch.optim.Adam(WarpRegressor(hidden=32).parameters()).state_dict()
    path = save_checkpoint(ck, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"^cannot load '.*c\.pt': the checkpoint's optimizer state does not fit"):
        train_styler(_styler_cfg(folders, tmp_path / "run"), resume=path, progress=False)


# ---------------------------------------------------------------------------- CLI: one line, exit 2
def _cli_args(loader: str, hostile: Path, folders: tuple[Path, Path], out: Path) -> tuple[Callable, list[str]]:
    photos, paint = folders
    stylize = ["stylize", "-c", str(CONTENT), "-s", str(TEXTURE), "--size", "64", "-o", str(out / "o.png")]
    run = ["run", "-c", str(CONTENT), "-g", str(GEOMETRY), "-t", str(TEXTURE), "--size", "64", "-o", str(out / "o.png")]
    return {
        "adain stylize --decoder": (adain_main, stylize + ["--decoder", str(hostile)]),
        "adain stylize --vgg": (adain_main, stylize + ["--vgg", str(hostile)]),
        "warpstyle run --warper": (warpstyle_main, run + ["--warper", str(hostile)]),
        "warpstyle run --decoder": (warpstyle_main, run + ["--decoder", str(hostile)]),
        "warpstyle run --vgg": (warpstyle_main, run + ["--vgg", str(hostile)]),
        "adain train-styler --resume": (adain_main, [
            "train-styler", "--config", str(ROOT / "configs" / "train_styler_smoke.toml"), "--content-dir", str(photos),
            "--style-dir", str(paint), "--output-dir", str(out / "run"), "--device", "cpu", "--no-progress",
            "--resume", str(hostile)]),
        "warpstyle train-warper --resume": (warpstyle_main, [
            "train-warper", "--image-dir", str(photos), "--output-dir", str(out / "run"), "--iterations", "2",
            "--batch-size", "1", "--workers", "0", "--device", "cpu", "--fp32", "--no-progress",
            "--resume", str(hostile)]),
    }[loader]


CLI_KIND = {"adain stylize --decoder": "decoder", "adain stylize --vgg": "vgg", "warpstyle run --warper": "warper",
            "warpstyle run --decoder": "decoder", "warpstyle run --vgg": "vgg",
            "adain train-styler --resume": "styler_resume", "warpstyle train-warper --resume": "warper_resume"}


@pytest.mark.parametrize("case", ["code", "truncated", "wrong_architecture"])
@pytest.mark.parametrize("loader", list(CLI_KIND))
def test_cli_refuses_with_one_line_and_exit_2(loader, case, tmp_path, capsys, folders):
    kind = CLI_KIND[loader]
    marker = tmp_path / "pwned"
    hostile = make_hostile(case, kind, tmp_path, marker)
    main, args = _cli_args(loader, hostile, folders, tmp_path)
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert not marker.exists(), "unpickling ran code"
    assert info.value.code == 2
    assert len(err) == 1, err
    prog = loader.split()[0]
    assert err[0].startswith(f"{prog}: error: cannot load '{hostile}': "), err[0]
    assert _expected(case, kind) in err[0], err[0]
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("case", ["code", "truncated"])
def test_cli_with_a_hostile_bundled_decoder(case, tmp_path, capsys, monkeypatch):
    marker = tmp_path / "pwned"
    hostile = make_hostile(case, "decoder", tmp_path, marker)
    pkg = tmp_path / "pkg"
    (pkg / "weights").mkdir(parents=True)
    shutil.copy(hostile, pkg / "weights" / adain.decoder.BUNDLED_DECODER)
    shutil.copy(BUNDLED["vgg"], pkg / "weights")  # one lookup serves both: the real VGG beside the hostile decoder
    _bundle_from(monkeypatch, pkg)
    with pytest.raises(SystemExit) as info:
        adain_main(["stylize", "-c", str(CONTENT), "-s", str(TEXTURE), "--size", "64", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and not marker.exists()
    assert adain.decoder.BUNDLED_DECODER in err[0] and EXPECTED[case] in err[0]


# ---------------------------------------------------------------- small files that declare huge tensors
# Issue 15 item 7: torch.save keeps an expanded (zero-stride) tensor as its one-element storage, so a
# few KB can declare terabytes. The loaders check every shape against the architecture and refuse
# non-dense tensors before converting (.float()) or building anything.
def _expanded(shape: tuple[int, ...], dtype: torch.dtype = torch.float16) -> torch.Tensor:
    return torch.zeros((1,) * len(shape), dtype=dtype).expand(*shape)


def _expanded_state(kind: str, absurd: bool) -> dict[str, torch.Tensor]:
    model = {"decoder": Decoder, "warper": WarpRegressor, "vgg": VGGEncoder}[kind]
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in model().state_dict().items()}
    if absurd:  # 2**20 x (2**20 + 2) x 3 x 3: a 2**20-wide regressor on a 1024x1024 grid (~20 TB as fp16)
        first = {"decoder": "1.weight", "warper": "heads.0.body.0.weight", "vgg": "conv1_1.weight"}[kind]
        shapes[first] = (2**20, 2**20 + 2, 3, 3)
    return {k: _expanded(s) for k, s in shapes.items()}


@pytest.mark.parametrize("absurd", [False, True], ids=["declared_shapes", "absurd_shapes"])
@pytest.mark.parametrize("kind", ["decoder", "warper", "vgg"])
def test_expanded_tensors_are_refused_before_allocating(kind, absurd, tmp_path):
    path = save_checkpoint(_expanded_state(kind, absurd), tmp_path / f"{kind}.pt")
    assert path.stat().st_size < 64 * 1024  # the whole hostile file
    load = {"decoder": lambda: Decoder.from_pretrained(path),
            "warper": lambda: Warper.from_pretrained(path, encoder=VGGEncoder()),
            "vgg": lambda: VGGEncoder.from_pretrained(path)}[kind]
    with pytest.raises(CheckpointError) as info:
        load()
    msg = str(info.value)
    assert msg.startswith(f"cannot load '{path}': ") and "\n" not in msg
    assert "allocate" not in msg  # refused from the shapes, not after an attempt
    if absurd:
        assert ("has shape (1048576, 1048578, 3, 3), expected" in msg  # decoder, VGG: fixed architecture
                or "grid_size must be an int in [1, 64]; got 1024" in msg), msg  # warper: inferred config
    else:
        assert "is not dense (strides (0, 0" in msg, msg


def test_cli_refuses_an_expanded_warper_in_one_line(tmp_path, capsys):
    path = save_checkpoint(_expanded_state("warper", True), tmp_path / "w.pt")
    main, args = _cli_args("warpstyle run --warper", path, (tmp_path, tmp_path), tmp_path)
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    assert err[0].startswith(f"warpstyle: error: cannot load '{path}': not a warper state_dict"), err[0]
    assert not (tmp_path / "o.png").exists()
