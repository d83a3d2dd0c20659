import subprocess
import sys

import pytest

from adain.base import cli_support, runtime
from adain.base.runtime import TUNED_MAX_SIDE, tune_cpu_allocator

# Allocates and frees a 64 MiB tensor (above glibc's 32 MiB mmap ceiling) 16 times and prints
# the minor page faults of the last eight rounds: the pages that had to be faulted in afresh.
_FAULTS_SCRIPT = """
import resource, sys, torch
from adain.base.runtime import tune_cpu_allocator
applied = tune_cpu_allocator() if sys.argv[1] == "tuned" else False
n = 64 * 2**20 // 4
for _ in range(8):  # warm-up: the heap can take a few rounds to reach its steady size
    x = torch.ones(n)
    del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    x = torch.ones(n)
    del x
print(int(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _steady_state_faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "1", int(faults)


def _has_glibc() -> bool:
    import platform

    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _has_glibc(), reason="mallopt tuning applies to glibc only")
def test_tuned_allocator_reuses_freed_blocks_instead_of_faulting_them_in():
    applied_default, default_faults = _steady_state_faults("default")
    applied, tuned_faults = _steady_state_faults("tuned")
    assert not applied_default and applied
    # 64 MiB is 16,384 pages of 4 KiB: by default each round faults them all in again (131,072 in
    # all here); tuned, the freed block is reused (0 here; the heap's layout may cost a round or two).
    assert 4 * tuned_faults <= default_faults


def test_does_nothing_off_linux(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert tune_cpu_allocator() is False


def test_clis_tune_only_up_to_the_calibrated_size(monkeypatch):
    calls = []
    monkeypatch.setattr(cli_support, "tune_cpu_allocator", lambda: calls.append(1) or True)
    assert cli_support.tune_allocator_for(None) and cli_support.tune_allocator_for(TUNED_MAX_SIDE)
    assert not cli_support.tune_allocator_for(TUNED_MAX_SIDE + 1)  # 2048 px costs +1.7 GiB tuned
    assert len(calls) == 2
