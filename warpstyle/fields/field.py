"""WarpField: a backward warp field with I/O (.npy, Middlebury .flo), visualisation and a fold measure."""

from __future__ import annotations

import dataclasses
import logging
import operator
from pathlib import Path

import numpy as np
import torch

from adain.base.checks import check_shape
from adain.base.errors import FieldError
from adain.base.storage.files import atomic_path, input_file_problem

from warpstyle.fields.flow_io import MAX_FIELD_PIXELS, UNKNOWN_FLOW, flow_to_color, read_flo, write_flo
from warpstyle.fields.metrics import fold_fraction
from warpstyle.fields.warp import grid_to_pixel_flow, identity_grid, pixel_flow_to_grid, resize_field, scale_field, smooth_field

__all__ = ["WarpField"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WarpField:
    """A backward warp from the output (geometry) frame to the content.

    Convention:
        ``grid`` is ``(B, H, W, 2)``: normalised sampling coordinates in ``[-1, 1]`` of the content,
        ``(x, y)`` order, ``align_corners=False``, one entry per output pixel. Values outside
        ``[-1, 1]`` sample beyond the content (filled by reflection or border padding).

    Attributes:
        grid: the field.
        output_size: ``(H, W)`` of the geometry image it was estimated for (its aspect ratio is
            the natural aspect of the output), or None.

    Example:
        >>> f = WarpField.identity(16, 16)
        >>> float(f.fold_fraction()[0])
        0.0
    """

    grid: torch.Tensor
    output_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_shape(self.grid, "grid", ("B", "H", "W", 2))
        if not self.grid.is_floating_point():
            raise TypeError(f"grid must be a floating-point tensor; got dtype {self.grid.dtype}")
        if min(self.grid.shape[:3]) < 1:
            raise ValueError(f"grid must have B, H, W >= 1; got shape {tuple(self.grid.shape)}")
        if not bool(torch.isfinite(self.grid).all()):  # a NaN or infinite entry would give a flat image
            bad = int((~torch.isfinite(self.grid)).sum())
            raise ValueError(f"grid must be finite; got {bad} NaN or infinite value(s)")
        if self.output_size is not None:
            try:
                h, w = (operator.index(v) for v in self.output_size)
            except (TypeError, ValueError):
                h = w = 0
            if h <= 0 or w <= 0:
                raise ValueError(f"output_size must be (H, W) with positive ints, or None; got {self.output_size!r}")
            self.output_size = (h, w)

    @classmethod
    def identity(cls, height: int, width: int, batch: int = 1) -> WarpField:
        return cls(identity_grid(batch, height, width))

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the field."""
        return int(self.grid.shape[1]), int(self.grid.shape[2])

    def displacement(self) -> torch.Tensor:
        """``(B, H, W, 2)`` grid minus identity (normalised units)."""
        b, h, w, _ = self.grid.shape
        return self.grid - identity_grid(b, h, w, device=self.grid.device, dtype=self.grid.dtype)

    def resized(self, size: tuple[int, int]) -> WarpField:
        return WarpField(resize_field(self.grid, size), self.output_size)

    def smoothed(self, sigma: float) -> WarpField:
        """Gaussian-smooth the displacement (``sigma`` in field cells)."""
        return WarpField(smooth_field(self.grid, sigma), self.output_size)

    def scaled(self, strength: float) -> WarpField:
        """Scale the displacement from identity (0: identity)."""
        return WarpField(scale_field(self.grid, strength), self.output_size)

    def fold_fraction(self) -> torch.Tensor:
        """``(B,)`` share of pixels where the Jacobian determinant is not positive (folds)."""
        return fold_fraction(self.grid)

    def to_pixel_flow(self) -> np.ndarray:
        """``(H, W, 2)`` float32 pixel displacements of the first field, at the field's resolution."""
        return grid_to_pixel_flow(self.grid[:1].float())[0].cpu().numpy().astype(np.float32)

    def visualize(self, max_magnitude: float | None = None) -> np.ndarray:
        """Middlebury colour-wheel rendering ``(H, W, 3)`` uint8 of the first field."""
        return flow_to_color(self.to_pixel_flow(), max_magnitude)

    def save(self, path: str | Path) -> Path:
        """Save as ``.npy`` (the normalised grid, exact) or ``.flo`` (pixel displacement)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, self.grid[0].detach().cpu().numpy().astype(np.float32), allow_pickle=False)
        elif suffix == ".flo":
            write_flo(path, self.to_pixel_flow())
        else:
            raise ValueError(f"field path must end in .npy or .flo; got '{path.name}'")
        return path

    @classmethod
    def load(cls, path: str | Path) -> WarpField:
        """Load a field saved by :meth:`save`.

        ``.flo`` files follow Middlebury: a pixel whose flow is unknown (a component above 1e9 in
        magnitude, or NaN or infinite) has no displacement, i.e. it is treated as identity there.
        ``.npy`` files hold our normalised grid, which is always finite: NaN or infinite values
        are refused.

        Raises:
            FieldError: a missing, special, malformed or non-finite (``.npy``) field file, or
                an ``.npy`` header declaring more than 100 M pixels or more data than the file holds
                (checked before anything is allocated).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".flo", ".npy"):
            raise FieldError(path, "a field file must end in .npy or .flo")
        problem = input_file_problem(path)
        if problem is not None:
            raise FieldError(path, problem)
        if suffix == ".flo":
            flow = read_flo(path)
            unknown = ~np.isfinite(flow).all(axis=-1) | (np.abs(flow) > UNKNOWN_FLOW).any(axis=-1)
            if unknown.any():
                log.warning("'%s': %d of %d pixels have unknown flow; treated as no displacement",
                            path, int(unknown.sum()), unknown.size)
                flow[unknown] = 0.0
            return cls(pixel_flow_to_grid(torch.from_numpy(flow).unsqueeze(0)))
        try:
            # A memory map reads only the header: a tiny file declaring a huge shape fails here
            # ("mmap length is greater than file size") instead of allocating it.
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise FieldError(path, f"not a readable .npy field ({str(e)[:100]})") from None
        if arr.ndim != 3 or arr.shape[-1] != 2 or not np.issubdtype(arr.dtype, np.floating):
            raise FieldError(path, f"expected a float (H, W, 2) array; got {arr.dtype} {arr.shape}")
        if arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[0] * arr.shape[1] > MAX_FIELD_PIXELS:
            raise FieldError(path, f"implausible field size {arr.shape[1]}x{arr.shape[0]} (width x height)")
        grid = np.array(arr, dtype=np.float32)
        if not np.isfinite(grid).all():
            raise FieldError(path, f"the field holds {int((~np.isfinite(grid)).sum())} NaN or infinite value(s)")
        return cls(torch.from_numpy(grid).unsqueeze(0))
