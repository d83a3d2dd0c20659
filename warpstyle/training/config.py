"""WarperTrainConfig: settings of ``warpstyle train-warper``."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from adain.base.config import MAX_BATCH, MAX_WORKERS, SEED_MAX, Range, validate_config
from adain.base.errors import ConfigError

from warpstyle.training.data.synthetic import SyntheticWarpSpec

__all__ = ["WarperTrainConfig"]


@dataclasses.dataclass
class WarperTrainConfig:
    """Settings of ``warpstyle train-warper``; load with ``adain.base.config.load_config``."""

    image_dir: str = ""  # any photo folder (COCO train2017 layout is just a folder)
    output_dir: str = "runs/warper"
    iterations: int = 20_000
    batch_size: int = 16
    lr: float = 5e-4
    lr_decay: float = 1e-4  # lr_i = lr / (1 + lr_decay * i)
    load_size: int = 288  # shorter side before the 256 px crop
    holdout: float = 0.0
    hidden: int = 128
    refine_steps: int = 1
    # synthetic warps: the ranges of SyntheticWarpSpec, which owns their defaults
    scale_min: float = SyntheticWarpSpec.scale_min
    scale_max: float = SyntheticWarpSpec.scale_max
    rotation_deg: float = SyntheticWarpSpec.rotation_deg
    shear_deg: float = SyntheticWarpSpec.shear_deg
    translation: float = SyntheticWarpSpec.translation
    tps_jitter: float = SyntheticWarpSpec.tps_jitter
    # texture augmentation of the geometry side with the AdaIN styler
    texture_dir: str = ""  # empty: no augmentation
    texture_prob: float = 0.5
    texture_alpha_min: float = 0.5
    decoder: str = ""  # empty: the bundled decoder
    # mined pairs of different images (warpstyle/training/data/pairs.py) and the feature-matching objective
    pair_dirs: str = ""  # comma-separated folders to mine pairs from; empty: synthetic pairs only
    pair_k: int = 4  # nearest neighbours per image
    pair_max_similarity: float = 0.95  # more similar pairs are near-duplicates and skipped
    pair_batch_size: int = 0  # mined pairs per step (0: none)
    pair_cache_dir: str = ""  # empty: OUTPUT_DIR/pair_cache
    pair_texture_prob: float = 0.0  # share of each side of a mined pair repainted by the styler
    reencode: bool = True  # warp the content image and re-encode it (else sample its features)
    match_weight: float = 1.0
    # the alignment search as a teacher of the global part (warpstyle/training/data/teacher.py)
    teacher_weight: float = 0.0  # L1 toward the search's similarity field on mined pairs (0: off)
    teacher_pairs: int = 0  # mined pairs given a teacher (a seeded sample; the loader serves only them); 0: all
    # semantic matching as the teacher of the whole field, from cached features (warpstyle/training/data/distill.py)
    distill_weight: float = 0.0  # L1 toward the matcher's field on mined pairs where it is confident (0: off)
    distill_pairs: int = 0  # mined pairs given the matcher's field (a seeded sample); 0: all
    distill_batch_size: int = 16  # cached pairs per step (no VGG pass: the network alone)
    init_warper: str = ""  # warm start from these warper weights
    # losses
    field_weight: float = 1.0
    smooth_weight: float = 0.0  # squared displacement differences (warpstyle.geometry.objective; 0.01 there)
    fold_weight: float = 0.0  # Jacobian-determinant fold penalty
    # PF-PASCAL keypoint pairs (for users who have the dataset)
    pf_pascal_root: str = ""
    pf_pascal_csv: str = ""
    keypoint_weight: float = 1.0
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # bf16 autocast, as in the styler's config. Old name: amp
    vgg: str = ""
    log_every: int = 50
    sample_every: int = 0  # write a sample grid of mined pairs every N iterations (0: never)
    checkpoint_every: int = 1000
    keep_snapshots: bool = False
    time_limit_s: float = 0.0

    #: Allowed values, checked on construction (files, flags and the API alike); the CLI's option
    #: ranges are tested against this table.
    RANGES: ClassVar[dict[str, Range]] = {
        "iterations": Range(1), "batch_size": Range(1, MAX_BATCH), "lr": Range(0, min_open=True), "lr_decay": Range(0),
        "load_size": Range(8, 2048), "holdout": Range(0, 0.9), "hidden": Range(1, 4096), "refine_steps": Range(0, 64),
        "scale_min": Range(0, min_open=True), "scale_max": Range(0, min_open=True), "rotation_deg": Range(0, 180),
        "shear_deg": Range(0, 80), "translation": Range(0), "tps_jitter": Range(0), "texture_prob": Range(0, 1),
        "texture_alpha_min": Range(0, 1), "field_weight": Range(0), "match_weight": Range(0),
        "smooth_weight": Range(0), "fold_weight": Range(0), "keypoint_weight": Range(0), "pair_k": Range(1, 1000),
        "pair_batch_size": Range(0, MAX_BATCH), "pair_max_similarity": Range(0, 1.01), "pair_texture_prob": Range(0, 1),
        "teacher_weight": Range(0), "teacher_pairs": Range(0), "distill_weight": Range(0),
        "distill_pairs": Range(0, 100_000), "distill_batch_size": Range(1, MAX_BATCH),
        "sample_every": Range(0), "workers": Range(0, MAX_WORKERS), "seed": Range(0, SEED_MAX),
        "log_every": Range(1), "checkpoint_every": Range(1), "time_limit_s": Range(0),
    }

    def __post_init__(self) -> None:
        validate_config(self)
        if self.scale_max < self.scale_min:
            raise ConfigError(None, f"scale_max must be >= scale_min ({self.scale_min}); got {self.scale_max}")
        if self.teacher_weight > 0 and not (self.pair_dirs and self.pair_batch_size > 0):
            raise ConfigError(None, "teacher_weight > 0 teaches mined pairs: set pair_dirs and pair_batch_size > 0")
        if self.distill_weight > 0 and not self.pair_dirs:
            raise ConfigError(None, "distill_weight > 0 teaches mined pairs: set pair_dirs")
        if self.teacher_pairs and not self.teacher_weight > 0:
            raise ConfigError(None, f"teacher_pairs ({self.teacher_pairs}) needs teacher_weight > 0")
        if 0 < self.teacher_pairs < self.pair_batch_size:
            raise ConfigError(None, f"teacher_pairs must be at least pair_batch_size ({self.pair_batch_size}); "
                                    f"got {self.teacher_pairs}")

    def warp_spec(self) -> SyntheticWarpSpec:
        """This config's synthetic-warp ranges (its fields named as :class:`SyntheticWarpSpec`'s)."""
        return SyntheticWarpSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SyntheticWarpSpec)})
