"""Shared command-line plumbing: one-line errors with exit status 2, logging levels, parsing helpers."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from .errors import CheckpointError, ImageError, StyleTransferError

# Nothing here imports torch at module level: the CLIs' start-up reaches run_cli's error handling
# first, so Ctrl-C while torch loads prints one line (tested in tests/test_startup.py).

__all__ = ["run_cli", "parse_scales", "set_verbosity", "options_dict", "USER_ERROR", "oom_hint", "tune_allocator_for",
           "require_inputs", "want_progress", "pass_progress"]

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
    # The ONNX exporter's graph passes log every step at INFO (`warpstyle export`); shown with -vv only.
    for name in ("onnx_ir", "onnxscript"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


def oom_hint(hint: str) -> str:
    return f"out of memory; {hint}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


#: What a trainer out of memory should try: options each trainer has (neither has --size).
TRAIN_OOM_ADVICE = "try a smaller --batch-size, --crop-size or --load-size"
WARPER_TRAIN_OOM_ADVICE = "try a smaller --batch-size or --pair-batch-size (or load_size in the config)"


def run_cli(group: click.Group, prog: str, args: Sequence[str] | None = None, *,
            oom_advice: str | Mapping[str, str] = "") -> int:
    """Run ``group``; user errors print ``prog: error: ...`` on one line and return status 2.

    ``oom_advice`` is one hint, or one per command name (``""`` keys the default), so each command
    suggests only options it has. Programming errors keep their traceback (they are bugs to report).
    """
    if not isinstance(oom_advice, str):
        argv = list(args) if args is not None else sys.argv[1:]
        command = next((a for a in argv if a in group.commands), "")
        oom_advice = oom_advice.get(command, oom_advice.get("", ""))
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


def require_inputs(images: Iterable[Path | None] = (), weights: Iterable[Path | None] = (),
                   folders_ok: Iterable[Path] = ()) -> None:
    """Fail fast, before any model loads, on an input that does not exist (or is a folder where a file is needed).

    ``folders_ok`` are image inputs that may also be folders (batch contents). The loaders still
    check each file's contents; this only moves the cheap "is it there" failure to the start.
    """
    for p in folders_ok:
        if not p.exists():
            raise ImageError(p, "no such file or folder")
    for p in images:
        if p is not None and not p.exists():
            raise ImageError(p, "no such file")
        if p is not None and p.is_dir():
            raise ImageError(p, "is a folder; give an image file")
    for p in weights:
        if p is not None and not p.exists():
            raise CheckpointError(p, "no such file")


def want_progress(flag: bool | None) -> bool:
    """``--progress/--no-progress`` win; by default show progress only when stderr is a terminal."""
    if flag is not None:
        return flag
    return sys.stderr.isatty()


@contextlib.contextmanager
def pass_progress(desc: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar on stderr fed by a ``progress(done, total)`` callback (the styler's passes).

    Units are pixels processed, which is what a pass costs, so the ETA holds although each pass
    has four times the pixels of the one before. Yields None when disabled.
    """
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar: Any = None
    calls = 0

    def update(done: int, total: int) -> None:
        nonlocal bar, calls
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="px", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
        calls += 1
        bar.set_postfix_str(f"{calls - 1} passes done", refresh=False)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()
