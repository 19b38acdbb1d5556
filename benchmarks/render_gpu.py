"""GPU renderer benchmark and checks: issue 3's GPU targets in one command.

    python -m benchmarks.render_gpu                    # on a CUDA machine with NVIDIA EGL
    python -m benchmarks.render_gpu --json OUT.json    # also writes the rows as JSON
    python -m benchmarks.render_gpu --smoke            # tiny sizes: checks it runs anywhere

Targets (docs/PERFORMANCE.md): 200k Gaussians at 2x1024x1024 stereo >= 240 FPS; an MPI in
stereo >= 1000 FPS. Rows, each timed over --frames orbit views (a new pose every frame, so every
frame re-sorts), medians:

- ``gl``: GaussianSplatRenderer drawing both eyes side by side into one framebuffer, as the
  viewport does (no readback). Per frame: sort (torch on CUDA when there, else the 16-bit radix
  sort; a parallel rig sorts once for both eyes), index upload, projection + draw as GPU time
  (GL timer query); "frame" is the wall time of one synchronous frame (ctx.finish) and "FPS"
  the throughput of back-to-back frames with one finish at the end (how a viewport runs).
  "readback" is the finished frame copied to numpy (what headless export pays on top). On a
  software GL (llvmpipe) the timer query sees only part of the deferred work: read "frame".
- ``gsplat``: gsplat.rasterization with the cloud resident on the GPU (GsplatScene); per frame
  the per-view colours (SH) and cameras are built, the images stay on the GPU. Timed with
  torch.cuda.synchronize. Needs gsplat and CUDA (a row saying why otherwise).
- ``mpi``: MPIRenderer, 24 planes, both eyes into one framebuffer, GPU time and throughput.

Checks printed before the table (the issue's "checked against the reference when a GPU is
available"): PSNR of gsplat and of the GL renderer against the torch reference at 128x128,
stereo, on random scenes (>= 35 dB wanted).

On the lent GPU machines, moderngl and glcontext (and gsplat) travel as wheels and NVIDIA's EGL
needs its vendor file; docs/PERFORMANCE.md ("GPU: how to run") has the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from benchmarks.render import DISTANCE, synthetic_head_cloud, synthetic_head_mpi
from renderers.camera import Camera, StereoRig
from renderers.gaussians import GaussianCloud
from renderers.gl_context import create_offscreen_context
from renderers.gl_mpi import MPIRenderer
from renderers.gl_splats import GaussianSplatRenderer
from renderers.reference import render_gaussians_reference
from tests.renderers.test_render_api import psnr, small_cloud


def _views(i: int, size: int) -> list[Camera]:
    head = Camera.orbit(
        distance=DISTANCE, yaw_deg=-20.0 + 2.5 * i, pitch_deg=5.0, width=size, height=size
    )
    return list(StereoRig(0.063, DISTANCE).cameras(head))


def _cuda():
    """torch when it sees a CUDA device, else None (torch is optional for the GL rows)."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _draw_pair(renderer, fbo, views: list[Camera]) -> None:
    w = views[0].width
    for i, cam in enumerate(views):
        renderer.draw(cam, fbo, viewport=(i * w, 0, w, cam.height))


def _time_gl(ctx, renderer, size: int, frames: int) -> tuple[dict, object]:
    """Times ``frames`` stereo frames of a GL renderer drawing into one 2*size x size
    framebuffer: per-frame sort/upload (the splat renderer's own timings; 0 for MPIs), GPU time
    (timer query), synchronous wall time, then the throughput of as many back-to-back frames.
    Returns (row fields, the framebuffer holding the last frame)."""
    fbo = ctx.simple_framebuffer((2 * size, size), components=4)
    query = ctx.query(time=True)
    _draw_pair(renderer, fbo, _views(0, size))  # compile, allocate
    ctx.finish()
    timings = getattr(renderer, "timings", None)
    sort, upload, gpu, wall = [], [], [], []
    for i in range(frames):
        views = _views(i + 1, size)  # a new pose every frame: every frame re-sorts
        if timings is not None:
            renderer.timings = dict.fromkeys(timings, 0.0)
        t0 = time.perf_counter()
        with query:
            _draw_pair(renderer, fbo, views)
        ctx.finish()
        wall.append(time.perf_counter() - t0)
        sort.append(renderer.timings["sort"] if timings is not None else 0.0)
        upload.append(renderer.timings["upload"] if timings is not None else 0.0)
        gpu.append(query.elapsed * 1e-9)
    t0 = time.perf_counter()
    for i in range(frames):
        _draw_pair(renderer, fbo, _views(frames + i + 1, size))
    ctx.finish()
    fields = {
        "sort_ms": 1e3 * float(np.median(sort)),
        "upload_ms": 1e3 * float(np.median(upload)),
        "gpu_ms": 1e3 * float(np.median(gpu)),
        "frame_ms": 1e3 * float(np.median(wall)),
        "fps": frames / (time.perf_counter() - t0),
    }
    return fields, fbo


