"""The one training loop both trainers use (``train_styler``, ``train_warper``).

A trainer supplies a :class:`TrainTask`: its model, its data and losses as one ``step`` function,
and how to export shipped weights. This module owns everything else, read top to bottom in
:func:`run_training`: device and torchrun DDP set-up, resume, learning-rate decay, the non-finite
guard, the CSV log, sample grids, atomic checkpoints, the time limit and the run-folder lock.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .checks import check_device
from .storage.checkpoint import load_checkpoint, restore_training_state, rng_state, save_checkpoint, training_header
from .config import config_to_dict, write_config
from .errors import ConfigError, OutputError, StyleTransferError
from .storage.files import atomic_path, check_output_path, remove_stale_temp_files, same_file
from .storage.outputs import check_not_inputs
from .image import save_image

__all__ = [
    "TrainTask", "LoopConfig", "StepOutput", "TrainResult", "TrainingDiverged", "run_training", "resolve_device",
    "DistributedContext", "CsvLog", "to_float_batch",
]

log = logging.getLogger(__name__)


class TrainingDiverged(StyleTransferError):
    """A loss or a weight became NaN or infinite; the last good checkpoint was kept."""


class LoopConfig(Protocol):
    """The settings the loop reads; both trainers' config dataclasses have these fields."""

    output_dir: str
    iterations: int
    lr: float
    lr_decay: float  # lr_i = lr / (1 + lr_decay * i)
    seed: int
    device: str
    log_every: int
    sample_every: int
    checkpoint_every: int
    keep_snapshots: bool
    time_limit_s: float


@dataclasses.dataclass
class StepOutput:
    """What one training step returns.

    Attributes:
        loss: the scalar to minimise.
        parts: named scalars logged beside it (each a column of ``losses.csv``).
        sample: an image grid ``(3, H, W)`` in [0, 1] for ``samples/``, or None.
        skipped: files the data loaders skipped this step (unreadable images).
    """

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]
    sample: torch.Tensor | None = None
    skipped: int = 0


class TrainTask(Protocol):
    """One model's data, losses and weights; :func:`run_training` does the rest.

    Attributes:
        name: the checkpoint format tag (``"adain.train"``, ``"warpstyle.train"``).
        weights_name: the shipped-weights file written beside the checkpoint (``"decoder.safetensors"``, written by :func:`adain.base.storage.weights.save_weights`).
        columns: the names of ``StepOutput.parts``, in log order.
        model: the trainable module (wrapped in DDP by the loop when distributed).
        resume_hint: appended to the error when a checkpoint does not fit ``model``.
    """

    name: str
    weights_name: str
    columns: tuple[str, ...]
    model: torch.nn.Module
    resume_hint: str

    def start(self, iteration: int, ctx: DistributedContext) -> None:
        """Build the data iterators so that they continue at ``iteration`` (after a resume)."""

    def step(self, model: torch.nn.Module, want_sample: bool) -> StepOutput:
        """Draw a batch and compute the loss through ``model`` (the possibly DDP-wrapped module)."""

    def save_weights(self, path: Path) -> None:
        """Write the shipped weights file for the current model state (atomically)."""


@dataclasses.dataclass
class TrainResult:
    """What a training run left behind."""

    iteration: int
    checkpoint: Path
    weights: Path
    losses: dict[str, float]
    skipped_files: int


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; anything else is a one-line ``ValueError``."""
    dev = check_device(name, "device", auto=True)
    assert dev is not None  # a str never resolves to None
    return dev


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

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any rank (ranks must take the same branch)."""
        if self.world <= 1:
            return flag
        return bool(self.mean(torch.tensor(float(flag), device=device)) > 0)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class CsvLog:
    """Append rows to a CSV file (header written once); rank 0 only."""

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


