"""Shared timing helpers: warm-up then median of repeats; each config in its own process for peak RSS."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run_isolated(script: str, config: dict) -> dict:
    """Run ``script --one JSON`` in a fresh interpreter so its peak RSS is this config's alone."""
    out = subprocess.run([sys.executable, script, "--one", json.dumps(config)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
