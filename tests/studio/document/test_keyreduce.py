"""studio.document.keyreduce: the vectorised Ramer-Douglas-Peucker keeps exactly the keys of the
textbook recursion, stays within tolerance, and its cost grows about linearly with the frames."""

from __future__ import annotations

import time

import numpy as np
import pytest

from studio.document.keyreduce import CHUNK, reduce_keys


def _recursive_rdp(values: np.ndarray, tolerance: float) -> np.ndarray:
    """The reference: recursive RDP, one segment at a time."""
    n = values.size
    if n <= 2:
        return np.arange(n)
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
            stack += [(a, m), (m, b)]
    return np.flatnonzero(keep)


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 25.0
    return 0.03 * np.abs(np.sin(2 * np.pi * 4 * t)) * rng.uniform(0.3, 1, n // 10 + 1).repeat(10)[
        :n
    ] + 0.002 * np.sin(2 * np.pi * 0.3 * t)


@pytest.mark.parametrize(
    "values",
    [
        np.zeros(7),
        np.arange(5.0),
        np.array([0.0, 1.0, 0.0, 1.0, 0.0]),
        np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0]),  # ties: the first maximum wins
        np.repeat([0.0, 1.0, 0.0, 2.0], 13),
        np.cumsum(np.random.default_rng(3).normal(size=2000)) * 1e-3,
        _speechlike(3000),
    ],
)
def test_same_keys_as_the_recursive_version(values):
    for tol in (0.0, 5e-4, 0.01, 0.5):
        got = reduce_keys(values, tol)
        np.testing.assert_array_equal(got, _recursive_rdp(values, tol))
        interp = np.interp(np.arange(values.size), got, values[got])
        assert np.abs(interp - values).max() <= tol + 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_long_signals_are_reduced_in_chunks_within_tolerance(seed):
    values = np.cumsum(np.random.default_rng(seed).normal(size=3 * CHUNK + 17)) * 1e-3
    got = reduce_keys(values, 5e-4)
    assert {0, CHUNK, 2 * CHUNK, 3 * CHUNK, values.size - 1} <= set(got.tolist())
    interp = np.interp(np.arange(values.size), got, values[got])
    assert np.abs(interp - values).max() <= 5e-4 + 1e-12
    # Each chunk is exactly RDP on that chunk.
    first = got[got <= CHUNK]
    np.testing.assert_array_equal(first, _recursive_rdp(values[: CHUNK + 1], 5e-4))


def test_small_inputs_and_errors():
    assert reduce_keys(np.array([]), 0.1).tolist() == []
    assert reduce_keys(np.array([1.0]), 0.1).tolist() == [0]
    assert reduce_keys(np.array([1.0, 2.0]), 0.1).tolist() == [0, 1]
    with pytest.raises(ValueError, match="NaN"):
        reduce_keys(np.array([0.0, np.nan, 1.0]), 0.1)
    with pytest.raises(ValueError, match=r"\[F\]"):
        reduce_keys(np.zeros((3, 2)), 0.1)


def _best_time(values: np.ndarray, tol: float, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        reduce_keys(values, tol)
        best = min(best, time.perf_counter() - t0)
    return best


def test_cost_grows_about_linearly():
    """10x the frames of speech-like motion (a key at almost every frame) costs < 15x the time:
    an hour of audio must not cost more per minute than a minute does."""
    small, large = _speechlike(9_000, seed=1), _speechlike(90_000, seed=1)
    t_small = _best_time(small, 5e-4)
    t_large = _best_time(large, 5e-4)
    assert t_large < 15 * t_small + 0.05, (t_small, t_large)


def test_ten_minutes_of_noisy_motion_become_keys_in_seconds():
    """take_from_dense on 10 min (15,000 frames) of a random model's motion in all 90 channels
    (a key at almost every frame): ~3 s on a loaded 2-core box, was ~36 s before the vectorised
    reduction (an hour: ~10 s, was out of reach)."""
    from models.motion_space import CHANNEL_DEFAULTS, CHANNELS
    from studio.project_ops import take_from_dense

    rng = np.random.default_rng(0)
    n = 15_000
    walk = np.cumsum(rng.normal(size=(n, len(CHANNELS))), axis=0) * 1e-3
    dense = CHANNEL_DEFAULTS + walk + rng.normal(size=(n, len(CHANNELS))) * 2e-3
    t0 = time.perf_counter()
    take = take_from_dense(dense, "noise", "test")
    elapsed = time.perf_counter() - t0
    assert len(take.curves) == len(CHANNELS)
    assert elapsed < 20.0, elapsed
