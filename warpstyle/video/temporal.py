"""Frames of a clip through the pipeline, stable in time: a warp that holds still, texture that does not flicker.

Run per frame, :class:`~warpstyle.pipeline.Pipeline` would re-estimate the warp field and re-measure the
content's feature statistics on every frame; both jump with noise, compression and small motion, and
the output wobbles and flickers. Here, with the geometry and the texture encoded once:

* **Geometry.** Each frame's field is estimated (or, with ``track_steps``, refined from the previous
  frame's field as the prior: :meth:`Warper.estimate`'s ``prior``), split into its global affine part
  and its non-rigid rest, and each is smoothed over time by an exponential moving average
  (``global_smoothing``, ``field_smoothing``: the weight of the past). The global part follows the
  camera sooner than the shape detail, which should hardly move.
* **Texture.** AdaIN normalises the content's features with their channel mean and std; those are
  smoothed over time the same way (``stats_smoothing``), so one shot keeps one colour and contrast
  mapping. The decoder's strokes are not shift-equivariant (VGG pools by 8 px: content moving by a
  few pixels gets new strokes), so with ``blend`` the previous output, carried along the optical flow
  of the warped content, is blended in wherever the flow explains the content (Lai et al. 2018's
  warping error drops most from this; ghosts are kept out by a photometric check).
* **Cuts.** A large jump of the frames' colour histograms (``cut_threshold``) is a scene cut: every
  average restarts from the new shot's first frame.

All smoothing at 0 is the naive per-frame result (the baseline of ``benchmarks/bench_video.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator, Sequence

import torch

from adain.base.checks import check_range
from adain.base.image import ImageLike, as_image_batch, fit_longer, resize_exact
from adain.base.runtime import default_bf16
from adain.functional import match_color
from adain.styler import StyleBank, Stats

from warpstyle.fields.field import WarpField
from warpstyle.fields.warp import _affine_part, _displacement, _from_displacement, identity_grid, resize_field
from warpstyle.geometry.warper import DEFAULT_METHOD, Warper
from warpstyle.pipeline import Pipeline, PipelineOptions, _texture_items
from warpstyle.sizes import longer_side

__all__ = ["TemporalOptions", "TemporalStylizer", "CutDetector", "stylize_frames", "field_change_px", "NAIVE"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TemporalOptions:
    """How much of the past each frame keeps (0: per frame; closer to 1: steadier, slower to follow).

    Attributes:
        field_smoothing: EMA weight of the past for the field's non-rigid part.
        global_smoothing: EMA weight of the past for the field's global affine part (camera motion).
        stats_smoothing: EMA weight of the past for the content's AdaIN statistics.
        blend: share of the previous output kept, carried along the optical flow of the (warped)
            content where that flow explains the content (0: none). The flow is OpenCV's DIS when
            ``opencv-python-headless`` is installed; without it, only still regions are blended.
        cut_threshold: colour-histogram distance in [0, 1] between consecutive frames that counts as a
            scene cut and restarts every average (1: never).
        track_steps: Adam steps refining each frame's field from the previous one (the prior)
            instead of estimating it afresh (0: estimate every frame; about a second per 100 steps).
    """

    field_smoothing: float = 0.8
    global_smoothing: float = 0.5
    stats_smoothing: float = 0.5
    blend: float = 0.5
    cut_threshold: float = 0.3
    track_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("field_smoothing", "global_smoothing", "stats_smoothing", "blend"):
            check_range(getattr(self, name), name, 0.0, 0.99)
        check_range(self.cut_threshold, "cut_threshold", 0.0, 1.0)
        if isinstance(self.track_steps, bool) or not isinstance(self.track_steps, int) or not 0 <= self.track_steps <= 1000:
            raise ValueError(f"track_steps must be an integer in [0, 1000]; got {self.track_steps!r}")


#: Every frame on its own: what running ``warpstyle run`` on each frame gives (with the encodings shared).
NAIVE = TemporalOptions(field_smoothing=0.0, global_smoothing=0.0, stats_smoothing=0.0, blend=0.0,
                        cut_threshold=1.0)


class CutDetector:
    """Scene cuts from frame statistics: the L1 distance of per-channel colour histograms (16 bins,
    halved into [0, 1]) of 64 px thumbnails of consecutive frames. A pan or a zoom within a shot moves
    pixels but keeps the histogram; a cut replaces it.

    Example:
        >>> d = CutDetector(0.3)
        >>> d.update(torch.zeros(1, 3, 32, 32)), d.update(torch.zeros(1, 3, 32, 32)), d.update(torch.ones(1, 3, 32, 32))
        (True, False, True)
    """

    def __init__(self, threshold: float = 0.3) -> None:
        self.threshold = threshold
        self._prev: torch.Tensor | None = None
        self.last_distance = 0.0

    @staticmethod
    def histogram(frame: torch.Tensor, bins: int = 16) -> torch.Tensor:
        """``(3, bins)`` normalised histograms of a ``(1, 3, H, W)`` frame's channels."""
        small = resize_exact(frame.float(), fit_longer(tuple(frame.shape[-2:]), 64))[0]
        return torch.stack([torch.histc(c, bins=bins, min=0.0, max=1.0) / c.numel() for c in small])

    def update(self, frame: torch.Tensor) -> bool:
        """True when ``frame`` starts a new shot (the first frame always does)."""
        h = self.histogram(frame)
        prev, self._prev = self._prev, h
        if prev is None:
            self.last_distance = 1.0
            return True
        self.last_distance = float((h - prev).abs().sum(dim=1).mean() / 2)
        return self.last_distance > self.threshold


