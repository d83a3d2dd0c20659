"""``train_warper``: the warp regressor's data, losses and step; the loop is ``adain.base.training``.

Two kinds of pairs, mixed in every step:

* synthetic: a photo and its own random affine+TPS warp, with the known field as an L1 target (the
  official release's recipe; keeps large displacements learnable);
* mined: two *different* images that look alike (:mod:`warpstyle.training.data.pairs`), with no field to copy:
  the content is warped by the predicted field, re-encoded, and its VGG features (pool4, relu4_1)
  are pulled toward the geometry's (:mod:`warpstyle.geometry.objective`, shared with per-pair refinement),
  the objective of Liu et al. 2021 and of DST (Kim et al. 2020), with smoothness and fold penalties;
  optionally (``teacher_weight``) also an L1 target toward the similarity the alignment search finds
  for the pair (:mod:`warpstyle.training.data.teacher`), where it finds one.

Either side may be repainted with the AdaIN styler (art augmentation).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adain.base.data import RandomCropFolder, infinite_loader
from adain.base.errors import ConfigError
from adain.base.training import (
    DistributedContext, StepOutput, TrainResult, run_training, to_float_batch,
)
from adain.base.runtime import bf16_autocast, training_bf16
from adain.base.encoder.vgg import VGGEncoder
from adain.base.storage.weights import save_weights
from adain.decoder import Decoder

from warpstyle.training.augment import texture_augment
from warpstyle.training.config import WarperTrainConfig
from warpstyle.training.data.pairs import MinedPairs
from warpstyle.training.data.distill import DistillSet, distill_set
from warpstyle.training.data.teacher import TeacherPairs, teacher_similarities
from warpstyle.training.data.pf_pascal import PFPascalPairs, transfer_keypoints
from warpstyle.training.data.synthetic import make_synthetic_pair, random_warp_params, synthetic_field
from warpstyle.training.losses import field_l1_loss, keypoint_loss
from warpstyle.geometry.objective import feature_matching_objective, fold_penalty, objective_features, smoothness_energy
from warpstyle.geometry.regressor import WarpRegressor
from warpstyle.fields.warp import resize_field
from warpstyle.geometry.warper import Warper

__all__ = ["train_warper", "WarperTask", "CHECKPOINT_FORMAT"]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "warpstyle.train"
CROP = 256


def _cycle(loader: torch.utils.data.DataLoader) -> Iterator:
    while True:
        yield from loader


class WarperTask:
    """The regressor's training task for :func:`adain.base.training.run_training`."""

    name = CHECKPOINT_FORMAT
    weights_name = "warper.safetensors"
    resume_hint = "hidden and refine_steps must match the run that wrote it"
    columns: tuple[str, ...] = ("loss", "field_l1", "match", "smooth", "fold", "keypoint")

    def __init__(self, cfg: WarperTrainConfig, device: torch.device, generator: torch.Generator) -> None:
        self.cfg, self.device, self.generator = cfg, device, generator
        self.bf16 = training_bf16(device, cfg.bf16)
        # only runs with a teacher log its column: a resumed log must keep its header's width
        self.columns = (WarperTask.columns + (("teacher",) if cfg.teacher_weight > 0 else ())
                        + (("distill",) if cfg.distill_weight > 0 else ()))
        self.encoder = VGGEncoder.from_pretrained(cfg.vgg or None, device=device).requires_grad_(False)
        if cfg.init_warper:
            self.model = Warper.from_pretrained(cfg.init_warper, encoder=self.encoder).regressor
            if (self.model.hidden, self.model.refine_steps) != (cfg.hidden, cfg.refine_steps):
                raise ValueError(f"init_warper has hidden={self.model.hidden}, refine_steps={self.model.refine_steps}; "
                                 f"the config says {cfg.hidden}, {cfg.refine_steps}")
        else:
            self.model = WarpRegressor(hidden=cfg.hidden, refine_steps=cfg.refine_steps)
        self.model.to(device).train().requires_grad_(True)
        self.warper = Warper(self.encoder, self.model)
        self.spec = cfg.warp_spec()
        self.decoder = None
        if cfg.texture_dir and (cfg.texture_prob > 0 or cfg.pair_texture_prob > 0):
            self.decoder = Decoder.from_pretrained(cfg.decoder or None, device=device).requires_grad_(False)

    def start(self, iteration: int, ctx: DistributedContext) -> None:
        cfg = self.cfg
        per_step = cfg.batch_size * ctx.world
        args = dict(batch_size=cfg.batch_size, workers=cfg.workers, start=iteration * per_step, rank=ctx.rank,
                    world=ctx.world)
        images = RandomCropFolder(cfg.image_dir, load_size=cfg.load_size, crop_size=CROP, split="train",
                                  holdout=cfg.holdout, seed=cfg.seed)
        self.images = infinite_loader(images, seed=cfg.seed, **args)
        self.textures = None
        if self.decoder is not None:
            textures = RandomCropFolder(cfg.texture_dir, load_size=cfg.load_size, crop_size=CROP, split="train",
                                        holdout=cfg.holdout, seed=cfg.seed + 1)
            self.textures = infinite_loader(textures, seed=cfg.seed + 1, **args)
        self.distill = None
        if cfg.pair_dirs and cfg.distill_weight > 0:
            self.distill = self._distill_set(cfg)
        self.pairs = None
        if cfg.pair_dirs and cfg.pair_batch_size > 0:
            cache_dir = cfg.pair_cache_dir or Path(cfg.output_dir) / "pair_cache"
            mined = MinedPairs([d for d in cfg.pair_dirs.split(",") if d], self.encoder, k=cfg.pair_k,
                               cache_dir=cache_dir,
                               split="train", holdout=cfg.holdout, size=CROP,
                               max_similarity=cfg.pair_max_similarity)
            if len(mined) < cfg.pair_batch_size:
                raise ConfigError(None, f"pair_dirs gave {len(mined)} mined pairs, fewer than pair_batch_size "
                                        f"({cfg.pair_batch_size}); add images or lower pair_max_similarity")
            log.info("mined %d training pairs from %s", len(mined), cfg.pair_dirs)
            served: torch.utils.data.Dataset = mined
            if cfg.teacher_weight > 0:
                order = torch.randperm(len(mined), generator=torch.Generator().manual_seed(cfg.seed + 3)).tolist()
                indices = sorted(order[: cfg.teacher_pairs or len(mined)])
                if len(indices) < cfg.pair_batch_size:
                    raise ConfigError(None, f"pair_dirs gave {len(indices)} pairs for the teacher, fewer than "
                                            f"pair_batch_size ({cfg.pair_batch_size})")
                sims = teacher_similarities(mined, self.encoder, indices, bf16=cfg.bf16, cache_dir=cache_dir)
                log.info("teacher: %d of %d pairs have a similarity", int(np.isfinite(sims[:, 0]).sum()),
                         len(indices))
                served = TeacherPairs(mined, indices, sims, self.model.grid_size)
            self.pairs = _index_loader(served, cfg.pair_batch_size, cfg.seed + 2, iteration * cfg.pair_batch_size,
                                       cfg.workers, rank=ctx.rank, world=ctx.world)
        self.pf = None
        if cfg.pf_pascal_root and cfg.pf_pascal_csv:
            pf = PFPascalPairs(cfg.pf_pascal_root, cfg.pf_pascal_csv, image_size=CROP)
            self.pf = _cycle(torch.utils.data.DataLoader(pf, batch_size=cfg.batch_size, shuffle=True,
                                                         num_workers=cfg.workers, drop_last=False,
                                                         generator=torch.Generator().manual_seed(cfg.seed)))

    def _distill_set(self, cfg: WarperTrainConfig) -> DistillSet:
        """The matcher's fields and the network's input features of the distilled pairs, computed once."""
        cache_dir = cfg.pair_cache_dir or Path(cfg.output_dir) / "pair_cache"
        mined = MinedPairs([d for d in cfg.pair_dirs.split(",") if d], self.encoder, k=cfg.pair_k, cache_dir=cache_dir,
                           split="train", holdout=cfg.holdout, size=CROP, max_similarity=cfg.pair_max_similarity)
        order = torch.randperm(len(mined), generator=torch.Generator().manual_seed(cfg.seed + 4)).tolist()
        indices = sorted(order[: cfg.distill_pairs or len(mined)])
        data = distill_set(mined, self.warper, indices, bf16=cfg.bf16, cache_dir=cache_dir)
        if int(data.confident.sum()) < cfg.distill_batch_size:
            raise ConfigError(None, f"the matcher is confident on {int(data.confident.sum())} of {len(data)} pairs, "
                                    f"fewer than distill_batch_size ({cfg.distill_batch_size})")
        log.info("distill: the matcher is confident on %d of %d mined pairs", int(data.confident.sum()), len(data))
        return data

    def _repaint(self, images: torch.Tensor, prob: float, styles: torch.Tensor | None) -> torch.Tensor:
        """Repaint a random share ``prob`` of ``images`` with ``styles`` (cycled), the art augmentation."""
        b = images.shape[0]
        # draw the randomness every step so the RNG stream does not depend on the data
        use = torch.rand(b, generator=self.generator) < prob
        alpha = self.cfg.texture_alpha_min + (1 - self.cfg.texture_alpha_min) * torch.rand(b, generator=self.generator)
        if styles is None or self.decoder is None or not bool(use.any()):
            return images
        styles = styles[torch.arange(b) % styles.shape[0]]
        with bf16_autocast(self.device, self.bf16):
            painted = texture_augment(images, styles, self.encoder, self.decoder, alpha)
        return torch.where(use.to(self.device).view(-1, 1, 1, 1), painted, images)

    def step(self, model: torch.nn.Module, want_sample: bool) -> StepOutput:
        cfg, dev = self.cfg, self.device
        zero = torch.zeros((), device=dev)
        parts = dict.fromkeys(self.columns, zero)
        batch, skipped = next(self.images)
        content = to_float_batch(batch, dev)
        styles = None
        if self.textures is not None:  # one batch of paintings a step, so a resume continues the stream
            styles, sk = next(self.textures)
            styles, skipped = to_float_batch(styles, dev), skipped + sk
        params = random_warp_params(content.shape[0], self.spec, self.generator)
        params.affine, params.tps_offsets = params.affine.to(dev), params.tps_offsets.to(dev)
        with torch.no_grad():
            geometry, _ = make_synthetic_pair(content, params)
            target = synthetic_field(params, (self.model.grid_size, self.model.grid_size))
        geometry = self._repaint(geometry, cfg.texture_prob, styles)
        with torch.no_grad(), bf16_autocast(dev, self.bf16):
            fc, fg = self.warper.features(content).float(), self.warper.features(geometry).float()
        with bf16_autocast(dev, self.bf16):
            pred = model(fc, fg).float()
        parts["field_l1"] = field_l1_loss(pred, target)
        loss = cfg.field_weight * parts["field_l1"]
        smooth, fold = smoothness_energy(pred).mean(), fold_penalty(pred).mean()
        sample = None
        if self.distill is not None:
            loss, smooth, fold = self._distill_step(model, parts, loss, smooth, fold)

        if self.pairs is not None:
            served = next(self.pairs)
            pc, pg = (to_float_batch(t, dev) for t in served[:2])
            pc, pg = (self._repaint(x, cfg.pair_texture_prob, styles) for x in (pc, pg))
            with torch.no_grad(), bf16_autocast(dev, self.bf16):
                oc, og = objective_features(self.encoder, pc), objective_features(self.encoder, pg)
            with bf16_autocast(dev, self.bf16):
                grid = model(oc["pool4"], og["pool4"]).float()  # objective_features' pool4 is Warper.features
            if cfg.reencode:
                # warp the content image itself and re-encode it: the objective sees what the user will see
                warped = F.grid_sample(pc, resize_field(grid, (CROP, CROP)), mode="bilinear", padding_mode="border",
                                       align_corners=False)
                with bf16_autocast(dev, self.bf16):
                    oc = objective_features(self.encoder, warped)
            if cfg.teacher_weight > 0:
                # L1 toward the search's similarity field, on the pairs where the search found one
                teacher, has = served[2].to(dev), served[3].to(dev).float()
                per_pair = (grid - teacher).abs().mean((1, 2, 3))
                parts["teacher"] = (per_pair * has).sum() / has.sum().clamp_min(1.0)
                loss = loss + cfg.teacher_weight * parts["teacher"]
            obj = feature_matching_objective(oc, og, grid, content_warped=cfg.reencode)
            parts["match"] = obj["feature"]
            loss = loss + cfg.match_weight * obj["feature"]
            smooth, fold = smooth + obj["smooth"], fold + obj["fold"]
            if want_sample:
                warped_s = F.grid_sample(pc, resize_field(grid.detach(), (CROP, CROP)), align_corners=False,
                                         padding_mode="border")
                k = min(4, pc.shape[0])
                sample = torch.cat([torch.cat([pc[i], pg[i], warped_s[i]], 2) for i in range(k)], 1)
        parts["smooth"], parts["fold"] = smooth, fold
        loss = loss + cfg.smooth_weight * smooth + cfg.fold_weight * fold

        if self.pf is not None:
            pb = next(self.pf)
            with torch.no_grad(), bf16_autocast(dev, self.bf16):
                pfc = self.warper.features(pb["source"].to(dev)).float()
                pfg = self.warper.features(pb["target"].to(dev)).float()
            with bf16_autocast(dev, self.bf16):
                pgrid = model(pfc, pfg).float()
            pred_pts = transfer_keypoints(pgrid, pb["target_points"].to(dev))
            parts["keypoint"] = keypoint_loss(pred_pts, pb["source_points"].to(dev), pb["mask"].to(dev))
            loss = loss + cfg.keypoint_weight * parts["keypoint"]
        parts["loss"] = loss
        return StepOutput(loss=loss, parts=parts, sample=sample, skipped=skipped)

    def _distill_step(self, model: torch.nn.Module, parts: dict[str, torch.Tensor], loss: torch.Tensor,
                      smooth: torch.Tensor, fold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L1 toward the matcher's field on a batch of cached pairs, plus the feature-matching objective on
        their pool4 features (sampled, not re-encoded): the network alone, no VGG pass."""
        cfg, dev, data = self.cfg, self.device, self.distill
        assert data is not None
        # Only the confident pairs are drawn; the generator is the task's, so a resume continues the stream.
        pool = torch.nonzero(data.confident).flatten()
        idx = pool[torch.randint(len(pool), (cfg.distill_batch_size,), generator=self.generator)]
        fc, fg = data.content[idx].to(dev).float(), data.geometry[idx].to(dev).float()
        with bf16_autocast(dev, self.bf16):
            grid = model(fc, fg).float()
        parts["distill"] = (grid - data.target[idx].to(dev)).abs().mean()
        obj = feature_matching_objective({"pool4": fc}, {"pool4": fg}, grid, content_warped=False)
        parts["match"] = obj["feature"]
        loss = loss + cfg.distill_weight * parts["distill"] + cfg.match_weight * obj["feature"]
        return loss, smooth + obj["smooth"], fold + obj["fold"]

    def save_weights(self, path: Path) -> None:
        cfg = self.cfg
        provenance = (f"warpstyle train-warper: images {cfg.image_dir}, pairs {cfg.pair_dirs or 'none'}, "
                      f"holdout {cfg.holdout}")
        arch = self.warper.architecture
        save_weights(path, arch.name, {k: v.detach().cpu().half() for k, v in self.model.state_dict().items()},
                     self.model.config(), dict(arch.input), provenance)


def _index_loader(data: torch.utils.data.Dataset, batch_size: int, seed: int, start: int, workers: int, *,
                  rank: int = 0, world: int = 1) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless seeded batches of ``data`` for this rank, resuming at its sample ``start``.

    One stream of epoch permutations (seeded per epoch) is dealt round-robin to the ``world`` ranks.
    """
    n = len(data)  # type: ignore[arg-type]

    def order() -> Iterator[int]:
        for epoch in itertools.count():
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
            yield from perm

    indices = itertools.islice(order(), start * world + rank, None, world)
    sampler = _IterSampler(indices)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    yield from loader


class _IterSampler(torch.utils.data.Sampler[int]):
    def __init__(self, it: Iterator[int]) -> None:
        self.it = it

    def __iter__(self) -> Iterator[int]:
        return self.it


def train_warper(cfg: WarperTrainConfig, *, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train the warp regressor on synthetic and mined pairs (optionally art-augmented, with PF-PASCAL).

    Args:
        cfg: the run's settings.
        resume: a training checkpoint, ``"auto"`` (``output_dir/checkpoint.pt`` if present) or None.
        progress: show a progress bar (rank 0).
    """
    return run_training(lambda device, gen: WarperTask(cfg, device, gen), cfg, resume=resume, progress=progress,
                        desc="train-warper")
