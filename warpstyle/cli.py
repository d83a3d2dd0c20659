"""The ``warpstyle`` command: ``run``, ``train-warper``, ``eval-warper``. Parses options, calls the library."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from adain import __version__
from adain.base.config import SEED_MAX
from adain.base.cli_support import options_dict, parse_scales, run_cli, set_verbosity, tune_allocator_for
from adain.base.errors import StyleTransferError

OOM_ADVICE = "try a smaller output, e.g. --size 1024 or --max-size 1024 (the finest pass decides the peak memory)"
USER_ERROR = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="warpstyle")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Geometric-plus-texture style transfer: warp a photo toward a geometry image, paint it with a texture."""
    set_verbosity(verbose, quiet)


def _expand_contents(contents: Sequence[Path]) -> tuple[list[Path], bool]:
    """Paths and folders -> image paths; batch mode when several or a folder were given."""
    from adain.base.data import list_images

    out: list[Path] = []
    batch = len(contents) > 1
    for c in contents:
        if c.is_dir():
            batch = True
            out.extend(list_images(c))
        else:
            out.append(c)
    return out, batch


@cli.command("run")
@click.option("--content", "-c", "contents", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Content photo, or a folder of them; repeat for several (batch mode).")
@click.option("--geometry", "-g", type=click.Path(path_type=Path), default=None, help="Image whose shapes the output takes (omit: no warp).")
@click.option("--texture", "-t", "textures", multiple=True, type=click.Path(path_type=Path),
              help="Image whose brushwork and colours the output takes; repeat to mix (omit: no stylization).")
@click.option("--texture-weight", "texture_weights", multiple=True, type=click.FloatRange(min=0), help="Weight per --texture, in order (default: equal).")
@click.option("--strength", default=1.0, show_default=True, type=click.FloatRange(0, 4), help="Warp strength: 0 = none, 1 = estimated warp, >1 exaggerates.")
@click.option("--smoothness", default=None, type=click.FloatRange(0, 16), help="Gaussian smoothing of the warp field, in cells of its 16x16 grid [default: 0.75].")
@click.option("--alpha", default=0.8, show_default=True, type=click.FloatRange(0, 1), help="Texture strength: 0 = warped content only, 1 = full texture.")
@click.option("--preserve-color", type=click.Choice(["match", "luminance"]), default=None, help="Keep the content's colours ('match' recolours the texture first; 'luminance' transfers luminance only).")
@click.option("--size", type=click.IntRange(8, 16384), default=None, help="Longer side of the output in px; aspect of the geometry (or the content) [default: 512].")
@click.option("--max-size", type=click.IntRange(8, 16384), default=4096, show_default=True, help="Cap on the output's longer side in px.")
@click.option("--scales", default="auto", show_default=True, help="Coarse-to-fine stylization passes (longer sides), e.g. 256,512; 'auto' halves from --size down to >= 256.")
@click.option("--warper", "warper_path", type=click.Path(path_type=Path), default=None, help="Warper weights [default: bundled].")
@click.option("--decoder", type=click.Path(path_type=Path), default=None, help="AdaIN decoder weights [default: bundled].")
@click.option("--vgg", type=click.Path(path_type=Path), default=None, help="VGG-19 weights [default: bundled Oxford].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--bf16/--fp32", "bf16", default=None, help="bf16 autocast [default: on for CPU, off for CUDA].")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, SEED_MAX), help="Seed for any random step (the default path is deterministic).")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Output image (.png/.jpg/.webp); in batch mode a folder that receives <name>.png.")
@click.option("--save-warped", is_flag=True, help="Also write <output>_warped.png (the warped content before texture).")
@click.option("--save-field", type=click.Choice(["flo", "npy"]), default=None, help="Also write the field as <output>_field.flo or .npy, and <output>_field.png (colour wheel).")
@click.option("--save-sheet", is_flag=True, help="Also write <output>_sheet.jpg: inputs, warped and result side by side, labelled.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar in batch mode.")
def run_cmd(contents: Sequence[Path], geometry: Path | None, textures: Sequence[Path], texture_weights: Sequence[float],
            strength: float, smoothness: float | None, alpha: float, preserve_color: str | None, size: int | None,
            max_size: int, scales: str, warper_path: Path | None, decoder: Path | None, vgg: Path | None, device: str,
            bf16: bool | None, seed: int, output: Path, save_warped: bool, save_field: str | None, save_sheet: bool,
            progress: bool) -> int:
    """Warp CONTENT toward GEOMETRY, then paint it with TEXTURE."""
    from PIL import Image
    from tqdm.auto import tqdm

    from adain.base.data import IMAGE_EXTENSIONS
    from adain.base.image import save_image
    from adain.base.training import resolve_device

    from .pipeline import DEFAULT_SIZE, Pipeline, PipelineOptions
    from .warper import DEFAULT_SMOOTHNESS

    if texture_weights and len(texture_weights) != len(textures):
        raise click.BadParameter(f"give one --texture-weight per --texture ({len(textures)}); got {len(texture_weights)}",
                                 param_hint="--texture-weight")
    if geometry is None and not textures:
        click.echo("warpstyle: warning: neither --geometry nor --texture given; the output is the resized content", err=True)
    paths, batch = _expand_contents(contents)
    if batch and output.suffix.lower() in IMAGE_EXTENSIONS:
        raise click.BadParameter("with several contents or a folder, --output must be a folder", param_hint="--output")
    if not paths:
        raise click.BadParameter("no content images found", param_hint="--content")
    opts = PipelineOptions(
        strength=strength, smoothness=DEFAULT_SMOOTHNESS if smoothness is None else smoothness, alpha=alpha,
        texture_weights=list(texture_weights) or None, preserve_color=preserve_color,  # type: ignore[arg-type]
        size=size, max_size=max_size, scales=parse_scales(scales), bf16=bf16, seed=seed,
    )
    tune_allocator_for(min(size or DEFAULT_SIZE, max_size))
    pipe = Pipeline.from_pretrained(warper=warper_path, decoder=decoder, vgg=vgg, device=resolve_device(device))
    if geometry is None:
        pipe.warper = None

    def write(result, out: Path) -> None:  # noqa: ANN001
        save_image(result.image, out)
        stem = out.with_suffix("")
        if save_warped and result.warped is not None:
            save_image(result.warped, f"{stem}_warped.png")
        if save_field and result.field is not None:
            result.field.save(f"{stem}_field.{save_field}")
            save_image(Image.fromarray(result.field.visualize()), f"{stem}_field.png")
        if save_sheet:
            save_image(result.sheet(), f"{stem}_sheet.jpg")

    if not batch:
        result = pipe.run(paths[0], geometry, list(textures) or None, opts)
        write(result, output)
        click.echo(str(output))
        return 0
    failures = 0
    bar = tqdm(total=len(paths), disable=not progress, desc="warpstyle run", unit="img")
    for path, res in pipe.run_batch(paths, geometry, list(textures) or None, opts):
        if isinstance(res, StyleTransferError):
            failures += 1
            click.echo(f"warpstyle: skipped: {res}", err=True)
        else:
            write(res, output / (Path(str(path)).stem + ".png"))
        bar.update(1)
    bar.close()
    click.echo(f"{len(paths) - failures} of {len(paths)} done, {failures} failed; outputs in {output}", err=True)
    return USER_ERROR if failures else 0


