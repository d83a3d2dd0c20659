"""Peak memory of small outputs from very large input files (issue 33, items 8 and 9), on CPU.

    python benchmarks/bench_large_inputs.py cli [--size 256] [--dir DIR]
    python benchmarks/bench_large_inputs.py demo [--size 512] [--dir DIR]

The inputs are mostly flat 8000x8000 PNGs (about 0.3 MB on disk, 64 M pixels decoded), made once
in ``--dir``: ``big.png`` (RGB), ``big_rgba.png`` (the same with an alpha band), ``tex0..2.png``
(three other textures) and ``small.png`` (``big.png`` at 256 px, the baseline).

``cli`` runs ``warpstyle run`` with the same file as content, geometry and one or three textures,
and ``adain stylize`` with it as content and style, each as its own child process; the peak RSS is
the child's own ``ru_maxrss`` (``os.wait4``), models included. ``demo`` drives the browser demo's
request logic (:class:`warpstyle.app.demo.DemoEngine`, no browser) with four requests (content and
geometry ``big.png``; texture ``big.png``, then ``tex0..2.png``) and prints, per request, its time,
its peak RSS (sampled every 2 ms), the RSS after it and the bytes of each cache entry.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory_4k import measure  # noqa: E402

SIDE = 8000


def make_inputs(folder: Path) -> None:
    """The flat test images (skipped where they exist)."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    colours = {"big": (120, 90, 60), "tex0": (30, 160, 90), "tex1": (200, 200, 40), "tex2": (90, 20, 160)}
    for name, col in colours.items():
        if (folder / f"{name}.png").exists():
            continue
        im = Image.new("RGB", (SIDE, SIDE), col)
        draw = ImageDraw.Draw(im)
        for i in range(0, SIDE, 500):  # a few large shapes: something to match and to paint
            draw.ellipse([i, i, i + 2000, i + 1500], fill=(col[2], col[0], 40 + i % 200))
            draw.rectangle([SIDE - i - 800, i, SIDE - i, i + 300], fill=(20, 120, 200))
        im.save(folder / f"{name}.png")
        if name == "big":
            im.convert("RGBA").save(folder / "big_rgba.png")
            im.resize((256, 256)).save(folder / "small.png")


def bench_cli(folder: Path, size: int) -> None:
    out = folder / "out.png"
    for name in ("big.png", "big_rgba.png", "small.png"):
        f = str(folder / name)
        for n in (1, 3):
            cmd = ["warpstyle", "run", "-c", f, "-g", f, *(["-t", f] * n), "--size", str(size), "-o", str(out)]
            r = measure(cmd)
            print(f"{r['peak_rss_mib']:6d} MiB {r['seconds']:6.1f} s exit {r['exit']}: warpstyle run ... {name} "
                  f"x {2 + n} --size {size}", flush=True)
        r = measure(["adain", "stylize", "-c", f, "-s", f, "--size", str(size), "-o", str(out)])
        print(f"{r['peak_rss_mib']:6d} MiB {r['seconds']:6.1f} s exit {r['exit']}: adain stylize ... {name} x 2 "
              f"--size {size}", flush=True)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sampled_peak(fn: object) -> int:
    """Peak RSS (bytes) while ``fn()`` runs, sampled every 2 ms."""
    peak, done = [_rss()], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()  # type: ignore[operator]
    finally:
        done.set()
        thread.join()
    return max(peak[0], _rss())


def bench_demo(folder: Path, size: int) -> None:
    from warpstyle.app.demo import DemoEngine, _nbytes

    engine = DemoEngine()
    engine.pipeline  # noqa: B018 (the models, loaded once as the demo does at start)
    gc.collect()
    print(f"models loaded: RSS {_rss() / 2**30:.2f} GiB", flush=True)
    big = str(folder / "big.png")
    for texture in ("big.png", "tex0.png", "tex1.png", "tex2.png"):
        start = time.perf_counter()
        peak = _sampled_peak(lambda t=texture: engine.run(big, big, str(folder / t), size=size))
        gc.collect()
        entries = ", ".join(f"{key[0]} {_nbytes(value) / 2**20:.1f} MiB" for key, value in engine.cache.items())
        print(f"texture {texture} at {size} px: {time.perf_counter() - start:.1f} s, peak {peak / 2**30:.2f} GiB, "
              f"RSS after {_rss() / 2**30:.2f} GiB; cache: {entries}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["cli", "demo"])
    ap.add_argument("--size", type=int, default=None, help="output longer side, px (default: cli 256, demo 512)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "warpstyle-large-inputs")
    args = ap.parse_args()
    make_inputs(args.dir)
    if args.what == "cli":
        bench_cli(args.dir, args.size or 256)
    else:
        bench_demo(args.dir, args.size or 512)


if __name__ == "__main__":
    main()
