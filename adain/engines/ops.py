"""numpy mirrors of the texture stage's tensor steps, for the torch-free onnxruntime engine.

Each function mirrors a torch one and says which; tests/adain/engines/test_ops.py compares each
pair on random inputs (resizing within 1e-5, statistics within 1e-5 relative). Images here are
channels-first float32 ``(C, H, W)`` arrays in [0, 1], features ``(C, h, w)`` (batch 1 dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Stats", "resize_exact", "resize_longer", "calc_mean_std", "mix_stats", "match_color",
           "luminance_transfer"]

#: Channel ``(mean, std)`` of a feature map, each ``(C,)`` float32 (:func:`calc_mean_std`).
Stats = tuple[np.ndarray, np.ndarray]


def _aa_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` resampling matrix of one axis: PyTorch's ``interpolate(mode="bilinear",
    antialias=True, align_corners=False)``, i.e. a triangle filter widened by the scale when
    shrinking (Pillow's), at output centres ``scale * (i + 0.5)``; rows sum to 1."""
    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    out = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as the C++ cast does
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi, dtype=np.float64)
        w = np.clip(1.0 - np.abs((j - center + 0.5) * inv), 0.0, None)
        total = w.sum()
        out[i, lo:hi] = w / total if total > 0 else w
    return out


def resize_exact(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mirror of :func:`adain.base.image.resize_exact`: ``(C, H, W)`` to ``size = (height, width)``,
    antialiased bilinear, clamped to [0, 1]; the same array when the size is already ``size``."""
    h, w = int(size[0]), int(size[1])
    if (h, w) == tuple(x.shape[-2:]):
        return x
    wy = _aa_weights(x.shape[-2], h).astype(np.float32)
    wx = _aa_weights(x.shape[-1], w).astype(np.float32)
    out = np.matmul(wy, np.matmul(x, wx.T))  # (C, H, w) then (C, h, w)
    return np.clip(out, 0.0, 1.0, out=out)


def resize_longer(x: np.ndarray, size: int) -> np.ndarray:
    """Mirror of :func:`adain.base.image.resize_longer` for ``(C, H, W)``."""
    from adain.base.imagefile import fit_longer

    return resize_exact(x, fit_longer(tuple(x.shape[-2:]), size))


def calc_mean_std(feat: np.ndarray, eps: float = 1e-5) -> Stats:
    """Mirror of :func:`adain.functional.calc_mean_std` (no mask): per-channel mean and
    ``sqrt(var + eps)`` (population variance) of ``(C, h, w)``, each ``(C,)`` float32.

    Accumulated in float64 a few channels at a time, so the temporaries stay small.
    """
    c = feat.shape[0]
    flat = feat.reshape(c, -1)  # (C, h*w)
    mean = np.empty(c, dtype=np.float64)
    var = np.empty(c, dtype=np.float64)
    for a in range(0, c, 16):
        block = flat[a : a + 16].astype(np.float64)
        m = block.mean(axis=1)
        mean[a : a + 16] = m
        var[a : a + 16] = np.square(block - m[:, None]).mean(axis=1)
    return mean.astype(np.float32), np.sqrt(var + eps).astype(np.float32)


def mix_stats(f: np.ndarray, styles: Sequence[Stats], weights: Sequence[float], alpha: float = 1.0,
              own: Stats | None = None, *, in_place: bool = False) -> np.ndarray:
    """Mirror of ``Styler._mix_tap`` without masks: AdaIN of ``f`` ``(C, h, w)`` to each style's
    statistics, their weighted sum and the alpha blend with ``f``, as one affine map per channel.

    ``own``: the statistics to normalise ``f`` by (default: ``f``'s). Returns a new float32 array,
    or ``f`` itself, overwritten, with ``in_place`` (one feature map's memory less).
    """
    c_mean, c_std = calc_mean_std(f) if own is None else own
    mean = sum(float(w) * m.astype(np.float64) for w, (m, _) in zip(weights, styles))
    scale = sum(float(w) * sd.astype(np.float64) for w, (_, sd) in zip(weights, styles)) / c_std
    shift = mean - c_mean * scale
    scale, shift = alpha * scale + (1.0 - alpha), alpha * shift
    out = np.multiply(f, scale.astype(np.float32)[:, None, None], out=f if in_place else None)
    out += shift.astype(np.float32)[:, None, None]
    return out


def _sqrtm_and_inv(cov: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    evals, evecs = np.linalg.eigh(cov + eps * np.eye(3))
    evals = np.maximum(evals, eps)
    return (evecs * np.sqrt(evals)) @ evecs.T, (evecs / np.sqrt(evals)) @ evecs.T


def match_color(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mirror of :func:`adain.functional.match_color`: ``source`` ``(3, H, W)`` linearly recoloured
    to the colour mean and covariance of ``target`` ``(3, H2, W2)``; clamped to [0, 1]."""
    s = source.reshape(3, -1).astype(np.float64)
    t = target.reshape(3, -1).astype(np.float64)
    s_mean, t_mean = s.mean(1, keepdims=True), t.mean(1, keepdims=True)
    s_c, t_c = s - s_mean, t - t_mean
    _, s_inv_sqrt = _sqrtm_and_inv(s_c @ s_c.T / s.shape[1])
    t_sqrt, _ = _sqrtm_and_inv(t_c @ t_c.T / t.shape[1])
    out = (t_sqrt @ s_inv_sqrt) @ s_c + t_mean
    return np.clip(out, 0.0, 1.0).astype(np.float32).reshape(source.shape)


_RGB2YUV = np.array([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])


def luminance_transfer(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Mirror of :func:`adain.functional.luminance_transfer`: the luminance (BT.601 Y) of
    ``stylized`` with the chrominance of ``content``, both ``(3, H, W)``; clamped to [0, 1]."""
    h, w = stylized.shape[-2:]
    y = _RGB2YUV[:1] @ stylized.reshape(3, -1)
    uv = _RGB2YUV[1:] @ content.reshape(3, -1)
    rgb = np.linalg.inv(_RGB2YUV) @ np.concatenate([y, uv])
    return np.clip(rgb, 0.0, 1.0).astype(np.float32).reshape(3, h, w)
