"""Checkpoint files: safe loading (``weights_only=True``) and atomic saving.

Two kinds (see the model cards):

* shipped weights: a plain ``state_dict``;
* training checkpoints: ``{"format", "version", "model", "optimizer", "iteration", "config", "rng",
  "torch_version", "created", ..., "sha256"}`` holding primitives and tensors only, so they load with
  ``weights_only=True`` and never run code. ``sha256`` (:func:`checkpoint_digest`) covers every
  other entry, tensors by their stored bytes; :func:`load_checkpoint` verifies it, so flipped bytes
  in a tensor's data (which torch.load does not notice) are reported instead of resumed from.
  Checkpoints written before the digest existed still load.
"""

from __future__ import annotations

import hashlib
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

from ..errors import CheckpointError
from .files import atomic_path, input_file_problem

__all__ = [
    "load_state_dict_file", "load_checkpoint", "save_checkpoint", "training_header", "rng_state", "set_rng_state",
    "restore_training_state", "load_error_detail", "checkpoint_digest",
]

#: The entry of a training checkpoint that holds :func:`checkpoint_digest` of the others.
DIGEST_KEY = "sha256"


# Pickle opcodes that import or call objects (GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE, BUILD, NEWOBJ,
# NEWOBJ_EX, EXT1/2/4): a weights-only refusal on one of these is a code-running file, any other
# refused opcode means the bytes are not a pickle at all.
_CODE_OPCODES = frozenset(bytes([b]) for b in b"c\x93ioRb\x81\x92\x82\x83\x84")


def _torch_load(path: str | Path) -> Any:
    path = Path(path)
    problem = input_file_problem(path)
    if problem is not None:
        raise CheckpointError(path, problem)
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty (0 bytes)")
    _check_declared_size(path)
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
        msg = _first_sentence(str(e)) if str(e) else type(e).__name__
        raise CheckpointError(path, f"truncated or corrupt checkpoint ({msg})") from None


def _first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of the first line, never cut mid-word (a cut is marked with '...')."""
    line = text.strip().splitlines()[0] if text.strip() else text
    line = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0].rstrip(".")
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + "..."


_SCAN_LIMIT = 64 * 2**20
#: torch.save's zip layout stores tensors uncompressed; a file whose entries expand far beyond its
#: size (a zip-compressed zero tensor grows about 1000:1) is refused before torch.load reads it.
_MAX_EXPANSION = 8
_MAX_DECLARED = 4 * 2**30
_EXPANSION_FLOOR = 64 * 2**20


def _check_declared_size(path: Path) -> None:
    """Refuse a zip checkpoint whose entries declare far more bytes than the file holds (a zip bomb).

    Reads only the zip's central directory: nothing is decompressed or unpickled.
    """
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as z:
            declared = sum(i.file_size for i in z.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # torch.load reports the corruption in its own words below
    size = path.stat().st_size
    if declared > _MAX_DECLARED or (declared > _EXPANSION_FLOOR and declared > _MAX_EXPANSION * size):
        raise CheckpointError(path, f"refused: its entries expand to {declared / 2**20:.0f} MiB from a "
                                    f"{size / 2**20:.1f} MiB file (compressed tensor data; torch.save never "
                                    "writes that)")


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


def load_error_detail(e: BaseException, limit: int = 160) -> str:
    """The informative part of a ``load_state_dict`` error, on one line.

    torch's message opens with a bare header line ("Error(s) in loading state_dict for Decoder:")
    and lists the missing, unexpected or mis-shaped keys on the next lines; this keeps the first
    listed problem (or the only line there is), so a message never ends at the header.

    Example:
        >>> load_error_detail(RuntimeError("Error(s) in loading state_dict for Decoder:\\n\\tMissing key(s): '1.weight'."))
        "Missing key(s): '1.weight'."
    """
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        lines = lines[1:]
    detail = lines[0] if lines else type(e).__name__
    return detail if len(detail) <= limit else detail[: limit - 3] + "..."


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


def _digest_update(h: Any, key: str, value: Any) -> None:
    h.update(key.encode("utf-8", "surrogatepass") + b"\0")
    if isinstance(value, torch.Tensor):
        # The stored bytes of the tensor's storage, as torch.save writes them, plus the view on it:
        # never materialises a view (an expanded tensor hashes its small storage, not its shape).
        storage = value.untyped_storage()
        if storage.device.type != "cpu":
            storage = storage.cpu()
        h.update(f"T{value.dtype}{tuple(value.shape)}{value.stride()}{value.storage_offset()}:".encode())
        h.update(torch.empty(0, dtype=torch.uint8).set_(storage).numpy())
    elif isinstance(value, Mapping):
        h.update(b"{")
        for k in sorted(value, key=repr):
            _digest_update(h, f"{key}/{k!r}", value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for i, v in enumerate(value):
            _digest_update(h, f"{key}/{i}", v)
        h.update(b"]")
    else:  # primitives: str, int, float, bool, None
        h.update(f"{type(value).__name__}:{value!r}".encode("utf-8", "surrogatepass"))


def checkpoint_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over every entry of a training checkpoint except ``sha256`` itself.

    Tensors count by dtype, shape, stride and the bytes of their storage; other values by type
    and ``repr``. About 0.1 s for a decoder checkpoint with its Adam state (about 40 MB).

    Example:
        >>> checkpoint_digest({"a": torch.zeros(2)}) == checkpoint_digest({"a": torch.zeros(2)})
        True
    """
    h = hashlib.sha256()
    for k in sorted(k for k in obj if k != DIGEST_KEY):
        _digest_update(h, k, obj[k])
    return h.hexdigest()


def load_checkpoint(path: str | Path, *, expected_format: str) -> dict[str, Any]:
    """Load a training checkpoint, check its ``format`` tag and, when it has one, its SHA-256 digest.

    Raises:
        CheckpointError: unreadable or code-running file, another format, a missing entry, or a
            digest that does not match the contents (corrupt bytes).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        head = b""
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 2**24:
        raise CheckpointError(path, f"it is a weights file (safetensors), not a '{expected_format}' training "
                                    "checkpoint; resume from the run's checkpoint.pt, or warm-start from these "
                                    "weights with --init-decoder / --init-warper")
    obj = _torch_load(path)
    if not isinstance(obj, Mapping) or obj.get("format") != expected_format:
        got = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(path, f"expected a '{expected_format}' training checkpoint; got {got!r}")
    for key in ("model", "optimizer", "iteration", "config"):
        if key not in obj:
            raise CheckpointError(path, f"training checkpoint lacks '{key}'")
    if DIGEST_KEY in obj:  # older checkpoints have none and still load
        stored = obj[DIGEST_KEY]
        if not isinstance(stored, str) or checkpoint_digest(obj) != stored:
            raise CheckpointError(path, "corrupt checkpoint: its contents do not match the SHA-256 digest "
                                        "stored when it was saved")
    return dict(obj)


def save_checkpoint(obj: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``obj`` with ``torch.save`` atomically (temp file in the same folder, then rename).

    A training checkpoint (a mapping with a ``format`` entry) gets a ``sha256`` entry, the
    :func:`checkpoint_digest` of the rest, which :func:`load_checkpoint` verifies.
    """
    path = Path(path)
    data = dict(obj)
    if "format" in data:
        data[DIGEST_KEY] = checkpoint_digest(data)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
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
        raise CheckpointError(
            path, f"the checkpoint's model does not fit this {type(model).__name__} ({load_error_detail(e, 200)})"
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
