"""Renderer benchmark: FPS of the GL paths and the native CPU rasteriser on head-sized scenes.

    .venv/bin/python -m benchmarks.render            # full run (~2-3 min on 2 cores)
    .venv/bin/python -m benchmarks.render --quick    # fewer frames
    .venv/bin/python -m benchmarks.render --quick --repeat 3   # the table 3 times + medians
    .venv/bin/python -m benchmarks.render --quick --renderers cpu   # only the CPU rasteriser

Scenes: Gaussian heads of 50k and 200k splats (an ellipsoid shell 15 x 20 x 18 cm, splats
flattened along the surface normal, tangent sigma half the mean spacing, 70 % fairly opaque),
seen by a camera orbiting at 0.55 m (30 degree fov) so every frame re-sorts; the shipped default
head (resources/heads/default.thead, ~50k nearly opaque Gaussians, larger on screen: ~85 layers of
triangles per covered pixel, see benchmarks/head_fill.py) seen the same way; a 24-plane 512x512
MPI of the synthetic head (each plane holds the slab of the surface at its depth). Per-frame time is
split into sort (CPU), upload (index buffer) and draw (+ readback), medians over the frames.

The dev machine is shared and noisy, so each row also reports a same-process baseline, timed
interleaved with it: for splats a naive renderer (data textures + instanced quads, full EWA per
corner: what one writes first), for the MPI the same planes drawn as full quads without
empty-cell skipping. The ratio (ours / baseline time) is the comparable number.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

from models.heads.rig import quat_multiply
from renderers.camera import Camera, StereoRig
from renderers.gaussians import GaussianCloud
from renderers.gl_context import create_offscreen_context
from renderers.gl_mpi import MPIRenderer
from renderers.gl_splats import GaussianSplatRenderer, packed_covariances
from renderers.mpi import MPI, head_mpi_depths
from renderers.sorting import back_to_front

HEAD_AXES = np.array([0.075, 0.10, 0.09])  # semi-axes (m): x, y, z
DISTANCE = 0.55


def synthetic_head_cloud(n: int, seed: int = 0) -> GaussianCloud:
    """n Gaussians on a head-sized ellipsoid shell, oriented and sized like a trained 3DGS head."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    means = d * HEAD_AXES
    normal = means / HEAD_AXES**2
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    p = 1.6075  # Knud Thomsen's ellipsoid surface approximation
    a, b, c = HEAD_AXES
    area = 4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    tangent = 0.5 * np.sqrt(area / n) * rng.uniform(0.7, 1.3, n)
    scales = np.stack([tangent, tangent * rng.uniform(0.5, 1.0, n), 0.2 * tangent], 1)
    # Quaternion turning +z onto the normal, then a random spin about it.
    v = np.cross([0.0, 0.0, 1.0], normal)
    q = np.concatenate([1.0 + normal[:, 2:3], v], 1)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    spin = rng.uniform(0, np.pi, n)
    s = np.stack([np.cos(spin / 2), 0 * spin, 0 * spin, np.sin(spin / 2)], 1)
    quats = quat_multiply(q, s)
    opac = np.where(rng.uniform(size=n) < 0.7, rng.uniform(0.6, 1.0, n), rng.uniform(0.05, 0.6, n))
    colors = np.clip([0.85, 0.65, 0.55] + 0.1 * rng.normal(size=(n, 3)), 0, 1)
    return GaussianCloud.from_colors(means, quats, scales, opac, colors)


def synthetic_head_mpi(num_planes: int = 24, size: int = 512) -> MPI:
    """The head ellipsoid as an MPI: each plane holds the part of the visible surface whose depth
    falls in its slab (plus a soft edge), coloured like skin with shading."""
    ref = Camera.orbit(distance=DISTANCE, fov_y_deg=30.0, width=size, height=size)
    depths = head_mpi_depths(DISTANCE, num_planes)
    jj, ii = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    x = (jj - ref.cx) / ref.fx
    y = (ii - ref.cy) / ref.fy
    # Ray (x, y, 1) * t from the camera at z = DISTANCE (world), head at the origin (RUB world:
    # camera looks along -z, so world point = (x t, -y t, DISTANCE - t)).
    ax = HEAD_AXES
    qa = (x / ax[0]) ** 2 + (y / ax[1]) ** 2 + (1 / ax[2]) ** 2
    qb = -2 * DISTANCE / ax[2] ** 2
    qc = (DISTANCE / ax[2]) ** 2 - 1
    disc = qb * qb - 4 * qa * qc
    hit = disc > 0
    t = np.where(hit, (-qb - np.sqrt(np.where(hit, disc, 0))) / (2 * qa), np.inf)
    bounds = np.concatenate([[0.0], (depths[1:] + depths[:-1]) / 2, [np.inf]])
    rgba = np.zeros((num_planes, size, size, 4), np.float32)
    shade = np.clip(1.2 - 3.0 * (x**2 + y**2), 0.3, 1.0)
    for p in range(num_planes):
        inside = hit & (t >= bounds[p]) & (t < bounds[p + 1])
        rgba[p, ..., 0] = 0.85 * shade
        rgba[p, ..., 1] = 0.65 * shade
        rgba[p, ..., 2] = 0.55 * shade
        rgba[p, ..., 3] = inside
    return MPI(rgba, depths, ref)


