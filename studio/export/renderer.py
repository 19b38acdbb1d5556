"""The offline renderer: exact frames of the document, rendered headless.

Per output frame, two steps: :meth:`OfflineRenderer.prepare` (CPU work: the head's deformation
at the frame's motion channels and, for the native CPU splat renderer, the attribute update;
thread-safe, so studio.export.pipeline runs it for frame i+1 on a worker thread) and
:meth:`OfflineRenderer.draw` (in the GL thread: the CPU renderer draws all eyes in one call
straight into a fresh numpy strip, two renderer instances alternating so that one is updated
while the other draws; a GL renderer gets the changed attributes uploaded, draws every eye into
one shared framebuffer side by side and reads it back once). Only what changed since the last
frame is uploaded. Qt-free; moderngl is imported when a renderer is made.

Cameras: the project's orbit camera (yaw, pitch, distance, target) with the export's vertical
FOV; stereo is renderers.StereoRig (parallel cameras, off-axis principal-point shift, zero
disparity at the convergence distance, crossed disparity nearer). Half side-by-side renders each
eye at W/2 x H with the horizontal focal length halved (anamorphic), so a player stretching it
back to W x H sees square pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from renderers.camera import Camera, StereoRig
from studio.export.errors import ExportError
from studio.export.heads import HeadSource
from studio.export.settings import ExportPlan

if TYPE_CHECKING:
    import moderngl

__all__ = ["OfflineRenderer", "PreparedFrame", "eye_cameras", "layout_frame", "split_eyes"]


@dataclass(frozen=True)
class PreparedFrame:
    """A frame ready to draw: its slot (which CPU renderer holds its attributes) and, for the
    GL renderers, the head's data to upload in the GL thread."""

    slot: int
    data: Any


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
    "deform" (the head's deformation), "upload" (attribute update: covariances, GL buffers),
    "render" (draw + readback). Per frame: :meth:`prepare` (CPU work, may run on a worker
    thread, see studio.export.pipeline) then :meth:`draw`; :meth:`render` does both.
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
        self.timings = {"deform": 0.0, "upload": 0.0, "render": 0.0}
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
        # Frames prepared ahead (Prefetcher): the CPU renderer gets a second instance, so the
        # worker updates one while the other renders; a GL renderer takes its upload in the GL
        # thread, so its slots only bound how many deformed frames are held.
        self.renderers: list[Any] = [self.renderer]
        if self._cpu_splats:
            spare = CPUSplatRenderer(threads=self.renderer.threads)
            spare.backface_culling = self.renderer.backface_culling
            spare.upload(source.rest_cloud())
            self.renderers.append(spare)
        self.slots: tuple[int, ...] = (0, 1)
        # prepare() may run on another thread than draw() unless the source works on the GL
        # context itself (MPI baking)
        self.threaded_prepare = bool(getattr(source, "thread_safe", False))
        self._last: list[dict[str, Any]] = [{} for _ in self.renderers]

    def _changed(self, data: Any, last: dict[str, Any]) -> dict[str, np.ndarray]:
        """The attributes of ``data`` that differ from ``last`` (what was uploaded before).

        The rig hands out the head's own array objects for what a frame leaves alone
        (references are kept, so ``is`` is safe). means go with opacities (one GL buffer: no
        read-back), quats with scales."""
        changed = {
            name: getattr(data, name)
            for name in ("means", "quats", "scales", "opacities", "sh")
            if last.get(name) is not getattr(data, name)
        }
        if "means" in changed or "opacities" in changed:
            changed["means"], changed["opacities"] = data.means, data.opacities
        if "quats" in changed or "scales" in changed:
            changed["quats"], changed["scales"] = data.quats, data.scales
        return changed

    def _upload(self, data: Any) -> None:
        """Hand a frame's data to the GL renderer (GL thread)."""
        last = self._last[0]
        if self.source.kind == "mpi":
            if last.get("mpi") is not data:  # a static MPI is uploaded once
                self.renderer.upload(data)
                last["mpi"] = data
            return
        changed = self._changed(data, last)
        if changed:
            self.renderer.update(**changed)
            last.update(changed)

    def prepare(self, values: np.ndarray, slot: int = 0) -> PreparedFrame:
        """The CPU work of one frame of motion channels: the head's deformation and, for the CPU
        splat renderer, the update of ``self.renderers[slot]`` with the changed attributes. Runs
        on a worker thread when ``threaded_prepare``; the slot must not be drawn meanwhile."""
        t0 = time.perf_counter()
        data = self.source.frame(values)
        t1 = time.perf_counter()
        self.timings["deform"] += t1 - t0
        if not self._cpu_splats:
            return PreparedFrame(slot, data)
        last = self._last[slot]
        changed = self._changed(data, last)
        if changed:
            self.renderers[slot].update(**changed)
            last.update(changed)
        self.timings["upload"] += time.perf_counter() - t1
        return PreparedFrame(slot, None)

    def draw(self, frame: PreparedFrame, layout: str | None = None) -> np.ndarray:
        """Render a prepared frame (in the GL thread): the views side by side, uint8
        ``[H, C*w, 3]`` (layout None) or the encoded picture of :func:`layout_frame` (a layout
        name). The CPU renderer's arrays are fresh each call."""
        t0 = time.perf_counter()
        if self._cpu_splats:
            # One native call for all eyes (one projection and depth sort of the cloud), each
            # written straight into its place in a fresh strip: no per-eye buffer, copy or
            # readback. A fresh array per frame, since the encoder reads it in place later.
            strip = self.renderers[frame.slot].render_rgb_strip(self.cameras, self.plan.background)
            self.timings["render"] += time.perf_counter() - t0
            return strip if layout is None else layout_frame(strip, layout)
        self._upload(frame.data)
        t1 = time.perf_counter()
        w, h = self.plan.render_size
        n = len(self.cameras)
        target = self.renderer.target
        fbo = target.framebuffer(w * n, h)
        for i, cam in enumerate(self.cameras):
            self.renderer.draw(cam, fbo, viewport=(i * w, 0, w, h), background=self.plan.background)
        raw = fbo.read(viewport=(0, 0, w * n, h), components=3, dtype="f1", alignment=1)
        strip = np.frombuffer(raw, np.uint8).reshape(h, w * n, 3)[::-1]
        t2 = time.perf_counter()
        self.timings["upload"] += t1 - t0
        self.timings["render"] += t2 - t1
        return strip if layout is None else layout_frame(strip, layout)

    def render(self, values: np.ndarray) -> np.ndarray:
        """The views for one frame of motion channels side by side: uint8 ``[H, C*w, 3]``
        (prepare and draw in this thread)."""
        return self.draw(self.prepare(values))

    def release(self) -> None:
        """Free this renderer's GL objects (the context belongs to the caller or is shared)."""
        for renderer in self.renderers:
            renderer.release()
        release_source = getattr(self.source, "release", None)
        if release_source is not None:
            release_source()
        if self._shared_lock is not None:
            self._shared_lock.release()  # the shared context itself lives on
            self._shared_lock = None
