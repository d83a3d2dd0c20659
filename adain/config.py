"""Training configs as dataclasses, read from TOML/JSON with CLI overrides."""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = ["StylerTrainConfig", "load_config", "config_to_dict", "write_config"]

C = TypeVar("C")


@dataclasses.dataclass
class StylerTrainConfig:
    """Settings of ``adain train-styler``; defaults follow Huang & Belongie 2017 and the PyTorch port."""

    content_dir: str = ""
    style_dir: str = ""
    output_dir: str = "runs/styler"
    iterations: int = 160_000
    batch_size: int = 8
    lr: float = 1e-4
    lr_decay: float = 5e-5  # lr_i = lr / (1 + lr_decay * i)
    content_weight: float = 1.0
    style_weight: float = 10.0  # weight of the channel-averaged style loss (see adain.losses)
    load_size: int = 512  # shorter side before cropping
    crop_size: int = 256
    holdout: float = 0.0  # fraction of each folder kept out of training by a fixed hash split
    workers: int = 2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CPU, bf16/fp16 AMP on CUDA
    channels_last: bool = True
    vgg: str = ""  # empty: the bundled Oxford VGG-19
    init_decoder: str = ""  # start from these decoder weights instead of random
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 1000
    keep_snapshots: bool = True  # also keep decoder_iterN.pt weights at each checkpoint
    time_limit_s: float = 0.0  # stop cleanly (with a checkpoint) after this many seconds; 0: no limit


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_config(cls: type[C], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> C:
    """Build ``cls`` from defaults, then a TOML/JSON file, then ``overrides`` (None values ignored).

    Raises:
        ConfigError: unreadable file, unknown keys (named, with suggestions) or wrong value types.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text()
            data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except FileNotFoundError:
            raise ConfigError(p, "no such file") from None
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            raise ConfigError(p, f"cannot parse ({e})") from None
        if not isinstance(data, dict):  # a JSON file may hold a list or a scalar
            raise ConfigError(p, f"expected a table of settings; got a {type(data).__name__}")
        values.update(data)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = [k for k in values if k not in fields]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, fields, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(path, "unknown keys " + ", ".join(hints))
    for k, v in values.items():
        default = fields[k].default
        if isinstance(default, bool) and not isinstance(v, bool):
            raise ConfigError(path, f"{k} must be true or false; got {v!r}")
        if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            values[k] = float(v)
        elif isinstance(default, (int, float, str)) and (
            not isinstance(v, type(default)) or (isinstance(v, bool) and not isinstance(default, bool))
        ):  # bool is an int subclass, but ``iterations = true`` is a mistake
            raise ConfigError(path, f"{k} must be {type(default).__name__}; got {v!r}")
    return cls(**values)


def write_config(cfg: Any, path: str | Path) -> None:
    """Write the effective config as JSON (atomically)."""
    from .files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")
