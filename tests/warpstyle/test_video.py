"""warpstyle.video and ``warpstyle video``: tiny clips made in code (8 frames, 64-96 px)."""

from __future__ import annotations

import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from warpstyle.app.cli import main
from warpstyle.fields.field import WarpField
from warpstyle.video.temporal import NAIVE, CutDetector, TemporalOptions, TemporalStylizer, field_change_px, stylize_frames

TEXTURE = "texture/vangogh_the-starry-night.jpg"
GEOMETRY = "geometry/munch_the-scream.jpg"


def _frames(n: int = 8, h: int = 48, w: int = 64, *, still: bool = False, seed: int = 0) -> list[np.ndarray]:
    """Smooth coloured frames (uint8 ``(H, W, 3)``) that pan by 2 px a frame (or hold still)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w + 4 * n].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(xx / 9), 128 + 100 * np.cos(yy / 7), 128 + 80 * np.sin((xx + yy) / 13)], -1)
    out = []
    for i in range(n):
        x0 = 0 if still else 2 * i
        f = base[:, x0:x0 + w] + (rng.normal(0, 2, (h, w, 3)) if still else 0)
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return out


def _write(path, frames, fps: int = 10, *, audio: bool = False, rotation: int = 0) -> None:
    av = pytest.importorskip("av")
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        if rotation:
            v.set_display_rotation(rotation)
        a = out.add_stream("aac", rate=16000) if audio else None  # every stream before the first packet
        if a is not None:
            a.layout = "mono"
        for f in frames:
            for p in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if a is not None:
            total = 16000 * len(frames) // fps
            pcm = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / 16000)).astype(np.float32)
            for k in range(0, total, 1024):
                fr = av.AudioFrame.from_ndarray(pcm[None, k:k + 1024].copy(), format="fltp", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = 16000, k, Fraction(1, 16000)
                for p in a.encode(fr):
                    out.mux(p)
            for p in a.encode(None):
                out.mux(p)


def _streams(path):
    av = pytest.importorskip("av")
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        audio = [(s.codec_context.name, s.codec_context.sample_rate) for s in c.streams.audio]
        packets = sum(1 for p in c.demux(*c.streams.audio) if p.size) if c.streams.audio else 0
        return n, Fraction(c.streams.video[0].average_rate), audio, packets


def _run(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


def _times(path):
    av = pytest.importorskip("av")
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(c.streams.video[0])]


def test_frame_count_rate_and_time_stamps_kept(tmp_path, samples, pipeline):
    from warpstyle.video import stylize_video

    clip, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _write(clip, _frames(8), fps=10)
    r = stylize_video(clip, out, pipeline, None, samples / TEXTURE, _options(size=64))
    n, rate, _, _ = _streams(out)
    assert (r.frames, n, rate) == (8, 8, Fraction(10))
    assert _times(out) == pytest.approx(_times(clip), abs=1e-3)
    assert r.size == (48, 64)
    assert [p.name for p in tmp_path.iterdir()] and not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def _options(**kw):
    from warpstyle.pipeline import PipelineOptions

    return PipelineOptions(**kw)


def test_audio_track_and_rotation_kept(tmp_path, pipeline):
    from warpstyle.video import probe_video, stylize_video

    clip, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _write(clip, _frames(8), fps=10, audio=True, rotation=90)
    stylize_video(clip, out, pipeline, options=_options(size=64))  # no stage: the resized clip
    _, _, audio_in, packets_in = _streams(clip)
    n, _, audio_out, packets_out = _streams(out)
    assert n == 8 and audio_out == audio_in == [("aac", 16000)]
    assert packets_out == packets_in  # remuxed, not re-encoded
    info = probe_video(out)
    assert info.rotation == 90 and (info.height, info.width) == (64, 48)  # upright as the input: 48x64 stored turned


def test_static_clip_gives_static_warp(samples, pipeline):
    frames = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in _frames(6, 64, 64, still=True)]
    changes = {}
    for name, temporal in (("naive", NAIVE), ("smoothed", TemporalOptions())):
        state = TemporalStylizer(pipeline, samples / GEOMETRY, None, _options(size=64, method="network"), temporal)
        fields: list[WarpField] = []
        for f in frames:
            state.step(f)
            assert state.field is not None
            fields.append(state.field)
        changes[name] = max(field_change_px(a, b) for a, b in zip(fields, fields[1:]))
    assert changes["smoothed"] < 0.5, changes
    assert changes["smoothed"] <= changes["naive"] + 1e-6, changes


def test_stylize_frames_is_a_lazy_generator(samples, pipeline):
    pulled = []

    def source():
        for i, f in enumerate(_frames(3)):
            pulled.append(i)
            yield torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255

    it = stylize_frames(source(), pipeline, texture=samples / TEXTURE, size=32)
    assert pulled == []  # nothing decoded before the first output is asked for
    first = next(it)
    assert pulled == [0] and first.shape == (1, 3, 24, 32) and 0 <= float(first.min()) <= float(first.max()) <= 1
    assert len(list(it)) == 2


def test_stylize_frames_checks_options_at_the_call(pipeline):
    with pytest.raises(ValueError, match="field_smoothing"):
        TemporalOptions(field_smoothing=1.5)
    with pytest.raises(ValueError, match="strength"):
        stylize_frames([], pipeline, strength=-1.0)
    with pytest.raises(ValueError, match="preserve_color"):
        stylize_frames([], pipeline, preserve_color="sepia")


def test_blend_without_opencv_blends_still_regions_only(samples, pipeline, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    frames = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in _frames(3, still=True)]
    outs = list(stylize_frames(frames, pipeline, texture=samples / TEXTURE, size=32,
                               temporal=TemporalOptions(blend=0.9)))
    naive = list(stylize_frames(frames, pipeline, texture=samples / TEXTURE, size=32, temporal=NAIVE))
    # A still clip: the blend pulls each output toward the previous one.
    assert float((outs[2] - outs[1]).abs().mean()) < float((naive[2] - naive[1]).abs().mean())


def test_help_describes_every_option():
    from click.testing import CliRunner

    from warpstyle.app.cli import cli

    for param in cli.commands["video"].params:
        if param.param_type_name == "option":
            assert param.help, f"video {param.opts} has no help text"
    res = CliRunner().invoke(cli, ["video", "--help"])
    assert res.exit_code == 0 and "--stats-smoothing" in res.output


def test_audio_reencoded_where_the_container_refuses_its_codec(tmp_path, pipeline):
    from warpstyle.video import stylize_video

    clip, out = tmp_path / "in.mp4", tmp_path / "out.webm"
    _write(clip, _frames(4), audio=True)
    stylize_video(clip, out, pipeline, options=_options(size=32))
    n, _, audio, _ = _streams(out)
    assert n == 4 and [name for name, _ in audio] == ["opus"]  # AAC cannot go into WebM: re-encoded


def test_package_exports():
    import warpstyle

    assert warpstyle.stylize_frames is stylize_frames and callable(warpstyle.stylize_video)


def test_cut_detector():
    frames = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in _frames(4)]
    d = CutDetector(0.3)
    assert [d.update(f) for f in frames] == [True, False, False, False]  # a pan is one shot
    assert d.update(frames[-1] * 0.3) is True  # another shot: a darker scene


def test_ctrl_c_leaves_no_partial_file(tmp_path, pipeline, monkeypatch):
    from warpstyle.video import stylize_video

    clip, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _write(clip, _frames(6))
    calls = []
    real = TemporalStylizer.step

    def step(self, frame):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, frame)

    monkeypatch.setattr(TemporalStylizer, "step", step)
    with pytest.raises(KeyboardInterrupt):
        stylize_video(clip, out, pipeline, options=_options(size=32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_cli_refuses_output_equal_to_input(tmp_path, capsys):
    clip = tmp_path / "in.mp4"
    _write(clip, _frames(2))
    code = _run(["video", "-c", str(clip), "-t", "x.jpg", "-o", str(clip)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1  # the missing texture is named first
    code = _run(["video", "-c", str(clip), "-o", str(clip)])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error" in line]
    assert code == 2 and len(err) == 1 and "--content input" in err[0]


def test_cli_non_video_input_one_line(tmp_path, capsys):
    pytest.importorskip("av")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    code = _run(["video", "-c", str(bad), "-o", str(tmp_path / "o.mp4"), "-t", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "notes.mp4" in err[0] and "Traceback" not in err[0]


def test_cli_missing_extra_one_line(tmp_path, capsys, monkeypatch, samples):
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"\0" * 16)
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    code = _run(["video", "-c", str(clip), "-t", str(samples / TEXTURE), "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "warpstyle[video]" in err[0]


def test_cli_end_to_end(tmp_path, samples, capsys):
    clip, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _write(clip, _frames(4), audio=True)
    code = _run(["video", "-c", str(clip), "-g", str(samples / GEOMETRY), "-t", str(samples / TEXTURE),
                 "--geometry-method", "network", "--size", "48", "-o", str(out), "--no-progress"])
    assert code == 0 and out.is_file()
    n, _, audio, _ = _streams(out)
    assert n == 4 and audio == [("aac", 16000)]


def test_tracking_from_the_previous_field(samples, pipeline):
    frames = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in _frames(2, 48, 64)]
    state = TemporalStylizer(pipeline, samples / GEOMETRY, None, _options(size=48, method="network"),
                             TemporalOptions(track_steps=2))
    outs = [state.step(f) for f in frames]
    assert outs[1].shape == (1, 3, *state.out_hw) and state.field is not None
    assert state.field.grid.shape == (1, *state.out_hw, 2)


@pytest.mark.parametrize("mode", ["match", "luminance"])
def test_preserve_color_per_shot(samples, pipeline, mode):
    frames = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in _frames(2)]
    outs = list(stylize_frames(frames, pipeline, texture=samples / TEXTURE, size=32, preserve_color=mode))
    assert len(outs) == 2 and outs[0].shape == (1, 3, 24, 32)
    plain = list(stylize_frames(frames, pipeline, texture=samples / TEXTURE, size=32))
    # The clip's colours are kept: the output's mean chroma (colour less luminance, which "luminance"
    # takes from the style) is nearer the frame's than without.
    chroma = lambda x: (x - (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])).mean(dim=(2, 3))  # noqa: E731
    want = chroma(frames[1])
    gap = lambda out: float((chroma(out) - want).abs().sum())  # noqa: E731
    assert gap(outs[1]) < gap(plain[1])
