"""Portrait import benchmark: seconds from an image to a rigged head (target <= 5 s).

    .venv/bin/python -m benchmarks.portrait_import [--quick]

Images: a drawn test face (models.face.testface, 1280x960) and the default head rendered from
the front (renderers.render, 768x768). One FaceLandmarker is created up front (as the studio
keeps one) and reported separately. Medians over the runs, with the stage split of
``portrait_head`` (face, matte, depth, gaussians).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per image")
    args = parser.parse_args()

    from models.face import FaceLandmarker
    from models.face.testface import draw_face
    from models.heads import load_builtin_head
    from models.heads.portrait import portrait_head
    from renderers.camera import Camera
    from renderers.render import render
    from studio.heads import rest_cloud

    t0 = time.perf_counter()
    lmk = FaceLandmarker()
    print(f"FaceLandmarker created in {time.perf_counter() - t0:.2f} s")
    cam = Camera.look_at((0, 0, 0.55), (0, -0.03, 0), fov_y_deg=30.0, width=768, height=768)
    rendered = render(rest_cloud(load_builtin_head("default")), cam, background=(0.8, 0.8, 0.8))
    images = {
        "drawn 1280x960": draw_face(1280, 960).image,
        "default head 768x768": (np.clip(rendered[0, ..., :3], 0, 1) * 255).astype(np.uint8),
    }
    runs = 1 if args.quick else 3
    for label, img in images.items():
        totals, stages = [], {}
        for _ in range(runs):
            t = time.perf_counter()
            res = portrait_head(img, landmarker=lmk)
            totals.append(time.perf_counter() - t)
            for k, v in res.timings.items():
                stages.setdefault(k, []).append(v)
        split = ", ".join(f"{k} {np.median(v):.2f}" for k, v in stages.items() if k != "total")
        print(f"{label}: {np.median(totals):.2f} s ({split}); {len(res.head)} Gaussians")


if __name__ == "__main__":
    main()
