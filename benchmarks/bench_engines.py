"""Whole-process time and peak memory of ``adain stylize`` on each engine, and model-load time.

    python benchmarks/bench_engines.py [--repeats 3] [--size 512] [--content kodim04.jpg] [--style vangogh_the-starry-night.jpg]

Each run is a fresh process (``python -m adain stylize ... -o <tmp>.jpg``), timed from the parent,
its CPU time (user + system) and peak RSS read from ``wait4``, so the figures are what a user waits
for; the engines take turns (round robin), so a change in a shared machine's load falls on each. Rows:

* ``onnx, first run``: an empty graph cache, so the run builds the graphs (torch export) first;
* ``onnx``: later runs, graphs cached (never imports torch);
* ``torch``: the reference engine, its defaults (bf16 on a CPU with native bf16);
* ``load``: in a fresh process, importing each engine's runtime, then loading its models
  (``OnnxStyler.from_pretrained``: hashing the weights, reading and checking the graphs, two
  onnxruntime sessions; ``Styler.from_pretrained``: safetensors, dequantising the 8-bit VGG).

Medians of ``--repeats`` (the first-run row: of ``--first-repeats``, each with a fresh cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "datasets" / "samples"

_LOAD = {
    "onnx": ("import onnxruntime", "from adain.engines.onnx_styler import OnnxStyler; OnnxStyler.from_pretrained()"),
    "torch": ("import torch", "from adain.styler import Styler; Styler.from_pretrained()"),
}
_LOAD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter(); exec(sys.argv[1]); t1 = time.perf_counter(); exec(sys.argv[2]); t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1}))
"""


def _env(cache: Path) -> dict[str, str]:
    return os.environ | {"WARPSTYLE_ONNX_CACHE": str(cache), "PYTHONPATH": str(ROOT)}


def run_once(args: list[str], cache: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one ``python -m adain`` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "adain", "-q", *args], env=_env(cache), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"adain {' '.join(args)} failed ({proc.returncode}): {err.strip()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def load_times(engine: str, cache: Path, repeats: int) -> dict[str, float]:
    rows = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, *_LOAD[engine]], env=_env(cache), cwd=ROOT,
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def _cpu() -> str:
    """The CPU's model name and whether it has native bf16 (which the torch engine's default uses)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), platform.machine())
    return name + (" (avx512_bf16)" if "avx512_bf16" in info else " (no native bf16)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--first-repeats", type=int, default=1)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--content", default="kodim04.jpg")
    ap.add_argument("--style", default="vangogh_the-starry-night.jpg")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    out = tmp / "x.jpg"
    base = ["stylize", "-c", str(SAMPLES / "content" / a.content), "-s", str(SAMPLES / "texture" / a.style),
            "--size", str(a.size), "-o", str(out), "--no-progress"]
    cache = tmp / "cache"
    print(f"CPU: {_cpu()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; python "
          f"{platform.python_version()}; adain stylize --size {a.size}, {a.content} x {a.style}; medians")
    firsts = [run_once([*base, "--engine", "onnx"], tmp / f"fresh{i}") for i in range(a.first_repeats)]
    run_once([*base, "--engine", "onnx"], cache)  # builds this cache's graphs, not timed
    # Round robin, so that a change in the machine's load (other jobs) falls on every engine alike.
    engines = {"onnx": "onnx", "auto (graphs built: onnx)": "auto", "torch": "torch"}
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in engines}
    for _ in range(a.repeats):
        for name, engine in engines.items():
            runs[name].append(run_once([*base, "--engine", engine], cache))
    rows = [("onnx, first run (builds the graphs)", firsts), *runs.items()]
    print(f"{'whole process':40s} {'wall s':>7s} {'CPU s':>6s} {'peak RSS MiB':>13s}   (runs: wall s)")
    for name, rs in rows:
        walls = [w for w, _, _ in rs]
        print(f"{name:40s} {statistics.median(walls):7.2f} {statistics.median(c for _, c, _ in rs):6.2f} "
              f"{statistics.median(r for _, _, r in rs):13.0f}   ({', '.join(f'{w:.2f}' for w in walls)})")
    print(f"load average now {os.getloadavg()[0]:.1f}")
    print(f"{'model load (fresh process)':40s} {'import s':>8s} {'load s':>13s}")
    for engine in ("onnx", "torch"):
        t = load_times(engine, cache, a.repeats)
        print(f"{engine:40s} {t['import_s']:8.2f} {t['load_s']:13.2f}")


if __name__ == "__main__":
    main()
