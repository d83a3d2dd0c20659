"""Clip I/O with PyAV: frames in as ``(1, 3, H, W)`` tensors, frames out, audio carried across.

PyAV ships its own FFmpeg, so nothing is downloaded at run time. It is the ``video`` extra
(``pip install 'warpstyle[video]'``); without it every entry point here raises one
:class:`~adain.base.errors.StyleTransferError` that says how to install it.

Convention:
    Frames are read *upright*: a clip's display rotation (phones store portrait video as landscape
    pixels plus a rotation tag) is applied on reading, so the geometry and texture stages see what
    a player shows. :class:`VideoWriter` turns each frame back to the stored orientation and writes
    the same rotation tag, so the output is stored and displayed as the input was. Time stamps are
    the input's (``pts`` in the input stream's ``time_base``), so variable frame rates survive.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from adain.base.errors import StyleTransferError

__all__ = ["VideoError", "VideoInfo", "VideoReader", "VideoWriter", "OUTPUT_CODECS", "probe_video", "require_av",
           "output_codec"]

log = logging.getLogger(__name__)

#: Output extension -> (container format, video encoder, pixel format). H.264 in MP4 by default.
OUTPUT_CODECS: dict[str, tuple[str, str, str]] = {
    ".mp4": ("mp4", "libx264", "yuv420p"),
    ".m4v": ("mp4", "libx264", "yuv420p"),
    ".mov": ("mov", "libx264", "yuv420p"),
    ".mkv": ("matroska", "libx264", "yuv420p"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p"),
}
#: Audio encoders used when the input's audio codec cannot go into the output container unchanged.
_AUDIO_FALLBACK = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus"}


class VideoError(StyleTransferError):
    """A clip could not be read or written (not a video, an unsupported codec, a broken stream).

    Args:
        path: the clip.
        reason: a short, lower-case explanation.
        action: ``"read"`` (default) or ``"write"``.
    """

    def __init__(self, path: str | Path, reason: str, *, action: str = "read") -> None:
        self.path = str(path)
        self.reason = reason
        self.action = action
        super().__init__(f"cannot {action} video '{self.path}': {reason}")

    def __reduce__(self) -> tuple:
        return (_rebuild, (self.path, self.reason, self.action))


def _rebuild(path: str, reason: str, action: str) -> VideoError:
    return VideoError(path, reason, action=action)


def require_av() -> ModuleType:
    """The ``av`` module, or a one-line :class:`StyleTransferError` naming the extra to install."""
    try:
        import av
    except ImportError:
        raise StyleTransferError("video needs PyAV, the 'video' extra: pip install 'warpstyle[video]' "
                                 "(or pip install av)") from None
    return av


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return " ".join(str(text).split()).lower() or type(e).__name__


def output_codec(path: str | Path) -> tuple[str, str, str]:
    """``(format, video encoder, pixel format)`` for an output path by its extension.

    Raises:
        VideoError: an extension with no encoder here, or an encoder this PyAV build lacks.
    """
    ext = Path(path).suffix.lower()
    if ext not in OUTPUT_CODECS:
        raise VideoError(path, f"unsupported output extension '{ext or '(none)'}'; use one of "
                               f"{', '.join(OUTPUT_CODECS)}", action="write")
    fmt, codec, pix = OUTPUT_CODECS[ext]
    av = require_av()
    if codec not in av.codecs_available:
        raise VideoError(path, f"this PyAV build has no '{codec}' encoder; use .mp4", action="write")
    return fmt, codec, pix


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found: the first video stream and whether there is audio.

    Attributes:
        width, height: the upright frame size in px (the rotation applied).
        rotation: the display rotation in degrees counter-clockwise (0, 90, 180 or 270).
        rate: the average frame rate (None when the container does not say).
        time_base: the video stream's time base.
        frames: frame count from the container header (0 when unknown).
        codec: the video codec's name.
        audio_codec: the first audio stream's codec, or None.
    """

    path: str
    width: int
    height: int
    rotation: int
    rate: Fraction | None
    time_base: Fraction
    frames: int
    codec: str
    audio_codec: str | None


