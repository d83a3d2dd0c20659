"""Styler: the texture stage. Multi-scale, coarse-to-fine AdaIN with alpha, style mixing, masks, colour control."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from .base.checks import check_device, check_range, check_weights
from .base.errors import StyleTransferError
from .decoder import Decoder
from .functional import adain_to_stats, adaptive_instance_norm, calc_mean_std, luminance_transfer, match_color
from .losses import STYLE_TAPS, style_loss
from .base.image import ImageLike, as_image_batch, fit_longer, resize_exact, resize_longer
from .base.memory import check_memory
from .base.runtime import bf16_autocast, default_bf16
from .base.encoder.vgg import VGGEncoder
from .engines.schedule import MIN_SCALE, MIN_SIDE, TILE_MIN_PIXELS, pass_sizes, round8, scale_schedule

__all__ = ["Styler", "StyleBank", "StylizePlan", "ColorMode", "Schedule", "SCHEDULES", "scale_schedule", "MIN_SCALE",
           "TILE_MIN_PIXELS", "DEFAULT_TILE", "TILE_MARGIN", "TILE_SIZES", "tile_spans", "tile_window"]

ColorMode = Literal["match", "luminance"]
#: How a finer pass uses the coarser pass's result (see ``Styler.stylize``).
Schedule = Literal["guided", "restylize"]
SCHEDULES: tuple[str, ...] = ("guided", "restylize")
#: Progress units of one refinement step, per output pixel: a step runs VGG-19 forward and backward
#: in float32, about three feed-forward passes' work (docs/quality.md, "Quality mode").
REFINE_STEP_COST = 3
#: Core side of a tile (px) when tiling is automatic and memory allows; the pre-flight picks a smaller
#: one of :data:`TILE_SIZES` when it does not.
DEFAULT_TILE = 1024
TILE_SIZES: tuple[int, ...] = (1024, 768, 512, 384, 256)
#: Context a tile reads beyond its core on each side (px, a multiple of 8). The encoder to relu4_1 and
#: the decoder see about 70 px each way; a tile's outer half-margin is context only, its inner
#: half-margin is blended with the neighbour's by a raised cosine (:func:`tile_window`).
TILE_MARGIN = 96


#: Encoder features by tap name: relu4_1 ``(B, 512, h, w)`` and a skip decoder's finer taps.
Feats = dict[str, torch.Tensor]
#: Channel ``(mean, std)`` of a feature map, each ``(1, C, 1, 1)`` (:func:`adain.functional.calc_mean_std`).
Stats = tuple[torch.Tensor, torch.Tensor]
#: ``(tap, pass_size, content_stats) -> stats to normalise with`` (:meth:`Styler.stylize_planned`).
StatsFilter = Callable[[str, int, Stats], Stats]


@dataclasses.dataclass
class StyleBank:
    """Encoded styles, reusable across contents: per style and pass size, the channel ``(mean, std)``
    of each tap the decoder takes (all AdaIN needs; feature maps of fine taps at large sizes would
    cost gigabytes)."""

    images: list[torch.Tensor]
    stats: dict[tuple[int, int], dict[str, Stats]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class StylizePlan:
    """The checked texture options of a run, with defaults resolved (made by :meth:`Styler.plan`).

    Attributes:
        alpha: content-style trade-off in [0, 1].
        weights: ``(K,)`` non-negative style weights summing to 1.
        preserve_color: None, ``"match"`` or ``"luminance"``.
        scales: explicit pass sizes, or None for :func:`scale_schedule`'s default.
        bf16: whether the passes run in bf16.
        schedule: how finer passes use the coarser result (see :meth:`Styler.stylize`).
        refine_steps: Adam steps of the quality mode (0: off).
        tile: core side (px) of the tiles that large passes run in: None (automatic:
            :data:`DEFAULT_TILE` for passes over :data:`TILE_MIN_PIXELS`, or what the pre-flight
            picks), 0 (never tile), or a multiple of 8 (tile every pass larger than one tile).
    """

    alpha: float
    weights: torch.Tensor
    preserve_color: ColorMode | None
    scales: tuple[int, ...] | None
    bf16: bool
    schedule: Schedule = "guided"
    refine_steps: int = 0
    tile: int | None = None


# One schedule for both engines (adain/engines/schedule.py); the old private names stay.
_MIN_SIDE = MIN_SIDE
_round8 = round8


def tile_spans(n: int, tile: int, margin: int = TILE_MARGIN) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis of ``n`` px (a multiple of 8): ``(start, stop, core_start, core_stop)`` each.

    Cores are about ``tile`` px, split evenly, their edges multiples of 8 (so each tile's VGG pooling
    grid is the whole image's); each tile reads ``margin`` px beyond its core, clipped to the image.

    Example:
        >>> tile_spans(64, 32, 8)
        [(0, 40, 0, 32), (24, 64, 32, 64)]
    """
    k = max(1, -(-n // tile))
    edges = [min(n, int(round(j * n / k / 8)) * 8) for j in range(k + 1)]
    edges[-1] = n
    return [(max(0, a - margin), min(n, b + margin), a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def tile_window(span: tuple[int, int, int, int], n: int, margin: int = TILE_MARGIN) -> torch.Tensor:
    """1-D blending weights ``(stop - start,)`` of one tile of :func:`tile_spans`.

    Across each inner core edge the weight falls from 1 to 0 by a raised cosine over ``margin`` px
    centred on the edge, and the neighbour's rises by the same amount, so the weights of all tiles
    sum to 1 at every pixel (a partition of unity); the outer half of the margin is context only.
    At the image's borders the weight stays 1.
    """
    start, stop, core0, core1 = span
    p = torch.arange(start, stop, dtype=torch.float64) + 0.5
    w = torch.ones(stop - start, dtype=torch.float64)
    half = margin / 2
    if core0 > 0:  # rising edge, centred on core0
        t = ((p - (core0 - half)) / margin).clamp(0, 1)
        w = w * 0.5 * (1 - torch.cos(torch.pi * t))
    if core1 < n:  # falling edge, centred on core1
        t = ((p - (core1 - half)) / margin).clamp(0, 1)
        w = w * 0.5 * (1 + torch.cos(torch.pi * t))
    return w.float()


def _merge_stats(acc: dict[str, list[torch.Tensor | float]], feats: Feats, box: tuple[int, int, int, int]) -> None:
    """Add the channel moments of ``feats`` over the image region ``box = (y0, y1, x0, x1)`` (in image
    px, multiples of 8; each tap at its own stride) to ``acc`` (Chan et al.'s pairwise update, float64)."""
    y0, y1, x0, x1 = box
    for t, f in feats.items():
        stride = _TAP_STRIDE[t]
        part = f[..., y0 // stride : y1 // stride, x0 // stride : x1 // stride]
        var, mean = torch.var_mean(part, dim=(2, 3), keepdim=True, correction=0)
        n_b = float(part.shape[-2] * part.shape[-1])
        if t not in acc:
            acc[t] = [0.0, torch.zeros_like(mean, dtype=torch.float64), torch.zeros_like(mean, dtype=torch.float64)]
        n_a, mean_a, m2_a = acc[t]
        n = n_a + n_b
        delta = mean.double() - mean_a
        acc[t] = [n, mean_a + delta * (n_b / n), m2_a + var.double() * n_b + delta**2 * (n_a * n_b / n)]


def _final_stats(acc: dict[str, list[torch.Tensor | float]], eps: float = 1e-5) -> dict[str, Stats]:
    """``(mean, std)`` per tap from :func:`_merge_stats`, as :func:`calc_mean_std` gives them (float32)."""
    return {t: (mean.float(), (m2 / n + eps).sqrt().float()) for t, (n, mean, m2) in acc.items()}


#: Stride of each encoder tap over the image (px).
_TAP_STRIDE = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8}


def _to_channels_last(module: nn.Module) -> None:
    """``module.to(memory_format=torch.channels_last)`` for CPU float32 weights, transposed in numpy.

    numpy runs on the calling thread; torch's 68 copies each wait for its thread pool, which on a
    busy 2-core machine took 0.15 to 0.2 s of every start (issue 31). Other weights go through torch.
    """
    for p in module.parameters():
        if p.dim() == 4 and p.device.type == "cpu" and p.dtype == torch.float32 \
                and not p.is_contiguous(memory_format=torch.channels_last):
            nhwc = np.ascontiguousarray(p.detach().numpy().transpose(0, 2, 3, 1))  # (O, kh, kw, I)
            p.data = torch.from_numpy(nhwc).permute(0, 3, 1, 2)  # (O, I, kh, kw), channels_last strides
    module.to(memory_format=torch.channels_last)  # what is left (a no-op for the weights above)


class Styler(nn.Module):
    """AdaIN styler (Huang & Belongie 2017) applied coarse-to-fine over several scales.

    Args:
        encoder: VGG-19 encoder (relu4_1 is used).
        decoder: a trained AdaIN decoder.

    Example:
        >>> styler = Styler(VGGEncoder(), Decoder())  # untrained weights, for shapes only
        >>> styler.stylize(torch.rand(1, 3, 40, 56), [torch.rand(1, 3, 32, 32)], size=56).shape
        torch.Size([1, 3, 40, 56])
    """

    def __init__(self, encoder: VGGEncoder, decoder: Decoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    @classmethod
    def from_pretrained(
        cls,
        decoder: str | Path | None = None,
        *,
        vgg: str | Path | None = None,
        encoder: VGGEncoder | None = None,
        device: torch.device | str | None = None,
    ) -> Styler:
        """The bundled decoder and Oxford VGG-19 (defaults), or files by path (e.g. the AdaIN port's
        ``decoder.pth`` with ``vgg=vgg_normalised.pth``)."""
        device = check_device(device)
        enc = encoder if encoder is not None else VGGEncoder.from_pretrained(vgg)
        dec = Decoder.from_pretrained(decoder)
        styler = cls(enc, dec).eval().requires_grad_(False)
        # channels_last weights: measured 1.4x faster VGG passes on CPU in bf16 (0.57 -> 0.41 s at 512 px).
        _to_channels_last(styler)
        return styler.to(device) if device is not None else styler

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    def forward(self, content: torch.Tensor, style: torch.Tensor,
                alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        """One AdaIN pass, encoder -> AdaIN -> decoder, as one graph for tracing, export and ``torch.compile``.

        No checks, no resizing, no scale schedule and no Python-side state: the single-pass core of
        :meth:`stylize`, which is what to call on user input.

        Args:
            content: ``(B, 3, H, W)`` RGB in [0, 1], H and W multiples of 8 (at least 16).
            style: ``(B, 3, Hs, Ws)`` or ``(1, 3, Hs, Ws)`` RGB in [0, 1], any size of at least 16 px.
            alpha: content-style trade-off in [0, 1], a number or a tensor broadcastable to ``(B, 1, 1, 1)``.

        Returns:
            ``(B, 3, H, W)`` in [0, 1].

        Example:
            >>> Styler(VGGEncoder(), Decoder())(torch.rand(2, 3, 32, 48), torch.rand(2, 3, 40, 40)).shape
            torch.Size([2, 3, 32, 48])
        """
        pad = self.decoder.encoder_padding
        f_content = self.encoder(content, taps=self.taps, padding=pad)
        f_style = self.encoder(style, taps=self.taps, padding=pad)
        target = {t: adaptive_instance_norm(f_content[t], f_style[t]) for t in self.taps}
        if isinstance(alpha, torch.Tensor) or alpha != 1:
            target = {t: alpha * target[t] + (1 - alpha) * f_content[t] for t in self.taps}
            keep = self.decoder.keep_weight(alpha)
            return self.decoder(target["relu4_1"], target, content=f_content, keep=keep).clamp(0, 1)
        return self.decoder(target["relu4_1"], target).clamp(0, 1)

    @property
    def taps(self) -> tuple[str, ...]:
        """The encoder taps the decoder takes: relu4_1, then its skip taps (if any)."""
        return ("relu4_1", *self.decoder.skips)

    def _encode(self, x: torch.Tensor, bf16: bool) -> Feats:
        """The decoder's taps of ``x`` (:attr:`taps`), in float32."""
        x = x.contiguous(memory_format=torch.channels_last)
        with bf16_autocast(self.device, bf16):
            feats = self.encoder(x, taps=self.taps, padding=self.decoder.encoder_padding)
        return {t: f.float() for t, f in feats.items()}

    def _decoder_for(self, bf16: bool) -> nn.Module:
        """The decoder to run: on CPU with bf16, a bf16-weight copy made for this call.

        Measured on CPU at 512 px: about 1.7x faster than autocast over fp32 weights, whose
        per-layer casts and layout copies around the reflection padding cost a third of the pass.
        A fresh copy per ``stylize`` call (about 10 ms) never goes stale if the weights change.
        """
        if not (bf16 and self.device.type == "cpu"):
            return self.decoder
        dec = copy.deepcopy(self.decoder).to(dtype=torch.bfloat16)
        return dec.to(memory_format=torch.channels_last)

    def _decode(self, t: Feats, bf16: bool, decoder: nn.Module | None = None,
                kept: tuple[Feats, float] | None = None) -> torch.Tensor:
        """Decode targets ``t``; ``kept``: the content's own features at the decoder's keep taps (a dict
        this call converts in place) and their weight (:meth:`Decoder.keep_weight` of alpha), or None."""
        decoder = self.decoder if decoder is None else decoder
        # A bf16-weight decoder needs no autocast, and CPU autocast would run its reflection
        # padding and upsampling in float32 (a cast and a copy around each; 60 ms a 512 px run).
        weights_bf16 = next(decoder.parameters()).dtype == torch.bfloat16
        dtype = torch.bfloat16 if bf16 or weights_bf16 else torch.float32
        cast = lambda f: {k: v.to(dtype).contiguous(memory_format=torch.channels_last) for k, v in f.items()}  # noqa: E731
        with bf16_autocast(self.device, bf16 and not weights_bf16):
            t = cast(t)
            if kept is None:
                out = decoder(t["relu4_1"], t)
            else:
                feats = kept[0]
                feats.update(cast(feats))  # in place: the caller's float32 copies go before the decode
                out = decoder(t["relu4_1"], t, content=feats, keep=kept[1])
        return out.float().clamp(0, 1).contiguous()

    def encode_styles(self, styles: Sequence[ImageLike], *, name: str = "styles",
                      working_size: int | None = None) -> StyleBank:
        """Load the style images once; features are computed lazily per pass size.

        ``name`` is the argument named in error messages (``"styles[0] must ..."``); ``working_size``:
        files decoded smaller when twice as large or more (:func:`adain.base.image.load_image`).
        """
        if isinstance(styles, (str, Path, Image.Image, np.ndarray)):
            styles = [styles]  # one image, not a sequence of them (a str would iterate characters)
        images = []
        for i, s in enumerate(styles):
            img = as_image_batch(s, f"{name}[{i}]", working_size=working_size)
            images.append(img[:1].to(self.device))
        return StyleBank(images)

    def _style_stats(self, bank: StyleBank, index: int, size: int, content: torch.Tensor | None,
                     bf16: bool, plan: StylizePlan | None = None) -> dict[str, Stats]:
        s_hw = fit_longer(tuple(bank.images[index].shape[-2:]), size)
        tile = 0 if plan is None else self._tile_for(plan, (_round8(s_hw[0]), _round8(s_hw[1])))
        key: tuple[int, ...] = (index, size) if not tile else (index, size, tile)
        if content is None and key in bank.stats:
            return bank.stats[key]  # type: ignore[index]
        s = resize_longer(bank.images[index], size)
        if min(s.shape[-2:]) < _MIN_SIDE:  # very thin styles (e.g. 10000x10) would pool to nothing
            s = resize_exact(s, (max(_MIN_SIDE, s.shape[-2]), max(_MIN_SIDE, s.shape[-1])))
        if content is not None:
            # Colour preservation gives the style this content's colours: never cached, since the
            # bank outlives one content (batches, the demo's cache).
            s = match_color(s, content)
        if tile:
            # A large style is encoded in tiles too, its statistics accumulated over their cores; a
            # style's sides need not be multiples of 8, so it is first cropped to them (at most 7 px).
            s = s[..., : s.shape[-2] // 8 * 8, : s.shape[-1] // 8 * 8]
            stats = self._tiled_stats(lambda y0, y1, x0, x1: self._encode(s[..., y0:y1, x0:x1], bf16),
                                      tuple(s.shape[-2:]), tile)
        else:
            stats = {t: calc_mean_std(f) for t, f in self._encode(s, bf16).items()}
        if content is None:
            bank.stats[key] = stats  # type: ignore[index]
        return stats

    @staticmethod
    def _tiled_stats(feats: Callable[[int, int, int, int], Feats], hw: tuple[int, int], tile: int) -> dict[str, Stats]:
        """Channel ``(mean, std)`` per tap of features over an ``hw`` image (multiples of 8), from
        ``feats(y0, y1, x0, x1)`` of each tile of :func:`tile_spans`, counting each tile's core only."""
        acc: dict[str, list[torch.Tensor | float]] = {}
        for ya in tile_spans(hw[0], tile):
            for xa in tile_spans(hw[1], tile):
                f = feats(ya[0], ya[1], xa[0], xa[1])
                _merge_stats(acc, f, (ya[2] - ya[0], ya[3] - ya[0], xa[2] - xa[0], xa[3] - xa[0]))
                del f
        return _final_stats(acc)

    def _tiled_pass(self, x_s: torch.Tensor, prev: torch.Tensor | None, bank: StyleBank, plan: StylizePlan,
                    size: int, tile: int, decoder: nn.Module) -> torch.Tensor:
        """One pass of :meth:`stylize_planned` at ``x_s``'s size, in tiles of core side ``tile``.

        The same maths as the whole-image pass, tile by tile: the features to stylize are normalised by
        the channel statistics of the whole pass (a first sweep runs the encoder over every tile and
        accumulates them over the cores), the styles' statistics are the same for every tile, each
        tile is encoded and decoded with :data:`TILE_MARGIN` px of context beyond its core (VGG's zero
        padding and the decoder's reflection padding at a tile's edge stay in that margin), and the
        tiles are blended by :func:`tile_window`. Peak memory: one tile's features plus a few
        full-size RGB images (the input, the upsampled coarser result, the output).
        """
        bf16, alpha = plan.bf16, plan.alpha
        h, w = x_s.shape[-2:]
        x_in, guide = x_s, None
        if prev is not None:
            up = resize_exact(prev, (h, w))
            if plan.schedule == "restylize":
                detail = x_s - resize_exact(resize_exact(x_s, tuple(prev.shape[-2:])), (h, w))
                x_in = (up + detail).clamp(0, 1)
                del up, detail
            else:
                guide = up

        def feats(y0: int, y1: int, x0: int, x1: int, content: bool = True) -> tuple[Feats, Feats | None]:
            """The tile's features to stylize and the content's own (as the whole-image pass makes them;
            ``content=False``: only where the first are made from them)."""
            if x_in is not x_s:  # restylize, after the first pass
                f_in = self._encode(x_in[..., y0:y1, x0:x1], bf16)
                return f_in, self._encode(x_s[..., y0:y1, x0:x1], bf16) if alpha < 1 and content else None
            f_content = self._encode(x_s[..., y0:y1, x0:x1], bf16)
            if guide is None:
                return f_content, f_content
            f_in = self._encode(guide[..., y0:y1, x0:x1], bf16)
            for k, v in f_in.items():
                v.lerp_(f_content[k], 0.5)
            return f_in, f_content

        own = self._tiled_stats(lambda *box: feats(*box, content=False)[0], (h, w), tile)
        color_ref = x_s if plan.preserve_color == "match" else None
        styles = [self._style_stats(bank, i, size, color_ref, bf16, plan) for i in range(len(bank.images))]
        fold = alpha if prev is None else 1.0  # as in stylize_planned: f_in is the content's own features
        out = x_s.new_zeros(1, 3, h, w)
        ys, xs = tile_spans(h, tile), tile_spans(w, tile)
        for ya in ys:
            wy = tile_window(ya, h).to(out.device)
            for xa in xs:
                weight = wy[:, None] * tile_window(xa, w).to(out.device)[None, :]  # (th, tw)
                f_in, f_content = feats(ya[0], ya[1], xa[0], xa[1])
                kept = None
                if alpha < 1 and self.decoder.keep:
                    assert f_content is not None
                    kept = ({t: f_content[t] for t in self.decoder.keep}, float(self.decoder.keep_weight(alpha)))
                target = {t: self._mix_tap(f_in[t], [st[t] for st in styles], plan.weights, None, fold, own[t])
                          for t in f_in}
                del f_in
                if alpha < 1 and fold >= 1:
                    assert f_content is not None
                    for k, v in target.items():
                        v.lerp_(f_content[k], 1.0 - alpha)
                f_content = None
                tile_out = self._decode(target, bf16, decoder, kept)
                del target, kept
                out[..., ya[0]:ya[1], xa[0]:xa[1]].addcmul_(tile_out, weight)
        return out

    def plan(
        self,
        count: int,
        *,
        alpha: float = 1.0,
        weights: Sequence[float] | None = None,
        preserve_color: ColorMode | None = None,
        scales: Sequence[int] | None = None,
        bf16: bool | None = None,
        schedule: Schedule = "guided",
        refine_steps: int = 0,
        tile: int | None = None,
        name: str = "styles",
        item: str = "style",
        weights_name: str = "weights",
    ) -> StylizePlan:
        """Check the texture options once and resolve their defaults (the styler's own policy).

        :meth:`stylize` calls this; a caller that stylizes already-checked images (the pipeline)
        calls it at its public boundary and then :meth:`preflight` and :meth:`stylize_planned`.

        Args:
            count: number of style images the run will mix.
            alpha, weights, preserve_color, scales, bf16, schedule, refine_steps: as in :meth:`stylize`.
            tile: see :attr:`StylizePlan.tile`.
            name, item, weights_name: the argument names used in error messages (the pipeline
                calls its styles ``texture`` and their weights ``texture_weights``).
        """
        check_range(alpha, "alpha", 0.0, 1.0)
        if count == 0:
            raise ValueError(f"{name} must hold at least one {item} image")
        checked = check_weights(weights, weights_name, count, item)  # finite, >= 0, not all zero
        w = torch.ones(count) if checked is None else torch.tensor(checked)
        if preserve_color not in (None, "match", "luminance"):
            raise ValueError(f"preserve_color must be None, 'match' or 'luminance'; got {preserve_color!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
        if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or not 0 <= refine_steps <= 10_000:
            raise ValueError(f"refine_steps must be an integer in [0, 10000]; got {refine_steps!r}")
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0 or tile % 8
                                 or 0 < tile < _MIN_SIDE):
            raise ValueError(f"tile must be None (automatic), 0 (never tile) or a multiple of 8 of at least "
                             f"{_MIN_SIDE} px; got {tile!r}")
        return StylizePlan(alpha=float(alpha), weights=w / w.sum(), preserve_color=preserve_color,
                           scales=None if scales is None else tuple(scales),
                           bf16=default_bf16(self.device) if bf16 is None else bool(bf16),
                           schedule=schedule, refine_steps=refine_steps, tile=tile)

    @staticmethod
    def output_size(content_hw: tuple[int, int], size: int | None = None) -> tuple[int, int]:
        """``(H, W)`` of :meth:`stylize`'s output: the content's aspect ratio at longer side ``size``
        (default: the content's own size)."""
        return fit_longer(content_hw, max(content_hw) if size is None else int(size))

    def preflight(self, out_hw: tuple[int, int], plan: StylizePlan, styles: Sequence[tuple[int, int]] = (), *,
                  tileable: bool = True, available: int | None = None) -> StylizePlan:
        """The memory pre-flight of a run to ``out_hw``: on CPU, plan tiles that fit, or raise before the
        first pass rather than be OOM-killed in the last (:func:`adain.base.memory.check_memory`).

        Args:
            out_hw: the output's ``(H, W)``.
            plan: from :meth:`plan`.
            styles: the ``(H, W)`` of each style image (each is encoded at the output's longer side).
            tileable: False when the run cannot be tiled (masks): the whole-image estimate must fit.
            available: bytes available (default: ``MemAvailable``), for tests.

        Returns:
            ``plan``, with :attr:`StylizePlan.tile` set where the pre-flight picked a tile size: the
            largest of :data:`TILE_SIZES` whose estimate fits, for outputs over :data:`TILE_MIN_PIXELS`
            or whose whole-image passes do not fit.

        Raises:
            StyleTransferError: not even the smallest tile fits (or, untileable, the whole image).
        """
        if self.device.type != "cpu":
            return plan
        hw = (_round8(out_hw[0]), _round8(out_hw[1]))
        common = dict(alpha=plan.alpha, bf16=plan.bf16, skips=self.decoder.skips, available=available)
        if plan.refine_steps > 0 or not tileable:  # the refinement back-propagates through the whole image
            check_memory(hw, styles=styles, refine=plan.refine_steps > 0, **common)
            if not tileable:
                return plan
        if plan.tile:
            check_memory(hw, styles=styles, tile=plan.tile, margin=TILE_MARGIN, **common)
            return plan
        if plan.tile == 0 or hw[0] * hw[1] <= TILE_MIN_PIXELS:
            try:
                check_memory(hw, styles=styles, **common)
                return plan
            except StyleTransferError:
                if plan.tile == 0:
                    raise
        sizes = [t for t in TILE_SIZES if t < max(hw)]  # a tile as large as the output saves nothing
        if not sizes:
            check_memory(hw, styles=styles, **common)  # raises: it did not fit whole
        for i, t in enumerate(sizes):
            try:
                check_memory(hw, styles=styles, tile=t, margin=TILE_MARGIN, **common)
            except StyleTransferError:
                if i == len(sizes) - 1:
                    raise
                continue
            return dataclasses.replace(plan, tile=t)
        raise AssertionError("unreachable")

    def _tile_for(self, plan: StylizePlan, hw: tuple[int, int], masks: torch.Tensor | None = None) -> int:
        """The core side of the tiles a pass of ``hw`` runs in, or 0 for one whole-image pass."""
        if masks is not None or plan.tile == 0:
            return 0
        if plan.tile is None:
            return DEFAULT_TILE if hw[0] * hw[1] > TILE_MIN_PIXELS else 0
        return plan.tile if max(hw) > plan.tile else 0

    @torch.no_grad()
    def stylize(
        self,
        content: ImageLike,
        styles: Sequence[ImageLike] | StyleBank,
        *,
        alpha: float = 1.0,
        weights: Sequence[float] | None = None,
        masks: Sequence[torch.Tensor] | None = None,
        preserve_color: ColorMode | None = None,
        scales: Sequence[int] | None = None,
        size: int | None = None,
        bf16: bool | None = None,
        schedule: Schedule = "guided",
        refine_steps: int = 0,
        tile: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Paint ``content`` with the texture of ``styles``.

        Args:
            content: ``(1, 3, H, W)`` in [0, 1], or a path / PIL image / array.
            styles: one or more style images (any size), or a :class:`StyleBank`.
            alpha: content-style trade-off in [0, 1]; 0 gives the decoder's reconstruction of the content.
            weights: one non-negative weight per style (style interpolation); default equal.
            masks: one ``(1, 1, H, W)`` (or ``(H, W)``) mask in [0, 1] per style, at the content's
                size: each style paints its region (spatial control); where all masks are 0 the
                content's own features are kept.
            preserve_color: ``"match"`` (recolour each style to the content's colour mean and
                covariance first) or ``"luminance"`` (transfer luminance only), or None.
            scales: longer sides of the coarse-to-fine passes; default :func:`scale_schedule`.
            size: longer side of the output (default: the content's).
            bf16: bf16 autocast for the encoder/decoder; default :func:`adain.base.runtime.default_bf16`
                (on for a CPU with native bf16, about 2x faster there; off on CUDA and other CPUs).
            schedule: how each finer pass uses the coarser result:

                * ``"guided"`` (default): the finer pass applies AdaIN to the average of the content's features
                  and those of the upsampled coarser result (strokes carried in feature space; one
                  more encode);
                * ``"restylize"``: the schedule before December 2026: the finer pass re-stylizes
                  the upsampled coarser result plus the content's detail (boldest, loses content).

                docs/quality.md has the measured trade-off of each.
            refine_steps: quality mode: after the feed-forward result, this many Adam steps on the
                output's pixels at the output resolution, lowering the content loss against the
                original content and the style loss against the styles (:meth:`refine`). 0 (default): off.
            tile: core side (px) of the tiles that large passes run in (:attr:`StylizePlan.tile`):
                None (default) tiles passes over :data:`TILE_MIN_PIXELS` (1024x1024), with the
                tile size the memory pre-flight picks; 0 never tiles. Each tile is encoded and decoded
                with :data:`TILE_MARGIN` px of context, the AdaIN statistics are those of the whole
                pass (accumulated over the tiles in a first, encoder-only sweep), and neighbouring
                tiles are blended by a raised cosine, so memory grows with the tile, not the image.
            progress: called as ``progress(done, total)`` before the first pass, after each pass and
                after each refinement step, in units of pixels processed (a pass costs about its pixel
                count, a refinement step about ``REFINE_STEP_COST`` times the output's), so a bar shows
                an ETA.

        Returns:
            ``(1, 3, H_out, W_out)`` in [0, 1] with the content's aspect ratio (:meth:`output_size`).

        Raises:
            StyleTransferError: on CPU, when the estimated peak memory of the finest pass
                (:func:`adain.base.memory.estimate_stylize_bytes`, tiled: ``estimate_tiled_bytes``)
                exceeds ``MemAvailable`` even with the smallest tile; the message suggests a smaller size.
        """
        x = as_image_batch(content, "content")
        if x.shape[0] != 1:
            raise ValueError(f"content must be a single image (1, 3, H, W); got batch of {x.shape[0]}")
        x = x.to(self.device)
        bank = styles if isinstance(styles, StyleBank) else self.encode_styles(styles)
        plan = self.plan(len(bank.images), alpha=alpha, weights=weights, preserve_color=preserve_color,
                         scales=scales, bf16=bf16, schedule=schedule, refine_steps=refine_steps, tile=tile)
        mask_t = self._check_masks(masks, len(bank.images), tuple(x.shape[-2:]))
        if mask_t is not None and plan.refine_steps > 0:
            raise ValueError("refine_steps cannot be combined with masks (the refinement has no spatial control)")
        h, wd = x.shape[-2:]
        if size is None and max(h, wd) < 8:
            raise ValueError(f"content is {wd}x{h} px, too small to stylize at its own size (at least 8 px on the "
                             "longer side); give size (the CLI's --size) to upscale it")
        out_hw = self.output_size(tuple(x.shape[-2:]), size)
        plan = self.preflight(out_hw, plan, styles=[tuple(im.shape[-2:]) for im in bank.images],
                              tileable=mask_t is None)
        return self.stylize_planned(x, bank, plan, size=size, masks=mask_t, progress=progress)

    def _check_masks(self, masks: Sequence[torch.Tensor] | None, k: int, hw: tuple[int, int]) -> torch.Tensor | None:
        """``(1, K, H, W)`` masks on the styler's device from one mask per style, or None."""
        if masks is None:
            return None
        if len(masks) != k:
            raise ValueError(f"masks must hold one mask per style ({k}); got {len(masks)}")
        ms = []
        for i, m in enumerate(masks):
            m = torch.as_tensor(m)
            if m.dim() < 2 or m.shape[:-2].numel() != 1:
                raise ValueError(f"masks[{i}] must be (1, 1, H, W) or (H, W) with the content's (H, W) = "
                                 f"{hw}; got shape {tuple(m.shape)}")
            m = m.float().view(1, 1, *m.shape[-2:])
            if tuple(m.shape[-2:]) != hw:
                raise ValueError(f"masks[{i}] must be the content's size {hw}; got {tuple(m.shape[-2:])}")
            lo, hi = float(m.min()), float(m.max())
            if not (0 <= lo and hi <= 1):  # also refuses NaN
                raise ValueError(f"masks[{i}] must have values in [0, 1]; got range [{lo:.3g}, {hi:.3g}]")
            ms.append(m)
        return torch.cat(ms, dim=1).to(self.device)

    @torch.no_grad()
    def stylize_planned(self, x: torch.Tensor, bank: StyleBank, plan: StylizePlan, *, size: int | None = None,
                        masks: torch.Tensor | None = None,
                        progress: Callable[[int, int], None] | None = None,
                        content_stats: StatsFilter | None = None) -> torch.Tensor:
        """:meth:`stylize` without its checks and memory pre-flight, for callers that did both once.

        Args:
            x: a checked ``(1, 3, H, W)`` float tensor in [0, 1] on the styler's device.
            bank: the styles (``len(bank.images)`` as given to :meth:`plan`).
            plan: from :meth:`plan`.
            size: longer side of the output (default: the content's), see :meth:`output_size`.
            masks: checked ``(1, K, H, W)`` masks on the styler's device, or None.
            progress: as in :meth:`stylize`.
            content_stats: called as ``content_stats(tap, pass_size, (mean, std))`` with the content's
                channel statistics at each tap of each pass; AdaIN normalises with the ``(mean, std)``
                it returns (e.g. statistics smoothed over the frames of a clip, :mod:`warpstyle.video`).
                Without masks only; None (default): the content's own.
        """
        decoder = self._decoder_for(plan.bf16)
        bf16, alpha, preserve_color, schedule = plan.bf16, plan.alpha, plan.preserve_color, plan.schedule
        out_hw = self.output_size(tuple(x.shape[-2:]), size)
        out_long = max(out_hw) if size is None else int(size)
        prev: torch.Tensor | None = None
        passes = pass_sizes(out_hw, size, plan.scales)
        step_cost = REFINE_STEP_COST * out_hw[0] * out_hw[1]
        total, done = sum(ph * pw for ph, pw, _ in passes) + plan.refine_steps * step_cost, 0
        if progress is not None:
            progress(0, total)
        for ph, pw, s in passes:
            hw = (ph, pw)
            x_s = resize_exact(x, hw)
            tile = self._tile_for(plan, hw, masks)
            if tile:
                prev = self._tiled_pass(x_s, prev, bank, plan, s, tile, decoder)
                done += ph * pw
                if progress is not None:
                    progress(done, total)
                continue
            if prev is not None and schedule == "restylize":
                # Coarse result for coherent large strokes, plus the content detail it could not hold.
                detail = x_s - resize_exact(resize_exact(x_s, tuple(prev.shape[-2:])), hw)
                x_in = (resize_exact(prev, hw) + detail).clamp(0, 1)
                f_in = self._encode(x_in, bf16)
                f_content = self._encode(x_s, bf16) if alpha < 1 else None
            else:
                f_in = f_content = self._encode(x_s, bf16)
                if prev is not None and schedule == "guided":
                    # Half the content's own features, half the coarse result's, then AdaIN: the strokes
                    # guide the pass, the content's features still reach it, the statistics are the style's.
                    # Blended into the coarse result's maps, so a skip decoder's full-resolution taps exist
                    # twice here, not three times (at 2048 px: 7.1 -> 5.4 GB in float32).
                    f_in = self._encode(resize_exact(prev, hw), bf16)
                    for k, v in f_in.items():
                        v.lerp_(f_content[k], 0.5)
            # A decoder's keep path takes the content's own features at alpha < 1 (Decoder's keep taps).
            kept = None
            if alpha < 1 and self.decoder.keep:
                assert f_content is not None
                kept = ({t: f_content[t] for t in self.decoder.keep}, float(self.decoder.keep_weight(alpha)))
            # Blending the content's own features in is part of the per-channel affine map when they are
            # the features being stylized and there are no masks (see _mix_tap).
            fold = alpha if (f_in is f_content and masks is None) else 1.0
            if alpha >= 1 or fold < 1:
                f_content = None  # not needed for a blend: free it before the AdaIN targets exist
            target = self._mix(f_in, bank, plan.weights, masks, s, x_s if preserve_color == "match" else None, bf16,
                               alpha=fold, content_stats=content_stats, plan=plan)
            del f_in
            if f_content is not None:
                for k, v in target.items():  # alpha * target + (1 - alpha) * content, in place
                    v.lerp_(f_content[k], 1.0 - alpha)
                f_content = None
            out_s = self._decode(target, bf16, decoder, kept)
            kept = None
            prev = out_s
            done += ph * pw
            if progress is not None:
                progress(done, total)
        assert prev is not None
        out = resize_exact(prev, out_hw)
        if plan.refine_steps > 0:
            on_step = None if progress is None else (lambda k: progress(done + k * step_cost, total))
            out = self.refine(out, resize_exact(x, out_hw), bank, plan.weights, steps=plan.refine_steps, size=out_long,
                              alpha=alpha, color_ref=resize_exact(x, out_hw) if preserve_color == "match" else None,
                              on_step=on_step)
        if preserve_color == "luminance":
            out = luminance_transfer(out, resize_exact(x, out_hw))
        return out.clamp(0, 1)

    @torch.enable_grad()
    def refine(self, image: torch.Tensor, content: torch.Tensor, bank: StyleBank, weights: torch.Tensor, *,
               steps: int, size: int, alpha: float = 1.0, color_ref: torch.Tensor | None = None,
               lr: float = 0.01, on_step: Callable[[int], None] | None = None) -> torch.Tensor:
        """Optimise ``image`` ``(1, 3, H, W)`` for ``steps`` Adam steps on the AdaIN objective, in float32.

        The loss is ``content / content_0 + alpha * style / style_0``: the relu4_1 distance to
        ``content`` (same size) and the weighted style loss (:func:`adain.losses.style_loss`) against
        each style of ``bank`` at longer side ``size`` (recoloured to ``color_ref`` first when given,
        as ``preserve_color="match"`` does), each divided by its value at the start so that neither
        term's scale decides the trade-off. Starting from the feed-forward result, a few steps
        recover content the decoder lost without giving up the style (docs/quality.md).
        ``on_step(k)`` is called after step ``k`` (1-based), e.g. for progress.
        """
        if steps < 0:
            raise ValueError(f"refine_steps must be >= 0; got {steps}")
        enc = self.encoder
        with torch.no_grad():
            fc = enc(content, taps=("relu4_1",))["relu4_1"].float()
            targets = []
            for i in range(len(bank.images)):
                s = resize_longer(bank.images[i], size)
                if min(s.shape[-2:]) < _MIN_SIDE:
                    s = resize_exact(s, (max(_MIN_SIDE, s.shape[-2]), max(_MIN_SIDE, s.shape[-1])))
                if color_ref is not None:
                    s = match_color(s, color_ref)
                fs = enc(s, taps=STYLE_TAPS)
                targets.append([fs[t].float() for t in STYLE_TAPS])
        x = image.detach().clone().float().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=lr)
        scale: tuple[float, float] | None = None
        for k in range(steps):
            fo = enc(x, taps=STYLE_TAPS)
            lc = ((fo["relu4_1"].float() - fc) ** 2).mean()
            outs = [fo[t].float() for t in STYLE_TAPS]
            ls = sum(float(weights[i]) * style_loss(outs, targets[i]) for i in range(len(targets)))
            if scale is None:
                scale = (max(float(lc.detach()), 1e-8), max(float(ls.detach()), 1e-8))
            loss = lc / scale[0] + float(alpha) * ls / scale[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            if on_step is not None:
                on_step(k + 1)
        return x.detach()

    def _mix(self, f: Feats, bank: StyleBank, w: torch.Tensor, masks: torch.Tensor | None, size: int,
             color_ref: torch.Tensor | None, bf16: bool, alpha: float = 1.0,
             content_stats: StatsFilter | None = None, plan: StylizePlan | None = None) -> Feats:
        """Weighted (and masked) sum of AdaIN targets of each tap of ``f`` (relu4_1 ``(1, 512, h, w)``
        and the decoder's skip taps) for each style; ``alpha < 1`` (only without masks) blends ``f``
        itself back in: ``alpha * target + (1 - alpha) * f``."""
        styles = [self._style_stats(bank, i, size, color_ref, bf16, plan) for i in range(len(bank.images))]
        return {t: self._mix_tap(f[t], [fs[t] for fs in styles], w, masks, alpha,
                                 content_stats=None if content_stats is None else (lambda st, t=t: content_stats(t, size, st)))
                for t in f}

    @staticmethod
    def _mix_tap(f: torch.Tensor, styles: list[Stats], w: torch.Tensor,
                 masks: torch.Tensor | None, alpha: float = 1.0, own: Stats | None = None,
                 content_stats: Callable[[Stats], Stats] | None = None) -> torch.Tensor:
        """``own``: the ``(mean, std)`` to normalise ``f`` by (a tiled pass's, of the whole image);
        default: ``f``'s own. ``content_stats``: a filter of those (a clip's smoothing over time)."""
        if masks is None:
            # AdaIN to each style, their weighted sum and the alpha blend with f are together one affine
            # map per channel, f * scale + shift: one pass over f instead of four (a 512 px relu1_1 map
            # takes about 45 ms a pass on the 2-core CPU).
            c_mean, c_std = calc_mean_std(f) if own is None else own
            if content_stats is not None:
                c_mean, c_std = content_stats((c_mean, c_std))
            mean = sum(float(w[i]) * m for i, (m, _) in enumerate(styles))
            scale = sum(float(w[i]) * sd for i, (_, sd) in enumerate(styles)) / c_std
            shift = mean - c_mean * scale
            scale, shift = alpha * scale + (1.0 - alpha), alpha * shift
            return torch.addcmul(shift, f.float(), scale)
        assert alpha >= 1.0, "the alpha blend is folded in only without masks"
        m = nn.functional.interpolate(masks, size=f.shape[-2:], mode="bilinear", align_corners=False)
        coeff = m * w.view(1, -1, 1, 1).to(m)
        total = coeff.sum(1, keepdim=True)
        out = f * (1 - m.amax(1, keepdim=True).clamp(0, 1))  # uncovered regions keep their features
        for i, fs in enumerate(styles):
            region = m[:, i : i + 1]
            if float(region.sum()) <= 0:
                continue
            share = coeff[:, i : i + 1] / total.clamp_min(1e-6) * m.amax(1, keepdim=True)
            out = out + share * adain_to_stats(f, *fs, content_mask=region)
        return out

