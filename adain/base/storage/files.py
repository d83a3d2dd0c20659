"""Safe file writes: a temp file in the target directory, then ``os.replace``; never onto a non-file.

Symlinks: an output that is a symlink is written *through*, as a plain ``open(path, "w")`` would:
the file it points to is replaced atomically and the link is kept. (Renaming onto the link itself
would silently turn it into a regular file.) A dangling link creates its target.

Non-regular files (devices such as ``/dev/full``, FIFOs, sockets, folders) are refused with an
:class:`~adain.base.errors.OutputError`: a rename would replace the device node or FIFO itself.

Permissions: a replaced file keeps its mode (a private 0600 output stays 0600); an existing file
with no write bit (0444) is refused unless the caller passes ``replace_readonly=True`` (as ``cp``
refuses it); a folder the process cannot write into is refused before any work, not at the end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError

__all__ = ["atomic_path", "check_output_path", "remove_stale_temp_files", "same_file", "input_file_problem"]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output_path(path: str | Path, *, replace_readonly: bool = False) -> Path:
    """Check that ``path`` can be replaced by a regular file; return the path to write (links resolved).

    Cheap (a few ``stat`` calls), so CLIs call it for every output before any model work.

    Args:
        path: the output.
        replace_readonly: allow replacing an existing file that has no write permission bit.

    Raises:
        OutputError: ``path`` (or what it links to) exists and is not a regular file, or is
            read-only; a component of its folder is an existing non-folder; or the nearest
            existing folder cannot be written.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))  # write through symlinks (see the module docstring)
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(path, f"'{parent}' is not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(path, f"folder '{parent}' is not writable (permission denied)")
            break
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:  # e.g. a permission error on the folder
        raise OutputError(path, (e.strerror or str(e)).lower()) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        where = "" if str(target) == os.path.abspath(path) else f" ('{target}')"
        raise OutputError(path, f"it exists and is {_kind(st.st_mode)}{where}; give a file path")
    if st is not None and not replace_readonly and not st.st_mode & 0o222:
        raise OutputError(path, f"it exists and is read-only (mode {stat.S_IMODE(st.st_mode):04o}); make it "
                                "writable (chmod u+w) to replace it, or choose another output")
    return target


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file: ``os.path.samefile`` when both exist, else resolved paths."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, replace_readonly: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    A crash or exception leaves either the old file or none, never a half-written one.
    The temp file lives in the same directory so ``os.replace`` is a same-filesystem rename.
    A symlink is written through (its target is replaced); see the module docstring.

    A replaced file keeps its permission bits; a new one gets what a plain ``open()`` would give.

    Raises:
        OutputError: ``path`` exists and is not a regular file (a device, FIFO, folder, ...), is
            read-only (unless ``replace_readonly``), or its folder cannot be created or written.
    """
    given = path
    path = check_output_path(path, replace_readonly=replace_readonly)
    try:
        old_mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        old_mode = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(given, (e.strerror or str(e)).lower()) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        if old_mode is not None:  # keep a replaced file's mode (0600 stays private)
            os.chmod(tmp_path, old_mode)
        else:  # mkstemp creates 0600; give a new file the permissions a plain open() would have.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


# atomic_path's temp names: "." + target name + "." + mkstemp's 8 random characters + ".tmp".
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temp_files(directory: str | Path) -> int:
    """Delete temp files that :func:`atomic_path` left in ``directory`` when a process was killed mid-write.

    They are harmless (nothing reads them: the target name only ever appears by rename), but a run
    that is killed often would pile them up. Call this only on a directory that no other live
    process is writing into, e.g. a trainer's own run folder at start-up.

    Returns:
        The number of files removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for entry in directory.iterdir():
        if _TEMP_NAME.match(entry.name) and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed


def input_file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an input file, or None when it is a regular file (after links).

    Distinguishes a missing file, a dangling link, a link loop, a directory and special files
    (FIFOs, devices, sockets), whose size of 0 would otherwise read as "file is empty" and whose
    reads may never end.

    Example:
        >>> input_file_problem("/")
        'is a directory, not a file'
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "broken symbolic link (its target does not exist)" if os.path.islink(path) else "no such file"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (too many levels of symbolic links)"
        if e.errno == errno.ENOTDIR:
            return "no such file (a parent in the path is not a directory)"
        return e.strerror or "cannot stat file"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "special")
        return f"not a regular file ({kind})"
    return None
