"""``warpstyle run`` without ``--geometry`` on the onnxruntime engine, without torch.

The texture-only route of :meth:`warpstyle.pipeline.Pipeline.run`, step for step: the content and
textures decoded to about the output's longer side (:func:`warpstyle.sizes.longer_side`), the
content resized to the output's size (its aspect ratio), then stylized at that size by
:class:`adain.engines.onnx_styler.OnnxStyler` (the torch styler's mirror; tolerance in
docs/engines.md). What it does not have is named by :func:`run_unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from adain.base.imagefile import fit_longer, read_rgb, write_rgb
from adain.engines.choose import onnx_unsupported

__all__ = ["run_unsupported", "texture_only_onnx", "read_content"]


def run_unsupported(*, geometry: Path | None, textures: Sequence[Path], batch: bool, save_sheet: bool,
                    out_hw: tuple[int, int] | None, scales: Sequence[int] | None, refine_steps: int,
                    bf16: bool | None, device: str, tile: int | None) -> str | None:
    """The first ``warpstyle run`` option the onnx engine does not have, or None.

    ``out_hw``: the output's ``(H, W)``; None checks only what needs no image (the run's shape:
    a geometry, a batch, side files), so a caller decodes the content only when that passes.
    """
    if geometry is not None:
        return "--geometry"  # the warp is not ported yet
    if not textures:
        return "--texture (none given)"
    if batch:
        return "several contents or a folder (batch mode)"
    if save_sheet:
        return "--save-sheet"
    if out_hw is None:
        return None
    return onnx_unsupported(out_hw, scales=scales, refine_steps=refine_steps, bf16=bf16, device=device, tile=tile)


def texture_only_onnx(content: np.ndarray, textures: Sequence[Path], longer: int, *, alpha: float,
                      weights: Sequence[float] | None, preserve_color: str | None, scales: Sequence[int] | None,
                      schedule: str, decoder: Path | None, vgg: Path | None, output: Path,
                      progress: Callable[[int, int], None] | None = None) -> None:
    """Stylize ``content`` (the decoded ``(H, W, 3)`` array) with ``textures`` at longer side
    ``longer`` and write it to ``output``, as ``Pipeline.run(content, None, textures)`` does."""
    from adain.engines.onnx_styler import OnnxStyler, read_chw
    from adain.engines.ops import resize_exact

    styles = [read_chw(t, working_size=longer) for t in textures]
    c = np.ascontiguousarray(content.transpose(2, 0, 1))  # (3, H, W)
    image = resize_exact(c, fit_longer(tuple(c.shape[-2:]), longer))
    styler = OnnxStyler.from_pretrained(decoder, vgg=vgg, build=True)
    out = styler.stylize(image, styles, alpha=alpha, weights=weights, preserve_color=preserve_color, scales=scales,
                         schedule=schedule, progress=progress)
    write_rgb(out.transpose(1, 2, 0), output)


def read_content(path: Path, longer: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The content decoded to about ``longer`` px, ``(H, W, 3)``, and the output's ``(H, W)``."""
    c = read_rgb(path, working_size=longer)
    return c, fit_longer(c.shape[:2], longer)