class NaiveSplatRenderer:
    """Baseline: per-Gaussian data in float textures, instanced quads, the whole EWA projection
    in the vertex shader of every corner (3-sigma square quads), numpy argsort every frame."""

    VS = """#version 330 core
    in vec2 corner; in uint idx;
    uniform sampler2D t_mean; uniform sampler2D t_cova; uniform sampler2D t_covb;
    uniform sampler2D t_col; uniform vec3 r0; uniform vec3 r1; uniform vec3 r2; uniform vec3 t;
    uniform vec4 intr; uniform vec2 size;
    out vec2 d; flat out vec3 conic; flat out vec4 color;
    ivec2 tc(uint i) { return ivec2(int(i) % 1024, int(i) / 1024); }
    void main() {
        vec4 mo = texelFetch(t_mean, tc(idx), 0);
        vec3 ca = texelFetch(t_cova, tc(idx), 0).xyz, cb = texelFetch(t_covb, tc(idx), 0).xyz;
        vec3 p = vec3(dot(r0, mo.xyz), dot(r1, mo.xyz), dot(r2, mo.xyz)) + t;
        if (p.z < 0.01) { gl_Position = vec4(0, 0, 2, 1); return; }
        float iz = 1.0 / p.z;
        vec3 a0 = intr.x * iz * r0 - intr.x * p.x * iz * iz * r2;
        vec3 a1 = intr.y * iz * r1 - intr.y * p.y * iz * iz * r2;
        mat3 S = mat3(ca.x, ca.y, ca.z, ca.y, cb.x, cb.y, ca.z, cb.y, cb.z);
        float a = dot(a0, S * a0) + 0.3, b = dot(a0, S * a1), c = dot(a1, S * a1) + 0.3;
        float det = a * c - b * b;
        conic = vec3(c, -b, a) / det;
        vec2 m = vec2(intr.x * p.x * iz + intr.z, intr.y * p.y * iz + intr.w);
        d = corner * 3.0 * sqrt(vec2(a, c));
        vec2 q = m + d;
        gl_Position = vec4(2.0 * q.x / size.x - 1.0, 1.0 - 2.0 * q.y / size.y, 0, 1);
        color = texelFetch(t_col, tc(idx), 0);
    }"""
    FS = """#version 330 core
    in vec2 d; flat in vec3 conic; flat in vec4 color; out vec4 f;
    void main() {
        float pw = -0.5 * (conic.x * d.x * d.x + 2.0 * conic.y * d.x * d.y + conic.z * d.y * d.y);
        float al = min(0.99, color.a * exp(pw));
        if (al < 1.0 / 255.0) discard;
        f = vec4(color.rgb * al, al);
    }"""

    def __init__(self, ctx, cloud: GaussianCloud) -> None:
        import moderngl

        self.mgl, self.ctx, self.cloud = moderngl, ctx, cloud
        n = len(cloud)
        rows = -(-n // 1024)

        def tex(a: np.ndarray):
            buf = np.zeros((rows * 1024, 4), np.float32)
            buf[:n, : a.shape[1]] = a
            return ctx.texture((1024, rows), 4, buf.tobytes(), dtype="f4")

        cov = packed_covariances(cloud.quats, cloud.scales)
        self.textures = [
            tex(np.c_[cloud.means, cloud.opacities]),
            tex(cov[:, :3]),
            tex(cov[:, 3:]),
            tex(np.c_[cloud.colors, cloud.opacities]),
        ]
        self.prog = ctx.program(vertex_shader=self.VS, fragment_shader=self.FS)
        for i, name in enumerate(("t_mean", "t_cova", "t_covb", "t_col")):
            self.prog[name].value = i
        corners = ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32).tobytes())
        self.index = ctx.buffer(reserve=n * 4)
        self.vao = ctx.vertex_array(
            self.prog, [(corners, "2f", "corner"), (self.index, "1u/i", "idx")]
        )
        self.fbo = ctx.framebuffer([ctx.renderbuffer((1024, 512), 4)])

    def render(self, cams: list[Camera]) -> np.ndarray:
        mgl, ctx = self.mgl, self.ctx
        w, h = cams[0].width, cams[0].height
        self.fbo.use()
        for i, cam in enumerate(cams):
            order = back_to_front(self.cloud.means, cam.world_to_camera, method="argsort")
            self.index.write(order.tobytes())
            r = cam.world_to_camera
            for k in range(3):
                self.prog[f"r{k}"].value = tuple(r[k, :3])
            self.prog["t"].value = tuple(r[:3, 3])
            self.prog["intr"].value = (cam.fx, cam.fy, cam.cx, cam.cy)
            self.prog["size"].value = (float(w), float(h))
            for unit, tex in enumerate(self.textures):
                tex.use(unit)
            ctx.viewport = (i * w, 0, w, h)
            ctx.clear(0, 0, 0, 0, viewport=ctx.viewport)
            ctx.enable(mgl.BLEND)
            ctx.blend_func = (mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA)
            self.vao.render(mgl.TRIANGLE_STRIP, instances=order.size)
        return np.frombuffer(
            self.fbo.read(viewport=(0, 0, w * len(cams), h), components=4), np.uint8
        )


