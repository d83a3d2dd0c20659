"""Shipped weights: one self-describing format and one loader for the VGG encoder, the decoder and the warper.

Format (``"warpstyle.weights"`` version 1): a safetensors file whose ``__metadata__`` says what the
tensors are, after torchvision's ``Weights(url, transforms, meta)`` and nanoGPT's ``model_args``::

    {"format": "warpstyle.weights", "version": "1",
     "model": "Decoder" | "VGGEncoder" | "WarpRegressor",
     "config": JSON of the architecture (what the model's constructor needs),
     "input": JSON of the input convention (what the model reads, in which range and frame),
     "provenance": short text (how the tensors were made)}

Safety: the file cannot run code, and its header declares every tensor's dtype and shape before any
tensor byte is read. :func:`load_weights` checks that header against the architecture the file's
config names (shapes, dtypes, byte offsets, file length) and only then reads the data, so a small
crafted file can never make us allocate more than the architecture needs.

Legacy files (bare ``state_dict`` ``.pt`` files, the AdaIN port's ``decoder.pth`` /
``vgg_normalised.pth``, training checkpoints) still load through ``torch.load(weights_only=True)``;
:func:`load_weights` returns them with ``meta=None`` and the model maps their keys and calls
:func:`check_state` against its architecture before converting or building anything.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import load_state_dict_file
from ..errors import CheckpointError
from .files import atomic_path

__all__ = [
    "weights_model",
    "WEIGHTS_FORMAT", "WEIGHTS_VERSION", "WeightsMeta", "save_weights", "load_weights", "check_state",
    "bundled_weights", "meta_shapes",
]

WEIGHTS_FORMAT = "warpstyle.weights"
WEIGHTS_VERSION = "1"

#: ``(key) -> expected shape`` of every tensor of one architecture.
Shapes = Mapping[str, tuple[int, ...]]

# safetensors dtype names we write and read, with their element sizes. Integer tensors are only the
# quantised VGG codes (keys ending in "_codes"); everything else is floating point.
_FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4}
_CODE_DTYPES = {"U8": 1}
# Our headers are a few KB; safetensors itself allows 100 MB. A larger declared header is a crafted file.
_MAX_HEADER = 16 * 2**20


@dataclasses.dataclass(frozen=True)
class WeightsMeta:
    """What a weights file says about itself.

    Attributes:
        model: the architecture's class name (``"Decoder"``, ``"VGGEncoder"``, ``"WarpRegressor"``).
        config: the constructor arguments of that architecture.
        input: the input convention (range, colour order, normalisation, field convention ...).
        provenance: how the tensors were made.
    """

    model: str
    config: dict[str, Any]
    input: dict[str, Any]
    provenance: str


def bundled_weights(package: str, name: str) -> Path:
    """The path of a weights file shipped in ``<package>/weights/`` (package data, no network).

    Raises:
        CheckpointError: the file is missing from this installation.
    """
    ref = resources.files(package) / "weights" / name
    # setuptools installs package data as plain files, so the traversable is a real path; a zipped
    # install would need as_file's temporary copy, which we do not support (and say so).
    path = Path(str(ref))
    if not isinstance(ref, Path) or not path.is_file():
        raise CheckpointError(path, f"the bundled {package} weights '{name}' are missing from this installation")
    return path


def meta_shapes(build: Callable[[], torch.nn.Module]) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of ``build()``, constructed on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        module = build()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _dense(t: torch.Tensor) -> bool:
    """True when ``t`` covers its elements exactly once (contiguous in some dimension order).

    Channels-last conv weights pass; expanded (zero-stride) and overlapping views, which
    materialise into far more memory than the file holds, fail.
    """
    dims = sorted((s, n) for n, s in zip(t.shape, t.stride()) if n != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def check_state(
    state: Mapping[str, torch.Tensor], expected: Shapes, source: str | Path, describe: str, *, extra_ok: bool = False
) -> None:
    """Check tensors already in memory against an architecture, before anything converts or copies them.

    Args:
        state: the loaded tensors (legacy files; safetensors files are checked from their header).
        expected: key -> shape of the architecture.
        source: the file, for messages.
        describe: what the file should be, e.g. ``"an AdaIN decoder state_dict (...)"``; messages
            read ``not <describe>: <what is wrong>``.
        extra_ok: allow keys the architecture does not use (foreign layouts with more layers).

    Raises:
        CheckpointError: a key is missing or unexpected, a shape differs, or a tensor is not dense.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [] if extra_ok else [k for k in state if k not in expected]
    if missing or unexpected:
        parts = ([f"missing {_few(missing)}"] if missing else []) + ([f"unexpected {_few(unexpected)}"] if unexpected else [])
        raise CheckpointError(source, f"not {describe}: {'; '.join(parts)}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != tuple(shape):
            got = tuple(state[key].shape)
            raise CheckpointError(source, f"not {describe}: '{key}' has shape {got}, expected {tuple(shape)}")
    for key in expected:
        t = state[key]
        if not _dense(t):
            raise CheckpointError(source, f"refused: tensor '{key}' of shape {tuple(t.shape)} is not dense "
                                          f"(strides {tuple(t.stride())}); a crafted file would expand in memory")
    check_finite({k: state[k] for k in expected}, source)  # after the shapes: a dense, bounded read


def _few(keys: list[str]) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _dtype_name(t: torch.Tensor) -> str:
    names = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.uint8: "U8"}
    if t.dtype not in names:
        raise ValueError(f"weights files hold float16/bfloat16/float32 or uint8 tensors; got {t.dtype}")
    return names[t.dtype]


