"""Warper: the geometric stage. ``estimate(content, geometry) -> WarpField``; ``apply(image, field)``."""

from __future__ import annotations

import contextlib
import operator
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from adain.base.checkpoint import load_error_detail, load_state_dict_file
from adain.base.checks import check_device, check_range, check_shape
from adain.base.image import as_image_batch
from adain.base.errors import CheckpointError
from adain.base.image import ImageLike
from adain.base.vgg import VGGEncoder

from .correlation import l2_normalize_features
from .field import WarpField
from .regressor import WarpRegressor
from .warp import PaddingMode, apply_warp

__all__ = ["Warper", "BUNDLED_WARPER", "DEFAULT_SMOOTHNESS"]

BUNDLED_WARPER = "warper.pt"
#: Default Gaussian smoothing of the field, in cells of the 16x16 feature grid.
DEFAULT_SMOOTHNESS = 0.75
FEATURE_SIZE = 256


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
        x = as_image_batch(image, name).to(self.device)
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
    ) -> WarpField:
        """Estimate the field that gives ``content`` the shapes of ``geometry``.

        Args:
            content: ``(B, 3, H, W)`` in [0, 1], or a path / PIL image / array (or None with
                ``content_features``).
            geometry: ``(B, 3, H2, W2)`` in [0, 1] (B equal to content's, or 1), or a path etc.
                (or None with ``geometry_features`` and ``geometry_size``).
            bf16: run the VGG features under bf16 autocast (faster on CPU).
            content_features, geometry_features: precomputed :meth:`encode` outputs.
            geometry_size: ``(H2, W2)`` of the geometry when only its features are given.

        Returns:
            WarpField with a ``(B, 16, 16, 2)`` grid and ``output_size`` = geometry's ``(H2, W2)``.
        """
        if content_features is None:
            if content is None:
                raise ValueError("content must be given (or content_features)")
            content_features = self.encode(content, bf16=bf16, name="content")
        if geometry_features is None:
            if geometry is None:
                raise ValueError("geometry must be given (or geometry_features)")
            g = as_image_batch(geometry, "geometry")
            geometry_size = (int(g.shape[-2]), int(g.shape[-1]))
            geometry_features = self.encode(g, bf16=bf16, name="geometry")
        n = self.regressor.grid_size
        check_shape(content_features, "content_features", ("B", "C", n, n))
        check_shape(geometry_features, "geometry_features", ("B", "C", n, n))
        fc, fg = content_features, geometry_features
        if fg.shape[0] not in (1, fc.shape[0]):
            raise ValueError(f"geometry must have batch 1 or content's batch ({fc.shape[0]}); got {fg.shape[0]}")
        if fg.shape[0] == 1 and fc.shape[0] > 1:
            fg = fg.expand(fc.shape[0], -1, -1, -1)
        grid = self.regressor(fc.to(self.device), fg.to(self.device))
        return WarpField(grid, geometry_size)

    @staticmethod
    def output_size_for(image_hw: tuple[int, int], field: WarpField) -> tuple[int, int]:
        """Default output size: the geometry's aspect ratio at the image's longer side."""
        h, w = image_hw
        if field.output_size is None:
            return h, w
        gh, gw = field.output_size
        longer = max(h, w)
        s = longer / max(gh, gw)
        return max(1, round(gh * s)), max(1, round(gw * s))

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
            strength: scales the displacement from identity (0 returns the content unchanged
                at its own size; 1 is the estimated warp; values above 1 exaggerate it).
            smoothness: Gaussian sigma in field cells applied before upsampling (0: none).
            size: output ``(H, W)``; default: the geometry's aspect ratio at the image's longer side.
            padding: ``"reflection"`` or ``"border"`` for samples beyond the content.

        Returns:
            ``(B, 3, H_out, W_out)``.
        """
        image = as_image_batch(image, "image")
        if not isinstance(field, WarpField):
            raise TypeError(f"field must be a WarpField (wrap a (B, H, W, 2) grid as WarpField(grid)); "
                            f"got {type(field).__name__}")
        check_range(strength, "strength", 0.0, 4.0)
        check_range(smoothness, "smoothness", 0.0, 16.0)
        if size is not None:
            try:
                h, w = (operator.index(v) for v in size)
            except (TypeError, ValueError):
                h = w = 0
            if h <= 0 or w <= 0:
                raise ValueError(f"size must be (H, W) with positive ints, or None; got {size!r}")
            size = (h, w)
        if field.grid.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"field must have batch 1 or image's batch ({image.shape[0]}); got {field.grid.shape[0]}")
        if strength == 0.0 and size is None:
            return image
        out_hw = size or Warper.output_size_for(tuple(image.shape[-2:]), field)
        f = field.smoothed(smoothness).scaled(strength).resized(out_hw)
        return apply_warp(image, f.grid, padding=padding)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        *,
        encoder: VGGEncoder | None = None,
        vgg: str | Path | None = None,
        device: torch.device | str | None = None,
    ) -> Warper:
        """Load the bundled warper (``path=None``) or a state_dict / training checkpoint by path.

        Args:
            encoder: reuse this encoder (e.g. the styler's) instead of loading one.
            vgg: VGG weights for a new encoder (default: the bundled Oxford VGG-19).
        """
        device = check_device(device)
        if path is None:
            ref = resources.files("warpstyle") / "weights" / BUNDLED_WARPER
            with resources.as_file(ref) as p:
                if not p.is_file():
                    raise CheckpointError(p, "the bundled warper is missing from this installation")
                state, source = load_state_dict_file(p), str(p)
        else:
            state, source = load_state_dict_file(path), str(path)
        state = {k.removeprefix("module.").removeprefix("regressor."): v.float() for k, v in state.items()
                 if not k.startswith("encoder.")}
        try:
            heads = sorted({int(k.split(".")[1]) for k in state if k.startswith("heads.")})
            first = state["heads.0.body.0.weight"]
            grid = int(round((first.shape[1] - 2) ** 0.5))
            reg = WarpRegressor(grid_size=grid, hidden=int(first.shape[0]), refine_steps=len(heads) - 1)
            reg.load_state_dict(state, strict=True)
        except (KeyError, RuntimeError, IndexError, ValueError) as e:
            raise CheckpointError(source, f"not a warper state_dict (expected 'heads.N...' keys): {load_error_detail(e)}") from None
        enc = encoder if encoder is not None else VGGEncoder.from_pretrained(vgg)
        warper = cls(enc, reg).eval()
        warper.requires_grad_(False)
        enc.to(memory_format=torch.channels_last)  # faster on CPU; see Styler.from_pretrained
        return warper.to(device) if device is not None else warper
