"""The ``warpstyle`` command: ``run``, ``video``, ``demo``, ``train-warper``, ``eval-warper``, ``export``. Parses options, calls the library."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from adain import __version__
from adain.base.config import MAX_BATCH, MAX_WORKERS, SEED_MAX
from adain.base.cli_support import (WARPER_TRAIN_OOM_ADVICE, options_dict, parse_scales, pass_progress, require_inputs, run_cli, set_verbosity,
                                    tune_allocator_for, want_progress)
from adain.base.errors import OutputError, StyleTransferError

OOM_ADVICE = "try a smaller output, e.g. --size 1024 or --max-size 1024 (the finest pass decides the peak memory)"
USER_ERROR = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="warpstyle")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Geometric-plus-texture style transfer: warp a photo toward a geometry image, paint it with a texture."""
    set_verbosity(verbose, quiet)


def _check_run_options(*, textures: Sequence[Path], texture_weights: Sequence[float], skip_existing: bool,
                       overwrite: bool, geometry: Path | None, save_field: str | None, save_warped: bool,
                       align: bool | None, method: str | None, size: int | None, max_size: int, scales: str) -> None:
    """Reject contradictory ``run`` options (click.BadParameter) and warn when nothing would change the content."""
    from warpstyle.sizes import DEFAULT_SIZE

    if texture_weights and len(texture_weights) != len(textures):
        raise click.BadParameter(f"give one --texture-weight per --texture ({len(textures)}); got {len(texture_weights)}",
                                 param_hint="--texture-weight")
    if skip_existing and overwrite:
        raise click.BadParameter("give --skip-existing or --overwrite, not both", param_hint="--overwrite")
    if geometry is None and (save_field or save_warped):
        flag = "--save-field" if save_field else "--save-warped"
        raise click.BadParameter("needs --geometry: without one nothing is warped, so there is no field or warped "
                                 "image to save", param_hint=flag)
    if geometry is None and not textures:
        click.echo("warpstyle: warning: neither --geometry nor --texture given; the output is the resized content", err=True)
    if align and method == "match":  # --align is the network's global step; matching finds its own similarity
        raise click.BadParameter("--align is part of --geometry-method network; matching finds its own alignment",
                                 param_hint="--align")
    out_side = min(size or DEFAULT_SIZE, max_size)
    too_big = [s for s in (parse_scales(scales) or []) if s > out_side]
    if too_big:
        raise click.BadParameter(f"scale {too_big[0]} is larger than the output ({out_side} px, from --size/--max-size); "
                                 "every pass must be at most the output size", param_hint="--scales")


def _plan_batch_outputs(contents: Sequence[Path], output: Path, sides: list[str],
                        others: list[tuple[str, Path | None]], skip_existing: bool, overwrite: bool
                        ) -> tuple[list, int]:
    """The batch items still to run and how many were skipped; refuses to clobber an earlier run's outputs."""
    from adain.base.data import IMAGE_EXTENSIONS
    from adain.base.storage.outputs import check_replaceable, plan_batch

    if output.suffix.lower() in IMAGE_EXTENSIONS:
        raise click.BadParameter("with several contents or a folder, --output must be a folder", param_hint="--output")
    plan = plan_batch(contents, output, side_suffixes=sides, other_inputs=others)
    if plan.excluded:
        click.echo(f"warpstyle: note: {len(plan.excluded)} images under the output folder '{output}' are "
                   "earlier outputs, not inputs", err=True)
    items = plan.items
    if not items:
        raise click.BadParameter("no content images found", param_hint="--content")
    if plan.existing and overwrite:
        check_replaceable(plan.existing)
    if plan.existing and not overwrite:
        if not skip_existing:
            first = next(o for o in plan.existing[0].outputs if o.exists())
            raise OutputError(first, f"it exists, as do the outputs of {len(plan.existing)} of {len(items)} "
                                     "inputs (an earlier run?); add --skip-existing to keep them or --overwrite "
                                     "to replace them")
        done_before = set(plan.existing)
        return [it for it in items if it not in done_before], len(plan.existing)
    return items, 0


def _check_input_memory(contents: Sequence[Path], geometry: Path | None, textures: Sequence[Path],
                        longer: int, batch: bool) -> None:
    """The decode pre-flight (:func:`adain.base.memory.check_decode_memory`), before the models load:
    the geometry and textures, then the content (in a batch, each content is reported on its own)."""
    from adain.base.memory import MODELS_BYTES, check_decode_memory

    shared = [(p, longer) for p in (geometry, *textures) if p is not None]
    check_decode_memory(shared if batch else [*shared, (contents[0], longer)], extra=MODELS_BYTES)


def _check_single_output(output: Path, sides: list[str], content: Path, others: list[tuple[str, Path | None]]) -> None:
    """Check the one output and its side files are writable and are none of the inputs."""
    from adain.base.storage.files import check_output_path
    from adain.base.imagefile import check_image_output
    from adain.base.storage.outputs import check_not_inputs, side_paths

    check_image_output(output)
    for side in side_paths(output, sides):
        check_output_path(side)
    check_not_inputs([output, *side_paths(output, sides)], [("--content", content), *others])


def _run_batch(pipe: object, items: list, geometry: Path | None, textures: Sequence[Path], opts: object,
               show: bool, write: Callable[..., None]) -> int:
    """Run every item, reporting each failure on stderr and finishing the rest; the number that failed."""
    from tqdm.auto import tqdm

    failures = 0
    bar = tqdm(total=len(items), disable=not show, desc="warpstyle run", unit="img")
    for item, (_, res) in zip(items, pipe.run_batch([it.input for it in items], geometry, list(textures) or None, opts)):  # type: ignore[attr-defined]
        if isinstance(res, StyleTransferError):
            failures += 1
            click.echo(f"warpstyle: skipped: {res}", err=True)
        else:
            write(res, item.output)
        bar.update(1)
    bar.close()
    return failures



