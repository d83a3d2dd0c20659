"""warpstyle: geometric-plus-texture style transfer (learned warper + multi-scale AdaIN styler)."""

from adain import __version__, tune_cpu_allocator
from adain.base.errors import FieldError

from .correlation import correlation_4d, l2_normalize_features, normalize_correlation
from .export import export_models
from .field import WarpField
from .objective import feature_matching_objective
from .pipeline import Pipeline, PipelineOptions, PipelineResult
from .regressor import WarpRegressor
from .warp import apply_warp, identity_grid, resize_field, scale_field, smooth_field
from .warper import Warper

__all__ = [
    "__version__",
    "Warper",
    "Pipeline",
    "PipelineOptions",
    "PipelineResult",
    "WarpField",
    "FieldError",
    "WarpRegressor",
    "feature_matching_objective",
    "correlation_4d",
    "export_models",
    "l2_normalize_features",
    "normalize_correlation",
    "apply_warp",
    "identity_grid",
    "resize_field",
    "scale_field",
    "smooth_field",
    "tune_cpu_allocator",
]
