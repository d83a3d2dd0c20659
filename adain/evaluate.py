"""Held-out quality figures of a styler: AdaIN losses, and the texture-stage scores of docs/quality.md."""

from __future__ import annotations

from pathlib import Path

import kornia
import torch

from .base.data import list_images, split_paths
from .functional import adaptive_instance_norm
from .base.image import load_image, resize_longer
from .losses import STYLE_TAPS, content_loss, lattice_power, lattice_spectrum, style_loss
from .styler import Styler

__all__ = ["evaluate_styler", "heldout_pairs", "texture_scores", "band_ratio", "edge_bands", "lattice_ratio", "lattice_energy", "SIDES"]

#: The sides :func:`edge_bands` measures, in its order.
SIDES: tuple[str, ...] = ("left", "top", "right", "bottom")


def heldout_pairs(content_dir: str | Path, style_dir: str | Path, *, holdout: float = 0.1, pairs: int = 48,
                  split: str = "heldout") -> list[tuple[Path, Path]]:
    """Content i with style i of the held-out splits (sorted, cycling the shorter list)."""
    cs = split_paths(list_images(content_dir), content_dir, split, holdout)  # type: ignore[arg-type]
    ss = split_paths(list_images(style_dir), style_dir, split, holdout)  # type: ignore[arg-type]
    if not cs or not ss:
        raise ValueError("no held-out images: check the folders and the holdout fraction")
    return [(cs[i % len(cs)], ss[i % len(ss)]) for i in range(pairs)]


@torch.no_grad()
def evaluate_styler(styler: Styler, pairs: list[tuple[Path, Path]], *, size: int = 512, bf16: bool = True,
                    identity: bool = False) -> dict[str, float]:
    """Mean content loss (output relu4_1 vs the AdaIN target) and style loss (output vs style).

    Single pass at ``size`` (longer side), the setting the decoder is trained for. ``identity=True``
    scores the un-stylized content instead (the starting point).
    """
    enc = styler.encoder
    lc_sum = ls_sum = 0.0
    for c_path, s_path in pairs:
        c = resize_longer(load_image(c_path), size).to(styler.device)
        s = resize_longer(load_image(s_path), size).to(styler.device)
        out = c if identity else styler.stylize(c, [s], size=size, scales=[size], bf16=bf16)
        fc = enc(c, taps=("relu4_1",))["relu4_1"]
        fs = enc(s, taps=STYLE_TAPS)
        fo = enc(out, taps=STYLE_TAPS)
        target = adaptive_instance_norm(fc, fs["relu4_1"])
        lc_sum += float(content_loss(fo["relu4_1"], target))
        ls_sum += float(style_loss([fo[t] for t in STYLE_TAPS], [fs[t] for t in STYLE_TAPS]))
    n = len(pairs)
    return {"pairs": n, "content_loss": lc_sum / n, "style_loss": ls_sum / n}


def band_ratio(image: torch.Tensor, *, axis: str, at: int, inward: int, strip: int = 8) -> float:
    """How much a band of ``strip`` px beside a line stands out: 1 means no more than the image inside.

    Strips ``s0, s1, s2, s3`` of ``strip`` px run from the line at ``at`` (a column for ``axis="x"``,
    a row for ``"y"``) in direction ``inward`` (+1 or -1); each is reduced to its mean colour. The
    ratio is ``|s0 - s1|`` over the mean of ``|s1 - s2|`` and ``|s2 - s3|`` (mean absolute difference
    over RGB). A coloured frame along an edge (or a tile seam) is a step between the outermost
    strip and the next that the image's interior does not have.

    Args:
        image: ``(1, 3, H, W)``.
    """
    if axis not in ("x", "y") or inward not in (1, -1):
        raise ValueError(f"axis must be 'x' or 'y' and inward +1 or -1; got {axis!r}, {inward!r}")
    x = image[0].float() if axis == "x" else image[0].float().transpose(1, 2)  # lines are columns
    n = x.shape[-1]
    if not (0 <= at <= n and (at + 4 * strip <= n if inward == 1 else at - 4 * strip >= 0)):
        raise ValueError(f"four {strip} px strips from {at} (inward {inward}) do not fit in {n} px")
    means = []
    for k in range(4):
        a, b = (at + k * strip, at + (k + 1) * strip) if inward == 1 else (at - (k + 1) * strip, at - k * strip)
        means.append(x[..., a:b].mean(dim=(1, 2)))
    step = lambda i, j: float((means[i] - means[j]).abs().mean())  # noqa: E731
    return step(0, 1) / max(0.5 * (step(1, 2) + step(2, 3)), 1e-6)


