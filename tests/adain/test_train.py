import csv
import os
import subprocess
import sys

import pytest
import torch

from safetensors import safe_open
from safetensors.torch import load_file

from adain.base.storage.checkpoint import load_checkpoint
from adain.base.config import load_config
from adain.config import StylerTrainConfig
from adain.decoder import Decoder
from adain.styler import Styler
from adain.train import train_styler
from tests.train_fixtures import make_image_folder

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return make_image_folder(root / "content", seed=1), make_image_folder(root / "style", seed=2, corrupt=False)


def _cfg(folders, out, **kw):
    content, style = folders
    base = dict(content_dir=str(content), style_dir=str(style), output_dir=str(out))
    return load_config(StylerTrainConfig, os.path.join(CONFIGS, "train_styler_smoke.toml"), {**base, **kw})


def _metadata(path):
    with safe_open(path, "pt") as f:
        return f.metadata()


def _losses(path):
    with open(path) as f:
        return [(int(r["iteration"]), float(r["content_loss"]), float(r["style_loss"])) for r in csv.DictReader(f)]


def test_short_run_produces_loadable_weights(folders, tmp_path):
    r = train_styler(_cfg(folders, tmp_path / "run"), progress=False)
    assert r.iteration == 4 and r.checkpoint.is_file() and r.weights.is_file()
    ck = load_checkpoint(r.checkpoint, expected_format="adain.train")
    assert ck["iteration"] == 4 and ck["config"]["batch_size"] == 2
    assert (tmp_path / "run" / "samples" / "iter_0000002.jpg").is_file()
    assert r.skipped_files >= 0
    assert r.weights.name == "decoder.safetensors"
    meta = _metadata(r.weights)
    assert meta["model"] == "Decoder" and "adain train-styler" in meta["provenance"]
    dec = Decoder.from_pretrained(r.weights)
    styler = Styler.from_pretrained(r.weights)
    out = styler.stylize(torch.rand(1, 3, 32, 32), [torch.rand(1, 3, 32, 32)], size=32)
    assert out.shape == (1, 3, 32, 32)
    assert dec.state_dict().keys() == Decoder().state_dict().keys()


def test_resume_continues_and_matches_a_straight_run(folders, tmp_path):
    straight = train_styler(_cfg(folders, tmp_path / "a", iterations=4), progress=False)
    train_styler(_cfg(folders, tmp_path / "b", iterations=2), progress=False)
    resumed = train_styler(_cfg(folders, tmp_path / "b", iterations=4), resume="auto", progress=False)
    assert resumed.iteration == 4
    a, b = _losses(tmp_path / "a" / "losses.csv"), _losses(tmp_path / "b" / "losses.csv")
    assert [r[0] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert ra[0] == rb[0]
        assert ra[1] == pytest.approx(rb[1], rel=1e-4) and ra[2] == pytest.approx(rb[2], rel=1e-4)
    sa, sb = load_file(straight.weights), load_file(resumed.weights)
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-3) for k in sa)


def test_unreadable_files_are_skipped_and_counted(folders, tmp_path):
    r = train_styler(_cfg(folders, tmp_path / "c", iterations=6, batch_size=4), progress=False)
    # content folder has 6 good images and one corrupt file; 24 samples visit it at least once
    assert r.skipped_files >= 1


@pytest.mark.slow
def test_two_process_gloo_run(folders, tmp_path):
    content, style = folders
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", "-m", "adain",
           "train-styler", "--config", os.path.join(CONFIGS, "train_styler_smoke.toml"), "--content-dir", str(content),
           "--style-dir", str(style), "--output-dir", str(tmp_path / "ddp"), "--iterations", "2", "--device", "cpu",
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    ck = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt", expected_format="adain.train")
    assert ck["iteration"] == 2
    assert not any(k.startswith("module.") for k in ck["model"])


def test_csv_log_rewind_drops_later_and_partial_rows(tmp_path):
    from adain.base.training import CsvLog

    log = CsvLog(tmp_path / "losses.csv", ["iteration", "loss"])
    for i in range(1, 6):
        log.write(iteration=i, loss=float(i))
    with open(log.path, "a") as f:
        f.write("6,0.12")  # a row cut off by a kill mid-write
    log.rewind(3)
    rows = log.path.read_text().splitlines()
    assert rows == ["iteration,loss", "1,1", "2,2", "3,3"]
    log.write(iteration=4, loss=4.0)
    assert log.path.read_text().splitlines()[-1] == "4,4"
    log.rewind(0)  # a fresh start in the same folder starts a fresh log
    assert not log.path.exists()
    log.rewind(5)  # no file: nothing to do


