"""Temporal stability and speed of ``warpstyle video``: warping error (Lai et al. 2018), style loss, warp jitter, fps.

    python benchmarks/bench_video.py [--size 128] [--frames 16] [--clips pan,zoom,cutout,cut,still]
        [--geometry-method match] [--speed-size 512] [--speed-frames 4] [--skip-speed] [--json out.json]

Test clips are made on the fly (scripts/make_test_clip.py) from the bundled Kodak samples: a pan, a
zoom, a moving cut-out, a cut between two shots, and a still shot with sensor grain. For each clip:

* **texture only** (output aligned with the input, so the warping error is exactly Lai et al.'s):
  the input clip itself, the naive per-frame result, statistics smoothing, output blending, both;
* **geometry + texture**: naive against the default temporal settings; also the mean change of the
  applied field between consecutive frames (px at the output size; a still shot should give < 0.5).

Warping error: x 1000 mean squared RGB difference, occluded pixels masked
(warpstyle.evaluation.temporal). Style loss: mean over frames of adain.losses.style_loss against the
texture; the ratio new / naive says how much style the smoothing costs (1 = none).
Needs the video extra (PyAV) and OpenCV (the eval extra); exits with a note without them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
SAMPLES = os.path.join(HERE, "..", "datasets", "samples")
PHOTOS = [os.path.join(SAMPLES, "content", f) for f in ("kodim04.jpg", "kodim15.jpg", "kodim23.jpg")]
TEXTURE = os.path.join(SAMPLES, "texture", "vangogh_the-starry-night.jpg")
GEOMETRY = os.path.join(SAMPLES, "geometry", "munch_the-scream.jpg")
CLIPS = {"pan": [PHOTOS[0]], "zoom": [PHOTOS[0]], "cutout": [PHOTOS[2], PHOTOS[1]], "cut": [PHOTOS[0], PHOTOS[1]],
         "still": [PHOTOS[0]]}


def _read(path: str) -> list:
    from warpstyle.video.frames import VideoReader

    with VideoReader(path, audio=False) as r:
        return [x for x, _ in r]


def _run(pipe, frames, geometry, temporal, size, method, bf16=None):
    from warpstyle.pipeline import PipelineOptions
    from warpstyle.video.temporal import TemporalStylizer, field_change_px

    state = TemporalStylizer(pipe, geometry, TEXTURE, PipelineOptions(size=size, method=method, bf16=bf16), temporal)
    outs, changes, prev = [], [], None
    t0 = time.perf_counter()
    for f in frames:
        outs.append(state.step(f))
        if state.field is not None:
            if prev is not None and not state.cut:
                changes.append(field_change_px(prev, state.field))
            prev = state.field
    secs = time.perf_counter() - t0
    return outs, (sum(changes) / len(changes) if changes else None), len(frames) / secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128, help="output longer side for the stability figures (px)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--geometry-clips", default="still,pan,cut", help="clips also run with the geometry stage")
    ap.add_argument("--geometry-method", default="match", choices=["match", "network"])
    ap.add_argument("--speed-size", type=int, default=512)
    ap.add_argument("--speed-frames", type=int, default=4)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    try:
        import av  # noqa: F401
        import cv2  # noqa: F401
    except ImportError as e:
        print(f"bench_video: skipped ({e.name} is not installed: pip install 'warpstyle[video,eval]')")
        return

    import torch
    from make_test_clip import frames as make_frames, write_clip

    from adain.base.image import load_image
    from warpstyle.evaluation.temporal import input_flows, style_loss_per_frame, warping_error
    from warpstyle.pipeline import Pipeline
    from warpstyle.video.temporal import NAIVE, TemporalOptions

    torch.set_grad_enabled(False)
    pipe = Pipeline.from_pretrained()
    style = load_image(TEXTURE)
    default = TemporalOptions()
    only = dict(field_smoothing=0, global_smoothing=0, stats_smoothing=0, blend=0)
    texture_variants = {
        "naive": NAIVE,
        "stats 0.5": TemporalOptions(**{**only, "stats_smoothing": 0.5}),
        "stats 0.9": TemporalOptions(**{**only, "stats_smoothing": 0.9}),
        "blend 0.5": TemporalOptions(**{**only, "blend": 0.5}),
        "blend 0.8": TemporalOptions(**{**only, "blend": 0.8}),
        "new (default)": default,
    }
    report: dict = {"size": args.size, "frames": args.frames, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [c for c in args.clips.split(",") if c]:
            path = os.path.join(tmp, f"{name}.mp4")
            write_clip(path, make_frames(name, CLIPS[name], args.frames, 192, 128, 3.0 if name == "still" else 0.0))
            frames = _read(path)
            rows: dict = {}
            t_outs, _, _ = _run(pipe, frames[:1], None, NAIVE, args.size, "network")
            hw = tuple(t_outs[0].shape[-2:])
            flows = input_flows(frames, hw)
            rows["input"] = {"warp_error": warping_error([torch.nn.functional.interpolate(f, size=hw, mode="bilinear",
                                                                                         antialias=True) for f in frames], flows)}
            for label, temporal in texture_variants.items():
                outs, _, fps = _run(pipe, frames, None, temporal, args.size, "network")
                rows[f"texture {label}"] = {"warp_error": warping_error(outs, flows),
                                            "style_loss": style_loss_per_frame(outs, style, pipe.styler.encoder)}
            if name in args.geometry_clips.split(","):
                for label, temporal in (("naive", NAIVE), ("new", default)):
                    outs, change, fps = _run(pipe, frames, GEOMETRY, temporal, args.size, args.geometry_method)
                    g_hw = tuple(outs[0].shape[-2:])
                    g_flows = flows if g_hw == hw else input_flows(frames, g_hw)
                    rows[f"geometry {label}"] = {"warp_error": warping_error(outs, g_flows),
                                                 "style_loss": style_loss_per_frame(outs, style, pipe.styler.encoder),
                                                 "field_change_px": change, "fps": fps}
            report["clips"][name] = rows
            print(f"\n{name} ({args.frames} frames, output {hw[1]}x{hw[0]} px):")
            print(f"  {'run':<22} {'warp err':>9} {'style':>8} {'field px':>9}")
            for label, r in rows.items():
                st = f"{r['style_loss']:.3f}" if "style_loss" in r else "-"
                fc = f"{r['field_change_px']:.3f}" if r.get("field_change_px") is not None else "-"
                print(f"  {label:<22} {r['warp_error']:>9.3f} {st:>8} {fc:>9}")
            sys.stdout.flush()
        if not args.skip_speed:
            path = os.path.join(tmp, "speed.mp4")
            write_clip(path, make_frames("pan", CLIPS["pan"], args.speed_frames + 1, 768, 512, 0.0))
            frames = _read(path)
            report["speed"] = {}
            print(f"\nspeed at {args.speed_size} px ({args.speed_frames} frames after a warm-up frame; "
                  f"geometry method {args.geometry_method}):")
            for bf16 in (False, True):
                for label, g in (("texture", None), ("geometry+texture", GEOMETRY)):
                    _run(pipe, frames[:1], g, default, args.speed_size, args.geometry_method, bf16)  # warm-up
                    _, _, fps = _run(pipe, frames[1:], g, default, args.speed_size, args.geometry_method, bf16)
                    key = f"{label} {'bf16' if bf16 else 'fp32'}"
                    report["speed"][key] = fps
                    print(f"  {key:<24} {fps:.3f} fps")
                    sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
