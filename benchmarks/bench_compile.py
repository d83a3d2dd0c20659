"""torch.compile against eager on CPU, fp32: the styler's single pass, ``stylize`` and the warper.

    python benchmarks/bench_compile.py [--size 256] [--repeats 3] [--calls forward,warper,stylize]

Three rows, each timed eager and compiled (Inductor, default mode), median of ``--repeats`` after a
warm-up; the first compiled call, which pays for compilation, is reported on its own:

* ``Styler.forward``: one encoder -> AdaIN -> decoder pass, content and style at ``--size`` px.
* ``Warper.forward``: two 256 px images -> field (``--size`` does not apply: the warper reads 256 px).
* ``Styler.stylize``: the public call, with ``styler.encoder.compile(); styler.decoder.compile()``
  (its checks and scale schedule stay eager; the modules are the hot path).

Each compiled function is also checked for graph breaks with ``torch._dynamo.explain`` first.
Compilation takes a minute or more on 2 cores; run it on an otherwise idle machine for figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_time  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "datasets", "samples")


def _first_call(fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256, help="content and style side in px (multiple of 8)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calls", default="forward,warper,stylize", help="rows to run, comma-separated")
    args = ap.parse_args()
    import torch
    import torch._dynamo

    from adain import Styler
    from adain.base.image import load_image, resize_exact
    from warpstyle.geometry.warper import Warper

    torch.manual_seed(0)
    styler = Styler.from_pretrained()
    warper = Warper.from_pretrained()  # its own encoder: the stylize row compiles the styler's in place
    s = args.size
    content = resize_exact(load_image(os.path.join(SAMPLES, "content", "kodim04.jpg")), (s, s))
    style = resize_exact(load_image(os.path.join(SAMPLES, "texture", "vangogh_the-starry-night.jpg")), (s, s))
    geometry = resize_exact(load_image(os.path.join(SAMPLES, "geometry", "munch_the-scream.jpg")), (256, 256))
    warp_content = resize_exact(content, (256, 256))

    print(f"# torch.compile vs eager on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, fp32, {s} px, median of {args.repeats}")
    print("| call | graph breaks | eager (s) | compiled (s) | speed-up | first compiled call (s) |")
    print("|---|---|---|---|---|---|")

    def row(name: str, eager, compile_, breaks: str) -> None:  # noqa: ANN001
        """Time ``eager``, then ``compile_()`` (which returns the compiled callable) and time that."""
        with torch.no_grad():
            t_e = median_time(eager, args.repeats, warmup=1)
            compiled = compile_()
            t_first = _first_call(compiled)
            t_c = median_time(compiled, args.repeats, warmup=0)
        print(f"| {name} | {breaks} | {t_e:.3f} | {t_c:.3f} | {t_e / t_c:.2f}x | {t_first:.1f} |", flush=True)

    def breaks(fn, *inputs) -> str:  # noqa: ANN001
        with torch.no_grad():
            return str(torch._dynamo.explain(fn)(*inputs).graph_break_count)

    def compiled_forward():  # noqa: ANN202
        f = torch.compile(styler)
        return lambda: f(content, style)

    calls = set(args.calls.split(","))
    if "forward" in calls:
        row(f"Styler.forward ({s} px)", lambda: styler(content, style), compiled_forward, breaks(styler, content, style))

    def compiled_warper():  # noqa: ANN202
        f = torch.compile(warper)
        return lambda: f(warp_content, geometry)

    if "warper" in calls:
        row("Warper.forward (2 x 256 px)", lambda: warper(warp_content, geometry), compiled_warper,
            breaks(warper, warp_content, geometry))

    def compiled_stylize():  # noqa: ANN202
        # In place: stylize calls these modules; its checks and scale schedule stay eager.
        styler.encoder.compile()
        styler.decoder.compile()
        return lambda: styler.stylize(content, [style], bf16=False)

    if "stylize" in calls:
        row(f"Styler.stylize ({s} px, one pass)", lambda: styler.stylize(content, [style], bf16=False),
            compiled_stylize, "0 in encoder, decoder")


if __name__ == "__main__":
    main()
