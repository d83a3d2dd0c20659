"""Pipeline: warp the content toward the geometry image, then paint it with the texture image(s)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adain.base.errors import StyleTransferError
from adain.base.memory import check_memory
from adain.base.image import ImageLike, as_image_batch, labelled_row, resize_exact, save_image
from adain.base.runtime import default_bf16
from adain.styler import ColorMode, Schedule, StyleBank, Styler
from adain.base.encoder.vgg import VGGEncoder

from warpstyle.fields.field import WarpField
from warpstyle.sizes import DEFAULT_SIZE, longer_side as _longer_side  # one policy for both engines
from warpstyle.fields.warp import DEFAULT_PADDING, PaddingMode
from warpstyle.geometry.warper import DEFAULT_ALIGN, DEFAULT_METHOD, DEFAULT_SMOOTHNESS, Encoding, Method, Warper

__all__ = ["Pipeline", "PipelineResult", "PipelineOptions", "comparison_sheet", "DEFAULT_SIZE", "DEFAULT_MAX_SIZE"]

log = logging.getLogger(__name__)

#: Outputs are capped to this longer side unless raised (px); see docs for the memory it needs.
DEFAULT_MAX_SIZE = 4096


@dataclasses.dataclass
class PipelineOptions:
    """Controls of :meth:`Pipeline.run`; the defaults give good results on the bundled samples."""

    method: Method | None = None  # "match" (semantic matching) or "network"; None: matching, the network with align
    strength: float = 1.0  # warp strength: 0 = no warp, 1 = estimated warp
    smoothness: float = DEFAULT_SMOOTHNESS  # Gaussian sigma on the field, in 16x16-grid cells
    warp_refine: int = 0  # Adam steps refining the field per pair on the feature-matching objective
    align: bool | str = DEFAULT_ALIGN  # a global similarity first: True, the multi-scale search; "matches": the matcher
    alpha: float = 0.8  # texture strength (0.8 keeps faces legible on the samples; the styler alone defaults to 1)
    texture_weights: Sequence[float] | None = None
    preserve_color: ColorMode | None = None
    size: int | None = None  # output longer side (default 512)
    max_size: int = DEFAULT_MAX_SIZE
    scales: Sequence[int] | None = None  # multi-scale schedule (default: halve down to 512)
    schedule: Schedule = "guided"  # how finer passes use the coarser one (adain.Styler.stylize)
    refine_steps: int = 0  # texture quality mode: Adam steps on the output (0: off)
    tile: int | None = None  # core side of the texture stage's tiles: None automatic (large outputs), 0 never
    bf16: bool | None = None  # default: adain.base.runtime.default_bf16
    padding: PaddingMode = DEFAULT_PADDING  # what fills the output beyond the content
    seed: int = 0


@dataclasses.dataclass
class PipelineResult:
    """Images ``(1, 3, H, W)`` in [0, 1] and the field of one run."""

    image: torch.Tensor
    content: torch.Tensor
    warped: torch.Tensor | None = None
    field: WarpField | None = None  # the field as applied: smoothed, scaled and at the output's size
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
    return labelled_row(panels, height)


def _texture_items(texture: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """One texture or a sequence of them, as a list (a path is one texture, not a sequence of characters)."""
    single = (str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)
    return [texture] if isinstance(texture, single) else list(texture)  # type: ignore[list-item]


def _pixels_key(image: torch.Tensor) -> tuple[tuple[int, ...], str]:
    """Shape and digest of an image's pixels: equal images get equal keys, whatever their source."""
    data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return tuple(image.shape), hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclasses.dataclass
class _Prepared:
    """Shared inputs of a batch, loaded, checked and encoded once."""

    geometry: torch.Tensor | None
    geometry_features: Encoding | None
    textures: list[torch.Tensor]
    bank: StyleBank | None
    geometry_network: torch.Tensor | None = None  # with matching: the network's features, for its fallback


