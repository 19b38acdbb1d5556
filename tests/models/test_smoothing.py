"""models.smoothing: zero-phase pose smoothing keeps constant/linear curves and the span's ends,
reduces jitter, and leaves everything outside the span bit-exact."""

from __future__ import annotations

import numpy as np

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS, POSE_CHANNELS
from models.smoothing import POSE_COLUMNS, gaussian_smooth, smooth_pose


def _jitter(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, n=2, axis=0)).mean())


def test_constant_and_linear_signals_are_unchanged():
    t = np.arange(60, dtype=np.float64)
    for sigma in (0.5, 2.5, 7.0, 100.0):
        np.testing.assert_allclose(gaussian_smooth(np.full(60, 3.25), sigma), 3.25, atol=1e-12)
        line = -0.4 * t + 7.0
        np.testing.assert_allclose(gaussian_smooth(line, sigma), line, atol=1e-10)


def test_reduces_second_differences_of_noise_and_keeps_the_ends():
    x = np.random.default_rng(0).normal(size=(200, 3))
    y = gaussian_smooth(x, 2.5)
    assert _jitter(y) < 0.1 * _jitter(x)
    np.testing.assert_array_equal(y[[0, -1]], x[[0, -1]])
    # Zero-phase: a symmetric bump stays centred.
    bump = np.exp(-0.5 * ((np.arange(41) - 20) / 3.0) ** 2)
    sb = gaussian_smooth(bump, 2.5)
    assert int(np.argmax(sb)) == 20
    np.testing.assert_allclose(sb, sb[::-1], atol=1e-12)


def test_zero_sigma_and_short_signals_are_copies():
    x = np.random.default_rng(1).normal(size=(30, 90))
    np.testing.assert_array_equal(smooth_pose(x, 0.0), x)
    np.testing.assert_array_equal(gaussian_smooth(x[:2], 2.5), x[:2])
    assert np.isfinite(gaussian_smooth(x[:3], 50.0)).all()


def test_smooth_pose_touches_only_pose_channels_inside_the_span():
    rng = np.random.default_rng(2)
    x = CHANNEL_DEFAULTS + rng.normal(size=(3, 80, len(CHANNELS)))  # variations axis too
    y = smooth_pose(x, 2.5, 20, 50)
    assert POSE_COLUMNS == tuple(CHANNEL_INDEX[c] for c in POSE_CHANNELS)
    others = [i for i in range(len(CHANNELS)) if i not in POSE_COLUMNS]
    np.testing.assert_array_equal(y[:, :, others], x[:, :, others])
    np.testing.assert_array_equal(y[:, :20], x[:, :20])
    np.testing.assert_array_equal(y[:, 50:], x[:, 50:])
    np.testing.assert_array_equal(y[:, [20, 49]], x[:, [20, 49]])
    cols = list(POSE_COLUMNS)
    assert _jitter(y[0, 20:50, cols].T) < 0.3 * _jitter(x[0, 20:50, cols].T)
    # Same result as smoothing the span alone: frames outside do not leak in.
    np.testing.assert_array_equal(y[:, 20:50], smooth_pose(x[:, 20:50], 2.5))
