"""Config files: a dataclass of settings read from TOML/JSON, with CLI overrides, validated against one table.

Each config dataclass declares ``RANGES``, a mapping of field name to :class:`Range`, and calls
:func:`validate_config` from ``__post_init__``: a value from a file, a flag or the API is checked
by the same rule, and the CLIs' option ranges are tested against the same table.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .storage.files import atomic_path, input_file_problem

__all__ = ["load_config", "config_to_dict", "write_config", "Range", "validate_config", "SEED_MAX"]

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


#: Largest seed: torch seeds are 64-bit and the trainers also use ``seed + 1``.
SEED_MAX = 2**63 - 1
#: Upper bounds shared by both trainers' tables: data-loader processes and images per step.
MAX_WORKERS = 64
MAX_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of one numeric setting: ``min <= v <= max`` (``min < v`` when ``min_open``).

    Floats must also be finite. None means unbounded on that side.
    """

    min: float | None = None
    max: float | None = None
    min_open: bool = False

    def describe(self) -> str:
        def fmt(v: float) -> str:
            return str(v) if isinstance(v, int) else f"{v:g}"

        lo = None if self.min is None else f"{'>' if self.min_open else '>='} {fmt(self.min)}"
        if self.max is None:
            return lo or "finite"
        if self.min is not None and not self.min_open:
            return f"in [{fmt(self.min)}, {fmt(self.max)}]"
        return f"{lo + ' and ' if lo else ''}<= {fmt(self.max)}"

    def contains(self, v: float) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.min is not None and (v <= self.min if self.min_open else v < self.min):
            return False
        return self.max is None or v <= self.max


def validate_config(cfg: Any, path: str | Path | None = None) -> None:
    """Check every field of ``cfg`` named in its class's ``RANGES`` table.

    Raises:
        ConfigError: a value outside its range (or not finite), naming the key, the range and the value.
    """
    for name, rng in getattr(type(cfg), "RANGES", {}).items():
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(path, f"{name} must be a number {rng.describe()}; got {v!r}")
        if not rng.contains(v):
            raise ConfigError(path, f"{name} must be {rng.describe()}; got {v!r}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_config(cls: type[C], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> C:
    """Build ``cls`` from defaults, then a TOML/JSON file, then ``overrides`` (None values ignored).

    Raises:
        ConfigError: unreadable file, unknown keys (named, with suggestions), wrong value types or
            values outside the class's ``RANGES`` (the same rules as the CLI flags).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        problem = input_file_problem(p)
        if problem is not None:
            raise ConfigError(p, problem)
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
    try:
        return cls(**values)
    except ConfigError as e:  # from the class's __post_init__ (validate_config): name the file
        raise ConfigError(path, e.reason) from None


def write_config(cfg: Any, path: str | Path) -> None:
    """Write the effective config as JSON (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")
