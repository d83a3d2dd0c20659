"""CI subset of ``scripts/crash_test.py``: SIGKILL a styler run a few times (twice during checkpoint or
image writes), check the newest checkpoint loads and ``--resume auto`` finishes from it."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "crash_test.py"


def _crash_module():
    spec = importlib.util.spec_from_file_location("crash_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("crash_test", module)  # dataclasses looks its module up while building Tally
    spec.loader.exec_module(module)
    return sys.modules["crash_test"]


@pytest.mark.slow
def test_killed_styler_run_always_leaves_a_loadable_checkpoint(tmp_path):
    crash = _crash_module()
    data = crash.make_data(tmp_path / "data")
    tally = crash.crash_trainer("styler", 4, tmp_path, data, rng=random.Random(0), checker=crash.Checker(),
                                threads=1, max_delay=10.0, verbose=False)  # startup alone can take 5 s on a busy CI machine
    assert tally.failures == []
    assert tally.kills == 4 and tally.kills_on_write == 2
    assert tally.final_iteration == tally.target_iteration
    assert tally.checkpoints_verified >= 2
