"""Estimating a warp field: how the content should move to take the geometry's shapes.

Owns the VGG features of a pair, the global alignment (similarity from matches or a scale search),
the field estimators (the correlation network, semantic matching), per-pair refinement on the
feature-matching objective, and :class:`~warpstyle.geometry.warper.Warper`, the one public route
that composes them. May import :mod:`warpstyle.fields` and :mod:`adain.base`; never the app,
training or evaluation rooms. Modules are imported directly (``warpstyle.geometry.warper``): this
``__init__`` stays empty so that importing a room loads no torch.
"""

__all__: list[str] = []
