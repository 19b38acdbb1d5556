"""Benchmark: evaluate every channel of a 10-minute take at every frame.

15,000 frames at 25 fps, a key every 5 frames on all 90 channels (270,000 keys), mixed
interpolation (75% auto-clamped bezier, 15% linear, 10% constant; 2% of keys get FREE handles,
which need the per-sample Newton solve). Target: Take.evaluate over all frames < 50 ms.
Baseline: np.interp of the same keys (linear only, one call per channel) in the same process.

    .venv/bin/python benchmarks/document_eval.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from models.motion_space import CHANNELS
from studio.document import Curve, HandleMode, Interpolation, Take


def build_take(n_frames: int, step: int, seed: int = 0, free_fraction: float = 0.02) -> Take:
    rng = np.random.default_rng(seed)
    frames = np.arange(0, n_frames, step)
    k = len(frames)
    curves = {}
    for ch in CHANNELS:
        values = np.cumsum(rng.normal(size=k)) * 0.1
        interp = rng.choice(
            [Interpolation.BEZIER, Interpolation.LINEAR, Interpolation.CONSTANT],
            size=k,
            p=[0.75, 0.15, 0.10],
        )
        mode = np.full(k, HandleMode.AUTO_CLAMPED)
        free = rng.random(k) < free_fraction
        mode[free] = HandleMode.FREE
        c = Curve(frames, values, interp, mode)
        # FREE keys keep their auto handles unless moved: move them off 1/3 so the segments are
        # non-uniform (x(t) not linear) and exercise the Newton solve.
        left, right = c.left.copy(), c.right.copy()
        right[free, 0] *= rng.uniform(0.2, 2.5, free.sum())
        right[free, 1] += rng.normal(size=free.sum()) * 0.05
        left[free, 0] *= rng.uniform(0.2, 2.5, free.sum())
        curves[ch] = Curve(frames, values, interp, mode, left, right)
    return Take.new("bench", curves)


def median_ms(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--frames", type=int, default=15_000)
    ap.add_argument("--step", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    take = build_take(args.frames, args.step)
    build_ms = (time.perf_counter() - t0) * 1e3
    x = np.arange(args.frames)
    t0 = time.perf_counter()
    take.evaluate(x)  # first call packs the segment tables (cached on the take)
    cold_ms = (time.perf_counter() - t0) * 1e3

    warm, warm_min = median_ms(lambda: take.evaluate(x), args.runs)
    uniform = Take.new(
        "uniform", {ch: c.with_handle_mode(None, 0) for ch, c in take.curves.items()}
    )
    uniform.evaluate(x)
    uni, uni_min = median_ms(lambda: uniform.evaluate(x), args.runs)
    xf = x + 0.37
    flt, _ = median_ms(lambda: take.evaluate(xf), args.runs)
    one, _ = median_ms(lambda: take.evaluate_frame(7321), max(args.runs, 50))

    keys = [(c.frames.astype(np.float64), c.values) for c in take.curves.values()]
    xd = x.astype(np.float64)
    base, base_min = median_ms(lambda: [np.interp(xd, f, v) for f, v in keys], args.runs)

    n_keys = sum(len(c) for c in take.curves.values())
    print(
        f"take: {len(take.curves)} channels x {args.frames} frames, {n_keys} keys "
        f"(built in {build_ms:.0f} ms; first evaluate incl. packing {cold_ms:.1f} ms)"
    )
    print(
        f"Take.evaluate all frames        median {warm:7.2f} ms  (min {warm_min:.2f})  "
        f"target < 50 ms: {'OK' if warm < 50 else 'MISSED'}"
    )
    print(f"  same, all handles auto        median {uni:7.2f} ms  (min {uni_min:.2f})")
    print(f"  fractional frames (searched)  median {flt:7.2f} ms")
    print(f"  evaluate_frame (one frame)    median {one * 1e3:7.1f} us")
    print(f"baseline np.interp x{len(keys)}       median {base:7.2f} ms  (min {base_min:.2f})")
    print(f"ratio Take.evaluate / np.interp: {warm / base:.2f}x")


if __name__ == "__main__":
    main()