@cli.command("run")
@click.option("--content", "-c", "contents", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Content photo, or a folder of them; repeat for several (batch mode).")
@click.option("--geometry", "-g", type=click.Path(path_type=Path), default=None, help="Image whose shapes the output takes (omit: no warp).")
@click.option("--texture", "-t", "textures", multiple=True, type=click.Path(path_type=Path),
              help="Image whose brushwork and colours the output takes; repeat to mix (omit: no stylization).")
@click.option("--texture-weight", "texture_weights", multiple=True, type=click.FloatRange(min=0), help="Weight per --texture, in order (default: equal).")
@click.option("--geometry-method", "method", type=click.Choice(["match", "network"]), default=None,
              help="How the warp is estimated: 'match', semantic matching of VGG features with a robust global fit and a smooth non-rigid field (each image at three sizes: about 1 s on a CPU with native bf16, 2.4 s in fp32; falls back to the network where no size gives a confident fit); 'network', the feed-forward correlation network (faster, places and shapes less exactly) [default: match].")
@click.option("--strength", default=1.0, show_default=True, type=click.FloatRange(0, 4), help="Warp strength: 0 = none, 1 = estimated warp, >1 exaggerates.")
@click.option("--fill", "padding", type=click.Choice(["blur", "border", "reflection"]), default="blur", show_default=True,
              help="What fills the output where the warp reaches beyond the content: 'blur', its edge colours blurred; 'border', its edge pixels extended; 'reflection', the content mirrored.")
@click.option("--smoothness", default=None, type=click.FloatRange(0, 16), help="Gaussian smoothing of the warp field, in cells of its grid (16x16 from the network, 64x64 from matching) [default: 0.75].")
@click.option("--warp-refine", default=0, show_default=True, type=click.IntRange(0, 5000), help="Adam steps refining the warp for this pair on the feature-matching objective, features computed once (0: the network's field; with --align, on the content seen through the found alignment; 100 steps took 7-22 s on a busy 2-core CPU).")
@click.option("--align/--no-align", default=None, help="First search where, and how large, the geometry's object is in the content (a global zoom and shift, at 18 VGG passes: a few seconds on CPU), then the network's local warp: lines up objects of different size and place (a small face toward a face filling a caricature) With --geometry-method network only (it implies it); matching finds its own alignment [default: off].")
@click.option("--alpha", default=0.8, show_default=True, type=click.FloatRange(0, 1), help="Texture strength: 0 = warped content only, 1 = full texture.")
@click.option("--preserve-color", type=click.Choice(["match", "luminance"]), default=None, help="Keep the content's colours ('match' recolours the texture first; 'luminance' transfers luminance only).")
@click.option("--size", type=click.IntRange(8, 16384), default=None, help="Longer side of the output in px; aspect of the geometry (or the content) [default: 512].")
@click.option("--max-size", type=click.IntRange(8, 16384), default=4096, show_default=True, help="Cap on the output's longer side in px.")
@click.option("--scales", default="auto", show_default=True, help="Coarse-to-fine stylization passes (longer sides), e.g. 256,512; 'auto' halves from --size while the half stays >= 512 (one pass below 1024).")
@click.option("--schedule", type=click.Choice(["guided", "restylize"]), default="guided", show_default=True,
              help="How finer texture passes use the coarser one: guided applies AdaIN to the content's features averaged with the coarser result's; restylize (the old default) repaints the coarser result. Only outputs over 512 px have several passes.")
@click.option("--refine", "refine_steps", type=click.IntRange(0, 10000), default=0, show_default=True,
              help="Texture quality mode: N optimisation steps on the output after the feed-forward result; slower.")
@click.option("--tile", type=click.IntRange(min=0), default=None,
              help="Core side of the tiles large texture passes run in, px, a multiple of 8 (0: never tile) [default: automatic: passes over 1024x1024 px, in 1024 px tiles or the smaller ones the memory pre-flight picks].")
@click.option("--warper", "warper_path", type=click.Path(path_type=Path), default=None, help="Warper weights [default: bundled].")
@click.option("--decoder", type=click.Path(path_type=Path), default=None, help="AdaIN decoder weights [default: bundled].")
@click.option("--vgg", type=click.Path(path_type=Path), default=None, help="VGG-19 weights [default: bundled Oxford].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--bf16/--fp32", "bf16", default=None, help="bf16 autocast [default: on for a CPU with native bf16, else off].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, SEED_MAX), help="Seed for any random step (the default path is deterministic).")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Output image (.png/.jpg/.webp), replaced if it exists; in batch mode a folder that receives "
                   "<name>.png, mirroring the input folders (a.jpg and a.png in one folder give a_jpg.png and "
                   "a_png.png). Never an input; images under it are not taken as inputs.")
@click.option("--skip-existing", is_flag=True, help="Batch mode: skip inputs whose outputs exist from an earlier run.")
@click.option("--overwrite", is_flag=True, help="Batch mode: replace outputs from an earlier run [default: refuse to start].")
@click.option("--save-warped", is_flag=True, help="Also write <output>_warped.png (the warped content before texture).")
@click.option("--save-field", type=click.Choice(["flo", "npy"]), default=None,
              help="Also write the field that was applied (strength and smoothness included), at the output's "
                   "resolution, as <output>_field.flo (displacement in output pixels) or .npy (normalised grid), "
                   "and <output>_field.png (colour wheel).")
@click.option("--save-sheet", is_flag=True, help="Also write <output>_sheet.jpg: inputs, warped and result side by side, labelled.")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr: per pass with an ETA for one image, per image in batch mode "
                   "[default: when stderr is a terminal].")
@click.option("--engine", type=click.Choice(["auto", "torch", "onnx"]), default="auto", show_default=True,
              help="torch (the reference), onnx (onnxruntime, float32, never imports torch: texture only, one content, "
                   "no --geometry, --save-sheet, --refine, --bf16, tiles or outputs over 1024x1024 px; builds its "
                   "graphs once, about 10 s), or auto: onnx where it applies and its graphs are built (adain "
                   "build-graphs), else torch. See docs/engines.md.")
