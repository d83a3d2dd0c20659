"""PF-PASCAL keypoint pairs (Ham et al. 2016) in the standard layout, and keypoint metrics.

Layout (as distributed by Ham et al., with the pair CSVs of Rocco et al.'s weakalign / NC-Net)::

    ROOT/PF-dataset-PASCAL/JPEGImages/2007_000447.jpg
    ROOT/PF-dataset-PASCAL/Annotations/<class>/<image>.mat   (variable ``kps``: N x 2, NaN if absent)
    ROOT/train_pairs_pf_pascal.csv   source_image,target_image,class,flip        (no keypoints)
    ROOT/val_pairs_pf_pascal.csv     source_image,target_image,class,XA,YA,XB,YB
    ROOT/test_pairs_pf_pascal.csv    source_image,target_image,class,XA,YA,XB,YB

Image paths in the CSVs are relative to ROOT. ``XA``/``YA`` are the source image's keypoints and
``XB``/``YB`` the target's, ``;``-separated pixel coordinates of the original images; the loader
reads them from the CSV (the ``.mat`` files are their origin and are not needed). A CSV without
keypoint columns gives pairs without keypoints. A ``flip`` of 1 mirrors both images (and their
keypoints) horizontally, as weakalign and NC-Net do.

Convention:
    Keypoints are returned as normalised ``(x, y)`` coordinates in ``[-1, 1]`` with
    ``align_corners=False``, the convention of every warp grid in warpstyle: the centre of pixel
    ``i`` of ``L`` is at ``(2i + 1) / L - 1``, and a CSV pixel coordinate ``x`` is read with pixel
    centres at integers starting from 0. (weakalign reads them as 1-based MATLAB coordinates; the
    difference is one original pixel, far below PCK thresholds.) Normalised coordinates do not
    depend on the resolution, so they hold for the resized images as well as the originals.
    A backward grid maps the target (geometry) frame to the source (content): target keypoints are
    transferred into the source with :func:`transfer_keypoints` and scored with :func:`pck`
    against the source keypoints, in the source image's original pixels.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from adain.base.checks import check_shape
from adain.base.errors import ConfigError
from adain.base.image import load_image, resize_exact

__all__ = ["PFPascalPairs", "MAX_KEYPOINTS", "pck", "transfer_keypoints"]

#: Keypoints per image are padded to this count (with ``mask`` False) so batches collate.
#: PF-PASCAL's classes annotate at most 20 keypoints.
MAX_KEYPOINTS = 20

_REQUIRED = ("source_image", "target_image")
_KEYPOINT_COLUMNS = ("XA", "YA", "XB", "YB")


def _normalise(points: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``(N, 2)`` pixel coordinates (pixel centres at integers) -> ``[-1, 1]``, align_corners=False."""
    h, w = hw
    return torch.stack([(2 * points[:, 0] + 1) / w - 1, (2 * points[:, 1] + 1) / h - 1], dim=-1)


def _parse_coords(text: str | None, column: str, csv_path: Path, line: int) -> list[float]:
    text = (text or "").strip()
    if not text:
        return []
    try:
        return [float(v) for v in text.split(";") if v.strip()]
    except ValueError:
        reason = f"line {line}: column {column} must hold ';'-separated numbers; got {text[:40]!r}"
        raise ConfigError(csv_path, reason) from None


