"""Face runtime benchmark: per-frame time of detection, mesh, irises and tracking at 640x480.

    .venv/bin/python -m benchmarks.face_tracking            # 60 frames per row (~10 s)
    .venv/bin/python -m benchmarks.face_tracking --quick    # 20 frames per row

Frames are drawn faces (models.face.testface) drifting and rolling slightly, so tracking has to
follow. Rows: the detector alone (letterbox + inference + decode + NMS), the mesh alone (crop +
inference + projection), the mesh with irises, ``track`` (steady state: mesh + irises from
the previous frame's ROI, no detection; with the re-crop on fast moves, and without it for
comparison, with how many frames re-cropped) and the full ``FaceTracker.process`` (track + pose
fit + motion channels + filter). Medians and 90th percentiles in ms, for 1 and 2 TFLite threads.
Needs the models (python -m models.face.fetch_models).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from models.face.landmarks import FaceLandmarker
from models.face.testface import draw_face
from models.face.tracker import FaceTracker


def _time(fn, frames) -> np.ndarray:
    out = []
    for f in frames:
        t = time.perf_counter()
        fn(f)
        out.append(time.perf_counter() - t)
    return np.array(out) * 1000.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n = 20 if args.quick else 60
    frames = [
        draw_face(640, 480, centre=(300 + i % 20, 240 + i % 7), roll=(i % 10) - 5.0, seed=i).image
        for i in range(n)
    ]
    print(f"face runtime, 640x480, {n} frames, {os.cpu_count()} CPUs; ms median / p90 (min)")
    for threads in (1, 2):
        fl = FaceLandmarker(num_threads=threads)
        det = fl.detect(frames[0])[0]
        roi = fl.roi_from_detection(det)
        fl.iris_enabled = False
        rows = {"detect": _time(fl.detect, frames)}
        rows["mesh"] = _time(lambda f, fl=fl, roi=roi: fl.landmarks(f, roi), frames)
        fl.iris_enabled = True
        rows["mesh + irises"] = _time(lambda f, fl=fl, roi=roi: fl.landmarks(f, roi), frames)
        recrop = fl.recrop
        recrops = {}
        for label, rc in (("track, no recrop", None), ("track (steady)", recrop)):
            fl.recrop = rc
            fl.reset()
            fl.track(frames[0])
            calls, crops = fl.detector_calls, fl.recrops
            rows[label] = _time(fl.track, frames)
            recrops[label] = fl.recrops - crops
        redetects = fl.detector_calls - calls
        for label, rc in (("tracker, no recrop", None), ("tracker.process", recrop)):
            fl.recrop = rc
            tr = FaceTracker(fl)
            tr.calibrate(frames[:1])
            crops = fl.recrops
            clock = iter(range(10**6))
            rows[label] = _time(lambda f, tr=tr, c=clock: tr.process(f, next(c) / 30), frames)
            recrops[label] = fl.recrops - crops
        fl.recrop = recrop
        for name, t in rows.items():
            med, p90, best = np.median(t), np.percentile(t, 90), t.min()
            extra = f"   re-cropped {recrops[name]}/{n}" if name in recrops else ""
            print(f"  threads={threads}  {name:<18} {med:6.2f} / {p90:6.2f}   (min {best:5.2f})"
                  f"{extra}")  # fmt: skip
        print(f"  threads={threads}  re-detections while tracking: {redetects}")


if __name__ == "__main__":
    main()
