"""Native CPU splat rasteriser (renderers.cpu_splats): stage split, and A/B against an old build.

    .venv/bin/python -m benchmarks.render_cpu                       # ~20 s on 2 cores
    .venv/bin/python -m benchmarks.render_cpu --frames 40 --posed
    .venv/bin/python -m benchmarks.render_cpu --against /tmp/old/libths_native-XXXX.so

Scenes: the shipped default head (~50k nearly opaque surfels) and the synthetic 50k head of
benchmarks/render.py, 512x512 mono and a 2x512 stereo pair, on benchmarks/render.py's orbit (a
new view every frame, so every frame re-sorts). What is timed is what export does per frame:
``render_rgb_strip`` (the eyes side by side, uint8 RGB over the background); ``--posed`` also
hands new quats and scales every frame (a posed head: covariances recomputed), as the rig does.

The kernel's own stage split (seconds of wall time; project, sort, bin, raster, output = the
tiles' writes) comes from ``CPUSplatRenderer.stage_timings``; "call" is the whole Python call
(wall), "cpu" its process CPU time (all threads, OpenMP spin-waits included). On a loaded
machine ``--threads 1`` and the CPU-time ratio measure the work itself.

``--against OLD.so``: a library built from an older splat_cpu.c (the cached
``~/.cache/talking-head-studio/native/libths_native-*.so`` of a previous commit, copied away).
It may export the first version's ``ths_splat_render`` (one camera, covariances and normals
from numpy, as the first CPUSplatRenderer called it; the old path per frame: numpy covariances
and normals when posed, one call per eye into an RGBA buffer, copied into the strip, as export
did) or this version's ``ths_splat_render_cams`` (then it is driven exactly like the current
one: A/B of kernel changes). Old and new run INTERLEAVED frame by frame in this process
(alternating which goes first; the machine is shared and noisy); the comparable numbers are the
medians of the per-frame ratios new / old (< 1: new faster) of wall and CPU time, and the ratio
of the fastest frames ("min"). Also printed: the largest difference
of the two images (uint8 levels) over the frames.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import time
from dataclasses import replace

import numpy as np

from benchmarks.render import _views, default_head_cloud, synthetic_head_cloud
from renderers.cpu_splats import STAGES, CPUSplatRenderer
from renderers.gaussians import GaussianCloud, facing_normals
from renderers.gl_splats import packed_covariances

BACKGROUND = (1.0, 1.0, 1.0)


def _load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


class OldLibrary:
    """The first version's entry point of an old build, driven as its CPUSplatRenderer did."""

    def __init__(self, path: str, renderer: CPUSplatRenderer) -> None:
        self.lib = ctypes.CDLL(path)
        self.cams_api = None
        if hasattr(self.lib, "ths_splat_render_cams"):  # a build of this API: drive it as ours
            from renderers.native import _declare

            _declare(self.lib)
            self.cams_api = CPUSplatRenderer(threads=renderer.threads)
            self.cams_api._lib = self.lib
            self.cams_api._ws = self.lib.ths_workspace_new()
            return
        p, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
        self.lib.ths_splat_render.restype = i64
        self.lib.ths_splat_render.argtypes = [
            i32, p, p, p, p, p, i32, p, i32, p, i32, i32, p, p, p, i32,
        ]  # fmt: skip
        self.block = renderer._camera_block  # same camera block layout (CAM_FLOATS = 25)
        self.threads = renderer.threads

    def upload(self, cloud: GaussianCloud) -> None:
        if self.cams_api:
            self.cams_api.upload(cloud)
            return
        f32 = np.float32
        self.n, self.k = len(cloud), cloud.sh.shape[1]
        self.means = np.ascontiguousarray(cloud.means, f32)
        self.opacities = np.ascontiguousarray(cloud.opacities, f32)
        self.sh = np.ascontiguousarray(cloud.sh, f32)
        self.facing = cloud.facing
        self.pose(cloud.quats, cloud.scales)

    def pose(self, quats: np.ndarray, scales: np.ndarray) -> None:
        if self.cams_api:
            self.cams_api.update(quats=quats, scales=scales)
            return
        self.cov = packed_covariances(quats, scales)
        one_sided = self.facing is not None and bool(np.any(self.facing))
        self.normals = facing_normals(quats, self.facing) if one_sided else None

    def strip(self, cams, out: np.ndarray) -> np.ndarray:
        if self.cams_api:
            return self.cams_api.render_rgb_strip(cams, BACKGROUND, out=out)
        h, w = cams[0].height, cams[0].width
        eye = np.empty((h, w, 4), np.uint8)
        bg = np.asarray(BACKGROUND, np.float32)
        for i, cam in enumerate(cams):
            block = self.block(cam)
            got = self.lib.ths_splat_render(
                self.n, self.means.ctypes.data, self.cov.ctypes.data,
                self.opacities.ctypes.data,
                None if self.normals is None else self.normals.ctypes.data,
                self.sh.ctypes.data, self.k, None, 1, block.ctypes.data, w, h, bg.ctypes.data,
                None, eye.ctypes.data, self.threads,
            )  # fmt: skip
            if got < 0:
                raise MemoryError("old library failed")
            out[:, i * w : (i + 1) * w] = eye[..., :3]
        return out