def to_float_batch(batch: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` from the loaders to float in [0, 1] on ``device``."""
    x = batch.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def find_resume(resume: str | Path | None, out_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``"auto"`` is ``out_dir/checkpoint.pt`` when present."""
    if resume is None:
        return None
    if str(resume) == "auto":
        p = out_dir / "checkpoint.pt"
        return p if p.is_file() else None
    return Path(resume)


@contextlib.contextmanager
def run_folder_lock(out_dir: Path, enabled: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir/.lock`` so two trainers never share a run folder."""
    if not enabled:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(None, f"output_dir '{out_dir}' is in use by another training run") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


#: What a run writes into its folder: a new run refuses a folder holding any of them (a finished
#: run whose checkpoint was deleted, or a user's own files of those names).
RUN_FILES = ("checkpoint.pt", "config.json", "losses.csv", "decoder.safetensors", "warper.safetensors")
RUN_FOLDERS = ("samples", "snapshots")


def check_run_folder(out_dir: Path, cfg: Any, *, resuming: bool) -> None:
    """Refuse, before any work, a run folder that cannot be written or whose files a run would replace.

    Raises:
        OutputError: ``out_dir`` is an existing non-folder (a file, ``/dev/full``), sits under one,
            or cannot be written; or an ``init_*`` weights file of ``cfg`` is one of the run's files.
        ConfigError: a new run (nothing to resume) would replace files already in ``out_dir``.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(out_dir, "it exists and is not a folder; --output-dir is the run folder")
    check_output_path(out_dir / "checkpoint.pt", replace_readonly=True)  # a parent that is a file, no permission
    run_files = [out_dir / n for n in RUN_FILES]
    check_not_inputs(run_files, [(f"--{k.replace('_', '-')}", Path(v)) for k in ("init_decoder", "init_warper")
                                 if (v := getattr(cfg, k, None))])
    if resuming:
        return
    held = [p.name for p in run_files if os.path.lexists(p)]
    held += [f"{d.name}/" for d in (out_dir / n for n in RUN_FOLDERS) if d.is_dir() and any(d.iterdir())]
    if held:
        what = ("a run (checkpoint.pt); use --resume auto to continue it, or another --output-dir"
                if "checkpoint.pt" in held else
                f"files a new run would replace ({', '.join(held)}) and no checkpoint.pt to resume; move them or "
                "choose another --output-dir")
        raise ConfigError(None, f"output_dir '{out_dir}' already holds {what}")


def _all_finite(tensors: Mapping[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


def run_training(
    task_factory: Callable[[torch.device, torch.Generator], TrainTask],
    cfg: Any,
    *,
    resume: str | Path | None = None,
    progress: bool = True,
    desc: str = "train",
) -> TrainResult:
    """Train ``task_factory(device, generator)`` as ``cfg`` says; resumable and torchrun-ready.

    Args:
        task_factory: builds the task (models, data) on the resolved device; its random draws must
            come from ``generator`` so a resume continues the same stream.
        cfg: a :class:`LoopConfig` dataclass (written to ``config.json`` and into checkpoints).
        resume: a training checkpoint, ``"auto"`` (``output_dir/checkpoint.pt`` if present) or None.
            Without it, an ``output_dir`` that already holds a checkpoint is refused.
        progress: show a tqdm bar with running losses (rank 0 only).
        desc: the bar's label.

    Returns:
        TrainResult: the final iteration, checkpoint and weights paths, the last logged losses.

    Raises:
        ConfigError: the run folder holds a run and ``resume`` is None, or another run is using it.
        TrainingDiverged: a loss or weight became non-finite; nothing from that step was saved.
        CheckpointError: the resume checkpoint is not one of this task's or does not fit.
    """
    ctx = DistributedContext.from_env(cfg.device)
    try:  # every exit, an early refusal too, tears the process group down
        device = ctx.device(cfg.device)
        out_dir = Path(cfg.output_dir)
        resume_path = find_resume(resume, out_dir)
        # Resuming this folder's own run may rewrite its files; a checkpoint from elsewhere starts this folder anew.
        check_run_folder(out_dir, cfg, resuming=resume_path is not None and same_file(resume_path.parent, out_dir))
        with run_folder_lock(out_dir, ctx.is_main):
            return _train(task_factory, cfg, ctx, device, out_dir, resume_path, progress, desc)
    finally:
        ctx.close()


def _make_optimizer(task: TrainTask, cfg: Any) -> tuple[torch.optim.Optimizer, list[float]]:
    """Adam over the task's parameter groups, and each group's learning-rate scale."""
    # A task may give parameter groups with an "lr_scale" (e.g. new layers that start from zero).
    groups = task.param_groups() if hasattr(task, "param_groups") else [{"params": list(task.model.parameters())}]
    # Kept beside the optimizer: loading a checkpoint's optimizer state replaces its groups' keys.
    lr_scales = [float(g.get("lr_scale", 1.0)) for g in groups]
    optimizer = torch.optim.Adam([{k: v for k, v in g.items() if k != "lr_scale"} for g in groups], lr=cfg.lr)
    return optimizer, lr_scales


def _wrap_distributed(model: torch.nn.Module, ctx: DistributedContext, device: torch.device) -> torch.nn.Module:
    """The model wrapped in DDP when there are several ranks, else the model itself."""
    if ctx.world > 1:
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    return model


def _prepare_run_folder(cfg: Any, out_dir: Path, csv_log: CsvLog, start: int) -> None:
    """Create the run folder, clear stale temp files, write the config and rewind the loss log (main rank)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in (out_dir, out_dir / "samples", out_dir / "snapshots"):
        remove_stale_temp_files(d)  # left by a run killed mid-write; never read, only clutter
    write_config(cfg, out_dir / "config.json")
    csv_log.rewind(start)


@dataclasses.dataclass
class _Run:
    """What one run's iterations and checkpoints share."""

    task: TrainTask
    cfg: Any
    ctx: DistributedContext
    device: torch.device
    out_dir: Path
    optimizer: torch.optim.Optimizer
    lr_scales: list[float]
    generator: torch.Generator

    @property
    def ckpt_path(self) -> Path:
        """The training checkpoint."""
        return self.out_dir / "checkpoint.pt"

    @property
    def weights_path(self) -> Path:
        """The shipped weights."""
        return self.out_dir / self.task.weights_name

    def kept(self) -> str:
        """What a diverged run leaves behind."""
        # Only claim a good checkpoint when there is one.
        return (f"kept the last good checkpoint in '{self.out_dir}'" if self.ckpt_path.exists() else
                "no checkpoint was written")

    def resume(self, resume_path: Path) -> int:
        """Restore model, optimizer and generator from ``resume_path``; the iteration to go on from."""
        ck = load_checkpoint(resume_path, expected_format=self.task.name)
        start = restore_training_state(ck, resume_path, model=self.task.model, optimizer=self.optimizer,
                                       generator=self.generator, hint=self.task.resume_hint)
        log.info("resumed from %s at iteration %d", resume_path, start)
        return start

    def set_lr(self, iteration: int) -> float:
        """Set every group's learning rate for ``iteration`` (the AdaIN paper's decay); the base rate."""
        lr = self.cfg.lr / (1.0 + self.cfg.lr_decay * iteration)
        for group, scale in zip(self.optimizer.param_groups, self.lr_scales):
            group["lr"] = lr * scale
        return lr

    def save(self, iteration: int) -> None:
        """Write the checkpoint, the weights and (if asked) a snapshot; refuse non-finite weights."""
        task, cfg = self.task, self.cfg
        state = {k: v.detach().cpu() for k, v in task.model.state_dict().items()}
        # every rank checks (and agrees), so no rank waits in a collective for one that stopped
        if self.ctx.any(not _all_finite(state), self.device):  # never replace a good checkpoint with broken weights
            raise TrainingDiverged(f"weights became non-finite by iteration {iteration}; {self.kept()} (lower --lr?)")
        if not self.ctx.is_main:
            return
        ck = {**training_header(task.name, iteration, config_to_dict(cfg)),
              "model": state, "optimizer": self.optimizer.state_dict(), "rng": rng_state(self.generator)}
        save_checkpoint(ck, self.ckpt_path)
        task.save_weights(self.weights_path)
        if cfg.keep_snapshots:
            stem, suffix = os.path.splitext(task.weights_name)
            task.save_weights(self.out_dir / "snapshots" / f"{stem}_iter{iteration:07d}{suffix}")


def _optimize(run: _Run, model: torch.nn.Module, done: int, want_sample: bool) -> StepOutput:
    """One step of the task and of the optimizer; raises when the loss is non-finite on any rank."""
    out = run.task.step(model, want_sample)
    if run.ctx.any(not math.isfinite(float(out.loss.detach())), run.device):
        raise TrainingDiverged(f"the loss became non-finite at iteration {done}; {run.kept()} "
                               "(lower --lr or the loss weights?)")
    run.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    run.optimizer.step()
    return out


def _iterate(run: _Run, model: torch.nn.Module, start: int, csv_log: CsvLog, progress: bool, desc: str
             ) -> tuple[int, dict[str, float], int]:
    """Train from ``start`` to the end or the time limit; the last iteration done, its losses and skipped files."""
    cfg, ctx = run.cfg, run.ctx
    bar = tqdm(total=cfg.iterations, initial=start, disable=not (progress and ctx.is_main),
               desc=desc, unit="it", dynamic_ncols=True)
    last: dict[str, float] = {c: float("nan") for c in run.task.columns}
    skipped = 0
    t0 = time.time()
    done = start
    try:
        for iteration in range(start, cfg.iterations):
            lr = run.set_lr(iteration)
            done = iteration + 1
            want_sample = ctx.is_main and cfg.sample_every > 0 and done % cfg.sample_every == 0
            out = _optimize(run, model, done, want_sample)
            skipped += out.skipped
            if done % cfg.log_every == 0 or done == cfg.iterations:
                last = {k: float(ctx.mean(v.detach().float())) for k, v in out.parts.items()}
                bar.set_postfix({k: f"{v:.4g}" for k, v in last.items()} | {"lr": f"{lr:.2e}"})
                if ctx.is_main:
                    csv_log.write(iteration=done, lr=lr, elapsed_s=round(time.time() - t0, 1), **last)
            if want_sample and out.sample is not None:
                save_image(out.sample.detach().float().clamp(0, 1), run.out_dir / "samples" / f"iter_{done:07d}.jpg",
                           quality=85)
            out_of_time = ctx.any(cfg.time_limit_s > 0 and time.time() - t0 > cfg.time_limit_s, run.device)
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations or out_of_time:
                run.save(done)
            bar.update(1)
            if out_of_time:
                log.info("time limit of %.0f s reached at iteration %d; checkpoint saved", cfg.time_limit_s, done)
                break
    finally:
        bar.close()
    return done, last, skipped


def _train(
    task_factory: Callable[[torch.device, torch.Generator], TrainTask],
    cfg: Any,
    ctx: DistributedContext,
    device: torch.device,
    out_dir: Path,
    resume_path: Path | None,
    progress: bool,
    desc: str,
) -> TrainResult:
    """One run of the shared loop on this rank: build, resume, iterate, checkpoint."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    task = task_factory(device, generator)
    optimizer, lr_scales = _make_optimizer(task, cfg)
    run = _Run(task, cfg, ctx, device, out_dir, optimizer, lr_scales, generator)
    start = 0 if resume_path is None else run.resume(resume_path)
    model = _wrap_distributed(task.model, ctx, device)
    task.start(start, ctx)

    csv_log = CsvLog(out_dir / "losses.csv", ["iteration", *task.columns, "lr", "elapsed_s"])
    if ctx.is_main:
        _prepare_run_folder(cfg, out_dir, csv_log, start)
    done, last, skipped = _iterate(run, model, start, csv_log, progress, desc)
    if resume_path is not None and start >= cfg.iterations and not run.ckpt_path.exists():
        run.save(start)  # resumed from a checkpoint elsewhere that is already past the end: keep it here
    return TrainResult(iteration=max(done, start), checkpoint=run.ckpt_path, weights=run.weights_path,
                       losses=last, skipped_files=skipped)