def _rotation(value: object) -> int:
    """A display rotation in degrees, snapped to a multiple of 90 in [0, 360)."""
    try:
        deg = float(value or 0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return int(round(deg / 90.0)) % 4 * 90


def _open_input(path: str | Path) -> Any:
    av = require_av()
    from adain.base.storage.files import input_file_problem

    problem = input_file_problem(path)
    if problem is not None:
        raise VideoError(path, problem)
    try:
        container = av.open(str(path), "r")
    except av.FFmpegError as e:
        raise VideoError(path, f"not a readable video ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(path, "no video stream (an audio file or an image?)")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise VideoError(path, "unsupported video codec")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """Read the header and the first frame of a clip (cheap; the CLI calls it before loading models).

    Raises:
        VideoError: not a file, not a video, an unsupported codec, or no decodable frame.
    """
    with VideoReader(path) as reader:
        first = next(iter(reader), None)
        if first is None:
            raise VideoError(path, "no decodable video frame")
        return reader.info


class VideoReader:
    """Decode a clip's frames one at a time (memory does not grow with its length).

    Iterating yields ``(image, pts)``: an upright ``(1, 3, H, W)`` float32 tensor in [0, 1] and the
    frame's time stamp in :attr:`VideoInfo.time_base` units (None if the clip has none). With
    ``audio=True`` the first audio stream's packets are collected in :attr:`audio_packets` as they
    are read (a caller drains them as it writes; :class:`VideoWriter` remuxes them).

    Example:
        >>> with VideoReader("clip.mp4") as clip:  # doctest: +SKIP
        ...     for image, pts in clip:
        ...         print(image.shape, pts)
    """

    def __init__(self, path: str | Path, *, audio: bool = True) -> None:
        self.path = str(path)
        self._container = _open_input(path)
        self._video = self._container.streams.video[0]
        self._video.thread_type = "AUTO"
        self.audio_stream = self._container.streams.audio[0] if (audio and self._container.streams.audio) else None
        self.audio_packets: deque[Any] = deque()
        self._info: VideoInfo | None = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    @property
    def info(self) -> VideoInfo:
        """The clip's :class:`VideoInfo` (its rotation is known once the first frame is decoded)."""
        return self._info if self._info is not None else self._make_info(0)  # cached once a frame is read

    def _make_info(self, rotation: int) -> VideoInfo:
        s, cc = self._video, self._video.codec_context
        w, h = int(cc.width), int(cc.height)
        if rotation in (90, 270):
            w, h = h, w
        rate = s.average_rate or s.guessed_rate
        return VideoInfo(self.path, w, h, rotation, Fraction(rate) if rate else None, Fraction(s.time_base),
                         int(s.frames or 0), str(cc.name),
                         None if self.audio_stream is None else str(self.audio_stream.codec_context.name))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int | None]]:
        av = require_av()
        streams = [self._video] + ([self.audio_stream] if self.audio_stream is not None else [])
        try:
            for packet in self._container.demux(*streams):
                if packet.stream is self.audio_stream:
                    if packet.dts is not None:  # the demuxer's last, empty packet carries nothing
                        self.audio_packets.append(packet)
                    continue
                for frame in packet.decode():
                    yield self._tensor(frame), frame.pts
        except av.FFmpegError as e:
            raise VideoError(self.path, f"broken video stream ({_reason(e)})") from None

    def _tensor(self, frame: Any) -> torch.Tensor:
        rot = _rotation(getattr(frame, "rotation", 0))
        if self._info is None:
            self._info = self._make_info(rot)
        rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8, colour space from the stream
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float().div_(255)
        if rot:
            # The display matrix rotates counter-clockwise by ``rot``: torch.rot90 turns the same way.
            x = torch.rot90(x, rot // 90, dims=(-2, -1)).contiguous()
        return x  # (1, 3, H, W)


class VideoWriter:
    """Encode frames to a clip, with the input's time stamps, rate and rotation, and remux its audio.

    Args:
        path: the file to write (a temp file, usually: see :func:`warpstyle.video.render.stylize_video`).
        size: ``(H, W)`` of the upright frames it will be given; even sides for yuv420p.
        info: the input's :class:`VideoInfo` (rate, time base, rotation).
        fmt, codec, pix_fmt: from :func:`output_codec`.
        audio: the input's audio stream to carry across (None: no audio).
        crf: constant rate factor of x264/VP9 (lower is better and larger).
    """

    def __init__(self, path: str | Path, size: tuple[int, int], info: VideoInfo, *, fmt: str, codec: str,
                 pix_fmt: str, audio: Any = None, crf: int = 18) -> None:
        av = require_av()
        self.path = str(path)
        self.size = size
        self.rotation = info.rotation
        self._next_pts = 0
        try:
            self._container = av.open(self.path, "w", format=fmt)
        except av.FFmpegError as e:
            raise VideoError(path, _reason(e), action="write") from None
        try:
            self._container.metadata["comment"] = "written by warpstyle"
            rate = info.rate or Fraction(25)
            v = self._container.add_stream(codec, rate=rate, options={"crf": str(crf)})
            h, w = size
            if self.rotation in (90, 270):
                h, w = w, h
            v.width, v.height, v.pix_fmt = w, h, pix_fmt
            v.time_base = info.time_base
            v.codec_context.time_base = info.time_base
            if self.rotation:
                v.set_display_rotation(self.rotation)
            self._video = v
            self._audio, self._audio_encode = self._add_audio(audio, fmt)
        except BaseException:
            self._container.close()
            raise

    def _add_audio(self, audio: Any, fmt: str) -> tuple[Any, bool]:
        """The output audio stream: a copy of the input's packets where the container takes its codec,
        else re-encoded (said in the log); ``(stream, re-encoding)``."""
        if audio is None:
            return None, False
        name = audio.codec_context.name
        if name in self._container.supported_codecs:
            return self._container.add_stream_from_template(audio), False
        target = _AUDIO_FALLBACK.get(fmt, "aac")
        log.warning("audio codec '%s' cannot go into %s unchanged: re-encoding it as %s", name, fmt, target)
        rate = audio.codec_context.sample_rate or 48000
        if target == "libopus":
            rate = 48000
        out = self._container.add_stream(target, rate=rate)
        out.layout = audio.codec_context.layout.name if audio.codec_context.layout else "stereo"
        return out, True

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def abort(self) -> None:
        """Close without flushing (after an error; the caller discards the file)."""
        self._container.close()

    def write(self, image: torch.Tensor, pts: int | None = None) -> None:
        """Encode one upright ``(1, 3, H, W)`` frame in [0, 1] at ``pts`` (default: the next frame's)."""
        av = require_av()
        x = image[0] if image.dim() == 4 else image
        if self.rotation:
            x = torch.rot90(x, -(self.rotation // 90), dims=(-2, -1))  # back to the stored orientation
        rgb = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self._next_pts if pts is None else int(pts)
        frame.time_base = self._video.time_base
        self._next_pts = frame.pts + 1
        try:
            for packet in self._video.encode(frame):
                self._container.mux(packet)
        except av.FFmpegError as e:
            raise VideoError(self.path, _reason(e), action="write") from None

    def write_audio(self, packets: deque[Any]) -> None:
        """Mux (or re-encode) the audio packets collected so far, emptying ``packets``."""
        while packets:
            packet = packets.popleft()
            if self._audio is None:
                continue
            if self._audio_encode:
                for frame in packet.decode():
                    frame.pts = None
                    for p in self._audio.encode(frame):
                        self._container.mux(p)
            else:
                packet.stream = self._audio
                self._container.mux(packet)

    def finish(self) -> None:
        """Flush the encoders and write the trailer."""
        av = require_av()
        try:
            for packet in self._video.encode(None):
                self._container.mux(packet)
            if self._audio is not None and self._audio_encode:
                for packet in self._audio.encode(None):
                    self._container.mux(packet)
        except av.FFmpegError as e:
            raise VideoError(self.path, _reason(e), action="write") from None
        finally:
            self._container.close()
