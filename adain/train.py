"""``train_styler``: the AdaIN decoder's data, losses and step; the loop is ``adain.base.training``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from .base.data import RandomCropFolder, infinite_loader
from .base.errors import ConfigError
from .base.training import (
    DistributedContext, StepOutput, TrainResult, run_training, to_float_batch,
)
from .base.runtime import bf16_autocast, training_bf16
from .base.encoder.vgg import VGGEncoder
from .base.storage.weights import save_weights
from .config import StylerTrainConfig
from .decoder import Decoder
from .functional import adaptive_instance_norm
from .losses import STYLE_TAPS, content_loss, identity_feature_loss, lattice_loss, style_loss

__all__ = ["train_styler", "styler_step_losses", "StylerTask", "CHECKPOINT_FORMAT"]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "adain.train"


def styler_step_losses(
    encoder: VGGEncoder, decoder: torch.nn.Module, content: torch.Tensor, style: torch.Tensor, *,
    identity: bool = False, keep_only: bool = False, lattice: bool = False,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One forward pass of the AdaIN objective, plus SANet's identity losses when ``identity``.

    Args:
        encoder: frozen VGG-19.
        decoder: the :class:`Decoder` being trained (possibly DDP-wrapped); a decoder with skips gets its skip taps AdaIN'd the
            same way as relu4_1 (as :class:`adain.styler.Styler` gives them).
        content, style: ``(B, 3, H, W)`` batches in [0, 1].
        identity: also decode the content's and the style's own features and compare the results
            with the inputs, in pixels (``identity_pixel``, MSE) and in VGG features at
            relu1_1..relu4_1 (``identity_feature``), as Park & Lee (CVPR 2019) do. A decoder with keep
            taps decodes them as at alpha 0: its keep path gets the same features at weight 1.
        keep_only: only the identity decodes need gradients (the keep path is what trains); the
            stylized batch is decoded without them.
        lattice: also :func:`adain.losses.lattice_loss` of the stylized batch against the content
            (``lattice``): the 2/4 px grid an upsampling decoder prints.

    Returns:
        ``({"content", "style"[, "identity_pixel", "identity_feature"][, "lattice"]}, stylized output (B, 3, H, W))``.
    """
    b = content.shape[0]
    bare = getattr(decoder, "module", decoder)  # through a DistributedDataParallel wrapper
    skips: tuple[str, ...] = bare.skips
    taps = ("relu4_1", *skips)
    pad = bare.encoder_padding  # the decoder's inputs encoded as at inference
    with torch.no_grad():
        fc = encoder(content, taps=STYLE_TAPS, padding=pad)
        fs = encoder(style, taps=STYLE_TAPS, padding=pad)
        target = {t: adaptive_instance_norm(fc[t], fs[t]).to(fc[t].dtype) for t in taps}
        own = {t: torch.cat([fc[t], fs[t]]) for t in taps}
    if keep_only:
        if not identity:
            raise ValueError("keep_only trains on the identity losses: pass identity=True")
        with torch.no_grad():
            out = decoder(target["relu4_1"], target)
            fo_out = encoder(out, taps=STYLE_TAPS, padding=pad)
        decoded = decoder(own["relu4_1"], own, content=own, keep=1.0)
        fo_own = encoder(decoded, taps=STYLE_TAPS, padding=pad)
        fo = {t: torch.cat([fo_out[t], fo_own[t]]) for t in STYLE_TAPS}
        decoded = torch.cat([out, decoded])
    else:
        # one decoder pass over stylized and identity codes; the identity ones at alpha 0 (keep 1)
        codes = {t: torch.cat([target[t], own[t]]) for t in taps} if identity else target
        kw = {}
        if identity and bare.keep:
            keep = torch.cat([torch.zeros(b), torch.ones(2 * b)]).view(-1, 1, 1, 1).to(content)
            kw = {"content": {t: torch.cat([fc[t], own[t]]) for t in bare.keep}, "keep": keep}
        decoded = decoder(codes["relu4_1"], codes, **kw)
        fo = encoder(decoded, taps=STYLE_TAPS, padding=pad)
    out = decoded[:b]
    losses = {
        "content": content_loss(fo["relu4_1"][:b], target["relu4_1"]),
        "style": style_loss([fo[t][:b] for t in STYLE_TAPS], [fs[t] for t in STYLE_TAPS]),
    }
    if lattice:
        losses["lattice"] = lattice_loss(out, content)
    if identity:
        inputs = torch.cat([content, style])
        losses["identity_pixel"] = F.mse_loss(decoded[b:].float(), inputs.float())
        losses["identity_feature"] = identity_feature_loss(
            [fo[t][b:] for t in STYLE_TAPS], [torch.cat([fc[t], fs[t]]) for t in STYLE_TAPS])
    return losses, out


def _uses_identity(cfg: StylerTrainConfig) -> bool:
    """Whether the run uses SANet's identity losses."""
    return cfg.identity_pixel_weight > 0 or cfg.identity_feature_weight > 0


