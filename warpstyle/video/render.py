"""A clip file in, a stylized clip file out: :func:`stylize_video`, what ``warpstyle video`` calls.

The output is written to a temp file beside it and renamed onto it at the end
(:func:`adain.base.storage.files.atomic_path`): an error or Ctrl-C part-way leaves no partial file under the
output's name, and an existing output is kept until the new one is complete.

There is no resume: an H.264 stream cannot be reopened and appended to in place, and the temporal
averages of each frame depend on every frame of its shot before it, so a resumed run would have to
decode and re-estimate the shot from its start anyway. Long clips are best cut into shots first.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from adain.base.storage.files import atomic_path
from adain.base.image import ImageLike

from warpstyle.pipeline import Pipeline, PipelineOptions
from warpstyle.video.frames import VideoReader, VideoWriter, output_codec, probe_video
from warpstyle.video.temporal import TemporalOptions, TemporalStylizer

__all__ = ["VideoResult", "stylize_video"]


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What :func:`stylize_video` wrote."""

    output: Path
    frames: int
    size: tuple[int, int]  # (H, W) of the upright output frames
    seconds: float
    cuts: int  # scene cuts found (the first frame not counted)
    audio: bool

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def stylize_video(
    clip: str | Path,
    output: str | Path,
    pipeline: Pipeline,
    geometry: ImageLike | None = None,
    texture: ImageLike | Sequence[ImageLike] | None = None,
    options: PipelineOptions | None = None,
    temporal: TemporalOptions | None = None,
    *,
    audio: bool = True,
    crf: int = 18,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VideoResult:
    """Stylize every frame of ``clip`` (:class:`~warpstyle.video.temporal.TemporalStylizer`) into ``output``.

    Frames stream through one at a time. The output keeps the clip's time stamps, frame rate and
    rotation tag, and its first audio stream (copied unchanged where the output container takes its
    codec, else re-encoded). The codec follows the output's extension
    (:data:`~warpstyle.video.frames.OUTPUT_CODECS`: H.264 for .mp4/.mov/.mkv, VP9 for .webm).

    Args:
        clip: the input video.
        output: the output video; replaced only when the new one is complete. The caller checks it
            is not an input (:func:`adain.base.storage.outputs.check_not_inputs`).
        pipeline, geometry, texture, options, temporal: as :func:`~warpstyle.video.temporal.stylize_frames`.
        audio: carry the audio track across.
        crf: the encoder's constant rate factor (0-51; lower: better and larger).
        max_frames: stop after this many frames (a preview); None: all.
        progress: called as ``progress(done, total)`` after each frame (total 0 when the container
            does not say how many frames it holds).

    Raises:
        VideoError: the clip cannot be read or the output cannot be encoded.
    """
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in [0, 51]; got {crf}")
    fmt, codec, pix = output_codec(output)  # before any work: an unsupported extension costs nothing
    probe_video(clip)
    state = TemporalStylizer(pipeline, geometry, texture, options, temporal)
    start = time.perf_counter()
    done = cuts = 0
    with VideoReader(clip, audio=audio) as reader, atomic_path(output) as tmp:
        total = reader.info.frames if max_frames is None else min(reader.info.frames or max_frames, max_frames)
        writer: VideoWriter | None = None
        try:
            for image, pts in reader:
                if max_frames is not None and done >= max_frames:
                    break
                out = state.step(image)
                if writer is None:
                    writer = VideoWriter(tmp, tuple(out.shape[-2:]), reader.info, fmt=fmt, codec=codec, pix_fmt=pix,
                                         audio=reader.audio_stream if audio else None, crf=crf)
                writer.write(out, pts)
                writer.write_audio(reader.audio_packets)
                done += 1
                cuts += int(state.cut and done > 1)
                if progress is not None:
                    progress(done, total)
            if writer is None:
                from warpstyle.video.frames import VideoError

                raise VideoError(clip, "no decodable video frame")
            writer.write_audio(reader.audio_packets)  # what follows the last frame (a preview: what was read)
            writer.finish()
            writer = None
        finally:
            if writer is not None:
                writer.abort()  # an error or Ctrl-C: close; atomic_path removes the temp file
    assert state.out_hw is not None
    return VideoResult(Path(output), done, state.out_hw, time.perf_counter() - start, cuts,
                       audio and reader.audio_stream is not None)

