"""Turning dense per-frame motion (generators, capture) into editable keys.

Animators edit keys, not 25 samples a second, so dense motion is reduced to the fewest linear keys
that stay within a tolerance of every sample (Ramer-Douglas-Peucker along time; the vertical
distance is the error that matters for a curve). Qt-free, numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHUNK", "DEFAULT_TOLERANCES", "reduce_keys", "tolerance_for"]

# Largest allowed deviation per channel kind, in the channel's units: well below what shows on a
# head at typical sizes (0.05 degrees of head turn, 1/2000 of a face width for a keypoint).
DEFAULT_TOLERANCES = {
    "angle": 0.05,  # pitch, yaw, roll (degrees)
    "exp": 5e-4,  # keypoint deltas
    "translation": 5e-4,
    "unit": 5e-3,  # scale, eye_open, eye_ball, intensity, emotion weights
}


def tolerance_for(channel: str) -> float:
    """Default reduction tolerance for a motion channel name."""
    if channel in ("pitch", "yaw", "roll"):
        return DEFAULT_TOLERANCES["angle"]
    if channel.startswith("exp_"):
        return DEFAULT_TOLERANCES["exp"]
    if channel in ("tx", "ty", "tz"):
        return DEFAULT_TOLERANCES["translation"]
    return DEFAULT_TOLERANCES["unit"]


# Frames per independent piece of a long signal (164 s at 25 fps); see reduce_keys.
CHUNK = 4096


def reduce_keys(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the samples to keep as linear keys so that linear interpolation between them
    is within ``tolerance`` of every sample of ``values [F]``.

    The first and last samples are always kept; a constant signal reduces to those two (or one,
    for F == 1). Up to :data:`CHUNK` samples the keys are exactly Ramer-Douglas-Peucker's; a
    longer signal is reduced in pieces of CHUNK samples whose ends are also kept (one extra key
    per 164 s at most), so the cost grows linearly with F. Returns sorted int64 indices.
    Raises ValueError for a non-1-D or non-finite input.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"reduce_keys expects [F] samples, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("reduce_keys: samples contain NaN or infinite values")
    n = values.size
    if n <= 2:
        return np.arange(n, dtype=np.int64)
    # Ramer-Douglas-Peucker, one level of the recursion at a time: every open segment (a, b) is
    # measured in one vectorised pass over its interior samples (the segments are disjoint, so a
    # pass is O(n)), and split at its worst sample (the first one, as np.argmax picks) when that
    # is beyond the tolerance. That is the recursive version's result, at O(n * depth) in numpy
    # instead of one Python iteration per key (an hour of motion: 90,000 frames, up to as many
    # keys per channel). Long signals start from chunks of CHUNK frames, whose ends are kept:
    # the depth stays bounded (cost linear in n) for one extra key per chunk at most.
    ends = np.unique(np.append(np.arange(0, n - 1, CHUNK, dtype=np.int64), n - 1))
    keep = np.zeros(n, dtype=bool)
    keep[ends] = True
    a, b = ends[:-1], ends[1:]
    wide = b - a >= 2
    a, b = a[wide], b[wide]
    while a.size:
        inner = b - a - 1  # samples strictly inside each segment, all >= 1
        seg = np.repeat(np.arange(a.size), inner)  # [P] segment of each interior sample
        first = np.cumsum(inner) - inner  # [S] offset of each segment's first interior sample
        idx = a[seg] + 1 + (np.arange(seg.size) - first[seg])  # [P] sample indices
        va, vb = values[a], values[b]
        t = (idx - a[seg]) / (b - a)[seg]
        err = np.abs(values[idx] - (va[seg] + (vb - va)[seg] * t))
        worst = np.maximum.reduceat(err, first)  # [S]
        split = worst > tolerance
        if not split.any():
            break
        # First sample of each segment reaching its maximum (np.argmax's tie rule).
        hit = np.flatnonzero(err == worst[seg])  # sorted, so seg[hit] is too
        sh = seg[hit]
        firsts = hit[np.concatenate([[True], sh[1:] != sh[:-1]])]  # [S]
        m = idx[firsts][split]
        keep[m] = True
        a_s, b_s = a[split], b[split]
        a = np.concatenate([a_s, m])
        b = np.concatenate([m, b_s])
        wide = b - a >= 2
        a, b = a[wide], b[wide]
    return np.flatnonzero(keep).astype(np.int64)