def run_cmd(contents: Sequence[Path], geometry: Path | None, textures: Sequence[Path], texture_weights: Sequence[float],
            method: str | None, strength: float, padding: str, smoothness: float | None, warp_refine: int, align: bool | None, alpha: float, preserve_color: str | None, size: int | None,
            max_size: int, scales: str, schedule: str, refine_steps: int, tile: int | None, warper_path: Path | None, decoder: Path | None, vgg: Path | None, device: str,
            bf16: bool | None, seed: int, output: Path, skip_existing: bool, overwrite: bool, save_warped: bool,
            save_field: str | None, save_sheet: bool, progress: bool | None, engine: str) -> int:
    """Warp CONTENT toward GEOMETRY, then paint it with TEXTURE."""
    _check_run_options(textures=textures, texture_weights=texture_weights, skip_existing=skip_existing,
                       overwrite=overwrite, geometry=geometry, save_field=save_field, save_warped=save_warped,
                       align=align, method=method, size=size, max_size=max_size, scales=scales)
    # Every path is checked before any model loads: a bad -o or a missing folder must not cost a run.
    require_inputs(images=[geometry, *textures], weights=[warper_path, decoder, vgg], folders_ok=contents)
    others = [("--geometry", geometry), *(("--texture", t) for t in textures), ("--warper", warper_path),
              ("--decoder", decoder), ("--vgg", vgg)]
    batch = len(contents) > 1 or any(c.is_dir() for c in contents)
    choice, content, longer = _choose_engine(
        engine, contents=contents, geometry=geometry, textures=textures, batch=batch, save_sheet=save_sheet, size=size,
        max_size=max_size, scales=parse_scales(scales), refine_steps=refine_steps, bf16=bf16, device=device, tile=tile,
        decoder=decoder, vgg=vgg)
    if choice.engine == "onnx":  # texture only, no torch: the same route as Pipeline.run's, in numpy and onnxruntime
        from warpstyle.app.texture_onnx import texture_only_onnx

        _check_single_output(output, [], contents[0], others)
        with pass_progress("warpstyle run", want_progress(progress)) as report:
            texture_only_onnx(content, textures, longer, alpha=alpha, weights=list(texture_weights) or None,
                              preserve_color=preserve_color, scales=parse_scales(scales), schedule=schedule,
                              decoder=decoder, vgg=vgg, output=output, progress=report)
        choice.log()  # after the run: an error on the way stays the one line on stderr
        click.echo(str(output))
        return 0
    rc = _run_torch(contents, geometry, textures, others, batch, output, size=size, max_size=max_size,
                    skip_existing=skip_existing, overwrite=overwrite, save_warped=save_warped, save_field=save_field,
                    save_sheet=save_sheet, progress=progress, warper_path=warper_path, decoder=decoder, vgg=vgg,
                    device=device,
                    opts=dict(method=method, strength=strength, padding=padding, smoothness=smoothness,
                              warp_refine=warp_refine, align=align, alpha=alpha, texture_weights=texture_weights,
                              preserve_color=preserve_color, size=size, max_size=max_size, scales=parse_scales(scales),
                              schedule=schedule, refine_steps=refine_steps, tile=tile, bf16=bf16, seed=seed))
    choice.log()
    return rc


def _choose_engine(engine: str, *, contents: Sequence[Path], geometry: Path | None, textures: Sequence[Path],
                   batch: bool, save_sheet: bool, size: int | None, max_size: int, scales: list[int] | None,
                   refine_steps: int, bf16: bool | None, device: str, tile: int | None, decoder: Path | None,
                   vgg: Path | None) -> tuple[Any, Any, int]:
    """``(choice, content, longer)``: the :class:`~adain.engines.choose.EngineChoice`, and for the onnx
    engine the decoded content and the output's longer side (else None and 0). ``--engine onnx``
    with an option it lacks raises, naming the option."""
    from adain.engines.choose import EngineChoice, choose_engine, onnx_unsupported

    from warpstyle.app.texture_onnx import read_content, run_unsupported
    from warpstyle.sizes import longer_side

    if engine == "torch":
        return EngineChoice("torch", engine), None, 0
    shape = run_unsupported(geometry=geometry, textures=textures, batch=batch, save_sheet=save_sheet, out_hw=None,
                            scales=scales, refine_steps=refine_steps, bf16=bf16, device=device, tile=tile)
    if shape is not None:
        return choose_engine(engine, shape, decoder=decoder, vgg=vgg), None, 0  # raises for onnx
    longer = longer_side(size, max_size)
    content, out_hw = read_content(contents[0], longer)
    why = onnx_unsupported(out_hw, scales=scales, refine_steps=refine_steps, bf16=bf16, device=device, tile=tile)
    return choose_engine(engine, why, decoder=decoder, vgg=vgg), content, longer


