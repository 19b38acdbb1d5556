"""Fill, image match and draw time of two Gaussian heads (.thead), measured in one process.

    .venv/bin/python -m benchmarks.head_fill OLD.thead NEW.thead                 # fill + PSNR
    .venv/bin/python -m benchmarks.head_fill OLD.thead NEW.thead --out DIR       # + PNGs
    .venv/bin/python -m benchmarks.head_fill OLD.thead NEW.thead --time 9 --bake 7

Fill: the summed area (pixels) of the triangles the GL splat renderer rasterises (one triangle
per Gaussian circumscribing its alpha >= 1/255 ellipse, after back-face and off-screen culling,
the rules of resources/shaders/splat_project.vert) divided by the pixels the head covers
(alpha > 0.5): triangle layers per covered pixel, at 512x512, camera 0.55 m, 30 deg fov.
"holes": pixels inside the silhouette (eroded by 3 px) that are less than 98 % opaque.

Image match: both heads rendered with GL at 512x512 over white for a set of views and
expressions (front, 3/4, profile, back, above, below, jaw open, blinking); PSNR of RGB in
[0, 1]. --out writes old | new | 4x difference side by side per view.

Timing (--time FRAMES): GL draw (+ sort + readback) of both heads at rest, mono 512 and stereo
2x512, alternated frame by frame on an orbit (a new pose every frame); --bake FRAMES: the MPI bake
of renderers.bake.MPIBaker (24 planes, 512, frontal camera at 0.6 m, soft assignment) of both
heads driven by the same frames of motion, alternated. Medians and the median of the per-frame
ratios new / old (the machine is shared and noisy: the ratio is the comparable number).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

VIEWS = {  # name: (yaw, pitch, channel overrides)
    "front": (0.0, 0.0, {}),
    "three_quarter": (35.0, 5.0, {}),
    "profile": (90.0, 0.0, {}),
    "back": (180.0, 0.0, {}),
    "above": (20.0, 50.0, {}),
    "below": (-15.0, -40.0, {}),
    "jaw_open": (0.0, 0.0, {"exp_19_y": 0.08}),
    "jaw_open_34": (35.0, 5.0, {"exp_19_y": 0.1}),
    "blink": (-25.0, 5.0, {"eye_open_r": 0.0, "eye_open_l": 0.0}),
}
TARGET = (0.0, -0.03, 0.0)
DISTANCE = 0.55


def _frame(**channels: float) -> np.ndarray:
    from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX

    v = CHANNEL_DEFAULTS.copy()
    for k, val in channels.items():
        v[CHANNEL_INDEX[k]] = val
    return v


def _cloud(head, frame: np.ndarray):
    from renderers.gaussians import GaussianCloud

    a = head.deform(frame)
    return GaussianCloud(a.means, a.quats, a.scales, a.opacities, a.sh, facing=a.facing)


def _camera(yaw: float, pitch: float, size: int = 512):
    from renderers.camera import Camera

    return Camera.orbit(TARGET, DISTANCE, yaw, pitch, 30.0, size, size)


def triangle_pixels(cloud, cam) -> float:
    """Summed area (pixels) of the triangles the GL renderer draws for ``cloud`` seen by ``cam``."""
    from renderers.gaussians import backfacing
    from renderers.gl_splats import packed_covariances

    keep = ~backfacing(cloud, cam.position) & (cloud.opacities >= 1.0 / 255.0)
    r = cam.world_to_camera
    m = cloud.means[keep].astype(np.float64)
    p = m @ r[:3, :3].T + r[:3, 3]
    front = p[:, 2] >= 0.01
    p = p[front]
    cov = packed_covariances(cloud.quats[keep][front], cloud.scales[keep][front]).astype(np.float64)
    iz = 1.0 / p[:, 2]
    t0 = (cam.fx * iz)[:, None] * r[0, :3] - (cam.fx * p[:, 0] * iz * iz)[:, None] * r[2, :3]
    t1 = (cam.fy * iz)[:, None] * r[1, :3] - (cam.fy * p[:, 1] * iz * iz)[:, None] * r[2, :3]
    xx, xy, xz, yy, yz, zz = cov.T

    def quad(u, v):
        return (
            u[:, 0] * (xx * v[:, 0] + xy * v[:, 1] + xz * v[:, 2])
            + u[:, 1] * (xy * v[:, 0] + yy * v[:, 1] + yz * v[:, 2])
            + u[:, 2] * (xz * v[:, 0] + yz * v[:, 1] + zz * v[:, 2])
        )

    a, b, c = quad(t0, t0) + 0.3, quad(t0, t1), quad(t1, t1) + 0.3
    op = cloud.opacities[keep][front].astype(np.float64)
    rad = np.sqrt(2.0 * np.log(255.0 * op))
    mx = cam.fx * p[:, 0] * iz + cam.cx
    my = cam.fy * p[:, 1] * iz + cam.cy
    hx, hy = rad * np.sqrt(a), rad * np.sqrt(c)
    on = (mx + hx >= 0) & (my + hy >= 0) & (mx - hx <= cam.width) & (my - hy <= cam.height)
    # equilateral triangle with circumradius 2r in the whitened frame: area 3 sqrt(3) r^2
    area = 3.0 * np.sqrt(3.0) * rad**2 * np.sqrt(np.maximum(a * c - b * b, 0.0))
    return float(area[on].sum())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def compare(old, new, renderer, out: Path | None) -> None:
    from scipy.ndimage import binary_erosion

    print(f"{'view':<15}{'PSNR':>7}{'fill old':>10}{'fill new':>10}{'ratio':>7}"
          f"{'tri px old':>12}{'tri px new':>12}{'cover old':>10}{'cover new':>10}"
          f"{'holes o':>8}{'holes n':>8}")  # fmt: skip
    for name, (yaw, pitch, ch) in VIEWS.items():
        cam = _camera(yaw, pitch)
        res = []
        for head in (old, new):
            cloud = _cloud(head, _frame(**ch))
            renderer.upload(cloud)
            img = renderer.render(cam, background=(1.0, 1.0, 1.0))[0]
            cover = int((img[..., 3] > 0.5).sum())
            # see-through pixels: alpha < 0.98 inside the silhouette (eroded by 3 px)
            inner = binary_erosion(img[..., 3] > 0.5, iterations=3)
            holes = int((inner & (img[..., 3] < 0.98)).sum())
            res.append((img, triangle_pixels(cloud, cam), cover, holes))
        (ia, ta, ca, ha), (ib, tb, cb, hb) = res
        fa, fb = ta / max(ca, 1), tb / max(cb, 1)
        print(f"{name:<15}{psnr(ia[..., :3], ib[..., :3]):7.2f}{fa:10.1f}{fb:10.1f}"
              f"{fa / fb:7.2f}{ta / 1e6:11.2f}M{tb / 1e6:11.2f}M{ca:10d}{cb:10d}"
              f"{ha:8d}{hb:8d}")  # fmt: skip
        if out is not None:
            from PIL import Image

            out.mkdir(parents=True, exist_ok=True)
            diff = np.clip(4.0 * np.abs(ia[..., :3] - ib[..., :3]), 0, 1)
            row = np.concatenate([ia[..., :3], ib[..., :3], 1.0 - diff], axis=1)
            Image.fromarray((row * 255 + 0.5).astype(np.uint8)).save(out / f"{name}.png")


def cull_check(head, renderer, out: Path | None) -> None:
    """PSNR of back-face-culled against unculled renders of one head, per view."""
    line = []
    for name, (yaw, pitch, ch) in VIEWS.items():
        renderer.upload(_cloud(head, _frame(**ch)))
        cam = _camera(yaw, pitch)
        renderer.backface_culling = False
        full = renderer.render(cam, background=(1.0, 1.0, 1.0))[0]
        renderer.backface_culling = True
        culled = renderer.render(cam, background=(1.0, 1.0, 1.0))[0]
        line.append(f"{name} {psnr(full[..., :3], culled[..., :3]):.1f}")
        if out is not None:
            from PIL import Image

            out.mkdir(parents=True, exist_ok=True)
            diff = np.clip(4.0 * np.abs(full[..., :3] - culled[..., :3]), 0, 1)
            row = np.concatenate([full[..., :3], culled[..., :3], 1.0 - diff], axis=1)
            Image.fromarray((row * 255 + 0.5).astype(np.uint8)).save(out / f"cull_{name}.png")
    print("culled vs unculled (new head), PSNR dB: " + ", ".join(line))


def time_draw(old, new, renderers, frames: int, stereo: bool) -> None:
    from renderers.camera import Camera, StereoRig

    clouds = [_cloud(h, _frame()) for h in (old, new)]
    for r, c in zip(renderers, clouds, strict=True):
        r.upload(c)
    times: list[list[float]] = [[], []]
    for i in range(frames + 1):
        cam = Camera.orbit(TARGET, DISTANCE, -20.0 + 2.5 * i, 5.0, 30.0, 512, 512)
        cams = list(StereoRig(0.063, DISTANCE).cameras(cam)) if stereo else [cam]
        for k, r in enumerate(renderers):
            t0 = time.perf_counter()
            r.render(cams)
            if i:  # frame 0 warms up (shader compilation, buffer growth)
                times[k].append(time.perf_counter() - t0)
    _report("stereo 2x512" if stereo else "mono 512", times)


def time_bake(old, new, frames: int) -> None:
    from renderers.bake import MPIBaker
    from renderers.camera import Camera

    cam = Camera.look_at((0, 0, 0.6), (0, 0, 0), fov_y_deg=30.0, width=512, height=512)
    baker = MPIBaker()
    times: list[list[float]] = [[], []]
    for i in range(frames + 1):
        v = _frame(yaw=10.0 * np.sin(i), exp_19_y=0.03 * (1 + np.cos(i)))
        for k, head in enumerate((old, new)):
            cloud = _cloud(head, v)
            t0 = time.perf_counter()
            baker.bake(cloud, cam, softness=1.0)
            if i:
                times[k].append(time.perf_counter() - t0)
    _report("MPI bake 24x512", times)


def _report(label: str, times: list[list[float]]) -> None:
    a, b = np.array(times[0]), np.array(times[1])
    print(
        f"{label:<16} old {1e3 * np.median(a):7.1f} ms  new {1e3 * np.median(b):7.1f} ms  "
        f"median per-frame ratio new/old {np.median(b / a):.3f} (range {np.min(b / a):.3f}-"
        f"{np.max(b / a):.3f}, {a.size} frames)  load {_load()}"
    )


def _load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="write side-by-side PNGs here")
    ap.add_argument("--no-compare", action="store_true", help="skip fill and PSNR")
    ap.add_argument("--cull", action="store_true", help="culled vs unculled PSNR (new head)")
    ap.add_argument("--time", type=int, default=0, help="frames of interleaved draw timing")
    ap.add_argument("--bake", type=int, default=0, help="frames of interleaved MPI bake timing")
    args = ap.parse_args(argv)

    from models.heads import load_head
    from renderers.gl_context import create_offscreen_context
    from renderers.gl_splats import GaussianSplatRenderer

    old, new = load_head(args.old), load_head(args.new)
    print(f"old {args.old}: {len(old)} Gaussians; new {args.new}: {len(new)}; load {_load()}")
    ctx = create_offscreen_context()
    if not args.no_compare:
        r = GaussianSplatRenderer(ctx)
        compare(old, new, r, args.out)
        r.release()
    if args.cull:
        r = GaussianSplatRenderer(ctx)
        cull_check(new, r, args.out)
        r.release()
    if args.time:
        rs = [GaussianSplatRenderer(ctx), GaussianSplatRenderer(ctx)]
        time_draw(old, new, rs, args.time, stereo=False)
        time_draw(old, new, rs, args.time, stereo=True)
        for r in rs:
            r.release()
    if args.bake:
        time_bake(old, new, args.bake)


if __name__ == "__main__":
    main()
