"""Warper: the geometric stage. ``estimate(content, geometry) -> WarpField``; ``apply(image, field)``.

:meth:`Warper.estimate` is the one route from a pair of images to a field, used by the pipeline,
the CLI, the demo, evaluation and the API alike. It reads top to bottom as its steps, each owned
by a module of this room:

1. check the inputs, once (:meth:`Warper._pair`);
2. start a field: a given prior, semantic matching (:mod:`~warpstyle.geometry.matching`, the
   default), or the network (:mod:`~warpstyle.geometry.regressor`, after an optional global
   alignment from :mod:`~warpstyle.geometry.align` or :mod:`~warpstyle.geometry.scale_search`);
3. refine it for this pair on the feature-matching objective (:mod:`~warpstyle.geometry.refine`);
4. compose it with the global alignment, so it maps the output frame into the content.

Applying a field (smoothing, strength, resizing, sampling) is :meth:`Warper.apply`, built on
:mod:`warpstyle.fields`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from adain.base.checks import check_device, check_range, check_shape
from adain.base.errors import CheckpointError
from adain.base.runtime import bf16_autocast
from adain.base.image import ImageLike, as_image_batch, fit_longer, resize_exact, resize_longer
from adain.base.encoder.vgg import VGGEncoder
from adain.base.storage.weights import bundled_weights, check_state, load_weights, weights_model

from warpstyle.fields.field import WarpField
from warpstyle.fields.warp import DEFAULT_PADDING, PADDING_MODES, PaddingMode, apply_warp, identity_grid, resize_field
from warpstyle.geometry.align import Similarity, align_features, check_hw, compose_similarity, estimate_similarity
from warpstyle.geometry.correlation import l2_normalize_features
from warpstyle.geometry.objective import objective_features
from warpstyle.geometry.refine import REFINE_SIZE, refine_field
from warpstyle.geometry.registry import DEFAULT_ARCHITECTURE, Architecture, get_architecture
from warpstyle.geometry.scale_search import search_similarity

__all__ = ["Warper", "BUNDLED_WARPER", "ALIGN_METHODS", "DEFAULT_ALIGN", "DEFAULT_SMOOTHNESS", "METHODS",
           "DEFAULT_METHOD", "Method"]

log = logging.getLogger(__name__)

BUNDLED_WARPER = "warper.safetensors"
#: Default Gaussian smoothing of the field, in cells of the 16x16 feature grid.
DEFAULT_SMOOTHNESS = 0.75
#: How a field is estimated: ``"match"``, semantic matching (:mod:`warpstyle.geometry.matching`);
#: ``"network"``, the feed-forward correlation network (fast, less exact).
Method = Literal["match", "network"]
METHODS: tuple[str, ...] = ("match", "network")
DEFAULT_METHOD: Method = "match"
#: Global similarity alignment before the network's field (:mod:`warpstyle.geometry.scale_search`).
DEFAULT_ALIGN = False
#: ``align`` values: True is ``"search"`` (:mod:`warpstyle.geometry.scale_search`, needs the images);
#: ``"matches"`` fits the similarity to feature matches (:mod:`warpstyle.geometry.align`; fast, features suffice).
ALIGN_METHODS = ("search", "matches")
_DESCRIBE = "a warper state_dict (expected 'heads.N...' keys)"
#: What :meth:`Warper.encode` returns: pool4 features for the network, VGG taps at each matching size for matching.
Encoding = Union[torch.Tensor, Sequence[Mapping[str, torch.Tensor]]]


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


@dataclasses.dataclass
class _Pair:
    """The checked inputs of one :meth:`Warper.estimate` (images ``(B, 3, H, W)`` on the warper's device)."""

    content: torch.Tensor | None
    geometry: torch.Tensor | None
    content_features: Encoding | None
    geometry_features: Encoding | None
    content_size: tuple[int, int] | None
    geometry_size: tuple[int, int] | None
    method: str
    align: str | None
    refine_steps: int
    prior: torch.Tensor | None
    fallback_geometry: torch.Tensor | None = None  # the network's geometry features, for matching's fallback

    @property
    def batch(self) -> int:
        if self.content is not None:
            return int(self.content.shape[0])
        if self.prior is not None:
            return int(self.prior.shape[0])
        if not isinstance(self.content_features, torch.Tensor):
            return 1  # matching's taps describe one image
        return int(self.content_features.shape[0])


class Warper(nn.Module):
    """The geometric stage: a field that gives the content the geometry's shapes, and its application.

    Args:
        encoder: the VGG encoder (shared with the styler in a pipeline).
        regressor: the field network, of a registered architecture (:mod:`warpstyle.geometry.registry`).

    Example:
        >>> warper = Warper(VGGEncoder(), WarpRegressor())  # untrained: identity field
        >>> field = warper.estimate(torch.rand(1, 3, 64, 48), torch.rand(1, 3, 40, 60), method="network")
        >>> field.grid.shape
        torch.Size([1, 16, 16, 2])
    """

    def __init__(self, encoder: VGGEncoder, regressor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.regressor = regressor
        self.architecture: Architecture = get_architecture(type(regressor).__name__)

    @property
    def device(self) -> torch.device:
        return next(self.regressor.parameters()).device

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The network's input: L2-normalised features ``(B, C, G, G)`` of ``(B, 3, H, W)`` resized square."""
        side = self.architecture.feature_size
        x = F.interpolate(image, size=(side, side), mode="bilinear", align_corners=False,
                          antialias=True).contiguous(memory_format=torch.channels_last)
        tap = self.architecture.feature_tap
        return l2_normalize_features(self.encoder(x, taps=(tap,))[tap])

    def forward(self, content: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """The network's field grid ``(B, G, G, 2)`` for content and geometry batches ``(B, 3, H, W)``."""
        return self.regressor(self.features(content), self.features(geometry))

    @torch.no_grad()
    def encode(self, image: ImageLike, *, method: Method = "network", bf16: bool = False,
               name: str = "image") -> Encoding:
        """Features of an image for :meth:`estimate` with ``method``, reusable across calls (one geometry, many contents).

        Args:
            image: ``(B, 3, H, W)`` / ``(3, H, W)`` in [0, 1], or a path / PIL image / array
                (batch 1 for ``"match"``).
            method: ``"network"``: ``(B, 512, 16, 16)`` L2-normalised pool4 features, float32;
                ``"match"``: the matcher's VGG taps at each of its sizes
                (:func:`~warpstyle.geometry.matching.matching_features`).
            bf16: bf16 autocast for the VGG features.
            name: the argument named in error messages.
        """
        x = as_image_batch(image, name)
        if self.method(method) == "network":
            return self._pool4(x, bf16)
        if x.shape[0] != 1:
            raise ValueError(f"{name} must be a single image for method='match'; got batch of {x.shape[0]}")
        return self._match_taps(x, bf16)

    def _pool4(self, x: torch.Tensor, bf16: bool) -> torch.Tensor:
        """The network's features of a checked ``(B, 3, H, W)`` batch, float32 on the warper's device."""
        x = x.to(self.device)
        with torch.no_grad(), bf16_autocast(self.device, bf16):
            return self.features(x).float()

    def _match_taps(self, x: torch.Tensor, bf16: bool) -> list[dict[str, torch.Tensor]]:
        """The matcher's taps of a checked ``(1, 3, H, W)`` image at each of its sizes, float32."""
        from warpstyle.geometry.matching import matching_features  # scipy loads only when matching is used

        with torch.no_grad(), bf16_autocast(self.device, bf16):
            return [{k: v.float() for k, v in taps.items()} for taps in matching_features(self.encoder, x.to(self.device))]

    @torch.no_grad()
    def estimate(
        self,
        content: ImageLike | None,
        geometry: ImageLike | None,
        *,
        method: Method | None = None,
        align: bool | str = DEFAULT_ALIGN,
        refine_steps: int = 0,
        refine_size: int = REFINE_SIZE,
        prior: WarpField | None = None,
        bf16: bool = False,
        content_features: Encoding | None = None,
        geometry_features: Encoding | None = None,
        content_size: tuple[int, int] | None = None,
        geometry_size: tuple[int, int] | None = None,
        on_refine_step: Callable[[int, torch.Tensor], None] | None = None,
    ) -> WarpField:
        """Estimate the field that gives ``content`` the shapes of ``geometry``.

        Args:
            content: ``(B, 3, H, W)`` in [0, 1], or a path / PIL image / array (or None with
                ``content_features``).
            geometry: ``(B, 3, H2, W2)`` in [0, 1] (B equal to content's, or 1), or a path etc.
                (or None with ``geometry_features`` and ``geometry_size``).
            method: ``"match"``: semantic matching (VGG best-buddy matches, a robust similarity and
                a smooth non-rigid fit; :mod:`warpstyle.geometry.matching`); where it is not
                confident, the network's field, said in the log. ``"network"``: the feed-forward
                correlation network (faster). None: matching, or the network where ``align`` is
                asked or network features (tensors from ``encode(..., method="network")``) are given.
            align: network only: first find a global similarity between the two objects, estimate
                the network's field against the content seen through it, and compose the two.
                True or ``"search"``: a multi-scale search (:mod:`warpstyle.geometry.scale_search`;
                needs both images, about 18 VGG passes); ``"matches"``: a similarity fitted to
                mutual pool4 matches (:mod:`warpstyle.geometry.align`; features suffice).
                Matching finds its own similarity, so it takes no ``align``.
            refine_steps: Adam steps refining the field for this pair on the feature-matching
                objective (:mod:`warpstyle.geometry.refine`), from the estimate; 0 (default): none.
                Needs both images.
            refine_size: side of the refined field.
            prior: start from this field instead of estimating one (e.g. the previous frame's of a
                clip); batch 1 or the content's. Refinement, when asked, continues from it.
            bf16: run the VGG features under bf16 autocast (faster on a CPU with native bf16).
            content_features, geometry_features: precomputed :meth:`encode` outputs for ``method``.
            content_size, geometry_size: ``(H, W)`` the images stand for (None: their own sizes;
                needed when only features are given).
            on_refine_step: with ``refine_steps``, called as ``on_refine_step(step, grid)`` with the
                starting field (step 0) and after each step, each as this method would return it.

        Returns:
            WarpField, backward from the output (geometry) frame into the content, with
            ``output_size`` = the geometry's ``(H2, W2)``: ``(B, 16, 16, 2)`` from the network,
            ``(B, 64, 64, 2)`` from matching, ``refine_size`` square when refined, the prior's size
            from a prior.
        """
        pair = self._pair(content, geometry, method, align, refine_steps, prior, content_features,
                          geometry_features, content_size, geometry_size)
        return self._estimate(pair, bf16, refine_size, on_refine_step)

    def _estimate_trusted(self, content: torch.Tensor, geometry: torch.Tensor, *, bf16: bool,
                          **options: object) -> WarpField:
        """:meth:`estimate` of images a caller checked at its own boundary (the pipeline): the same
        steps, without checking the two images a second time."""
        refine_size = int(options.pop("refine_size", REFINE_SIZE))  # type: ignore[call-overload]
        on_step = options.pop("on_refine_step", None)
        fallback = options.pop("fallback_features", None)
        pair = self._pair(content, geometry, options.pop("method", None), options.pop("align", DEFAULT_ALIGN),  # type: ignore[arg-type]
                          options.pop("refine_steps", 0), options.pop("prior", None),  # type: ignore[arg-type]
                          None, options.pop("geometry_features", None), None, None, trusted=True)  # type: ignore[arg-type]
        pair.fallback_geometry = fallback  # type: ignore[assignment]
        if options:
            raise TypeError(f"unexpected options {sorted(options)}")
        return self._estimate(pair, bf16, refine_size, on_step)  # type: ignore[arg-type]

    @torch.no_grad()
    def _estimate(self, pair: _Pair, bf16: bool, refine_size: int,
                  on_refine_step: Callable[[int, torch.Tensor], None] | None) -> WarpField:
        """Steps 2-4 of :meth:`estimate` on checked inputs."""
        taps = self._objective_taps(pair, bf16) if pair.refine_steps else None
        grid, sims, taps = self._start(pair, taps, bf16)
        if taps is not None:
            grid = self._refine(pair, grid, sims, taps, refine_size, on_refine_step)
        return WarpField(self._compose(pair, grid, sims), pair.geometry_size)

    @staticmethod
    def method(method: str) -> str:
        """``method`` checked against :data:`METHODS` (ValueError naming it)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
        return method

    @staticmethod
    def align_method(align: bool | str) -> str | None:
        """``align`` as ``"search"``, ``"matches"`` or None (off); ValueError naming it for an unknown string."""
        if isinstance(align, str):
            if align not in ALIGN_METHODS:
                raise ValueError(f"align must be True, False or one of {list(ALIGN_METHODS)}; got {align!r}")
            return align
        return "search" if align else None

    def _pair(self, content: ImageLike | None, geometry: ImageLike | None, method: str | None, align: bool | str,
              refine_steps: int, prior: WarpField | None, content_features: Encoding | None,
              geometry_features: Encoding | None, content_size: tuple[int, int] | None,
              geometry_size: tuple[int, int] | None, *, trusted: bool = False) -> _Pair:
        """Step 1: every input of :meth:`estimate` checked, once; sizes default to the images' own.

        ``trusted``: the images are ``(B, 3, H, W)`` tensors its caller has checked already."""
        for hw, label in ((content_size, "content_size"), (geometry_size, "geometry_size")):
            if hw is not None:
                check_hw(hw, label)
        how = self.align_method(align)
        if method is None:  # the network where only it can serve what was asked
            given = (content_features, geometry_features)
            method = "network" if how is not None or any(isinstance(f, torch.Tensor) for f in given) else DEFAULT_METHOD
        method = self.method(method)
        if method == "match" and how is not None:
            raise ValueError("align applies to method='network' only: semantic matching finds its own similarity")
        if isinstance(refine_steps, bool) or int(refine_steps) != refine_steps or refine_steps < 0:
            raise ValueError(f"refine_steps must be a non-negative integer; got {refine_steps!r}")
        if how == "search" and (content is None or geometry is None):
            raise ValueError("align='search' needs the content and geometry images, not only their features "
                             "(align='matches' works from features)")
        if refine_steps and (content is None or geometry is None):
            raise ValueError("refine_steps > 0 needs the content and geometry images, not only their features")
        load = (lambda x, name: x) if trusted else as_image_batch  # noqa: E731
        c = None if content is None else load(content, "content").to(self.device)
        g = None if geometry is None else load(geometry, "geometry").to(self.device)
        content_size = content_size or (None if c is None else (int(c.shape[-2]), int(c.shape[-1])))
        geometry_size = geometry_size or (None if g is None else (int(g.shape[-2]), int(g.shape[-1])))
        grid = None if prior is None else self._check_prior(prior)
        if grid is None:
            self._check_features(method, c, g, content_features, geometry_features, content_size, geometry_size)
        pair = _Pair(c, g, content_features, geometry_features, content_size, geometry_size, method, how,
                     int(refine_steps), grid)
        if grid is not None and grid.shape[0] not in (1, pair.batch) and c is not None:
            raise ValueError(f"prior must have batch 1 or content's batch ({pair.batch}); got {grid.shape[0]}")
        return pair

    def _check_prior(self, prior: WarpField) -> torch.Tensor:
        if not isinstance(prior, WarpField):
            raise TypeError(f"prior must be a WarpField; got {type(prior).__name__}")
        return prior.grid.to(self.device, torch.float32)

    def _check_features(self, method: str, c: torch.Tensor | None, g: torch.Tensor | None, cf: Encoding | None,
                        gf: Encoding | None, content_size: tuple[int, int] | None,
                        geometry_size: tuple[int, int] | None) -> None:
        """The images or features each method needs, of matching batches."""
        if c is None and cf is None:
            raise ValueError("content must be given (or content_features)")
        if g is None and gf is None:
            raise ValueError("geometry must be given (or geometry_features)")
        if method == "match":
            for f, label in ((cf, "content_features"), (gf, "geometry_features")):
                if f is not None and not (isinstance(f, (list, tuple)) and f and all(isinstance(t, Mapping) for t in f)):
                    raise TypeError(f"{label} must be the taps Warper.encode(..., method='match') returns; "
                                    f"got {type(f).__name__}")
            if content_size is None or geometry_size is None:
                raise ValueError("method='match' needs content_size and geometry_size with features alone")
            if c is None and g is not None and g.shape[0] > 1:
                raise ValueError(f"geometry must be one image with content_features for method='match' "
                                 f"(they describe one content); got a batch of {g.shape[0]}")
            if c is None or c.shape[0] == 1:
                return
            if cf is not None:
                raise ValueError("content_features for method='match' describe one image; got a content batch")
        else:
            n = self.regressor.grid_size
            for f, label in ((cf, "content_features"), (gf, "geometry_features")):
                if f is not None:
                    check_shape(f, label, ("B", "C", n, n))
            if c is not None and cf is not None and cf.shape[0] != c.shape[0]:
                raise ValueError(f"content_features must have the content's batch ({c.shape[0]}); got {cf.shape[0]}")
        batch = int(c.shape[0]) if c is not None else int(cf.shape[0])  # type: ignore[union-attr]
        for x, label in ((g, "geometry"), (gf if isinstance(gf, torch.Tensor) else None, "geometry")):
            if x is not None and x.shape[0] not in (1, batch):
                raise ValueError(f"{label} must have batch 1 or content's batch ({batch}); got {x.shape[0]}")

    def _objective_taps(self, pair: _Pair, bf16: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The refinement's taps of both images; one encoder pass each also gives the network's pool4."""
        with torch.no_grad(), bf16_autocast(self.device, bf16):
            c_obj = objective_features(self.encoder, pair.content)  # type: ignore[arg-type]
            g_obj = objective_features(self.encoder, pair.geometry)  # type: ignore[arg-type]
        if pair.method == "network":
            pair.content_features = c_obj["pool4"] if pair.content_features is None else pair.content_features
            pair.geometry_features = g_obj["pool4"] if pair.geometry_features is None else pair.geometry_features
        return c_obj, g_obj

    def _start(self, pair: _Pair, taps: tuple[dict, dict] | None, bf16: bool
               ) -> tuple[torch.Tensor, list[Similarity | None] | None, tuple[dict, dict] | None]:
        """Step 2: the starting field ``(B, N, N, 2)``, the similarities it is still to be composed with,
        and the refinement's taps (of the content seen through them, when there are any)."""
        if pair.prior is not None:
            return pair.prior, None, taps
        if pair.method == "match":
            return self._match(pair, bf16), None, taps
        return self._network(pair, taps, bf16)

    def _match(self, pair: _Pair, bf16: bool) -> torch.Tensor:
        """Semantic matching per batch element; the network's field where the matcher is not confident."""
        from warpstyle.geometry.matching import match_field  # scipy loads only when matching is used

        c_hw, g_hw = pair.content_size, pair.geometry_size
        gt = pair.geometry_features
        grids: list[torch.Tensor] = []
        network = None
        for k in range(pair.batch):
            ct = pair.content_features or self._match_taps(pair.content[k:k + 1], bf16)  # type: ignore[index]
            if gt is None or (pair.geometry is not None and pair.geometry.shape[0] > 1):
                gt = self._match_taps(pair.geometry[k:k + 1] if pair.geometry.shape[0] > 1 else pair.geometry, bf16)  # type: ignore[union-attr,index]
            found = match_field(ct, gt, c_hw, g_hw)  # type: ignore[arg-type]
            if found.confident:
                grids.append(found.grid.to(self.device))
                continue
            log.warning("semantic matching is not confident (%s): using the network's field", found.reason)
            if network is None:
                network = self._network(dataclasses.replace(pair, content_features=None, method="network",
                                                            geometry_features=pair.fallback_geometry), None, bf16)[0]
            grids.append(resize_field(network[k:k + 1], tuple(found.grid.shape[1:3])))
        return torch.cat(grids)

    def _network(self, pair: _Pair, taps: tuple[dict, dict] | None, bf16: bool
                 ) -> tuple[torch.Tensor, list[Similarity | None] | None, tuple[dict, dict] | None]:
        """The network's field, after the global alignment ``pair.align`` asks for (see :meth:`_start`)."""
        # The search encodes the content seen through each similarity it finds; the plain features
        # are only needed where it finds none, so they wait for its answer.
        deferred = pair.content_features is None and pair.align == "search"
        fc = pair.content_features if pair.content_features is not None or deferred else self._pool4(pair.content, bf16)  # type: ignore[arg-type]
        fg = pair.geometry_features if pair.geometry_features is not None else self._pool4(pair.geometry, bf16)  # type: ignore[arg-type]
        sims = None
        if pair.align == "search":
            sims = self._search(pair, bf16)
            if deferred:
                fc = (self._pool4(pair.content, bf16) if any(s is None for s in sims) else  # type: ignore[arg-type]
                      torch.zeros(pair.batch, *fg.shape[1:], device=self.device))  # type: ignore[union-attr]
            c_obj, taps_view = self._aligned_features(pair.content, fc, sims, pair.content_size, pair.geometry_size,  # type: ignore[arg-type]
                                                      bf16, None if taps is None else taps[0])
            fc = c_obj
            taps = None if taps is None else (taps_view, taps[1])  # type: ignore[assignment]
        if fg.shape[0] == 1 and fc.shape[0] > 1:  # type: ignore[union-attr]
            fg = fg.expand(fc.shape[0], -1, -1, -1)  # type: ignore[union-attr]
        fc, fg = fc.to(self.device), fg.to(self.device)  # type: ignore[union-attr]
        if pair.align == "matches":
            c_hw, g_hw = pair.content_size or (1, 1), pair.geometry_size or (1, 1)
            found = estimate_similarity(fc, fg, c_hw, g_hw)
            # Composed here: the refinement of a "matches" field stays in the content's frame.
            return compose_similarity(found, self.regressor(align_features(fc, found, c_hw, g_hw), fg), c_hw, g_hw), None, taps
        return self.regressor(fc, fg), sims, taps

    def _search(self, pair: _Pair, bf16: bool) -> list[Similarity | None]:
        """The multi-scale search's similarity for each batch element (None where it finds none)."""
        c, g = pair.content, pair.geometry
        # Search at the stated aspect ratios (images may come resized, e.g. squared for a batch).
        cs, gs = (x if (want := fit_longer(hw, max(x.shape[-2:]))) == tuple(x.shape[-2:]) else resize_exact(x, want)  # type: ignore[union-attr,arg-type]
                  for x, hw in ((c, pair.content_size), (g, pair.geometry_size)))
        with torch.no_grad(), bf16_autocast(self.device, bf16):
            return [search_similarity(self.encoder, cs[k:k + 1], gs[k:k + 1] if gs.shape[0] > 1 else gs)
                    for k in range(pair.batch)]

    def _refine(self, pair: _Pair, grid: torch.Tensor, sims: list[Similarity | None] | None,
                taps: tuple[dict, dict], size: int, on_step: Callable[[int, torch.Tensor], None] | None) -> torch.Tensor:
        """Step 3: :func:`~warpstyle.geometry.refine.refine_field` from ``grid``, in the view it was estimated in."""
        report = None
        if on_step is not None:
            on_step(0, self._compose(pair, grid, sims))
            report = lambda k, f: on_step(k, self._compose(pair, f, sims))  # noqa: E731
        return refine_field(taps[0], taps[1], grid, steps=pair.refine_steps, size=size, on_step=report)

    @staticmethod
    def _compose(pair: _Pair, grid: torch.Tensor, sims: list[Similarity | None] | None) -> torch.Tensor:
        """Step 4: a field of the aligned view composed with its similarities (identity without any)."""
        if sims is None:
            return grid
        return compose_similarity(sims, grid, pair.content_size or (1, 1), pair.geometry_size or (1, 1))

    def _aligned_features(self, content: torch.Tensor, features: torch.Tensor, sims: list[Similarity | None],
                          content_hw: tuple[int, int], geometry_hw: tuple[int, int], bf16: bool,
                          taps: dict[str, torch.Tensor] | None = None
                          ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """pool4 features of each content seen through its similarity (re-encoded: a zoom needs detail
        the 16x16 map does not hold), and the refinement's ``taps`` of that view when given; batch
        elements without a similarity keep ``features`` and their ``taps``. The view is padded by
        reflection where the similarity maps beyond the content (at most the search's frame overshoot),
        as :meth:`apply` pads the image by default."""
        n = self.architecture.feature_size
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
                out[k] = self._pool4(seen, bf16)[0].to(out.device)
                continue
            with torch.no_grad(), bf16_autocast(self.device, bf16):
                view = objective_features(self.encoder, seen.to(self.device), tuple(taps))
            for name, v in view.items():
                taps[name][k] = v[0].to(taps[name].device)
            out[k] = view["pool4"][0].to(out.device)  # the refinement's taps include the network's pool4
        return out, taps

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
        padding: PaddingMode = DEFAULT_PADDING,
    ) -> tuple[int, int] | None:
        """Check the warp options once (the warper's own policy); returns ``size`` as ints, or None.

        :meth:`apply` calls this; the pipeline calls it at its public boundary, before any work.
        """
        check_range(strength, "strength", 0.0, 4.0)
        check_range(smoothness, "smoothness", 0.0, 16.0)
        if padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {list(PADDING_MODES)}; got {padding!r}")
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
        padding: PaddingMode = DEFAULT_PADDING,
    ) -> torch.Tensor:
        """Warp ``image`` ``(B, 3, H, W)`` by ``field`` at full resolution.

        Args:
            strength: scales the displacement from identity (0 is no warp: the content unchanged,
                resized to ``size`` when one is given; 1 is the estimated warp; values above 1
                exaggerate it).
            smoothness: Gaussian sigma in field cells applied before upsampling (0: none).
            size: output ``(H, W)``; default :meth:`output_size_for` (the geometry's aspect ratio
                at the image's longer side).
            padding: what fills samples beyond the content (:func:`~warpstyle.fields.warp.apply_warp`).

        Returns:
            ``(B, 3, H_out, W_out)``.
        """
        return Warper.apply_with_field(image, field, strength=strength, smoothness=smoothness, size=size,
                                       padding=padding)[0]

    @staticmethod
    def apply_with_field(
        image: torch.Tensor,
        field: WarpField,
        *,
        strength: float = 1.0,
        smoothness: float = DEFAULT_SMOOTHNESS,
        size: tuple[int, int] | None = None,
        padding: PaddingMode = DEFAULT_PADDING,
    ) -> tuple[torch.Tensor, WarpField]:
        """:meth:`apply`, also returning the field it sampled with (:meth:`applied_field`, at the output size)."""
        image = as_image_batch(image, "image")
        if not isinstance(field, WarpField):
            raise TypeError(f"field must be a WarpField (wrap a (B, H, W, 2) grid as WarpField(grid)); "
                            f"got {type(field).__name__}")
        size = Warper.check_options(strength=strength, smoothness=smoothness, size=size, padding=padding)
        if field.grid.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"field must have batch 1 or image's batch ({image.shape[0]}); got {field.grid.shape[0]}")
        return Warper._apply_trusted(image, field, strength, smoothness, size, padding)

    @staticmethod
    def _apply_trusted(image: torch.Tensor, field: WarpField, strength: float, smoothness: float,
               size: tuple[int, int] | None, padding: PaddingMode) -> tuple[torch.Tensor, WarpField]:
        """:meth:`apply_with_field` of an image and options its caller checked (:meth:`check_options`)."""
        out_hw = size or Warper.output_size_for(tuple(image.shape[-2:]), field)
        applied = Warper.applied_field(field, strength=strength, smoothness=smoothness, size=out_hw)
        if strength == 0.0 and size is None:
            return image, applied
        if strength == 0.0:
            # No warp: the content in the output frame, resized with antialiasing (the identity
            # field's bilinear sampling alone would alias when it shrinks).
            image = resize_exact(image, out_hw)
        return apply_warp(image, applied.grid, padding=padding), applied

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

        A weights file names its architecture (its ``model``, looked up in
        :mod:`warpstyle.geometry.registry`) and config in its metadata, and the tensors are checked
        against them before the network is built. Legacy ``.pt`` files carry no
        config, so theirs is inferred from the first conv's shape and then checked the same way.

        Args:
            encoder: reuse this encoder (e.g. the styler's) instead of loading one.
            vgg: VGG weights for a new encoder (default: the bundled Oxford VGG-19).
        """
        device = check_device(device)
        source = Path(path) if path is not None else bundled_weights("warpstyle", BUNDLED_WARPER)
        # The file names its architecture; a legacy .pt names none and is the design's network.
        named = weights_model(source)
        try:
            arch = DEFAULT_ARCHITECTURE if named is None else get_architecture(named)
        except ValueError as e:
            raise CheckpointError(source, f"not {_DESCRIBE}: {e}") from None
        state, meta = load_weights(source, arch.name, arch.shapes, describe=_DESCRIBE)
        if meta is not None:
            config = meta.config  # the file says what it is: no guessing
        else:  # legacy .pt state_dict or training checkpoint: infer, then check every shape
            state = {k.removeprefix("module.").removeprefix("regressor."): v for k, v in state.items()
                     if not k.startswith("encoder.")}
            try:
                config = _legacy_config(state)
                expected = arch.shapes(config)
            except ValueError as e:
                raise CheckpointError(source, f"not {_DESCRIBE}: {e}") from None
            check_state(state, expected, source, _DESCRIBE)
        reg = arch.build(**config)
        reg.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        enc = encoder if encoder is not None else VGGEncoder.from_pretrained(vgg)
        warper = cls(enc, reg).eval()
        warper.requires_grad_(False)
        enc.to(memory_format=torch.channels_last)  # faster on CPU; see Styler.from_pretrained
        return warper.to(device) if device is not None else warper
