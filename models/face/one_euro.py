"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012), vectorised over channels.

A first-order low-pass filter whose cutoff rises with the signal's speed: slow motion is
smoothed hard (no jitter while the performer holds still), fast motion passes with little lag.

    cutoff = min_cutoff + beta * |dx/dt filtered at d_cutoff|
    alpha  = 1 / (1 + 1 / (2 pi cutoff dt))
    y      = y_prev + alpha * (x - y_prev)

``min_cutoff`` (Hz) sets the jitter at rest (lower = smoother, more lag); ``beta`` sets how fast
the cutoff opens with speed (higher = less lag on fast moves). Timestamps are seconds, so the
filter behaves the same at any frame rate and with dropped frames.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter"]


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over a vector of channels ``[C]`` (or any fixed shape).

    ``min_cutoff`` and ``beta`` may be scalars or arrays broadcastable to the signal (per-channel
    strength). Raises ValueError for a non-positive ``min_cutoff`` or ``d_cutoff``, or a negative
    ``beta``.
    """

    def __init__(
        self,
        min_cutoff: float | np.ndarray = 1.0,
        beta: float | np.ndarray = 0.0,
        d_cutoff: float = 1.0,
    ) -> None:
        self.min_cutoff = np.asarray(min_cutoff, dtype=np.float64)
        self.beta = np.asarray(beta, dtype=np.float64)
        self.d_cutoff = float(d_cutoff)
        if (self.min_cutoff <= 0).any() or self.d_cutoff <= 0:
            raise ValueError("OneEuroFilter: min_cutoff and d_cutoff must be positive")
        if (self.beta < 0).any():
            raise ValueError("OneEuroFilter: beta must be >= 0")
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self, value: np.ndarray | None = None, t: float | None = None) -> None:
        """Forget the history; with ``value`` (and ``t``), continue from it as if it had been
        the last output (no jump when tracking resumes from a held pose)."""
        if value is None:
            self._x = self._dx = None
            self._t = None
            return
        self._x = np.array(value, dtype=np.float64)
        self._dx = np.zeros_like(self._x)
        self._t = None if t is None else float(t)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter sample ``x`` taken at ``t`` seconds; returns the filtered value (a new array).

        The first sample passes unchanged. A timestamp that does not advance (duplicate frame)
        is treated as a 1 ms step. Raises ValueError when the shape changes between calls.
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            self._t = float(t)
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"OneEuroFilter: shape changed from {self._x.shape} to {x.shape}")
        dt = 1e-3 if self._t is None else max(float(t) - self._t, 1e-3)
        self._t = float(t)
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        return self._x.copy()