def save_weights(
    path: str | Path,
    model_name: str,
    state: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    input_spec: Mapping[str, Any],
    provenance: str = "",
) -> Path:
    """Write a self-describing weights file atomically (temp file in the same folder, then rename).

    Args:
        path: the ``.safetensors`` file to write.
        model_name: the architecture's class name (``"Decoder"``, ``"VGGEncoder"``, ``"WarpRegressor"``).
        state: the tensors (moved to CPU and made contiguous; dtypes kept).
        config: the architecture's constructor arguments (JSON-serialisable primitives).
        input_spec: the input convention (JSON-serialisable).
        provenance: short free text: source, trainer, iteration ...

    Returns:
        ``path`` as a Path.
    """
    from safetensors.torch import save

    path = Path(path)
    tensors = {}
    for k, v in state.items():
        _dtype_name(v)
        tensors[k] = v.detach().cpu().contiguous()
    metadata = {
        "format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION, "model": str(model_name),
        "config": json.dumps(dict(config), sort_keys=True), "input": json.dumps(dict(input_spec), sort_keys=True),
        "provenance": str(provenance),
    }
    data = save(tensors, metadata=metadata)
    # safetensors writes the metadata map in hash order; rewrite the header with sorted keys so the same
    # tensors and metadata always give the same bytes (and the sha256 in a model card can be reproduced).
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    text = json.dumps({k: header[k] for k in sorted(header)}, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned, as safetensors does
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text)
            f.write(memoryview(data)[8 + n :])
    return path


def _is_safetensors(path: Path) -> bool:
    """Sniff the file: safetensors starts with a u64 header length and then ``{``; torch files never do."""
    if not path.is_file():  # FIFOs, devices, folders: never open them here (a FIFO would block)
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False  # let the torch loader produce its usual "no such file" / unreadable message
    return len(head) == 9 and head[8:9] == b"{"


def _read_header(path: Path, f) -> tuple[dict[str, Any], int]:
    size = path.stat().st_size
    raw = f.read(8)
    (n,) = struct.unpack("<Q", raw)
    if n < 2 or n > _MAX_HEADER or 8 + n > size:
        raise CheckpointError(path, f"truncated or corrupt checkpoint (safetensors header of {n} bytes in a "
                                    f"{size}-byte file)")
    try:
        header = json.loads(f.read(n))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(path, f"truncated or corrupt checkpoint (unreadable safetensors header: {e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "truncated or corrupt checkpoint (the safetensors header is not a JSON object)")
    return header, n


def _parse_meta(path: Path, header: Mapping[str, Any], expected_model: str, describe: str) -> WeightsMeta:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(path, f"not {describe}: a safetensors file without '{WEIGHTS_FORMAT}' metadata "
                                    "(convert it with scripts/convert_weights.py)")
    if meta.get("version") != WEIGHTS_VERSION:
        raise CheckpointError(path, f"weights format version {meta.get('version')!r} is not supported "
                                    f"(this version reads {WEIGHTS_VERSION!r})")
    if meta.get("model") != expected_model:
        raise CheckpointError(path, f"not {describe}: the file holds {meta.get('model')!r} weights")
    try:
        config, spec = json.loads(meta.get("config", "")), json.loads(meta.get("input", ""))
    except (TypeError, ValueError):
        config = spec = None
    if not isinstance(config, dict) or not isinstance(spec, dict):
        raise CheckpointError(path, "corrupt weights metadata: 'config' and 'input' must be JSON objects")
    return WeightsMeta(model=expected_model, config=config, input=spec, provenance=str(meta.get("provenance", "")))


def _check_header(path: Path, header: Mapping[str, Any], expected: Shapes, n: int, describe: str) -> int:
    """Check every declared tensor against ``expected``; return the file's exact expected length."""
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    missing = [k for k in expected if k not in entries]
    unexpected = [k for k in entries if k not in expected]
    if missing or unexpected:
        parts = ([f"missing {_few(missing)}"] if missing else []) + ([f"unexpected {_few(unexpected)}"] if unexpected else [])
        raise CheckpointError(path, f"not {describe}: {'; '.join(parts)}")
    spans = []
    for key, shape in expected.items():
        e = entries[key]
        if not isinstance(e, dict):
            raise CheckpointError(path, f"truncated or corrupt checkpoint (header entry '{key}' is not an object)")
        dtypes = _CODE_DTYPES if key.endswith("_codes") else _FLOAT_DTYPES
        if e.get("dtype") not in dtypes:
            raise CheckpointError(path, f"not {describe}: '{key}' has dtype {e.get('dtype')!r}, expected one of "
                                        f"{sorted(dtypes)}")
        if e.get("shape") != list(shape):
            raise CheckpointError(path, f"not {describe}: '{key}' has shape {e.get('shape')}, expected {list(shape)}")
        offsets = e.get("data_offsets")
        nbytes = math.prod(shape) * dtypes[e["dtype"]]
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or offsets[0] < 0 or offsets[1] - offsets[0] != nbytes):
            raise CheckpointError(path, f"truncated or corrupt checkpoint (tensor '{key}' declares offsets "
                                        f"{offsets} for {nbytes} bytes)")
        spans.append(tuple(offsets))
    # The data section must be tiled exactly: no overlap (two names sharing bytes), no gap.
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise CheckpointError(path, "truncated or corrupt checkpoint (tensor data overlaps or leaves gaps)")
        end = stop
    return 8 + n + end


