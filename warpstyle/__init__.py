"""warpstyle: geometric-plus-texture style transfer (learned warper + multi-scale AdaIN styler)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adain.base.lazy import lazy_exports

# Imported on first use (PEP 562), as in ``adain``: the CLI's start-up loads no torch before its
# error handling is in place.
_EXPORTS = {
    "__version__": "adain",
    "tune_cpu_allocator": "adain",
    "correlation_4d": ".correlation",
    "l2_normalize_features": ".correlation",
    "normalize_correlation": ".correlation",
    "WarpField": ".field",
    "Pipeline": ".pipeline",
    "PipelineOptions": ".pipeline",
    "PipelineResult": ".pipeline",
    "WarpRegressor": ".regressor",
    "apply_warp": ".warp",
    "identity_grid": ".warp",
    "resize_field": ".warp",
    "scale_field": ".warp",
    "smooth_field": ".warp",
    "Warper": ".warper",
    "FieldError": "adain.base.errors",
    "export_models": ".export",
    "feature_matching_objective": ".objective",
    "Similarity": ".align",
    "estimate_similarity": ".align",
    "search_similarity": ".scale_search",
}

if TYPE_CHECKING:
    from adain import __version__, tune_cpu_allocator
    from adain.base.errors import FieldError
    from .align import Similarity, estimate_similarity
    from .scale_search import search_similarity
    from .correlation import correlation_4d, l2_normalize_features, normalize_correlation
    from .export import export_models
    from .field import WarpField
    from .objective import feature_matching_objective
    from .pipeline import Pipeline, PipelineOptions, PipelineResult
    from .regressor import WarpRegressor
    from .warp import apply_warp, identity_grid, resize_field, scale_field, smooth_field
    from .warper import Warper


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "__version__",
    "Warper",
    "Similarity",
    "estimate_similarity",
    "search_similarity",
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
