"""The offline renderer: exact frames of the document, rendered headless.

Per output frame: the document is evaluated at the frame's time (integer frames when the output
rate is the project's), the head is deformed, the changed attributes are re-uploaded through the
renderer's ``update()`` path (one upload per frame), and every eye is drawn into one shared
framebuffer side by side and read back once (one stereo render call per frame). The readback is
already the full side-by-side picture; top-bottom restacks it. Qt-free; moderngl is imported
when a renderer is made.

Cameras: the project's orbit camera (yaw, pitch, distance, target) with the export's vertical
FOV; stereo is renderers.StereoRig (parallel cameras, off-axis principal-point shift, zero
disparity at the convergence distance, crossed disparity nearer). Half side-by-side renders each
eye at W/2 x H with the horizontal focal length halved (anamorphic), so a player stretching it
back to W x H sees square pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from renderers.camera import Camera, StereoRig
from studio.export.errors import ExportError
from studio.export.heads import HeadSource
from studio.export.settings import ExportPlan

if TYPE_CHECKING:
    import moderngl

__all__ = ["OfflineRenderer", "eye_cameras", "layout_frame", "split_eyes"]


def eye_cameras(plan: ExportPlan) -> list[Camera]:
    """The cameras of the rendered views (left, right; or the centre camera for mono), each of
    ``plan.render_size``."""
    w, h = plan.eye_size
    center = Camera.orbit(plan.target, plan.distance, plan.yaw, plan.pitch, plan.fov_deg, w, h)
    if plan.render_size != (w, h):
        center = center.with_size(*plan.render_size)  # hsbs: anamorphic half width
    if not plan.stereo:
        return [center]
    return list(StereoRig(plan.ipd, plan.convergence).cameras(center))


def layout_frame(strip: np.ndarray, layout: str) -> np.ndarray:
    """The encoded picture from the rendered views side by side ``strip [H, C*w, 3]``:
    sbs/hsbs/mono are the strip itself; tb stacks left over right ``[2H, w, 3]``."""
    if layout != "tb":
        return strip
    w = strip.shape[1] // 2
    return np.concatenate([strip[:, :w], strip[:, w:]], axis=0)


def split_eyes(strip: np.ndarray, views: int) -> list[np.ndarray]:
    """The ``views`` images ``[H, w, 3]`` of a side-by-side strip."""
    w = strip.shape[1] // views
    return [strip[:, i * w : (i + 1) * w] for i in range(views)]


class OfflineRenderer:
    """Renders frames of motion with one GL context and one renderer for the head.

    context_factory: makes the moderngl context, called here in the calling thread (default:
    the process-wide headless EGL context of renderers.gl_context, held locked until release;
    inside the Qt studio pass one that shares Qt's context, since EGL and Qt's GLX must not mix
    in one process). ``timings`` accumulates seconds per stage:
    "deform" (head deformation + upload) and "render" (draw + readback).
    Raises ExportError when no GL context can be made.
    """

    def __init__(
        self,
        plan: ExportPlan,
        source: HeadSource,
        context_factory: Callable[[], moderngl.Context] | None = None,
    ) -> None:
        from renderers.gl_context import GLUnavailableError, shared_offscreen_context

        self.plan = plan
        self.source = source
        self.cameras = eye_cameras(plan)
        self.timings = {"deform": 0.0, "render": 0.0}
        # Headless: the process-wide EGL context, held for the whole export (a second
        # standalone context would take "current" away from the one renderers.render caches).
        self._shared_lock = None
        try:
            if context_factory is None:
                shared = shared_offscreen_context()
                shared.lock.acquire()
                self._shared_lock = shared.lock
                self.ctx = shared.ctx
            else:
                self.ctx = context_factory()
        except GLUnavailableError as exc:
            raise ExportError(f"cannot render: {exc}") from None
        self.renderer: Any
        if source.kind == "mpi":
            from renderers.gl_mpi import MPIRenderer

            self.renderer = MPIRenderer(self.ctx)
            # The MPI is baked from the centre camera (mono: the eye itself), between the eyes.
            w, h = plan.eye_size
            center = Camera.orbit(
                plan.target, plan.distance, plan.yaw, plan.pitch, plan.fov_deg, w, h
            )
            source.bind(self.ctx, center)
        else:
            from renderers.gl_tiles import splat_renderer_for

            self.renderer = splat_renderer_for(self.ctx)
            self.renderer.upload(source.rest_cloud())
        from renderers.cpu_splats import CPUSplatRenderer

        self._cpu_splats = isinstance(self.renderer, CPUSplatRenderer)
        self._last: dict[str, np.ndarray] = {}

    def _upload(self, values: np.ndarray) -> None:
        data = self.source.frame(values)
        if self.source.kind == "mpi":
            if self._last.get("mpi") is not data:  # a static MPI is uploaded once
                self.renderer.upload(data)
                self._last["mpi"] = data
            return
        # Re-upload only what changed since the last frame: the rig hands out the head's own
        # array objects for what a frame leaves alone (references are kept, so `is` is safe).
        # means go with opacities (one buffer: no GPU read-back), quats with scales.
        changed = {
            name: getattr(data, name)
            for name in ("means", "quats", "scales", "opacities", "sh")
            if self._last.get(name) is not getattr(data, name)
        }
        if "means" in changed or "opacities" in changed:
            changed["means"], changed["opacities"] = data.means, data.opacities
        if "quats" in changed or "scales" in changed:
            changed["quats"], changed["scales"] = data.quats, data.scales
        if changed:
            self.renderer.update(**changed)
            self._last.update(changed)

    def render(self, values: np.ndarray) -> np.ndarray:
        """The views for one frame of motion channels side by side: uint8 ``[H, C*w, 3]``."""
        t0 = time.perf_counter()
        self._upload(values)
        t1 = time.perf_counter()
        w, h = self.plan.render_size
        n = len(self.cameras)
        if self._cpu_splats:
            # The CPU renderer draws straight into numpy: no texture upload, blit or readback.
            strip = np.empty((h, w * n, 3), np.uint8)
            eye = np.empty((h, w, 4), np.uint8)
            for i, cam in enumerate(self.cameras):
                self.renderer.render_rgba8(cam, self.plan.background, out=eye)
                strip[:, i * w : (i + 1) * w] = eye[..., :3]
            t2 = time.perf_counter()
            self.timings["deform"] += t1 - t0
            self.timings["render"] += t2 - t1
            return strip
        target = self.renderer.target
        fbo = target.framebuffer(w * n, h)
        for i, cam in enumerate(self.cameras):
            self.renderer.draw(cam, fbo, viewport=(i * w, 0, w, h), background=self.plan.background)
        raw = fbo.read(viewport=(0, 0, w * n, h), components=3, dtype="f1", alignment=1)
        strip = np.frombuffer(raw, np.uint8).reshape(h, w * n, 3)[::-1]
        t2 = time.perf_counter()
        self.timings["deform"] += t1 - t0
        self.timings["render"] += t2 - t1
        return strip

    def release(self) -> None:
        """Free this renderer's GL objects (the context belongs to the caller or is shared)."""
        self.renderer.release()
        release_source = getattr(self.source, "release", None)
        if release_source is not None:
            release_source()
        if self._shared_lock is not None:
            self._shared_lock.release()  # the shared context itself lives on
            self._shared_lock = None
