"""Peak memory and wall time of ``adain stylize`` and ``warpstyle run`` at 4K (3840x2160) and 8K on CPU.

    python benchmarks/bench_memory_4k.py [--sizes 3840,7680] [--precisions bf16,fp32] [--only stylize|run]
                                         [--fp32] [--decoder PATH] [--json out.json]

The content is kodim23 upscaled to 16:9 at each size (3840x2160, 7680x4320). For ``warpstyle run``
the geometry (The Scream) is stretched to 16:9 too, so the output is the content's 16:9 size (the
run's output takes the geometry's aspect ratio). Each command runs as its own child process and
its peak RSS comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of that child alone, models
included). Also prints the pre-flight's plan and estimate for the run (whole image, or the tiles it
picks: ``adain.base.memory``) and this machine's MemAvailable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "datasets" / "samples"


def measure(cmd: list[str]) -> dict:
    """Run ``cmd``; return exit status, wall seconds, peak RSS (MiB) and the last stderr line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read the pipes while waiting, then reap with wait4 for this child's own rusage.
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = err.decode(errors="replace").strip().splitlines()
    return {"exit": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024), "stderr_tail": lines[-1] if lines else "",
            "stdout": out.decode(errors="replace").strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help="output longer sides, px, comma-separated (default 3840)")
    ap.add_argument("--size", type=int, default=None, help="one output longer side (same as --sizes N)")
    ap.add_argument("--only", choices=["stylize", "run"], default=None)
    ap.add_argument("--precisions", default=None, help="bf16 and/or fp32, comma-separated (default bf16)")
    ap.add_argument("--fp32", action="store_true", help="same as --precisions fp32")
    ap.add_argument("--decoder", type=Path, default=None,
                    help="decoder weights to run instead of the bundled one (e.g. a training run's candidate)")
    ap.add_argument("--extra", default="", help="more options for both CLIs, e.g. '--tile 768'")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from PIL import Image

    from adain.base.memory import available_bytes
    from adain.decoder import Decoder
    from adain.styler import Styler

    sizes = [int(v) for v in (args.sizes or str(args.size or 3840)).split(",")]
    precisions = (args.precisions or ("fp32" if args.fp32 else "bf16")).split(",")
    work = Path(tempfile.mkdtemp(prefix="bench4k_"))
    texture = SAMPLES / "texture" / "vangogh_the-starry-night.jpg"
    geometry = work / "geometry_16x9.png"
    Image.open(SAMPLES / "geometry" / "munch_the-scream.jpg").convert("RGB").resize((640, 360), Image.BICUBIC).save(geometry)
    styler = Styler(None, Decoder.from_pretrained(args.decoder))  # type: ignore[arg-type]  # for its pre-flight only
    rows = {}
    avail = available_bytes()
    bf16_native = "avx512_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, native bf16: {bf16_native}, "
          + (f"MemAvailable {avail / 2**30:.1f} GiB" if avail else "MemAvailable unknown"), flush=True)
    print(f"inputs and outputs in {work}", flush=True)
    for size in sizes:
        hw = (round(size * 9 / 16), size)
        content = work / f"content_{size}.png"
        Image.open(SAMPLES / "content" / "kodim23.jpg").convert("RGB").resize((hw[1], hw[0]), Image.BICUBIC).save(content)
        commands = {
            "stylize": ([sys.executable, "-m", "adain", "stylize", "--content", str(content), "--style", str(texture),
                         "--size", str(size), "-o", str(work / f"stylize_{size}.png")], 1.0),
            "run": ([sys.executable, "-m", "warpstyle", "run", "--content", str(content), "--geometry", str(geometry),
                     "--texture", str(texture), "--size", str(size), "--max-size", str(max(size, 4096)),
                     "-o", str(work / f"run_{size}.png")], 0.8),
        }
        for prec in precisions:
            for name, (cmd, alpha) in commands.items():
                if args.only and name != args.only:
                    continue
                cmd = cmd + (["--decoder", str(args.decoder)] if args.decoder else []) + (["--fp32"] if prec == "fp32" else [])
                cmd += args.extra.split()
                plan = styler.plan(1, alpha=alpha, bf16=prec == "bf16")
                try:
                    planned = styler.preflight(hw, plan, styles=[(250, 400)])
                    tiles = f"tiles {planned.tile} px" if planned.tile else "whole image"
                except Exception as e:  # noqa: BLE001 - the CLI will refuse too; the row says so
                    tiles = f"refused ({e})"
                res = measure(cmd)
                res.update(output_hw=hw, precision=prec, plan=tiles)
                rows[f"{name}_{size}_{prec}"] = res
                print(f"{name:8s} {hw[1]}x{hw[0]} {prec}: exit {res['exit']}, {res['seconds']} s, peak RSS "
                      f"{res['peak_rss_mib'] / 1024:.2f} GiB (pre-flight: {tiles})"
                      + (f"; stderr: {res['stderr_tail']}" if res["exit"] else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