class _RepeatsQuiet(logging.Filter):
    """While active on ``logger``: each kind of warning (its text up to the first digit or parenthesis)
    passes once, with a note that repeats are only logged at debug level; later ones are demoted."""

    def __init__(self, logger: logging.Logger, seen: set[str]) -> None:
        super().__init__()
        self.logger, self.seen = logger, seen

    def __enter__(self) -> _RepeatsQuiet:
        self.logger.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        msg = record.getMessage()
        key = re.split(r"[\d(]", msg, maxsplit=1)[0]
        if key in self.seen:
            log.debug("(repeat) %s", msg)
            return False
        self.seen.add(key)
        record.msg, record.args = msg + " (on later frames: logged at debug level, -vv)", None
        return True


def _ema(prev: torch.Tensor | None, new: torch.Tensor, past: float) -> torch.Tensor:
    return new if prev is None or past == 0 else torch.lerp(new, prev, past)


def field_change_px(a: WarpField, b: WarpField) -> float:
    """Mean distance in output pixels between where two fields of one output size sample the content.

    Both fields' grids are taken at ``a.output_size`` (normalised units of half the width/height).
    """
    h, w = a.output_size or tuple(a.grid.shape[1:3])
    ga, gb = resize_field(a.grid.float(), (h, w)), resize_field(b.grid.float(), (h, w))
    d = (ga - gb) * ga.new_tensor([w / 2.0, h / 2.0])
    return float(d.norm(dim=-1).mean())


