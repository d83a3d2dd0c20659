"""adain: the texture stage of warpstyle (multi-scale AdaIN) and the shared base layer.

The base layer (VGG-19 encoder, image I/O, errors, checkpoints, data) lives here because both
stages need it; ``warpstyle`` imports ``adain``, never the reverse.
"""

from .base.checkpoint import load_checkpoint, load_state_dict_file, save_checkpoint
from .decoder import Decoder
from .base.errors import CheckpointError, ConfigError, ImageError, OutputError, StyleTransferError
from .functional import adaptive_instance_norm, calc_mean_std, luminance_transfer, match_color
from .base.image import load_image, resize_exact, resize_longer, resize_shorter, resize_to_multiple, save_image
from .base.runtime import tune_cpu_allocator
from .styler import StyleBank, Styler, StylizePlan, scale_schedule
from .base.vgg import VGG_TAPS, VGGEncoder
from .base.weights import WeightsMeta, load_weights, save_weights

__version__ = "0.1.0"

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
