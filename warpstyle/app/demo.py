"""Browser demo: a local Gradio page over :class:`~warpstyle.pipeline.Pipeline` (the optional ``demo`` extra).

:class:`DemoEngine` is the request logic (no Gradio needed: it takes uploads as paths, PIL images or
tensors and returns PIL images); :func:`build_app` lays out the page around it; :func:`launch` serves
it on 127.0.0.1 with Gradio's analytics off. Gradio is imported only by those two, so the package
works without it.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from adain.base.cli_support import oom_hint
from adain.base.errors import ImageError, StyleTransferError
from adain.base.image import load_image, save_image, to_pil
from adain.base.memory import check_decode_memory

from warpstyle.pipeline import DEFAULT_SIZE, Pipeline, PipelineOptions
from warpstyle.geometry.warper import DEFAULT_METHOD, DEFAULT_SMOOTHNESS

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["DemoEngine", "DemoOutputs", "build_app", "launch", "sample_examples",
           "DEFAULT_HOST", "DEFAULT_PORT", "INSTALL_HINT"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
INSTALL_HINT = "the browser demo needs Gradio: pip install 'warpstyle[demo]' (in a checkout: pip install -e '.[demo]')"
#: Size slider range (px, output longer side): CPU runs beyond 2048 take long and need several GiB.
SIZE_RANGE = (64, 2048)
OOM_ADVICE = "try a smaller output size"
#: Bytes of tensors the encoding cache keeps at most (see :class:`DemoEngine`).
CACHE_BYTES = 256 * 2**20
#: The field picture's full colour: a displacement of this fraction of the output's longer side.
FIELD_FULL_SCALE = 0.25
#: The bundled samples (present in a source checkout, not in a wheel).
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "datasets" / "samples"


@dataclasses.dataclass
class DemoOutputs:
    """What one request shows: images for the page and the result as a PNG file to download."""

    result: Image.Image
    warped: Image.Image | None
    field: Image.Image | None
    sheet: Image.Image
    download: Path
    info: str


def _nbytes(value: Any, seen: set[int] | None = None) -> int:
    """Bytes of the tensors in a cache entry (a texture bank, a geometry's encoding: tensors in
    dataclasses, dicts, lists and tuples), each storage counted once."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(_nbytes(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(_nbytes(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v, seen) for v in value)
    return 0


