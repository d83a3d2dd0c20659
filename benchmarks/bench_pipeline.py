"""End-to-end Pipeline.run at 512 and 1024 px on CPU, fp32 and bf16; model loading timed separately.

    python benchmarks/bench_pipeline.py [--repeats 5] [--sizes 512,1024] [--processes 1]

Each configuration runs in its own process (peak RSS is that run's, models included).
"tuned" rows call warpstyle.tune_cpu_allocator() first, as the warpstyle CLI does.
With --processes N each configuration runs in N fresh processes one after another: on this
shared machine a process's median can sit 5-10 % above or below the next one's, so the row shows
the median of the N medians and their range.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_time, peak_rss_mb, run_isolated  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "datasets", "samples")


def one(cfg: dict) -> dict:
    from warpstyle import tune_cpu_allocator
    from warpstyle.pipeline import Pipeline

    if cfg["tuned"]:
        tune_cpu_allocator()
    t0 = time.perf_counter()
    pipe = Pipeline.from_pretrained()
    load = time.perf_counter() - t0
    c = os.path.join(SAMPLES, "content", "kodim04.jpg")
    g = os.path.join(SAMPLES, "geometry", "munch_the-scream.jpg")
    tx = os.path.join(SAMPLES, "texture", "vangogh_the-starry-night.jpg")
    t = median_time(lambda: pipe.run(c, g, tx, size=cfg["size"], bf16=cfg["bf16"]), cfg["repeats"])
    return {**cfg, "seconds": t, "load_seconds": load, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--processes", type=int, default=1, help="fresh processes per configuration")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    import torch

    print(f"# pipeline on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| size | precision | allocator | run, warm (s) | model loading (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for size in [int(v) for v in args.sizes.split(",")]:
        for bf16, tuned in ((False, False), (True, False), (True, True)):
            cfg = {"size": size, "bf16": bf16, "tuned": tuned, "repeats": args.repeats}
            rs = [run_isolated(__file__, cfg) for _ in range(max(1, args.processes))]
            secs = [r["seconds"] for r in rs]
            run = f"{statistics.median(secs):.2f}"
            if len(rs) > 1:
                run += f" ({min(secs):.2f}-{max(secs):.2f})"
            load = statistics.median(r["load_seconds"] for r in rs)
            rss = max(r["peak_rss_mb"] for r in rs)
            print(f"| {size} | {'bf16' if bf16 else 'fp32'} | {'tuned' if tuned else 'default'} | {run} "
                  f"| {load:.2f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