def _run_torch(contents: Sequence[Path], geometry: Path | None, textures: Sequence[Path], others: list, batch: bool,
               output: Path, *, size: int | None, max_size: int, skip_existing: bool, overwrite: bool, save_warped: bool,
               save_field: str | None, save_sheet: bool, progress: bool | None, warper_path: Path | None,
               decoder: Path | None, vgg: Path | None, device: str, opts: dict[str, Any]) -> int:
    """``warpstyle run`` on torch (the reference engine, every option)."""
    from adain.base.training import resolve_device

    from warpstyle.app.run_files import run_options, side_suffixes, write_result
    from warpstyle.pipeline import DEFAULT_SIZE, Pipeline

    opts = run_options(**opts)  # type: ignore[assignment]
    sides = side_suffixes(has_geometry=geometry is not None, save_warped=save_warped, save_field=save_field,
                          save_sheet=save_sheet)
    if batch:
        items, skipped = _plan_batch_outputs(contents, output, sides, others, skip_existing, overwrite)
    else:
        _check_single_output(output, sides, contents[0], others)

    _check_input_memory(contents, geometry, textures, min(size or DEFAULT_SIZE, max_size), batch)
    tune_allocator_for(min(size or DEFAULT_SIZE, max_size))
    pipe = Pipeline.from_pretrained(warper=warper_path, decoder=decoder, vgg=vgg, device=resolve_device(device))
    if geometry is None:
        pipe.warper = None
    write = functools.partial(write_result, save_warped=save_warped, save_field=save_field, save_sheet=save_sheet)
    show = want_progress(progress)
    if not batch:
        with pass_progress("warpstyle run", show) as report:
            result = pipe.run(contents[0], geometry, list(textures) or None, opts, progress=report)
        write(result, output)
        click.echo(str(output))
        return 0
    failures = _run_batch(pipe, items, geometry, textures, opts, show, write)
    kept = f", {skipped} skipped (outputs exist)" if skipped else ""
    click.echo(f"{len(items) - failures} of {len(items)} done, {failures} failed{kept}; outputs in {output}", err=True)
    return USER_ERROR if failures else 0


@cli.command("video")
@click.option("--content", "-c", "clip", required=True, type=click.Path(path_type=Path),
              help="Input clip (anything FFmpeg reads: .mp4, .mov, .mkv, .webm, ...).")
@click.option("--geometry", "-g", type=click.Path(path_type=Path), default=None, help="Image whose shapes the frames take (omit: no warp).")
@click.option("--texture", "-t", "textures", multiple=True, type=click.Path(path_type=Path),
              help="Image whose brushwork and colours the frames take; repeat to mix (omit: no stylization).")
@click.option("--texture-weight", "texture_weights", multiple=True, type=click.FloatRange(min=0), help="Weight per --texture, in order (default: equal).")
@click.option("--geometry-method", "method", type=click.Choice(["match", "network"]), default="match", show_default=True,
              help="How each frame's warp is estimated: 'match', semantic matching (about 1 s a frame on a CPU with native bf16, 2.4 s in fp32); 'network', the correlation network (faster).")
@click.option("--strength", default=1.0, show_default=True, type=click.FloatRange(0, 4), help="Warp strength: 0 = none, 1 = estimated warp, >1 exaggerates.")
@click.option("--fill", "padding", type=click.Choice(["blur", "border", "reflection"]), default="blur", show_default=True,
              help="What fills the frame where the warp reaches beyond the content (as warpstyle run).")
@click.option("--smoothness", default=0.75, show_default=True, type=click.FloatRange(0, 16), help="Gaussian smoothing of the warp field in space, in cells of its grid.")
@click.option("--alpha", default=0.8, show_default=True, type=click.FloatRange(0, 1), help="Texture strength: 0 = warped content only, 1 = full texture.")
@click.option("--preserve-color", type=click.Choice(["match", "luminance"]), default=None,
              help="Keep the clip's colours ('match' recolours the texture to the first frame of each shot; 'luminance' transfers luminance only).")
@click.option("--size", type=click.IntRange(16, 4096), default=None, help="Longer side of the output frames in px, rounded down to even; aspect of the geometry (or the clip) [default: 512].")
@click.option("--field-smoothing", default=0.8, show_default=True, type=click.FloatRange(0, 0.99),
              help="Weight of the past in the moving average of the warp's non-rigid part, 0-0.99 (0: per frame; higher: steadier shapes, slower to follow).")
@click.option("--global-smoothing", default=0.5, show_default=True, type=click.FloatRange(0, 0.99),
              help="Weight of the past in the moving average of the warp's global (affine) part, 0-0.99: camera motion follows sooner.")
@click.option("--stats-smoothing", default=0.5, show_default=True, type=click.FloatRange(0, 0.99),
              help="Weight of the past in the moving average of the frames' AdaIN statistics, 0-0.99 (0: per frame; higher: less flicker).")
@click.option("--blend", default=0.5, show_default=True, type=click.FloatRange(0, 0.99),
              help="Share of the previous output kept, carried along the optical flow of the content where the flow explains it, 0-0.99 (0: off; the flow needs opencv-python-headless, without it only still regions blend).")
@click.option("--cut-threshold", default=0.3, show_default=True, type=click.FloatRange(0, 1),
              help="Colour-histogram distance between frames (0-1) that counts as a scene cut and restarts every average (1: never).")
@click.option("--track-steps", default=0, show_default=True, type=click.IntRange(0, 1000),
              help="Refine each frame's warp from the previous frame's with this many Adam steps instead of estimating it afresh (0: estimate every frame).")
@click.option("--crf", default=18, show_default=True, type=click.IntRange(0, 51), help="Encoder quality (constant rate factor; lower: better and larger).")
@click.option("--audio/--no-audio", default=True, show_default=True, help="Carry the clip's audio track across (copied unchanged where the output container takes its codec).")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after this many frames (a quick preview) [default: all].")
@click.option("--warper", "warper_path", type=click.Path(path_type=Path), default=None, help="Warper weights [default: bundled].")
@click.option("--decoder", type=click.Path(path_type=Path), default=None, help="AdaIN decoder weights [default: bundled].")
@click.option("--vgg", type=click.Path(path_type=Path), default=None, help="VGG-19 weights [default: bundled Oxford].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--bf16/--fp32", "bf16", default=None, help="bf16 autocast [default: on for a CPU with native bf16, else off].")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Output clip; the extension picks the codec: .mp4/.m4v/.mov/.mkv H.264, .webm VP9. Written to a "
                   "temp file beside it and renamed at the end (never a partial file under this name); never an input.")
