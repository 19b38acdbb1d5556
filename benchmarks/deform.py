"""Benchmark: CPU time to deform the default heads for one frame of motion.

    .venv/bin/python -m benchmarks.deform [--repeat 25] [--heads default default_high]
        [--against OLD_RIG_PY]

Per head and case it prints the median and the minimum of ``--repeat`` timed calls (after a
warm-up), and the median as a ratio to a baseline measured in the same process just before: a
fixed elementwise pass over the head's means (``means * a + b`` into a buffer, float32, no BLAS, so
no thread start-up noise). On a busy shared machine both numbers drift together, so the ratio is
the one to compare between runs and machines. Target: <= 10 ms for the ~200k head with every rig
channel active ("everything").

``--against`` times another version of ``models/heads/rig.py`` (a copy of the file, e.g. from
``git show HEAD:models/heads/rig.py``) on the same head data in the same process, in alternating
blocks of 10 calls, and prints both medians and their ratio: the comparison to trust on a
shared machine, whose speed drifts by tens of percent within minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
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


def _other_head(path: str, head):
    """The same head built by the rig module in the file at path (another version of it)."""
    spec = importlib.util.spec_from_file_location("_rig_against", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.RiggedGaussianHead(**{f: getattr(head, f) for f in head.__dataclass_fields__})


def _compare(head, other, repeat: int) -> None:
    """Per case: medians of this version and the other, in alternating blocks of 10 calls."""
    for case, v in cases().items():
        times: dict[int, list[float]] = {0: [], 1: []}
        for block in range(max(2, 2 * round(repeat / 20))):
            order = (0, 1) if block % 2 == 0 else (1, 0)
            for which in order:
                h = (head, other)[which]
                h.deform(v)  # warm-up after the other version ran
                for _ in range(10):
                    t0 = time.perf_counter()
                    h.deform(v)
                    times[which].append(time.perf_counter() - t0)
        ms = [1e3 * float(np.median(times[i])) for i in (0, 1)]
        print(
            f"  {case:16s} this {ms[0]:7.2f} ms  other {ms[1]:7.2f} ms  "
            f"(this/other {ms[0] / max(ms[1], 1e-6):5.2f})"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--heads", nargs="+", default=["default", "default_high"])
    ap.add_argument("--against", help="another version of models/heads/rig.py to compare with")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpus {os.cpu_count()}, load average {load:.1f}, numpy {np.__version__}")
    for name in args.heads:
        head = load_builtin_head(name)
        if args.against:
            head.prepare()
            other = _other_head(args.against, head)
            other.prepare()
            print(f"{name}: N={len(head)}, against {args.against}")
            _compare(head, other, args.repeat)
            continue
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
