"""Which engine runs a stylization: ``auto``, ``torch`` or ``onnx`` (torch-free).

``torch`` is the reference and runs everything. ``onnx`` runs :class:`.onnx_styler.OnnxStyler`
and refuses the options it does not have (:func:`onnx_unsupported`), naming the option. ``auto``
takes onnx when onnxruntime is importable, the graphs of the weights in use are built and every
option is supported, else torch, saying why (:meth:`EngineChoice.log`, at info level).

The CLIs log the choice once the run has succeeded, not when it is made: a user error found
later (a bad style file, weights that are not weights) must stay the one line on stderr.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from adain.base.errors import StyleTransferError

from .graphs import find_graphs
from .schedule import TILE_MIN_PIXELS, pass_sizes

__all__ = ["Engine", "ENGINES", "EngineChoice", "onnx_unsupported", "choose_engine", "onnxruntime_available"]

logger = logging.getLogger(__name__)

Engine = Literal["auto", "torch", "onnx"]
ENGINES: tuple[str, ...] = ("auto", "torch", "onnx")


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    """The engine a run takes: ``engine`` (``"torch"`` or ``"onnx"``), what was asked for, and for
    auto's torch the reason (e.g. ``"the onnx engine does not support --mask"``)."""

    engine: Literal["torch", "onnx"]
    requested: str
    reason: str | None = None

    @property
    def message(self) -> str | None:
        """What :meth:`log` says: auto's choice and, for torch, why; None when an engine was named."""
        if self.requested != "auto":
            return None
        return f"engine auto: {self.engine}" + (f" ({self.reason})" if self.reason else "")

    def log(self) -> None:
        """Log :attr:`message` at info level (the CLIs call this after a successful run)."""
        if self.message:
            logger.info("%s", self.message)


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported (found, not imported: that costs 0.15 s)."""
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_unsupported(out_hw: tuple[int, int], *, size: int | None = None, scales: Sequence[int] | None = None,
                     masks: bool = False, refine_steps: int = 0, bf16: bool | None = None,
                     device: str = "auto", tile: int | None = None) -> str | None:
    """The first option of a run the onnx engine does not have, as the CLI spells it, or None.

    Args:
        out_hw: the output's ``(H, W)``.
        size, scales: as in :meth:`adain.Styler.stylize` (they decide the passes).
        masks: whether the run has masks.
        refine_steps, bf16, device, tile: as the CLI passes them (None: the default).

    Example:
        >>> onnx_unsupported((512, 384), masks=True)
        '--mask'
        >>> onnx_unsupported((512, 384)) is None
        True
    """
    if masks:
        return "--mask"
    if refine_steps:
        return "--refine"
    if bf16:
        return "--bf16"  # onnxruntime's CPU kernels are float32
    if device not in ("auto", "cpu"):
        return "--device"
    if size is None and max(out_hw) < 8:
        return None  # too small to stylize at its own size: the styler says so, whichever engine
    passes = pass_sizes(out_hw, size, scales)
    if tile and any(max(ph, pw) > tile for ph, pw, _ in passes):
        return "--tile"
    if any(ph * pw > TILE_MIN_PIXELS for ph, pw, _ in passes):
        return "--size"  # passes over 1024x1024 px run in tiles on the torch engine; not here yet
    return None


def choose_engine(requested: str, unsupported: str | None, *, decoder: str | Path | None = None,
                  vgg: str | Path | None = None, cache: str | Path | None = None) -> EngineChoice:
    """The engine to run: ``requested`` resolved against what the run needs and what is installed.

    Args:
        requested: one of :data:`ENGINES`.
        unsupported: :func:`onnx_unsupported` of the run.
        decoder, vgg: the weights in use (None: bundled); auto looks for their graphs.
        cache: the graphs' cache folder (default :func:`adain.engines.graphs.cache_root`).

    Raises:
        StyleTransferError: ``onnx`` with an option it does not have, or without onnxruntime.
        ValueError: an unknown engine.
    """
    if requested not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {requested!r}")
    if requested == "torch":
        return EngineChoice("torch", requested)
    if requested == "onnx":
        if unsupported:
            detail = " (outputs over 1024x1024 px run in tiles)" if unsupported == "--size" else ""
            raise StyleTransferError(f"--engine onnx does not support {unsupported}{detail}; use --engine torch or auto")
        if not onnxruntime_available():
            raise StyleTransferError("--engine onnx needs onnxruntime: pip install -e '.[export]'")
        return EngineChoice("onnx", requested)
    why = None
    if unsupported:
        why = f"the onnx engine does not support {unsupported}"
    elif not onnxruntime_available():
        why = "onnxruntime is not installed"
    elif find_graphs(decoder, vgg, cache=cache) is None:
        why = "no ONNX graphs for these weights yet; build them once: adain build-graphs"
    return EngineChoice("torch" if why else "onnx", requested, why)