class _LRUCache(OrderedDict):
    """A mapping that keeps the ``maxsize`` most recently used entries, whose tensors take at most
    ``max_bytes`` together (for Pipeline's ``cache=``; the oldest go first, the newest too if it alone
    is over). Entries are measured at each insertion: a texture bank gains statistics as it is used."""

    def __init__(self, maxsize: int, max_bytes: int | None = None) -> None:
        super().__init__()
        self.maxsize = maxsize
        self.max_bytes = max_bytes

    def nbytes(self) -> int:
        """Bytes of the tensors held (storages shared between entries counted once)."""
        seen: set[int] = set()
        return sum(_nbytes(v, seen) for v in self.values())

    def get(self, key: Hashable, default: Any = None) -> Any:
        if key not in self:
            return default
        self.move_to_end(key)
        return super().__getitem__(key)

    def __setitem__(self, key: Hashable, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize or (self and self.max_bytes is not None and self.nbytes() > self.max_bytes):
            self.popitem(last=False)


def _load(src: Any, role: str, working_size: int) -> Any:
    """An upload decoded toward ``working_size`` (the output's longer side), so that no full-size float
    copy is ever made or cached; refused from its header when its decode cannot fit in memory.
    Unreadable files get the CLI's message, naming the upload. Other sources are left to the pipeline."""
    if not isinstance(src, (str, os.PathLike)):
        return src
    try:
        check_decode_memory([(src, working_size)])
        return load_image(src, working_size=working_size)
    except ImageError as e:
        # Name the uploaded file, not the server's temporary copy of it.
        raise ImageError(Path(src).name, f"{e.reason} (the {role} image)") from None


class DemoEngine:
    """The demo's request logic: one loaded :class:`Pipeline`, encodings cached across requests.

    Args:
        load: builds the pipeline, once, on first use (default: the bundled models).
        cache_size: geometry encodings and texture banks kept at most.
        cache_bytes: bytes of tensors they take at most together (the oldest go first). Uploads are
            decoded to the run's working size (below twice the output's longer side), so a texture
            bank holds its image at that size plus a few KB of statistics per pass size: measured for
            an 8000x8000 upload, 3.3 MiB at 512 px and 81 MiB at 2048 px. A geometry's encoding is
            15 MiB (the matcher's VGG taps, at its fixed size; the network's alone, 0.5 MiB).
        sheet_height: height of the comparison sheet's panels (px).

    Example:
        >>> engine = DemoEngine()  # doctest: +SKIP
        >>> out = engine.run("photo.jpg", "scream.jpg", "starry.jpg", size=256)  # doctest: +SKIP
        >>> out.result.size  # doctest: +SKIP
        (203, 256)
    """

    def __init__(self, load: Callable[[], Pipeline] = Pipeline.from_pretrained, *, cache_size: int = 6,
                 cache_bytes: int = CACHE_BYTES, sheet_height: int = 256) -> None:
        self._load_pipeline = load
        self._pipeline: Pipeline | None = None
        self._lock = threading.Lock()  # one run at a time: the models and the cache are shared
        self.cache = _LRUCache(cache_size, cache_bytes)
        self.sheet_height = sheet_height
        self._outdir = tempfile.TemporaryDirectory(prefix="warpstyle-demo-")
        self._downloads: deque[Path] = deque()
        self._count = 0

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline, loaded on first use."""
        if self._pipeline is None:
            self._pipeline = self._load_pipeline()
        return self._pipeline

    def run(
        self,
        content: Any,
        geometry: Any = None,
        texture: Any = None,
        *,
        strength: float = 1.0,
        smoothness: float = DEFAULT_SMOOTHNESS,
        alpha: float = 0.8,
        preserve_color: str | None = None,
        size: int = DEFAULT_SIZE,
        refinement_steps: int | None = None,
        align: bool = False,
        method: str | None = None,
        progress: Callable[..., Any] | None = None,
    ) -> DemoOutputs:
        """Run one request.

        Args:
            content, geometry, texture: upload paths, PIL images or ``(1, 3, H, W)`` tensors in [0, 1];
                geometry and texture may be None (no warp / no texture), as in ``warpstyle run``.
            preserve_color: None (or ``"off"``), ``"match"`` or ``"luminance"``.
            size: output longer side (px); the aspect is the geometry's, else the content's.
            refinement_steps: per-pair warp refinement steps (``PipelineOptions.warp_refine``; 0 or None: none).
            align: the global alignment search before the network's warp (``warpstyle run --align``;
                it implies ``method="network"``).
            method: how the warp is estimated, ``"match"`` or ``"network"`` (``warpstyle run
                --geometry-method``); None: the default, or the network with ``align``.
            progress: called as ``progress(fraction, desc=...)`` between stages (e.g. gr.Progress).

        Raises:
            StyleTransferError, ValueError: the one-line messages of the CLI.
        """
        def step(fraction: float, desc: str) -> None:
            if progress is not None:
                progress(fraction, desc=desc)

        if content is None:
            raise StyleTransferError("give a content image (the photo to transform)")
        start = time.perf_counter()
        colour = None if preserve_color in (None, "", "off") else preserve_color
        options = PipelineOptions(method=method, strength=float(strength),  # type: ignore[arg-type]
                                  smoothness=float(smoothness), alpha=float(alpha),
                                  preserve_color=colour, size=int(size), align=bool(align),  # type: ignore[arg-type]
                                  warp_refine=int(refinement_steps or 0))
        with self._lock:
            if self._pipeline is None:
                step(0.02, "loading the models")
            pipe = self.pipeline
            step(0.1, "reading the images")
            side = int(size)
            c, g, t = (_load(content, "content", side), _load(geometry, "geometry", side),
                       _load(texture, "texture", side))
            step(0.25, "warping and painting" if g is not None else "painting")
            result = pipe.run(c, g, t, options, cache=self.cache)
            step(0.9, "composing the outputs")
            out_hw = tuple(result.image.shape[-2:])
            field = None
            if result.field is not None:
                # The field as applied, on a fixed scale so that the strength shows: full colour is a
                # shift of FIELD_FULL_SCALE of the image.
                field = Image.fromarray(result.field.visualize(FIELD_FULL_SCALE * max(out_hw)))
            download = self._next_download()
            save_image(result.image, download)
        seconds = time.perf_counter() - start
        return DemoOutputs(
            result=to_pil(result.image), warped=None if result.warped is None else to_pil(result.warped),
            field=field, sheet=result.sheet(self.sheet_height), download=download,
            info=f"{out_hw[1]} x {out_hw[0]} px in {seconds:.1f} s",
        )

    def _next_download(self) -> Path:
        """A fresh file for the result; the oldest are removed (Gradio has its own copy by then)."""
        self._count += 1
        path = Path(self._outdir.name) / f"{self._count:04d}" / "warpstyle-result.png"
        path.parent.mkdir()
        self._downloads.append(path)
        while len(self._downloads) > 8:
            old = self._downloads.popleft()
            old.unlink(missing_ok=True)
            old.parent.rmdir()
        return path


def sample_examples(samples: Path = SAMPLES_DIR) -> list[list[str | None]]:
    """Example rows (content, geometry, texture) from the bundled samples; [] where they are absent."""
    rows = [("kodim04.jpg", "munch_the-scream.jpg", "vangogh_the-starry-night.jpg"),
            ("kodim23.jpg", "juan-gris_portrait-of-pablo-picasso.jpg", "kandinsky_composition-vii.jpg"),
            ("kodim15.jpg", "munch_the-scream.jpg", None),
            ("kodim15.jpg", None, "monet_water-lilies-1919.jpg")]
    out = []
    for c, g, t in rows:
        paths = [samples / "content" / c, None if g is None else samples / "geometry" / g,
                 None if t is None else samples / "texture" / t]
        if all(p is None or p.is_file() for p in paths):
            out.append([None if p is None else str(p) for p in paths])
    return out


def _import_gradio() -> Any:
    """Gradio, with its analytics off (the env var must be set before the import), or a one-line error."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio
    except ImportError:
        raise StyleTransferError(INSTALL_HINT) from None
    return gradio