def edge_bands(image: torch.Tensor, strip: int = 8) -> dict[str, float]:
    """:func:`band_ratio` along each border of ``image`` ``(1, 3, H, W)``, by :data:`SIDES`."""
    h, w = image.shape[-2:]
    return {"left": band_ratio(image, axis="x", at=0, inward=1, strip=strip),
            "top": band_ratio(image, axis="y", at=0, inward=1, strip=strip),
            "right": band_ratio(image, axis="x", at=w, inward=-1, strip=strip),
            "bottom": band_ratio(image, axis="y", at=h, inward=-1, strip=strip)}


def _lattice_peak(image: torch.Tensor, periods: tuple[int, ...]) -> float:
    """Spectral power at the lattice frequencies over the median power just around each."""
    power, bins = lattice_spectrum(image.double(), periods)
    power = power[0]
    h, w = power.shape
    ring = [(i, j) for i in range(-4, 5) for j in range(-4, 5) if max(abs(i), abs(j)) >= 2]
    peak = around = 0.0
    for a, b in bins:
        peak += float(power[a, b])
        around += float(torch.stack([power[(a + i) % h, (b + j) % w] for i, j in ring]).median())
    return peak / max(around, 1e-30)


def lattice_ratio(output: torch.Tensor, content: torch.Tensor, periods: tuple[int, ...] = (2, 4)) -> float:
    """How much more ``output`` peaks at a 2/4 px lattice than ``content`` does (1: as much; both ``(1, 3, H, W)``).

    A decoder that doubles its maps by repeating pixels and then convolves prints a grid of those
    periods (Odena et al. 2016); in the spectrum it is a sharp peak over the power around it. This
    *prominence* sees a faint grid that a painting's own fine texture would hide from
    :func:`lattice_energy`.
    """
    return _lattice_peak(output, periods) / max(_lattice_peak(content, periods), 1e-30)


def lattice_energy(output: torch.Tensor, content: torch.Tensor, periods: tuple[int, ...] = (2, 4)) -> float:
    """Luminance energy of ``output`` at periods of 2 and 4 px relative to ``content``'s (1: as much).

    The texture-polish issue's measure, as it words it (both ``(1, 3, H, W)``): the energy at the
    lattice frequencies, whatever else the spectrum holds there (see :func:`lattice_ratio`).
    """
    return float(lattice_power(output.double(), periods)[0]) / max(float(lattice_power(content.double(), periods)[0]), 1e-30)


@torch.no_grad()
def texture_scores(encoder: torch.nn.Module, content: torch.Tensor, output: torch.Tensor,
                   texture: torch.Tensor) -> dict[str, float]:
    """How well ``output`` keeps ``content`` and takes ``texture``, as the texture-stage issue measures it.

    Args:
        encoder: a VGG-19 :class:`adain.base.encoder.vgg.VGGEncoder` (float32).
        content, output: ``(1, 3, H, W)`` in [0, 1], the same size.
        texture: ``(1, 3, H', W')`` in [0, 1], at the size the styler used.

    Returns:
        ``style_loss``: sum over relu1_1..relu4_1 of the MSE of channel means plus that of channel
        stds, output against texture; ``content_loss``: ``|relu4_1(output) - relu4_1(content)|^2``
        relative to ``|relu4_1(content)|^2``; ``ssim`` (11 px Gaussian window, RGB mean) and
        ``psnr`` (dB) of the output to the content; ``band_<side>`` (:func:`edge_bands` of the
        output, by :data:`SIDES`), ``lattice`` (:func:`lattice_ratio`) and ``lattice_energy``
        (:func:`lattice_energy`): the texture-polish issue's artefacts, 1 meaning none (summarise them over pairs by the median).
    """
    fc = encoder(content, taps=("relu4_1",))["relu4_1"].float()
    fo = {k: v.float() for k, v in encoder(output, taps=STYLE_TAPS).items()}
    fs = {k: v.float() for k, v in encoder(texture, taps=STYLE_TAPS).items()}
    mse = float(torch.mean((output - content) ** 2))
    return {
        "style_loss": float(style_loss([fo[t] for t in STYLE_TAPS], [fs[t] for t in STYLE_TAPS])),
        "content_loss": float(((fo["relu4_1"] - fc) ** 2).sum() / (fc**2).sum().clamp_min(1e-12)),
        "ssim": float(kornia.metrics.ssim(output, content, window_size=11).mean()),
        "psnr": float(10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12)))),
        **{f"band_{side}": v for side, v in edge_bands(output).items()},
        "lattice": lattice_ratio(output.float(), content.float()),
        "lattice_energy": lattice_energy(output.float(), content.float()),
    }
