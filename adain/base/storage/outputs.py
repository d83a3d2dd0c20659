"""Where outputs go: never onto an input, never two outputs of one run onto one file.

The CLIs call these before loading any model, so a bad ``--output`` costs nothing.

Batch layout: the outputs mirror the input tree. A file inside a folder given as input goes to
``OUTPUT/<path relative to that folder>`` with the output extension; a file given directly goes to
``OUTPUT/<name>``. Inputs that would still share a name (``a.jpg`` and ``a.png`` in one folder) keep
their extension in it (``a_jpg.png``, ``a_png.png``); if names still clash (two input folders with the
same relative paths), the plan is refused rather than letting one output replace another.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ImageError, OutputError
from .files import check_output_path, same_file

__all__ = ["BatchItem", "BatchPlan", "check_not_inputs", "check_replaceable", "plan_batch", "side_paths"]


def side_paths(output: Path, suffixes: Sequence[str]) -> list[Path]:
    """Extra files written next to ``output``: ``out.png`` + ``"_warped.png"`` -> ``out_warped.png``."""
    stem = output.with_suffix("")
    return [stem.with_name(stem.name + s) for s in suffixes]


def check_not_inputs(outputs: Iterable[Path], inputs: Iterable[tuple[str, Path | None]]) -> None:
    """Refuse any output that is one of the inputs (same file, or the same path once resolved).

    An input may be a folder (``--image-dir``): an output that already exists inside it is one of
    its files and is refused too (a new file written into it is allowed).

    Args:
        outputs: every file the run will write.
        inputs: ``(option, path)`` pairs, e.g. ``("--content", Path("c.jpg"))``; None paths are ignored.

    Raises:
        OutputError: naming the output and the input option it would overwrite.
    """
    inputs = list(inputs)
    folders = [(opt, p) for opt, p in inputs if p is not None and os.path.isdir(p)]
    # Keyed by inode (hard links, symlinks, case-insensitive file systems) and by resolved path
    # (inputs that do not exist yet cannot clash by inode): O(inputs + outputs) for large batches.
    by_key: dict[object, tuple[str, Path]] = {}
    for opt, p in inputs:
        if p is None:
            continue
        by_key.setdefault(os.path.realpath(p), (opt, p))
        with contextlib.suppress(OSError):
            st = os.stat(p)
            by_key.setdefault((st.st_dev, st.st_ino), (opt, p))
    for out in outputs:
        hit = by_key.get(os.path.realpath(out))
        if hit is None:
            with contextlib.suppress(OSError):
                st = os.stat(out)
                hit = by_key.get((st.st_dev, st.st_ino))
        if hit is not None:
            raise OutputError(out, f"it is the {hit[0]} input '{hit[1]}'; choose another output")
        if os.path.lexists(out):
            for opt, folder in folders:
                if _is_under(out, folder):
                    raise OutputError(out, f"it is a file of the {opt} folder '{folder}'; choose another output")


def _is_under(path: Path, folder: Path) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real.startswith(root.rstrip(os.sep) + os.sep)


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One input of a batch and every file it will write (``outputs[0]`` is the image)."""

    input: Path
    outputs: tuple[Path, ...]

    @property
    def output(self) -> Path:
        return self.outputs[0]


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """The inputs of a batch and their outputs, unique and distinct from every input.

    Attributes:
        items: inputs in order, with their planned outputs.
        excluded: images under the output folder that were left out of the inputs (earlier outputs).
        existing: items whose outputs (any of them) already exist, from an earlier run.
    """

    items: list[BatchItem]
    excluded: list[Path]
    existing: list[BatchItem]


