"""``train_styler``: the AdaIN decoder trainer (single process, or DDP under torchrun)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, restore_training_state, rng_state, save_checkpoint, training_header
from .config import StylerTrainConfig, config_to_dict, write_config
from .data import RandomCropFolder, infinite_loader
from .decoder import Decoder
from .errors import ConfigError
from .files import atomic_path, remove_stale_temp_files
from .functional import adaptive_instance_norm
from .image import save_image
from .losses import STYLE_TAPS, content_loss, style_loss
from .vgg import VGGEncoder

__all__ = [
    "train_styler", "TrainResult", "resolve_device", "autocast_for", "DistributedContext", "CsvLog", "to_float_batch",
    "styler_step_losses",
]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "adain.train"


@dataclasses.dataclass
class TrainResult:
    """What a training run left behind."""

    iteration: int
    checkpoint: Path
    weights: Path
    losses: dict[str, float]
    skipped_files: int


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(None, f"device must be auto, cpu, cuda or cuda:N; got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(None, "device 'cuda' requested but no CUDA device is available")
    return dev


def autocast_for(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU and CUDA (bf16 needs no loss scaler), or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@dataclasses.dataclass
class DistributedContext:
    """Rank and world size; set up from torchrun's environment variables when present."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device_name: str) -> DistributedContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(local)
        return cls(rank=rank, world=world, local_rank=local)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, name: str) -> torch.device:
        dev = resolve_device(name)
        if dev.type == "cuda" and self.world > 1:
            return torch.device("cuda", self.local_rank)
        return dev

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            x = x.detach().clone()
            dist.all_reduce(x)
            x /= self.world
        return x

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class CsvLog:
    """Append rows to a CSV file (header written once); used by both trainers' rank 0."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns

    def rewind(self, iteration: int) -> None:
        """Keep only rows up to ``iteration`` (the one a resume starts from), atomically.

        A run killed after logging iteration ``n`` but before its checkpoint resumes from an earlier
        iteration and logs the rows after it again; a kill mid-write leaves a partial last line.
        Both would corrupt the log, so resuming (and a fresh start, ``iteration=0``) rewinds it first.
        """
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            text = f.read()
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # partial row of a killed write
        rows = list(csv.reader(lines[1:]))
        kept = [r for r in rows if len(r) == len(self.columns) and r[0].isdigit() and int(r[0]) <= iteration]
        if not kept:
            self.path.unlink()
            return
        if len(kept) == len(rows) and len(lines) == len(rows) + 1 and text.endswith("\n"):
            return  # nothing to drop
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            w.writerows(kept)

    def write(self, **row: float | int) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(self.columns)
            w.writerow([f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in self.columns])


def to_float_batch(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = batch.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def styler_step_losses(
    encoder: VGGEncoder, decoder: torch.nn.Module, content: torch.Tensor, style: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass of the AdaIN objective; returns (content loss, style loss, output image)."""
    with torch.no_grad():
        fc = encoder(content, taps=("relu4_1",))["relu4_1"]
        fs = encoder(style, taps=STYLE_TAPS)
        target = adaptive_instance_norm(fc, fs["relu4_1"])
    output = decoder(target.to(fc.dtype))
    fo = encoder(output, taps=STYLE_TAPS)
    lc = content_loss(fo["relu4_1"], target)
    ls = style_loss([fo[t] for t in STYLE_TAPS], [fs[t] for t in STYLE_TAPS])
    return lc, ls, output


def _find_resume(resume: str | Path | None, out_dir: Path) -> Path | None:
    if resume is None:
        return None
    if str(resume) == "auto":
        p = out_dir / "checkpoint.pt"
        return p if p.is_file() else None
    return Path(resume)


