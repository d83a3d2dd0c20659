from pathlib import Path

import pytest

from adain.base.config import load_config
from adain.base.errors import ConfigError
from tests.adain.test_config import _assert_cli_ranges_match
from warpstyle.training.config import WarperTrainConfig


@pytest.mark.parametrize("text, key", [
    ("iterations = -5", "iterations must be >= 1; got -5"),
    ("batch_size = 0", "batch_size must be in [1, 1024]; got 0"),
    ("holdout = 5.0", "holdout must be in [0, 0.9]; got 5.0"),
    ("texture_prob = nan", "texture_prob must be in [0, 1]; got nan"),
])
def test_config_file_values_are_range_checked(tmp_path, text, key):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(WarperTrainConfig, path)
    assert str(e.value) == f"config '{path}': {key}"


def test_scale_range_must_be_ordered():
    with pytest.raises(ConfigError, match="scale_max must be >= scale_min"):
        WarperTrainConfig(scale_min=1.5, scale_max=1.2)


def test_shipped_configs_are_valid():
    for path in (Path(__file__).resolve().parents[2] / "configs").glob("train_warper*.toml"):
        load_config(WarperTrainConfig, path)


def test_cli_option_ranges_match_the_config_table():
    from warpstyle.app.cli import cli

    _assert_cli_ranges_match(cli.commands["train-warper"], WarperTrainConfig)
