"""Config files: a dataclass of settings read from TOML/JSON, with CLI overrides."""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .files import atomic_path

__all__ = ["load_config", "config_to_dict", "write_config"]

C = TypeVar("C")

log = logging.getLogger(__name__)

#: Keys renamed since configs were first written: old name -> new name. Old configs keep loading.
#: ``amp`` (automatic mixed precision) became ``bf16``, the name the inference API and CLIs use.
RENAMED_KEYS = {"amp": "bf16"}


def _apply_renames(values: dict[str, Any], fields: Mapping[str, Any], path: str | Path | None) -> None:
    """Move old keys to their new names in place (a warning each); both names at once is an error."""
    for old, new in RENAMED_KEYS.items():
        if old in values and old not in fields and new in fields:
            if new in values:
                raise ConfigError(path, f"{old!r} is the old name of {new!r}; give only {new!r}")
            log.warning("config key %r is now %r; read as %s = %s", old, new, new, values[old])
            values[new] = values.pop(old)


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
    _apply_renames(values, fields, path)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _apply_renames(given, fields, path)
    values.update(given)
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
