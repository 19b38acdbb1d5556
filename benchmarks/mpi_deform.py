"""Benchmark: CPU time of ``RiggedMPIHead.deform`` for one frame of motion (the MPI rig).

    .venv/bin/python -m benchmarks.mpi_deform [--repeat 30] [--against OLD_MPI_HEAD_PY]
        [--profile] [--threads N]

Head: the shipped default Gaussian head baked into a rigged MPI the way the studio does
(``studio.head_import.bake_mpi_head``: 24 uint8 planes of 512x512 from the frontal camera at
0.6 m; GL, llvmpipe without a GPU, ~2 s). The baked head is cached in the temp folder
(``mpi_bench_default.thead``) keyed by the source head file's size and mtime.

Cases: rest (the identity), pose only (a camera move), single rig stages (jaw, blink, smile,
brows, gaze, pout), speech frames of the demo project's take (``resources/demo/demo.ths``: jaw,
lips, lids, brows, pose) one by one, cycled, and cycled with a gaze, and every channel the rig
reads at once. A cycled case times its frames in turn (the median mixes them).
Per case: median and minimum of ``--repeat`` timed calls after a warm-up, and the median as a
ratio to a baseline measured in the same process just before (``planes.copy()``, the 25 MB copy
a deformed frame used to make): on a shared machine both drift together, so the ratio is the
number to compare between runs.

``--against`` times another version of ``models/heads/mpi_head.py`` (e.g.
``git show HEAD:models/heads/mpi_head.py > /tmp/mpi_head_old.py``) on the same head data in the
same process, in alternating blocks of 10 calls, prints both medians and their ratio, and the
difference of the pictures: PSNR (dB, colour in [0, 1]) and max abs difference of the two
versions' planes composited front to back over black, per case.

``--profile`` prints a cProfile of the speech frames. ``--threads`` calls cv2.setNumThreads.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.deform import _timings_ms
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX

SPEECH_FRAMES = (20, 50, 80, 110, 140)  # demo take frames (jaw open by different amounts)


def baked_head(cache_dir: str | None = None):
    """The default head baked to a rigged MPI (studio's bake_mpi_head), cached on disk."""
    from models.heads import load_head, save_head
    from resources import RESOURCES_DIR

    src = RESOURCES_DIR / "heads" / "default.thead"
    stamp = f"{src.stat().st_size}-{int(src.stat().st_mtime)}" if src.exists() else "procedural"
    cache = Path(cache_dir or tempfile.gettempdir()) / f"mpi_bench_default-{stamp}.thead"
    if cache.exists():
        try:
            return load_head(cache)
        except Exception as exc:  # a damaged cache is rebuilt
            print(f"rebuilding the cached head ({exc})")
    from models.heads import load_builtin_head
    from studio.head_import import bake_mpi_head

    t0 = time.perf_counter()
    head = bake_mpi_head(load_builtin_head("default"))
    print(f"baked the default head in {time.perf_counter() - t0:.1f} s -> {cache}")
    save_head(head, cache)
    return head


def _frame(base: np.ndarray | None = None, **values: float) -> np.ndarray:
    v = (CHANNEL_DEFAULTS if base is None else base).copy()
    for k, x in values.items():
        v[CHANNEL_INDEX[k]] = x
    return v


def speech_frames() -> list[np.ndarray]:
    """Frames of the demo project's active take (what playback of the demo deforms)."""
    from studio.demo import DEMO_PROJECT
    from studio.document.fileformat import load_project

    values = load_project(DEMO_PROJECT).evaluate(np.asarray(SPEECH_FRAMES))
    return [np.array(v) for v in values]


def cases() -> dict[str, list[np.ndarray]]:
    """Case name -> the frames it cycles through."""
    rng = np.random.default_rng(0)
    speech = speech_frames()
    gaze = {"eye_ball_0": 0.12, "eye_ball_1": -0.05, "eye_ball_3": 0.12, "eye_ball_4": -0.05}
    everything = CHANNEL_DEFAULTS.copy()
    e0 = CHANNEL_INDEX["exp_0_x"]
    everything[e0 : e0 + 63] = rng.normal(0, 0.01, 63)
    everything = _frame(
        everything, exp_19_y=0.05, eye_open_r=0.4, pitch=5.0, yaw=-12.0, roll=2.0, tx=0.01,
        scale=1.02, **gaze,
    )  # fmt: skip
    smile = {"exp_14_x": -0.015, "exp_20_x": 0.015, "exp_14_y": -0.01, "exp_20_y": -0.01,
             "exp_17_y": -0.004, "exp_13_y": -0.004, "exp_16_y": -0.004}  # fmt: skip
    return {
        "rest (identity)": [CHANNEL_DEFAULTS.copy()],
        "pose only": [_frame(pitch=5.0, yaw=-12.0, roll=2.0, tx=0.01)],
        "jaw": [_frame(exp_19_y=0.06)],
        "blink": [_frame(eye_open_r=0.0, eye_open_l=0.0)],
        "smile": [_frame(**smile)],
        "brows": [_frame(exp_1_y=-0.01, exp_2_y=-0.01)],
        "gaze": [_frame(**gaze)],
        "pout": [_frame(**{f"exp_{k}_z": -0.03 for k in (6, 12, 14, 17, 19, 20)})],
        **{f"speech f{i}": [v] for i, v in zip(SPEECH_FRAMES, speech, strict=True)},
        "speech (all 5)": speech,
        "speech + gaze": [_frame(v, **gaze) for v in speech],
        "every channel": [everything],
    }


def _load_other(path: str):
    spec = importlib.util.spec_from_file_location("_mpi_head_against", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _other_head(module, head):
    """The same head data rigged by the other version's RiggedMPIHead."""
    rig = module.MPIRigParams.from_dict(head.rig.to_dict())
    fields = {f: getattr(head, f) for f in head.__dataclass_fields__ if f != "rig"}
    return module.RiggedMPIHead(**fields, rig=rig)


def _cycle(head, frames: list[np.ndarray]):
    it = iter(range(1 << 62))

    def call() -> None:
        head.deform(frames[next(it) % len(frames)])

    return call


def composite(rgba: np.ndarray) -> np.ndarray:
    """Planes [D, H, W, 4] (uint8 or float, plane 0 nearest) over black: [H, W, 3] float32."""
    scale = np.float32(1.0 / 255.0) if rgba.dtype == np.uint8 else np.float32(1.0)
    out = np.zeros((*rgba.shape[1:3], 3), np.float32)
    trans = np.ones((*rgba.shape[1:3], 1), np.float32)
    for p in rgba:
        p = p.astype(np.float32) * scale
        out += trans * p[..., 3:] * p[..., :3]
        trans *= 1.0 - p[..., 3:]
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def _compare(head, other, repeat: int) -> None:
    """Per case: medians of this version and the other in alternating blocks of 10 calls, and
    the pictures' difference."""
    for case, frames in cases().items():
        times: dict[int, list[float]] = {0: [], 1: []}
        calls = (_cycle(head, frames), _cycle(other, frames))
        for block in range(max(2, 2 * round(repeat / 20))):
            for which in (0, 1) if block % 2 == 0 else (1, 0):
                calls[which]()  # warm-up after the other version ran
                for _ in range(10):
                    t0 = time.perf_counter()
                    calls[which]()
                    times[which].append(time.perf_counter() - t0)
        ms = [1e3 * float(np.median(times[i])) for i in (0, 1)]
        worst, maxdiff, same = float("inf"), 0.0, True
        for v in frames:
            a, b = head.deform(v), other.deform(v)
            same &= bool(np.array_equal(a.rgba, b.rgba))
            same &= bool(np.array_equal(a.world_to_camera, b.world_to_camera))
            ca, cb = composite(a.rgba), composite(b.rgba)
            worst = min(worst, psnr(ca, cb))
            maxdiff = max(maxdiff, float(np.abs(ca - cb).max()))
        pic = "planes identical" if same else f"PSNR {worst:5.1f} dB, max {maxdiff:.3f}"
        print(
            f"  {case:16s} this {ms[0]:7.2f} ms  other {ms[1]:7.2f} ms  "
            f"(this/other {ms[0] / max(ms[1], 1e-6):5.2f})  {pic}"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--against", help="another version of models/heads/mpi_head.py")
    ap.add_argument("--profile", action="store_true", help="cProfile the speech frames")
    ap.add_argument("--threads", type=int, help="cv2.setNumThreads(N) first")
    ap.add_argument(
        "--present",
        action="store_true",
        help="time a speech frame's whole path to the screen: deform, renderers.MPI, GL upload, "
        "draw (what the viewport and export do per frame)",
    )
    args = ap.parse_args(argv)
    import cv2

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    head = baked_head()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"cpus {os.cpu_count()}, load average {load:.1f}, numpy {np.__version__}, cv2 "
        f"{cv2.__version__} ({cv2.getNumThreads()} threads); planes {head.planes.shape} "
        f"{head.planes.dtype}"
    )
    head.deform(cases()["every channel"][0])  # first use: padded planes, eye geometry
    if args.profile:
        frames = cases()["speech + gaze"]  # cycled
        prof = cProfile.Profile()
        prof.enable()
        for i in range(args.repeat):
            head.deform(frames[i % len(frames)])
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return
    if args.present:
        _present(head, args.repeat)
        return
    if args.against:
        other = _other_head(_load_other(args.against), head)
        other.deform(cases()["every channel"][0])
        print(f"this: models/heads/mpi_head.py, other: {args.against}")
        _compare(head, other, args.repeat)
        return
    planes = head.planes
    base, base_min = _timings_ms(planes.copy, args.repeat)
    print(f"baseline planes.copy() median {base:.2f} ms (min {base_min:.2f})")
    for case, frames in cases().items():
        ms, ms_min = _timings_ms(_cycle(head, frames), args.repeat)
        print(
            f"  {case:16s} median {ms:7.2f} ms  min {ms_min:6.2f} ms  "
            f"({ms / max(base, 1e-6):5.2f}x baseline)"
        )


def _present(head, repeat: int) -> None:
    """Per stage of a speech frame on its way to the screen, medians over ``repeat`` frames
    cycling the demo's speech frames (each frame differs, so every upload is real)."""
    from renderers.gl_context import create_offscreen_context
    from renderers.gl_mpi import MPIRenderer
    from studio.head_import import mpi_arrays_to_mpi

    renderer = MPIRenderer(create_offscreen_context())
    frames = cases()["speech + gaze"]
    stages: dict[str, list[float]] = {"deform": [], "to MPI": [], "upload": [], "draw": []}
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        arrays = head.deform(frames[i % len(frames)])
        t1 = time.perf_counter()
        mpi = mpi_arrays_to_mpi(arrays)
        t2 = time.perf_counter()
        renderer.upload(mpi)
        t3 = time.perf_counter()
        renderer.render(mpi.camera)  # 512x512 with readback
        t4 = time.perf_counter()
        if i:  # the first frame creates the texture
            for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                stages[name].append(1e3 * dt)
    total = sum(float(np.median(v)) for v in stages.values())
    parts = "  ".join(f"{k} {np.median(v):.1f}" for k, v in stages.items())
    print(f"speech frame to the screen, ms (medians): {parts}  total {total:.1f}")
    renderer.release()


if __name__ == "__main__":
    main()
