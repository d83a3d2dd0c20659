"""warpstyle: geometric-plus-texture style transfer (learned warper + multi-scale AdaIN styler)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adain.base.lazy import lazy_exports

# Imported on first use (PEP 562), as in ``adain``: the CLI's start-up loads no torch before its
# error handling is in place.
_EXPORTS = {
    "__version__": "adain",
    "tune_cpu_allocator": "adain",
    "correlation_4d": "warpstyle.geometry.correlation",
    "l2_normalize_features": "warpstyle.geometry.correlation",
    "normalize_correlation": "warpstyle.geometry.correlation",
    "WarpField": "warpstyle.fields.field",
    "Pipeline": "warpstyle.pipeline",
    "PipelineOptions": "warpstyle.pipeline",
    "PipelineResult": "warpstyle.pipeline",
    "WarpRegressor": "warpstyle.geometry.regressor",
    "apply_warp": "warpstyle.fields.warp",
    "identity_grid": "warpstyle.fields.warp",
    "resize_field": "warpstyle.fields.warp",
    "scale_field": "warpstyle.fields.warp",
    "smooth_field": "warpstyle.fields.warp",
    "Warper": "warpstyle.geometry.warper",
    "FieldError": "adain.base.errors",
    "export_models": "warpstyle.app.export",
    "feature_matching_objective": "warpstyle.geometry.objective",
    "Similarity": "warpstyle.geometry.align",
    "estimate_similarity": "warpstyle.geometry.align",
    "search_similarity": "warpstyle.geometry.scale_search",
    "stylize_frames": "warpstyle.video.temporal",
    "stylize_video": "warpstyle.video.render",
    "TemporalOptions": "warpstyle.video.temporal",
}

if TYPE_CHECKING:
    from adain import __version__, tune_cpu_allocator
    from adain.base.errors import FieldError
    from warpstyle.geometry.align import Similarity, estimate_similarity
    from warpstyle.geometry.scale_search import search_similarity
    from warpstyle.geometry.correlation import correlation_4d, l2_normalize_features, normalize_correlation
    from warpstyle.app.export import export_models
    from warpstyle.fields.field import WarpField
    from warpstyle.geometry.objective import feature_matching_objective
    from warpstyle.pipeline import Pipeline, PipelineOptions, PipelineResult
    from warpstyle.geometry.regressor import WarpRegressor
    from warpstyle.fields.warp import apply_warp, identity_grid, resize_field, scale_field, smooth_field
    from warpstyle.geometry.warper import Warper
    from warpstyle.video.render import stylize_video
    from warpstyle.video.temporal import TemporalOptions, stylize_frames


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
    "stylize_frames",
    "stylize_video",
    "TemporalOptions",
]
