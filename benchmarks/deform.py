"""Benchmark: CPU time to deform the default heads for one frame of motion.

    python benchmarks/deform.py [--repeat 15]

Prints the median of several runs per case, and a ratio against a baseline measured in the same
process (a plain float32 (N, 3) @ (3, 3) matmul over the same N), so numbers from busy shared
machines stay comparable. Target: <= 10 ms for the ~200k head with every rig channel active.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from models.heads import load_builtin_head
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX


def _timings_ms(fn, repeat: int) -> tuple[float, float]:
    """(median, min) wall time in ms; the min is the better estimate on a busy shared machine."""
    fn()  # warm-up (page-faults the arrays)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)), 1e3 * float(np.min(times))


def _frame(**values: float) -> np.ndarray:
    v = CHANNEL_DEFAULTS.copy()
    for k, x in values.items():
        v[CHANNEL_INDEX[k]] = x
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=25)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    full = CHANNEL_DEFAULTS.copy()
    e0 = CHANNEL_INDEX["exp_0_x"]
    full[e0 : e0 + 63] = rng.normal(0, 0.01, 63)
    full[CHANNEL_INDEX["exp_19_y"]] = 0.05
    full[CHANNEL_INDEX["eye_open_r"]] = 0.4
    full[CHANNEL_INDEX["eye_ball_0"]] = 0.1
    full[CHANNEL_INDEX["eye_ball_4"]] = -0.05
    cases = {
        "rest (identity)": CHANNEL_DEFAULTS,
        "pose only": _frame(pitch=5.0, yaw=-12.0, roll=2.0, tx=0.01),
        "jaw only": _frame(exp_19_y=0.05),
    }
    everything = full.copy()
    everything[CHANNEL_INDEX["pitch"]] = 5.0
    everything[CHANNEL_INDEX["yaw"]] = -12.0
    everything[CHANNEL_INDEX["roll"]] = 2.0
    everything[CHANNEL_INDEX["scale"]] = 1.02
    cases["everything"] = everything
    for name in ("default", "default_high"):
        head = load_builtin_head(name)
        n = len(head)
        pts = np.ascontiguousarray(head.means)
        m = np.eye(3, dtype=np.float32)
        base, base_min = _timings_ms(lambda pts=pts, m=m: pts @ m, args.repeat)
        cp, cp_min = _timings_ms(lambda pts=pts: pts.copy(), args.repeat)
        print(
            f"{name}: N={n}  baselines: (N,3)@(3,3) float32 median {base:.2f} ms "
            f"(min {base_min:.2f}); copy of the means median {cp:.2f} ms (min {cp_min:.2f})"
        )
        for case, v in cases.items():
            ms, ms_min = _timings_ms(lambda head=head, v=v: head.deform(v), args.repeat)
            print(
                f"  {case:16s} median {ms:7.2f} ms  min {ms_min:6.2f} ms  "
                f"({ms / base:5.1f}x matmul, {ms_min / max(cp_min, 1e-6):5.1f}x copy, by min)"
            )


if __name__ == "__main__":
    main()
