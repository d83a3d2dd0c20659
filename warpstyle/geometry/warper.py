"""Warper: the geometric stage. ``estimate(content, geometry) -> WarpField``; ``apply(image, field)``."""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from adain.base.checks import check_device, check_range, check_shape
from adain.base.errors import CheckpointError
from adain.base.image import ImageLike, as_image_batch, fit_longer, resize_exact, resize_longer
from adain.base.vgg import VGGEncoder
from adain.base.weights import bundled_weights, check_state, load_weights, meta_shapes

from warpstyle.geometry.align import Similarity, align_features, check_hw, compose_similarity, estimate_similarity
from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.fields.field import WarpField
from warpstyle.geometry.objective import objective_features
from warpstyle.geometry.refine import REFINE_SIZE, refine_field
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.geometry.scale_search import search_similarity
from warpstyle.fields.warp import PaddingMode, apply_warp, identity_grid

__all__ = ["Warper", "BUNDLED_WARPER", "ALIGN_METHODS", "DEFAULT_ALIGN", "DEFAULT_SMOOTHNESS", "WARPER_INPUT"]

BUNDLED_WARPER = "warper.safetensors"
#: Default Gaussian smoothing of the field, in cells of the 16x16 feature grid.
DEFAULT_SMOOTHNESS = 0.75
FEATURE_SIZE = 256
#: Global similarity alignment before the network's field (:mod:`warpstyle.geometry.scale_search`).
DEFAULT_ALIGN = False
#: ``align`` values: True is ``"search"`` (:mod:`warpstyle.geometry.scale_search`, needs the images);
#: ``"matches"`` fits the similarity to feature matches (:mod:`warpstyle.geometry.align`; fast, features suffice).
ALIGN_METHODS = ("search", "matches")
#: The regressor's input convention, stored in every warper weights file.
WARPER_INPUT: dict[str, Any] = {
    "features": "VGG-19 pool4 (bundled Oxford VGG, raw: pool taps carry no scale) of content and geometry, "
                "each resized to 256x256 (bilinear, antialiased), L2-normalised over channels: (B, 512, G, G)",
    "field": "backward warp, output (geometry) frame -> content; normalised [-1, 1], (x, y) order, "
             "align_corners=False, shape (B, G, G, 2)",
}
_DESCRIBE = "a warper state_dict (expected 'heads.N...' keys)"
# Architecture bounds: far above anything trained here, far below what a crafted file could ask for.
_LIMITS = {"grid_size": (1, 64), "hidden": (2, 2048), "refine_steps": (0, 16)}


def _regressor_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``WarpRegressor(**config)``, after checking the config's keys and ranges."""
    if set(config) != set(_LIMITS):
        raise ValueError(f"expected keys {sorted(_LIMITS)}; got {sorted(config)}")
    for key, (lo, hi) in _LIMITS.items():
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{key} must be an int in [{lo}, {hi}]; got {v!r}")
    return meta_shapes(lambda: WarpRegressor(**config))


