"""Crash test: SIGKILL training runs and ``warpstyle run`` at random moments, then check what is on disk.

Each cycle starts a command, kills it with SIGKILL either after a random delay or the moment a
temp file of an atomic write appears (that is, during a checkpoint / image / field write), and
then checks:

* trainers (``adain train-styler``, ``warpstyle train-warper``, checkpoint every iteration,
  ``--resume auto``): the newest ``checkpoint.pt`` loads with ``load_checkpoint``, its iteration
  never goes backwards, the weights file loads with ``from_pretrained``, every sample image and
  ``config.json`` is whole, and the next run resumes from exactly that iteration. After the kills a
  last ``--resume auto`` run must reach the target iteration, and ``losses.csv`` must hold each
  iteration exactly once;
* ``warpstyle run`` with ``--save-warped --save-field --save-sheet``: every output present after the
  kill is a whole, loadable image or field (never half-written).

Leftover temp files (``.<name>.XXXXXXXX.tmp``) are counted; they are never read as checkpoints,
and a trainer removes them from its run folder when it starts.

    python scripts/crash_test.py                          # 50 + 50 + 20 kills, about 8 minutes here
    python scripts/crash_test.py --styler 5 --warper 0 --run 0 --json /tmp/crash.json

Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "datasets" / "samples"
Target = Literal["styler", "warper", "run"]
TEMP_SUFFIX = ".tmp"


@dataclasses.dataclass
class Tally:
    """What happened to one target over all its cycles."""

    target: str
    kills: int = 0
    kills_random: int = 0
    kills_on_write: int = 0
    mid_write: int = 0  # a temp file of an atomic write was still there after the kill
    before_first_checkpoint: int = 0
    finished_before_kill: int = 0
    checkpoints_verified: int = 0
    outputs_verified: int = 0
    resumes_verified: int = 0
    stale_temp_files_seen: int = 0
    final_iteration: int | None = None
    target_iteration: int | None = None
    failures: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


# ---------------------------------------------------------------------------- commands
def make_data(root: Path) -> tuple[Path, Path]:
    from tests.train_fixtures import make_image_folder

    return (make_image_folder(root / "photos", count=6, seed=11),
            make_image_folder(root / "paint", count=4, seed=12, corrupt=False))


def trainer_command(target: Target, data: tuple[Path, Path], out: Path, iterations: int) -> list[str]:
    photos, paint = data
    common = ["--output-dir", str(out), "--iterations", str(iterations), "--checkpoint-every", "1", "--log-every", "1",
              "--workers", "0", "--device", "cpu", "--resume", "auto", "--no-progress"]
    if target == "styler":
        return [sys.executable, "-m", "adain", "-v", "train-styler",
                "--config", str(ROOT / "configs" / "train_styler_smoke.toml"),
                "--content-dir", str(photos), "--style-dir", str(paint), "--sample-every", "1", *common]
    return [sys.executable, "-m", "warpstyle", "-v", "train-warper", "--image-dir", str(photos), "--batch-size", "1",
            "--fp32", *common]


def run_command(out: Path, field_format: str, size: int) -> list[str]:
    return [sys.executable, "-m", "warpstyle", "run", "-c", str(SAMPLES / "content" / "kodim23.jpg"),
            "-g", str(SAMPLES / "geometry" / "munch_the-scream.jpg"),
            "-t", str(SAMPLES / "texture" / "vangogh_the-starry-night.jpg"), "--size", str(size),
            "-o", str(out / "o.png"), "--save-warped", "--save-field", field_format, "--save-sheet"]


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def _temp_files(*dirs: Path) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        if d.is_dir():
            out += [p for p in d.iterdir() if p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX)]
    return out


def kill_cycle(cmd: list[str], watch: list[Path], *, mode: str, max_delay: float, rng: random.Random,
               threads: int, log_path: Path, timeout: float = 120.0, trigger: str = ".") -> tuple[bool, bool]:
    """Start ``cmd``; SIGKILL it after a random delay (``mode="random"``) or as a temp file whose name
    starts with ``trigger`` appears in ``watch`` (``mode="write"``, after 0-20 ms more).

    Returns:
        (killed, a temp file of an atomic write was left at the kill).
    """
    before = set(_temp_files(*watch))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=_env(threads), start_new_session=True)
        t0 = time.monotonic()
        deadline = t0 + (rng.uniform(0.0, max_delay) if mode == "random" else timeout)
        while time.monotonic() < deadline and proc.poll() is None:
            if mode == "write" and any(p.name.startswith(trigger) for p in set(_temp_files(*watch)) - before):
                time.sleep(rng.uniform(0.0, 0.02))
                break
            time.sleep(0.001 if mode == "write" else 0.01)
        if proc.poll() is not None:
            return False, False
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: data-loader workers too
        proc.wait()
    return True, bool(set(_temp_files(*watch)) - before)


# ---------------------------------------------------------------------------- checks
class Checker:
    """Loads what a killed command left, with the library's own loaders (one shared VGG encoder)."""

    def __init__(self) -> None:
        from adain.base.encoder.vgg import VGGEncoder

        self.encoder = VGGEncoder()  # random weights: only the warper's regressor is under test

    def trainer_dir(self, target: Target, out: Path, previous: int) -> int:
        """Check a run folder; return the checkpoint's iteration (0 if none). Raises AssertionError."""
        from adain.base.storage.checkpoint import load_checkpoint
        from adain.decoder import Decoder
        from adain.base.image import load_image
        from warpstyle.geometry.warper import Warper

        ck_path = out / "checkpoint.pt"
        if not ck_path.exists():
            assert previous == 0, f"checkpoint.pt vanished after iteration {previous}"
            return 0
        fmt = "adain.train" if target == "styler" else "warpstyle.train"
        ck = load_checkpoint(ck_path, expected_format=fmt)
        it = int(ck["iteration"])
        assert it >= previous, f"checkpoint went back from iteration {previous} to {it}"
        if target == "styler":
            Decoder.from_pretrained(out / "decoder.safetensors")
        else:
            Warper.from_pretrained(out / "warper.safetensors", encoder=self.encoder)
        if (out / "config.json").exists():
            json.loads((out / "config.json").read_text())
        for p in sorted((out / "samples").glob("*.jpg")) if (out / "samples").is_dir() else []:
            load_image(p)
        return it

    def run_outputs(self, out: Path) -> int:
        """Load every finished output of ``warpstyle run``; return how many there were."""
        from adain.base.image import load_image
        from warpstyle.fields.field import WarpField

        n = 0
        for p in sorted(out.iterdir()):
            if p.name.startswith("."):
                continue  # temp files of interrupted atomic writes
            if p.suffix in (".png", ".jpg"):
                load_image(p)
            elif p.suffix in (".npy", ".flo"):
                WarpField.load(p)
            else:
                raise AssertionError(f"unexpected output {p.name}")
            n += 1
        return n


