"""Pipeline: warp the content toward the geometry image, then paint it with the texture image(s)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from adain.base.checks import check_range, check_weights
from adain.base.errors import StyleTransferError
from adain.base.image import ImageLike, as_image_batch, resize_exact, save_image, to_pil
from adain.base.memory import check_memory
from adain.base.runtime import default_bf16
from adain.styler import ColorMode, StyleBank, Styler
from adain.base.vgg import VGGEncoder

from .field import WarpField
from .warp import PaddingMode
from .warper import DEFAULT_SMOOTHNESS, Warper

__all__ = ["Pipeline", "PipelineResult", "PipelineOptions", "comparison_sheet", "DEFAULT_SIZE", "DEFAULT_MAX_SIZE"]

log = logging.getLogger(__name__)

#: Longer side of the output when none is given (px).
DEFAULT_SIZE = 512
#: Outputs are capped to this longer side unless raised (px); see docs for the memory it needs.
DEFAULT_MAX_SIZE = 4096


@dataclasses.dataclass
class PipelineOptions:
    """Controls of :meth:`Pipeline.run`; the defaults give good results on the bundled samples."""

    strength: float = 1.0  # warp strength: 0 = no warp, 1 = estimated warp
    smoothness: float = DEFAULT_SMOOTHNESS  # Gaussian sigma on the field, in 16x16-grid cells
    alpha: float = 0.8  # texture strength (0.8 keeps faces legible on the samples; the styler alone defaults to 1)
    texture_weights: Sequence[float] | None = None
    preserve_color: ColorMode | None = None
    size: int | None = None  # output longer side (default 512)
    max_size: int = DEFAULT_MAX_SIZE
    scales: Sequence[int] | None = None  # multi-scale schedule (default: halve down to 256)
    bf16: bool | None = None  # default: on for CPU
    padding: PaddingMode = "reflection"
    seed: int = 0


@dataclasses.dataclass
class PipelineResult:
    """Images ``(1, 3, H, W)`` in [0, 1] and the field of one run."""

    image: torch.Tensor
    content: torch.Tensor
    warped: torch.Tensor | None = None
    field: WarpField | None = None
    geometry: torch.Tensor | None = None
    textures: list[torch.Tensor] = dataclasses.field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        return save_image(self.image, path)

    def sheet(self, height: int = 256) -> Image.Image:
        """Labelled comparison sheet of inputs, warped content and result (see :func:`comparison_sheet`)."""
        return comparison_sheet(self, height)


def comparison_sheet(result: PipelineResult, height: int = 256) -> Image.Image:
    """Content, geometry, texture(s), warped and result side by side, each labelled."""
    panels: list[tuple[str, torch.Tensor]] = [("content", result.content)]
    if result.geometry is not None:
        panels.append(("geometry", result.geometry))
    for i, t in enumerate(result.textures):
        panels.append((f"texture {i + 1}" if len(result.textures) > 1 else "texture", t))
    if result.warped is not None:
        panels.append(("warped", result.warped))
    if result.field is not None:
        vis = torch.from_numpy(result.field.visualize()).permute(2, 0, 1).unsqueeze(0).float() / 255
        panels.append(("field", vis))
    panels.append(("result", result.image))
    label_h = 20
    tiles = []
    for name, img in panels:
        h, w = img.shape[-2:]
        tile = to_pil(resize_exact(img.cpu().float(), (height, max(1, round(w * height / h)))))
        canvas = Image.new("RGB", (tile.width, height + label_h), "white")
        canvas.paste(tile, (0, label_h))
        ImageDraw.Draw(canvas).text((4, 4), name, fill=(0, 0, 0))
        tiles.append(canvas)
    gap = 6
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), height + label_h), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + gap
    return sheet


def _out_size(ref_hw: tuple[int, int], size: int, max_size: int) -> tuple[int, int]:
    longer = min(size, max_size)
    if longer < size:
        log.warning("output size %d capped to --max-size %d", size, max_size)
    h, w = ref_hw
    s = longer / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


@dataclasses.dataclass
class _Prepared:
    """Shared inputs of a batch, loaded and encoded once."""

    geometry: torch.Tensor | None
    geometry_features: torch.Tensor | None
    textures: list[torch.Tensor]
    bank: StyleBank | None


class Pipeline:
    """The whole job: :class:`Warper` then multi-scale :class:`Styler`, sharing one VGG encoder.

    Example:
        >>> pipe = Pipeline.from_pretrained()  # doctest: +SKIP
        >>> result = pipe.run("content.jpg", geometry="modigliani.jpg", texture="starry.jpg")  # doctest: +SKIP
        >>> result.save("out.png")  # doctest: +SKIP
    """

    def __init__(self, warper: Warper | None, styler: Styler) -> None:
        self.warper = warper
        self.styler = styler

    @classmethod
    def from_pretrained(
        cls,
        *,
        warper: str | Path | None = None,
        decoder: str | Path | None = None,
        vgg: str | Path | None = None,
        device: torch.device | str | None = None,
    ) -> Pipeline:
        """Bundled models by default; paths override each. Loads the VGG-19 encoder once for both stages."""
        encoder = VGGEncoder.from_pretrained(vgg, device=device)
        styler = Styler.from_pretrained(decoder, encoder=encoder, device=device)
        w = Warper.from_pretrained(warper, encoder=encoder, device=device)
        return cls(w, styler)

    @property
    def device(self) -> torch.device:
        return self.styler.device

    def prepare(self, geometry: ImageLike | None, texture: ImageLike | Sequence[ImageLike] | None,
                bf16: bool) -> _Prepared:
        """Load the shared images and encode the geometry once (for batches)."""
        g = gf = None
        if geometry is not None:
            if self.warper is None:
                raise StyleTransferError("this pipeline has no warper; load one to use a geometry image")
            g = as_image_batch(geometry, "geometry")
            gf = self.warper.encode(g, bf16=bf16, name="geometry")
        textures: list[torch.Tensor] = []
        bank = None
        if texture is not None:
            items = [texture] if isinstance(texture, (str, Path, Image.Image, np.ndarray, torch.Tensor)) else list(texture)
            bank = self.styler.encode_styles(items, name="texture")
            textures = [t.cpu() for t in bank.images]
        return _Prepared(g, gf, textures, bank)

    def run(
        self,
        content: ImageLike,
        geometry: ImageLike | None = None,
        texture: ImageLike | Sequence[ImageLike] | None = None,
        options: PipelineOptions | None = None,
        *,
        prepared: _Prepared | None = None,
        **overrides: object,
    ) -> PipelineResult:
        """Warp ``content`` toward ``geometry`` (optional), then stylize it with ``texture`` (optional).

        Args:
            content: path, PIL image, array or ``(1, 3, H, W)`` tensor in [0, 1].
            geometry: image whose shapes the output takes (None: no warp).
            texture: one image or a list whose texture the output takes (None: no stylization).
            options: a :class:`PipelineOptions`; keyword overrides (``strength=0.5``) win.
            prepared: the result of :meth:`prepare` for the same geometry/texture (batches).

        Returns:
            PipelineResult. Output size: longer side ``size`` (default 512), with the geometry's
            aspect ratio when a geometry is given, else the content's.
        """
        opts = dataclasses.replace(options or PipelineOptions(), **overrides)  # type: ignore[arg-type]
        check_range(opts.strength, "strength", 0.0, 4.0)
        check_range(opts.alpha, "alpha", 0.0, 1.0)
        if opts.size is not None and opts.size < 8:
            raise ValueError(f"size must be at least 8 px; got {opts.size}")
        if opts.max_size < 8:
            raise ValueError(f"max_size must be at least 8 px; got {opts.max_size}")
        torch.manual_seed(opts.seed)  # the default path is deterministic; this covers stochastic variants
        bf16 = default_bf16(self.device) if opts.bf16 is None else bool(opts.bf16)
        prep = prepared or self.prepare(geometry, texture, bf16)
        if prep.bank is not None:  # before any model work: NaN, infinite or all-zero weights give flat grey
            check_weights(opts.texture_weights, "texture_weights", len(prep.bank.images), "texture")
        c = as_image_batch(content, "content")
        if c.shape[0] != 1:
            raise ValueError(f"content must be a single image (1, 3, H, W); got batch of {c.shape[0]}")
        c = c.to(self.device)

        warped = field = None
        warping = prep.geometry is not None and self.warper is not None
        ref_hw = prep.geometry.shape[-2:] if warping else c.shape[-2:]  # type: ignore[union-attr]
        out_hw = _out_size(tuple(ref_hw), opts.size or DEFAULT_SIZE, opts.max_size)
        if self.device.type == "cpu":
            # Before the warp: the styler's finest pass decides the peak, or without a texture the
            # full-size field and output (adain/base/memory.py).
            check_memory(out_hw, alpha=opts.alpha, bf16=bf16,
                         styles=None if prep.bank is None else [tuple(t.shape[-2:]) for t in prep.bank.images])
        if warping:
            field = self.warper.estimate(c, None, bf16=bf16, geometry_features=prep.geometry_features,
                                         geometry_size=tuple(prep.geometry.shape[-2:]))
            base = resize_exact(c, out_hw) if opts.strength == 0 else c
            warped = Warper.apply(base, field, strength=opts.strength, smoothness=opts.smoothness,
                                  size=out_hw, padding=opts.padding)
            image = warped
        else:
            image = resize_exact(c, out_hw)
        if prep.bank is not None:
            image = self.styler.stylize(
                image, prep.bank, alpha=opts.alpha, weights=opts.texture_weights, preserve_color=opts.preserve_color,
                scales=opts.scales, size=max(out_hw), bf16=bf16,
            )
            image = resize_exact(image, out_hw)
        return PipelineResult(image=image.cpu(), content=c.cpu(), warped=None if warped is None else warped.cpu(),
                              field=field, geometry=None if prep.geometry is None else prep.geometry.cpu(),
                              textures=prep.textures)

    def run_batch(
        self,
        contents: Iterable[ImageLike],
        geometry: ImageLike | None = None,
        texture: ImageLike | Sequence[ImageLike] | None = None,
        options: PipelineOptions | None = None,
        **overrides: object,
    ) -> Iterator[tuple[ImageLike, PipelineResult | StyleTransferError]]:
        """Run many contents against one geometry and texture, encoding those once.

        Yields ``(content, result)`` or ``(content, error)``: one bad file never stops the batch.
        """
        opts = dataclasses.replace(options or PipelineOptions(), **overrides)  # type: ignore[arg-type]
        bf16 = default_bf16(self.device) if opts.bf16 is None else bool(opts.bf16)
        prep = self.prepare(geometry, texture, bf16)
        for item in contents:
            try:
                yield item, self.run(item, options=opts, prepared=prep)
            except StyleTransferError as e:
                yield item, e