def _legacy_config(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Infer the architecture of a legacy (metadata-free) state_dict from its tensor shapes.

    Only for ``.pt`` files written before weights carried their config: the first conv's input
    channels are G*G + 2 and its output channels the hidden width; each head is one step.
    """
    heads = {int(k.split(".")[1]) for k in state if k.startswith("heads.") and k.split(".")[1].isdigit()}
    first = state.get("heads.0.body.0.weight")
    if first is None or first.dim() != 4:
        raise ValueError("missing 'heads.0.body.0.weight'")
    grid = round(max(int(first.shape[1]) - 2, 0) ** 0.5)
    return {"grid_size": grid, "hidden": int(first.shape[0]), "refine_steps": len(heads) - 1}


def _bf16(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


class Warper(nn.Module):
    """VGG-19 pool4 features -> 4-D correlation -> dense warp field.

    Args:
        encoder: the VGG encoder (shared with the styler in a pipeline).
        regressor: the field regressor.

    Example:
        >>> warper = Warper(VGGEncoder(), WarpRegressor())  # untrained: identity field
        >>> field = warper.estimate(torch.rand(1, 3, 64, 48), torch.rand(1, 3, 40, 60))
        >>> field.grid.shape
        torch.Size([1, 16, 16, 2])
    """

    def __init__(self, encoder: VGGEncoder, regressor: WarpRegressor) -> None:
        super().__init__()
        self.encoder = encoder
        self.regressor = regressor

    @property
    def device(self) -> torch.device:
        return next(self.regressor.parameters()).device

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """L2-normalised pool4 features ``(B, 512, 16, 16)`` of ``(B, 3, H, W)`` resized to 256x256."""
        x = F.interpolate(image, size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear", align_corners=False,
                          antialias=True).contiguous(memory_format=torch.channels_last)
        return l2_normalize_features(self.encoder(x, taps=("pool4",))["pool4"])

    def forward(self, content: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """Field grid ``(B, 16, 16, 2)`` for content and geometry batches ``(B, 3, H, W)``."""
        return self.regressor(self.features(content), self.features(geometry))

    @torch.no_grad()
    def encode(self, image: ImageLike, *, bf16: bool = False, name: str = "image") -> torch.Tensor:
        """Features of an image for :meth:`estimate`, reusable across calls (e.g. one geometry, many contents).

        Args:
            image: ``(B, 3, H, W)`` / ``(3, H, W)`` in [0, 1], or a path / PIL image / array.
            bf16: bf16 autocast for the VGG features.
            name: the argument named in error messages.

        Returns:
            ``(B, 512, 16, 16)`` L2-normalised pool4 features, float32.
        """
        return self._encode_checked(as_image_batch(image, name), bf16)

    @torch.no_grad()
    def _encode_checked(self, x: torch.Tensor, bf16: bool) -> torch.Tensor:
        """:meth:`encode` of an already-checked ``(B, 3, H, W)`` float tensor in [0, 1]."""
        x = x.to(self.device)
        with _bf16(self.device, bf16):
            return self.features(x).float()

    @torch.no_grad()
    def estimate(
        self,
        content: ImageLike | None,
        geometry: ImageLike | None,
        *,
        bf16: bool = False,
        content_features: torch.Tensor | None = None,
        geometry_features: torch.Tensor | None = None,
        geometry_size: tuple[int, int] | None = None,
        content_size: tuple[int, int] | None = None,
        refine_steps: int = 0,
        refine_size: int = REFINE_SIZE,
        align: bool | str = DEFAULT_ALIGN,
        on_refine_step: Callable[[int, torch.Tensor], None] | None = None,
    ) -> WarpField:
        """Estimate the field that gives ``content`` the shapes of ``geometry``.

        Args:
            content: ``(B, 3, H, W)`` in [0, 1], or a path / PIL image / array (or None with
                ``content_features``).
            geometry: ``(B, 3, H2, W2)`` in [0, 1] (B equal to content's, or 1), or a path etc.
                (or None with ``geometry_features`` and ``geometry_size``).
            bf16: run the VGG features under bf16 autocast (faster on CPU).
            content_features, geometry_features: precomputed :meth:`encode` outputs.
            geometry_size: ``(H2, W2)`` of the geometry (None: the geometry image's size); needed when
                only its features are given.
            content_size: ``(H, W)`` of the content, for ``align`` (None: the content image's size,
                or square when only its features are given).
            refine_steps: Adam steps refining the field for this pair on the feature-matching
                objective (:mod:`warpstyle.geometry.refine`); 0 (default) returns the network's field.
                Needs both images (features may still be given for the network's pass).
            refine_size: side of the refined field.
            align: first find a global similarity (scale and shift) between the two objects,
                estimate the network's field against the content seen through it, and compose
                the two; where none is found, the plain network field. Lines up objects of
                different size and place (a small face in a photo, a face filling a caricature).
                True or ``"search"``: a multi-scale search of the geometry's features in the
                content's (:mod:`warpstyle.geometry.scale_search`; needs both images, about 18 VGG passes);
                ``"matches"``: a similarity (with rotation) fitted to mutual feature matches
                (:mod:`warpstyle.geometry.align`; features suffice, about 0.01 s, less often right).
                With the search, the network's field is estimated, and refined, on the content
                seen through the similarity (re-encoded at 256 px), then composed with it.
            on_refine_step: with ``refine_steps``, called as ``on_refine_step(step, grid)`` with
                the network's field (step 0) and after each step, each as this method would
                return it (composed with the alignment), e.g. to score several step counts in one run.

        Returns:
            WarpField with a ``(B, 16, 16, 2)`` grid (``refine_size`` square when refined) and
            ``output_size`` = geometry's ``(H2, W2)``.
        """
        for hw, label in ((content_size, "content_size"), (geometry_size, "geometry_size")):
            if hw is not None:
                check_hw(hw, label)
        method = self.align_method(align)
        if method == "search" and (content is None or geometry is None):
            raise ValueError("align='search' needs the content and geometry images, not only their features "
                             "(align='matches' works from features)")
        c_obj = g_obj = None
        if refine_steps:
            if int(refine_steps) != refine_steps or refine_steps < 0:
                raise ValueError(f"refine_steps must be a non-negative integer; got {refine_steps!r}")
            if content is None or geometry is None:
                raise ValueError("refine_steps > 0 needs the content and geometry images, not only their features")
            c = as_image_batch(content, "content").to(self.device)
            g = as_image_batch(geometry, "geometry").to(self.device)
            content_size = content_size or (int(c.shape[-2]), int(c.shape[-1]))
            with torch.no_grad(), _bf16(self.device, bf16):
                # One encoder pass per image gives the network's pool4 and the objective's taps.
                c_obj, g_obj = objective_features(self.encoder, c), objective_features(self.encoder, g)
            content_features = c_obj["pool4"] if content_features is None else content_features
            if geometry_features is None:
                geometry_features = g_obj["pool4"]
                geometry_size = geometry_size or (int(g.shape[-2]), int(g.shape[-1]))
        # The search encodes the content seen through each similarity it finds; the plain 256 px
        # features are only needed where it finds none, so they wait for its answer (and are then
        # computed for the whole batch, the found elements' rows overwritten).
        deferred = False
        if content_features is None:
            if content is None:
                raise ValueError("content must be given (or content_features)")
            c = as_image_batch(content, "content")
            content_size = content_size or (int(c.shape[-2]), int(c.shape[-1]))
            if method == "search":
                deferred = True
            else:
                content_features = self._encode_checked(c, bf16)
        elif content_size is None and content is not None and align:
            c = as_image_batch(content, "content")  # features given: the image still gives the aspect ratio
            content_size = (int(c.shape[-2]), int(c.shape[-1]))
        if geometry_features is None:
            if geometry is None:
                raise ValueError("geometry must be given (or geometry_features)")
            g = as_image_batch(geometry, "geometry")
            geometry_size = geometry_size or (int(g.shape[-2]), int(g.shape[-1]))
            geometry_features = self._encode_checked(g, bf16)
        n = self.regressor.grid_size
        check_shape(geometry_features, "geometry_features", ("B", "C", n, n))
        if not deferred:
            check_shape(content_features, "content_features", ("B", "C", n, n))
        batch = c.shape[0] if deferred else content_features.shape[0]
        if geometry_features.shape[0] not in (1, batch):
            raise ValueError(f"geometry must have batch 1 or content's batch ({batch}); "
                             f"got {geometry_features.shape[0]}")
        sims = None
        if method == "search":
            c = as_image_batch(content, "content").to(self.device)
            g = as_image_batch(geometry, "geometry").to(self.device)
            if g.shape[0] not in (1, c.shape[0]):
                raise ValueError(f"geometry must have batch 1 or content's batch ({c.shape[0]}); got {g.shape[0]}")
            if not deferred and c.shape[0] != content_features.shape[0]:
                raise ValueError(f"content_features must have the content's batch ({c.shape[0]}); "
                                 f"got {content_features.shape[0]}")
            content_size = content_size or (int(c.shape[-2]), int(c.shape[-1]))
            geometry_size = geometry_size or (int(g.shape[-2]), int(g.shape[-1]))
            # Search at the stated aspect ratios (images may come resized, e.g. squared for a batch).
            cs, gs = (x if (want := fit_longer(hw, max(x.shape[-2:]))) == tuple(x.shape[-2:]) else resize_exact(x, want)
                      for x, hw in ((c, content_size), (g, geometry_size)))
            with torch.no_grad(), _bf16(self.device, bf16):
                sims = [search_similarity(self.encoder, cs[k:k + 1], gs[k:k + 1] if gs.shape[0] > 1 else gs)
                        for k in range(c.shape[0])]
            if deferred:
                content_features = (self._encode_checked(c, bf16) if any(sim is None for sim in sims) else
                                    torch.zeros(c.shape[0], *geometry_features.shape[1:], device=self.device))
            # The network, and the refinement, work on the content as seen through the similarity: a
            # zoomed face fills their 16x16 (relu4_1: 32x32) maps instead of a few cells of them.
            content_features, c_obj = self._aligned_features(c, content_features, sims, content_size, geometry_size,
                                                             bf16, c_obj)
        refine = None if c_obj is None or g_obj is None else (c_obj, g_obj, int(refine_steps), refine_size)
        return self._estimate_checked(content_features, geometry_features, geometry_size, refine,
                                      align=method, content_size=content_size, sims=sims,
                                      on_refine_step=on_refine_step)

    @staticmethod
    def align_method(align: bool | str) -> str | None:
        """``align`` as ``"search"``, ``"matches"`` or None (off); ValueError naming it for an unknown string."""
        if isinstance(align, str):
            if align not in ALIGN_METHODS:
                raise ValueError(f"align must be True, False or one of {list(ALIGN_METHODS)}; got {align!r}")
            return align
        return "search" if align else None

    def _aligned_features(self, content: torch.Tensor, features: torch.Tensor, sims: list[Similarity | None],
                          content_hw: tuple[int, int], geometry_hw: tuple[int, int], bf16: bool,
                          taps: dict[str, torch.Tensor] | None = None
                          ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """pool4 features of each content seen through its similarity (re-encoded: a zoom needs detail
        the 16x16 map does not hold), and the refinement's ``taps`` of that view when given; batch
        elements without a similarity keep ``features`` and their ``taps``. The view is padded by
        reflection where the similarity maps beyond the content (at most the search's frame overshoot),
        as :meth:`apply` pads the image by default."""
        n = FEATURE_SIZE
        gx, gy = geometry_hw[1] / max(geometry_hw), geometry_hw[0] / max(geometry_hw)
        out = features.clone()
        taps = None if taps is None else {k: v.clone() for k, v in taps.items()}
        for k, sim in enumerate(sims):
            if sim is None:
                continue
            # Sample from a copy no finer than the 256 px view needs (antialiased, as encode resizes): the
            # view spans scale * (gx, gy) of the content's longer side, the finer axis decides.
            x = content[k:k + 1].float()
            longer = max(x.shape[-2:])
            need = math.ceil(n / (sim.scale * min(gx, gy)))
            if need < longer:
                x = resize_longer(x, need)
            grid = compose_similarity([sim], identity_grid(1, n, n, device=x.device), content_hw, geometry_hw)
            seen = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            if taps is None:
                out[k] = self._encode_checked(seen, bf16)[0].to(out.device)
                continue
            with torch.no_grad(), _bf16(self.device, bf16):
                view = objective_features(self.encoder, seen.to(self.device), tuple(taps))
            for name, v in view.items():
                taps[name][k] = v[0].to(taps[name].device)
            out[k] = view["pool4"][0].to(out.device)  # the refinement's taps include the network's pool4
        return out, taps

    @torch.no_grad()
    def _estimate_checked(self, fc: torch.Tensor, fg: torch.Tensor, geometry_size: tuple[int, int] | None,
                          refine: tuple[dict, dict, int, int] | None = None, *, align: bool | str | None = None,
                          content_size: tuple[int, int] | None = None,
                          sims: list[Similarity | None] | None = None,
                          on_refine_step: Callable[[int, torch.Tensor], None] | None = None) -> WarpField:
        """:meth:`estimate` from checked :meth:`encode` features (``fg`` of batch 1 or ``fc``'s).

        ``refine``: ``(content taps, geometry taps, steps, size)`` for :func:`warpstyle.geometry.refine.refine_field`.
        ``sims``: similarities already found (``fc``, and the content taps, then hold the content seen
        through them: the field is estimated and refined in that view, then composed with them);
        otherwise ``align="matches"`` fits them to ``fc`` and ``fg`` (:mod:`warpstyle.geometry.align`); sizes
        default to square. The network's field is composed with them.
        """
        if fg.shape[0] == 1 and fc.shape[0] > 1:
            fg = fg.expand(fc.shape[0], -1, -1, -1)
        fc, fg = fc.to(self.device), fg.to(self.device)
        c_hw, g_hw = content_size or (1, 1), geometry_size or (1, 1)

        def composed(field: torch.Tensor) -> torch.Tensor:
            return field if sims is None else compose_similarity(sims, field, c_hw, g_hw)

        if sims is not None:
            grid = self.regressor(fc, fg)  # in the aligned view; refined there too
        elif self.align_method(align) == "matches":
            sims = estimate_similarity(fc, fg, c_hw, g_hw)
            grid = compose_similarity(sims, self.regressor(align_features(fc, sims, c_hw, g_hw), fg), c_hw, g_hw)
            sims = None  # composed already; the matcher's refinement stays in the content's frame
        elif align:
            raise ValueError("align='search' needs the images: use Warper.estimate")
        else:
            grid = self.regressor(fc, fg)
        if refine is not None:
            c_obj, g_obj, steps, size = refine
            report = None
            if on_refine_step is not None:
                on_refine_step(0, composed(grid))
                report = lambda k, f: on_refine_step(k, composed(f))  # noqa: E731
            grid = refine_field(c_obj, g_obj, grid, steps=steps, size=size, on_step=report)
        return WarpField(composed(grid), geometry_size)

    @staticmethod
    def output_size(geometry_hw: tuple[int, int], longer: int) -> tuple[int, int]:
        """The warp's output frame: the geometry's aspect ratio at a longer side of ``longer`` px.

        Example:
            >>> Warper.output_size((300, 200), 512)
            (512, 341)
        """
        return fit_longer(geometry_hw, longer)

    @staticmethod
    def output_size_for(image_hw: tuple[int, int], field: WarpField) -> tuple[int, int]:
        """Default output size of :meth:`apply`: the geometry's aspect ratio at the image's longer side
        (the image's own size for a field without ``output_size``)."""
        if field.output_size is None:
            return int(image_hw[0]), int(image_hw[1])
        return Warper.output_size(field.output_size, max(image_hw))

    @staticmethod
    def check_options(
        *,
        strength: float = 1.0,
        smoothness: float = DEFAULT_SMOOTHNESS,
        size: tuple[int, int] | None = None,
        padding: PaddingMode = "reflection",
    ) -> tuple[int, int] | None:
        """Check the warp options once (the warper's own policy); returns ``size`` as ints, or None.

        :meth:`apply` calls this; the pipeline calls it at its public boundary, before any work.
        """
        check_range(strength, "strength", 0.0, 4.0)
        check_range(smoothness, "smoothness", 0.0, 16.0)
        if padding not in ("reflection", "border"):
            raise ValueError(f"padding must be 'reflection' or 'border'; got {padding!r}")
        if size is None:
            return None
        try:
            h, w = (operator.index(v) for v in size)
        except (TypeError, ValueError):
            h = w = 0
        if h <= 0 or w <= 0:
            raise ValueError(f"size must be (H, W) with positive ints, or None; got {size!r}")
        return h, w

    @staticmethod
    def apply(
        image: torch.Tensor,
        field: WarpField,
        *,
        strength: float = 1.0,
        smoothness: float = DEFAULT_SMOOTHNESS,
        size: tuple[int, int] | None = None,
        padding: PaddingMode = "reflection",
    ) -> torch.Tensor:
        """Warp ``image`` ``(B, 3, H, W)`` by ``field`` at full resolution.

        Args:
            strength: scales the displacement from identity (0 is no warp: the content unchanged,
                resized to ``size`` when one is given; 1 is the estimated warp; values above 1
                exaggerate it).
            smoothness: Gaussian sigma in field cells applied before upsampling (0: none).
            size: output ``(H, W)``; default :meth:`output_size_for` (the geometry's aspect ratio
                at the image's longer side).
            padding: ``"reflection"`` or ``"border"`` for samples beyond the content.

        Returns:
            ``(B, 3, H_out, W_out)``.
        """
        image = as_image_batch(image, "image")
        if not isinstance(field, WarpField):
            raise TypeError(f"field must be a WarpField (wrap a (B, H, W, 2) grid as WarpField(grid)); "
                            f"got {type(field).__name__}")
        size = Warper.check_options(strength=strength, smoothness=smoothness, size=size, padding=padding)
        if field.grid.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"field must have batch 1 or image's batch ({image.shape[0]}); got {field.grid.shape[0]}")
        return Warper._apply_checked(image, field, strength, smoothness, size, padding)

    @staticmethod
    def _apply_checked(image: torch.Tensor, field: WarpField, strength: float, smoothness: float,
                       size: tuple[int, int] | None, padding: PaddingMode) -> torch.Tensor:
        """:meth:`apply` of a checked image, field and options (:meth:`check_options`)."""
        if strength == 0.0 and size is None:
            return image
        out_hw = size or Warper.output_size_for(tuple(image.shape[-2:]), field)
        if strength == 0.0:
            # No warp: the content in the output frame, resized with antialiasing (the identity
            # field's bilinear sampling alone would alias when it shrinks).
            image = resize_exact(image, out_hw)
        return apply_warp(image, Warper.applied_field(field, strength=strength, smoothness=smoothness, size=out_hw).grid,
                          padding=padding)

    @staticmethod
    def applied_field(field: WarpField, *, strength: float, smoothness: float, size: tuple[int, int]) -> WarpField:
        """The field :meth:`apply` samples with: smoothed, scaled, then resized to the output ``size = (H, W)``.

        Applying it again with ``strength=1, smoothness=0, size=size`` reproduces the same warp
        exactly (each step is then a no-op); this is what ``warpstyle run --save-field`` writes.
        """
        f = field.smoothed(smoothness).scaled(strength).resized(size)
        return WarpField(f.grid, tuple(size))

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        *,
        encoder: VGGEncoder | None = None,
        vgg: str | Path | None = None,
        device: torch.device | str | None = None,
    ) -> Warper:
        """Load the bundled warper (``path=None``), a weights file, or a legacy state_dict / training checkpoint.

        A weights file names its architecture (``WarpRegressor.config()``) in its metadata, and the
        tensors are checked against it before the regressor is built. Legacy ``.pt`` files carry no
        config, so theirs is inferred from the first conv's shape and then checked the same way.

        Args:
            encoder: reuse this encoder (e.g. the styler's) instead of loading one.
            vgg: VGG weights for a new encoder (default: the bundled Oxford VGG-19).
        """
        device = check_device(device)
        source = Path(path) if path is not None else bundled_weights("warpstyle", BUNDLED_WARPER)
        state, meta = load_weights(source, "WarpRegressor", _regressor_shapes, describe=_DESCRIBE)
        if meta is not None:
            config = meta.config  # the file says what it is: no guessing
        else:  # legacy .pt state_dict or training checkpoint: infer, then check every shape
            state = {k.removeprefix("module.").removeprefix("regressor."): v for k, v in state.items()
                     if not k.startswith("encoder.")}
            try:
                config = _legacy_config(state)
                expected = _regressor_shapes(config)
            except ValueError as e:
                raise CheckpointError(source, f"not {_DESCRIBE}: {e}") from None
            check_state(state, expected, source, _DESCRIBE)
        reg = WarpRegressor(**config)
        reg.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        enc = encoder if encoder is not None else VGGEncoder.from_pretrained(vgg)
        warper = cls(enc, reg).eval()
        warper.requires_grad_(False)
        enc.to(memory_format=torch.channels_last)  # faster on CPU; see Styler.from_pretrained
        return warper.to(device) if device is not None else warper
