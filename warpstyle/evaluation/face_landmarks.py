"""68-point facial landmarks from dlib, for *evaluating* warpers on face pairs; cached by file hash.

Optional: ``pip install "warpstyle[eval]"`` (``dlib-bin`` and ``face-recognition-models``, which
ships ``shape_predictor_68_face_landmarks.dat``). That model was trained on iBUG 300-W, whose
licence allows non-commercial research only: the landmarks score warpers here and are never a
training signal.

Convention:
    Landmarks are ``(68, 2)`` float ``(x, y)`` in pixels of the image as loaded (pixel centres at
    integer coordinates, the origin at the top-left pixel's centre), in dlib's iBUG order.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

import numpy as np

from adain.base.data import load_rgb_pil
from adain.base.errors import StyleTransferError
from adain.base.storage.files import atomic_path

__all__ = ["FaceLandmarker", "LandmarkCache", "landmark_model_path", "file_digest", "default_cache_path",
           "LANDMARK_MODEL", "EVAL_EXTRA_HINT"]

log = logging.getLogger(__name__)

LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
EVAL_EXTRA_HINT = "install the optional extra: pip install 'warpstyle[eval]' (dlib-bin, face-recognition-models)"
_CACHE_VERSION = 1


def landmark_model_path() -> Path:
    """Locate the 68-point model inside ``face_recognition_models`` without importing it.

    Its ``__init__`` imports ``pkg_resources``, absent from fresh environments, so only the
    package's folder is looked up.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise StyleTransferError(f"face landmarks need face-recognition-models; {EVAL_EXTRA_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / LANDMARK_MODEL
    if not path.is_file():
        raise StyleTransferError(f"'{path}' is missing from face-recognition-models; {EVAL_EXTRA_HINT}")
    return path


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes (the cache key: renaming or moving a file keeps its landmarks)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/warpstyle/face_landmarks.json`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "warpstyle" / "face_landmarks.json"


class FaceLandmarker:
    """dlib's frontal face detector and 68-point shape predictor; the largest face of an image.

    Args:
        upsample: detector upsampling passes (1 finds faces down to about 40 px).

    Raises:
        StyleTransferError: dlib or the model is not installed (the message says what to install).
    """

    name = "dlib-68"

    def __init__(self, upsample: int = 1) -> None:
        try:
            import dlib  # noqa: PLC0415 (optional extra)
        except ImportError:
            raise StyleTransferError(f"face landmarks need dlib; {EVAL_EXTRA_HINT}") from None
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(landmark_model_path()))
        self.upsample = upsample

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """``(68, 2)`` float64 landmarks of the largest face in ``rgb`` ``(H, W, 3)`` uint8, or None."""
        faces = self._detector(np.ascontiguousarray(rgb), self.upsample)
        if len(faces) == 0:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        shape = self._predictor(rgb, face)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class LandmarkCache:
    """Landmarks per image, stored as JSON keyed by the file's SHA-1 (absence of a face is cached too).

    Args:
        path: the JSON file (created on :meth:`save`).
        landmarker: detector used on a cache miss; None: misses raise, for read-only use.
    """

    def __init__(self, path: str | Path, landmarker: FaceLandmarker | None = None) -> None:
        self.path = Path(path)
        self.landmarker = landmarker
        self._entries: dict[str, dict] = {}
        self._dirty = False
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == _CACHE_VERSION:
                    self._entries = dict(data.get("entries", {}))
            except (OSError, ValueError, AttributeError):
                log.warning("ignoring unreadable landmark cache %s", self.path)
        self.hits = self.misses = 0

    def get(self, image_path: str | Path) -> tuple[np.ndarray | None, tuple[int, int]]:
        """Landmarks ``(68, 2)`` or None, and the image's ``(H, W)``; detects on a miss."""
        key = file_digest(image_path)
        entry = self._entries.get(key)
        if entry is None:
            if self.landmarker is None:
                raise StyleTransferError(f"no cached landmarks for '{image_path}' and no detector given")
            self.misses += 1
            im = load_rgb_pil(image_path)
            pts = self.landmarker(np.asarray(im))
            entry = {"size": [im.height, im.width], "landmarks": None if pts is None else pts.tolist(),
                     "model": self.landmarker.name, "name": Path(image_path).name}
            self._entries[key] = entry
            self._dirty = True
        else:
            self.hits += 1
        pts = entry["landmarks"]
        return (None if pts is None else np.asarray(pts, dtype=np.float64)), (int(entry["size"][0]), int(entry["size"][1]))

    def save(self) -> None:
        """Write the cache atomically if anything was added."""
        if not self._dirty:
            return
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({"version": _CACHE_VERSION, "entries": self._entries}) + "\n")
        self._dirty = False
