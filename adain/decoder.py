"""The AdaIN decoder: relu4_1 features back to an RGB image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .base.checks import check_device
from .base.encoder.conv_relu import capturing_graph, conv2d_relu
from .base.encoder.vgg import PADDINGS
from .base.storage.weights import bundled_weights, check_state, load_weights, meta_shapes

__all__ = ["Decoder", "UPSAMPLE_MODES", "BUNDLED_DECODER", "DECODER_INPUT", "DECODER_KEEP_INPUT", "KEEP_POWER", "SKIP_TAPS", "SKIP_SHAPES"]

BUNDLED_DECODER = "decoder.safetensors"
#: The decoder's input convention, stored in every weights file it writes.
DECODER_INPUT: dict[str, Any] = {
    "features": "relu4_1 of the paired VGGEncoder (bundled: Oxford VGG-19, tap scales applied), (B, 512, H, W), "
                "after AdaIN",
    "skips": "for a decoder with skips, the same AdaIN (or alpha blend) applied to each skip tap of the encoder "
             "(relu3_1: (B, 256, 2H, 2W), relu2_1: (B, 128, 4H, 4W), relu1_1: (B, 64, 8H, 8W))",
    "output": "RGB (B, 3, 8H, 8W), approximately in [0, 1], not clamped",
}
#: The keep path's weight at alpha is ``(1 - alpha) ** keep_power``; this is the default power, stored
#: in each file with keep taps (``keep_power`` in its config). With weight ``1 - alpha`` the trained
#: keep path outweighs the style up to alpha 0.8 (20 held-out pairs: style loss 3.3 at alpha 0.8,
#: against 0.99 without it); the cube keeps alpha 0.8 as stylized as before (8 pairs: 1.01 against
#: 0.99) and spreads the style over alpha 0..1 (docs/quality.md).
KEEP_POWER = 3.0
#: Added to :data:`DECODER_INPUT` in the files of decoders with keep taps (``{power}``: their keep_power).
DECODER_KEEP_INPUT = ("for a decoder with keep taps, also the content's own (un-stylized) features at those taps, "
                      "through the keep_<tap> convolutions, weighted by (1 - alpha) ** {power} (0 at alpha 1)")
#: Encoder taps a decoder may take as skip inputs: (channels, size over relu4_1's) of each.
SKIP_SHAPES: dict[str, tuple[int, int]] = {"relu3_1": (256, 2), "relu2_1": (128, 4), "relu1_1": (64, 8)}
SKIP_TAPS: tuple[str, ...] = tuple(SKIP_SHAPES)
#: The layer whose input each skip joins: the first convolution at the tap's resolution, whose
#: input has the tap's channel count.
_SKIP_AT: dict[str, int] = {"relu3_1": 4, "relu2_1": 17, "relu1_1": 24}
_N_LAYERS = 29
#: The last upsampling: from this layer on, every map is at the output's full resolution.
_TAIL = 23
#: Rows of context a band of the full-resolution tail needs on each side: one per 3x3 convolution.
_TAIL_CONTEXT = 2
#: Pixels in one band of the full-resolution tail at inference (rows = BAND_PIXELS // width, at least 8).
BAND_PIXELS = 1 << 19
#: How the decoder doubles its maps: ``"nearest"`` (the AdaIN port's, kept for files that do not say)
#: repeats each value 2x2, and the 3x3 convolution after it then sees a 2-px period it turns into a
#: fine lattice in flat regions (Odena et al. 2016: 37x the content's energy at periods 2 and 4 on 8
#: held-out pairs); ``"bilinear"`` interpolates, so no period is imprinted (docs/quality.md).
UPSAMPLE_MODES: tuple[str, ...] = ("nearest", "bilinear")
_LAYOUT = "adain-port"  # the only decoder architecture: the AdaIN port's flat nn.Sequential
_DESCRIBE = "an AdaIN decoder state_dict (expected keys '1.weight' ... '28.bias')"


def _check_skips(skips: object, name: str = "skips") -> tuple[str, ...]:
    if isinstance(skips, str) or not isinstance(skips, Sequence):
        raise ValueError(f"{name} must be a list of encoder taps from {list(SKIP_TAPS)}; got {skips!r}")
    bad = [t for t in skips if t not in SKIP_TAPS]
    if bad or len(set(skips)) != len(skips):
        raise ValueError(f"{name} must be distinct encoder taps from {list(SKIP_TAPS)}; got {list(skips)}")
    return tuple(t for t in SKIP_TAPS if t in skips)  # canonical order: coarse to fine


def _zero_conv(tap: str) -> nn.Conv2d:
    """A 1x1 convolution at ``tap``'s channel count, starting at zero (the decoder's output unchanged)."""
    conv = nn.Conv2d(SKIP_SHAPES[tap][0], SKIP_SHAPES[tap][0], 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _check_power(power: object) -> float:
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 < power <= 16:
        raise ValueError(f"keep_power must be a number in (0, 16]; got {power!r}")
    return float(power)


def _check_upsample(mode: object) -> str:
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}; got {mode!r}")
    return str(mode)


def _check_padding(padding: object) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"encoder_padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
    return str(padding)


def _shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    if not isinstance(config, dict) or config.get("layout") != _LAYOUT or \
            set(config) - {"layout", "skips", "keep", "keep_power", "upsample", "encoder_padding"}:
        raise ValueError(f"expected {{'layout': '{_LAYOUT}'[, 'skips': [...]][, 'keep': [...], 'keep_power': p]"
                         f"[, 'upsample': mode][, 'encoder_padding': padding]}}; got {config}")
    skips = _check_skips(config.get("skips", []))
    keep = _check_skips(config.get("keep", []), "keep")
    power = _check_power(config.get("keep_power", KEEP_POWER))
    _check_upsample(config.get("upsample", "nearest"))
    _check_padding(config.get("encoder_padding", "zeros"))
    return meta_shapes(lambda: Decoder(skips=skips, keep=keep, keep_power=power))


def _float32(t: torch.Tensor) -> torch.Tensor:
    """A contiguous float32 copy or view of a loaded tensor; CPU half tensors convert in numpy (one
    thread: torch's conversions of 30 small tensors each wait for its thread pool, issue 31)."""
    if t.device.type == "cpu" and t.dtype == torch.float16:
        return torch.from_numpy(t.contiguous().numpy().astype(np.float32))
    return t.float().contiguous()


class Decoder(nn.Sequential):
    """Mirror of VGG-19 up to relu4_1: reflection padding, 3x3 convs, 2x upsampling, no norms.

    The layout is byte-compatible with the PyTorch AdaIN port, so its ``decoder.pth`` loads
    unchanged (keys ``1.weight`` ... ``28.bias``).

    With ``skips`` (some of :data:`SKIP_TAPS`), the decoder also takes those encoder taps, each
    through a 1x1 convolution (``skip_<tap>``) added to the input of the first layer at the tap's
    resolution. The convolutions start at zero, so a skip decoder made from a plain one decodes
    exactly as it did until it is trained: relu4_1 alone loses thin structures (at 1/8 of the
    resolution), and the finer taps, stylized the same way, give them back (docs/quality.md).

    With ``keep`` (some of ``skips``), the decoder has a second 1x1 convolution at those taps
    (``keep_<tap>``, also starting at zero) for the content's *own* features, weighted by ``keep``
    (:meth:`keep_weight` of alpha in :class:`adain.styler.Styler`). One decoder must paint at alpha 1 and give the
    content back at alpha 0, and its shared weights settle between the two; the keep path is trained
    (with the rest frozen) on reconstruction alone, so the decoder reconstructs at alpha 0 and
    decodes exactly as before at alpha 1, where its weight is zero.

    ``upsample`` (:data:`UPSAMPLE_MODES`): ``"nearest"`` is the port's; ``"bilinear"`` leaves no
    lattice. ``encoder_padding`` (:data:`adain.base.encoder.vgg.PADDINGS`): how the encoder pads
    the features this decoder takes (its callers pass it to the encoder): ``"zeros"`` is the Oxford
    VGG's own, a black frame that the decoder paints as a band along the edges; ``"replicate"``
    continues the image. Both are stored in the weights' config; files that do not say are
    ``"nearest"`` and ``"zeros"``.

    Shape:
        - Input: ``(B, 512, H, W)`` relu4_1-like features; with skips, also ``skips[tap]`` at that
          tap's size (relu3_1 ``(B, 256, 2H, 2W)``, relu2_1 ``(B, 128, 4H, 4W)``, relu1_1 ``(B, 64, 8H, 8W)``);
          with keep taps and ``keep`` not zero, also ``content[tap]`` at the same sizes.
        - Output: ``(B, 3, 8H, 8W)`` RGB, approximately in [0, 1] (not clamped).

    Example:
        >>> Decoder()(torch.rand(1, 512, 4, 4)).shape
        torch.Size([1, 3, 32, 32])
        >>> Decoder(skips=["relu3_1"])(torch.rand(1, 512, 4, 4), {"relu3_1": torch.rand(1, 256, 8, 8)}).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(self, skips: Sequence[str] = (), keep: Sequence[str] = (), keep_power: float = KEEP_POWER,
                 upsample: str = "nearest", encoder_padding: str = "zeros") -> None:
        mode = _check_upsample(upsample)
        padding = _check_padding(encoder_padding)
        pad = lambda: nn.ReflectionPad2d(1)  # noqa: E731
        up = lambda: nn.Upsample(scale_factor=2, mode=mode)  # noqa: E731
        super().__init__(
            pad(), nn.Conv2d(512, 256, 3), nn.ReLU(inplace=True),  # 0-2: relu4-1 mirror
            up(),  # 3
            pad(), nn.Conv2d(256, 256, 3), nn.ReLU(inplace=True),  # 4-6: relu3-4
            pad(), nn.Conv2d(256, 256, 3), nn.ReLU(inplace=True),  # 7-9: relu3-3
            pad(), nn.Conv2d(256, 256, 3), nn.ReLU(inplace=True),  # 10-12: relu3-2
            pad(), nn.Conv2d(256, 128, 3), nn.ReLU(inplace=True),  # 13-15: relu3-1
            up(),  # 16
            pad(), nn.Conv2d(128, 128, 3), nn.ReLU(inplace=True),  # 17-19: relu2-2
            pad(), nn.Conv2d(128, 64, 3), nn.ReLU(inplace=True),  # 20-22: relu2-1
            up(),  # 23
            pad(), nn.Conv2d(64, 64, 3), nn.ReLU(inplace=True),  # 24-26: relu1-2
            pad(), nn.Conv2d(64, 3, 3),  # 27-28: relu1-1 mirror, to RGB
        )
        self.upsample = mode
        self.encoder_padding = padding
        self.skips: tuple[str, ...] = _check_skips(skips)
        for tap in self.skips:
            self.add_module(f"skip_{tap}", _zero_conv(tap))  # after the 29 layers: the port's keys stay "1.weight" ...
        self.keep: tuple[str, ...] = _check_skips(keep, "keep")
        self.keep_power = _check_power(keep_power)
        if set(self.keep) - set(self.skips):
            raise ValueError(f"keep must be some of the decoder's skips {list(self.skips)}; got {list(keep)}")
        for tap in self.keep:
            self.add_module(f"keep_{tap}", _zero_conv(tap))

    def forward(self, x: torch.Tensor, skips: Mapping[str, torch.Tensor] | None = None, *,
                content: Mapping[str, torch.Tensor] | None = None, keep: float | torch.Tensor = 0.0) -> torch.Tensor:
        """Run the layers in order; each conv + ReLU pair is one fused call at inference on CPU.

        ``skips``: features by tap name, holding at least the taps of :attr:`skips` (required when
        the decoder has skips; other keys, such as relu4_1, are ignored).
        ``content``: the content's own (un-stylized) features, holding at least the taps of
        :attr:`keep`, required when the decoder has keep taps and ``keep`` is not zero.
        ``keep``: the keep path's weight, a number or a tensor broadcastable to ``(B, 1, 1, 1)``
        (:meth:`keep_weight` of alpha); ignored by a decoder without keep taps.

        Without gradients, the layers at the output's full resolution (the last upsampling on) run
        in bands of rows of at most :data:`BAND_PIXELS` pixels, each with the two rows of context its
        two 3x3 convolutions need: the same output (up to rounding: a convolution may sum in another
        order for another input shape), without holding 64-channel maps of the whole image (3 of
        them, 768 bytes a pixel in float32, about 6 GB at 4K).
        """
        if self.skips and (skips is None or any(t not in skips for t in self.skips)):
            raise ValueError(f"this decoder takes skip features {list(self.skips)}; got "
                             f"{None if skips is None else sorted(skips)}")
        kept: tuple[Mapping[str, torch.Tensor], float | torch.Tensor] | None = None
        if self.keep and (isinstance(keep, torch.Tensor) or keep != 0):
            if content is None or any(t not in content for t in self.keep):
                raise ValueError(f"this decoder keeps content features {list(self.keep)} when keep is not zero; got "
                                 f"{None if content is None else sorted(content)}")
            kept = (content, keep)
        layers = list(self)[:_N_LAYERS]
        x = self._run(layers, 0, _TAIL, x, skips, kept)
        # Training and graph capture (export, tracing, torch.compile) take the whole-image path: bands
        # would branch on the input's size.
        if torch.is_grad_enabled() or capturing_graph():
            return self._run(layers, _TAIL, _N_LAYERS, x, skips, kept)
        h, w = 2 * x.shape[-2], 2 * x.shape[-1]
        rows = max(8, BAND_PIXELS // max(w, 1))
        if rows >= h:
            return self._run(layers, _TAIL, _N_LAYERS, x, skips, kept)
        out: torch.Tensor | None = None
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            band = self._run(layers, _TAIL, _N_LAYERS, x, skips, kept, rows=(r0, r1, h))
            if out is None:
                out = band.new_empty(*band.shape[:2], h, band.shape[-1])
            out[..., r0:r1, :] = band
        assert out is not None
        return out

    def _run(self, layers: list[nn.Module], start: int, stop: int, x: torch.Tensor,
             skips: Mapping[str, torch.Tensor] | None,
             kept: tuple[Mapping[str, torch.Tensor], float | torch.Tensor] | None = None,
             rows: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Layers ``start:stop`` on ``x``; with ``rows=(r0, r1, h)``, only output rows ``r0:r1`` of the
        full-resolution tail (of ``h``), from ``x`` at half that resolution. ``kept``: the content's
        features and their weight for the keep taps, or None.

        A band carries its context rows through the tail: a reflection pad pads a band's side only
        where the band meets the image's border, elsewhere the next 3x3 convolution eats one context
        row, so each band's rows are exactly those of a pass over the whole image.
        """
        joins = {_SKIP_AT[t]: t for t in self.skips}
        top = bottom = 0  # the band's first and last rows in the image, while it runs
        i = start
        while i < stop:
            layer = layers[i]
            if rows is not None and i == _TAIL:  # 2x upsampling of the half-res rows the band needs
                r0, r1, h = rows
                top, bottom = max(0, r0 - _TAIL_CONTEXT), min(h, r1 + _TAIL_CONTEXT)
                # bilinear output rows also read their half-res neighbours: one more row each side
                extra = int(self.upsample != "nearest")
                a, b = max(0, top // 2 - extra), min(x.shape[-2], (bottom + 1) // 2 + extra)
                x = layer(x[..., a:b, :])[..., top - 2 * a:, :][..., : bottom - top, :]
                i += 1
                continue
            if i in joins:
                tap = joins[i]
                assert skips is not None
                first = top if rows is not None else 0  # a band's rows of the skip map
                s = skips[tap][..., first : first + x.shape[-2], : x.shape[-1]]
                x = x + getattr(self, f"skip_{tap}")(s.to(x.dtype))
                if kept is not None and tap in self.keep:
                    c = kept[0][tap][..., first : first + x.shape[-2], : x.shape[-1]]
                    x = x + kept[1] * getattr(self, f"keep_{tap}")(c.to(x.dtype))
            if rows is not None and isinstance(layer, nn.ReflectionPad2d):
                h = rows[2]
                pad_top, pad_bottom = int(top == 0), int(bottom == h)
                x = F.pad(x, (1, 1, pad_top, pad_bottom), mode="reflect")
                top, bottom = top - pad_top + 1, bottom + pad_bottom - 1  # after the next 3x3 conv
                i += 1
                continue
            if isinstance(layer, nn.Conv2d) and i + 1 < stop and isinstance(layers[i + 1], nn.ReLU):
                x = conv2d_relu(x, layer.weight, layer.bias)  # the convs here are unpadded, stride 1
                i += 2
            else:
                x = layer(x)
                i += 1
        if rows is not None:
            r0, r1, _ = rows
            x = x[..., r0 - top : r1 - top, :]
        return x

    def keep_weight(self, alpha: float | torch.Tensor) -> float | torch.Tensor:
        """The keep path's weight at ``alpha`` (a number or a tensor): ``(1 - alpha) ** keep_power``;
        1 at alpha 0 (reconstruction, what the keep path is trained for), 0 at alpha 1."""
        return (1 - alpha) ** self.keep_power

    def input_spec(self) -> dict[str, str]:
        """The input convention stored in weights files: :data:`DECODER_INPUT`, plus the keep path's."""
        power = f"{self.keep_power:g}"
        padding = {"padding": f"the encoder pads each convolution's input with {self.encoder_padding}"}
        return DECODER_INPUT | padding | ({"keep": DECODER_KEEP_INPUT.format(power=power)} if self.keep else {})

    def config(self) -> dict[str, Any]:
        """The architecture config stored in weights files."""
        config: dict[str, Any] = {"layout": _LAYOUT}
        if self.skips:
            config["skips"] = list(self.skips)
        if self.keep:
            config["keep"] = list(self.keep)
            config["keep_power"] = self.keep_power
        # files from before these options decode as they always did
        if self.upsample != "nearest":
            config["upsample"] = self.upsample
        if self.encoder_padding != "zeros":
            config["encoder_padding"] = self.encoder_padding
        return config

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, device: torch.device | str | None = None) -> Decoder:
        """Load the bundled decoder (``path=None``), a weights file, a ``decoder.pth`` of the AdaIN port,
        a legacy ``.pt`` state_dict or a training checkpoint.

        Every tensor's shape is checked against the architecture before anything is converted.
        Returns an eval-mode float32 decoder.
        """
        device = check_device(device)
        source = Path(path) if path is not None else bundled_weights("adain", BUNDLED_DECODER)
        state, meta = load_weights(source, "Decoder", _shapes, describe=_DESCRIBE)
        if meta is None:  # legacy torch file: DDP-saved keys carry a "module." prefix
            state = {k.removeprefix("module."): v for k, v in state.items()}
            # a skip decoder's training checkpoint names its skips in its keys ("skip_relu3_1.weight")
            skips = [t for t in SKIP_TAPS if f"skip_{t}.weight" in state]
            keep = [t for t in skips if f"keep_{t}.weight" in state]
            check_state(state, meta_shapes(lambda: cls(skips=skips, keep=keep)), source, _DESCRIBE)
            power = KEEP_POWER
        else:
            skips, keep = meta.config.get("skips", []), meta.config.get("keep", [])
            power = meta.config.get("keep_power", KEEP_POWER)
        extra = {} if meta is None else {k: meta.config[k] for k in ("upsample", "encoder_padding") if k in meta.config}
        # Built on the meta device and given the file's tensors (assign): no random init to overwrite
        # and no copy into it (issue 31: model loading at every start).
        with torch.device("meta"):
            dec = cls(skips=skips, keep=keep, keep_power=power, **extra)
        dec.load_state_dict({k: _float32(v) for k, v in state.items()}, strict=True, assign=True)
        dec.eval()
        return dec.to(device) if device is not None else dec

    def with_skips(self, skips: Sequence[str]) -> Decoder:
        """A copy of this decoder that also takes ``skips``: the same weights, new skips at zero
        (so it decodes exactly as this one until trained); for fine-tuning a plain decoder."""
        taps = _check_skips(list(dict.fromkeys([*self.skips, *_check_skips(skips)])))
        return self._grown(taps, self.keep, "skip_")

    def with_keep(self, keep: Sequence[str]) -> Decoder:
        """A copy of this decoder with keep convolutions (at zero) at ``keep`` (some of its skips) too:
        it decodes exactly as this one until trained; for training the keep path."""
        return self._grown(self.skips, _check_skips(list(dict.fromkeys([*self.keep, *_check_skips(keep, "keep")])),
                                                    "keep"), "keep_")

    def reconfigured(self, *, upsample: str | None = None, encoder_padding: str | None = None) -> Decoder:
        """A copy of this decoder (the same weights) with another ``upsample`` and/or
        ``encoder_padding`` (None: this one's); for fine-tuning a decoder to them."""
        dec = Decoder(skips=self.skips, keep=self.keep, keep_power=self.keep_power,
                      upsample=upsample or self.upsample, encoder_padding=encoder_padding or self.encoder_padding)
        dec.load_state_dict(self.state_dict(), strict=True)
        return dec.to(next(self.parameters()).device).train(self.training)

    def _grown(self, skips: tuple[str, ...], keep: tuple[str, ...], new: str) -> Decoder:
        dec = Decoder(skips=skips, keep=keep, keep_power=self.keep_power, upsample=self.upsample,
                      encoder_padding=self.encoder_padding).to(next(self.parameters()).device)
        missing, unexpected = dec.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith(new) for k in missing), (missing, unexpected)
        return dec.train(self.training)
