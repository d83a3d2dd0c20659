"""The one training loop: resume refusal, non-finite guard, run-folder lock, CSV log, device names."""

import dataclasses
from pathlib import Path

import pytest
import torch

from adain.base.storage.checkpoint import load_checkpoint
from adain.base.errors import ConfigError
from adain.base.training import (
    CsvLog, StepOutput, TrainingDiverged, resolve_device, run_folder_lock, run_training,
)


@dataclasses.dataclass
class _Cfg:
    output_dir: str
    iterations: int = 4
    lr: float = 0.1
    lr_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    log_every: int = 1
    sample_every: int = 0
    checkpoint_every: int = 2
    keep_snapshots: bool = False
    time_limit_s: float = 0.0


class _Task:
    """Fit one scalar to 3: the smallest task the loop can drive."""

    name = "test.train"
    weights_name = "w.pt"
    resume_hint = ""
    columns = ("loss",)

    def __init__(self, bad_at: int | None = None) -> None:
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.bad_at, self.calls = bad_at, 0

    def start(self, iteration, ctx):
        self.calls = iteration

    def step(self, model, want_sample):
        self.calls += 1
        loss = (model.weight.sum() - 3.0) ** 2
        if self.bad_at is not None and self.calls >= self.bad_at:
            loss = loss * float("nan")
        return StepOutput(loss=loss, parts={"loss": loss})

    def save_weights(self, path: Path) -> None:
        torch.save({k: v.detach() for k, v in self.model.state_dict().items()}, path)


def test_runs_logs_and_checkpoints(tmp_path):
    r = run_training(lambda d, g: _Task(), _Cfg(str(tmp_path / "r")), progress=False)
    assert r.iteration == 4 and r.weights.is_file()
    assert load_checkpoint(r.checkpoint, expected_format="test.train")["iteration"] == 4
    rows = (tmp_path / "r" / "losses.csv").read_text().splitlines()
    assert rows[0] == "iteration,loss,lr,elapsed_s" and len(rows) == 5


def test_existing_run_without_resume_is_refused(tmp_path):
    cfg = _Cfg(str(tmp_path / "r"), iterations=2)
    run_training(lambda d, g: _Task(), cfg, progress=False)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match="--resume auto"):
        run_training(lambda d, g: _Task(), cfg, progress=False)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before
    r = run_training(lambda d, g: _Task(), dataclasses.replace(cfg, iterations=4), resume="auto", progress=False)
    assert r.iteration == 4


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _Cfg(str(tmp_path / "r"), iterations=6)
    with pytest.raises(TrainingDiverged, match="non-finite at iteration 3"):
        run_training(lambda d, g: _Task(bad_at=3), cfg, progress=False)
    ck = load_checkpoint(tmp_path / "r" / "checkpoint.pt", expected_format="test.train")
    assert ck["iteration"] == 2 and torch.isfinite(ck["model"]["weight"]).all()


def test_non_finite_weights_are_never_saved(tmp_path):
    cfg = _Cfg(str(tmp_path / "r"), iterations=2, lr=1e30)  # the first step blows the weight up
    with pytest.raises(TrainingDiverged):
        run_training(lambda d, g: _Task(), cfg, progress=False)
    assert not (tmp_path / "r" / "checkpoint.pt").exists() and not (tmp_path / "r" / "w.pt").exists()


def test_run_folder_is_locked(tmp_path):
    with run_folder_lock(tmp_path, True):
        with pytest.raises(ConfigError, match="in use by another training run"):
            with run_folder_lock(tmp_path, True):
                pass
    with run_folder_lock(tmp_path, True):  # released
        pass


@pytest.mark.parametrize("name", ["mps", "meta", "xla", "gpu", "cuda:x"])
def test_unsupported_devices_are_one_line_errors(name):
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_csv_rewind_drops_rows_after_the_resume_point(tmp_path):
    log = CsvLog(tmp_path / "l.csv", ["iteration", "loss"])
    for i in range(1, 5):
        log.write(iteration=i, loss=float(i))
    log.rewind(2)
    assert (tmp_path / "l.csv").read_text().splitlines() == ["iteration,loss", "1,1", "2,2"]