def _orbit(i: int, size: int) -> Camera:
    return Camera.orbit(
        distance=DISTANCE,
        yaw_deg=-20.0 + 2.5 * i,
        pitch_deg=5.0,
        fov_y_deg=30.0,
        width=size,
        height=size,
    )


def _views(i: int, size: int, stereo: bool) -> list[Camera]:
    cam = _orbit(i, size)
    return list(StereoRig(0.063, DISTANCE).cameras(cam)) if stereo else [cam]


def default_head_cloud() -> GaussianCloud | None:
    """The shipped default head at rest (None when its file or the rig code is missing)."""
    try:
        from studio import heads

        return heads.rest_cloud(heads.resolve_head(None))
    except Exception:  # an optional row: any failure just skips it
        return None


def bench_splats(
    ctx,
    n: int,
    stereo: bool,
    frames: int,
    size: int = 512,
    cloud: GaussianCloud | None = None,
    name: str | None = None,
    renderer: str = "gl",
) -> dict:
    """One row. renderer: "gl" (the triangle renderer, GaussianSplatRenderer) or "cpu" (the
    native rasteriser, CPUSplatRenderer: sort, binning and compositing all count as draw)."""
    if cloud is None:
        cloud = synthetic_head_cloud(n)
    else:
        # Centre the orbit on the cloud (the synthetic head sits at the origin).
        cloud = replace(cloud, means=cloud.means - cloud.means.mean(0))
    if renderer == "cpu":
        from renderers.cpu_splats import CPUSplatRenderer

        ours = CPUSplatRenderer()
    else:
        ours = GaussianSplatRenderer(ctx)
    ours.upload(cloud)
    naive = NaiveSplatRenderer(ctx, cloud)
    ours.render(_views(0, size, stereo))
    naive.render(_views(0, size, stereo))
    t_ours, t_sort, t_up, t_naive = [], [], [], []
    for i in range(frames):
        views = _views(i + 1, size, stereo)  # a new pose every frame: sort + project for real
        ours.timings = dict.fromkeys(ours.timings, 0.0)
        t0 = time.perf_counter()
        ours.render(views)
        t_ours.append(time.perf_counter() - t0)
        t_sort.append(ours.timings.get("sort", 0.0))
        t_up.append(ours.timings.get("upload", 0.0))
        t0 = time.perf_counter()
        naive.render(views)
        t_naive.append(time.perf_counter() - t0)
    ours.release()
    med = float(np.median(t_ours))
    return {
        "scene": (name or f"{n // 1000}k Gaussians") + (" cpu" if renderer == "cpu" else ""),
        "views": "2x512 stereo" if stereo else "512 mono",
        "sort": float(np.median(t_sort)),
        "upload": float(np.median(t_up)),
        "draw": med - float(np.median(t_sort)) - float(np.median(t_up)),
        "total": med,
        "baseline": float(np.median(t_naive)),
    }