class StylerTask:
    """The decoder's training task for :func:`adain.base.training.run_training`."""

    name = CHECKPOINT_FORMAT
    weights_name = "decoder.safetensors"
    resume_hint = ""

    def __init__(self, cfg: StylerTrainConfig, device: torch.device, generator: torch.Generator) -> None:
        self.cfg, self.device = cfg, device
        self.bf16 = training_bf16(device, cfg.bf16)
        self.encoder = VGGEncoder.from_pretrained(cfg.vgg or None, device=device)
        model = Decoder.from_pretrained(cfg.init_decoder) if cfg.init_decoder else Decoder()
        model = model.reconfigured(upsample=cfg.decoder_upsample or None, encoder_padding=cfg.encoder_padding or None)
        skips = cfg.skip_taps()
        if skips != model.skips:
            if set(model.skips) - set(skips):
                raise ConfigError(None, f"init_decoder has skips {list(model.skips)}; decoder_skips must keep them "
                                  f"(got {list(skips)})")
            model = model.with_skips(skips)
        keep = cfg.keep_taps() or model.keep
        if keep != model.keep:
            if set(model.keep) - set(keep) or set(keep) - set(model.skips):
                raise ConfigError(None, f"decoder_keep must be some of the decoder's skips {list(model.skips)} and "
                                  f"keep init_decoder's keep taps {list(model.keep)}; got {list(keep)}")
            model = model.with_keep(keep)
        if model.keep and not _uses_identity(cfg):
            # The keep path learns only from the identity losses: without them its convolutions would get no
            # gradient (DistributedDataParallel refuses that) while the weights it was trained with change.
            raise ConfigError(None, f"the decoder has keep taps {list(model.keep)}, which learn from the identity "
                              "losses: set identity_pixel_weight or identity_feature_weight above 0, or start from a "
                              "decoder without keep taps")
        if cfg.train_keep_only:
            if cfg.lattice_weight > 0:
                raise ConfigError(None, "lattice_weight acts on the stylized output, which train_keep_only does not "
                                  "train: set lattice_weight = 0 or train_keep_only = false")
            if not model.keep:
                raise ConfigError(None, "train_keep_only needs keep taps: set decoder_keep (e.g. \"relu1_1\")")
            for name, p in model.named_parameters():
                p.requires_grad_(name.startswith("keep_"))
        self.model = model.train().to(device)
        if cfg.channels_last:
            self.encoder.to(memory_format=torch.channels_last)
            self.model.to(memory_format=torch.channels_last)
        self.identity = _uses_identity(cfg)
        self.columns = ("content_loss", "style_loss") + (
            ("identity_pixel", "identity_feature") if self.identity else ()) + (
            ("lattice",) if cfg.lattice_weight > 0 else ())

    def param_groups(self) -> list[dict]:
        """The skip and keep convolutions learn at ``lr * skip_lr_scale``, the rest at ``lr``; with
        ``train_keep_only``, only the keep convolutions learn."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        new = lambda n: n.startswith(("skip_", "keep_"))  # noqa: E731
        skip = [p for n, p in named if new(n)]
        rest = [p for n, p in named if not new(n)]
        return ([{"params": rest}] if rest else []) + ([{"params": skip, "lr_scale": self.cfg.skip_lr_scale}] if skip else [])

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
        with bf16_autocast(self.device, self.bf16):
            parts, output = styler_step_losses(self.encoder, model, content, style, identity=self.identity,
                                               keep_only=cfg.train_keep_only, lattice=cfg.lattice_weight > 0)
        loss = cfg.content_weight * parts["content"] + cfg.style_weight * parts["style"]
        if self.identity:
            loss = loss + cfg.identity_pixel_weight * parts["identity_pixel"] \
                + cfg.identity_feature_weight * parts["identity_feature"]
        if "lattice" in parts:
            loss = loss + cfg.lattice_weight * parts["lattice"]
        sample = None
        if want_sample:
            k = min(4, content.shape[0])
            sample = torch.cat([torch.cat([content[i], style[i], output[i].detach().float().clamp(0, 1)], 2)
                                for i in range(k)], 1)
        logged = {"content_loss": parts["content"], "style_loss": parts["style"]}
        logged |= {k: parts[k] for k in ("identity_pixel", "identity_feature", "lattice") if k in parts}
        return StepOutput(loss=loss, parts=logged, sample=sample, skipped=sk1 + sk2)

    def save_weights(self, path: Path) -> None:
        cfg = self.cfg
        provenance = (f"adain train-styler: content {cfg.content_dir}, styles {cfg.style_dir}, "
                      f"{cfg.iterations} iterations planned; the run's config.json and losses.csv say more")
        save_weights(path, "Decoder", {k: v.detach().cpu().half() for k, v in self.model.state_dict().items()},
                     self.model.config(), self.model.input_spec(), provenance)


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
