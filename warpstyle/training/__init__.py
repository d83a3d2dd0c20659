"""Training the warper: its config, losses, art augmentation, pair datasets (``data/``) and the
task run by the shared loop (:mod:`adain.base.training`). May import geometry and fields.
"""

__all__: list[str] = []