def _resumed_from(log_path: Path, start_offset: int) -> int | None:
    """The iteration the last run reported resuming from ("resumed from ... at iteration N")."""
    text = log_path.read_bytes()[start_offset:].decode(errors="replace")
    found = None
    for line in text.splitlines():
        if "resumed from" in line and "at iteration" in line:
            found = int(line.rsplit("at iteration", 1)[1].split()[0])
    return found


def crash_trainer(target: Target, kills: int, work: Path, data: tuple[Path, Path], *, rng: random.Random,
                  checker: Checker, threads: int = 1, max_delay: float = 8.0, verbose: bool = True) -> Tally:
    """``kills`` SIGKILL cycles of one trainer in one run folder, then a resume to the target."""
    tally = Tally(target)
    t_start = time.monotonic()
    out = work / f"run_{target}"
    shutil.rmtree(out, ignore_errors=True)
    log_path = work / f"{target}.log"
    log_path.write_bytes(b"")
    watch = [out, out / "samples"]
    cmd = trainer_command(target, data, out, iterations=1_000_000)
    verified = 0
    for i in range(kills):
        mode = "write" if i % 2 else "random"
        # Every other write kill aims at the training checkpoint itself; the rest at any atomic write
        # (weights, sample image, config).
        trigger = ".checkpoint.pt." if i % 4 == 1 else "."
        offset = log_path.stat().st_size
        killed, mid_write = kill_cycle(cmd, watch, mode=mode, max_delay=max_delay, rng=rng, threads=threads,
                                       log_path=log_path, trigger=trigger)
        if not killed:
            tally.finished_before_kill += 1
            tally.failures.append(f"cycle {i}: the run exited before the kill; see {log_path}")
            continue
        tally.kills += 1
        tally.kills_random += mode == "random"
        tally.kills_on_write += mode == "write"
        tally.mid_write += mid_write
        tally.stale_temp_files_seen = max(tally.stale_temp_files_seen, len(_temp_files(*watch)))
        resumed = _resumed_from(log_path, offset)
        if verified > 0 and resumed is not None and resumed != verified:
            tally.failures.append(f"cycle {i}: resumed from iteration {resumed}, newest checkpoint was {verified}")
        elif verified > 0 and resumed is not None:
            tally.resumes_verified += 1
        try:
            it = checker.trainer_dir(target, out, verified)
        except Exception as e:  # noqa: BLE001 - every failure is a finding to report
            tally.failures.append(f"cycle {i} ({mode}): {type(e).__name__}: {e}")
            continue
        if it == 0:
            tally.before_first_checkpoint += 1
        else:
            tally.checkpoints_verified += 1
        verified = it
        if verbose:
            print(f"{target} kill {i + 1}/{kills} ({mode}{', mid-write' if mid_write else ''}): "
                  f"checkpoint at iteration {it}", flush=True)
    # The last run: resume and finish a few iterations past the newest checkpoint.
    target_it = verified + 3
    tally.target_iteration = target_it
    offset = log_path.stat().st_size
    with open(log_path, "ab") as log:
        res = subprocess.run(trainer_command(target, data, out, iterations=target_it), stdout=log, stderr=log,
                             env=_env(threads), timeout=600)
    resumed = _resumed_from(log_path, offset)
    try:
        assert res.returncode == 0, f"final run exited {res.returncode}; see {log_path}"
        assert verified == 0 or resumed == verified, f"final run resumed from {resumed}, expected {verified}"
        final = checker.trainer_dir(target, out, verified)
        assert final == target_it, f"final checkpoint at {final}, expected {target_it}"
        tally.final_iteration = final
        import csv

        with open(out / "losses.csv", newline="") as f:
            iterations = [int(r["iteration"]) for r in csv.DictReader(f)]
        assert iterations == list(range(1, target_it + 1)), f"losses.csv iterations {iterations[:5]}... not 1..{target_it}"
        assert not _temp_files(*watch), f"temp files left after a clean run: {_temp_files(*watch)}"
    except Exception as e:  # noqa: BLE001
        tally.failures.append(f"final resume: {type(e).__name__}: {e}")
    tally.seconds = round(time.monotonic() - t_start, 1)
    return tally


