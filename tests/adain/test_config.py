import dataclasses
import json

import pytest

from adain.base.config import config_to_dict, load_config, write_config
from adain.config import StylerTrainConfig
from adain.base.errors import ConfigError


def test_defaults_follow_the_paper():
    cfg = load_config(StylerTrainConfig)
    assert cfg == StylerTrainConfig()
    assert (cfg.lr, cfg.lr_decay, cfg.iterations, cfg.batch_size) == (1e-4, 5e-5, 160_000, 8)


def test_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('iterations = 10\nlr = 2e-4\nbf16 = false\ncontent_dir = "data/coco"\n')
    cfg = load_config(StylerTrainConfig, path)
    assert (cfg.iterations, cfg.lr, cfg.bf16, cfg.content_dir) == (10, 2e-4, False, "data/coco")
    assert cfg.batch_size == 8  # untouched default


def test_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"iterations": 10, "style_weight": 2.5, "device": "cpu"}))
    cfg = load_config(StylerTrainConfig, path)
    assert (cfg.iterations, cfg.style_weight, cfg.device) == (10, 2.5, "cpu")


def test_overrides_win_and_none_is_ignored(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("iterations = 10\nbatch_size = 4\n")
    cfg = load_config(StylerTrainConfig, path, {"iterations": 20, "batch_size": None, "seed": None})
    assert (cfg.iterations, cfg.batch_size, cfg.seed) == (20, 4, 0)
    assert load_config(StylerTrainConfig, None, {"crop_size": 64}).crop_size == 64


def test_int_is_coerced_to_float(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("lr = 1\nstyle_weight = 3\n")
    cfg = load_config(StylerTrainConfig, path, {"time_limit_s": 5})
    assert cfg.lr == 1.0 and type(cfg.lr) is float
    assert type(cfg.style_weight) is float and type(cfg.time_limit_s) is float


def test_unknown_keys_named_with_suggestion(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("iteration = 3\nzzz = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(StylerTrainConfig, path)
    assert str(info.value) == f"config '{path}': unknown keys 'iteration' (did you mean 'iterations'?), 'zzz'"
    assert info.value.path == str(path)


def test_unknown_override_without_file():
    with pytest.raises(ConfigError) as info:
        load_config(StylerTrainConfig, None, {"btach_size": 2})
    assert str(info.value) == "config: unknown keys 'btach_size' (did you mean 'batch_size'?)"


@pytest.mark.parametrize(
    "text,reason",
    [('iterations = "10"', "iterations must be int; got '10'"),
     ("iterations = 1.5", "iterations must be int; got 1.5"),
     ("iterations = true", "iterations must be int; got True"),
     ("lr = true", "lr must be float; got True"),
     ('lr = "fast"', "lr must be float; got 'fast'"),
     ("device = 0", "device must be str; got 0"),
     ("bf16 = 1", "bf16 must be true or false; got 1")],
)
def test_type_errors(tmp_path, text, reason):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(StylerTrainConfig, path)
    assert str(info.value) == f"config '{path}': {reason}"


def test_missing_and_unparsable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(StylerTrainConfig, tmp_path / "none.toml")
    assert str(info.value) == f"config '{tmp_path / 'none.toml'}': no such file"
    bad = tmp_path / "bad.toml"
    bad.write_text("iterations = = 3\n")
    with pytest.raises(ConfigError, match=r"config '.*bad\.toml': cannot parse \("):
        load_config(StylerTrainConfig, bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{iterations: 3}")
    with pytest.raises(ConfigError, match=r"config '.*bad\.json': cannot parse \("):
        load_config(StylerTrainConfig, bad_json)


def test_json_must_hold_an_object(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError) as info:
        load_config(StylerTrainConfig, path)
    assert str(info.value) == f"config '{path}': expected a table of settings; got a list"


def test_write_config_round_trip(tmp_path):
    cfg = load_config(StylerTrainConfig, None, {"iterations": 3, "lr": 0.5, "bf16": False})
    path = tmp_path / "run" / "config.json"
    write_config(cfg, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]
    assert json.loads(path.read_text()) == config_to_dict(cfg) == dataclasses.asdict(cfg)
    assert load_config(StylerTrainConfig, path) == cfg


def test_old_key_amp_reads_as_bf16(tmp_path, caplog):
    """Configs written before the rename keep loading: ``amp`` is the old name of ``bf16``."""
    path = tmp_path / "old.toml"
    path.write_text("amp = false\n")
    with caplog.at_level("WARNING"):
        cfg = load_config(StylerTrainConfig, path)
    assert cfg.bf16 is False
    assert "config key 'amp' is now 'bf16'" in caplog.text
    assert load_config(StylerTrainConfig, None, {"amp": False}).bf16 is False
    assert load_config(StylerTrainConfig, path, {"bf16": True}).bf16 is True  # the flag still wins


def test_old_and_new_name_together_is_an_error(tmp_path):
    path = tmp_path / "both.toml"
    path.write_text("amp = false\nbf16 = true\n")
    with pytest.raises(ConfigError, match="'amp' is the old name of 'bf16'; give only 'bf16'"):
        load_config(StylerTrainConfig, path)


# --- values are validated like the flags (issue 15 case 11) ---


@pytest.mark.parametrize("text, key", [
    ("iterations = -5", "iterations must be >= 1; got -5"),
    ("batch_size = 0", "batch_size must be in [1, 1024]; got 0"),
    ("holdout = 5.0", "holdout must be in [0, 0.9]; got 5.0"),
    ("lr = 0.0", "lr must be > 0; got 0.0"),
    ("style_weight = inf", "style_weight must be >= 0; got inf"),
    ("crop_size = 8", "crop_size must be in [16, 4096]; got 8"),
    ("seed = -1", "seed must be in [0, 9223372036854775807]; got -1"),
])
def test_config_file_values_are_range_checked(tmp_path, text, key):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(StylerTrainConfig, path)
    assert str(e.value) == f"config '{path}': {key}"


def test_api_construction_is_range_checked():
    with pytest.raises(ConfigError, match="^config: iterations must be >= 1; got 0$"):
        StylerTrainConfig(iterations=0)
    with pytest.raises(ConfigError, match=r"workers must be a number in \[0, 64\]; got '2'"):
        StylerTrainConfig(workers="2")  # type: ignore[arg-type]


def test_shipped_configs_are_valid():
    from pathlib import Path

    for path in (Path(__file__).resolve().parents[2] / "configs").glob("train_styler*.toml"):
        load_config(StylerTrainConfig, path)


def _assert_cli_ranges_match(command, cls):
    """Each option that sets a config field has exactly the range of the config's table."""
    import click

    checked = 0
    for p in command.params:
        rng = cls.RANGES.get(p.name)
        if rng is None:
            continue
        assert isinstance(p.type, (click.IntRange, click.FloatRange)), f"{p.opts} has no range"
        assert (p.type.min, p.type.max, p.type.min_open) == (rng.min, rng.max, rng.min_open), p.opts
        assert not p.type.max_open and not p.type.clamp
        checked += 1
    assert checked >= 10


def test_cli_option_ranges_match_the_config_table():
    from adain.cli import cli

    _assert_cli_ranges_match(cli.commands["train-styler"], StylerTrainConfig)