def train_styler(
    cfg: StylerTrainConfig, *, resume: str | Path | None = None, progress: bool = True
) -> TrainResult:
    """Train an AdaIN decoder as configured; resumable and torchrun-ready (rank 0 writes).

    Args:
        cfg: the run's settings.
        resume: a training checkpoint, ``"auto"`` (``output_dir/checkpoint.pt`` if present) or None.
        progress: show a tqdm bar with running losses (rank 0 only).

    Returns:
        TrainResult with the final iteration, the checkpoint and decoder weight paths and last losses.
    """
    ctx = DistributedContext.from_env(cfg.device)
    device = ctx.device(cfg.device)
    out_dir = Path(cfg.output_dir)
    ckpt_path, weights_path = out_dir / "checkpoint.pt", out_dir / "decoder.pt"

    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    encoder = VGGEncoder.from_pretrained(cfg.vgg or None, device=device)
    decoder = Decoder.from_pretrained(cfg.init_decoder) if cfg.init_decoder else Decoder()
    decoder.train().to(device)
    if cfg.channels_last:
        encoder.to(memory_format=torch.channels_last)
        decoder.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)

    start = 0
    resume_path = _find_resume(resume, out_dir)
    if resume_path is not None:
        ck = load_checkpoint(resume_path, expected_format=CHECKPOINT_FORMAT)
        start = restore_training_state(ck, resume_path, model=decoder, optimizer=optimizer, generator=generator)
        log.info("resumed from %s at iteration %d", resume_path, start)

    model: torch.nn.Module = decoder
    if ctx.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            decoder, device_ids=[device.index] if device.type == "cuda" else None
        )

    common = dict(load_size=cfg.load_size, crop_size=cfg.crop_size, split="train", holdout=cfg.holdout)
    content_ds = RandomCropFolder(cfg.content_dir, seed=cfg.seed, **common)
    style_ds = RandomCropFolder(cfg.style_dir, seed=cfg.seed + 1, **common)
    per_step = cfg.batch_size * ctx.world
    loader_args = dict(batch_size=cfg.batch_size, workers=cfg.workers, start=start * per_step,
                       rank=ctx.rank, world=ctx.world)
    content_iter = infinite_loader(content_ds, seed=cfg.seed, **loader_args)
    style_iter = infinite_loader(style_ds, seed=cfg.seed + 1, **loader_args)

    csv_log = CsvLog(out_dir / "losses.csv", ["iteration", "content_loss", "style_loss", "lr", "elapsed_s"])
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for d in (out_dir, out_dir / "samples", out_dir / "snapshots"):
            remove_stale_temp_files(d)  # left by a run killed mid-write; never read, only clutter
        write_config(cfg, out_dir / "config.json")
        csv_log.rewind(start)

    def save(iteration: int) -> None:
        if not ctx.is_main:
            return
        state = {k: v.detach().cpu() for k, v in decoder.state_dict().items()}
        ck = {**training_header(CHECKPOINT_FORMAT, iteration, config_to_dict(cfg)),
              "model": state, "optimizer": optimizer.state_dict(), "rng": rng_state(generator)}
        save_checkpoint(ck, ckpt_path)
        half = {k: v.half() for k, v in state.items()}
        save_checkpoint(half, weights_path)
        if cfg.keep_snapshots:
            save_checkpoint(half, out_dir / "snapshots" / f"decoder_iter{iteration:07d}.pt")

    bar = tqdm(total=cfg.iterations, initial=start, disable=not (progress and ctx.is_main),
               desc="train-styler", unit="it", dynamic_ncols=True)
    skipped = 0
    lc_v = ls_v = float("nan")
    t0 = time.time()
    iteration = start
    try:
        for iteration in range(start, cfg.iterations):
            lr = cfg.lr / (1.0 + cfg.lr_decay * iteration)
            for group in optimizer.param_groups:
                group["lr"] = lr
            content, sk1 = next(content_iter)
            style, sk2 = next(style_iter)
            skipped += sk1 + sk2
            content = to_float_batch(content, device, cfg.channels_last)
            style = to_float_batch(style, device, cfg.channels_last)
            with autocast_for(device, cfg.amp):
                lc, ls, output = styler_step_losses(encoder, model, content, style)
            loss = cfg.content_weight * lc + cfg.style_weight * ls
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = iteration + 1
            if done % cfg.log_every == 0 or done == cfg.iterations:
                lc_v, ls_v = float(ctx.mean(lc.detach())), float(ctx.mean(ls.detach()))
                bar.set_postfix(content=f"{lc_v:.3f}", style=f"{ls_v:.3f}", lr=f"{lr:.2e}")
                if ctx.is_main:
                    csv_log.write(iteration=done, content_loss=lc_v, style_loss=ls_v, lr=lr,
                                  elapsed_s=round(time.time() - t0, 1))
            if ctx.is_main and cfg.sample_every > 0 and done % cfg.sample_every == 0:
                k = min(4, content.shape[0])
                grid = torch.cat([torch.cat([content[i], style[i], output[i].detach().float().clamp(0, 1)], 2)
                                  for i in range(k)], 1)
                save_image(grid.float(), out_dir / "samples" / f"iter_{done:07d}.jpg", quality=85)
            out_of_time = cfg.time_limit_s > 0 and time.time() - t0 > cfg.time_limit_s
            if ctx.world > 1:  # every rank must agree to stop at the same iteration
                flag = torch.tensor(float(out_of_time), device=device)
                out_of_time = bool(ctx.mean(flag) > 0)
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
    if resume_path is not None and start >= cfg.iterations and ctx.is_main and not ckpt_path.exists():
        save(start)
    return TrainResult(iteration=max(iteration, start), checkpoint=ckpt_path, weights=weights_path,
                       losses={"content": lc_v, "style": ls_v}, skipped_files=skipped)
