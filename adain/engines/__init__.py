"""Inference engines of the texture stage: torch (:class:`adain.Styler`, the reference) and onnxruntime.

The onnxruntime engine runs ``adain stylize`` without importing torch: images, resizing, AdaIN
statistics, the coarse-to-fine schedule and colour preservation in numpy (:mod:`.ops`), the VGG
encoder and the decoder as ONNX graphs built once from the weights in use (:mod:`.graphs`,
:mod:`.build`). Both engines take their passes from :mod:`.schedule`. docs/engines.md has the
provisioning, the tolerance between the engines and the measured figures.

Nothing here imports torch or onnxruntime at import time: names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adain.base.lazy import lazy_exports

_EXPORTS = {
    "ENGINES": ".choose",
    "Engine": ".choose",
    "EngineChoice": ".choose",
    "choose_engine": ".choose",
    "onnx_unsupported": ".choose",
    "OnnxStyler": ".onnx_styler",
    "GraphSet": ".graphs",
    "graph_dir": ".graphs",
    "find_graphs": ".graphs",
    "build_graphs": ".build",
    "pass_sizes": ".schedule",
    "scale_schedule": ".schedule",
}

if TYPE_CHECKING:
    from .build import build_graphs
    from .choose import ENGINES, Engine, EngineChoice, choose_engine, onnx_unsupported
    from .graphs import GraphSet, find_graphs, graph_dir
    from .onnx_styler import OnnxStyler
    from .schedule import pass_sizes, scale_schedule

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = ["ENGINES", "Engine", "EngineChoice", "choose_engine", "onnx_unsupported", "OnnxStyler", "GraphSet", "graph_dir",
           "find_graphs", "build_graphs", "pass_sizes", "scale_schedule"]