class Pipeline:
    """The whole job: :class:`Warper` then multi-scale :class:`Styler`, sharing one VGG encoder.

    The pipeline only orchestrates: it checks the user's inputs once, here, then hands checked
    tensors to the stages, each of which owns its policy (the warper: strength, smoothness and the
    output frame; the styler: alpha, texture weights, colour, passes and the memory pre-flight).

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
                bf16: bool, *, method: Method = DEFAULT_METHOD,
                cache: MutableMapping[Hashable, object] | None = None, working_size: int | None = None) -> _Prepared:
        """Load and check the shared images and encode the geometry once (for batches).

        Args:
            method: the warper's estimation method the geometry is encoded for.
            cache: reuse the encodings of images seen before, keyed by their pixels (e.g. across the
                requests of a server: one geometry, many contents). The caller bounds its size.
            working_size: image files this many times two or more px on the longer side are decoded
                smaller (:func:`adain.base.image.load_image`); the output's longer side is enough.
        """
        g = gf = gn = None
        if geometry is not None:
            if self.warper is None:
                raise StyleTransferError("this pipeline has no warper; load one to use a geometry image")
            g = as_image_batch(geometry, "geometry", working_size=working_size)
            key = ("geometry", _pixels_key(g), bf16, method)
            encoded = cache.get(key) if cache is not None else None
            if encoded is None:
                # Matching falls back to the network where it is not confident: both encodings, once.
                pool4 = self.warper._pool4(g, bf16)
                encoded = (pool4, None) if method == "network" else (self.warper._match_taps(g, bf16), pool4)
                if cache is not None:
                    cache[key] = encoded
            gf, gn = encoded
        textures: list[torch.Tensor] = []
        bank = None
        if texture is not None:
            items = _texture_items(texture)
            if cache is None:
                bank = self.styler.encode_styles(items, name="texture", working_size=working_size)
            else:
                # bf16 is in the key because the bank caches features computed under it.
                imgs = [as_image_batch(t, f"texture[{i}]", working_size=working_size) for i, t in enumerate(items)]
                key = ("texture", tuple(_pixels_key(t) for t in imgs), bf16)
                bank = cache.get(key)
                if bank is None:
                    bank = cache[key] = self.styler.encode_styles(imgs, name="texture")
            textures = [t.cpu() for t in bank.images]
        return _Prepared(g, gf, textures, bank, gn)

    def run(
        self,
        content: ImageLike,
        geometry: ImageLike | None = None,
        texture: ImageLike | Sequence[ImageLike] | None = None,
        options: PipelineOptions | None = None,
        *,
        prepared: _Prepared | None = None,
        progress: Callable[[int, int], None] | None = None,
        cache: MutableMapping[Hashable, object] | None = None,
        **overrides: object,
    ) -> PipelineResult:
        """Warp ``content`` toward ``geometry`` (optional), then stylize it with ``texture`` (optional).

        Args:
            content: path, PIL image, array or ``(1, 3, H, W)`` tensor in [0, 1].
            geometry: image whose shapes the output takes (None: no warp).
            texture: one image or a list whose texture the output takes (None: no stylization).
            options: a :class:`PipelineOptions`; keyword overrides (``strength=0.5``) win.
            prepared: the result of :meth:`prepare` for the same geometry/texture (batches).
            progress: ``progress(done, total)`` per stylization pass (see :meth:`Styler.stylize`).
            cache: passed to :meth:`prepare` (reuse geometry/texture encodings across calls).

        Returns:
            PipelineResult. Output size: longer side ``size`` (default 512), with the geometry's
            aspect ratio when a geometry is given (:meth:`Warper.output_size`), else the content's.
        """
        opts = dataclasses.replace(options or PipelineOptions(), **overrides)  # type: ignore[arg-type]
        # The options, each checked once by the stage that owns it, before any image is loaded.
        if opts.size is not None and opts.size < 8:
            raise ValueError(f"size must be at least 8 px; got {opts.size}")
        if opts.max_size < 8:
            raise ValueError(f"max_size must be at least 8 px; got {opts.max_size}")
        Warper.check_options(strength=opts.strength, smoothness=opts.smoothness, padding=opts.padding)
        method = opts.method or ("network" if opts.align else DEFAULT_METHOD)
        Warper.method(method)  # bad values fail here, before any image is read
        Warper.align_method(opts.align)
        bf16 = default_bf16(self.device) if opts.bf16 is None else bool(opts.bf16)
        if prepared is None and texture is not None:
            texture = _texture_items(texture)  # once: an iterator would be empty when prepare() reads it
        count = len(prepared.bank.images) if prepared is not None and prepared.bank is not None else (
            None if prepared is not None or texture is None else len(texture))  # type: ignore[arg-type]
        plan = None if count is None else self.styler.plan(
            count, alpha=opts.alpha, weights=opts.texture_weights, preserve_color=opts.preserve_color,
            scales=opts.scales, bf16=bf16, schedule=opts.schedule, refine_steps=opts.refine_steps, tile=opts.tile,
            name="texture", item="texture", weights_name="texture_weights")
        torch.manual_seed(opts.seed)  # the default path is deterministic; this covers stochastic variants
        longer = _longer_side(opts.size, opts.max_size)
        # Large files are decoded straight to about the output's size: never an 8000 px float copy for a 512 px output.
        prep = prepared or self.prepare(geometry, texture, bf16, method=method, cache=cache, working_size=longer)
        c = as_image_batch(content, "content", working_size=longer)  # the one check of the content
        if c.shape[0] != 1:
            raise ValueError(f"content must be a single image (1, 3, H, W); got batch of {c.shape[0]}")
        c = c.to(self.device)

        warped = field = None
        warping = prep.geometry is not None and self.warper is not None
        out_hw = Warper.output_size(tuple(prep.geometry.shape[-2:]), longer) if warping else (  # type: ignore[union-attr]
            self.styler.output_size(tuple(c.shape[-2:]), longer))
        if plan is not None:
            assert prep.bank is not None  # before the warp: the styler's finest pass decides the peak
            plan = self.styler.preflight(out_hw, plan, styles=[tuple(t.shape[-2:]) for t in prep.bank.images])
        elif self.device.type == "cpu":
            check_memory(out_hw, bf16=bf16, styles=None)  # no texture: the full-size field and output
        if warping:
            assert self.warper is not None and prep.geometry is not None and prep.geometry_features is not None
            # Checked above, once: the warper trusts these tensors.
            estimate = self.warper._estimate_trusted(c, prep.geometry, method=method, align=opts.align,
                                                     refine_steps=opts.warp_refine, bf16=bf16,
                                                     geometry_features=prep.geometry_features,
                                                     fallback_features=prep.geometry_network)
            warped, field = Warper._apply_trusted(c, estimate, opts.strength, opts.smoothness, out_hw, opts.padding)
            image = warped
        else:
            image = resize_exact(c, out_hw)
        if plan is not None:
            assert prep.bank is not None
            image = self.styler.stylize_planned(image, prep.bank, plan, progress=progress)  # already at out_hw
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
        # The shared images decoded toward the output's size once, as run() decodes each content.
        prep = self.prepare(geometry, texture, bf16, method=opts.method or ("network" if opts.align else DEFAULT_METHOD),
                            working_size=_longer_side(opts.size, opts.max_size, warn=False))
        for item in contents:
            try:
                yield item, self.run(item, options=opts, prepared=prep)
            except StyleTransferError as e:
                yield item, e