class PFPascalPairs(torch.utils.data.Dataset):
    """Pairs of PF-PASCAL images with their keypoints in normalised coordinates.

    Args:
        root: the folder that holds ``PF-dataset-PASCAL/`` (image paths in the CSV are relative to it).
        csv_path: a pair CSV; an existing path is used as is, otherwise it is looked up under ``root``.
        image_size: side ``S`` of the square the images are resized to.
        max_points: keypoints are padded to this many; a pair with more is a :class:`ConfigError`.

    Items are dicts:

    - ``source``, ``target``: ``(3, S, S)`` float in [0, 1].
    - ``source_points``, ``target_points``: ``(max_points, 2)`` float32 normalised ``(x, y)``
      (module Convention); padding and missing (NaN) points are 0.
    - ``mask``: ``(max_points,)`` bool, True where both images have the keypoint.
    - ``num_points``: int, the number of True entries in ``mask``.
    - ``source_size``, ``target_size``: ``(2,)`` int64 original ``(H, W)``.
    - ``class``: the CSV's class column as text (the weakalign files use 1-based VOC indices).
    - ``flip``: int, 1 when the pair was mirrored.

    Raises:
        ConfigError: ``root`` or the CSV is missing, the CSV lacks ``source_image``/``target_image``,
            holds no pairs, or has malformed keypoint, flip or count columns (naming the line).
        ImageError: (on access) an image is missing or unreadable; the message names the file.

    Example:
        >>> # ds = PFPascalPairs("data/pf-pascal", "test_pairs_pf_pascal.csv", image_size=256)
        >>> # loader = torch.utils.data.DataLoader(ds, batch_size=8)
    """

    def __init__(
        self, root: str | Path, csv_path: str | Path, image_size: int = 256, *, max_points: int = MAX_KEYPOINTS
    ) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int; got {image_size!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
            raise ValueError(f"max_points must be a positive int; got {max_points!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError(self.root, "PF-PASCAL root folder not found")
        path = Path(csv_path)
        if not path.is_file():
            path = self.root / csv_path
        if not path.is_file():
            raise ConfigError(path, "PF-PASCAL pair CSV not found")
        self.csv_path = path
        self.image_size = image_size
        self.max_points = max_points
        self._pairs = self._read_csv(path)

    def _read_csv(self, path: Path) -> list[dict[str, object]]:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                columns = [c.strip() for c in (reader.fieldnames or [])]
                rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ConfigError(path, f"cannot read the pair CSV ({e})") from None
        missing = [c for c in _REQUIRED if c not in columns]
        if missing:
            raise ConfigError(
                path, f"missing column(s) {', '.join(missing)}; expected source_image,target_image,class,XA,YA,XB,YB"
            )
        has_points = all(c in columns for c in _KEYPOINT_COLUMNS)
        pairs = []
        for line, row in enumerate(rows, start=2):  # line 1 is the header
            if not (row.get("source_image") or "").strip() or not (row.get("target_image") or "").strip():
                raise ConfigError(path, f"line {line}: empty source_image or target_image")
            pts: list[list[float]] = [[], [], [], []]
            if has_points:
                pts = [_parse_coords(row.get(c), c, path, line) for c in _KEYPOINT_COLUMNS]
                if len(pts[0]) != len(pts[1]) or len(pts[2]) != len(pts[3]) or len(pts[0]) != len(pts[2]):
                    counts = "/".join(str(len(p)) for p in pts)
                    raise ConfigError(path, f"line {line}: XA/YA/XB/YB must have equal counts; got {counts}")
                if len(pts[0]) > self.max_points:
                    reason = f"line {line}: {len(pts[0])} keypoints, more than max_points={self.max_points}"
                    raise ConfigError(path, reason)
            flip_text = (row.get("flip") or "0").strip()
            if flip_text not in ("0", "1"):
                raise ConfigError(path, f"line {line}: flip must be 0 or 1; got {flip_text!r}")
            pairs.append({
                "source_image": row["source_image"].strip(), "target_image": row["target_image"].strip(),
                "class": (row.get("class") or "").strip(), "flip": int(flip_text),
                "source_points": list(zip(pts[0], pts[1])), "target_points": list(zip(pts[2], pts[3])),
            })
        if not pairs:
            raise ConfigError(path, "the pair CSV holds no pairs")
        return pairs

    def __len__(self) -> int:
        return len(self._pairs)

    def _padded(self, points: list[tuple[float, float]], hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(max_points, 2)`` normalised points (NaN -> 0) and ``(max_points,)`` finite flags."""
        out = torch.zeros(self.max_points, 2)
        ok = torch.zeros(self.max_points, dtype=torch.bool)
        if points:
            p = torch.tensor(points, dtype=torch.float32).reshape(-1, 2)  # (N, 2) pixels
            n = p.shape[0]
            ok[:n] = torch.isfinite(p).all(dim=-1)
            out[:n] = torch.nan_to_num(_normalise(p, hw), nan=0.0, posinf=0.0, neginf=0.0)
        return out, ok

    def __getitem__(self, index: int) -> dict[str, object]:
        pair = self._pairs[index]
        src = load_image(self.root / str(pair["source_image"]))  # (1, 3, H, W); ImageError names the file
        tgt = load_image(self.root / str(pair["target_image"]))
        s_hw = (int(src.shape[-2]), int(src.shape[-1]))
        t_hw = (int(tgt.shape[-2]), int(tgt.shape[-1]))
        s_pts, s_ok = self._padded(pair["source_points"], s_hw)  # type: ignore[arg-type]
        t_pts, t_ok = self._padded(pair["target_points"], t_hw)  # type: ignore[arg-type]
        mask = s_ok & t_ok
        s_pts, t_pts = s_pts * mask[:, None], t_pts * mask[:, None]  # missing points read 0, not a half-point
        size = (self.image_size, self.image_size)
        source, target = resize_exact(src, size)[0], resize_exact(tgt, size)[0]  # (3, S, S)
        if pair["flip"]:
            # Mirroring pixel x -> W-1-x is x -> -x in normalised coordinates (align_corners=False).
            source, target = source.flip(-1), target.flip(-1)
            s_pts[:, 0], t_pts[:, 0] = -s_pts[:, 0], -t_pts[:, 0]
        return {
            "source": source,
            "target": target,
            "source_points": s_pts + 0.0,  # + 0.0 turns the -0.0 of flipped padding into 0.0
            "target_points": t_pts + 0.0,
            "mask": mask,
            "num_points": int(mask.sum()),
            "source_size": torch.tensor(s_hw, dtype=torch.int64),
            "target_size": torch.tensor(t_hw, dtype=torch.int64),
            "class": pair["class"],
            "flip": pair["flip"],
        }


def transfer_keypoints(grid: torch.Tensor, target_points: torch.Tensor) -> torch.Tensor:
    """Source (content) locations of target (geometry) keypoints under a backward field.

    The field is sampled bilinearly at each keypoint (``grid_sample``, ``align_corners=False``);
    keypoints beyond the outermost pixel centres read the border value. Differentiable in ``grid``.

    Args:
        grid: ``(B, H, W, 2)`` backward field, target frame -> source (module Convention).
        target_points: ``(B, N, 2)`` normalised ``(x, y)`` keypoints in the target.

    Returns:
        ``(B, N, 2)`` normalised keypoints in the source; float64 if ``grid`` is, else float32.

    Raises:
        ValueError, TypeError: wrong shapes, or batch sizes that differ.

    Example:
        >>> from warpstyle.fields.warp import identity_grid
        >>> pts = torch.tensor([[[0.25, -0.5]]])
        >>> transfer_keypoints(identity_grid(1, 8, 8), pts).tolist()
        [[[0.25, -0.5]]]
    """
    check_shape(grid, "grid", ("B", "H", "W", 2))
    check_shape(target_points, "target_points", ("B", "N", 2))
    if target_points.shape[0] != grid.shape[0]:
        raise ValueError(
            f"target_points must have the grid's batch size {grid.shape[0]}; got {target_points.shape[0]}"
        )
    dtype = torch.float64 if grid.dtype == torch.float64 else torch.float32
    field = grid.to(dtype).permute(0, 3, 1, 2)  # (B, 2, H, W)
    where = target_points.to(device=grid.device, dtype=dtype).unsqueeze(1)  # (B, 1, N, 2)
    pts = F.grid_sample(field, where, mode="bilinear", padding_mode="border", align_corners=False)  # (B, 2, 1, N)
    return pts[:, :, 0].permute(0, 2, 1)  # (B, N, 2)


def pck(
    pred_points: torch.Tensor,
    target_points: torch.Tensor,
    mask: torch.Tensor,
    image_size_hw: torch.Tensor | tuple[int, int],
    alpha: float = 0.1,
) -> torch.Tensor:
    """Percentage of correct keypoints: per pair, the share of valid keypoints within ``alpha * max(H, W)``.

    Distances are measured in pixels of the original image the points live in: a normalised
    difference ``d`` is ``d * W / 2`` pixels in x and ``d * H / 2`` in y (align_corners=False).
    A keypoint is correct when its distance is at most the threshold.

    Args:
        pred_points: ``(B, N, 2)`` predicted normalised ``(x, y)``.
        target_points: ``(B, N, 2)`` true normalised ``(x, y)`` in the same image.
        mask: ``(B, N)`` bool, True for keypoints to score.
        image_size_hw: original ``(H, W)`` of that image, ``(B, 2)`` or one ``(2,)`` / tuple for all.
        alpha: threshold as a fraction of the longer side, > 0.

    Returns:
        ``(B,)`` float32 in [0, 1]; NaN for pairs without valid keypoints.

    Raises:
        ValueError, TypeError: wrong shapes or a non-positive ``alpha``.

    Example:
        >>> p = torch.zeros(1, 2, 2)
        >>> pck(p, p + torch.tensor([0.0, 0.5]), torch.tensor([[True, False]]), (100, 100)).tolist()
        [0.0]
    """
    check_shape(pred_points, "pred_points", ("B", "N", 2))
    check_shape(target_points, "target_points", ("B", "N", 2))
    if pred_points.shape != target_points.shape:
        raise ValueError(
            f"pred_points and target_points must have the same shape; got {tuple(pred_points.shape)} "
            f"and {tuple(target_points.shape)}"
        )
    b, n = pred_points.shape[:2]
    check_shape(mask, "mask", (b, n))
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a positive number; got {alpha}")
    hw = torch.as_tensor(image_size_hw, dtype=torch.float32, device=pred_points.device)
    if hw.shape == (2,):
        hw = hw.expand(b, 2)
    if hw.shape != (b, 2):
        raise ValueError(f"image_size_hw must be (B, 2) or (2,) as (H, W); got shape {tuple(hw.shape)}")
    half_wh = torch.stack([hw[:, 1], hw[:, 0]], dim=-1).unsqueeze(1) / 2  # (B, 1, 2): normalised -> pixels
    dist = ((pred_points.float() - target_points.float()) * half_wh).norm(dim=-1)  # (B, N) pixels
    threshold = alpha * hw.max(dim=-1).values.unsqueeze(1)  # (B, 1)
    valid = mask.to(device=pred_points.device, dtype=torch.bool)
    correct = (dist <= threshold) & valid
    return correct.sum(dim=1).float() / valid.sum(dim=1).float()
