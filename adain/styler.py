"""Styler: the texture stage. Multi-scale, coarse-to-fine AdaIN with alpha, style mixing, masks, colour control."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from .base.checks import check_device, check_range, check_weights
from .decoder import Decoder
from .functional import adaptive_instance_norm, luminance_transfer, match_color
from .base.image import ImageLike, as_image_batch, resize_exact, resize_longer
from .base.memory import check_memory
from .base.runtime import default_bf16
from .base.vgg import VGGEncoder

__all__ = ["Styler", "StyleBank", "ColorMode", "scale_schedule", "MIN_SCALE"]

ColorMode = Literal["match", "luminance"]
#: The coarsest scale of the automatic schedule (px, longer side).
MIN_SCALE = 256


def scale_schedule(size: int, scales: Sequence[int] | None = None) -> list[int]:
    """Longer-side sizes of the coarse-to-fine passes, ending at ``size``.

    ``scales=None`` halves from ``size`` down to the first value >= 256, e.g. 1024 -> [256, 512, 1024],
    512 -> [256, 512], 300 -> [300]. Explicit scales are sorted, clipped to ``size`` and end at it.

    Example:
        >>> scale_schedule(1024)
        [256, 512, 1024]
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 px; got {size}")
    if scales is None:
        out = [size]
        while out[0] // 2 >= MIN_SCALE:
            out.insert(0, out[0] // 2)
        return out
    vals = sorted({int(s) for s in scales if 8 <= int(s) < size})
    return vals + [size]


@dataclasses.dataclass
class StyleBank:
    """Encoded styles: relu4_1 features per style and per pass size, reusable across contents."""

    images: list[torch.Tensor]
    features: dict[tuple[int, int], torch.Tensor] = dataclasses.field(default_factory=dict)


#: Smallest side of a pass (px): relu4_1 is 1/8 of it, and the decoder's reflection padding needs 2 px.
_MIN_SIDE = 16


def _round8(x: int) -> int:
    return max(_MIN_SIDE, int(round(x / 8)) * 8)


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
        styler.to(memory_format=torch.channels_last)
        return styler.to(device) if device is not None else styler

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    def _autocast(self, bf16: bool) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def _encode(self, x: torch.Tensor, bf16: bool) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast(bf16):
            return self.encoder(x, taps=("relu4_1",))["relu4_1"]

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

    def _decode(self, t: torch.Tensor, bf16: bool, decoder: nn.Module | None = None) -> torch.Tensor:
        decoder = self.decoder if decoder is None else decoder
        # A bf16-weight decoder needs no autocast, and CPU autocast would run its reflection
        # padding and upsampling in float32 (a cast and a copy around each; 60 ms a 512 px run).
        weights_bf16 = next(decoder.parameters()).dtype == torch.bfloat16
        dtype = torch.bfloat16 if bf16 or weights_bf16 else torch.float32
        with self._autocast(bf16 and not weights_bf16):
            out = decoder(t.to(dtype).contiguous(memory_format=torch.channels_last))
        return out.float().clamp(0, 1).contiguous()

    def encode_styles(self, styles: Sequence[ImageLike], *, name: str = "styles") -> StyleBank:
        """Load the style images once; features are computed lazily per pass size.

        ``name`` is the argument named in error messages (``"styles[0] must ..."``).
        """
        if isinstance(styles, (str, Path, Image.Image, np.ndarray)):
            styles = [styles]  # one image, not a sequence of them (a str would iterate characters)
        images = []
        for i, s in enumerate(styles):
            img = as_image_batch(s, f"{name}[{i}]")
            images.append(img[:1].to(self.device))
        return StyleBank(images)

    def _style_features(self, bank: StyleBank, index: int, size: int, content: torch.Tensor | None,
                        bf16: bool) -> torch.Tensor:
        key = (index, size) if content is None else (index, -size)
        if key not in bank.features:
            s = resize_longer(bank.images[index], size)
            if min(s.shape[-2:]) < _MIN_SIDE:  # very thin styles (e.g. 10000x10) would pool to nothing
                s = resize_exact(s, (max(_MIN_SIDE, s.shape[-2]), max(_MIN_SIDE, s.shape[-1])))
            if content is not None:  # colour preservation: give the style the content's colours
                s = match_color(s, content)
            bank.features[key] = self._encode(s, bf16).float()
        return bank.features[key]

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
            bf16: bf16 autocast for the encoder/decoder; default True on CPU (about 2.5x faster
                here; see benchmarks/bench_stylize.py for the measured difference), False on CUDA.

        Returns:
            ``(1, 3, H_out, W_out)`` in [0, 1] with the content's aspect ratio.

        Raises:
            StyleTransferError: on CPU, when the estimated peak memory of the finest pass
                (:func:`adain.base.memory.estimate_stylize_bytes`) exceeds ``MemAvailable``; the
                message suggests a smaller size.
        """
        check_range(alpha, "alpha", 0.0, 1.0)
        x = as_image_batch(content, "content")
        if x.shape[0] != 1:
            raise ValueError(f"content must be a single image (1, 3, H, W); got batch of {x.shape[0]}")
        x = x.to(self.device)
        bank = styles if isinstance(styles, StyleBank) else self.encode_styles(styles)
        k = len(bank.images)
        if k == 0:
            raise ValueError("styles must hold at least one style image")
        w = torch.ones(k) if weights is None else torch.tensor(check_weights(weights, "weights", k))
        w = w / w.sum()
        mask_t = None
        if masks is not None:
            if len(masks) != k:
                raise ValueError(f"masks must hold one mask per style ({k}); got {len(masks)}")
            ms = []
            for i, m in enumerate(masks):
                m = torch.as_tensor(m)
                if m.dim() < 2 or m.shape[:-2].numel() != 1:
                    raise ValueError(f"masks[{i}] must be (1, 1, H, W) or (H, W) with the content's (H, W) = "
                                     f"{tuple(x.shape[-2:])}; got shape {tuple(m.shape)}")
                m = m.float().view(1, 1, *m.shape[-2:])
                if tuple(m.shape[-2:]) != tuple(x.shape[-2:]):
                    raise ValueError(f"masks[{i}] must be the content's size {tuple(x.shape[-2:])}; got {tuple(m.shape[-2:])}")
                lo, hi = float(m.min()), float(m.max())
                if not (0 <= lo and hi <= 1):  # also refuses NaN
                    raise ValueError(f"masks[{i}] must have values in [0, 1]; got range [{lo:.3g}, {hi:.3g}]")
                ms.append(m)
            mask_t = torch.cat(ms, dim=1).to(self.device)  # (1, K, H, W)
        if preserve_color not in (None, "match", "luminance"):
            raise ValueError(f"preserve_color must be None, 'match' or 'luminance'; got {preserve_color!r}")
        bf16 = default_bf16(self.device) if bf16 is None else bf16
        decoder = self._decoder_for(bf16)

        h, wd = x.shape[-2:]
        if size is None and max(h, wd) < 8:
            raise ValueError(f"content is {wd}x{h} px, too small to stylize at its own size (at least 8 px on the "
                             "longer side); give size (the CLI's --size) to upscale it")
        out_long = int(size) if size is not None else max(h, wd)
        out_hw = (max(1, round(h * out_long / max(h, wd))), max(1, round(wd * out_long / max(h, wd))))
        if self.device.type == "cpu":
            # Stop before the first pass rather than be OOM-killed in the last (adain/memory.py).
            check_memory((_round8(out_hw[0]), _round8(out_hw[1])), alpha=alpha, bf16=bf16,
                         styles=[tuple(im.shape[-2:]) for im in bank.images])
        prev: torch.Tensor | None = None
        for s in scale_schedule(out_long, scales):
            hw = (_round8(out_hw[0] * s / out_long), _round8(out_hw[1] * s / out_long))
            x_s = resize_exact(x, hw)
            if prev is None:
                x_in = x_s
            else:
                # Coarse result for coherent large strokes, plus the content detail it could not hold.
                detail = x_s - resize_exact(resize_exact(x_s, tuple(prev.shape[-2:])), hw)
                x_in = (resize_exact(prev, hw) + detail).clamp(0, 1)
            f_in = self._encode(x_in, bf16).float()
            f_content = f_in if prev is None else (self._encode(x_s, bf16).float() if alpha < 1 else None)
            target = self._mix(f_in, bank, w, mask_t, s, x_s if preserve_color == "match" else None, bf16)
            if alpha < 1:
                assert f_content is not None
                target = alpha * target + (1 - alpha) * f_content
            prev = self._decode(target, bf16, decoder)
        assert prev is not None
        out = resize_exact(prev, out_hw)
        if preserve_color == "luminance":
            out = luminance_transfer(out, resize_exact(x, out_hw))
        return out.clamp(0, 1)

    def _mix(self, f: torch.Tensor, bank: StyleBank, w: torch.Tensor, masks: torch.Tensor | None, size: int,
             color_ref: torch.Tensor | None, bf16: bool) -> torch.Tensor:
        """Weighted (and masked) sum of AdaIN targets of ``f`` ``(1, 512, h, w)`` for each style."""
        if masks is None:
            out = torch.zeros_like(f)
            for i in range(len(bank.images)):
                fs = self._style_features(bank, i, size, color_ref, bf16)
                out = out + float(w[i]) * adaptive_instance_norm(f, fs)
            return out
        m = nn.functional.interpolate(masks, size=f.shape[-2:], mode="bilinear", align_corners=False)
        coeff = m * w.view(1, -1, 1, 1).to(m)
        total = coeff.sum(1, keepdim=True)
        out = f * (1 - m.amax(1, keepdim=True).clamp(0, 1))  # uncovered regions keep their features
        for i in range(len(bank.images)):
            fs = self._style_features(bank, i, size, color_ref, bf16)
            region = m[:, i : i + 1]
            if float(region.sum()) <= 0:
                continue
            share = coeff[:, i : i + 1] / total.clamp_min(1e-6) * m.amax(1, keepdim=True)
            out = out + share * adaptive_instance_norm(f, fs, content_mask=region)
        return out
