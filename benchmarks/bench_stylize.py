"""Time Styler.stylize at 256, 512 and 1024 px on this machine's CPU, fp32 and bf16, with peak memory.

    python benchmarks/bench_stylize.py [--repeats 5]

Models are loaded before timing (warm); each configuration runs in its own process so the peak
RSS column is that configuration's. Single-scale and the default multi-scale schedule are both shown.
"tuned" rows call adain.tune_cpu_allocator() first, as the adain and warpstyle CLIs do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_time, peak_rss_mb, run_isolated  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "datasets", "samples")


def one(cfg: dict) -> dict:
    import torch

    from adain.base.image import load_image
    from adain.base.runtime import tune_cpu_allocator
    from adain.styler import Styler

    if cfg["tuned"]:
        tune_cpu_allocator()
    torch.manual_seed(0)
    styler = Styler.from_pretrained()
    c = load_image(os.path.join(SAMPLES, "content", "kodim04.jpg"))
    s = styler.encode_styles([load_image(os.path.join(SAMPLES, "texture", "vangogh_the-starry-night.jpg"))])
    scales = [cfg["size"]] if cfg["single"] else None
    t = median_time(lambda: styler.stylize(c, s, size=cfg["size"], scales=scales, bf16=cfg["bf16"]), cfg["repeats"])
    return {**cfg, "seconds": t, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="256,512,1024")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    import torch

    print(f"# stylize on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| size | schedule | precision | allocator | time (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for size in [int(v) for v in args.sizes.split(",")]:
        for single in (True, False):
            for bf16, tuned in ((False, False), (True, False), (True, True)):
                r = run_isolated(__file__, {"size": size, "single": single, "bf16": bf16, "tuned": tuned,
                                            "repeats": args.repeats})
                sched = "single" if single else "multi (auto)"
                print(f"| {size} | {sched} | {'bf16' if bf16 else 'fp32'} | {'tuned' if tuned else 'default'} "
                      f"| {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
