"""``train_styler``: the AdaIN decoder's data, losses and step; the loop is ``adain.base.training``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from .base.data import RandomCropFolder, infinite_loader
from .base.errors import ConfigError
from .base.training import (
    DistributedContext, StepOutput, TrainResult, autocast_for, run_training, to_float_batch,
)
from .base.vgg import VGGEncoder
from .base.weights import save_weights
from .config import StylerTrainConfig
from .decoder import DECODER_INPUT, Decoder
from .functional import adaptive_instance_norm
from .losses import STYLE_TAPS, content_loss, identity_feature_loss, style_loss

__all__ = ["train_styler", "styler_step_losses", "StylerTask", "CHECKPOINT_FORMAT"]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "adain.train"


def styler_step_losses(
    encoder: VGGEncoder, decoder: torch.nn.Module, content: torch.Tensor, style: torch.Tensor, *,
    identity: bool = False,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One forward pass of the AdaIN objective, plus SANet's identity losses when ``identity``.

    Args:
        encoder: frozen VGG-19.
        decoder: the :class:`Decoder` being trained (possibly DDP-wrapped); a decoder with skips gets its skip taps AdaIN'd the
            same way as relu4_1 (as :class:`adain.styler.Styler` gives them).
        content, style: ``(B, 3, H, W)`` batches in [0, 1].
        identity: also decode the content's and the style's own features and compare the results
            with the inputs, in pixels (``identity_pixel``, MSE) and in VGG features at
            relu1_1..relu4_1 (``identity_feature``), as Park & Lee (CVPR 2019) do.

    Returns:
        ``({"content", "style"[, "identity_pixel", "identity_feature"]}, stylized output (B, 3, H, W))``.
    """
    b = content.shape[0]
    skips: tuple[str, ...] = getattr(decoder, "module", decoder).skips  # through a DistributedDataParallel wrapper
    taps = ("relu4_1", *skips)
    with torch.no_grad():
        fc = encoder(content, taps=STYLE_TAPS)
        fs = encoder(style, taps=STYLE_TAPS)
        target = {t: adaptive_instance_norm(fc[t], fs[t]).to(fc[t].dtype) for t in taps}
        codes = {t: torch.cat([target[t], fc[t], fs[t]]) for t in taps} if identity else target
    # one decoder pass over stylized and identity codes
    decoded = decoder(codes["relu4_1"], codes)
    fo = encoder(decoded, taps=STYLE_TAPS)
    out = decoded[:b]
    losses = {
        "content": content_loss(fo["relu4_1"][:b], target["relu4_1"]),
        "style": style_loss([fo[t][:b] for t in STYLE_TAPS], [fs[t] for t in STYLE_TAPS]),
    }
    if identity:
        inputs = torch.cat([content, style])
        losses["identity_pixel"] = F.mse_loss(decoded[b:].float(), inputs.float())
        losses["identity_feature"] = identity_feature_loss(
            [fo[t][b:] for t in STYLE_TAPS], [torch.cat([fc[t], fs[t]]) for t in STYLE_TAPS])
    return losses, out