def test_skip_run_starts_from_init_decoder_and_trains_the_skips(folders, tmp_path):
    from adain.base.storage.weights import save_weights

    torch.manual_seed(0)
    init = Decoder()
    init_path = tmp_path / "init.safetensors"
    save_weights(init_path, "Decoder", init.state_dict(), init.config(), {}, "test")
    cfg = _cfg(folders, tmp_path / "run", init_decoder=str(init_path), decoder_skips="relu2_1, relu3_1",
               skip_lr_scale=10.0, identity_pixel_weight=1.0, lr_decay=0.0)
    r = train_styler(cfg, progress=False)
    dec = Decoder.from_pretrained(r.weights)
    assert dec.skips == ("relu3_1", "relu2_1")
    assert float(dec.skip_relu3_1.weight.abs().max()) > 0  # learned from zero
    ck = load_checkpoint(r.checkpoint, expected_format="adain.train")
    groups = ck["optimizer"]["param_groups"]
    assert groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])
    # Resuming keeps the skips' rate (the optimizer state a checkpoint restores carries no scales).
    r2 = train_styler(_cfg(folders, tmp_path / "run", init_decoder=str(init_path), decoder_skips="relu2_1, relu3_1",
                           skip_lr_scale=10.0, identity_pixel_weight=1.0, lr_decay=0.0, iterations=6),
                      resume="auto", progress=False)
    assert r2.iteration == 6
    groups = load_checkpoint(r2.checkpoint, expected_format="adain.train")["optimizer"]["param_groups"]
    assert groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])
    styler = Styler.from_pretrained(r.weights)
    assert styler.stylize(torch.rand(1, 3, 32, 32), [torch.rand(1, 3, 32, 32)], size=32).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("skips", ["relu4_1", "relu3_1,relu3_1", "pool4"])
def test_bad_decoder_skips_are_refused(folders, tmp_path, skips):
    from adain.base.errors import ConfigError

    with pytest.raises(ConfigError, match="decoder_skips"):
        _cfg(folders, tmp_path / "run", decoder_skips=skips)


def test_keep_only_run_trains_the_keep_path_and_nothing_else(folders, tmp_path):
    from adain.base.storage.weights import save_weights

    torch.manual_seed(0)
    init = Decoder(skips=["relu2_1", "relu1_1"])
    for p in init.parameters():
        torch.nn.init.normal_(p, std=0.02)
    init_path = tmp_path / "init.safetensors"
    save_weights(init_path, "Decoder", init.state_dict(), init.config(), {}, "test")
    cfg = _cfg(folders, tmp_path / "run", init_decoder=str(init_path), decoder_skips="relu2_1,relu1_1",
               decoder_keep="relu1_1", train_keep_only=True,
               identity_pixel_weight=1.0, identity_feature_weight=0.1, lr_decay=0.0)
    r = train_styler(cfg, progress=False)
    dec = Decoder.from_pretrained(r.weights)
    assert dec.skips == ("relu2_1", "relu1_1") and dec.keep == ("relu1_1",)
    assert float(dec.keep_relu1_1.weight.detach().abs().max()) > 0  # learned from zero
    # everything else is frozen (to the float16 the weights file stores)
    for k, v in init.state_dict().items():
        torch.testing.assert_close(dec.state_dict()[k], v.half().float())
    with open(r.checkpoint.parent / "losses.csv") as f:
        assert "identity_pixel" in f.readline()


def test_keep_config_is_checked(folders, tmp_path):
    from adain.base.errors import ConfigError

    with pytest.raises(ConfigError, match="decoder_keep"):
        _cfg(folders, tmp_path / "run", decoder_keep="relu5_1")
    with pytest.raises(ConfigError, match="identity"):
        _cfg(folders, tmp_path / "run", decoder_keep="relu1_1", train_keep_only=True)
    with pytest.raises(ConfigError, match="decoder_keep must be some"):  # not one of the decoder's skips
        train_styler(_cfg(folders, tmp_path / "run", decoder_skips="relu3_1", decoder_keep="relu1_1",
                          identity_pixel_weight=1.0), progress=False)
    with pytest.raises(ConfigError, match="keep taps"):
        train_styler(_cfg(folders, tmp_path / "run", decoder_skips="relu3_1", train_keep_only=True,
                          identity_pixel_weight=1.0), progress=False)
    # a keep decoder fine-tuned without identity losses: its keep path would get no gradient
    from adain.base.storage.weights import save_weights

    init = Decoder(skips=["relu1_1"], keep=["relu1_1"])
    init_path = tmp_path / "keep.safetensors"
    save_weights(init_path, "Decoder", init.state_dict(), init.config(), init.input_spec(), "test")
    with pytest.raises(ConfigError, match="learn from the identity"):
        train_styler(_cfg(folders, tmp_path / "run", init_decoder=str(init_path), decoder_skips="relu1_1"),
                     progress=False)


def test_lattice_weight_adds_the_lattice_loss_and_logs_it(folders, tmp_path, monkeypatch):
    import adain.train as train_module

    seen = []
    real = train_module.lattice_loss
    monkeypatch.setattr(train_module, "lattice_loss", lambda out, content: seen.append(out.shape) or real(out, content))
    r = train_styler(_cfg(folders, tmp_path / "run", lattice_weight=2.0), progress=False)
    assert seen and all(s[1] == 3 for s in seen)
    with open(r.checkpoint.parent / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(row["lattice"]) >= 0 for row in rows)
    plain = train_styler(_cfg(folders, tmp_path / "plain"), progress=False)
    with open(plain.checkpoint.parent / "losses.csv") as f:
        assert "lattice" not in f.readline()


def test_lattice_weight_with_keep_only_is_refused(folders, tmp_path):
    from adain.base.errors import ConfigError
    from adain.base.storage.weights import save_weights

    init = Decoder(skips=["relu1_1"])
    init_path = tmp_path / "init.safetensors"
    save_weights(init_path, "Decoder", init.state_dict(), init.config(), {}, "test")
    cfg = _cfg(folders, tmp_path / "run", init_decoder=str(init_path), decoder_skips="relu1_1", decoder_keep="relu1_1",
               train_keep_only=True, identity_pixel_weight=1.0, lattice_weight=1.0)
    with pytest.raises(ConfigError, match="lattice_weight"):
        train_styler(cfg, progress=False)
