"""Video: clips through the pipeline, stable in time (the ``video`` extra: PyAV).

* :mod:`~warpstyle.video.frames`: clip I/O with PyAV (frames as tensors, time stamps, rotation, audio remux);
* :mod:`~warpstyle.video.temporal`: the temporal logic (fields and statistics smoothed over time, cuts);
* :mod:`~warpstyle.video.render`: a clip file in, a clip file out (``warpstyle video``).

Importing this room needs torch but not PyAV; PyAV loads when a clip is opened.
"""

from warpstyle.video.frames import VideoError, VideoInfo, VideoReader, VideoWriter, probe_video
from warpstyle.video.render import VideoResult, stylize_video
from warpstyle.video.temporal import NAIVE, CutDetector, TemporalOptions, TemporalStylizer, field_change_px, stylize_frames

__all__ = ["VideoError", "VideoInfo", "VideoReader", "VideoWriter", "probe_video", "VideoResult", "stylize_video",
           "NAIVE", "CutDetector", "TemporalOptions", "TemporalStylizer", "field_change_px", "stylize_frames"]