def bench_gl_splats(ctx, cloud: GaussianCloud, size: int, frames: int) -> dict:
    renderer = GaussianSplatRenderer(ctx)
    renderer.upload(cloud)
    fields, fbo = _time_gl(ctx, renderer, size, frames)
    readback = []
    for _ in range(5):
        t0 = time.perf_counter()
        fbo.read(components=4)  # the last frame, finished: the copy to numpy alone
        readback.append(time.perf_counter() - t0)
    row = {"renderer": "gl", "scene": f"{len(cloud) // 1000}k Gaussians", "size": size, **fields}
    row.update(readback=float(np.median(readback)), sort_method=_sort_method(renderer))
    fbo.release()
    renderer.release()
    return row


def _sort_method(renderer: GaussianSplatRenderer) -> str:
    if renderer.sorter.method != "auto":
        return renderer.sorter.method
    return "torch (CUDA)" if _cuda() is not None else "radix16 (CPU)"


def bench_gl_mpi(ctx, size: int, frames: int, planes: int = 24) -> dict:
    renderer = MPIRenderer(ctx)
    renderer.upload(synthetic_head_mpi(planes, size))
    fields, fbo = _time_gl(ctx, renderer, size, frames)
    fbo.release()
    renderer.release()
    return {"renderer": "gl", "scene": f"{planes}-plane MPI", "size": size, **fields}


def bench_gsplat(cloud: GaussianCloud, size: int, frames: int) -> dict:
    from renderers.gsplat_backend import GsplatScene, GsplatUnavailableError, _require

    scene_name = f"{len(cloud) // 1000}k Gaussians"
    try:
        torch, gsplat = _require()
        scene = GsplatScene(cloud, "cuda")
        gsplat.rasterization(**scene.arguments(_views(0, size), (0.0, 0.0, 0.0)))  # JIT, warm
        torch.cuda.synchronize()
    except (GsplatUnavailableError, RuntimeError, OSError) as exc:
        return {"renderer": "gsplat", "scene": scene_name, "size": size, "skipped": str(exc)}
    except Exception as exc:  # gsplat's JIT build raises assorted errors
        return {"renderer": "gsplat", "scene": scene_name, "size": size, "skipped": repr(exc)}
    wall = []
    for i in range(frames):
        views = _views(i + 1, size)
        t0 = time.perf_counter()
        gsplat.rasterization(**scene.arguments(views, (0.0, 0.0, 0.0)))
        torch.cuda.synchronize()
        wall.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(frames):
        gsplat.rasterization(**scene.arguments(_views(frames + i + 1, size), (0.0, 0.0, 0.0)))
    torch.cuda.synchronize()
    throughput = frames / (time.perf_counter() - t0)
    return {
        "renderer": "gsplat",
        "scene": scene_name,
        "size": size,
        "sort_ms": 0.0,  # inside gsplat's kernels
        "upload_ms": 0.0,  # the cloud stays on the GPU
        "gpu_ms": 1e3 * float(np.median(wall)),
        "frame_ms": 1e3 * float(np.median(wall)),
        "fps": throughput,
    }


