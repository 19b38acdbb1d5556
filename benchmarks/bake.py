"""MPI baking benchmark: one 24-plane 512x512 MPI frame of an animated Gaussian head on the CPU.

    .venv/bin/python -m benchmarks.bake            # ~1 min on 2 cores
    .venv/bin/python -m benchmarks.bake --quick
    .venv/bin/python -m benchmarks.bake --no-gl    # CPU baker only (no EGL needed)

Scene: the shipped default head (~50k Gaussians), driven by a different frame of motion each
iteration (yaw and jaw change, as in export), baked from a frontal camera at 0.6 m into uint8
straight planes (what export and the rigged MPI heads take) by the two bakers of
``renderers.bake``, interleaved in one process (their order alternates every frame):

- cpu: ``CPUMPIBaker``, the native CPU splat rasteriser (``MPIBaker``'s choice on llvmpipe);
- gl: ``MPIBaker(renderer="gl")``, the GL plane atlas (llvmpipe without a GPU).

Reported, for soft (default) and hard plane assignment: medians over the frames of each whole
bake and of the CPU baker's stages (split: assignment + upload, draw: the kernel, with its own
stages below, read: the unpremultiply, 0 since the kernel writes straight colour), the median
per-frame ratio cpu / gl (the comparable number on a shared, noisy machine), the load average,
and the quality at the baking camera: PSNR of each MPI's render against the Gaussian render
(``renderers.render``, GL), and of the CPU planes against the GL planes (premultiplied).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return 10.0 * np.log10(1.0 / max(mse, 1e-12))


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--no-gl", action="store_true", help="time the CPU baker alone")
    args = parser.parse_args()

    from models.heads import load_builtin_head
    from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
    from renderers.bake import CPUMPIBaker, MPIBaker
    from renderers.camera import Camera
    from studio.heads import arrays_to_cloud

    head = load_builtin_head("default")
    cam = Camera.look_at((0, 0, 0.6), (0, 0, 0), fov_y_deg=30.0, width=args.size,
                         height=args.size)  # fmt: skip
    frames = 5 if args.quick else 15
    bakers: dict[str, object] = {"cpu": CPUMPIBaker()}
    if not args.no_gl:
        bakers["gl"] = MPIBaker(renderer="gl")
    print(
        f"default head: {len(head)} Gaussians, {args.size}x{args.size}, 24 planes, "
        f"{bakers['cpu'].splats.threads} threads"
    )
    for softness in (1.0, 0.0):
        times: dict[str, list[float]] = {k: [] for k in bakers}
        stages: dict[str, list[float]] = {}
        kernel_stages: dict[str, list[float]] = {}  # inside draw (the native kernel's own)
        loads = []
        for i in range(frames + 1):
            v = CHANNEL_DEFAULTS.copy()
            v[CHANNEL_INDEX["yaw"]] = 10.0 * np.sin(i)
            v[CHANNEL_INDEX["exp_19_y"]] = 0.03 * (1 + np.cos(i))
            cloud = arrays_to_cloud(head.deform(v))
            mpis = {}
            kernel = dict(getattr(bakers["cpu"].splats, "stage_timings", {}))
            for name in list(bakers)[:: 1 if i % 2 else -1]:
                t0 = time.perf_counter()
                mpis[name] = bakers[name].bake(cloud, cam, softness=softness)
                if i:  # frame 0 warms up (shader compilation, buffer growth)
                    times[name].append(time.perf_counter() - t0)
            if i == 0:
                continue
            loads.append(os.getloadavg()[0])
            for k, val in bakers["cpu"].timings.items():
                stages.setdefault(k, []).append(val)
            for k, val in getattr(bakers["cpu"].splats, "stage_timings", {}).items():
                kernel_stages.setdefault(k, []).append(val - kernel[k])
        med = {k: 1000 * float(np.median(v)) for k, v in times.items()}
        parts = ", ".join(f"{k} {1000 * float(np.median(v)):.0f}" for k, v in stages.items())
        line = f"softness {softness:.0f}: cpu {med['cpu']:.0f} ms ({parts})"
        if "gl" in bakers:
            ratio = float(np.median(np.array(times["cpu"]) / np.array(times["gl"])))
            line += f"; gl {med['gl']:.0f} ms; ratio cpu/gl {ratio:.2f}"
        print(f"{line}; load {np.median(loads):.1f} ({_load()})")
        if kernel_stages:
            parts = ", ".join(
                f"{k} {1000 * float(np.median(v)):.0f}" for k, v in kernel_stages.items()
            )
            print(f"  kernel stages (ms): {parts}")
        print("  " + _quality(cloud, cam, mpis))


def _quality(cloud, cam, mpis: dict) -> str:
    """PSNR at the baking camera of each MPI against the Gaussian render (GL when EGL works,
    else the CPU splat renderer), and of the CPU planes against the GL planes."""
    from renderers.cpu_splats import CPUSplatRenderer
    from renderers.gl_context import egl_available
    from renderers.reference import render_mpi_reference

    if egl_available():
        from renderers.render import render

        ref = render(cloud, cam, backend="gl")[0]
        views = {k: render(m, cam, backend="gl")[0] for k, m in mpis.items()}
    else:
        r = CPUSplatRenderer()
        r.upload(cloud)
        ref = r.render(cam)[0]
        views = {
            k: np.asarray(render_mpi_reference(m, cam, (0.0, 0.0, 0.0))) for k, m in mpis.items()
        }
    out = [
        f"PSNR vs the Gaussian render: {k} {_psnr(v[..., :3], ref[..., :3]):.1f} dB"
        for k, v in views.items()
    ]
    if "gl" in mpis:
        planes = _psnr(mpis["cpu"].premultiplied(), mpis["gl"].premultiplied())
        out.append(f"planes cpu vs gl {planes:.1f} dB")
    return "; ".join(out)


if __name__ == "__main__":
    main()