def bench_mpi(ctx, stereo: bool, frames: int, size: int = 512) -> dict:
    mpi = synthetic_head_mpi(24, size)
    ours = MPIRenderer(ctx)
    ours.upload(mpi)
    full = MPIRenderer(ctx, cell=0)  # baseline: one full quad per plane, no empty-cell skipping
    full.upload(mpi)
    t_ours, t_full = [], []
    ours.render(_views(0, size, stereo))
    full.render(_views(0, size, stereo))
    for i in range(frames):
        views = _views(i + 1, size, stereo)
        t0 = time.perf_counter()
        ours.render(views)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        full.render(views)
        t_full.append(time.perf_counter() - t0)
    ours.release()
    full.release()
    med = float(np.median(t_ours))
    return {
        "scene": "24-plane MPI",
        "views": "2x512 stereo" if stereo else "512 mono",
        "sort": 0.0,
        "upload": 0.0,
        "draw": med,
        "total": med,
        "baseline": float(np.median(t_full)),
    }


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def run_table(
    ctx, frames: int, default_head: GaussianCloud | None, renderers: tuple[str, ...] = ("gl",)
) -> list[dict]:
    """One pass over every row; each row records the load average (1/5/15 min) after it ran."""
    rows = []
    for renderer in renderers:
        for n in (50_000, 200_000):
            for stereo in (False, True):
                rows.append(bench_splats(ctx, n, stereo, frames, renderer=renderer))
                rows[-1]["load"] = _load()
        if default_head is not None:
            name = f"default {len(default_head) // 1000}k"
            for stereo in (False, True):
                rows.append(
                    bench_splats(
                        ctx, 0, stereo, frames, cloud=default_head, name=name, renderer=renderer
                    )
                )
                rows[-1]["load"] = _load()
    for stereo in (False, True):
        rows.append(bench_mpi(ctx, stereo, frames))
        rows[-1]["load"] = _load()
    return rows


def print_table(rows: list[dict]) -> None:
    head = f"{'scene':<21}{'views':<14}{'sort':>7}{'upload':>8}{'draw+rb':>9}{'total':>8}{'FPS':>7}"
    head += f"{'baseline':>10}{'base FPS':>9}{'ratio':>7}  load 1/5/15"
    print(head)
    for r in rows:
        print(
            f"{r['scene']:<21}{r['views']:<14}{1e3 * r['sort']:7.1f}{1e3 * r['upload']:8.1f}"
            f"{1e3 * r['draw']:9.1f}{1e3 * r['total']:8.1f}{1 / r['total']:7.1f}"
            f"{1e3 * r['baseline']:10.1f}{1 / r['baseline']:9.1f}{r['total'] / r['baseline']:7.2f}"
            f"  {r.get('load', '')}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 frames per row instead of 15")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1, help="run the table this many times")
    parser.add_argument("--no-default-head", action="store_true", help="skip the shipped head")
    parser.add_argument(
        "--renderers", default="gl,cpu",
        help="splat renderers to time, comma-separated: gl (triangles), cpu (native rasteriser)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    renderers = tuple(r.strip() for r in args.renderers.split(",") if r.strip())
    frames = args.frames or (5 if args.quick else 15)
    ctx = create_offscreen_context()
    default_head = None if args.no_default_head else default_head_cloud()
    print(
        f"GL: {ctx.info['GL_RENDERER']}; {os.cpu_count()} CPUs; LP_NUM_THREADS="
        f"{os.environ.get('LP_NUM_THREADS', 'unset')}; {frames} frames per row, medians; "
        f"times in ms; ratio = ours / same-process baseline (lower is better); "
        f"load average before: {_load()}"
    )
    runs = []
    for i in range(args.repeat):
        rows = run_table(ctx, frames, default_head, renderers)
        runs.append(rows)
        print(f"-- run {i + 1}/{args.repeat}")
        print_table(rows)
    if args.repeat > 1:
        med = []
        for k, row in enumerate(runs[0]):
            m = dict(row)
            for key in ("sort", "upload", "draw", "total", "baseline"):
                m[key] = float(np.median([run[k][key] for run in runs]))
            m["load"] = "median"
            med.append(m)
        print(f"-- medians over {args.repeat} runs")
        print_table(med)


if __name__ == "__main__":
    main()
