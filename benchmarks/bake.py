"""MPI baking benchmark: one 24-plane 512x512 MPI frame of an animated Gaussian head on the CPU.

    .venv/bin/python -m benchmarks.bake            # ~1 min on 2 cores
    .venv/bin/python -m benchmarks.bake --quick

Scene: the shipped default head (~50k Gaussians), driven by a different frame of motion each
iteration (yaw and jaw change, as in export), baked from a frontal camera at 0.6 m with
``renderers.bake.MPIBaker`` (GL on llvmpipe without a GPU). Reported: medians over the frames
of the whole bake (to a float32 MPI) and of its stages (split into plane pieces, draw, GPU
finish + readback, uint8 -> float32), for soft (default) and hard plane assignment.

The machine is shared and noisy, so every frame also times, interleaved, a plain GL render of
the same deformed cloud at the same size (``renderers.render``): the ratio bake / render is the
comparable number across machines.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    from models.heads import load_builtin_head
    from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
    from renderers.bake import MPIBaker
    from renderers.camera import Camera
    from renderers.render import render
    from studio.heads import arrays_to_cloud

    head = load_builtin_head("default")
    cam = Camera.look_at((0, 0, 0.6), (0, 0, 0), fov_y_deg=30.0, width=args.size,
                         height=args.size)  # fmt: skip
    frames = 5 if args.quick else 15
    baker = MPIBaker()
    print(f"default head: {len(head)} Gaussians, {args.size}x{args.size}, 24 planes")
    for softness in (1.0, 0.0):
        total, base, stages = [], [], {}
        for i in range(frames + 1):
            v = CHANNEL_DEFAULTS.copy()
            v[CHANNEL_INDEX["yaw"]] = 10.0 * np.sin(i)
            v[CHANNEL_INDEX["exp_19_y"]] = 0.03 * (1 + np.cos(i))
            cloud = arrays_to_cloud(head.deform(v))
            t0 = time.perf_counter()
            render(cloud, cam, backend="gl")
            t1 = time.perf_counter()
            baker.bake(cloud, cam, softness=softness)
            t2 = time.perf_counter()
            if i == 0:
                continue  # warm-up: shader compilation, buffer growth
            base.append(t1 - t0)
            total.append(t2 - t1)
            for k, val in baker.timings.items():
                stages.setdefault(k, []).append(val)
        med = {k: 1000 * float(np.median(v)) for k, v in stages.items()}
        parts = ", ".join(f"{k} {v:.0f}" for k, v in med.items())
        bake_ms, base_ms = 1000 * np.median(total), 1000 * np.median(base)
        print(
            f"softness {softness:.0f}: bake {bake_ms:.0f} ms ({parts}); plain render "
            f"{base_ms:.0f} ms; ratio {bake_ms / base_ms:.2f}"
        )


if __name__ == "__main__":
    main()
