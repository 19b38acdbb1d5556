"""CPU Gaussian-splat renderer: the native tile rasteriser (renderers/native/splat_cpu.c).

Same rules and image as the torch reference (renderers/reference.py) and the GL renderers
(>= 60 dB against the tiled GL renderer on the default head), for machines without a GPU: on
the 2-core dev box it renders the default head ~3x faster than llvmpipe draws it
(docs/PERFORMANCE.md, Renderers). ``splat_renderer_for`` (renderers/gl_tiles.py) picks it on a
software GL when the native library is available.

API, shared with ``GaussianSplatRenderer`` so callers can swap them: ``upload(cloud)``,
``update(...)`` (any subset of the attributes, same shapes and errors),
``render(cameras, background) -> [C, H, W, 4]`` float32, and, with a moderngl context,
``draw(camera, framebuffer, viewport, background)`` (uploads the image into a texture and
blends it into the framebuffer). Extra: ``render_rgba8`` (uint8, into a caller's buffer; what
the viewport and export need) and ``render_planes`` (one image per plane, for MPI baking).

Threads: OpenMP, ``threads`` (default: the CPUs this process may run on). Calls release the GIL
(ctypes). Not thread-safe per instance (the attribute arrays are replaced by ``update``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from renderers.gaussians import BACKFACE_COS, GaussianCloud, facing_normals, sh_degree_for_coeffs
from renderers.gl_context import begin_viewport, camera_list, load_shader
from renderers.gl_splats import NEAR_PLANE, _checked, packed_covariances
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


class CPUSplatRenderer:
    """Renders one GaussianCloud on the CPU with the native tile rasteriser.

    ctx: a moderngl context, only needed for ``draw`` (the texture and blit live on it).
    threads: OpenMP threads per call (default ``default_threads()``).
    Raises NativeUnavailable from the constructor when the native library cannot be built or
    loaded (no C compiler): use a GL renderer then.
    """

    def __init__(self, ctx: moderngl.Context | None = None, threads: int | None = None) -> None:
        self._lib = load_library()
        self.ctx = ctx
        self.threads = threads or default_threads()
        self._n = 0
        self._k = 1
        self._means = np.zeros((0, 3), np.float32)
        self._quats = np.zeros((0, 4), np.float32)
        self._cov = np.zeros((0, 6), np.float32)
        self._opacities = np.zeros(0, np.float32)
        self._sh = np.zeros((0, 1, 3), np.float32)
        self._facing = np.zeros(0, np.int8)
        self._normals: np.ndarray | None = None  # None: no one-sided Gaussians
        # Cull one-sided Gaussians facing away from the camera (as the GL renderers do).
        self.backface_culling = True
        self.timings = {"render": 0.0, "upload": 0.0}
        self.last_entries = 0  # (Gaussian, tile) pairs of the last render (benchmarks)
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
        self._normals = None
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
        facing [N] in {-1, 0, 1}; ValueError otherwise)."""
        n = self._n
        if (quats is None) != (scales is None):
            raise ValueError("update(): quats and scales must be given together")
        if covariances is not None and quats is not None:
            raise ValueError("update(): give covariances or quats+scales, not both")
        if means is not None:
            self._means = _checked(means, (n, 3), "means")
        if opacities is not None:
            self._opacities = _checked(opacities, (n,), "opacities")
        normals_stale = False
        if facing is not None:
            facing = np.asarray(facing)
            if facing.shape != (n,):
                raise ValueError(f"update(): facing must have shape {(n,)}, got {facing.shape}")
            self._facing = np.ascontiguousarray(facing, dtype=np.int8)
            normals_stale = True
        if quats is not None:
            self._quats = _checked(quats, (n, 4), "quats")
            self._cov = packed_covariances(self._quats, _checked(scales, (n, 3), "scales"))
            normals_stale = True
        if covariances is not None:
            self._cov = _checked(covariances, (n, 6), "covariances")
        if normals_stale:
            one_sided = bool(self._facing.any()) and self._quats.shape[0] == n
            self._normals = facing_normals(self._quats, self._facing) if one_sided else None
        if sh is not None:
            self._sh = _checked(sh, (n, self._k, 3), "sh")

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

    def _run(
        self,
        camera: Camera,
        out_f32: np.ndarray | None,
        out_u8: np.ndarray | None,
        background: tuple[float, float, float] | None,
        plane: np.ndarray | None = None,
        planes: int = 1,
    ) -> None:
        t0 = time.perf_counter()
        bg = None if background is None else np.asarray(background, dtype=np.float32).reshape(3)
        entries = self._lib.ths_splat_render(
            self._n,
            _ptr(self._means),
            _ptr(self._cov),
            _ptr(self._opacities),
            _ptr(self._normals),
            _ptr(self._sh),
            self._k,
            _ptr(plane),
            planes,
            _ptr(self._camera_block(camera)),
            camera.width,
            camera.height,
            _ptr(bg),
            _ptr(out_f32),
            _ptr(out_u8),
            self.threads,
        )
        self.timings["render"] += time.perf_counter() - t0
        if entries < 0:
            raise MemoryError(
                f"CPU splat render of {self._n} Gaussians at {camera.width}x{camera.height} "
                f"x {planes} plane(s) failed: out of memory"
            )
        self.last_entries = int(entries)

    def render(
        self,
        cameras: Camera | Sequence[Camera],
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> np.ndarray:
        """[C, H, W, 4] float32: RGB composited over ``background``, alpha = coverage. All
        cameras must share one image size (ValueError)."""
        cams = camera_list(cameras)
        out = np.empty((len(cams), cams[0].height, cams[0].width, 4), np.float32)
        for i, cam in enumerate(cams):
            self._run(cam, out[i], None, background)
        return out

    def render_rgba8(
        self,
        camera: Camera,
        background: tuple[float, float, float] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """[H, W, 4] uint8 (row 0 at the top): RGB over ``background`` and alpha = coverage, or
        premultiplied RGB when ``background`` is None. ``out``: a C-contiguous uint8 array of
        that shape to write into (e.g. one eye's half of a side-by-side frame is not
        contiguous; pass a separate buffer)."""
        shape = (camera.height, camera.width, 4)
        if out is None:
            out = np.empty(shape, np.uint8)
        elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"render_rgba8(): out must be C-contiguous uint8 {shape}")
        self._run(camera, None, out, background)
        return out

    def render_planes(self, camera: Camera, plane: np.ndarray, planes: int) -> np.ndarray:
        """One premultiplied image per plane: [P, H, W, 4] float32 (row 0 at the top), Gaussian
        i composited into plane ``plane[i]`` only (int [N]; outside [0, planes): skipped), each
        plane front to back with its own transmittance (MPI baking)."""
        plane = np.ascontiguousarray(plane, dtype=np.int32)
        if plane.shape != (self._n,):
            raise ValueError(f"render_planes(): plane must have shape ({self._n},)")
        if planes < 1:
            raise ValueError("render_planes(): planes must be >= 1")
        out = np.empty((planes, camera.height, camera.width, 4), np.float32)
        self._run(camera, out, None, None, plane, planes)
        return out

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
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE)
        ctx.enable(mgl.BLEND)
        ctx.blend_func = (mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA)
        ctx.blend_equation = mgl.FUNC_ADD
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
