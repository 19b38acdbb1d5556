"""CPU Gaussian-splat renderer: the native tile rasteriser (renderers/native/splat_cpu.c).

Same rules and image as the torch reference (renderers/reference.py) and the GL renderers
(>= 60 dB against the tiled GL renderer on the default head), for machines without a GPU: on
the 2-core dev box it renders the default head several times faster than llvmpipe draws it
(docs/PERFORMANCE.md, Renderers; benchmarks/render_cpu.py). ``splat_renderer_for``
(renderers/gl_tiles.py) picks it on a software GL when the native library is available.

API, shared with ``GaussianSplatRenderer`` so callers can swap them: ``upload(cloud)``,
``update(...)`` (any subset of the attributes, same shapes and errors),
``render(cameras, background) -> [C, H, W, 4]`` float32, and, with a moderngl context,
``draw(camera, framebuffer, viewport, background)`` (uploads the image into a texture and
blends it into the framebuffer). Extra: ``render_rgba8`` (uint8, into a caller's buffer; what
the viewport needs), ``render_rgb_strip`` (the eyes side by side as uint8 RGB, in one call and
straight into the caller's frame; what export encodes), ``render_planes`` /
``render_planes_rgba8`` (one image per plane, for MPI baking: optionally each Gaussian split
between two planes inside the kernel, straight colour, and only the touched tiles of a zeroed
buffer written), ``stage_timings``.

Cost per frame: covariances come from quats and scales inside the kernel (a posed frame hands
new quats; no numpy pass), the cameras of one call share one projection of the cloud and, for a
parallel stereo rig, one depth sort; scratch memory stays allocated between calls.

Threads: OpenMP, ``threads`` (default: the CPUs this process may run on). Calls release the GIL
(ctypes). Not thread-safe per instance (the attribute arrays and scratch memory are shared).
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from renderers.gaussians import BACKFACE_COS, GaussianCloud, sh_degree_for_coeffs
from renderers.gl_context import (
    begin_viewport,
    camera_list,
    load_shader,
    use_premultiplied_blending,
)
from renderers.gl_splats import NEAR_PLANE, checked_attributes
from renderers.native import NativeUnavailable, load_library

if TYPE_CHECKING:
    import moderngl

    from renderers.camera import Camera

__all__ = ["CPUSplatRenderer", "NativeUnavailable", "default_threads"]


def default_threads() -> int:
    """Worker threads for the native kernels: ``$THS_THREADS``, else the usable CPUs."""
    env = os.environ.get("THS_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


STAGES = ("project", "sort", "bin", "raster", "output")  # ``stage_timings`` keys (kernel stages)
STRAIGHT, ZEROED = 1, 2  # ths_splat_render_ex flags (render_planes_rgba8)


class CPUSplatRenderer:
    """Renders one GaussianCloud on the CPU with the native tile rasteriser.

    ctx: a moderngl context, only needed for ``draw`` (the texture and blit live on it).
    threads: OpenMP threads per call (None or 0: ``default_threads()``; < 0: ValueError).
    Raises NativeUnavailable from the constructor when the native library cannot be built or
    loaded (no C compiler): use a GL renderer then.
    """

    def __init__(self, ctx: moderngl.Context | None = None, threads: int | None = None) -> None:
        if threads is not None and threads < 0:
            raise ValueError(f"CPUSplatRenderer: threads must be >= 1 (or None), got {threads}")
        self._lib = load_library()
        self.ctx = ctx
        self.threads = threads or default_threads()
        self._n = 0
        self._k = 1
        self._means = np.zeros((0, 3), np.float32)
        self._quats = np.zeros((0, 4), np.float32)
        self._scales = np.zeros((0, 3), np.float32)
        # Covariances [N, 6] when given by update(covariances=); None: the kernel computes them
        # from quats and scales (in C: ~4 ms less per posed frame than numpy on 2 cores).
        self._cov: np.ndarray | None = None
        self._opacities = np.zeros(0, np.float32)
        self._sh = np.zeros((0, 1, 3), np.float32)
        self._facing = np.zeros(0, np.int8)
        self._one_sided = False  # any facing != 0 (normals come from quats, in the kernel)
        # Cull one-sided Gaussians facing away from the camera (as the GL renderers do).
        self.backface_culling = True
        self.timings = {"render": 0.0, "upload": 0.0}
        # Seconds per kernel stage, accumulated over calls (benchmarks/render_cpu.py).
        self.stage_timings = dict.fromkeys(STAGES, 0.0)
        self.last_entries = 0  # (Gaussian, tile) pairs of the last render (benchmarks)
        self._stages = np.zeros(len(STAGES), np.float64)
        # Scratch buffers kept between calls: no malloc and page faults per frame.
        self._ws = self._lib.ths_workspace_new()
        if not self._ws:
            raise MemoryError("CPUSplatRenderer: cannot allocate the native workspace")
        self._finalizer = weakref.finalize(self, self._lib.ths_workspace_free, self._ws)
        self._texture: moderngl.Texture | None = None
        self._blit_prog: moderngl.Program | None = None
        self._blit_vao: moderngl.VertexArray | None = None
        self._image: np.ndarray | None = None  # uint8 staging image for draw()

    # ------------------------------------------------------------------------------ data
    @property
    def num_gaussians(self) -> int:
        return self._n

    def upload(self, cloud: GaussianCloud) -> None:
        """Take every attribute of ``cloud`` (replaces the previous cloud)."""
        self._n, self._k = len(cloud), cloud.sh.shape[1]
        sh_degree_for_coeffs(self._k)
        self._facing = np.zeros(self._n, np.int8)
        self._one_sided = False
        self.update(
            cloud.means, cloud.quats, cloud.scales, cloud.opacities, cloud.sh, facing=cloud.facing
        )

    def update(
        self,
        means: np.ndarray | None = None,
        quats: np.ndarray | None = None,
        scales: np.ndarray | None = None,
        opacities: np.ndarray | None = None,
        sh: np.ndarray | None = None,
        covariances: np.ndarray | None = None,
        facing: np.ndarray | None = None,
    ) -> None:
        """Replace the given attributes of the current cloud (same N and SH size): the contract
        of ``GaussianSplatRenderer.update`` (shapes, quats with scales or covariances [N, 6],
        facing [N] in {-1, 0, 1}; ValueError otherwise, and then nothing changes). One-sided
        Gaussians take their normals from the last quats given."""
        new = checked_attributes(
            self._n, self._k, means, quats, scales, opacities, sh, covariances, facing
        )
        if "covariances" in new:
            new["cov"] = new.pop("covariances")
        for name, value in new.items():
            setattr(self, "_" + name, value)
        if quats is not None:
            self._cov = None
        if facing is not None:
            self._one_sided = bool(self._facing.any())

    # ------------------------------------------------------------------------------ drawing
    def _camera_block(self, camera: Camera) -> np.ndarray:
        w2c = np.asarray(camera.world_to_camera, dtype=np.float64)
        w, h = camera.width, camera.height
        lim = (
            (-0.15 * w - camera.cx) / camera.fx,
            (1.15 * w - camera.cx) / camera.fx,
            (-0.15 * h - camera.cy) / camera.fy,
            (1.15 * h - camera.cy) / camera.fy,
        )
        backface = BACKFACE_COS if self.backface_culling else 2.0
        block = np.concatenate(
            [
                w2c[:3, :3].ravel(),
                w2c[:3, 3],
                (camera.fx, camera.fy, camera.cx, camera.cy),
                lim,
                np.asarray(camera.position, dtype=np.float64),
                (backface, NEAR_PLANE),
            ]
        ).astype(np.float32)
        return block

    def _kernel(
        self,
        cams: list[Camera],
        out: np.ndarray,
        channels: int,
        strides: tuple[int, int, int],
        background: tuple[float, float, float] | None,
        plane: np.ndarray | None = None,
        planes: int = 1,
        far_weight: np.ndarray | None = None,
        flags: int = 0,
    ) -> None:
        """One native call for ``cams`` (one image size) into ``out`` (float32 or uint8):
        pixel (camera c, plane p, row y, column x, channel ch) at element c * strides[0] +
        p * strides[1] + y * strides[2] + x * channels + ch of ``out``. far_weight [N] float32
        (with ``plane``): split planes; flags: ``STRAIGHT`` | ``ZEROED`` (render_planes_rgba8)."""
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"CPUSplatRenderer: threads must be >= 1, got {self.threads!r}")
        t0 = time.perf_counter()
        bg = None if background is None else np.asarray(background, dtype=np.float32).reshape(3)
        block = np.stack([self._camera_block(c) for c in cams])  # [C, CAM_FLOATS]
        f32 = out.dtype == np.float32
        cov = self._cov
        stages = self._stages
        stages[:] = 0.0
        args = (
            self._n,
            _ptr(self._means),
            _ptr(cov),
            _ptr(self._quats),
            _ptr(self._scales),
            _ptr(self._facing) if self._one_sided else None,
            _ptr(self._opacities),
            _ptr(self._sh),
            self._k,
            _ptr(plane),
        )
        rest = (
            planes,
            len(cams),
            _ptr(block),
            cams[0].width,
            cams[0].height,
            _ptr(bg),
            _ptr(out) if f32 else None,
            None if f32 else _ptr(out),
            channels,
            *strides,
        )
        if hasattr(self._lib, "ths_splat_render_ex"):
            entries = self._lib.ths_splat_render_ex(
                *args, _ptr(far_weight), *rest, flags, self.threads, self._ws, _ptr(stages)
            )
        elif far_weight is None and flags == 0:  # an old build (benchmarks/render_cpu.py)
            entries = self._lib.ths_splat_render_cams(
                *args, *rest, self.threads, self._ws, _ptr(stages)
            )
        else:
            raise NativeUnavailable("this native build has no split planes / straight output")
        self.timings["render"] += time.perf_counter() - t0
        if entries < 0:
            raise MemoryError(
                f"CPU splat render of {self._n} Gaussians at {cams[0].width}x{cams[0].height} "
                f"x {len(cams)} camera(s) x {planes} plane(s) failed: out of memory"
            )
        for name, seconds in zip(STAGES, stages.tolist(), strict=True):
            self.stage_timings[name] += seconds
        self.last_entries = int(entries)

    def render(
        self,
        cameras: Camera | Sequence[Camera],
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> np.ndarray:
        """[C, H, W, 4] float32: RGB composited over ``background``, alpha = coverage. All
        cameras must share one image size (ValueError). One native call for all cameras (a
        stereo pair is sorted once)."""
        cams = camera_list(cameras)
        h, w = cams[0].height, cams[0].width
        out = np.empty((len(cams), h, w, 4), np.float32)
        self._kernel(cams, out, 4, (h * w * 4, 0, w * 4), background)
        return out

    def render_rgba8(
        self,
        camera: Camera,
        background: tuple[float, float, float] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """[H, W, 4] uint8 (row 0 at the top): RGB over ``background`` and alpha = coverage, or
        premultiplied RGB when ``background`` is None. ``out``: a C-contiguous uint8 array of
        that shape to write into. (Side-by-side eyes: ``render_rgb_strip``.)"""
        shape = (camera.height, camera.width, 4)
        if out is None:
            out = np.empty(shape, np.uint8)
        elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"render_rgba8(): out must be C-contiguous uint8 {shape}")
        self._kernel([camera], out, 4, (0, 0, camera.width * 4), background)
        return out

    def render_rgb_strip(
        self,
        cameras: Camera | Sequence[Camera],
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The cameras' images side by side, RGB over ``background``: uint8 [H, C * W, 3] (row 0
        at the top), what video export encodes. One native call writes every eye straight into
        its place (no per-eye buffer or copy). ``out``: a uint8 array of that shape whose
        pixels are contiguous (strides (any, 3, 1)), e.g. a slice of a wider frame's rows."""
        cams = camera_list(cameras)
        h, w = cams[0].height, cams[0].width
        shape = (h, len(cams) * w, 3)
        if out is None:
            out = np.empty(shape, np.uint8)
        elif (
            out.shape != shape
            or out.dtype != np.uint8
            or out.strides[1:] != (3, 1)
            or out.strides[0] < 3 * shape[1]
        ):
            raise ValueError(
                f"render_rgb_strip(): out must be uint8 {shape} with strides (>= {3 * shape[1]},"
                " 3, 1)"
            )
        self._kernel(cams, out, 3, (w * 3, 0, out.strides[0]), background)
        return out

    def render_planes(
        self,
        camera: Camera,
        plane: np.ndarray,
        planes: int,
        far_weight: np.ndarray | None = None,
        straight: bool = False,
    ) -> np.ndarray:
        """One image per plane: [P, H, W, 4] float32 (row 0 at the top), premultiplied, or
        straight colour (colour / alpha, at most 1; 0 where alpha is 0) with ``straight``.
        Gaussian i is composited into plane ``plane[i]`` only (int [N]; outside [0, planes):
        skipped), each plane front to back with its own transmittance (MPI baking).

        far_weight [N] (float, or None): Gaussian i is split between planes ``plane[i]`` and
        ``plane[i] + 1`` with far weight w: renderers.bake's pieces (w below 1/512 or above
        1 - 1/512 rounds to 0 or 1; opacities 1 - (1 - o)^(1 - w) near and 1 - (1 - o)^w far;
        a far piece beyond the last plane is dropped), projected and sorted once. Raises
        ValueError for wrong shapes or planes < 1."""
        plane, far_weight = self._plane_index(plane, planes, far_weight)
        out = np.empty((planes, camera.height, camera.width, 4), np.float32)
        hw4 = camera.height * camera.width * 4
        self._kernel([camera], out, 4, (0, hw4, camera.width * 4), None, plane, planes,
                     far_weight, STRAIGHT if straight else 0)  # fmt: skip
        return out

    def render_planes_rgba8(
        self,
        camera: Camera,
        plane: np.ndarray,
        planes: int,
        out: np.ndarray | None = None,
        far_weight: np.ndarray | None = None,
        straight: bool = False,
        zeroed: bool = False,
    ) -> np.ndarray:
        """``render_planes`` as rounded uint8 [P, H, W, 4] (a quarter of the memory traffic),
        into ``out`` (C-contiguous) when given. ``straight``: the rounded premultiplied planes
        unpremultiplied exactly as OpenCV's COLOR_mRGBA2RGBA does (what the GL baker's
        unpremultiply pass gives, within a level). ``zeroed``: ``out`` is all zeros already
        (e.g. ``np.zeros``: untouched pages are never even faulted in), so tiles that receive
        nothing are not written (most of an MPI's planes)."""
        plane, far_weight = self._plane_index(plane, planes, far_weight)
        shape = (planes, camera.height, camera.width, 4)
        if out is None:
            out = np.zeros(shape, np.uint8)
            zeroed = True
        elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"render_planes_rgba8(): out must be C-contiguous uint8 {shape}")
        flags = (STRAIGHT if straight else 0) | (ZEROED if zeroed else 0)
        hw4 = camera.height * camera.width * 4
        self._kernel([camera], out, 4, (0, hw4, camera.width * 4), None, plane, planes,
                     far_weight, flags)  # fmt: skip
        return out

    def _plane_index(
        self, plane: np.ndarray, planes: int, far_weight: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        plane = np.ascontiguousarray(plane, dtype=np.int32)
        if plane.shape != (self._n,):
            raise ValueError(f"render_planes(): plane must have shape ({self._n},)")
        if planes < 1:
            raise ValueError("render_planes(): planes must be >= 1")
        if far_weight is not None:
            far_weight = np.ascontiguousarray(far_weight, dtype=np.float32)
            if far_weight.shape != (self._n,):
                raise ValueError(f"render_planes(): far_weight must have shape ({self._n},)")
        return plane, far_weight

    def draw(
        self,
        camera: Camera,
        framebuffer: moderngl.Framebuffer,
        viewport: tuple[int, int, int, int] | None = None,
        background: tuple[float, float, float] | None = (0.0, 0.0, 0.0),
    ) -> None:
        """Render on the CPU and blend the image into ``framebuffer`` (the contract of
        ``GaussianSplatRenderer.draw``: viewport (x, y, w, h) with GL's bottom-left origin,
        background cleared with alpha 0 first, or None to blend over existing content; leaves
        premultiplied blending enabled). Needs the ``ctx`` given to the constructor."""
        import moderngl as mgl

        ctx = self.ctx
        if ctx is None:
            raise RuntimeError("CPUSplatRenderer.draw() needs the moderngl context (ctx=)")
        w, h = camera.width, camera.height
        vp = viewport or (0, 0, w, h)
        begin_viewport(ctx, framebuffer, vp, background)
        if self._n == 0:
            ctx.scissor = None
            return
        if self._image is None or self._image.shape[:2] != (h, w):
            self._image = np.empty((h, w, 4), np.uint8)
        self.render_rgba8(camera, None, self._image)
        t0 = time.perf_counter()
        if self._texture is None or self._texture.size != (w, h):
            if self._texture is not None:
                self._texture.release()
            self._texture = ctx.texture((w, h), 4, dtype="f1")
            self._texture.filter = (mgl.NEAREST, mgl.NEAREST)
        self._texture.write(self._image)
        if self._blit_prog is None:
            self._blit_prog = ctx.program(
                vertex_shader=load_shader("cpu_splats_blit.vert"),
                fragment_shader=load_shader("cpu_splats_blit.frag"),
            )
            self._blit_vao = ctx.vertex_array(self._blit_prog, [])
        framebuffer.use()
        ctx.viewport = vp
        ctx.scissor = vp
        use_premultiplied_blending(ctx)
        self._texture.use(0)
        self._blit_prog["u_image"].value = 0
        self._blit_prog["u_viewport"].value = (vp[0], vp[1], w, h)
        self._blit_vao.render(mgl.TRIANGLES, vertices=3)
        ctx.scissor = None
        self.timings["upload"] += time.perf_counter() - t0

    def release(self) -> None:
        """Free the GL objects of ``draw`` (the context belongs to the caller)."""
        for obj in (self._blit_vao, self._blit_prog, self._texture):
            if obj is not None:
                obj.release()
        self._blit_vao = self._blit_prog = self._texture = None
