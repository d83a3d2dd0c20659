"""What ``warpstyle run`` runs with and writes: its :class:`PipelineOptions`, its side files' suffixes, and the files.

Library code for the command (no click, no printing): :mod:`warpstyle.app.cli` parses the options
and calls these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from adain.base.image import save_image

from warpstyle.geometry.warper import DEFAULT_ALIGN, DEFAULT_SMOOTHNESS
from warpstyle.pipeline import PipelineOptions, PipelineResult

__all__ = ["run_options", "side_suffixes", "write_result"]


def run_options(*, method: str | None, strength: float, padding: str, smoothness: float | None, warp_refine: int,
                align: bool | None, alpha: float, texture_weights: Sequence[float], preserve_color: str | None,
                size: int | None, max_size: int, scales: list[int] | None, schedule: str, refine_steps: int,
                bf16: bool | None, seed: int, tile: int | None = None) -> PipelineOptions:
    """The pipeline's options from the command's values; None for smoothness or align means the default."""
    return PipelineOptions(
        method=method,  # type: ignore[arg-type]
        strength=strength, padding=padding, smoothness=DEFAULT_SMOOTHNESS if smoothness is None else smoothness, alpha=alpha,
        warp_refine=warp_refine, align=DEFAULT_ALIGN if align is None else align,
        texture_weights=list(texture_weights) or None, preserve_color=preserve_color,  # type: ignore[arg-type]
        size=size, max_size=max_size, scales=scales, schedule=schedule, refine_steps=refine_steps,  # type: ignore[arg-type]
        tile=tile, bf16=bf16, seed=seed,
    )


def side_suffixes(*, has_geometry: bool, save_warped: bool, save_field: str | None, save_sheet: bool) -> list[str]:
    """Suffixes of the side files written next to each output (the warped image and field need a geometry)."""
    return ((["_warped.png"] if save_warped and has_geometry else [])
            + ([f"_field.{save_field}", "_field.png"] if save_field and has_geometry else [])
            + (["_sheet.jpg"] if save_sheet else []))


def write_result(result: PipelineResult, out: Path, *, save_warped: bool, save_field: str | None,
                 save_sheet: bool) -> None:
    """Write the result's image to ``out`` and the side files asked for next to it."""
    save_image(result.image, out)
    stem = out.with_suffix("")
    if save_warped and result.warped is not None:
        save_image(result.warped, f"{stem}_warped.png")
    if save_field and result.field is not None:
        # The field as applied: what reproduces the output (Warper.apply with smoothness=0).
        result.field.save(f"{stem}_field.{save_field}")
        save_image(Image.fromarray(result.field.visualize()), f"{stem}_field.png")
    if save_sheet:
        save_image(result.sheet(), f"{stem}_sheet.jpg")
