"""Checkpoint files: safe loading (``weights_only=True``) and atomic saving.

Two kinds (see the model cards):

* shipped weights: a plain ``state_dict``;
* training checkpoints: ``{"format", "version", "model", "optimizer", "iteration", "config", "rng",
  "torch_version", "created", ...}`` holding primitives and tensors only, so they load with
  ``weights_only=True`` and never run code.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
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
    "restore_training_state",
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
        with warnings.catch_warnings():
            # torch warns about non-default pickle protocols before refusing or loading them; the
            # CheckpointError below (or a clean load) says everything the user needs, on one line.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            # A file object, not the path: torch >= 2.10 hands any path ending in ".safetensors" to
            # safetensors whatever its bytes, bypassing weights_only and our checks (load_weights
            # reads safetensors files itself, after checking their header).
            with open(path, "rb") as f:
                return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        operand = re.search(r"Unsupported operand (\d+)", str(e))
        if operand and bytes([int(operand.group(1)) % 256]) not in _CODE_OPCODES:
            code = _find_code_opcode(path)
            if code is not None:
                # A bare pickle (not torch.save's layout) whose refusal came at a harmless opcode
                # before the code-running one: still report it as what it is.
                raise CheckpointError(
                    path, f"refused: not a plain tensor checkpoint; loading it would run code ({code})"
                ) from None
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


_SCAN_LIMIT = 64 * 2**20


def _find_code_opcode(path: Path) -> str | None:
    """Describe the first import/call opcode of a bare pickle file, or None (no such opcode, or not a pickle).

    Only disassembles (``pickletools.genops``); nothing is imported or called.
    """
    try:
        if path.stat().st_size > _SCAN_LIMIT:
            return None
        data = path.read_bytes()
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings = (strings + [arg])[-2:]
            if op.code.encode("latin-1") in _CODE_OPCODES:
                if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    return f"pickle opcode {op.name} {arg.replace(' ', '.')}"
                if op.name == "STACK_GLOBAL" and len(strings) == 2:
                    return f"pickle opcode STACK_GLOBAL {strings[0]}.{strings[1]}"
                return f"pickle opcode {op.name}"
    except Exception:  # noqa: BLE001 - any disassembly failure means "not a well-formed pickle"
        return None
    return None


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


def restore_training_state(
    checkpoint: Mapping[str, Any],
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    hint: str = "",
) -> int:
    """Load a :func:`load_checkpoint` result into ``model``, ``optimizer`` and ``generator``.

    Args:
        checkpoint: the loaded training checkpoint.
        path: its file, for messages.
        model, optimizer, generator: restored in place (strict key and shape match).
        hint: appended to the message when the model does not fit (e.g. which config keys decide
            the architecture).

    Returns:
        The checkpoint's iteration.

    Raises:
        CheckpointError: the model or optimizer state belongs to another architecture, or the
            iteration / RNG entries are malformed. Nothing is half-restored in a way the caller
            could continue from: the caller stops on the error.
    """
    state = checkpoint["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "the checkpoint's 'model' entry is not a state_dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(e).__name__)
        raise CheckpointError(
            path, f"the checkpoint's model does not fit this {type(model).__name__} ({detail[:200]})"
            + (f"; {hint}" if hint else "")
        ) from None
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(path, f"the checkpoint's optimizer state does not fit this model ({str(e)[:160]})") from None
    iteration = checkpoint["iteration"]
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise CheckpointError(path, f"the checkpoint's 'iteration' must be a non-negative int; got {iteration!r}")
    if "rng" in checkpoint:
        try:
            set_rng_state(generator, checkpoint["rng"])
        except (KeyError, TypeError, RuntimeError, ValueError) as e:
            raise CheckpointError(path, f"the checkpoint's RNG state is malformed ({str(e)[:160]})") from None
    return iteration
