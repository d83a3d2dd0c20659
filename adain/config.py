"""``StylerTrainConfig``: the settings of ``adain train-styler``."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .base.config import MAX_BATCH, MAX_WORKERS, SEED_MAX, Range, validate_config
from .base.errors import ConfigError

__all__ = ["StylerTrainConfig"]


@dataclasses.dataclass
class StylerTrainConfig:
    """Settings of ``adain train-styler``; defaults follow Huang & Belongie 2017 and the PyTorch port."""

    content_dir: str = ""
    style_dir: str = ""
    output_dir: str = "runs/styler"
    iterations: int = 160_000
    batch_size: int = 8
    lr: float = 1e-4
    lr_decay: float = 5e-5  # lr_i = lr / (1 + lr_decay * i)
    content_weight: float = 1.0
    style_weight: float = 10.0  # weight of the channel-averaged style loss (see adain.losses)
    # identity losses (SANet, Park & Lee 2019): decode(encode(x)) should give x back; 0 turns them off
    identity_pixel_weight: float = 0.0
    identity_feature_weight: float = 0.0
    # adain.losses.lattice_loss: the output's energy at a 2/4 px grid beyond the content's (issue 34); 0 turns it off
    lattice_weight: float = 0.0
    # skip inputs of the decoder (adain.decoder.SKIP_TAPS, comma-separated, e.g. "relu3_1"): new 1x1
    # convolutions from zero, the rest of the decoder from init_decoder; "" = the plain AdaIN decoder
    decoder_skips: str = ""
    skip_lr_scale: float = 1.0  # the skip and keep convolutions learn at lr * skip_lr_scale (they start from zero)
    # keep path of the decoder (some of its skips, comma-separated): 1x1 convolutions from zero for the
    # content's own features at alpha < 1 (adain.decoder.Decoder); "" = none (or init_decoder's). It
    # learns from the identity losses, so a decoder with keep taps needs one of their weights above 0
    decoder_keep: str = ""
    # train only the keep convolutions, on the identity losses (the rest frozen: alpha-1 decoding unchanged)
    train_keep_only: bool = False
    # the decoder's 2x upsampling (adain.decoder.UPSAMPLE_MODES): "" = init_decoder's (new decoders:
    # "nearest"); "bilinear" fine-tunes init_decoder's weights to interpolate (no lattice)
    decoder_upsample: str = ""
    # how the encoder pads the decoder's inputs (adain.base.encoder.vgg.PADDINGS): "" = init_decoder's
    # (new decoders: "zeros", the Oxford VGG's own); "replicate" removes the band zeros paint at the edges
    encoder_padding: str = ""
    load_size: int = 512  # shorter side before cropping
    crop_size: int = 256
    holdout: float = 0.0  # fraction of each folder kept out of training by a fixed hash split
    workers: int = 2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = True  # bf16 autocast (CUDA, and a CPU with native bf16; float32 elsewhere). Old name: amp
    channels_last: bool = True
    vgg: str = ""  # empty: the bundled Oxford VGG-19
    init_decoder: str = ""  # start from these decoder weights instead of random
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 1000
    keep_snapshots: bool = True  # also keep decoder_iterN.pt weights at each checkpoint
    time_limit_s: float = 0.0  # stop cleanly (with a checkpoint) after this many seconds; 0: no limit

    #: Allowed values, checked on construction (files, flags and the API alike); the CLI's option
    #: ranges are tested against this table. Every size and count has an upper bound (issue 33:
    #: ``workers = 100000`` started ~1,000 processes; ``load_size = 100000`` took 21.9 GB). 16 px is the smallest crop whose relu4_1 map (1/8 of it)
    #: the decoder's reflection padding accepts.
    RANGES: ClassVar[dict[str, Range]] = {
        "iterations": Range(1), "batch_size": Range(1, MAX_BATCH), "lr": Range(0, min_open=True), "lr_decay": Range(0),
        "content_weight": Range(0), "style_weight": Range(0), "identity_pixel_weight": Range(0),
        "identity_feature_weight": Range(0), "lattice_weight": Range(0), "skip_lr_scale": Range(0, min_open=True), "load_size": Range(8, 4096), "crop_size": Range(16, 4096),
        "holdout": Range(0, 0.9), "workers": Range(0, MAX_WORKERS), "seed": Range(0, SEED_MAX), "log_every": Range(1),
        "sample_every": Range(0), "checkpoint_every": Range(1), "time_limit_s": Range(0),
    }

    def __post_init__(self) -> None:
        validate_config(self)
        try:
            self.skip_taps()
            self.keep_taps()
        except ValueError as e:
            raise ConfigError(None, str(e)) from None
        from .base.encoder.vgg import PADDINGS
        from .decoder import UPSAMPLE_MODES

        for name, allowed in (("decoder_upsample", UPSAMPLE_MODES), ("encoder_padding", PADDINGS)):
            value = getattr(self, name)
            if value and value not in allowed:
                raise ConfigError(None, f"{name} must be one of {', '.join(allowed)} (or empty); got {value!r}")
        if self.train_keep_only and not (self.identity_pixel_weight > 0 or self.identity_feature_weight > 0):
            raise ConfigError(None, "train_keep_only trains the keep path on the identity losses: set "
                              "identity_pixel_weight or identity_feature_weight above 0")

    def skip_taps(self) -> tuple[str, ...]:
        """``decoder_skips`` as a tuple of taps (checked against :data:`adain.decoder.SKIP_TAPS`)."""
        from .decoder import _check_skips

        taps = [t.strip() for t in self.decoder_skips.split(",") if t.strip()]
        return _check_skips(taps, "decoder_skips")

    def keep_taps(self) -> tuple[str, ...]:
        """``decoder_keep`` as a tuple of taps (checked against :data:`adain.decoder.SKIP_TAPS`)."""
        from .decoder import _check_skips

        taps = [t.strip() for t in self.decoder_keep.split(",") if t.strip()]
        return _check_skips(taps, "decoder_keep")