def reference_checks(ctx, backend: str, seeds: int = 3) -> list[dict]:
    """PSNR (dB, worse eye) of ``backend`` ("gl" or "gsplat") against the torch reference on
    random 300-Gaussian degree-3 scenes (the gpu test's), 128x128 stereo (the renderer tests'
    rule: >= 35)."""
    from renderers.gsplat_backend import GsplatUnavailableError, render_gsplat

    gl = GaussianSplatRenderer(ctx, dtype="f2") if backend == "gl" else None
    bg = (0.2, 0.2, 0.2)
    out = []
    for seed in range(seeds):
        cloud = small_cloud(300, seed, k=16)  # the gpu test's scene
        head = Camera.orbit(distance=0.5, yaw_deg=15.0 * seed, width=128, height=128)
        cams = list(StereoRig(0.063, 0.5).cameras(head))
        if gl is not None:
            gl.upload(cloud)
            images = gl.render(cams, bg)
        else:
            try:
                images = render_gsplat(cloud, cams, bg)
            except (GsplatUnavailableError, RuntimeError) as exc:
                out.append({"backend": backend, "seed": seed, "skipped": str(exc)})
                break  # the same reason for every seed
        refs = [render_gaussians_reference(cloud, cam, bg) for cam in cams]
        out.append({"backend": backend, "seed": seed, "psnr": min(map(psnr, images, refs))})
    if gl is not None:
        gl.release()
    return out


def _print_checks(checks: list[dict]) -> None:
    for c in checks:
        what = f"{c['psnr']:.1f} dB" if "psnr" in c else f"skipped ({c['skipped']})"
        print(f"check {c['backend']:<7} vs torch reference, seed {c['seed']}: {what}")


def _print_row(r: dict) -> None:
    eyes = f"2x{r['size']}"
    if "skipped" in r:
        print(f"{r['renderer']:<9}{r['scene']:<17}{eyes:>10}  skipped: {r['skipped']}")
        return
    notes = ""
    if "sort_method" in r:
        notes = f"sort: {r['sort_method']}; readback {1e3 * r['readback']:.2f} ms"
    print(
        f"{r['renderer']:<9}{r['scene']:<17}{eyes:>10}{r['sort_ms']:7.2f}{r['upload_ms']:8.2f}"
        f"{r['gpu_ms']:8.2f}{r['frame_ms']:8.2f}{r['fps']:9.0f}  {notes}"
    )


def machine(ctx) -> dict:
    info = {
        "gl_renderer": ctx.info.get("GL_RENDERER", "?"),
        "gl_version": ctx.info.get("GL_VERSION", "?"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    torch = _cuda()
    if torch is not None:
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["torch"] = torch.__version__
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--gaussians", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024, help="per-eye size of the splat rows")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (any machine)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.frames, args.gaussians, args.size = 3, 2000, 64
    ctx = create_offscreen_context()
    info = machine(ctx)
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    result = {"machine": info, "checks": [], "rows": []}

    def save() -> None:  # after every step: a run cut short still leaves what it measured
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)

    seeds = 1 if args.smoke else 3
    mpi_sizes = (64,) if args.smoke else (512, 1024)
    result["checks"] += reference_checks(ctx, "gl", seeds)
    _print_checks(result["checks"])
    save()
    print(f"{args.frames} frames per row, stereo (both eyes), medians; ms")
    print(
        f"{'renderer':<9}{'scene':<17}{'eyes':>10}{'sort':>7}{'upload':>8}{'GPU':>8}"
        f"{'frame':>8}{'FPS':>9}  notes"
    )
    cloud = synthetic_head_cloud(args.gaussians)
    steps = [lambda: bench_gl_splats(ctx, cloud, args.size, args.frames)]
    steps += [lambda s=size: bench_gl_mpi(ctx, s, args.frames) for size in mpi_sizes]
    for step in steps:
        result["rows"].append(step())
        _print_row(result["rows"][-1])
        save()
    # gsplat last: its first call compiles its CUDA kernels (minutes on a fresh machine).
    result["rows"].append(bench_gsplat(cloud, args.size, args.frames))
    _print_row(result["rows"][-1])
    save()
    checks = reference_checks(ctx, "gsplat", seeds)
    _print_checks(checks)
    result["checks"] += checks
    save()


if __name__ == "__main__":
    main()
