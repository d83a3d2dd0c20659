"""Peak memory and wall time of ``adain stylize`` and ``warpstyle run`` at 4K (3840 px) on CPU.

    python benchmarks/bench_memory_4k.py [--size 3840] [--only stylize|run] [--fp32] [--decoder PATH] [--json out.json]

The 4K content is kodim23 upscaled to 3840x2160. Each command runs as its own child process and
its peak RSS comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of that child alone, models
included). Also prints the pre-flight estimate the library makes before it starts
(``adain.base.memory.estimate_stylize_bytes``) and this machine's MemAvailable.
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
    ap.add_argument("--size", type=int, default=3840, help="output longer side, px (default 3840)")
    ap.add_argument("--only", choices=["stylize", "run"], default=None)
    ap.add_argument("--fp32", action="store_true", help="run the CLIs with --fp32 (default: bf16, the CPU default)")
    ap.add_argument("--decoder", type=Path, default=None,
                    help="decoder weights to run instead of the bundled one (e.g. a training run's candidate)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from PIL import Image

    from adain.base.memory import available_bytes, estimate_stylize_bytes

    work = Path(tempfile.mkdtemp(prefix="bench4k_"))
    content = work / "content_4k.png"
    Image.open(SAMPLES / "content" / "kodim23.jpg").convert("RGB").resize((3840, 2160), Image.BICUBIC).save(content)
    texture = SAMPLES / "texture" / "vangogh_the-starry-night.jpg"
    geometry = SAMPLES / "geometry" / "munch_the-scream.jpg"
    gw, gh = Image.open(geometry).size
    commands = {
        "stylize": ([sys.executable, "-m", "adain", "stylize", "--content", str(content), "--style", str(texture),
                     "--size", str(args.size), "-o", str(work / "stylize.png")], (round(2160 * args.size / 3840), args.size), 1.0),
        "run": ([sys.executable, "-m", "warpstyle", "run", "--content", str(content), "--geometry", str(geometry),
                 "--texture", str(texture), "--size", str(args.size), "-o", str(work / "run.png")],
                (round(gh * args.size / max(gh, gw)), round(gw * args.size / max(gh, gw))), 0.8),
    }
    if args.decoder is not None:
        commands = {k: (cmd + ["--decoder", str(args.decoder)], hw, alpha) for k, (cmd, hw, alpha) in commands.items()}
    if args.fp32:
        commands = {k: (cmd + ["--fp32"], hw, alpha) for k, (cmd, hw, alpha) in commands.items()}
    from adain.decoder import Decoder

    skips = Decoder.from_pretrained(args.decoder).skips  # None: the bundled decoder's
    rows = {}
    avail = available_bytes()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"MemAvailable {avail / 2**30:.1f} GiB" if avail else "MemAvailable unknown")
    for name, (cmd, hw, alpha) in commands.items():
        if args.only and name != args.only:
            continue
        est = estimate_stylize_bytes(hw, alpha=alpha, bf16=not args.fp32, skips=skips)
        res = measure(cmd)
        res["estimate_gib"] = round(est / 2**30, 2)
        res["output_hw"] = hw
        rows[name] = res
        print(f"{name:8s} {hw[1]}x{hw[0]} {'fp32' if args.fp32 else 'bf16'}: exit {res['exit']}, {res['seconds']} s, peak RSS "
              f"{res['peak_rss_mib'] / 1024:.2f} GiB (pre-flight estimate {res['estimate_gib']} GiB)"
              + (f"; stderr: {res['stderr_tail']}" if res["exit"] else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