def weights_model(path: str | Path) -> str | None:
    """The ``model`` a weights file names in its metadata (None for a legacy torch file), reading only its header.

    Lets a registry pick the architecture before :func:`load_weights` checks the tensors against it.

    Raises:
        CheckpointError: a safetensors file whose header is unreadable or carries no weights metadata.
    """
    path = Path(path)
    if not _is_safetensors(path):
        return None
    with open(path, "rb") as f:
        header, _ = _read_header(path, f)
    meta = header.get("__metadata__")
    model = meta.get("model") if isinstance(meta, dict) and meta.get("format") == WEIGHTS_FORMAT else None
    if not isinstance(model, str):
        raise CheckpointError(path, f"a safetensors file without '{WEIGHTS_FORMAT}' metadata naming its model "
                                    "(convert it with scripts/convert_weights.py)")
    return model


def load_weights(
    path: str | Path,
    expected_model: str,
    shapes: Callable[[Mapping[str, Any]], Shapes],
    *,
    describe: str,
) -> tuple[dict[str, torch.Tensor], WeightsMeta | None]:
    """Load a weights file, checking it against the architecture before reading any tensor data.

    Args:
        path: a ``.safetensors`` weights file (detected by content, not by name) or a legacy torch
            file (state_dict, training checkpoint, the AdaIN port's ``.pth``).
        expected_model: the ``model`` the metadata must name (e.g. ``"Decoder"``).
        shapes: maps the file's ``config`` to the architecture's key -> shape; raises ValueError
            for a config out of range (checked before anything is built).
        describe: what the file should be, for messages (``not <describe>: ...``).

    Returns:
        ``(state, meta)``: for a safetensors file the checked tensors (dtypes as stored) and its
        :class:`WeightsMeta`; for a legacy torch file the raw tensors and ``None``. The caller maps
        legacy keys and runs :func:`check_state` before converting or building anything.

    Raises:
        CheckpointError: missing, truncated, code-executing, foreign or mis-shaped file (one line).
    """
    path = Path(path)
    if not _is_safetensors(path):
        return load_state_dict_file(path), None  # check_state checks shapes, density, then finiteness
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    with open(path, "rb") as f:
        header, n = _read_header(path, f)
        meta = _parse_meta(path, header, expected_model, describe)
        try:
            expected = shapes(meta.config)
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(path, f"not {describe}: invalid architecture config ({e})") from None
        total = _check_header(path, header, expected, n, describe)
        size = path.stat().st_size
        if size != total:
            raise CheckpointError(path, f"truncated or corrupt checkpoint (file is {size} bytes; its header "
                                        f"declares {total})")
        f.seek(0)
        data = f.read(total)  # bounded by the architecture, checked above
    try:
        state = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(path, f"truncated or corrupt checkpoint ({str(e).splitlines()[0][:160]})") from None
    check_finite(state, path)
    return state, meta


def check_finite(state: Mapping[str, Any], source: str | Path) -> None:
    """Refuse weights holding NaN or inf (a diverged run): they would give black images and exit 0.

    Raises:
        CheckpointError: naming the file and the first non-finite tensor.
    """
    for key, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not _all_finite(t):
            raise CheckpointError(source, f"refused: tensor '{key}' holds NaN or infinite values (weights of a "
                                          "diverged training run?)")


#: Exponent bits of the 16-bit float types: a value is NaN or infinite exactly when all are set.
_EXPONENT_BITS = {torch.float16: 0x7C00, torch.bfloat16: 0x7F80}


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every value of a floating-point tensor is finite, checked in numpy for CPU tensors.

    numpy runs on the calling thread: torch's ops on many small tensors each wait for its thread
    pool, which on a busy 2-core machine cost 0.4 s for the bundled decoder's 30 tensors (issue 31,
    model loading at every start); the 16-bit types are checked on their exponent bits.
    """
    if t.device.type != "cpu" or t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return bool(torch.isfinite(t).all())
    a = t.detach()
    mask = _EXPONENT_BITS.get(t.dtype)
    if mask is None:
        return bool(np.isfinite(a.numpy()).all())
    bits = a.view(torch.int16).numpy()
    return not bool(((bits & mask) == mask).any())
