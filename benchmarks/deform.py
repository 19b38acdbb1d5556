"""Benchmark: CPU time to deform the default heads for one frame of motion.

    .venv/bin/python -m benchmarks.deform [--repeat 25] [--heads default default_high]

Per head and case it prints the median and the minimum of ``--repeat`` timed calls (after a
warm-up), and the median as a ratio to a baseline measured in the same process just before: a
fixed elementwise pass over the head's means (``means * a + b`` into a buffer, float32, no BLAS, so
no thread start-up noise). On a busy shared machine both numbers drift together, so the ratio is
the one to compare between runs and machines. Target: <= 10 ms for the ~200k head with every rig
channel active ("everything").
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from models.heads import load_builtin_head
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX


def _timings_ms(fn, repeat: int) -> tuple[float, float]:
    """(median, min) wall time in ms of ``repeat`` calls after one warm-up call."""
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


def cases() -> dict[str, np.ndarray]:
    """The benchmarked frames: rest, single rigs, and every rig channel active at once."""
    rng = np.random.default_rng(0)
    everything = CHANNEL_DEFAULTS.copy()
    e0 = CHANNEL_INDEX["exp_0_x"]
    everything[e0 : e0 + 63] = rng.normal(0, 0.01, 63)
    for name, value in {
        "exp_19_y": 0.05, "eye_open_r": 0.4, "eye_ball_0": 0.1, "eye_ball_4": -0.05,
        "pitch": 5.0, "yaw": -12.0, "roll": 2.0, "tx": 0.01, "scale": 1.02,
    }.items():  # fmt: skip
        everything[CHANNEL_INDEX[name]] = value
    return {
        "rest (identity)": CHANNEL_DEFAULTS.copy(),
        "expression only": _frame(exp_3_x=0.01, exp_6_y=0.01, exp_14_x=-0.01),
        "jaw only": _frame(exp_19_y=0.05),
        "blink only": _frame(eye_open_r=0.0, eye_open_l=0.0),
        "pose only": _frame(pitch=5.0, yaw=-12.0, roll=2.0, tx=0.01),
        "everything": everything,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--heads", nargs="+", default=["default", "default_high"])
    args = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpus {os.cpu_count()}, load average {load:.1f}, numpy {np.__version__}")
    for name in args.heads:
        head = load_builtin_head(name)
        pts = np.ascontiguousarray(head.means)
        buf = np.empty_like(pts)
        a, b = np.float32(1.0001), np.float32(0.5)

        def baseline(pts=pts, buf=buf, a=a, b=b) -> None:
            np.multiply(pts, a, out=buf)
            buf += b

        base, base_min = _timings_ms(baseline, args.repeat)
        print(
            f"{name}: N={len(head)}  baseline (means*a+b) median {base:.3f} ms (min {base_min:.3f})"
        )
        for case, v in cases().items():
            ms, ms_min = _timings_ms(lambda head=head, v=v: head.deform(v), args.repeat)
            print(
                f"  {case:16s} median {ms:7.2f} ms  min {ms_min:6.2f} ms  "
                f"({ms / max(base, 1e-6):6.1f}x baseline)"
            )


if __name__ == "__main__":
    main()