@click.option("--progress/--no-progress", default=None, help="Progress bar with frames per second and ETA on stderr [default: when stderr is a terminal].")
def video_cmd(clip: Path, geometry: Path | None, textures: Sequence[Path], texture_weights: Sequence[float], method: str,
              strength: float, padding: str, smoothness: float, alpha: float, preserve_color: str | None,
              size: int | None, field_smoothing: float, global_smoothing: float, stats_smoothing: float, blend: float,
              cut_threshold: float, track_steps: int, crf: int, audio: bool, max_frames: int | None,
              warper_path: Path | None, decoder: Path | None, vgg: Path | None, device: str, bf16: bool | None,
              output: Path, progress: bool | None) -> None:
    """Warp every frame of a clip toward GEOMETRY and paint it with TEXTURE, stable in time (needs the 'video' extra).

    The geometry and texture are encoded once; each frame's warp and texture statistics are averaged
    over time and restart at scene cuts. Frame rate, time stamps, rotation and audio are kept. There
    is no --resume (see warpstyle.video.render).
    """
    from adain.base.storage.files import check_output_path
    from adain.base.storage.outputs import check_not_inputs

    from warpstyle.video.frames import output_codec, probe_video

    if texture_weights and len(texture_weights) != len(textures):
        raise click.BadParameter(f"give one --texture-weight per --texture ({len(textures)}); got {len(texture_weights)}",
                                 param_hint="--texture-weight")
    if geometry is None and not textures:
        click.echo("warpstyle: warning: neither --geometry nor --texture given; the output is the resized clip", err=True)
    # Every path first, before any model loads.
    require_inputs(images=[geometry, *textures], weights=[warper_path, decoder, vgg])
    check_output_path(output)
    check_not_inputs([output], [("--content", clip), ("--geometry", geometry), *(("--texture", t) for t in textures),
                                ("--warper", warper_path), ("--decoder", decoder), ("--vgg", vgg)])
    output_codec(output)
    info = probe_video(clip)
    if size is not None:
        _check_input_memory([], geometry, textures, size, batch=True)  # (the frames are decoded one at a time)

    from tqdm import tqdm

    from adain.base.training import resolve_device

    from warpstyle.pipeline import Pipeline, PipelineOptions
    from warpstyle.video.render import stylize_video
    from warpstyle.video.temporal import TemporalOptions

    opts = PipelineOptions(method=method, strength=strength, padding=padding, smoothness=smoothness,  # type: ignore[arg-type]
                           alpha=alpha, texture_weights=list(texture_weights) or None,
                           preserve_color=preserve_color, size=size, bf16=bf16)  # type: ignore[arg-type]
    temporal = TemporalOptions(field_smoothing=field_smoothing, global_smoothing=global_smoothing,
                               stats_smoothing=stats_smoothing, blend=blend, cut_threshold=cut_threshold,
                               track_steps=track_steps)
    tune_allocator_for(size)
    pipe = Pipeline.from_pretrained(warper=warper_path, decoder=decoder, vgg=vgg, device=resolve_device(device))
    if geometry is None:
        pipe.warper = None
    total = min(info.frames, max_frames) if (info.frames and max_frames) else (info.frames or max_frames or None)
    bar = tqdm(total=total, desc="warpstyle video", unit="frame", file=sys.stderr, dynamic_ncols=True,
               disable=not want_progress(progress))
    try:
        result = stylize_video(clip, output, pipe, geometry, list(textures) or None, opts, temporal, audio=audio,
                               crf=crf, max_frames=max_frames, progress=lambda done, _total: bar.update(done - bar.n))
    finally:
        bar.close()
    click.echo(f"{result.output}\t{result.frames} frames, {result.size[1]}x{result.size[0]}, {result.fps:.2f} fps, "
               f"{result.cuts} cuts{', audio kept' if result.audio else ''}", err=True)
    click.echo(str(result.output))


@cli.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on; 127.0.0.1 keeps the page on this machine.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535), help="TCP port of the page.")
@click.option("--share", is_flag=True, help="Also open a public gradio.live link (goes online; off by default).")
@click.option("--warper", "warper_path", type=click.Path(path_type=Path), default=None, help="Warper weights [default: bundled].")
@click.option("--decoder", type=click.Path(path_type=Path), default=None, help="AdaIN decoder weights [default: bundled].")
@click.option("--vgg", type=click.Path(path_type=Path), default=None, help="VGG-19 weights [default: bundled Oxford].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def demo_cmd(host: str, port: int, share: bool, warper_path: Path | None, decoder: Path | None, vgg: Path | None,
             device: str) -> None:
    """Serve the browser demo on http://HOST:PORT (needs the 'demo' extra: pip install 'warpstyle[demo]')."""
    from adain.base.training import resolve_device

    from warpstyle.app.demo import DemoEngine, launch
    from warpstyle.pipeline import Pipeline

    dev = resolve_device(device)
    engine = DemoEngine(lambda: Pipeline.from_pretrained(warper=warper_path, decoder=decoder, vgg=vgg, device=dev))
    launch(engine, host=host, port=port, share=share)


