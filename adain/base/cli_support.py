"""Shared command-line plumbing: one-line errors with exit status 2, logging levels, parsing helpers."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from .errors import StyleTransferError

# Nothing here imports torch at module level: the CLIs' start-up reaches run_cli's error handling
# first, so Ctrl-C while torch loads prints one line (tested in tests/test_startup.py).

__all__ = ["run_cli", "parse_scales", "set_verbosity", "options_dict", "USER_ERROR", "oom_hint", "tune_allocator_for"]

USER_ERROR = 2


def tune_allocator_for(output_side: int | None) -> bool:
    """Tune glibc's allocator (about 20% faster CPU runs) for training (None) or an output up to
    ``TUNED_MAX_SIDE`` px; larger outputs keep the default, whose peak memory the docs and the
    pre-flight check are calibrated for (see adain/runtime.py)."""
    from .runtime import TUNED_MAX_SIDE

    if output_side is not None and output_side > TUNED_MAX_SIDE:
        return False
    return tune_cpu_allocator()


def tune_cpu_allocator() -> bool:
    """:func:`adain.base.runtime.tune_cpu_allocator`, imported when called (runtime imports torch)."""
    from .runtime import tune_cpu_allocator as tune

    return tune()


def parse_scales(value: str | None, option: str = "--scales") -> list[int] | None:
    """``"256,512,1024"`` -> ``[256, 512, 1024]``; None or "auto" -> None. Errors name ``option``."""
    if value is None or value.strip().lower() == "auto":
        return None
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected 'auto' or comma-separated integers like 256,512; got {value!r}",
                                 param_hint=option) from None
    if not out or any(v < 8 for v in out):
        raise click.BadParameter(f"scales must be integers >= 8; got {value!r}", param_hint=option)
    return out


def set_verbosity(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    # Pillow logs decoder complaints ("More samples per pixel than can be decoded") at ERROR just before
    # raising what we report as one ``error:`` line; shown with -vv only, so user errors stay one line.
    logging.getLogger("PIL").setLevel(logging.DEBUG if verbose > 1 else logging.CRITICAL)


def oom_hint(hint: str) -> str:
    return f"out of memory; {hint}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_cli(group: click.Group, prog: str, args: Sequence[str] | None = None, *, oom_advice: str = "") -> int:
    """Run ``group``; user errors print ``prog: error: ...`` on one line and return status 2.

    Programming errors keep their traceback (they are bugs to report).
    """
    try:
        rv = group.main(args=list(args) if args is not None else None, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.exceptions.Abort:
        click.echo(f"{prog}: aborted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"{prog}: error: {_one_line(e.format_message())}", err=True)
        return USER_ERROR
    except StyleTransferError as e:
        click.echo(f"{prog}: error: {_one_line(str(e))}", err=True)
        return USER_ERROR
    except (ValueError, TypeError) as e:
        # Library argument checks raise these with messages that name the argument.
        click.echo(f"{prog}: error: {_one_line(str(e))}", err=True)
        return USER_ERROR
    except MemoryError:
        click.echo(f"{prog}: error: {oom_hint(oom_advice)}", err=True)
        return USER_ERROR
    except RuntimeError as e:
        if "out of memory" in str(e).lower() or "can't allocate memory" in str(e).lower():
            click.echo(f"{prog}: error: {oom_hint(oom_advice)}", err=True)
            return USER_ERROR
        raise
    except KeyboardInterrupt:
        click.echo(f"{prog}: interrupted", err=True)
        return 130
    return int(rv) if isinstance(rv, int) else 0


def options_dict(**kwargs: Any) -> dict[str, Any]:
    """Drop None values (options the user did not give), so config-file values stand."""
    return {k: v for k, v in kwargs.items() if v is not None}