def plan_batch(sources: Sequence[Path], output_dir: Path, *, extension: str = ".png",
               side_suffixes: Sequence[str] = (), other_inputs: Iterable[tuple[str, Path | None]] = ()) -> BatchPlan:
    """Expand files and folders into inputs and plan one unique output per input (see the module docstring).

    Args:
        sources: files and folders given as inputs (folders are searched recursively).
        output_dir: the output folder.
        extension: extension of each output image.
        side_suffixes: extra files per output, e.g. ``("_warped.png", "_field.npy")``.
        other_inputs: ``(option, path)`` of the run's other inputs (style images, weights), which
            no output may replace either.

    Raises:
        OutputError: ``output_dir`` is an input folder or an existing non-folder, or two inputs
            would write the same file, or an output would replace an input.
        ImageError: a source does not exist.
    """
    # Here, not at module level: data.py imports torch, and check_not_inputs (above) serves the
    # torch-free onnxruntime engine too.
    from ..data import list_images

    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(output_dir, "it exists and is not a folder (with several contents or a folder, "
                                      "--output is a folder)")
    pairs: list[tuple[Path, Path]] = []  # (input, output path relative to output_dir, input extension kept)
    excluded: list[Path] = []
    seen: set[str] = set()
    for src in sources:
        src = Path(src)
        key = os.path.normcase(os.path.realpath(src))
        if key in seen:  # the same file or folder given twice is one input
            continue
        seen.add(key)
        if src.is_dir():
            if same_file(src, output_dir):
                raise OutputError(output_dir, f"it is the input folder '{src}': the outputs would replace the "
                                              "inputs; choose another folder")
            # Images under the output folder are earlier outputs only when the output folder is inside
            # this input folder; an input folder inside the output folder holds inputs.
            output_inside = _is_under(output_dir, src)
            for p in list_images(src):
                if output_inside and _is_under(p, output_dir):
                    excluded.append(p)  # earlier outputs, not inputs (an output folder inside the input folder)
                else:
                    pairs.append((p, p.relative_to(src)))
        elif src.exists():
            pairs.append((src, Path(src.name)))
        else:
            raise ImageError(src, "no such file or folder")

    # Unique names: first the plain mirror; inputs that would share an output keep their extension.
    by_name: dict[Path, list[int]] = defaultdict(list)
    for i, (_, rel) in enumerate(pairs):
        by_name[rel.with_suffix(extension)].append(i)
    rels = [rel.with_suffix(extension) for _, rel in pairs]
    for name, idx in by_name.items():
        if len(idx) > 1:
            for i in idx:
                rel = pairs[i][1]
                rels[i] = rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.').lower()}{extension}")
    items = [BatchItem(p, (output_dir / r, *side_paths(output_dir / r, side_suffixes)))
             for (p, _), r in zip(pairs, rels)]

    owner: dict[str, Path] = {}
    for it in items:
        for out in it.outputs:
            key = os.path.normcase(os.path.realpath(out))
            if key in owner:
                raise OutputError(out, f"inputs '{owner[key]}' and '{it.input}' would both write it; "
                                       "run them separately or rename one")
            owner[key] = it.input
    all_inputs = [("--content", it.input) for it in items] + list(other_inputs)
    check_not_inputs((o for it in items for o in it.outputs), all_inputs)
    for it in items:
        for out in it.outputs:
            check_output_path(out)
    existing = [it for it in items if any(o.exists() for o in it.outputs)]
    return BatchPlan(items, excluded, existing)


def check_replaceable(items: Iterable[BatchItem]) -> None:
    """Before ``--overwrite`` replaces earlier outputs, make sure each one is an earlier output.

    An existing image output must carry the marker :func:`~adain.base.image.save_image` writes; a
    side file that is not an image (``_field.npy``) counts as ours when its item's image is ours.
    A user's photo that happens to have an output's name (``sub/a.png`` for the input ``a.jpg``) is
    refused rather than replaced.

    Raises:
        OutputError: naming the first existing output that this program did not write.
    """
    from ..data import IMAGE_EXTENSIONS
    from ..image import is_marked_output

    for it in items:
        main_ours = not it.output.exists() or is_marked_output(it.output)
        for out in it.outputs:
            if not out.exists():
                continue
            ours = is_marked_output(out) if out.suffix.lower() in IMAGE_EXTENSIONS else main_ours
            if not ours:
                raise OutputError(out, "it exists and was not written by this program (no output marker), so "
                                       "--overwrite will not replace it; move it or choose another output folder")