def crash_run(kills: int, work: Path, *, rng: random.Random, checker: Checker, threads: int = 1,
              size: int = 768, verbose: bool = True) -> Tally:
    """``kills`` SIGKILL cycles of ``warpstyle run`` with every extra output; check what is left."""
    tally = Tally("run")
    t_start = time.monotonic()
    out = work / "run_outputs"
    log_path = work / "run.log"
    log_path.write_bytes(b"")
    # Time one full run to spread the random kills over it.
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.monotonic()
    with open(log_path, "ab") as log:
        subprocess.run(run_command(out, "npy", size), stdout=log, stderr=log, env=_env(threads), check=True)
    full = time.monotonic() - t0
    for i in range(kills):
        mode = "write" if i % 2 else "random"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cmd = run_command(out, "flo" if i % 4 >= 2 else "npy", size)
        # Write kills cycle through the outputs, in the order the CLI writes them.
        trigger = (".o.png.", ".o_warped.png.", ".o_field.", ".o_sheet.jpg.")[(i // 2) % 4]
        killed, mid_write = kill_cycle(cmd, [out], mode=mode, max_delay=full * 1.1, rng=rng, threads=threads,
                                       log_path=log_path, trigger=trigger)
        tally.finished_before_kill += not killed
        tally.kills += killed
        tally.kills_random += killed and mode == "random"
        tally.kills_on_write += killed and mode == "write"
        tally.mid_write += mid_write
        tally.stale_temp_files_seen = max(tally.stale_temp_files_seen, len(_temp_files(out)))
        try:
            n = checker.run_outputs(out)
            tally.outputs_verified += n
        except Exception as e:  # noqa: BLE001
            tally.failures.append(f"cycle {i} ({mode}): {type(e).__name__}: {e}")
            continue
        if verbose:
            what = "finished before the kill" if not killed else f"kill ({mode}{', mid-write' if mid_write else ''})"
            print(f"run {i + 1}/{kills} {what}: {n} whole outputs", flush=True)
    tally.seconds = round(time.monotonic() - t_start, 1)
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styler", type=int, default=50, help="kills of adain train-styler (default 50)")
    ap.add_argument("--warper", type=int, default=50, help="kills of warpstyle train-warper (default 50)")
    ap.add_argument("--run", type=int, default=20, help="kills of warpstyle run with extra outputs (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="OMP threads per killed process (default 1)")
    ap.add_argument("--max-delay", type=float, default=8.0, help="longest random delay before a kill, s (default 8)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep run folders here (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the tallies as JSON")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="crash_test_"))
    work.mkdir(parents=True, exist_ok=True)
    data = make_data(work / "data")
    checker = Checker()
    tallies = []
    if args.styler:
        tallies.append(crash_trainer("styler", args.styler, work, data, rng=rng, checker=checker, threads=args.threads,
                                     max_delay=args.max_delay))
    if args.warper:
        tallies.append(crash_trainer("warper", args.warper, work, data, rng=rng, checker=checker, threads=args.threads,
                                     max_delay=args.max_delay * 1.5))
    if args.run:
        tallies.append(crash_run(args.run, work, rng=rng, checker=checker, threads=args.threads))
    print("\n| target | kills (random / on write) | killed mid-write | before 1st checkpoint | checkpoints loaded "
          "| resumes checked | outputs loaded | final | failures | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in tallies:
        final = "-" if t.target_iteration is None else f"{t.final_iteration}/{t.target_iteration}"
        print(f"| {t.target} | {t.kills} ({t.kills_random} / {t.kills_on_write}) | {t.mid_write} | "
              f"{t.before_first_checkpoint} | {t.checkpoints_verified} | {t.resumes_verified} | {t.outputs_verified} "
              f"| {final} | {len(t.failures)} | {t.seconds} |")
    for t in tallies:
        for f in t.failures:
            print(f"FAIL {t.target}: {f}")
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(t) for t in tallies], indent=2) + "\n")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(t.failures for t in tallies) else 0


if __name__ == "__main__":
    sys.exit(main())
