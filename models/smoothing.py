"""Zero-phase temporal smoothing of motion curves after generation (numpy only, Qt-free).

The shipped small motion model decodes head pose from 66-bin logits per frame, and its pose
curves jitter about 9x more than its training targets (resources/models/motion_default/
MODEL_CARD.md). :func:`smooth_pose` smooths the head-pose channels (POSE_CHANNELS: pitch, yaw,
roll, tx, ty, tz, scale) with a centred, normalised Gaussian kernel: symmetric, so zero-phase (no
lag), applied once (not forward-backward; a centred kernel already has no phase shift).

Edges: the signal is extended by point reflection about each end (``x[-k] = 2 x[0] - x[k]``),
so constant and linear curves come out unchanged and the first and last frames of the smoothed
span are kept exactly (they are copied back, not recomputed). With ``start``/``end`` only the
frames ``start..end-1`` are smoothed, from those frames alone: everything outside stays
bit-exact (range regeneration relies on this).

studio.generation applies it by default to neural generations (``GenerateRequest.
pose_smoothing``, in frames at the model's 25 fps) and benchmarks/model_metrics.py applies the
same function in its "model + pose smoothing" row.
"""

from __future__ import annotations

import math

import numpy as np

from models.motion_space import CHANNEL_INDEX, POSE_CHANNELS

__all__ = ["DEFAULT_POSE_SMOOTHING", "POSE_COLUMNS", "gaussian_smooth", "smooth_pose"]

#: Default Gaussian sigma in frames (25 fps) for neural generations; 0 disables.
DEFAULT_POSE_SMOOTHING = 2.5

#: Column indices of POSE_CHANNELS in the document's channel vector.
POSE_COLUMNS = tuple(CHANNEL_INDEX[c] for c in POSE_CHANNELS)


def _kernel(sigma: float, n: int) -> np.ndarray:
    radius = min(math.ceil(3.0 * sigma), n - 1)
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    return w / w.sum()


def gaussian_smooth(values: np.ndarray, sigma: float, axis: int = 0) -> np.ndarray:
    """``values`` smoothed along ``axis`` by a centred Gaussian of ``sigma`` samples (zero-phase)
    with point-reflected edges; the first and last samples are returned unchanged. sigma <= 0 or
    fewer than 3 samples: an unchanged copy. float64 out."""
    x = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
    n = x.shape[0]
    if not sigma > 0 or n < 3:
        return np.moveaxis(x.copy(), 0, axis)
    w = _kernel(float(sigma), n)
    r = (w.size - 1) // 2
    head = 2.0 * x[:1] - x[r:0:-1]  # x[-r..-1] reflected about x[0]
    tail = 2.0 * x[-1:] - x[-2 : -r - 2 : -1]  # x[n..n+r-1] reflected about x[n-1]
    ext = np.concatenate([head, x, tail], axis=0)
    out = np.zeros_like(x)
    for j, wj in enumerate(w):
        out += wj * ext[j : j + n]
    out[0] = x[0]
    out[-1] = x[-1]
    return np.moveaxis(out, 0, axis)


def smooth_pose(
    channels: np.ndarray, sigma: float, start: int = 0, end: int | None = None
) -> np.ndarray:
    """A copy of motion channels ``[..., T, 90]`` with the head-pose channels of frames
    ``start..end-1`` smoothed over time (:func:`gaussian_smooth`, sigma in frames). Other
    channels, and every frame outside the span, are bit-exact copies."""
    out = np.array(channels, dtype=np.float64, copy=True)
    T = out.shape[-2]
    end = T if end is None else min(int(end), T)
    start = max(0, int(start))
    if not sigma > 0 or end - start < 3:
        return out
    cols = list(POSE_COLUMNS)
    seg = out[..., start:end, :][..., cols]
    out[..., start:end, cols] = gaussian_smooth(seg, sigma, axis=-2)
    return out
