"""Temporal stability of a stylized clip: the warping error of Lai et al. (ECCV 2018, "Learning Blind
Video Temporal Consistency", eq. 9), and the per-frame style loss.

Warping error: for each pair of consecutive frames, the next *output* frame is carried back to the
current one along the optical flow of the *input* clip, and the mean squared difference to the
current output frame is taken over the pixels that the flow does not occlude (a forward-backward
consistency check), averaged over the pairs:

    E = 1/(T-1) sum_t  sum_p M_t(p) ||O_t(p) - warp(O_{t+1}, F_t)(p)||^2 / sum_p M_t(p)

The flow is OpenCV's DIS (``opencv-python-headless``, the ``eval`` extra), on grey frames at the
output size. Lai et al. use the same mask rule: |F_f + F_b(p + F_f)|^2 > 0.01 (|F_f|^2 + |F_b|^2) + 0.5.
For outputs warped toward a geometry image, the input's flow is only approximately the output's
(the warp bends the motion), so figures compare methods on one clip, not clips with each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from adain.base.errors import StyleTransferError

__all__ = ["require_cv2", "input_flows", "warping_error", "style_loss_per_frame"]


def require_cv2():  # noqa: ANN201
    """The ``cv2`` module, or a one-line error naming the extra."""
    try:
        import cv2
    except ImportError:
        raise StyleTransferError("the temporal warping error needs OpenCV: pip install 'warpstyle[eval]' "
                                 "(or opencv-python-headless)") from None
    return cv2


def _grey(x: torch.Tensor) -> np.ndarray:
    rgb = x[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
    return np.ascontiguousarray((rgb @ np.array([0.299, 0.587, 0.114]) * 255).round().astype(np.uint8))


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    from adain.base.image import resize_exact

    return x if tuple(x.shape[-2:]) == tuple(hw) else resize_exact(x.float(), hw)


def input_flows(inputs: Sequence[torch.Tensor], size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per consecutive pair, ``(flow t -> t+1, occlusion-free mask)`` of the input frames at ``size = (H, W)``.

    Flows are ``(H, W, 2)`` pixel displacements ``(dx, dy)``; masks ``(H, W)`` bool, True where the
    forward and backward flows agree.
    """
    cv2 = require_cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    greys = [_grey(_resize(x, size)) for x in inputs]
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for a, b in zip(greys, greys[1:]):
        fwd = dis.calc(a, b, None)
        bwd = dis.calc(b, a, None)
        mx, my = xs + fwd[..., 0], ys + fwd[..., 1]
        bwd_at = cv2.remap(bwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        diff = ((fwd + bwd_at) ** 2).sum(-1)
        bound = 0.01 * ((fwd ** 2).sum(-1) + (bwd_at ** 2).sum(-1)) + 0.5
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        out.append((fwd, (diff <= bound) & inside))
    return out


def warping_error(outputs: Sequence[torch.Tensor], flows: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Lai et al.'s warping error of ``outputs`` (``(1, 3, H, W)`` in [0, 1]) along ``flows`` from
    :func:`input_flows` at the outputs' size; mean squared RGB difference in [0, 1] units, x 1000."""
    cv2 = require_cv2()
    errs = []
    for (flow, mask), cur, nxt in zip(flows, outputs, outputs[1:]):
        h, w = flow.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        n = np.ascontiguousarray(nxt[0].permute(1, 2, 0).cpu().numpy().astype(np.float32))
        back = cv2.remap(n, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        c = cur[0].permute(1, 2, 0).cpu().numpy()
        d = ((c - back) ** 2).sum(-1)
        if mask.any():
            errs.append(float(d[mask].mean()))
    return 1000.0 * float(np.mean(errs)) if errs else 0.0


@torch.no_grad()
def style_loss_per_frame(outputs: Sequence[torch.Tensor], style: torch.Tensor, encoder: torch.nn.Module) -> float:
    """Mean over frames of :func:`adain.losses.style_loss` (relu1_1-relu4_1 mean/std) against ``style``
    resized to each frame's longer side."""
    from adain.base.image import resize_longer
    from adain.losses import STYLE_TAPS, style_loss

    losses = []
    target = None
    for x in outputs:
        if target is None:
            s = resize_longer(style.float(), max(x.shape[-2:]))
            target = [encoder(s, taps=STYLE_TAPS)[t].float() for t in STYLE_TAPS]
        fo = encoder(x.float(), taps=STYLE_TAPS)
        losses.append(float(style_loss([fo[t].float() for t in STYLE_TAPS], target)))
    return float(np.mean(losses))