@cli.command("train-warper")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="TOML/JSON config (see configs/); flags override it.")
@click.option("--image-dir", default=None, help="Photo folder for synthetic pairs, searched recursively (e.g. COCO train2017).")
@click.option("--texture-dir", default=None, help="Painting folder for texture augmentation of the geometry side (empty: none).")
@click.option("--texture-prob", type=click.FloatRange(0, 1), default=None, help="Share of pairs repainted with the styler [default: 0.5].")
@click.option("--pf-pascal-root", default=None, help="PF-PASCAL root (holding PF-dataset-PASCAL/) for keypoint pairs.")
@click.option("--pf-pascal-csv", default=None, help="PF-PASCAL pair CSV with keypoint columns (e.g. trn_pairs.csv).")
@click.option("--output-dir", default=None, help="Run folder for checkpoint.pt, warper.safetensors, losses.csv [default: runs/warper].")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Total iterations [default: 20000].")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), default=None, help="Pairs per step per process [default: 16].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate, decayed as lr/(1+lr_decay*i) [default: 5e-4].")
@click.option("--pair-dirs", default=None, help="Comma-separated image folders to mine related pairs from (photos, paintings, geometry exemplars) for the feature-matching objective [default: none].")
@click.option("--pair-batch-size", type=click.IntRange(0, MAX_BATCH), default=None, help="Mined pairs per step (0: synthetic pairs only) [default: 0].")
@click.option("--match-weight", type=click.FloatRange(min=0), default=None, help="Weight of the feature-matching loss on mined pairs [default: 1].")
@click.option("--init-warper", default=None, help="Warm-start from these warper weights.")
@click.option("--smooth-weight", type=click.FloatRange(min=0), default=None, help="Weight of the field smoothness loss [default: 0].")
@click.option("--fold-weight", type=click.FloatRange(min=0), default=None, help="Weight of the fold (Jacobian determinant) penalty [default: 0].")
@click.option("--holdout", type=click.FloatRange(0, 0.9), default=None, help="Fraction of the image folder held out by a fixed hash split [default: 0].")
@click.option("--workers", type=click.IntRange(0, MAX_WORKERS), default=None, help="Data-loading worker processes [default: 2].")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=None, help="Random seed, 0 to 2^63-1 [default: 0].")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: auto].")
@click.option("--bf16/--fp32", "--amp/--no-amp", "bf16", default=None, help="bf16 autocast on CUDA and on a CPU with native bf16 [default: on]; --amp/--no-amp are the old names.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Checkpoint every N iterations [default: 1000].")
@click.option("--log-every", type=click.IntRange(min=1), default=None, help="Log losses every N iterations [default: 50].")
@click.option("--time-limit", "time_limit_s", type=click.FloatRange(min=0), default=None, help="Stop cleanly after this many seconds, with a checkpoint (0: no limit).")
@click.option("--resume", default=None, help="Training checkpoint to continue, or 'auto' for OUTPUT_DIR/checkpoint.pt if present.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def train_warper_cmd(config_path: Path | None, resume: str | None, progress: bool, **options: object) -> None:
    """Train the warper on synthetic affine+TPS pairs and mined pairs of different images (and PF-PASCAL if given).

    Runs under torchrun too."""
    from adain.base.config import load_config

    from warpstyle.training.config import WarperTrainConfig
    from warpstyle.training.train import train_warper

    cfg = load_config(WarperTrainConfig, config_path, options_dict(**options))
    if not cfg.image_dir:
        raise click.UsageError("--image-dir is required (on the command line or in --config)")
    tune_allocator_for(None)
    r = train_warper(cfg, resume=resume, progress=progress)
    click.echo(f"iteration {r.iteration}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.losses.items()) + f"; weights {r.weights}")


def _parse_step_counts(refine_steps: str) -> list[int]:
    """``--refine``'s ``"50,100,200"`` as step counts; click.BadParameter when malformed or negative."""
    try:
        steps = [int(x) for x in refine_steps.replace(" ", "").split(",") if x]
    except ValueError:
        raise click.BadParameter(f"expected step counts like 50,100,200; got {refine_steps!r}",
                                 param_hint="--refine") from None
    if any(n < 0 for n in steps):
        raise click.BadParameter("step counts must be >= 0", param_hint="--refine")
    return steps


def _check_eval_paths(*, warper_path: Path | None, image_dir: str | None, pf_pascal_root: str | None,
                      pf_pascal_csv: str | None, json_out: Path | None, landmark_cache: Path | None,
                      faces_content: Sequence[Path], faces_geometry: Sequence[Path]) -> None:
    """Check the inputs exist and the JSON output is writable and none of them, before anything loads."""
    from adain.base.errors import ImageError
    from adain.base.storage.files import check_output_path

    for folder in (image_dir, pf_pascal_root if pf_pascal_csv else None):
        if folder and not Path(folder).is_dir():
            raise ImageError(folder, "no such folder")
    require_inputs(weights=[warper_path])  # (the PF-PASCAL CSV may be relative to its root: its loader checks it)
    if json_out:
        from adain.base.storage.outputs import check_not_inputs

        check_output_path(json_out)
        check_not_inputs([json_out], [("--warper", warper_path), ("--image-dir", Path(image_dir) if image_dir else None),
                                      ("--pf-pascal-root", Path(pf_pascal_root) if pf_pascal_root else None),
                                      ("--pf-pascal-csv", Path(pf_pascal_csv) if pf_pascal_csv else None),
                                      ("--landmark-cache", landmark_cache),
                                      *(("--faces-content", f) for f in faces_content),
                                      *(("--faces-geometry", f) for f in faces_geometry)])


def _eval_synthetic(warper: object, image_dir: str, *, pairs: int, holdout: float, split: str, seed: int,
                    smoothness: float, aligned: bool | str) -> tuple[dict[str, dict], list[str]]:
    """Synthetic pairs scored for the warper and for matching: the report's entries and the table's lines."""
    from warpstyle.evaluation.evaluate import evaluate_synthetic

    s = evaluate_synthetic(warper, image_dir, pairs=pairs, holdout=holdout, split=split, seed=seed,  # type: ignore[arg-type]
                           smoothness=smoothness, align=aligned)
    m = evaluate_synthetic(warper, image_dir, pairs=pairs, holdout=holdout, split=split, seed=seed,  # type: ignore[arg-type]
                           smoothness=smoothness, method="match")
    lines = [f"synthetic pairs ({int(s['pairs'])}, {split} split of {image_dir}, 256 px):",
             f"  {'field':<10} {'EPE px':>8} {'folds %':>8}",
             f"  {'identity':<10} {s['epe_identity']:>8.2f} {100 * s['fold_identity']:>8.2f}",
             f"  {'warper':<10} {s['epe']:>8.2f} {100 * s['fold']:>8.2f}",
             f"  {'match':<10} {m['epe']:>8.2f} {100 * m['fold']:>8.2f}",
             f"  EPE ratio to identity: warper {s['epe_ratio']:.3f}, match {m['epe_ratio']:.3f}"]
    return {"synthetic": s, "synthetic_match": m}, lines


def _eval_faces(warper: object, landmarker: object, *, faces_content: Sequence[Path], faces_geometry: Sequence[Path],
                landmark_cache: Path | None, holdout: float, split: str, max_pairs: int | None, min_face: float,
                max_overshoot: float | None, steps: list[int], refine_size: int, smoothness: float, out_size: int,
                aligned: bool | str) -> tuple[dict, list[str]]:
    """Face pairs scored on landmarks: the report's entry and the table's lines."""
    from warpstyle.evaluation.face_landmarks import LandmarkCache, default_cache_path
    from warpstyle.evaluation.landmark_eval import evaluate_landmarks, face_pairs, format_landmark_table

    cache = LandmarkCache(landmark_cache or default_cache_path(), landmarker)  # type: ignore[arg-type]
    fpairs, counts = face_pairs(faces_content, faces_geometry, cache, holdout=holdout, split=split,
                                max_pairs=max_pairs, min_face=min_face, max_overshoot=max_overshoot)
    if not fpairs:
        within = "" if max_overshoot is None or not counts["all_pairs"] else f" within --max-overshoot {max_overshoot:g}"
        raise StyleTransferError(f"no face pairs{within} in the {split} split of the given folders: {counts}")
    lm = evaluate_landmarks(warper, fpairs, refine_steps=steps, refine_size=refine_size,  # type: ignore[arg-type]
                            smoothness=smoothness, size=out_size, progress=True, align=aligned)
    lm["counts"] = counts
    lines = [f"face landmarks ({split} split; {counts['content_faces']} of {counts['content_images']} content "
             f"images and {counts['geometry_faces']} of {counts['geometry_images']} geometry images have a "
             f"face; "
             + (f"{counts['pairs']} of {counts['all_pairs']} pairs scored" if max_overshoot is None else
                f"{counts['all_pairs']} pairs, {counts['in_frame_pairs']} whose fitted similarity maps the geometry's "
                f"frame at most {max_overshoot:g} content half-extents beyond the content, {counts['pairs']} scored")
             + "; errors in units of the content's "
             f"longer side; fields applied at {out_size} px):", format_landmark_table(lm),
             "(landmarks: dlib 68-point model, iBUG 300-W, non-commercial research licence; evaluation only)"]
    return lm, lines


def _write_json_report(report: dict[str, dict], json_out: Path) -> None:
    """Write the figures as indented JSON, atomically."""
    from adain.base.storage.files import atomic_path

    with atomic_path(json_out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")



@cli.command("eval-warper")
@click.option("--warper", "warper_path", type=click.Path(path_type=Path), default=None, help="Warper weights [default: bundled].")
@click.option("--image-dir", default=None, help="Photo folder for seeded synthetic pairs (the held-out split by default).")
@click.option("--holdout", default=0.1, show_default=True, type=click.FloatRange(0, 0.9), help="Held-out fraction of --image-dir (must match training).")
@click.option("--split", type=click.Choice(["heldout", "train", "all"]), default="heldout", show_default=True, help="Which part of --image-dir to evaluate on.")
@click.option("--pairs", default=200, show_default=True, type=click.IntRange(min=1), help="Number of synthetic pairs.")
@click.option("--smoothness", default=None, type=click.FloatRange(0, 16), help="Field smoothing before scoring (cells) [default: 0 for synthetic pairs; 0.75, as warpstyle run, for face landmarks].")
@click.option("--pf-pascal-root", default=None, help="PF-PASCAL root, for PCK.")
@click.option("--pf-pascal-csv", default=None, help="PF-PASCAL pair CSV with keypoints (e.g. test_pairs_pf_pascal.csv).")
@click.option("--alpha", "pck_alpha", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True), help="PCK threshold as a fraction of max(H, W).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", default=1234, show_default=True, type=click.IntRange(0, SEED_MAX), help="Seed of the synthetic pairs.")
@click.option("--faces-content", "faces_content", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Landmark mode: folder of content photos (repeatable); faces are found with dlib's 68-point model. "
                   "EVALUATION ONLY: that model was trained on iBUG 300-W (non-commercial research licence). "
                   "Needs the 'eval' extra.")
@click.option("--faces-geometry", "faces_geometry", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Landmark mode: folder of geometry images (portraits, caricatures; repeatable).")
@click.option("--refine", "refine_steps", default="", show_default=True, help="Landmark mode: also score per-pair refinement after these step counts, e.g. 50,100,200 (one run per pair).")
@click.option("--refine-size", default=16, show_default=True, type=click.IntRange(2, 128), help="Landmark mode: side of the refined field (cells).")
@click.option("--max-pairs", default=None, type=click.IntRange(min=1), help="Landmark mode: score at most this many face pairs, spread over the list [default: all].")
@click.option("--size", "out_size", default=512, show_default=True, type=click.IntRange(8, 16384), help="Landmark mode: output longer side (px) at which the field is applied and scored.")
@click.option("--landmark-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON cache of detected landmarks, keyed by file hash [default: ~/.cache/warpstyle/face_landmarks.json].")
@click.option("--min-face", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Landmark mode: keep faces spanning at least this fraction of their image's longer side (0.2: portraits, headshots).")
@click.option("--max-overshoot", default=None, type=click.FloatRange(min=0),
              help="Landmark mode: keep pairs whose landmark-fitted similarity maps the geometry's frame at most this far "
                   "beyond the content (content half-extents; 0.25 is what --align's search allows): pairs a global "
                   "alignment can line up without filling the output with padding [default: all pairs].")
@click.option("--align/--no-align", default=False, show_default=True,
              help="Score the warper with its global alignment search first (as warpstyle run --align).")
@click.option("--align-method", type=click.Choice(["search", "matches"]), default="search", show_default=True,
              help="With --align: the multi-scale search (warpstyle run --align) or the older feature-match "
                   "similarity (Warper.estimate(align='matches')).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write the figures as JSON.")
def eval_warper_cmd(warper_path: Path | None, image_dir: str | None, holdout: float, split: str, pairs: int,
                    smoothness: float | None, pf_pascal_root: str | None, pf_pascal_csv: str | None, pck_alpha: float,
                    device: str, seed: int, faces_content: Sequence[Path], faces_geometry: Sequence[Path],
                    refine_steps: str, refine_size: int, max_pairs: int | None, out_size: int,
                    landmark_cache: Path | None, min_face: float, max_overshoot: float | None, align: bool,
                    align_method: str, json_out: Path | None) -> None:
    """Score a warper: end-point error and folds on synthetic pairs, PCK on PF-PASCAL, landmark PCK on face pairs.

    Landmark mode (--faces-content with --faces-geometry) pairs every held-out content face with every
    held-out geometry face and reports PCK@0.02/0.05/0.10 and the mean error (units of the content's
    longer side) of the identity field, a similarity fitted on the landmarks, the warper and its
    refinement, with the feature-matching objective and the fold share of each field as applied.
    Landmarks come from dlib's 68-point model, trained on iBUG 300-W (non-commercial research
    licence): use them to evaluate only, never to train.
    """
    from adain.base.training import resolve_device

    from warpstyle.evaluation.evaluate import evaluate_pf_pascal
    from warpstyle.geometry.warper import DEFAULT_SMOOTHNESS, Warper

    landmark_mode = bool(faces_content or faces_geometry)
    if landmark_mode and not (faces_content and faces_geometry):
        raise click.UsageError("landmark mode needs both --faces-content and --faces-geometry")
    if not image_dir and not (pf_pascal_root and pf_pascal_csv) and not landmark_mode:
        raise click.UsageError("give --image-dir, --pf-pascal-root with --pf-pascal-csv, and/or --faces-content "
                               "with --faces-geometry")
    steps = _parse_step_counts(refine_steps)
    # Paths first, before the warper loads and the pairs are scored.
    _check_eval_paths(warper_path=warper_path, image_dir=image_dir, pf_pascal_root=pf_pascal_root,
                      pf_pascal_csv=pf_pascal_csv, json_out=json_out, landmark_cache=landmark_cache,
                      faces_content=faces_content, faces_geometry=faces_geometry)
    tune_allocator_for(None)  # fixed 256 px pairs
    landmarker = None
    if landmark_mode:
        from warpstyle.evaluation.face_landmarks import FaceLandmarker

        landmarker = FaceLandmarker()  # before loading the warper: a missing extra fails fast
    warper = Warper.from_pretrained(warper_path, device=resolve_device(device))
    aligned: bool | str = (True if align_method == "search" else align_method) if align else False
    report: dict[str, dict] = {}
    lines = []
    if image_dir:
        entries, section = _eval_synthetic(warper, image_dir, pairs=pairs, holdout=holdout, split=split, seed=seed,
                                           smoothness=0.0 if smoothness is None else smoothness, aligned=aligned)
        report.update(entries)
        lines += section
    if pf_pascal_root and pf_pascal_csv:
        p = evaluate_pf_pascal(warper, pf_pascal_root, pf_pascal_csv, alpha=pck_alpha, align=aligned)
        report["pf_pascal"] = p
        lines += [f"PF-PASCAL ({int(p['pairs'])} pairs) PCK@{pck_alpha}: identity {p['pck_identity']:.3f}, warper {p['pck']:.3f}"]
    if landmark_mode:
        report["landmarks"], section = _eval_faces(
            warper, landmarker, faces_content=faces_content, faces_geometry=faces_geometry,
            landmark_cache=landmark_cache, holdout=holdout, split=split, max_pairs=max_pairs, min_face=min_face,
            max_overshoot=max_overshoot, steps=steps, refine_size=refine_size,
            smoothness=DEFAULT_SMOOTHNESS if smoothness is None else smoothness, out_size=out_size, aligned=aligned)
        lines += section
    click.echo("\n".join(lines))
    if json_out:
        _write_json_report(report, json_out)


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True,
              help="Graph format: ONNX (needs the 'export' extra: pip install -e '.[export]') or TorchScript (traced).")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder that receives <model>.onnx (or <model>.torchscript.pt) and <model>.json for each model.")
@click.option("--model", "models", multiple=True, type=click.Choice(["warper", "decoder", "styler"]),
              help="Export only this model; repeat for several [default: all three].")
@click.option("--warper", "warper_path", type=click.Path(path_type=Path), default=None, help="Warper weights [default: bundled].")
@click.option("--decoder", type=click.Path(path_type=Path), default=None, help="AdaIN decoder weights [default: bundled].")
@click.option("--vgg", type=click.Path(path_type=Path), default=None, help="VGG-19 weights [default: bundled Oxford].")
def export_cmd(fmt: str, output: Path, models: Sequence[str], warper_path: Path | None, decoder: Path | None,
               vgg: Path | None) -> None:
    """Write the warper (images -> field), the decoder (features -> image) and the one-pass styler as graphs."""
    from warpstyle.app.export import EXPORT_MODELS, export_models

    written = export_models(output, fmt, models=models or EXPORT_MODELS,  # type: ignore[arg-type]
                            warper=warper_path, decoder=decoder, vgg=vgg)
    for m in written:
        click.echo(f"{m.path}\t{m.card_path}")


def main(args: Sequence[str] | None = None) -> None:
    sys.exit(run_cli(cli, "warpstyle", args, oom_advice={"": OOM_ADVICE, "train-warper": WARPER_TRAIN_OOM_ADVICE,
                                                          "eval-warper": "try fewer --pairs or a smaller --size"}))


if __name__ == "__main__":
    main()