@cli.command("train-warper")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="TOML/JSON config (see configs/); flags override it.")
@click.option("--image-dir", default=None, help="Photo folder for synthetic pairs, searched recursively (e.g. COCO train2017).")
@click.option("--texture-dir", default=None, help="Painting folder for texture augmentation of the geometry side (empty: none).")
@click.option("--texture-prob", type=click.FloatRange(0, 1), default=None, help="Share of pairs repainted with the styler [default: 0.5].")
@click.option("--pf-pascal-root", default=None, help="PF-PASCAL root (holding PF-dataset-PASCAL/) for keypoint pairs.")
@click.option("--pf-pascal-csv", default=None, help="PF-PASCAL pair CSV with keypoint columns (e.g. trn_pairs.csv).")
@click.option("--output-dir", default=None, help="Run folder for checkpoint.pt, warper.pt, losses.csv [default: runs/warper].")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Total iterations [default: 20000].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Pairs per step per process [default: 16].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate, decayed as lr/(1+lr_decay*i) [default: 5e-4].")
@click.option("--feature-weight", type=click.FloatRange(min=0), default=None, help="Weight of the unsupervised feature-matching loss [default: 0].")
@click.option("--smooth-weight", type=click.FloatRange(min=0), default=None, help="Weight of the field smoothness loss [default: 0].")
@click.option("--holdout", type=click.FloatRange(0, 0.9), default=None, help="Fraction of the image folder held out by a fixed hash split [default: 0].")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Data-loading worker processes [default: 2].")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=None, help="Random seed, 0 to 2^63-1 [default: 0].")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [default: auto].")
@click.option("--amp/--no-amp", default=None, help="bf16 autocast [default: on].")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Checkpoint every N iterations [default: 1000].")
@click.option("--log-every", type=click.IntRange(min=1), default=None, help="Log losses every N iterations [default: 50].")
@click.option("--time-limit", "time_limit_s", type=click.FloatRange(min=0), default=None, help="Stop cleanly after this many seconds, with a checkpoint (0: no limit).")
@click.option("--resume", default=None, help="Training checkpoint to continue, or 'auto' for OUTPUT_DIR/checkpoint.pt if present.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def train_warper_cmd(config_path: Path | None, resume: str | None, progress: bool, **options: object) -> None:
    """Train the warper on synthetic affine+TPS pairs (and PF-PASCAL if given); runs under torchrun too."""
    from adain.base.config import load_config

    from .config import WarperTrainConfig
    from .train import train_warper

    cfg = load_config(WarperTrainConfig, config_path, options_dict(**options))
    if not cfg.image_dir:
        raise click.UsageError("--image-dir is required (on the command line or in --config)")
    tune_allocator_for(None)
    r = train_warper(cfg, resume=resume, progress=progress)
    click.echo(f"iteration {r.iteration}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.losses.items()) + f"; weights {r.weights}")


@cli.command("eval-warper")
@click.option("--warper", "warper_path", type=click.Path(path_type=Path), default=None, help="Warper weights [default: bundled].")
@click.option("--image-dir", default=None, help="Photo folder for seeded synthetic pairs (the held-out split by default).")
@click.option("--holdout", default=0.1, show_default=True, type=click.FloatRange(0, 0.9), help="Held-out fraction of --image-dir (must match training).")
@click.option("--split", type=click.Choice(["heldout", "train", "all"]), default="heldout", show_default=True, help="Which part of --image-dir to evaluate on.")
@click.option("--pairs", default=200, show_default=True, type=click.IntRange(min=1), help="Number of synthetic pairs.")
@click.option("--smoothness", default=0.0, show_default=True, type=click.FloatRange(0, 16), help="Field smoothing before scoring (cells).")
@click.option("--pf-pascal-root", default=None, help="PF-PASCAL root, for PCK.")
@click.option("--pf-pascal-csv", default=None, help="PF-PASCAL pair CSV with keypoints (e.g. test_pairs_pf_pascal.csv).")
@click.option("--alpha", "pck_alpha", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True), help="PCK threshold as a fraction of max(H, W).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", default=1234, show_default=True, type=click.IntRange(0, SEED_MAX), help="Seed of the synthetic pairs.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write the figures as JSON.")
def eval_warper_cmd(warper_path: Path | None, image_dir: str | None, holdout: float, split: str, pairs: int,
                    smoothness: float, pf_pascal_root: str | None, pf_pascal_csv: str | None, pck_alpha: float,
                    device: str, seed: int, json_out: Path | None) -> None:
    """Score a warper: end-point error and folds on synthetic pairs, PCK on PF-PASCAL; identity as baseline."""
    from adain.base.training import resolve_device

    from .train import evaluate_pf_pascal, evaluate_synthetic
    from .warper import Warper

    if not image_dir and not (pf_pascal_root and pf_pascal_csv):
        raise click.UsageError("give --image-dir and/or --pf-pascal-root with --pf-pascal-csv")
    tune_allocator_for(None)  # fixed 256 px pairs
    warper = Warper.from_pretrained(warper_path, device=resolve_device(device))
    report: dict[str, dict[str, float]] = {}
    lines = []
    if image_dir:
        s = evaluate_synthetic(warper, image_dir, pairs=pairs, holdout=holdout, split=split, seed=seed,
                               smoothness=smoothness)
        report["synthetic"] = s
        lines += [f"synthetic pairs ({int(s['pairs'])}, {split} split of {image_dir}, 256 px):",
                  f"  {'field':<10} {'EPE px':>8} {'folds %':>8}",
                  f"  {'identity':<10} {s['epe_identity']:>8.2f} {100 * s['fold_identity']:>8.2f}",
                  f"  {'warper':<10} {s['epe']:>8.2f} {100 * s['fold']:>8.2f}",
                  f"  EPE ratio warper/identity: {s['epe_ratio']:.3f}"]
    if pf_pascal_root and pf_pascal_csv:
        p = evaluate_pf_pascal(warper, pf_pascal_root, pf_pascal_csv, alpha=pck_alpha)
        report["pf_pascal"] = p
        lines += [f"PF-PASCAL ({int(p['pairs'])} pairs) PCK@{pck_alpha}: identity {p['pck_identity']:.3f}, warper {p['pck']:.3f}"]
    click.echo("\n".join(lines))
    if json_out:
        from adain.base.files import atomic_path

        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")


def main(args: Sequence[str] | None = None) -> None:
    sys.exit(run_cli(cli, "warpstyle", args, oom_advice=OOM_ADVICE))


if __name__ == "__main__":
    main()
