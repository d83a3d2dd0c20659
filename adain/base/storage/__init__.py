"""What the stages read from and write to disk, safely.

``files`` owns atomic writes and the checks every output passes (never onto an input or a
non-regular file, modes kept); ``outputs`` places a run's outputs; ``checkpoint`` loads
(``weights_only=True``) and saves training checkpoints; ``weights`` is the one self-describing
format of shipped weights and its loader. Imports only ``adain.base`` modules below it.
"""