class TemporalStylizer:
    """The per-frame state of :func:`stylize_frames`: call :meth:`step` on each frame in order.

    Args:
        pipeline: the models (:meth:`Pipeline.from_pretrained`); its warper may be None without a geometry.
        geometry: image whose shapes the frames take (None: no warp).
        texture: one texture image or several (None: no stylization).
        options: the :class:`~warpstyle.pipeline.PipelineOptions` of ``warpstyle run`` (``strength``,
            ``alpha``, ``preserve_color``, ``size``, ``method``, ``bf16``, ``padding``...). The
            multi-scale, refinement and mask options are per-image tools and are not used here:
            each frame is one texture pass at the output size.
        temporal: :class:`TemporalOptions` (default: smoothing on).

    Attributes:
        field: the field applied to the last frame (at the output size), or None.
        cut: whether the last frame started a new shot.
    """

    def __init__(self, pipeline: Pipeline, geometry: ImageLike | None = None,
                 texture: ImageLike | Sequence[ImageLike] | None = None, options: PipelineOptions | None = None,
                 temporal: TemporalOptions | None = None) -> None:
        opts = options or PipelineOptions()
        Warper.check_options(strength=opts.strength, smoothness=opts.smoothness, padding=opts.padding)
        # None: matching, or the network where the alignment search is asked (as Pipeline.run resolves it)
        opts = dataclasses.replace(opts, method=Warper.method(opts.method or ("network" if opts.align else DEFAULT_METHOD)))
        if opts.preserve_color not in (None, "match", "luminance"):
            raise ValueError(f"preserve_color must be None, 'match' or 'luminance'; got {opts.preserve_color!r}")
        if opts.size is not None and opts.size < 16:
            raise ValueError(f"size must be at least 16 px for video; got {opts.size}")
        self.pipeline, self.opts = pipeline, opts
        self.temporal = temporal or TemporalOptions()
        self.bf16 = default_bf16(pipeline.device) if opts.bf16 is None else bool(opts.bf16)
        items = None if texture is None else _texture_items(texture)
        self.plan = None if items is None else pipeline.styler.plan(
            len(items), alpha=opts.alpha, weights=opts.texture_weights, preserve_color=None, bf16=self.bf16,
            name="texture", item="texture", weights_name="texture_weights")
        self.prep = pipeline.prepare(geometry, items, self.bf16, method=opts.method, working_size=opts.size)
        self.detector = CutDetector(self.temporal.cut_threshold)
        self.out_hw: tuple[int, int] | None = None
        self.in_hw: tuple[int, int] | None = None
        self.field: WarpField | None = None
        self.cut = False
        self._bank: StyleBank | None = self.prep.bank
        self._affine: torch.Tensor | None = None  # (1, 2, 3) smoothed global part of the displacement
        self._rest: torch.Tensor | None = None  # (1, 2, N, N) smoothed non-rigid rest
        self._raw: WarpField | None = None  # the last estimate (the prior of tracking)
        self._stats: dict[tuple[str, int], Stats] = {}
        self._prev_out: torch.Tensor | None = None
        self._prev_warped: torch.Tensor | None = None
        self._dis: object = None  # OpenCV's DIS flow for the blend (False: OpenCV is not installed)
        self._seen_warnings: set[str] = set()

    def output_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` of the outputs for frames of ``frame_hw``: the geometry's aspect ratio (else the
        frames') at longer side ``size`` (default 512), each side rounded down to even (H.264's 4:2:0)."""
        longer = longer_side(self.opts.size, self.opts.max_size)
        g = self.prep.geometry
        hw = Warper.output_size(tuple(g.shape[-2:]), longer) if g is not None else fit_longer(frame_hw, longer)
        return max(2, hw[0] // 2 * 2), max(2, hw[1] // 2 * 2)

    @torch.no_grad()
    def step(self, frame: ImageLike) -> torch.Tensor:
        """Stylize the next frame ``(1, 3, H, W)`` in [0, 1]; returns ``(1, 3, H_out, W_out)`` on the CPU."""
        x = as_image_batch(frame, "frame")
        if x.shape[0] != 1:
            raise ValueError(f"frame must be a single image (1, 3, H, W); got batch of {x.shape[0]}")
        hw = (int(x.shape[-2]), int(x.shape[-1]))
        if self.in_hw is None:
            self.in_hw, self.out_hw = hw, self.output_size(hw)
            if self.plan is not None and self.prep.bank is not None:
                self.pipeline.styler.preflight(self.out_hw, self.plan,
                                               styles=[tuple(t.shape[-2:]) for t in self.prep.bank.images])
        elif hw != self.in_hw:
            raise ValueError(f"every frame must have the first frame's size {self.in_hw}; got {hw}")
        assert self.out_hw is not None
        x = x.to(self.pipeline.device)
        self.cut = self.detector.update(x)
        if self.cut and self._prev_out is not None:
            log.info("scene cut (histogram distance %.2f): temporal averages restart", self.detector.last_distance)
        if self.cut:
            self._affine = self._rest = self._raw = self._prev_out = self._prev_warped = None
            self._stats.clear()
        image = self._warp(x) if self.prep.geometry is not None else resize_exact(x, self.out_hw)
        warped = image
        if self.plan is not None:
            image = self._stylize(image)
        b = self.temporal.blend
        if b > 0 and self._prev_out is not None and self._prev_warped is not None:
            prev_out, prev_warped = self._aligned_previous(warped)
            # Keep the previous output where the (aligned) content agrees: a few grey levels are noise;
            # more is motion the flow missed, or an occlusion, where a blend would leave a ghost.
            diff = (warped - prev_warped).abs().mean(dim=1, keepdim=True)  # (1, 1, H, W)
            agree = torch.exp(-(diff / (6.0 / 255)) ** 2)
            image = torch.lerp(image, prev_out, b * agree)
        self._prev_out, self._prev_warped = image, warped
        return image.cpu()

    def _aligned_previous(self, warped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The previous output and (warped) content carried to this frame along the optical flow of the
        warped contents (OpenCV's DIS, when ``cv2`` is installed: the ``eval`` extra); without OpenCV,
        unmoved (the blend then only acts where the picture holds still)."""
        assert self._prev_out is not None and self._prev_warped is not None
        if self._dis is None:
            try:
                import cv2
            except ImportError:
                self._dis = False
            else:
                self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        if self._dis is False:
            return self._prev_out, self._prev_warped
        import numpy as np

        grey = lambda t: np.ascontiguousarray(  # noqa: E731
            (t[0].float().clamp(0, 1).mul(255).permute(1, 2, 0).cpu().numpy() @ np.array([0.299, 0.587, 0.114]))
            .round().astype(np.uint8))
        flow = torch.from_numpy(self._dis.calc(grey(warped), grey(self._prev_warped), None))  # (H, W, 2): t -> t-1
        h, w = flow.shape[:2]
        grid = identity_grid(1, h, w) + flow[None] * flow.new_tensor([2.0 / w, 2.0 / h])  # pixels -> normalised
        both = torch.cat([self._prev_out, self._prev_warped]).to(grid.device).float()
        moved = torch.nn.functional.grid_sample(both, grid.expand(2, -1, -1, -1).to(both), mode="bilinear",
                                                padding_mode="border", align_corners=False)
        return moved[:1].to(warped), moved[1:].to(warped)

    def _estimate(self, x: torch.Tensor) -> WarpField:
        """This frame's field: tracked from the previous estimate (``track_steps``) or estimated afresh."""
        warper, opts, t = self.pipeline.warper, self.opts, self.temporal
        assert warper is not None and self.prep.geometry is not None
        if t.track_steps and self._raw is not None:
            return warper._estimate_trusted(x, self.prep.geometry, method=opts.method, prior=self._raw,
                                            refine_steps=t.track_steps, bf16=self.bf16)
        return warper._estimate_trusted(x, self.prep.geometry, method=opts.method, align=opts.align,
                                        refine_steps=opts.warp_refine, bf16=self.bf16,
                                        geometry_features=self.prep.geometry_features)

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        opts, t = self.opts, self.temporal
        assert self.out_hw is not None
        # The warper's per-image notes (e.g. "matching is not confident: the network's field") once per
        # kind of note, not once a frame.
        with _RepeatsQuiet(logging.getLogger("warpstyle.geometry.warper"), self._seen_warnings):
            raw = self._estimate(x)
        self._raw = raw
        grid = raw.grid.float()
        if self._rest is not None and tuple(grid.shape[1:3]) != tuple(self._rest.shape[-2:]):
            grid = resize_field(grid, tuple(self._rest.shape[-2:]))  # one resolution for the average
        disp = _displacement(grid)  # (1, 2, N, N)
        affine = _affine_part(disp.double()).float()  # (1, 2, 3): the global (camera, object) motion
        rest = disp - self._linear(affine, disp)
        self._affine = _ema(self._affine, affine, t.global_smoothing)
        self._rest = _ema(self._rest, rest, t.field_smoothing)
        smoothed = WarpField(_from_displacement(self._rest + self._linear(self._affine, self._rest)), raw.output_size)
        warped, self.field = Warper._apply_trusted(x, smoothed, opts.strength, opts.smoothness, self.out_hw,
                                                   opts.padding)
        return warped

    @staticmethod
    def _linear(affine: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The affine displacement ``(1, 2, 3)`` evaluated at the cell centres of ``like`` ``(1, 2, N, M)``."""
        xy = identity_grid(1, like.shape[-2], like.shape[-1], device=like.device, dtype=like.dtype)[0]  # (N, M, 2)
        out = affine[:, :, 0, None, None] * xy[..., 0] + affine[:, :, 1, None, None] * xy[..., 1]
        return out + affine[:, :, 2, None, None]  # (1, 2, N, M)

    def _stylize(self, image: torch.Tensor) -> torch.Tensor:
        styler, plan = self.pipeline.styler, self.plan
        assert plan is not None and self.prep.bank is not None
        if self.cut and self.opts.preserve_color == "match":
            # The texture recoloured once per shot, to its first frame (per frame, the colours would flicker).
            self._bank = StyleBank([match_color(s, image) for s in self.prep.bank.images])
        assert self._bank is not None
        past = self.temporal.stats_smoothing

        def smooth(tap: str, size: int, stats: Stats) -> Stats:
            prev = self._stats.get((tap, size))
            if prev is not None and past > 0:
                stats = (torch.lerp(stats[0], prev[0], past), torch.lerp(stats[1], prev[1], past))
            self._stats[(tap, size)] = stats
            return stats

        out = styler.stylize_planned(image, self._bank, plan, content_stats=smooth)
        if self.opts.preserve_color == "luminance":
            from adain.functional import luminance_transfer

            out = luminance_transfer(out, image)
        return out


def stylize_frames(
    frames: Iterable[ImageLike],
    pipeline: Pipeline,
    geometry: ImageLike | None = None,
    texture: ImageLike | Sequence[ImageLike] | None = None,
    options: PipelineOptions | None = None,
    temporal: TemporalOptions | None = None,
    **overrides: object,
) -> Iterator[torch.Tensor]:
    """Stylize a stream of frames, one output per input, in order, stable in time.

    Frames are pulled one at a time, so a caller can feed its own source (a camera, a decoder) and
    memory does not grow with the clip's length. The geometry and texture are encoded once.

    Args:
        frames: ``(1, 3, H, W)`` tensors in [0, 1] (or anything :func:`as_image_batch` reads), all of one size.
        pipeline: the models, e.g. ``Pipeline.from_pretrained()``.
        geometry, texture: as in :meth:`Pipeline.run`.
        options: :class:`~warpstyle.pipeline.PipelineOptions`; keyword overrides (``strength=0.5``) win.
        temporal: :class:`TemporalOptions` (default smoothing; :data:`NAIVE` for per-frame results).

    Yields:
        ``(1, 3, H_out, W_out)`` float tensors in [0, 1] on the CPU; ``(H_out, W_out)`` is
        :meth:`TemporalStylizer.output_size` (even sides).

    Example:
        >>> pipe = Pipeline.from_pretrained()  # doctest: +SKIP
        >>> for out in stylize_frames(my_frames, pipe, texture="starry.jpg", size=256):  # doctest: +SKIP
        ...     show(out)
    """
    opts = dataclasses.replace(options or PipelineOptions(), **overrides)  # type: ignore[arg-type]
    # Built here, not inside the generator: bad options and unreadable images fail at the call.
    state = TemporalStylizer(pipeline, geometry, texture, opts, temporal)
    return (state.step(frame) for frame in frames)