def _user_message(e: BaseException) -> str | None:
    """The one-line message the CLI would print for ``e``, or None for a bug (shown as a plain "Error")."""
    if isinstance(e, (StyleTransferError, ValueError, TypeError)):
        return " ".join(str(e).split())
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower()):
        return oom_hint(OOM_ADVICE)
    return None


def _unopened(image: Any) -> Any:
    """Make a gr.Image hand the request its upload's path, unopened, so that our loader judges the file.

    gr.Image(type="filepath") opens the upload with PIL first, so a non-image would fail there with a
    bare "Error" rather than the CLI's message. (An instance override, not a subclass: Gradio writes a
    .pyi stub next to the source of every Component subclass.)
    """
    preprocess = image.preprocess

    def path_unopened(payload: Any) -> Any:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)  # Gradio has checked that it lies in its upload folder
        return preprocess(payload)

    image.preprocess = path_unopened
    return image


def build_app(engine: DemoEngine | None = None, *, examples: list[list[str | None]] | None = None) -> gr.Blocks:
    """The demo page: three image inputs, the controls, four image outputs and a download.

    Args:
        engine: the request logic (default: a :class:`DemoEngine` over the bundled models).
        examples: example rows of (content, geometry, texture) paths (default: :func:`sample_examples`).
    """
    gr = _import_gradio()
    engine = engine or DemoEngine()
    examples = sample_examples() if examples is None else examples


    with gr.Blocks(title="warpstyle", analytics_enabled=False) as app:
        gr.Markdown("## warpstyle\nWarp a photo toward the shapes of a **geometry** image, then paint it with the "
                    "brushwork of a **texture** image. Either may be left empty.")
        with gr.Row():
            content = _unopened(gr.Image(label="Content (the photo)", type="filepath", elem_id="content",
                                         height=260))
            geometry = _unopened(gr.Image(label="Geometry (shapes to take; optional)", type="filepath",
                                          elem_id="geometry", height=260))
            texture = _unopened(gr.Image(label="Texture (brushwork and colours; optional)", type="filepath",
                                         elem_id="texture", height=260))
        with gr.Row():
            strength = gr.Slider(0, 2, value=1.0, step=0.05, label="Warp strength",
                                 info="0 = no warp, 1 = estimated warp, >1 exaggerates", elem_id="strength")
            smoothness = gr.Slider(0, 4, value=DEFAULT_SMOOTHNESS, step=0.05, label="Smoothness",
                                   info="Gaussian smoothing of the field, in cells of its grid",
                                   elem_id="smoothness")
            alpha = gr.Slider(0, 1, value=0.8, step=0.05, label="Texture strength (alpha)",
                              info="0 = warped content only, 1 = full texture", elem_id="alpha")
        with gr.Row():
            colour = gr.Radio(["off", "match", "luminance"], value="off", label="Keep the content's colours",
                              elem_id="colour")
            size = gr.Slider(SIZE_RANGE[0], SIZE_RANGE[1], value=DEFAULT_SIZE, step=16, label="Output size (px)",
                             info="longer side; the aspect is the geometry's, else the content's", elem_id="size")
            refinement = gr.Slider(0, 200, value=0, step=10, label="Warp refinement steps", elem_id="refinement")
            method = gr.Radio(["match", "network"], value=DEFAULT_METHOD, label="Warp estimated by",
                              info="match: semantic matching (places and shapes); network: the feed-forward network "
                                   "(faster)", elem_id="method")
            align = gr.Checkbox(value=False, label="Align first (network)",
                                info="search where, and how large, the geometry's object is in the content, then the "
                                     "network's warp; a few seconds", elem_id="align")
        run = gr.Button("Run", variant="primary", elem_id="run")
        if examples:
            gr.Examples(examples, inputs=[content, geometry, texture], label="Examples (bundled samples)")
        with gr.Row():
            result = gr.Image(label="Result", format="png", interactive=False, elem_id="result")
            warped = gr.Image(label="Warped content", format="png", interactive=False, elem_id="warped")
            field = gr.Image(label="Warp field, as applied", format="png", interactive=False, elem_id="field")
        sheet = gr.Image(label="Comparison sheet", format="png", interactive=False, elem_id="sheet")
        with gr.Row():
            download = gr.File(label="Download the result (PNG)", interactive=False, elem_id="download")
            info = gr.Textbox(label="Run", interactive=False, elem_id="info")

        def on_run(c: str | None, g: str | None, t: str | None, st: float, sm: float, a: float, col: str,
                   sz: float, steps: float, al: bool, me: str = DEFAULT_METHOD, progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
            try:
                out = engine.run(c, g, t, strength=st, smoothness=sm, alpha=a, preserve_color=col, size=int(sz),
                                 refinement_steps=int(steps), align=bool(al),
                                 method="network" if al else me, progress=progress)
            except Exception as e:
                message = _user_message(e)
                if message is None:
                    raise  # a bug: Gradio logs the traceback and shows a plain "Error"
                raise gr.Error(html.escape(message, quote=False), print_exception=False) from None  # quotes stay readable for API clients
            return out.result, out.warped, out.field, out.sheet, str(out.download), out.info

        run.click(on_run, [content, geometry, texture, strength, smoothness, alpha, colour, size, refinement, align, method],
                  [result, warped, field, sheet, download, info], concurrency_limit=1)
    return app


def _check_port_free(host: str, port: int) -> None:
    """Raise a one-line error when ``host:port`` cannot be bound (in use, or not this machine's address)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise StyleTransferError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(addr)
        except OSError as e:
            raise StyleTransferError(f"cannot serve on {host}:{port}: {(e.strerror or str(e)).lower()} "
                                     "(choose another --port)") from None


def launch(engine: DemoEngine | None = None, *, host: str = DEFAULT_HOST, port: int | None = DEFAULT_PORT,
           share: bool = False, block: bool = True) -> gr.Blocks:
    """Serve the demo (loads the models first, so the first request is not the slow one).

    Args:
        host: interface to listen on; the default, 127.0.0.1, keeps the page on this machine.
        port: TCP port (None: Gradio's choice, from 7860 on).
        share: also open a public gradio.live tunnel (goes online; never the default).
        block: serve until interrupted (False: return the running app, e.g. for tests).
    """
    if port is not None:
        _check_port_free(host, port)  # before the models load: a taken port is a one-line error, not a traceback
    gr = _import_gradio()
    engine = engine or DemoEngine()
    engine.pipeline  # noqa: B018 (load now rather than in the first request)
    app = build_app(engine)
    samples = [str(SAMPLES_DIR)] if SAMPLES_DIR.is_dir() else []
    app.queue(default_concurrency_limit=1)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's requests to itself, one line each
    # quiet: Gradio's banner suggests `share=True in launch()`, which means nothing to a CLI user.
    app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True, quiet=True,
               allowed_paths=samples, show_error=False, mcp_server=False, ssr_mode=False, pwa=False,
               run_history=False,  # its page offers to save runs to a Hugging Face bucket: online
               theme=gr.themes.Default())  # the default theme's fonts ship with Gradio: nothing from the web
    log.info("the demo is at %s%s", app.local_url, f" and {app.share_url}" if app.share_url else "")
    if block:
        log.info("Ctrl+C stops it")
        app.block_thread()
    return app
