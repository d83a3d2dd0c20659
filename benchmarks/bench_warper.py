"""Time Warper.estimate (semantic matching, the default; the network, plain, with the alignment search and with the
pool4 similarity) and Warper.apply on CPU, in fp32 and bf16 (bf16 is fast only on a CPU with native bf16).

    python benchmarks/bench_warper.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_time  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "datasets", "samples")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import torch

    from adain.base.image import load_image, resize_longer
    from warpstyle.geometry.warper import Warper

    warper = Warper.from_pretrained()
    c = load_image(os.path.join(SAMPLES, "content", "kodim04.jpg"))
    g = load_image(os.path.join(SAMPLES, "geometry", "munch_the-scream.jpg"))
    from adain.base.runtime import default_bf16
    bf16_native = "native bf16" if default_bf16(torch.device("cpu")) else "no native bf16"
    print(f"# warper on {platform.processor() or platform.machine()} ({bf16_native}), {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| step | precision | time (s) |")
    print("|---|---|---|")
    for bf16 in (False, True):
        t = median_time(lambda: warper.estimate(c, g, method="match", bf16=bf16), args.repeats)
        print(f"| estimate, method=match (default: each image at 256, 362, 512 px: 6 VGG passes, 5 candidate fits, 1 spline) | {'bf16' if bf16 else 'fp32'} | {t:.3f} |", flush=True)
        t = median_time(lambda: warper.estimate(c, g, method="network", bf16=bf16), args.repeats)
        print(f"| estimate, method=network (2 x 256 px VGG + regressor) | {'bf16' if bf16 else 'fp32'} | {t:.3f} |", flush=True)
    t = median_time(lambda: warper.estimate(c, g, method="network", align=True), args.repeats)
    print(f"| estimate with --align (the multi-scale search: about 18 VGG passes) | fp32 | {t:.3f} |", flush=True)
    fc, fg = warper.encode(c), warper.encode(g)
    hw_c, hw_g = tuple(c.shape[-2:]), tuple(g.shape[-2:])
    for align in (False, "matches"):
        t = median_time(lambda: warper.estimate(None, None, content_features=fc, geometry_features=fg, content_size=hw_c,
                                                geometry_size=hw_g, method="network", align=align), args.repeats)
        print(f"| estimate from features{', align=matches' if align else ''} | fp32 | {t:.4f} |", flush=True)
    field = warper.estimate(c, g, method="network")
    for size in (512, 2048):
        big = resize_longer(c, size)
        t = median_time(lambda: warper.apply(big, field), args.repeats)
        print(f"| apply, {size} px output | fp32 | {t:.3f} |", flush=True)


if __name__ == "__main__":
    main()
