"""Live tracking benchmark: FaceTracker.process per frame at 640x480, and frame-in -> motion-out.

    .venv/bin/python -m benchmarks.tracking_live            # 60 frames per row (~5 s)
    .venv/bin/python -m benchmarks.tracking_live --quick    # 20 frames

Frames are drawn faces (models.face.testface) drifting, rolling and opening the mouth, so the
tracker follows them from the previous frame's ROI (the steady state of a live session).
Rows, medians / 90th percentiles in ms, for 1 and 2 TFLite threads:
  track      FaceLandmarker.track alone (mesh + irises)
  process    FaceTracker.process: track + pose fit + mapping + One-Euro filter
  latency    wall time from a frame being handed over to its motion frame coming back,
             including the RGB conversion a webcam frame needs (BGR -> RGB)
Target: process <= 10 ms on 2 cores. Needs the models (python -m models.face.fetch_models).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from models.face.landmarks import FaceLandmarker
from models.face.testface import draw_face
from models.face.tracker import FaceTracker


def main(argv: list[str] | None = None) -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n = 20 if args.quick else 60
    frames = [
        draw_face(640, 480, centre=(300 + i % 20, 240 + i % 7), roll=(i % 10) - 5.0,
                  mouth_open=(i % 8) / 8, seed=i).image
        for i in range(n)
    ]  # fmt: skip
    bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
    print(f"live tracking, 640x480, {n} frames, {os.cpu_count()} CPUs; ms median / p90")
    for threads in (1, 2):
        fl = FaceLandmarker(num_threads=threads)
        tr = FaceTracker(fl)
        tr.calibrate(frames[:3])
        fl.track(frames[0])
        rows: dict[str, list[float]] = {"track": [], "process": [], "latency": []}
        for f in frames:
            t = time.perf_counter()
            fl.track(f)
            rows["track"].append(time.perf_counter() - t)
        tr.reset()
        for i, f in enumerate(frames):
            t = time.perf_counter()
            tr.process(f, i / 30)
            rows["process"].append(time.perf_counter() - t)
        tr.reset()
        lost = 0
        for i, f in enumerate(bgr):
            t = time.perf_counter()
            rgb = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
            res = tr.process(rgb, i / 30)
            _ = res.values
            rows["latency"].append(time.perf_counter() - t)
            lost += not res.found
        for name, ts in rows.items():
            a = np.array(ts[1:]) * 1e3  # the first frame runs the detector
            print(
                f"  threads={threads}  {name:<8} {np.median(a):6.2f} / {np.percentile(a, 90):6.2f}"
            )
        print(f"  threads={threads}  frames without a face: {lost}")


if __name__ == "__main__":
    main()
