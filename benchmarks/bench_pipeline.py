"""End-to-end Pipeline.run at 512 and 1024 px on CPU, fp32 and bf16; model loading timed separately.

    python benchmarks/bench_pipeline.py [--repeats 5] [--sizes 512,1024] [--processes 1]
        [--precisions fp32,bf16] [--decoders bundled,PATH]

With several --decoders, each configuration runs each decoder in turn (interleaved, so that a
shared machine's drift falls on both alike); "bundled" is the shipped file. On a CPU without
native bf16, PyTorch emulates it about 200x slower: pass --precisions fp32 there.

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
    pipe = Pipeline.from_pretrained(decoder=cfg.get("decoder"))
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
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated from fp32, bf16")
    ap.add_argument("--decoders", default="bundled", help="comma-separated decoder weights; 'bundled' = the shipped one")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    import torch

    print(f"# pipeline on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| size | precision | allocator | decoder | run, warm (s) | model loading (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    precisions = [v.strip() for v in args.precisions.split(",")]
    bad = [v for v in precisions if v not in ("fp32", "bf16")]
    if bad:
        ap.error(f"--precisions takes fp32 and/or bf16; got {bad}")
    decoders = [v.strip() for v in args.decoders.split(",")]
    configs = [(False, False)] * ("fp32" in precisions) + [(True, False), (True, True)] * ("bf16" in precisions)
    for size in [int(v) for v in args.sizes.split(",")]:
        for bf16, tuned in configs:
            by_decoder: dict[str, list[dict]] = {d: [] for d in decoders}
            for _ in range(max(1, args.processes)):
                for d in decoders:
                    cfg = {"size": size, "bf16": bf16, "tuned": tuned, "repeats": args.repeats,
                           "decoder": None if d == "bundled" else d}
                    by_decoder[d].append(run_isolated(__file__, cfg))
            for d, rs in by_decoder.items():
                report(size, bf16, tuned, d, rs)


def report(size: int, bf16: bool, tuned: bool, decoder: str, rs: list[dict]) -> None:
    """One table row: the median over processes (and their range), loading time and peak RSS."""
    secs = [r["seconds"] for r in rs]
    run = f"{statistics.median(secs):.2f}"
    if len(rs) > 1:
        run += f" ({min(secs):.2f}-{max(secs):.2f})"
    load = statistics.median(r["load_seconds"] for r in rs)
    rss = max(r["peak_rss_mb"] for r in rs)
    print(f"| {size} | {'bf16' if bf16 else 'fp32'} | {'tuned' if tuned else 'default'} | {decoder} | {run} "
          f"| {load:.2f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
