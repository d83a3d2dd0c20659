"""The ``adain`` command: ``stylize`` and ``train-styler``. Parses options and calls the library."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from . import __version__
from .base.config import MAX_BATCH, MAX_WORKERS, SEED_MAX
from .base.cli_support import (TRAIN_OOM_ADVICE, options_dict, parse_scales, pass_progress, require_inputs, run_cli, set_verbosity,
                               tune_allocator_for, want_progress)

OOM_ADVICE = "try a smaller output, e.g. --size 1024 (the finest pass decides the peak memory)"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="adain")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """AdaIN texture transfer: stylize images and train decoders."""
    set_verbosity(verbose, quiet)


@cli.command("stylize")
@click.option("--content", "-c", required=True, type=click.Path(path_type=Path), help="Content image (any format Pillow reads).")
@click.option("--style", "-s", "styles", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Style image; repeat for style interpolation.")
@click.option("--weight", "weights", multiple=True, type=click.FloatRange(min=0), help="Weight of each --style, in order (default: equal).")
@click.option("--alpha", default=1.0, show_default=True, type=click.FloatRange(0, 1), help="Content-style trade-off: 0 = content, 1 = full style.")
@click.option("--mask", "masks", multiple=True, type=click.Path(path_type=Path),
              help="Grayscale mask per --style (white = that style's region), resized to the content.")
@click.option("--preserve-color", type=click.Choice(["match", "luminance"]), default=None,
              help="Keep the content's colours: 'match' recolours the style first, 'luminance' transfers luminance only.")
@click.option("--scales", default="auto", show_default=True, help="Coarse-to-fine pass sizes in px (longer side), e.g. 256,512,1024; 'auto' halves from --size while the half stays >= 512 (one pass below 1024).")
@click.option("--size", type=click.IntRange(8, 16384), default=None, help="Longer side of the output in px [default: the content's].")
@click.option("--schedule", type=click.Choice(["guided", "restylize"]), default="guided", show_default=True,
              help="How finer passes use the coarser one: guided applies AdaIN to the content's features averaged with the coarser result's; restylize (the old default) repaints the coarser result (loses content). Only outputs over 512 px have several passes.")
@click.option("--refine", "refine_steps", type=click.IntRange(0, 10000), default=0, show_default=True,
              help="Quality mode: N optimisation steps on the output (content and style losses) after the feed-forward result; slower (about 1 s a step at 512 px on 2 CPU cores).")
@click.option("--tile", type=click.IntRange(min=0), default=None,
              help="Core side of the tiles large texture passes run in, px, a multiple of 8 (0: never tile) [default: automatic: passes over 1024x1024 px, in 1024 px tiles or the smaller ones the memory pre-flight picks].")
@click.option("--decoder", type=click.Path(path_type=Path), default=None, help="Decoder weights (ours or the AdaIN port's decoder.pth) [default: bundled].")
@click.option("--vgg", type=click.Path(path_type=Path), default=None, help="VGG-19 weights (Oxford, vgg_normalised.pth or torchvision layout) [default: bundled Oxford].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--bf16/--fp32", "bf16", default=None, help="bf16 autocast [default: on for a CPU with native bf16, else off].")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Output image (.png, .jpg, .webp, .bmp, .tif); replaced if it exists, refused if it is an input.")
@click.option("--progress/--no-progress", default=None,
              help="Per-pass progress bar with an ETA on stderr [default: when stderr is a terminal].")
@click.option("--engine", type=click.Choice(["auto", "torch", "onnx"]), default="auto", show_default=True,
              help="torch (the reference), onnx (onnxruntime, float32, never imports torch; builds its graphs once, about "
                   "10 s; no --mask, --refine, --bf16, --device cuda, tiles or outputs over 1024x1024 px), or auto: onnx "
                   "when onnxruntime is installed, the graphs of these weights are built (adain build-graphs) and the "
                   "options allow, else torch. See docs/engines.md.")
def stylize_cmd(content: Path, styles: Sequence[Path], weights: Sequence[float], alpha: float, masks: Sequence[Path],
                preserve_color: str | None, scales: str, size: int | None, schedule: str, refine_steps: int, tile: int | None,
                decoder: Path | None, vgg: Path | None, device: str, bf16: bool | None, output: Path,
                progress: bool | None, engine: str) -> None:
    """Paint CONTENT with the texture of one or more STYLE images."""
    # Nothing here imports torch before the engine is chosen: the onnx engine never does.
    from .base.imagefile import check_image_output, decode_cost, fit_longer, read_rgb
    from .base.memory import check_decode_memory
    from .base.storage.outputs import check_not_inputs
    from .engines.choose import choose_engine, onnx_unsupported

    if weights and len(weights) != len(styles):
        raise click.BadParameter(f"give one --weight per --style ({len(styles)}); got {len(weights)}", param_hint="--weight")
    if masks and len(masks) != len(styles):
        raise click.BadParameter(f"give one --mask per --style ({len(styles)}); got {len(masks)}", param_hint="--mask")
    pass_sizes = parse_scales(scales)
    # Every path is checked before any image or model is loaded (a bad -o must not cost a whole run).
    require_inputs(images=[content, *styles, *masks], weights=[decoder, vgg])
    check_image_output(output)
    check_not_inputs([output], [("--content", content), *(("--style", s) for s in styles),
                                *(("--mask", m) for m in masks), ("--decoder", decoder), ("--vgg", vgg)])
    # From the headers, before any decode: each input decoded toward the output's size must fit in memory
    # (styles are decoded toward the output's longer side, the content's own when no --size).
    style_side = size or max(decode_cost(content).size)
    check_decode_memory([(content, size), *((s, style_side) for s in styles), *((m, None) for m in masks)])
    c = read_rgb(content, working_size=size)  # (H, W, 3); a large file straight to about the output's size
    out_hw = fit_longer(c.shape[:2], size or max(c.shape[:2]))
    unsupported = onnx_unsupported(out_hw, size=size, scales=pass_sizes, masks=bool(masks), refine_steps=refine_steps,
                                   bf16=bf16, device=device, tile=tile)
    opts = dict(alpha=alpha, weights=list(weights) or None, preserve_color=preserve_color, scales=pass_sizes, size=size,
                schedule=schedule)
    choice = choose_engine(engine, unsupported, decoder=decoder, vgg=vgg)
    with pass_progress("adain stylize", want_progress(progress)) as report:
        if choice.engine == "onnx":
            _stylize_onnx(c, styles, style_side, opts, decoder, vgg, output, report)
        else:
            _stylize_torch(c, styles, style_side, masks, opts, decoder, vgg, output, report,
                           dict(device=device, bf16=bf16, refine_steps=refine_steps, tile=tile))
    choice.log()  # after the run: an error on the way stays the one line on stderr
    click.echo(str(output))


def _stylize_onnx(content: Any, styles: Sequence[Path], style_size: int, opts: dict[str, Any], decoder: Path | None,
                  vgg: Path | None, output: Path, report: Callable[[int, int], None] | None) -> None:
    """``adain stylize`` on onnxruntime: ``content`` is the decoded ``(H, W, 3)`` array."""
    import numpy as np

    from .base.imagefile import write_rgb
    from .engines.onnx_styler import OnnxStyler, read_chw

    style_images = [read_chw(s, working_size=style_size) for s in styles]
    styler = OnnxStyler.from_pretrained(decoder, vgg=vgg, build=True)  # builds the graphs once (torch)
    out = styler.stylize(np.ascontiguousarray(content.transpose(2, 0, 1)), style_images, progress=report, **opts)
    write_rgb(out.transpose(1, 2, 0), output)


def _stylize_torch(content: Any, styles: Sequence[Path], style_size: int, masks: Sequence[Path], opts: dict[str, Any],
                   decoder: Path | None, vgg: Path | None, output: Path, report: Callable[[int, int], None] | None,
                   torch_opts: dict[str, Any]) -> None:
    """``adain stylize`` on torch, the reference engine: ``content`` is the decoded ``(H, W, 3)`` array."""
    from .base.image import load_image, resize_exact, save_image
    from .base.training import resolve_device
    from .styler import Styler

    dev = resolve_device(torch_opts.pop("device"))
    c = load_image(content)
    tune_allocator_for(opts["size"] or max(c.shape[-2:]))
    style_images = [load_image(s, working_size=style_size) for s in styles]
    mask_t = [resize_exact(load_image(m).mean(1, keepdim=True), tuple(c.shape[-2:])) for m in masks] or None
    styler = Styler.from_pretrained(decoder, vgg=vgg, device=dev)
    out = styler.stylize(c, style_images, masks=mask_t, progress=report, **opts, **torch_opts)
    save_image(out, output)


@cli.command("build-graphs")
@click.option("--decoder", type=click.Path(path_type=Path), default=None, help="Decoder weights [default: bundled].")
@click.option("--vgg", type=click.Path(path_type=Path), default=None, help="VGG-19 weights [default: bundled Oxford].")
def build_graphs_cmd(decoder: Path | None, vgg: Path | None) -> None:
    """Build the onnx engine's graphs of these weights once (needs torch and the 'export' extra; about 10 s).

    They go to $XDG_CACHE_HOME/warpstyle/onnx/<hash of the weights>/ (~/.cache when unset), where
    `adain stylize --engine auto` finds them. Prints the folder.
    """
    require_inputs(weights=[decoder, vgg])
    from .engines.build import build_graphs

    click.echo(str(build_graphs(decoder, vgg).folder))


@cli.command("train-styler")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="TOML/JSON config (see configs/); flags override it.")
@click.option("--content-dir", default=None, help="Folder of content photos, searched recursively (e.g. COCO train2017).")
@click.option("--style-dir", default=None, help="Folder of style images, searched recursively (e.g. WikiArt).")
@click.option("--output-dir", default=None, help="Run folder for checkpoint.pt, decoder.safetensors, losses.csv, samples/ [default: runs/styler].")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Total iterations [default: 160000].")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), default=None, help="Images per step per process [default: 8].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate, decayed as lr/(1+lr_decay*i) [default: 1e-4].")
@click.option("--lr-decay", type=click.FloatRange(min=0), default=None, help="Learning-rate decay [default: 5e-5].")
@click.option("--style-weight", type=click.FloatRange(min=0), default=None, help="Weight of the style loss, channel-averaged MSE as in the PyTorch port [default: 10].")
@click.option("--content-weight", type=click.FloatRange(min=0), default=None, help="Weight of the content loss [default: 1].")
@click.option("--identity-pixel-weight", type=click.FloatRange(min=0), default=None, help="Weight of the pixel identity loss, MSE of decode(encode(x)) to x for content and style (0: off) [default: 0].")
@click.option("--identity-feature-weight", type=click.FloatRange(min=0), default=None, help="Weight of the feature identity loss at relu1_1..relu4_1 (0: off) [default: 0].")
@click.option("--decoder-skips", default=None, help="Skip inputs of the decoder, comma-separated from relu3_1, relu2_1, relu1_1; new 1x1 convolutions start at zero [default: none].")
@click.option("--skip-lr-scale", type=click.FloatRange(min=0, min_open=True), default=None, help="The skip and keep convolutions learn at lr times this [default: 1].")
@click.option("--decoder-keep", default=None, help="Keep path of the decoder: some of its skips, comma-separated; 1x1 convolutions for the content's own features at alpha < 1, starting at zero [default: none].")
@click.option("--train-keep-only/--train-all", default=None, help="Train only the keep convolutions, on the identity losses; the rest stays frozen, so alpha-1 outputs do not change [default: --train-all].")
@click.option("--load-size", type=click.IntRange(8, 4096), default=None, help="Shorter side before cropping, px [default: 512].")
@click.option("--crop-size", type=click.IntRange(16, 4096), default=None, help="Random crop side, px [default: 256].")
@click.option("--holdout", type=click.FloatRange(0, 0.9), default=None, help="Fraction of each folder held out by a fixed hash split [default: 0].")
@click.option("--workers", type=click.IntRange(0, MAX_WORKERS), default=None, help="Data-loading worker processes [default: 2].")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=None, help="Random seed, 0 to 2^63-1 [default: 0].")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: auto].")
@click.option("--bf16/--fp32", "--amp/--no-amp", "bf16", default=None, help="bf16 autocast on CUDA and on a CPU with native bf16 [default: on]; --amp/--no-amp are the old names.")
@click.option("--vgg", default=None, help="VGG-19 weights file [default: bundled Oxford].")
@click.option("--init-decoder", default=None, help="Start from these decoder weights.")
@click.option("--sample-every", type=click.IntRange(min=0), default=None, help="Write a sample grid every N iterations (0: never) [default: 1000].")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Checkpoint every N iterations [default: 1000].")
@click.option("--log-every", type=click.IntRange(min=1), default=None, help="Log losses every N iterations [default: 50].")
@click.option("--time-limit", "time_limit_s", type=click.FloatRange(min=0), default=None, help="Stop cleanly after this many seconds, with a checkpoint (0: no limit).")
@click.option("--resume", default=None, help="Training checkpoint to continue, or 'auto' for OUTPUT_DIR/checkpoint.pt if present.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def train_styler_cmd(config_path: Path | None, resume: str | None, progress: bool, **options: object) -> None:
    """Train an AdaIN decoder on a content folder and a style folder (runs under torchrun too)."""
    from .base.config import load_config
    from .config import StylerTrainConfig
    from .train import train_styler

    cfg = load_config(StylerTrainConfig, config_path, options_dict(**options))
    if not cfg.content_dir or not cfg.style_dir:
        raise click.UsageError("--content-dir and --style-dir are required (on the command line or in --config)")
    tune_allocator_for(None)
    result = train_styler(cfg, resume=resume, progress=progress)
    click.echo(f"iteration {result.iteration}: content {result.losses['content_loss']:.4f}, style {result.losses['style_loss']:.4f}; "
               f"weights {result.weights}" + (f"; skipped {result.skipped_files} unreadable files" if result.skipped_files else ""))


def main(args: Sequence[str] | None = None) -> None:
    sys.exit(run_cli(cli, "adain", args, oom_advice={"": OOM_ADVICE, "train-styler": TRAIN_OOM_ADVICE}))


if __name__ == "__main__":
    main()
