"""Save/load time of a 10-minute project: 15,000 frames at 25 fps, a key every 5 frames on all
90 motion channels (270,000 keys), plus a 10-minute 16 kHz mono WAV embedded.

    .venv/bin/python benchmarks/project_io.py [--runs 7] [--dir /tmp]

Prints the median (and min/max) over the runs of save_project (and of the same save without
fsync, to show the disk's share) and load_project, the file size, and checks the loaded project
equals the saved one. Target: < 1 s each.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from models.motion_space import CHANNELS
from studio.document.curve import Curve, HandleMode, Interpolation
from studio.document.fileformat import _save, load_project, save_project
from studio.document.project import AudioClip, Project
from studio.document.take import Take
from studio.document.timebase import FrameRate

FRAMES = 15_000
KEY_EVERY = 5


def build_project(seed: int = 0) -> Project:
    """The benchmark project: smooth random motion, bezier keys with auto-clamped handles."""
    rng = np.random.default_rng(seed)
    frames = np.arange(0, FRAMES, KEY_EVERY, dtype=np.int64)  # [3000]
    t = frames / 25.0
    curves = {}
    for ch in CHANNELS:
        freq, amp = rng.uniform(0.05, 2.0), rng.uniform(0.01, 10.0)
        values = amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6)) + rng.normal(
            0, 1e-3, t.size
        )
        curves[ch] = Curve(
            frames, values, Interpolation.BEZIER, HandleMode.AUTO_CLAMPED, channel=ch
        )
    take = Take("bench", "Generated", curves, "generated", {"model": "ditto", "seed": seed})
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        samples = rng.normal(0, 3000, 16000 * FRAMES // 25).clip(-32768, 32767).astype("<i2")
        w.writeframes(samples.tobytes())
    return Project(
        frame_rate=FrameRate(25, 1),
        duration=FRAMES,
        work_range=(0, FRAMES),
        takes=[take],
        active_take_id=take.id,
        audio_clips=[AudioClip("voice", "Voice", "voice.wav")],
        assets={"voice.wav": buf.getvalue()},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=None, help="folder for the file (default: temp)")
    ap.add_argument("--no-audio", action="store_true", help="leave the 19 MB WAV out")
    args = ap.parse_args()

    t0 = time.perf_counter()
    project = build_project()
    if args.no_audio:
        project.audio_clips.clear()
        project.assets.clear()
    n_keys = sum(len(c) for c in project.active_take.curves.values())
    print(f"built project: {n_keys} keys on {len(project.active_take.curves)} channels, "
          f"{sum(map(len, project.assets.values())) / 1e6:.1f} MB assets, "
          f"{time.perf_counter() - t0:.2f} s")  # fmt: skip

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = Path(d) / "bench.ths"
        saves, loads, no_sync = [], [], []
        loaded = None
        for _ in range(args.runs):
            t0 = time.perf_counter()
            save_project(project, path)
            saves.append(time.perf_counter() - t0)
            # The same save without the two fsyncs: how much of it is waiting for the disk.
            t0 = time.perf_counter()
            _save(project, Path(d) / "nosync.ths", backups=1, fsync=False)
            no_sync.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loaded = load_project(path)
            loads.append(time.perf_counter() - t0)
        size = path.stat().st_size
    assert loaded == project, "round trip changed the project"
    rows = (("save_project", saves), ("  same, no fsync", no_sync), ("load_project", loads))
    for name, times in rows:
        med, lo, hi = (statistics.median(times) * 1e3, min(times) * 1e3, max(times) * 1e3)
        print(f"{name}: median {med:7.1f} ms  (min {lo:.1f}, max {hi:.1f}, {len(times)} runs)")
    print(f"file size: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
