"""adain: the texture stage of warpstyle (multi-scale AdaIN) and the shared base layer.

The base layer (VGG-19 encoder, image I/O, errors, checkpoints, data) lives here because both
stages need it; ``warpstyle`` imports ``adain``, never the reverse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adain.base.lazy import lazy_exports

__version__ = "0.1.0"

# The public names are imported on first use (PEP 562): ``import adain`` and the CLIs' start-up then
# load no torch before their error handling is in place (Ctrl-C in the first second gives one line,
# not a traceback), and ``--version`` answers at once.
_EXPORTS = {
    "load_checkpoint": ".base.storage.checkpoint",
    "load_state_dict_file": ".base.storage.checkpoint",
    "save_checkpoint": ".base.storage.checkpoint",
    "Decoder": ".decoder",
    "CheckpointError": ".base.errors",
    "ConfigError": ".base.errors",
    "ImageError": ".base.errors",
    "StyleTransferError": ".base.errors",
    "OutputError": ".base.errors",
    "adaptive_instance_norm": ".functional",
    "calc_mean_std": ".functional",
    "luminance_transfer": ".functional",
    "match_color": ".functional",
    "load_image": ".base.image",
    "resize_exact": ".base.image",
    "resize_longer": ".base.image",
    "resize_shorter": ".base.image",
    "resize_to_multiple": ".base.image",
    "save_image": ".base.image",
    "tune_cpu_allocator": ".base.runtime",
    "StyleBank": ".styler",
    "Styler": ".styler",
    "scale_schedule": ".styler",
    "StylizePlan": ".styler",
    "WeightsMeta": ".base.storage.weights",
    "load_weights": ".base.storage.weights",
    "save_weights": ".base.storage.weights",
    "VGG_TAPS": ".base.encoder.vgg",
    "VGGEncoder": ".base.encoder.vgg",
}

if TYPE_CHECKING:
    from .base.storage.checkpoint import load_checkpoint, load_state_dict_file, save_checkpoint
    from .decoder import Decoder
    from .base.errors import CheckpointError, ConfigError, ImageError, OutputError, StyleTransferError
    from .functional import adaptive_instance_norm, calc_mean_std, luminance_transfer, match_color
    from .base.image import load_image, resize_exact, resize_longer, resize_shorter, resize_to_multiple, save_image
    from .base.runtime import tune_cpu_allocator
    from .styler import StyleBank, Styler, StylizePlan, scale_schedule
    from .base.storage.weights import WeightsMeta, load_weights, save_weights
    from .base.encoder.vgg import VGG_TAPS, VGGEncoder


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "__version__",
    "Styler",
    "StyleBank",
    "StylizePlan",
    "Decoder",
    "VGGEncoder",
    "VGG_TAPS",
    "adaptive_instance_norm",
    "calc_mean_std",
    "match_color",
    "luminance_transfer",
    "scale_schedule",
    "load_image",
    "save_image",
    "resize_longer",
    "resize_shorter",
    "resize_exact",
    "resize_to_multiple",
    "tune_cpu_allocator",
    "load_state_dict_file",
    "load_checkpoint",
    "save_checkpoint",
    "load_weights",
    "save_weights",
    "WeightsMeta",
    "StyleTransferError",
    "ImageError",
    "CheckpointError",
    "ConfigError",
    "OutputError",
]
