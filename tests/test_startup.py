"""Start-up: the CLIs reach their error handling before torch loads (issue 15 case 9, Ctrl-C at start-up)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from adain.base.cli_support import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_cli_modules_import_without_torch():
    # torch takes about 1.5 s to import: a Ctrl-C then used to print a traceback from the import.
    code = "import sys, adain, warpstyle, adain.cli, warpstyle.app.cli; print(sorted({'torch', 'numpy', 'PIL'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_public_names_still_resolve_lazily():
    import adain
    import warpstyle

    assert adain.Styler.__name__ == "Styler" and warpstyle.Warper.__name__ == "Warper"
    assert set(adain.__all__) <= set(dir(adain))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        adain.Nope  # noqa: B018


def test_interrupt_while_a_command_imports_is_one_line(capsys):
    @click.group()
    def group() -> None:
        pass

    @group.command("go")
    def go() -> None:
        raise KeyboardInterrupt  # as if Ctrl-C arrived during `import torch` in the command body

    assert run_cli(group, "adain", ["go"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] in ("adain: aborted", "adain: interrupted")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see when torch loads")
def test_sigint_during_startup_prints_no_traceback(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "adain", "stylize", "-c", "c.jpg", "-s", "s.jpg", "-o",
                             str(tmp_path / "o.png")], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    # Interrupt once torch's library is being mapped: the command body is importing it.
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert proc.returncode in (130, 2, -signal.SIGINT), (proc.returncode, err)
