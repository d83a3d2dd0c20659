"""OnnxStyler: :meth:`adain.Styler.stylize` on onnxruntime and numpy, without torch.

A faithful mirror of the torch styler's whole-image passes (``Styler.stylize_planned``): the same
pass sizes (:mod:`.schedule`), the same guided / restylize schedules, style mixing, alpha (folded
into the AdaIN map, and the decoder's keep path), ``preserve_color`` match and luminance, in
float32. Not mirrored: masks, the quality mode (``refine_steps``), tiles, bf16 (see
:func:`adain.engines.choose.onnx_unsupported`). tests/adain/engines/test_onnx_styler.py compares it
with the torch styler in float32 on the bundled samples (PSNR >= 40 dB; docs/engines.md).

Convention: images are float32 ``(3, H, W)`` RGB arrays in [0, 1], features ``(C, h, w)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from adain.base.errors import CheckpointError, StyleTransferError
from adain.base.imagefile import fit_longer
from adain.base.values import check_range, check_weights

from .graphs import DECODER_FILE, ENCODER_FILE, GraphSet, find_graphs
from .ops import Stats, calc_mean_std, luminance_transfer, match_color, mix_stats, resize_exact, resize_longer
from .schedule import MIN_SIDE, pass_sizes

__all__ = ["OnnxStyler", "Feats", "read_chw"]

#: Encoder features by tap name, each ``(C, h, w)`` float32.
Feats = dict[str, np.ndarray]
_SCHEDULES = ("guided", "restylize")


class OnnxStyler:
    """The texture stage on onnxruntime (CPU): a VGG encoder graph and a decoder graph.

    Args:
        graphs: the built graphs (:func:`adain.engines.graphs.find_graphs`).
        threads: onnxruntime's intra-op threads (None: its default, the physical cores).

    Raises:
        CheckpointError: a graph file differs from its manifest, or its inputs/outputs do.
    """

    def __init__(self, graphs: GraphSet, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: its warnings would break the CLIs' one-line output
        # No memory arena: the same speed and about half the peak memory (measured at 512 px: 670 MiB
        # against 1320 MiB); the arena keeps every pass's largest buffers.
        opts.enable_cpu_mem_arena = False
        # Idle threads sleep instead of spinning: on a machine shared with other jobs the spinning
        # took CPU from the work (measured at 512 px, load average 4 on 2 cores: 3.5 -> 3.2 s a run).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        self.graphs = graphs
        self._enc = ort.InferenceSession(graphs.read(ENCODER_FILE), opts, providers=["CPUExecutionProvider"])
        self._dec = ort.InferenceSession(graphs.read(DECODER_FILE), opts, providers=["CPUExecutionProvider"])
        self._check_io(ENCODER_FILE, self._enc, ["image"], list(graphs.taps))
        self._check_io(DECODER_FILE, self._dec, graphs.decoder_inputs(), ["image"])

    def _check_io(self, name: str, sess: object, inputs: list[str], outputs: list[str]) -> None:
        got_in = [i.name for i in sess.get_inputs()]  # type: ignore[attr-defined]
        got_out = [o.name for o in sess.get_outputs()]  # type: ignore[attr-defined]
        if got_in != inputs or got_out != outputs:
            raise CheckpointError(self.graphs.folder / name, f"graph inputs {got_in} / outputs {got_out}, expected "
                                                             f"{inputs} / {outputs}; delete the folder to rebuild it")

    @classmethod
    def from_pretrained(cls, decoder: str | Path | None = None, *, vgg: str | Path | None = None,
                        cache: str | Path | None = None, build: bool = False) -> OnnxStyler:
        """The graphs of these weights (default: bundled) from the cache; ``build``: build them
        first when missing (imports torch, about 10 s once), else raise.

        Raises:
            StyleTransferError: no graphs for these weights and ``build`` is False.
        """
        graphs = find_graphs(decoder, vgg, cache=cache)
        if graphs is None:
            if not build:
                raise StyleTransferError("no ONNX graphs for these weights yet; build them once with "
                                         "`adain build-graphs` (or run with --engine onnx)")
            from .build import build_graphs

            graphs = build_graphs(decoder, vgg, cache=cache)
        return cls(graphs)

    @property
    def taps(self) -> tuple[str, ...]:
        """The encoder taps the decoder takes: relu4_1, then its skip taps."""
        return self.graphs.taps

    def encode(self, x: np.ndarray) -> Feats:
        """The decoder's taps of ``x`` ``(3, H, W)`` (sides at least 16), each ``(C, H/s, W/s)``."""
        outs = self._enc.run(None, {"image": np.ascontiguousarray(x, dtype=np.float32)[None]})
        return {t: o[0] for t, o in zip(self.taps, outs)}

    def decode(self, target: Feats, kept: Feats | None = None, keep_weight: float = 0.0) -> np.ndarray:
        """``(3, 8h, 8w)`` in [0, 1] from AdaIN targets (relu4_1 ``(512, h, w)`` and the skip taps);
        ``kept``: the content's own features at the keep taps, weighted by ``keep_weight``."""
        feeds = {"features": target["relu4_1"][None]}
        feeds |= {f"skip_{t}": target[t][None] for t in self.taps[1:]}
        if self.graphs.keep:
            # At weight 0 the keep path adds exactly 0: any finite features of the right shape will do.
            src = kept if kept is not None else target
            feeds |= {f"keep_{t}": src[t][None] for t in self.graphs.keep}
            feeds["keep"] = np.array([keep_weight if kept is not None else 0.0], dtype=np.float32)
        out = self._dec.run(None, feeds)[0][0]
        return np.clip(out, 0.0, 1.0, out=out)

    def style_stats(self, style: np.ndarray, size: int, color_ref: np.ndarray | None = None) -> dict[str, Stats]:
        """Mirror of ``Styler._style_stats``: the style at longer side ``size`` (recoloured to
        ``color_ref`` when given), its ``(mean, std)`` at each tap."""
        s = resize_longer(style, size)
        if min(s.shape[-2:]) < MIN_SIDE:  # very thin styles would pool to nothing
            s = resize_exact(s, (max(MIN_SIDE, s.shape[-2]), max(MIN_SIDE, s.shape[-1])))
        if color_ref is not None:
            s = match_color(s, color_ref)
        return {t: calc_mean_std(f) for t, f in self.encode(s).items()}

    def stylize(self, content: np.ndarray, styles: Sequence[np.ndarray], *, alpha: float = 1.0,
                weights: Sequence[float] | None = None, preserve_color: str | None = None,
                scales: Sequence[int] | None = None, size: int | None = None, schedule: str = "guided",
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Paint ``content`` with the texture of ``styles``, as :meth:`adain.Styler.stylize` in float32.

        Args:
            content: ``(3, H, W)`` float32 RGB in [0, 1].
            styles: one or more ``(3, Hs, Ws)`` style images (any size).
            alpha, weights, preserve_color, scales, size, schedule, progress: as in
                :meth:`adain.Styler.stylize` (no masks, tiles, refinement or bf16 here).

        Returns:
            ``(3, H_out, W_out)`` float32 in [0, 1], the content's aspect ratio at longer side ``size``.

        Example:
            >>> styler = OnnxStyler.from_pretrained(build=True)  # doctest: +SKIP
            >>> styler.stylize(np.random.rand(3, 40, 56).astype(np.float32), [np.random.rand(3, 32, 32)]).shape  # doctest: +SKIP
            (3, 40, 56)
        """
        check_range(alpha, "alpha", 0.0, 1.0)
        if not styles:
            raise ValueError("styles must hold at least one style image")
        w = np.array(check_weights(weights, "weights", len(styles)) or [1.0] * len(styles))
        if preserve_color not in (None, "match", "luminance"):
            raise ValueError(f"preserve_color must be None, 'match' or 'luminance'; got {preserve_color!r}")
        if schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(_SCHEDULES)}; got {schedule!r}")
        for i, im in enumerate([content, *styles]):
            if im.ndim != 3 or im.shape[0] != 3 or min(im.shape[1:]) < 1:
                raise ValueError(f"{'content' if i == 0 else f'styles[{i - 1}]'} must be (3, H, W); got {im.shape}")
        if size is None and max(content.shape[-2:]) < 8:
            raise ValueError(f"content is {content.shape[2]}x{content.shape[1]} px, too small to stylize at its own "
                             "size (at least 8 px on the longer side); give size (the CLI's --size) to upscale it")
        out_hw = fit_longer(tuple(content.shape[-2:]), max(content.shape[-2:]) if size is None else int(size))
        passes = pass_sizes(out_hw, size, scales)
        total, done = sum(ph * pw for ph, pw, _ in passes), 0
        if progress is not None:
            progress(0, total)
        prev: np.ndarray | None = None
        for ph, pw, s in passes:
            prev = self._pass(content, prev, styles, w / w.sum(), (ph, pw), s, float(alpha), preserve_color, schedule)
            done += ph * pw
            if progress is not None:
                progress(done, total)
        assert prev is not None
        out = resize_exact(prev, out_hw)
        if preserve_color == "luminance":
            out = luminance_transfer(out, resize_exact(content, out_hw))
        return np.clip(out, 0.0, 1.0)

    def _pass(self, x: np.ndarray, prev: np.ndarray | None, styles: Sequence[np.ndarray], w: np.ndarray,
              hw: tuple[int, int], s: int, alpha: float, preserve_color: str | None, schedule: str) -> np.ndarray:
        """One whole-image pass of ``Styler.stylize_planned`` at ``hw`` (longer side ``s``)."""
        x_s = resize_exact(x, hw)
        # The styles first: their feature maps are gone before the content's exist (a lower peak).
        stats = [self.style_stats(st, s, x_s if preserve_color == "match" else None) for st in styles]
        f_content: Feats | None
        if prev is not None and schedule == "restylize":
            # Coarse result for coherent large strokes, plus the content detail it could not hold.
            detail = x_s - resize_exact(resize_exact(x_s, tuple(prev.shape[-2:])), hw)
            f_in = self.encode(np.clip(resize_exact(prev, hw) + detail, 0.0, 1.0))
            f_content = self.encode(x_s) if alpha < 1 else None
        else:
            f_in = f_content = self.encode(x_s)
            if prev is not None and schedule == "guided":
                # Half the content's own features, half the coarse result's, then AdaIN.
                f_in = self.encode(resize_exact(prev, hw))
                for k, v in f_in.items():
                    v += 0.5 * (f_content[k] - v)
        kept = None
        if alpha < 1 and self.graphs.keep:
            assert f_content is not None
            kept = {t: f_content[t] for t in self.graphs.keep}
        fold = alpha if f_in is f_content else 1.0  # the alpha blend folded into the affine map
        # In place unless f_in is the content's own features and they are still needed (the keep path).
        in_place = not (f_in is f_content and kept is not None)
        target = {t: mix_stats(f, [st[t] for st in stats], w, fold, in_place=in_place) for t, f in f_in.items()}
        del f_in
        if alpha < 1 and fold >= 1:
            assert f_content is not None
            for k, v in target.items():  # alpha * target + (1 - alpha) * content
                v += (1.0 - alpha) * (f_content[k] - v)
        return self.decode(target, kept, (1.0 - alpha) ** self.graphs.keep_power)


def read_chw(path: str | Path, working_size: int | None = None) -> np.ndarray:
    """An image file as ``(3, H, W)`` float32 in [0, 1], by the rules of :func:`adain.base.imagefile.read_rgb`
    (the same decode as the torch engine's :func:`adain.base.image.load_image`)."""
    from adain.base.imagefile import read_rgb

    return np.ascontiguousarray(read_rgb(path, working_size=working_size).transpose(2, 0, 1))
