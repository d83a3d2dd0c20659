"""The base layer both stages stand on: errors, files, image I/O, checks, checkpoints, configs, data,
the VGG-19 encoder, the weights format and its one loader, runtime and memory policy, CLI plumbing and the
one training loop.

Nothing here knows about AdaIN or warping; ``adain`` (the texture stage) and ``warpstyle`` (the
geometric stage and pipeline) import from here, never the reverse.
"""