def _posed(cloud: GaussianCloud, i: int) -> tuple[np.ndarray, np.ndarray]:
    """New quats and scales for frame i (a small per-frame change, like a rig's)."""
    angle = 0.02 * (i % 7)
    q = cloud.quats + np.float32(angle) * np.roll(cloud.quats, 1, axis=1)
    return q.astype(np.float32), (cloud.scales * (1.0 + 0.01 * (i % 3))).astype(np.float32)


def bench(
    cloud: GaussianCloud,
    name: str,
    stereo: bool,
    frames: int,
    size: int,
    posed: bool,
    against: str | None,
    threads: int | None,
) -> dict:
    cloud = replace(cloud, means=cloud.means - cloud.means.mean(0))  # orbit around the head
    new = CPUSplatRenderer(threads=threads)
    new.upload(cloud)
    old = None
    if against:
        old = OldLibrary(against, new)
        old.upload(cloud)
    h, w = size, size * (2 if stereo else 1)
    strip_new = np.empty((h, w, 3), np.uint8)
    strip_old = np.empty((h, w, 3), np.uint8)
    rec: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rec.setdefault(key, []).append(value)

    def run_new(i: int, cams) -> tuple[float, float]:
        quats, scales = _posed(cloud, i) if posed else (None, None)
        new.stage_timings = dict.fromkeys(STAGES, 0.0)
        t0, c0 = time.perf_counter(), time.process_time()
        if posed:
            new.update(quats=quats, scales=scales)
        new.render_rgb_strip(cams, BACKGROUND, out=strip_new)
        return time.perf_counter() - t0, time.process_time() - c0

    def run_old(i: int, cams) -> tuple[float, float]:
        quats, scales = _posed(cloud, i) if posed else (None, None)
        t0, c0 = time.perf_counter(), time.process_time()
        if posed:
            old.pose(quats, scales)
        old.strip(cams, strip_old)
        return time.perf_counter() - t0, time.process_time() - c0

    for i in range(2):  # warm-up (workspace growth, page faults of the first frames)
        cams = _views(i, size, stereo)
        run_new(i, cams)
        if old:
            run_old(i, cams)
    max_diff = 0
    for i in range(frames):
        cams = _views(i, size, stereo)
        if old and i % 2:
            t_old = run_old(i, cams)
            t_new = run_new(i, cams)
        else:
            t_new = run_new(i, cams)
            t_old = run_old(i, cams) if old else None
        add("call", t_new[0])
        add("cpu", t_new[1])
        for key in STAGES:
            add(key, new.stage_timings[key])
        add("entries", new.last_entries)
        if old:
            add("old", t_old[0])
            add("ratio", t_new[0] / t_old[0])
            add("cpu ratio", t_new[1] / t_old[1])
            diff = np.abs(strip_new.astype(np.int16) - strip_old.astype(np.int16)).max()
            max_diff = max(max_diff, int(diff))
    row = {"scene": name, "stereo": stereo, "posed": posed, "load": _load()}
    row.update({k: float(np.median(v)) for k, v in rec.items()})
    row["max_diff"] = max_diff
    if old:  # the fastest frame of each: on a loaded machine the least disturbed estimate
        row["min ratio"] = float(np.min(rec["call"]) / np.min(rec["old"]))
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--posed", action="store_true", help="new quats+scales every frame")
    parser.add_argument("--against", help="an old build of the library (.so) to compare with")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--scene", choices=("default", "synthetic", "both"), default="both")
    args = parser.parse_args(argv)
    scenes = []
    if args.scene in ("default", "both"):
        head = default_head_cloud()
        if head is not None:
            scenes.append(("default head", head))
    if args.scene in ("synthetic", "both"):
        scenes.append(("synthetic 50k", synthetic_head_cloud(50_000)))
    print(f"load before: {_load()}  frames: {args.frames}  size: {args.size}")
    header = f"{'scene':14} {'eyes':>4} {'call':>7} " + " ".join(f"{s:>7}" for s in STAGES)
    header += f" {'pairs':>8} {'cpu':>7}"
    if args.against:
        header += f" {'old':>7} {'new/old':>8} {'cpu n/o':>8} {'min n/o':>8} {'maxdiff':>7}"
    print(header + "  load (1/5/15 min)    [ms, medians]")
    for name, cloud in scenes:
        for stereo in (False, True):
            r = bench(
                cloud, name, stereo, args.frames, args.size, args.posed, args.against, args.threads
            )
            line = f"{name:14} {2 if stereo else 1:>4} {1e3 * r['call']:7.2f} "
            line += " ".join(f"{1e3 * r[s]:7.2f}" for s in STAGES)
            line += f" {r['entries']:8.0f} {1e3 * r['cpu']:7.2f}"
            if args.against:
                line += f" {1e3 * r['old']:7.2f} {r['ratio']:8.3f} {r['cpu ratio']:8.3f}"
                line += f" {r['min ratio']:8.3f}"
                line += f" {r['max_diff']:7d}"
            print(f"{line}  {r['load']}", flush=True)


if __name__ == "__main__":
    main()