class StylerTask:
    """The decoder's training task for :func:`adain.base.training.run_training`."""

    name = CHECKPOINT_FORMAT
    weights_name = "decoder.safetensors"
    resume_hint = ""

    def __init__(self, cfg: StylerTrainConfig, device: torch.device, generator: torch.Generator) -> None:
        self.cfg, self.device = cfg, device
        self.encoder = VGGEncoder.from_pretrained(cfg.vgg or None, device=device)
        model = Decoder.from_pretrained(cfg.init_decoder) if cfg.init_decoder else Decoder()
        skips = cfg.skip_taps()
        if skips != model.skips:
            if set(model.skips) - set(skips):
                raise ConfigError(None, f"init_decoder has skips {list(model.skips)}; decoder_skips must keep them "
                                  f"(got {list(skips)})")
            model = model.with_skips(skips)
        self.model = model.train().to(device)
        if cfg.channels_last:
            self.encoder.to(memory_format=torch.channels_last)
            self.model.to(memory_format=torch.channels_last)
        self.identity = cfg.identity_pixel_weight > 0 or cfg.identity_feature_weight > 0
        self.columns = ("content_loss", "style_loss") + (
            ("identity_pixel", "identity_feature") if self.identity else ())

    def param_groups(self) -> list[dict]:
        """The skip convolutions learn at ``lr * skip_lr_scale``, the rest at ``lr``."""
        named = list(self.model.named_parameters())
        skip = [p for n, p in named if n.startswith("skip_")]
        groups = [{"params": [p for n, p in named if not n.startswith("skip_")]}]
        return groups + ([{"params": skip, "lr_scale": self.cfg.skip_lr_scale}] if skip else [])

    def start(self, iteration: int, ctx: DistributedContext) -> None:
        cfg = self.cfg
        common = dict(load_size=cfg.load_size, crop_size=cfg.crop_size, split="train", holdout=cfg.holdout)
        args = dict(batch_size=cfg.batch_size, workers=cfg.workers, start=iteration * cfg.batch_size * ctx.world,
                    rank=ctx.rank, world=ctx.world)
        self.content = infinite_loader(RandomCropFolder(cfg.content_dir, seed=cfg.seed, **common), seed=cfg.seed, **args)
        self.style = infinite_loader(RandomCropFolder(cfg.style_dir, seed=cfg.seed + 1, **common),
                                     seed=cfg.seed + 1, **args)

    def step(self, model: torch.nn.Module, want_sample: bool) -> StepOutput:
        cfg = self.cfg
        (content, sk1), (style, sk2) = next(self.content), next(self.style)
        content = to_float_batch(content, self.device, cfg.channels_last)
        style = to_float_batch(style, self.device, cfg.channels_last)
        with autocast_for(self.device, cfg.bf16):
            parts, output = styler_step_losses(self.encoder, model, content, style, identity=self.identity)
        loss = cfg.content_weight * parts["content"] + cfg.style_weight * parts["style"]
        if self.identity:
            loss = loss + cfg.identity_pixel_weight * parts["identity_pixel"] \
                + cfg.identity_feature_weight * parts["identity_feature"]
        sample = None
        if want_sample:
            k = min(4, content.shape[0])
            sample = torch.cat([torch.cat([content[i], style[i], output[i].detach().float().clamp(0, 1)], 2)
                                for i in range(k)], 1)
        logged = {"content_loss": parts["content"], "style_loss": parts["style"]}
        logged |= {k: parts[k] for k in ("identity_pixel", "identity_feature") if k in parts}
        return StepOutput(loss=loss, parts=logged, sample=sample, skipped=sk1 + sk2)

    def save_weights(self, path: Path) -> None:
        cfg = self.cfg
        provenance = (f"adain train-styler: content {cfg.content_dir}, styles {cfg.style_dir}, "
                      f"{cfg.iterations} iterations planned; the run's config.json and losses.csv say more")
        save_weights(path, "Decoder", {k: v.detach().cpu().half() for k, v in self.model.state_dict().items()},
                     self.model.config(), DECODER_INPUT, provenance)


def train_styler(cfg: StylerTrainConfig, *, resume: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train an AdaIN decoder as configured; resumable and torchrun-ready (rank 0 writes).

    Args:
        cfg: the run's settings.
        resume: a training checkpoint, ``"auto"`` (``output_dir/checkpoint.pt`` if present) or None.
        progress: show a tqdm bar with running losses (rank 0 only).

    Returns:
        TrainResult with the final iteration, the checkpoint and decoder weight paths and last losses.
    """
    return run_training(lambda device, gen: StylerTask(cfg, device, gen), cfg, resume=resume, progress=progress,
                        desc="train-styler")
