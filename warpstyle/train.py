"""``train_warper`` and ``evaluate_synthetic``: the warper's trainer and its held-out metrics."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from adain.base.checkpoint import load_checkpoint, restore_training_state, rng_state, save_checkpoint, training_header
from adain.base.config import config_to_dict, write_config
from adain.base.data import RandomCropFolder, infinite_loader
from adain.decoder import Decoder
from adain.base.files import remove_stale_temp_files
from adain.functional import adaptive_instance_norm
from adain.base.training import CsvLog, DistributedContext, autocast_for, to_float_batch
from adain.base.vgg import VGGEncoder
from adain.base.weights import save_weights

from .config import WarperTrainConfig
from .data.synthetic import SyntheticWarpSpec, make_synthetic_pair, random_warp_params, synthetic_field
from .flow_io import fold_fraction
from .data.pf_pascal import PFPascalPairs, pck, transfer_keypoints
from .losses import end_point_error, feature_matching_loss, field_l1_loss, keypoint_loss, smoothness_loss
from .regressor import WarpRegressor
from .warp import identity_grid, resize_field, smooth_field
from .warper import WARPER_INPUT, Warper

__all__ = ["train_warper", "evaluate_synthetic", "evaluate_pf_pascal", "WarperTrainResult", "CHECKPOINT_FORMAT"]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "warpstyle.train"
CROP = 256


@dataclasses.dataclass
class WarperTrainResult:
    iteration: int
    checkpoint: Path
    weights: Path
    losses: dict[str, float]
    skipped_files: int


@torch.no_grad()
def texture_augment(
    images: torch.Tensor, styles: torch.Tensor, encoder: VGGEncoder, decoder: Decoder, alpha: torch.Tensor,
) -> torch.Tensor:
    """Repaint ``images`` ``(B, 3, H, W)`` with ``styles`` by AdaIN at per-sample ``alpha`` ``(B,)``."""
    fc = encoder(images, taps=("relu4_1",))["relu4_1"]
    fs = encoder(styles, taps=("relu4_1",))["relu4_1"]
    a = alpha.view(-1, 1, 1, 1).to(fc.device)
    t = a * adaptive_instance_norm(fc, fs) + (1 - a) * fc.float()
    return decoder(t.to(fc.dtype)).float().clamp(0, 1)


def train_warper(cfg: WarperTrainConfig, *, resume: str | Path | None = None, progress: bool = True) -> WarperTrainResult:
    """Train the warp regressor on synthetic pairs (optionally texture-augmented and with PF-PASCAL).

    Args:
        cfg: the run's settings.
        resume: a training checkpoint, ``"auto"`` (``output_dir/checkpoint.pt`` if present) or None.
        progress: show a progress bar (rank 0).
    """
    ctx = DistributedContext.from_env(cfg.device)
    device = ctx.device(cfg.device)
    out_dir = Path(cfg.output_dir)
    ckpt_path, weights_path = out_dir / "checkpoint.pt", out_dir / "warper.safetensors"

    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    encoder = VGGEncoder.from_pretrained(cfg.vgg or None, device=device)
    regressor = WarpRegressor(hidden=cfg.hidden, refine_steps=cfg.refine_steps).to(device).train()
    warper = Warper(encoder, regressor)
    optimizer = torch.optim.Adam(regressor.parameters(), lr=cfg.lr)
    spec = cfg.warp_spec()

    start = 0
    resume_path = None
    if resume is not None:
        resume_path = out_dir / "checkpoint.pt" if str(resume) == "auto" else Path(resume)
        if str(resume) == "auto" and not resume_path.is_file():
            resume_path = None
    if resume_path is not None:
        ck = load_checkpoint(resume_path, expected_format=CHECKPOINT_FORMAT)
        start = restore_training_state(ck, resume_path, model=regressor, optimizer=optimizer, generator=generator,
                                       hint="hidden and refine_steps must match the run that wrote it")
        log.info("resumed from %s at iteration %d", resume_path, start)

    model: torch.nn.Module = regressor
    if ctx.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            regressor, device_ids=[device.index] if device.type == "cuda" else None
        )

    per_step = cfg.batch_size * ctx.world
    loader_args = dict(batch_size=cfg.batch_size, workers=cfg.workers, start=start * per_step,
                       rank=ctx.rank, world=ctx.world)
    images = RandomCropFolder(cfg.image_dir, load_size=cfg.load_size, crop_size=CROP, split="train",
                              holdout=cfg.holdout, seed=cfg.seed)
    image_iter = infinite_loader(images, seed=cfg.seed, **loader_args)
    texture_iter = decoder = None
    if cfg.texture_dir and cfg.texture_prob > 0:
        textures = RandomCropFolder(cfg.texture_dir, load_size=cfg.load_size, crop_size=CROP, split="train",
                                    holdout=cfg.holdout, seed=cfg.seed + 1)
        texture_iter = infinite_loader(textures, seed=cfg.seed + 1, **loader_args)
        decoder = Decoder.from_pretrained(cfg.decoder or None, device=device).requires_grad_(False)
    pf_iter = None
    if cfg.pf_pascal_root and cfg.pf_pascal_csv:
        pf = PFPascalPairs(cfg.pf_pascal_root, cfg.pf_pascal_csv, image_size=CROP)
        pf_iter = _cycle(torch.utils.data.DataLoader(pf, batch_size=cfg.batch_size, shuffle=True,
                                                     num_workers=cfg.workers, drop_last=False,
                                                     generator=torch.Generator().manual_seed(cfg.seed)))

    csv_log = CsvLog(out_dir / "losses.csv", ["iteration", "loss", "field_l1", "feature", "keypoint", "lr", "elapsed_s"])
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out_dir)  # left by a run killed mid-write; never read, only clutter
        write_config(cfg, out_dir / "config.json")
        csv_log.rewind(start)

    def save(iteration: int) -> None:
        if not ctx.is_main:
            return
        state = {k: v.detach().cpu() for k, v in regressor.state_dict().items()}
        ck = {**training_header(CHECKPOINT_FORMAT, iteration, config_to_dict(cfg)),
              "model": state, "optimizer": optimizer.state_dict(), "rng": rng_state(generator)}
        save_checkpoint(ck, ckpt_path)
        save_weights(weights_path, "WarpRegressor", {k: v.half() for k, v in state.items()}, regressor.config(),
                     WARPER_INPUT, f"warpstyle train-warper: images {cfg.image_dir}, iteration {iteration}")

    bar = tqdm(total=cfg.iterations, initial=start, disable=not (progress and ctx.is_main),
               desc="train-warper", unit="it", dynamic_ncols=True)
    t0 = time.time()
    skipped = 0
    last: dict[str, float] = {}
    iteration = start
    try:
        for iteration in range(start, cfg.iterations):
            lr = cfg.lr / (1.0 + cfg.lr_decay * iteration)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch, sk = next(image_iter)
            skipped += sk
            content = to_float_batch(batch, device, False)
            b = content.shape[0]
            params = random_warp_params(b, spec, generator)
            params.affine, params.tps_offsets = params.affine.to(device), params.tps_offsets.to(device)
            with torch.no_grad():
                geometry, _ = make_synthetic_pair(content, params)
                target = synthetic_field(params, (regressor.grid_size, regressor.grid_size))
            # draw the augmentation randomness every step so the RNG stream does not depend on data
            use_tex = torch.rand(b, generator=generator) < cfg.texture_prob
            alpha = cfg.texture_alpha_min + (1 - cfg.texture_alpha_min) * torch.rand(b, generator=generator)
            if texture_iter is not None and decoder is not None:
                styles, sk = next(texture_iter)
                skipped += sk
                if bool(use_tex.any()):
                    with autocast_for(device, cfg.amp):
                        painted = texture_augment(geometry, to_float_batch(styles, device, False), encoder,
                                                  decoder, alpha)
                    m = use_tex.to(device).view(-1, 1, 1, 1)
                    geometry = torch.where(m, painted, geometry)
            with torch.no_grad(), autocast_for(device, cfg.amp):
                fc, fg = warper.features(content), warper.features(geometry)
            fc, fg = fc.float(), fg.float()
            with autocast_for(device, cfg.amp):
                pred = model(fc, fg).float()
            l_field = field_l1_loss(pred, target)
            loss = cfg.field_weight * l_field
            l_feat = torch.zeros((), device=device)
            if cfg.feature_weight > 0:
                l_feat = feature_matching_loss(fc, fg, pred)
                loss = loss + cfg.feature_weight * l_feat
            if cfg.smooth_weight > 0:
                loss = loss + cfg.smooth_weight * smoothness_loss(pred)
            l_kp = torch.zeros((), device=device)
            if pf_iter is not None:
                pb = next(pf_iter)
                with torch.no_grad(), autocast_for(device, cfg.amp):
                    pfc = warper.features(pb["source"].to(device))
                    pfg = warper.features(pb["target"].to(device))
                with autocast_for(device, cfg.amp):
                    pgrid = model(pfc.float(), pfg.float()).float()
                pred_pts = transfer_keypoints(pgrid, pb["target_points"].to(device))
                l_kp = keypoint_loss(pred_pts, pb["source_points"].to(device), pb["mask"].to(device))
                loss = loss + cfg.keypoint_weight * l_kp
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = iteration + 1
            if done % cfg.log_every == 0 or done == cfg.iterations:
                last = {"loss": float(ctx.mean(loss.detach())), "field_l1": float(ctx.mean(l_field.detach())),
                        "feature": float(l_feat.detach()), "keypoint": float(l_kp.detach())}
                bar.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{lr:.2e}")
                if ctx.is_main:
                    csv_log.write(iteration=done, lr=lr, elapsed_s=round(time.time() - t0, 1), **last)
            out_of_time = cfg.time_limit_s > 0 and time.time() - t0 > cfg.time_limit_s
            if ctx.world > 1:
                out_of_time = bool(ctx.mean(torch.tensor(float(out_of_time), device=device)) > 0)
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations or out_of_time:
                save(done)
            bar.update(1)
            if out_of_time:
                log.info("time limit of %.0f s reached at iteration %d; checkpoint saved", cfg.time_limit_s, done)
                iteration = done
                break
        else:
            iteration = cfg.iterations
    finally:
        bar.close()
        ctx.close()
    return WarperTrainResult(iteration=max(iteration, start), checkpoint=ckpt_path, weights=weights_path,
                             losses=last, skipped_files=skipped)


def _cycle(loader: torch.utils.data.DataLoader):
    while True:
        yield from loader


@torch.no_grad()
def evaluate_synthetic(
    warper: Warper,
    image_dir: str | Path,
    *,
    pairs: int = 200,
    holdout: float = 0.1,
    split: str = "heldout",
    spec: SyntheticWarpSpec | None = None,
    seed: int = 1234,
    smoothness: float = 0.0,
    batch_size: int = 16,
    load_size: int = 288,
    progress: bool = False,
) -> dict[str, float]:
    """Mean end-point error (px at 256) and fold share on seeded synthetic pairs of held-out images.

    Returns:
        ``{"pairs", "epe", "epe_identity", "epe_ratio", "fold", "fold_identity", "fold_ground_truth"}``.
    """
    spec = spec or SyntheticWarpSpec()
    device = warper.device
    data = RandomCropFolder(image_dir, load_size=load_size, crop_size=CROP, split=split, holdout=holdout, seed=seed)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    n = len(data)
    epe, epe_id, fold, fold_id, fold_gt, count = 0.0, 0.0, 0.0, 0.0, 0.0, 0
    for start in tqdm(range(0, pairs, batch_size), disable=not progress, desc="eval-warper"):
        codes = range(start, min(pairs, start + batch_size))
        content = torch.stack([data[c % n + n * (c // n)][0] for c in codes]).float().div(255).to(device)
        params = random_warp_params(content.shape[0], spec, gen)
        params.affine, params.tps_offsets = params.affine.to(device), params.tps_offsets.to(device)
        geometry, gt = make_synthetic_pair(content, params)
        grid = warper(content, geometry)
        pred = resize_field(smooth_field(grid, smoothness), (CROP, CROP))
        ident = identity_grid(content.shape[0], CROP, CROP, device=device)
        epe += float(end_point_error(pred, gt).sum())
        epe_id += float(end_point_error(ident, gt).sum())
        fold += float(fold_fraction(pred).sum())
        fold_gt += float(fold_fraction(gt).sum())
        fold_id += float(fold_fraction(ident).sum())
        count += content.shape[0]
    res = {"pairs": count, "epe": epe / count, "epe_identity": epe_id / count, "fold": fold / count,
           "fold_identity": fold_id / count, "fold_ground_truth": fold_gt / count}
    res["epe_ratio"] = res["epe"] / max(res["epe_identity"], 1e-9)
    return res


@torch.no_grad()
def evaluate_pf_pascal(warper: Warper, root: str | Path, csv_path: str | Path, *, alpha: float = 0.1,
                       batch_size: int = 8) -> dict[str, float]:
    """PCK@alpha of keypoint transfer on PF-PASCAL pairs, with the identity field as baseline.

    The geometry (target) keypoints are mapped through the field into the content (source) and
    scored against the source keypoints, with the threshold in the source image's pixels.
    """
    data = PFPascalPairs(root, csv_path, image_size=CROP)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    total, total_id, n = 0.0, 0.0, 0
    for b in loader:
        grid = warper(b["source"].to(warper.device), b["target"].to(warper.device)).cpu()
        ident = identity_grid(grid.shape[0], grid.shape[1], grid.shape[2])
        for g, acc in ((grid, "w"), (ident, "i")):
            pts = transfer_keypoints(g, b["target_points"])
            score = pck(pts, b["source_points"], b["mask"], b["source_size"], alpha)
            valid = torch.isfinite(score)
            if acc == "w":
                total += float(score[valid].sum())
                n += int(valid.sum())
            else:
                total_id += float(score[valid].sum())
    return {"pairs": n, "pck": total / max(n, 1), "pck_identity": total_id / max(n, 1), "alpha": alpha}
