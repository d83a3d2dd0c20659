"""Checkpoint files: safe loading (``weights_only=True``) and atomic saving.

Two kinds (see the model cards):

* shipped weights: a plain ``state_dict``;
* training checkpoints: ``{"format", "version", "model", "optimizer", "iteration", "config", "rng",
  "torch_version", "created", ...}`` holding primitives and tensors only, so they load with
  ``weights_only=True`` and never run code.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .files import atomic_path

__all__ = [
    "load_state_dict_file", "load_checkpoint", "save_checkpoint", "training_header", "rng_state", "set_rng_state",
]


# Pickle opcodes that import or call objects (GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE, BUILD, NEWOBJ,
# NEWOBJ_EX, EXT1/2/4): a weights-only refusal on one of these is a code-running file, any other
# refused opcode means the bytes are not a pickle at all.
_CODE_OPCODES = frozenset(bytes([b]) for b in b"c\x93ioRb\x81\x92\x82\x83\x84")


def _torch_load(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        operand = re.search(r"Unsupported operand (\d+)", str(e))
        if operand and bytes([int(operand.group(1)) % 256]) not in _CODE_OPCODES:
            # Not an attack: garbage or a cut-off legacy file read as pickle opcodes.
            raise CheckpointError(
                path, f"truncated or corrupt checkpoint (not a torch.save file; {operand.group(0)})"
            ) from None
        found = re.search(r"Unsupported (global|operand)[^\n.]*", str(e))
        detail = found.group(0) if found else "a disallowed object"
        raise CheckpointError(
            path, f"refused: not a plain tensor checkpoint; loading it would run code ({detail})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError, KeyError,
            IndexError, TypeError, UnicodeDecodeError, MemoryError) as e:
        msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise CheckpointError(path, f"truncated or corrupt checkpoint ({msg})") from None


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state_dict (or a training checkpoint's ``"model"`` entry) safely.

    Raises:
        CheckpointError: missing, truncated, code-executing or non-state_dict file.
    """
    obj = _torch_load(path)
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(path, "expected a state_dict (a mapping of names to tensors)")
    return dict(obj)


def load_checkpoint(path: str | Path, *, expected_format: str) -> dict[str, Any]:
    """Load a training checkpoint and check its ``format`` tag."""
    obj = _torch_load(path)
    if not isinstance(obj, Mapping) or obj.get("format") != expected_format:
        got = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(path, f"expected a '{expected_format}' training checkpoint; got {got!r}")
    for key in ("model", "optimizer", "iteration", "config"):
        if key not in obj:
            raise CheckpointError(path, f"training checkpoint lacks '{key}'")
    return dict(obj)


def save_checkpoint(obj: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``obj`` with ``torch.save`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(obj), tmp)
    return path


def training_header(fmt: str, iteration: int, config: Mapping[str, Any]) -> dict[str, Any]:
    """Common metadata of a training checkpoint."""
    return {
        "format": fmt,
        "version": 1,
        "iteration": int(iteration),
        "config": dict(config),
        "torch_version": str(torch.__version__),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """RNG state as tensors (weights_only-safe)."""
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(generator: torch.Generator, state: Mapping[str, torch.Tensor]) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
