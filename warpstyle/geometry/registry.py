"""The warper architectures a weights file can name: its ``model`` field picks one, its ``config`` builds it.

After torchvision's ``register_model`` / ``get_model``: adding a warper architecture is one module
that defines the network and calls :func:`register_architecture`; loading
(:meth:`~warpstyle.geometry.warper.Warper.from_pretrained`), training and export find it here.
The table is filled at import of this module with the built-in architectures and is otherwise
only read; it holds descriptions, never models or state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch.nn as nn

from adain.base.storage.weights import meta_shapes
from warpstyle.geometry.regressor import WarpRegressor

__all__ = ["Architecture", "register_architecture", "get_architecture", "architecture_names", "DEFAULT_ARCHITECTURE"]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What a warper network is: how to build it, the bounds of its config and what it reads.

    Attributes:
        name: the weights' ``model`` field (the class name by convention).
        build: ``build(**config)`` returns the untrained module; it maps content and geometry
            features ``(B, C, G, G)`` to a backward field ``(B, G, G, 2)`` and has ``grid_size``
            and ``config()``.
        limits: config key -> inclusive integer ``(low, high)``: far above anything trained, far
            below what a crafted file could ask for (checked before anything is built).
        feature_tap: the VGG tap it reads.
        feature_size: the square side (px) images are resized to before encoding.
        input: the input convention stored in every weights file of this architecture.
    """

    name: str
    build: Callable[..., nn.Module]
    limits: Mapping[str, tuple[int, int]]
    feature_tap: str
    feature_size: int
    input: Mapping[str, str]

    def shapes(self, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        """Key -> shape of ``build(**config)``, after checking the config's keys and ranges (ValueError)."""
        if set(config) != set(self.limits):
            raise ValueError(f"expected keys {sorted(self.limits)}; got {sorted(config)}")
        for key, (lo, hi) in self.limits.items():
            v = config[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{key} must be an int in [{lo}, {hi}]; got {v!r}")
        return meta_shapes(lambda: self.build(**config))


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Add ``arch`` to the table under ``arch.name`` (ValueError if the name is taken)."""
    if arch.name in _ARCHITECTURES:
        raise ValueError(f"a warper architecture named {arch.name!r} is already registered")
    _ARCHITECTURES[arch.name] = arch
    return arch


def get_architecture(name: str) -> Architecture:
    """The architecture named ``name`` (ValueError listing the known names otherwise)."""
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown warper architecture {name!r}; known: {architecture_names()}") from None


def architecture_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_ARCHITECTURES)


#: The design's network: L2-normalised 16x16 pool4 features, the full 4-D correlation, a small regressor.
DEFAULT_ARCHITECTURE = register_architecture(Architecture(
    name="WarpRegressor",
    build=WarpRegressor,
    limits={"grid_size": (1, 64), "hidden": (2, 2048), "refine_steps": (0, 16)},
    feature_tap="pool4",
    feature_size=256,
    input={
        "features": "VGG-19 pool4 (bundled Oxford VGG, raw: pool taps carry no scale) of content and geometry, "
                    "each resized to 256x256 (bilinear, antialiased), L2-normalised over channels: (B, 512, G, G)",
        "field": "backward warp, output (geometry) frame -> content; normalised [-1, 1], (x, y) order, "
                 "align_corners=False, shape (B, G, G, 2)",
    },
))
