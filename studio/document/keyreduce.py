"""Turning dense per-frame motion (generators, capture) into editable keys.

Animators edit keys, not 25 samples a second, so dense motion is reduced to the fewest linear keys
that stay within a tolerance of every sample (Ramer-Douglas-Peucker along time; the vertical
distance is the error that matters for a curve). Qt-free, numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_TOLERANCES", "reduce_keys", "tolerance_for"]

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


def reduce_keys(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the samples to keep as linear keys so that linear interpolation between them
    is within ``tolerance`` of every sample of ``values [F]``.

    The first and last samples are always kept; a constant signal reduces to those two (or one,
    for F == 1). Returns sorted int64 indices.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"reduce_keys expects [F] samples, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("reduce_keys: samples contain NaN or infinite values")
    n = values.size
    if n <= 2:
        return np.arange(n, dtype=np.int64)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        x = np.arange(a + 1, b)
        line = values[a] + (values[b] - values[a]) * (x - a) / (b - a)
        err = np.abs(values[a + 1 : b] - line)
        worst = int(np.argmax(err))
        if err[worst] > tolerance:
            m = a + 1 + worst
            keep[m] = True
            stack.append((a, m))
            stack.append((m, b))
    return np.flatnonzero(keep).astype(np.int64)
