"""Tile-based compute renderer (renderers.gl_tiles) against the triangle renderer (gl_splats).

    .venv/bin/python -m benchmarks.render_tiles               # ~2 min on 2 cores
    .venv/bin/python -m benchmarks.render_tiles --frames 5 --no-bake

Scenes: the shipped default head (~50k nearly opaque surfels, large on screen) and the synthetic
50k head of benchmarks/render.py, 512x512 mono and 2x512 stereo, on benchmarks/render.py's orbit
(a new pose every frame, so both renderers re-sort). The machine is shared and noisy, so the two
renderers are timed INTERLEAVED frame by frame in one process (alternating which goes first) and
the comparable number is the median of the per-frame ratios tiled / triangles (< 1: tiles
faster). The tiled time is split into projection (compute), sort+bin (readback of the keys and
numpy binning + upload), raster (compute) and blit+readback; the triangle time into sort, upload
and draw+readback. Stage times need a ``ctx.finish()`` after each GPU stage (``sync_timings``),
which both renderers' totals include alike (llvmpipe finishes work before a readback anyway).

``--bake``: the 24-plane MPI bake of renderers/bake.py (``MPIBaker``, unchanged) with its
splat renderer swapped for the tiled one, interleaved with the stock baker.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

from benchmarks.render import _views, default_head_cloud, synthetic_head_cloud
from renderers.gaussians import GaussianCloud
from renderers.gl_context import create_offscreen_context
from renderers.gl_splats import GaussianSplatRenderer
from renderers.gl_tiles import TiledSplatRenderer


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def bench(ctx, cloud: GaussianCloud, name: str, stereo: bool, frames: int, size: int) -> dict:
    cloud = replace(cloud, means=cloud.means - cloud.means.mean(0))  # orbit around the head
    tiles = TiledSplatRenderer(ctx)
    tiles.sync_timings = True
    tri = GaussianSplatRenderer(ctx)
    tiles.upload(cloud)
    tri.upload(cloud)
    for _ in range(2):  # warm-up: llvmpipe compiles shaders on first use
        a = tiles.render(_views(0, size, stereo))
        b = tri.render(_views(0, size, stereo))
    mse = float(np.mean((a - b) ** 2))
    rec: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rec.setdefault(key, []).append(value)

    def run_tiles(views) -> None:
        tiles.timings = dict.fromkeys(tiles.timings, 0.0)
        t0 = time.perf_counter()
        tiles.render(views)
        total = time.perf_counter() - t0
        t = tiles.timings
        add("tiles", total)
        add("project", t["project"])
        add("bin", t["bin"])
        add("raster", t["raster"])
        add("readback", total - t["project"] - t["bin"] - t["raster"])
        add("entries", tiles.last_entries)

    def run_tri(views) -> None:
        tri.timings = {"sort": 0.0, "upload": 0.0}
        t0 = time.perf_counter()
        tri.render(views)
        total = time.perf_counter() - t0
        add("tri", total)
        add("sort", tri.timings["sort"])
        add("upload", tri.timings["upload"])
        add("draw", total - tri.timings["sort"] - tri.timings["upload"])

    for i in range(frames):
        views = _views(i + 1, size, stereo)
        first, second = (run_tiles, run_tri) if i % 2 == 0 else (run_tri, run_tiles)
        first(views)
        second(views)
    tiles.release()
    tri.release()
    row = {k: float(np.median(v)) for k, v in rec.items()}
    ratios = np.array(rec["tiles"]) / np.array(rec["tri"])
    row.update(
        scene=name,
        views=f"2x{size} stereo" if stereo else f"{size} mono",
        ratio=float(np.median(ratios)),
        ratio_range=(float(ratios.min()), float(ratios.max())),
        psnr=10.0 * np.log10(1.0 / max(mse, 1e-12)),
        load=_load(),
    )
    return row


def print_rows(rows: list[dict]) -> None:
    print(
        f"{'scene':<14}{'views':<14}{'proj':>6}{'bin':>6}{'rast':>7}{'blit+rb':>8}{'TILES':>8}"
        f"{'FPS':>6} |{'sort':>6}{'upl':>5}{'draw+rb':>8}{'TRI':>8}{'FPS':>6} |"
        f"{'ratio':>6} {'(min-max)':<12}{'pairs':>8}{'PSNR':>6}  load 1/5/15"
    )
    for r in rows:
        lo, hi = r["ratio_range"]
        print(
            f"{r['scene']:<14}{r['views']:<14}{1e3 * r['project']:6.1f}{1e3 * r['bin']:6.1f}"
            f"{1e3 * r['raster']:7.1f}{1e3 * r['readback']:8.1f}{1e3 * r['tiles']:8.1f}"
            f"{1 / r['tiles']:6.1f} |{1e3 * r['sort']:6.1f}{1e3 * r['upload']:5.1f}"
            f"{1e3 * r['draw']:8.1f}{1e3 * r['tri']:8.1f}{1 / r['tri']:6.1f} |"
            f"{r['ratio']:6.2f} ({lo:.2f}-{hi:.2f}){int(r['entries']):9d}{r['psnr']:6.1f}"
            f"  {r['load']}"
        )


def bench_bake(frames: int, size: int) -> None:
    """The stock MPIBaker and one whose splat renderer is the tiled one, interleaved."""
    from models.heads import load_builtin_head
    from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
    from renderers.bake import MPIBaker
    from renderers.camera import Camera
    from studio.heads import arrays_to_cloud

    head = load_builtin_head("default")
    cam = Camera.look_at((0, 0, 0.6), (0, 0, 0), fov_y_deg=30.0, width=size, height=size)
    stock = MPIBaker(renderer="gl")  # the GL atlas: "auto" is the CPU baker on llvmpipe
    tiled = MPIBaker(stock.ctx, renderer="gl")
    tiled.splats.release()
    tiled.splats = TiledSplatRenderer(stock.ctx)
    times: dict[str, list[float]] = {"stock": [], "tiled": []}
    mse = []
    for i in range(frames + 1):
        v = CHANNEL_DEFAULTS.copy()
        v[CHANNEL_INDEX["yaw"]] = 10.0 * np.sin(i)
        v[CHANNEL_INDEX["exp_19_y"]] = 0.03 * (1 + np.cos(i))
        cloud = arrays_to_cloud(head.deform(v))
        out = {}
        for name in ("stock", "tiled") if i % 2 == 0 else ("tiled", "stock"):
            baker = stock if name == "stock" else tiled
            t0 = time.perf_counter()
            out[name] = baker.bake_uint8(cloud, cam, _depths(cam, cloud))
            if i:  # frame 0 is warm-up (shader compilation, buffer growth)
                times[name].append(time.perf_counter() - t0)
        diff = out["stock"].astype(np.float32) - out["tiled"].astype(np.float32)
        mse.append(float(np.mean((diff / 255.0) ** 2)))
    s, t = (1e3 * float(np.median(times[k])) for k in ("stock", "tiled"))
    ratio = float(np.median(np.array(times["tiled"]) / np.array(times["stock"])))
    psnr = 10.0 * np.log10(1.0 / max(float(np.median(mse)), 1e-12))
    print(
        f"24-plane MPI bake {size}x{size}, default head: stock {s:.0f} ms, tiled {t:.0f} ms, "
        f"median per-frame ratio {ratio:.2f}; planes PSNR tiled vs stock {psnr:.1f} dB; "
        f"load {_load()}"
    )


def _depths(cam, cloud: GaussianCloud) -> np.ndarray:
    from renderers.bake import baking_distance
    from renderers.mpi import head_mpi_depths

    return head_mpi_depths(baking_distance(cloud, cam), 24)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--no-bake", action="store_true", help="skip the MPI bake comparison")
    args = parser.parse_args(argv)
    ctx = create_offscreen_context()
    print(
        f"GL: {ctx.info['GL_RENDERER']}; {os.cpu_count()} CPUs; {args.frames} frames per row, "
        f"medians, ms; ratio = tiles / triangles per frame (lower is better); PSNR tiles vs "
        f"triangles (dB); load average before: {_load()}"
    )
    scenes = []
    head = default_head_cloud()
    if head is not None:
        scenes.append((f"default {len(head) // 1000}k", head))
    scenes.append(("synthetic 50k", synthetic_head_cloud(50_000)))
    rows = []
    for name, cloud in scenes:
        for stereo in (False, True):
            rows.append(bench(ctx, cloud, name, stereo, args.frames, args.size))
    print_rows(rows)
    ctx.release()
    if not args.no_bake:
        bench_bake(max(3, args.frames // 2), args.size)


if __name__ == "__main__":
    main()
