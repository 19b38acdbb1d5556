"""Bake a Gaussian head into a multiplane image (MPI) seen from one camera.

``bake_mpi(cloud, camera, depths)`` slices the Gaussians by their depth in the baking camera into
D fronto-parallel planes (IM-Portrait's layout by default: 24 planes equally spaced in disparity
from ``r - 0.15`` to ``r + 0.05`` around a head at ``r`` metres) and renders each plane's slice
from the baking camera into a straight-alpha RGBA plane. Compositing the planes back to front
with "over" from the baking camera reproduces the Gaussian render (exactly for hard assignment up
to 8-bit quantisation; to ~40 dB PSNR on the default head with the default soft assignment), and
the MPI renders plausibly from cameras near the baking one.

Assignment. Gaussian i with camera depth z_i has the fractional plane coordinate f_i, the
position of its disparity 1/z_i among the planes' disparities (clamped to [0, D - 1]; plane 0 is
the nearest). With ``softness`` s in [0, 1] the weight of the farther of its two neighbouring
planes is ``w = clip((frac(f_i) - 0.5) / s + 0.5, 0, 1)`` (s = 1: linear in disparity; s = 0:
nearest plane). A Gaussian split between two planes becomes two pieces with the same shape and
colour and opacities ``1 - (1 - o)^(1 - w)`` and ``1 - (1 - o)^w``: their "over" composite has
the original opacity at the centre, so the split changes the image very little, while a Gaussian
moving in depth (an animated head) fades between planes instead of jumping.

Rendering. Three paths give the same planes (tests: CPU against GL >= 45 dB PSNR on the default
head, CPU against torch >= 50 dB on a test blob):

- CPU (``CPUMPIBaker``): the native tile rasteriser (renderers/cpu_splats.py) composites every
  plane in one call (``plane[i]`` routes Gaussian i to its plane, each plane with its own
  transmittance). Soft assignment hands the kernel each Gaussian's nearer plane and far weight:
  the kernel makes the two pieces itself (the opacities and the 1/512 rule above), so the cloud
  is projected and depth-sorted once, not twice. The kernel writes straight 8-bit colour
  (OpenCV's unpremultiply of its rounded premultiplied values, per tile) into zeroed planes,
  and only the tiles that receive something (most of 24 planes is empty). Used on a software
  GL (llvmpipe) or without GL when the native library loads: on the 2-core dev box it bakes the
  default head in ~0.2 of the time the GL path takes on llvmpipe (docs/PERFORMANCE.md, Heads).
- GL (``MPIBaker`` on a GPU): ``renderers.gl_splats.GaussianSplatRenderer`` on one context
  draws the slices into the tiles of one atlas framebuffer (a scissored viewport per plane), a
  full-screen pass divides colour by alpha (straight colour; 0 where alpha is 0), and one
  readback returns every plane.
- torch: each slice with the pure-torch reference (slow; the oracle in tests).

Every path returns 8-bit straight planes by default (``MPI.rgba`` uint8, what the MPI renderers
and the rigged MPI heads take without conversion); ``dtype="float32"`` converts.
"""

from __future__ import annotations

import abc
import math
import threading
from typing import TYPE_CHECKING

import numpy as np

from renderers.camera import Camera
from renderers.gaussians import GaussianCloud
from renderers.mpi import (
    DEFAULT_FAR_OFFSET,
    DEFAULT_NEAR_OFFSET,
    DEFAULT_NUM_PLANES,
    MPI,
    head_mpi_depths,
)
from renderers.sorting import view_depths

if TYPE_CHECKING:
    import moderngl

__all__ = [
    "BAKE_BACKENDS",
    "BAKE_DTYPES",
    "CPUMPIBaker",
    "MPIBaker",
    "assign_planes",
    "bake_mpi",
    "baking_distance",
    "plane_pieces",
    "release_baker",
    "shared_context",
]

BAKE_BACKENDS = ("auto", "cpu", "gl", "torch")
BAKE_DTYPES = ("uint8", "float32")
_MIN_PIECE = 1.0 / 512.0  # pieces lighter than this go to the other plane (no invisible splats)

_UNPREMULTIPLY_VS = """
#version 330 core
void main() {
    // One triangle covering the viewport.
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    gl_Position = vec4(2.0 * p - 1.0, 0.0, 1.0);
}
"""
_UNPREMULTIPLY_FS = """
#version 330 core
uniform sampler2D u_atlas;
out vec4 f_color;
void main() {
    vec4 c = texelFetch(u_atlas, ivec2(gl_FragCoord.xy), 0);
    // The atlas holds 8-bit premultiplied colour: divide by alpha for straight colour.
    f_color = c.a > 0.0 ? vec4(min(c.rgb / c.a, vec3(1.0)), c.a) : vec4(0.0);
}
"""


# ---------------------------------------------------------------------------------- assignment
def baking_distance(cloud: GaussianCloud, camera: Camera) -> float:
    """Camera-space depth (metres) of the centre of the cloud's bounding box: the head distance
    r that the default planes are placed around. Raises ValueError for an empty cloud."""
    centre = cloud.center().astype(np.float64)
    w2c = np.asarray(camera.world_to_camera, dtype=np.float64)
    return float(w2c[2, :3] @ centre + w2c[2, 3])


def assign_planes(
    z: np.ndarray, depths: np.ndarray, softness: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Soft assignment of camera depths ``z [N]`` (metres, > 0) to planes ``depths [D]`` (strictly
    increasing, plane 0 nearest): (lo [N] int64, w [N] float32). Point i belongs to plane lo with
    weight 1 - w and to plane lo + 1 with weight w (w is 0 when lo is the last plane).

    The plane coordinate is interpolated in disparity (module docstring); ``softness`` in [0, 1]
    narrows the blend band (0: nearest plane). Raises ValueError for bad depths or softness.
    """
    depths = np.asarray(depths, dtype=np.float64).reshape(-1)
    if depths.size == 0 or not np.all(np.isfinite(depths)) or np.any(depths <= 0):
        raise ValueError("assign_planes: depths must be finite and > 0")
    if np.any(np.diff(depths) <= 0):
        raise ValueError("assign_planes: depths must be strictly increasing (plane 0 nearest)")
    if not 0.0 <= float(softness) <= 1.0:
        raise ValueError(f"assign_planes: softness must lie in [0, 1], got {softness}")
    z = np.asarray(z, dtype=np.float32)
    d = depths.size
    if d == 1:
        return np.zeros(z.shape, np.int64), np.zeros(z.shape, np.float32)
    inv_z = np.float32(1.0) / np.maximum(z, np.float32(1e-6))
    inv_d = 1.0 / depths
    step = inv_d[0] - inv_d[1]
    if np.allclose(inv_d[:-1] - inv_d[1:], step, rtol=1e-6, atol=0.0):
        # Equally spaced in disparity (IM-Portrait's layout): the plane coordinate in closed
        # form, ~10x cheaper than np.interp (float64) on a frame's 50k Gaussians.
        f = (np.float32(inv_d[0]) - inv_z) * np.float32(1.0 / step)
        f = np.clip(f, np.float32(0.0), np.float32(d - 1), out=f)
    else:
        # Disparity decreases with the plane index: interpolate on the reversed axis.
        disp = inv_d[::-1].astype(np.float32)
        pos = np.arange(d - 1, -1, -1, dtype=np.float32)
        f = np.interp(inv_z, disp, pos).astype(np.float32)
    lo_f = np.minimum(np.floor(f), np.float32(d - 2))
    t = f - lo_f  # float32 (t = f - lo with int64 lo would promote to float64)
    if softness <= 0.0:
        w = (t >= 0.5).astype(np.float32)
    else:
        t -= np.float32(0.5)
        t *= np.float32(1.0 / softness)
        t += np.float32(0.5)
        w = np.clip(t, np.float32(0.0), np.float32(1.0), out=t)
    return lo_f.astype(np.int64), w


def plane_pieces(
    cloud: GaussianCloud, camera: Camera, depths: np.ndarray, softness: float = 1.0
) -> tuple[GaussianCloud, np.ndarray]:
    """The cloud split into per-plane pieces: (pieces, plane [P] int64), pieces sorted by plane.

    Gaussians behind the camera (z < 0.01 m) are dropped. A Gaussian shared by two planes gives
    two pieces with complementary opacities (module docstring); pieces weighing less than 1/512
    are folded into the other plane.
    """
    z = view_depths(cloud.means, camera.world_to_camera)
    keep = np.flatnonzero(z >= 0.01)
    lo, w = assign_planes(z[keep], depths, softness)
    w = np.where(w < _MIN_PIECE, 0.0, np.where(w > 1.0 - _MIN_PIECE, 1.0, w)).astype(np.float32)
    near_part = w < 1.0
    far_part = w > 0.0
    src = np.concatenate([keep[near_part], keep[far_part]])
    plane = np.concatenate([lo[near_part], lo[far_part] + 1])
    share = np.concatenate([1.0 - w[near_part], w[far_part]]).astype(np.float32)
    o = cloud.opacities[src]
    # 1 - (1 - o)^share; exact 1 stays 1, share 1 keeps o bit for bit.
    op = np.where(share >= 1.0, o, -np.expm1(share * np.log1p(-np.minimum(o, 1.0 - 1e-7))))
    op = np.where(o >= 1.0, np.float32(1.0), op).astype(np.float32)
    order = np.argsort(plane, kind="stable")
    src, plane, op = src[order], plane[order], op[order]
    # facing goes along: one-sided Gaussians facing away from the baking camera are culled in
    # the planes as in the Gaussian render (without it the hidden far planes filled with the
    # back of the head, ~25 dB from the CPU baker's planes).
    pieces = GaussianCloud(
        cloud.means[src], cloud.quats[src], cloud.scales[src], op, cloud.sh[src],
        facing=cloud.facing[src],
    )  # fmt: skip
    return pieces, plane


def _check_inputs(
    cloud: GaussianCloud, camera: Camera, depths: np.ndarray | None, distance: float | None,
    num_planes: int, softness: float,
) -> np.ndarray:  # fmt: skip
    if not isinstance(cloud, GaussianCloud):
        raise TypeError(f"bake_mpi: cloud must be a GaussianCloud, got {type(cloud).__name__}")
    if not isinstance(camera, Camera):
        raise TypeError(f"bake_mpi: camera must be a Camera, got {type(camera).__name__}")
    if not 0.0 <= float(softness) <= 1.0:
        raise ValueError(f"bake_mpi: softness must lie in [0, 1], got {softness}")
    if depths is None:
        if distance is None:
            if len(cloud) == 0:
                raise ValueError("bake_mpi: an empty cloud needs explicit depths or a distance")
            distance = baking_distance(cloud, camera)
        if not math.isfinite(distance) or distance - DEFAULT_NEAR_OFFSET <= 0.01:
            raise ValueError(
                f"bake_mpi: the head is {distance:.3f} m from the baking camera; it must be more "
                f"than {DEFAULT_NEAR_OFFSET + 0.01:.2f} m in front of it"
            )
        return head_mpi_depths(distance, num_planes, DEFAULT_NEAR_OFFSET, DEFAULT_FAR_OFFSET)
    depths = np.array(depths, dtype=np.float64).reshape(-1)
    if depths.size == 0 or not np.all(np.isfinite(depths)) or np.any(depths <= 0):
        raise ValueError("bake_mpi: depths must be finite and > 0")
    if np.any(np.diff(depths) <= 0):
        raise ValueError("bake_mpi: depths must be strictly increasing (plane 0 nearest)")
    return depths


def _check_dtype(dtype: str) -> None:
    if dtype not in BAKE_DTYPES:
        raise ValueError(f"bake_mpi: dtype must be one of {BAKE_DTYPES}, got {dtype!r}")


def _as_mpi(planes: np.ndarray, depths: np.ndarray, camera: Camera, dtype: str) -> MPI:
    """MPI of uint8 straight planes [D, H, W, 4], kept (``dtype="uint8"``) or as float32."""
    if dtype == "float32":
        planes = np.multiply(planes, np.float32(1.0 / 255.0), dtype=np.float32)
    return MPI(planes, depths, camera)


# ---------------------------------------------------------------------------------- CPU baker
_NEAR_Z = 0.01  # Gaussians nearer than this (metres) are dropped, as in plane_pieces


class _Baker(abc.ABC):
    """What every baker shares: ``bake`` on top of the baker's own ``bake_uint8``."""

    timings: dict[str, float]

    @abc.abstractmethod
    def bake_uint8(
        self, cloud: GaussianCloud, camera: Camera, depths: np.ndarray, softness: float
    ) -> np.ndarray:
        """Straight-colour planes [D, H, W, 4] uint8 of ``cloud`` seen by ``camera``."""

    def bake(
        self,
        cloud: GaussianCloud,
        camera: Camera,
        depths: np.ndarray | None = None,
        *,
        distance: float | None = None,
        num_planes: int = DEFAULT_NUM_PLANES,
        softness: float = 1.0,
        dtype: str = "uint8",
    ) -> MPI:
        """:func:`bake_mpi` with this baker (same arguments, same result)."""
        import time

        _check_dtype(dtype)
        depths = _check_inputs(cloud, camera, depths, distance, num_planes, softness)
        planes = self.bake_uint8(cloud, camera, depths, softness)
        t0 = time.perf_counter()
        mpi = _as_mpi(planes, depths, camera, dtype)
        self.timings["convert"] = time.perf_counter() - t0
        return mpi


class CPUMPIBaker(_Baker):
    """Bakes clouds into MPIs on the CPU with the native splat rasteriser
    (``renderers.cpu_splats.CPUSplatRenderer.render_planes_rgba8``; module docstring,
    "Rendering").

    Keep one and reuse it for every frame. With ``reuse_arrays`` (default) only the attributes
    whose array objects changed since the last bake are handed to the renderer again (an
    animated head hands out new arrays for what a frame changes and its own for the rest), so
    do not change a cloud's arrays in place between two bakes; ``reuse_arrays=False`` hands
    everything over every bake. ``threads``: OpenMP threads (default: the usable CPUs). Not
    thread-safe. ``timings``: seconds of the last bake ("split": assignment and upload,
    "draw": the kernel, "read": 0, the unpremultiply is the kernel's now).

    Raises renderers.native.NativeUnavailable when the native library cannot be built or loaded
    (no C compiler, or THS_NATIVE=0).
    """

    def __init__(self, threads: int | None = None, reuse_arrays: bool = True) -> None:
        from renderers.cpu_splats import CPUSplatRenderer

        self.splats = CPUSplatRenderer(threads=threads)
        self.reuse_arrays = reuse_arrays
        self._n: int | None = None  # Gaussians the renderer holds (None: nothing uploaded)
        self._held: dict[str, np.ndarray] = {}  # the source arrays it holds
        self.timings: dict[str, float] = {}

    @staticmethod
    def _assign(
        cloud: GaussianCloud, camera: Camera, depths: np.ndarray, softness: float
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(plane [N] int32, far weight [N] float32 or None). Soft: Gaussian i is split by the
        kernel between planes plane[i] and plane[i] + 1 with far weight w[i] (plane_pieces'
        pieces: the same 1/512 rule and opacities); hard: it goes to plane[i] whole. Plane -1:
        nearer than 1 cm (dropped, as in plane_pieces)."""
        w2c = np.asarray(camera.world_to_camera, dtype=np.float32)
        z = cloud.means @ w2c[2, :3] + w2c[2, 3]  # [N] camera depth (a contiguous matvec)
        keep = z >= _NEAR_Z
        lo, w = assign_planes(np.where(keep, z, np.float32(1.0)), depths, softness)  # no NaN
        if softness > 0.0:
            return np.where(keep, lo, -1).astype(np.int32), w
        return np.where(keep, lo + (w > 0.5), -1).astype(np.int32), None

    def _upload(self, cloud: GaussianCloud) -> None:
        n = len(cloud)
        held = self._held

        def changed(*names: str) -> bool:
            return any(held.get(k) is not getattr(cloud, k) for k in names)

        if self._n != n or changed("sh", "facing"):
            self.splats.upload(cloud)
        else:
            kw: dict[str, np.ndarray] = {}
            if changed("means"):
                kw["means"] = cloud.means
            if changed("opacities"):
                kw["opacities"] = cloud.opacities
            if changed("quats", "scales"):
                kw["quats"], kw["scales"] = cloud.quats, cloud.scales
            if kw:
                self.splats.update(**kw)
        self._n = n
        if self.reuse_arrays:
            names = ("means", "quats", "scales", "opacities", "sh", "facing")
            self._held = {k: getattr(cloud, k) for k in names}

    def bake_uint8(
        self,
        cloud: GaussianCloud,
        camera: Camera,
        depths: np.ndarray,
        softness: float = 1.0,
    ) -> np.ndarray:
        """Straight-alpha planes [D, H, W, 4] uint8 (plane 0 nearest; row 0 at the top) of
        ``cloud`` seen from ``camera``, sliced at ``depths [D]`` (metres, increasing)."""
        import time

        t0 = time.perf_counter()
        depths = _check_inputs(cloud, camera, depths, None, len(depths), softness)
        d, w, h = depths.size, camera.width, camera.height
        # Zeroed (calloc: fresh zero pages): the kernel writes only the tiles that receive
        # something, and the pages it never touches are never faulted in.
        out = np.zeros((d, h, w, 4), np.uint8)
        if len(cloud) == 0:
            self.timings = {"split": time.perf_counter() - t0, "draw": 0.0, "read": 0.0}
            return out
        plane, far_weight = self._assign(cloud, camera, depths, softness)
        self._upload(cloud)
        t1 = time.perf_counter()
        # One projection and sort of the cloud (soft: the kernel makes both pieces), straight
        # rounded uint8 planes written by the kernel (OpenCV's unpremultiply of the 8-bit
        # premultiplied values, computed per tile), only where a tile received something.
        self.splats.render_planes_rgba8(camera, plane, d, out=out, far_weight=far_weight,
                                        straight=True, zeroed=True)  # fmt: skip
        t2 = time.perf_counter()
        self.timings = {"split": t1 - t0, "draw": t2 - t1, "read": 0.0}
        return out

    def release(self) -> None:
        """Drop the uploaded pieces (nothing else is held)."""
        empty = GaussianCloud(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3)), np.zeros(0),
                              np.zeros((0, 1, 3)))  # fmt: skip
        self.splats.upload(empty)
        self._n = None
        self._held = {}


# ---------------------------------------------------------------------------------- GL baker
class MPIBaker(_Baker):
    """Bakes clouds into MPIs for one OpenGL context: ``ctx`` (e.g. the viewport's), or None
    for the headless EGL context that ``renderers.render`` uses (created if needed: one context
    per process, since moderngl does not switch between standalone contexts). Keep one baker per
    context and reuse it for every frame: buffers and the atlas are reallocated only to grow.
    Not thread-safe; use it from the context's thread.

    renderer: "auto" (the native CPU rasteriser, :class:`CPUMPIBaker`, when ``ctx`` is a software
    GL such as llvmpipe and the native library loads; else GL), "gl" (always the GL atlas) or
    "cpu" (always the CPU rasteriser). ``self.renderer`` says which one bakes.

    Raises GLUnavailableError (renderers.gl_context) when ``ctx`` is None and no EGL context can
    be created; NativeUnavailable for renderer="cpu" without the native library; ValueError for
    an unknown renderer.
    """

    def __init__(self, ctx: moderngl.Context | None = None, renderer: str = "auto") -> None:
        from renderers.gl_splats import GaussianSplatRenderer

        if renderer not in ("auto", "cpu", "gl"):
            raise ValueError(f"MPIBaker: renderer must be 'auto', 'cpu' or 'gl', got {renderer!r}")
        self.ctx = shared_context() if ctx is None else ctx
        self.cpu: CPUMPIBaker | None = None
        if renderer == "cpu" or (renderer == "auto" and _software_gl(self.ctx)):
            from renderers.native import NativeUnavailable

            try:
                self.cpu = CPUMPIBaker()
            except NativeUnavailable:
                if renderer == "cpu":
                    raise
        self.renderer = "cpu" if self.cpu is not None else "gl"
        self.splats = GaussianSplatRenderer(self.ctx)
        self._unpremultiply = self.ctx.program(
            vertex_shader=_UNPREMULTIPLY_VS, fragment_shader=_UNPREMULTIPLY_FS
        )
        self._empty_vao = self.ctx.vertex_array(self._unpremultiply, [])
        info = self.ctx.info
        max_size = int(info.get("GL_MAX_TEXTURE_SIZE", 0) or 8192)
        max_vp = [int(v) for v in info.get("GL_MAX_VIEWPORT_DIMS", ()) if int(v) > 0]
        self._max_side = int(min(max_size, *max_vp, 16384))
        self._atlas_size = (0, 0)
        self._atlas_tex: moderngl.Texture | None = None
        self._atlas_fbo: moderngl.Framebuffer | None = None
        self._out_rb: moderngl.Renderbuffer | None = None
        self._out_fbo: moderngl.Framebuffer | None = None
        # Seconds of the last bake: split, draw (upload+sort+raster), readback, convert.
        self.timings: dict[str, float] = {}

    def _atlas(self, width: int, height: int) -> None:
        if (
            self._atlas_fbo is not None
            and width <= self._atlas_size[0]
            and height <= self._atlas_size[1]
        ):
            return
        w, h = max(width, self._atlas_size[0]), max(height, self._atlas_size[1])
        for obj in (self._atlas_fbo, self._atlas_tex, self._out_fbo, self._out_rb):
            if obj is not None:
                obj.release()
        self._atlas_tex = self.ctx.texture((w, h), 4, dtype="f1")
        self._atlas_fbo = self.ctx.framebuffer(color_attachments=[self._atlas_tex])
        self._out_rb = self.ctx.renderbuffer((w, h), 4, dtype="f1")
        self._out_fbo = self.ctx.framebuffer(color_attachments=[self._out_rb])
        self._atlas_size = (w, h)

    def bake_uint8(
        self,
        cloud: GaussianCloud,
        camera: Camera,
        depths: np.ndarray,
        softness: float = 1.0,
    ) -> np.ndarray:
        """Straight-alpha planes [D, H, W, 4] uint8 (plane 0 nearest; row 0 at the top) of
        ``cloud`` seen from ``camera``, sliced at ``depths [D]`` (metres, increasing)."""
        if self.cpu is not None:
            planes = self.cpu.bake_uint8(cloud, camera, depths, softness)
            self.timings = self.cpu.timings
            return planes
        # The context must be current (as for every renderer here; a Qt caller makes its
        # context current first). moderngl's ``with ctx`` is not used: on EGL it does not
        # restore the previous context reliably.
        return self._bake_uint8(cloud, camera, depths, softness)

    def _bake_uint8(
        self, cloud: GaussianCloud, camera: Camera, depths: np.ndarray, softness: float
    ) -> np.ndarray:
        import time

        import moderngl

        t0 = time.perf_counter()
        depths = _check_inputs(cloud, camera, depths, None, len(depths), softness)
        d, w, h = depths.size, camera.width, camera.height
        pieces, plane = plane_pieces(cloud, camera, depths, softness)
        bounds = np.searchsorted(plane, np.arange(d + 1))
        t1 = time.perf_counter()
        cols_max = max(1, self._max_side // w)
        rows_max = max(1, self._max_side // h)
        if cols_max * rows_max < 1 or w > self._max_side or h > self._max_side:
            raise ValueError(f"bake_mpi: {w}x{h} planes exceed the GL size limit {self._max_side}")
        per_pass = min(d, cols_max * rows_max)
        out = np.empty((d, h, w, 4), np.uint8)
        t_draw = t_read = 0.0
        for first in range(0, d, per_pass):
            count = min(per_pass, d - first)
            cols = min(count, cols_max, max(1, math.ceil(math.sqrt(count))))
            rows = math.ceil(count / cols)
            aw, ah = cols * w, rows * h
            self._atlas(aw, ah)
            self._atlas_fbo.use()
            self.ctx.scissor = None
            self.ctx.viewport = (0, 0, aw, ah)
            self._atlas_fbo.clear(0.0, 0.0, 0.0, 0.0, viewport=(0, 0, aw, ah))
            # Largest slice first: the splat buffers grow once, then every upload fits.
            sizes = bounds[first + 1 : first + count + 1] - bounds[first : first + count]
            for k in np.argsort(-sizes, kind="stable"):
                p = first + int(k)
                a, b = int(bounds[p]), int(bounds[p + 1])
                if b == a:
                    continue
                self.splats.upload(pieces.subset(slice(a, b)))
                vp = (int(k % cols) * w, int(k // cols) * h, w, h)
                self.splats.draw(camera, self._atlas_fbo, viewport=vp, background=None)
            t2 = time.perf_counter()
            # Full-screen pass: straight colour into the readback buffer.
            self._out_fbo.use()
            self.ctx.viewport = (0, 0, aw, ah)
            self.ctx.disable(moderngl.BLEND)
            self._atlas_tex.use(0)
            self._unpremultiply["u_atlas"].value = 0
            self._empty_vao.render(moderngl.TRIANGLES, vertices=3)
            raw = self._out_fbo.read(viewport=(0, 0, aw, ah), components=4, dtype="f1")
            self.ctx.enable(moderngl.BLEND)
            atlas = np.frombuffer(raw, np.uint8).reshape(rows, h, cols, w, 4)
            for k in range(count):
                # GL rows run bottom-up: flip each tile to put image row 0 at the top.
                out[first + k] = atlas[k // cols, ::-1, k % cols]
            t3 = time.perf_counter()
            t_draw += t2 - t1
            t_read += t3 - t2
            t1 = t3
        self.timings = {"split": t1 - t0 - t_draw - t_read, "draw": t_draw, "read": t_read}
        return out

    def release(self) -> None:
        """Free the GPU objects (the context belongs to the caller or to renderers.render)."""
        self._release()

    def _release(self) -> None:
        for obj in (self._atlas_fbo, self._atlas_tex, self._out_fbo, self._out_rb,
                    self._empty_vao, self._unpremultiply):  # fmt: skip
            if obj is not None:
                obj.release()
        self.splats.release()
        self._atlas_fbo = self._atlas_tex = self._out_fbo = self._out_rb = None
        self._atlas_size = (0, 0)
        if self.cpu is not None:
            self.cpu.release()


def _software_gl(ctx: moderngl.Context) -> bool:
    from renderers.gl_tiles import is_software_gl

    return is_software_gl(ctx)


_lock = threading.Lock()
_baker: dict[str, MPIBaker] = {}


def shared_context() -> moderngl.Context:
    """The process-wide headless EGL context (``renderers.gl_context.shared_offscreen_context``,
    the one ``renderers.render`` uses too). Raises GLUnavailableError when none can be created.
    """
    from renderers.gl_context import shared_offscreen_context

    return shared_offscreen_context().ctx


def release_baker() -> None:
    """Free the cached bakers of :func:`bake_mpi` (the shared context stays)."""
    with _lock:
        for key in ("gl", "cpu"):
            baker = _baker.pop(key, None)
            if baker is not None:
                baker.release()


def _auto_backend() -> str:
    """cpu where the native rasteriser loads and GL is software or missing; else gl (a GPU or
    a software GL without the native library); torch without either."""
    from renderers.gl_context import egl_available
    from renderers.native import native_available

    if native_available():
        if not egl_available():
            return "cpu"
        return "cpu" if _software_gl(shared_context()) else "gl"
    return "gl" if egl_available() else "torch"


# ---------------------------------------------------------------------------------- entry point
def bake_mpi(
    cloud: GaussianCloud,
    camera: Camera,
    depths: np.ndarray | None = None,
    *,
    distance: float | None = None,
    num_planes: int = DEFAULT_NUM_PLANES,
    softness: float = 1.0,
    backend: str = "auto",
    dtype: str = "uint8",
) -> MPI:
    """Bake ``cloud`` into an MPI seen from ``camera`` (the MPI's reference camera, same size).

    depths [D]: plane depths in metres (camera z, strictly increasing, plane 0 nearest). None:
    IM-Portrait's ``head_mpi_depths(distance, num_planes, 0.15, 0.05)``, with ``distance`` (the
    head's distance r from the camera) defaulting to the depth of the cloud's bounding-box centre
    (:func:`baking_distance`). softness in [0, 1]: width of the blend between neighbouring planes
    (1 linear in disparity, 0 nearest plane). backend: "cpu" (the native CPU rasteriser, one
    cached :class:`CPUMPIBaker`), "gl" (the GL atlas on the headless EGL context), "torch"
    (reference renderer; slow) or "auto" (cpu where the native library loads and GL is
    software or missing, gl on a GPU, torch without either). dtype: "uint8" (default; the
    planes as baked, what the MPI renderers and rigged MPI heads take) or "float32".

    Returns an MPI with straight RGBA planes [D, H, W, 4] of ``dtype``. Raises TypeError for a
    wrong cloud/camera type; ValueError for bad depths, softness, backend, dtype, or a head
    closer than the near offset; GLUnavailableError for backend="gl" without an EGL context;
    NativeUnavailable for backend="cpu" without the native library.
    """
    if backend not in BAKE_BACKENDS:
        raise ValueError(f"bake_mpi: unknown backend {backend!r}; expected one of {BAKE_BACKENDS}")
    _check_dtype(dtype)
    depths = _check_inputs(cloud, camera, depths, distance, num_planes, softness)
    if backend == "auto":
        backend = _auto_backend()
    if backend == "cpu":
        with _lock:
            baker = _baker.get("cpu")
            if baker is None:
                # One-shot calls: a caller may edit its cloud in place between two of them.
                baker = _baker["cpu"] = CPUMPIBaker(reuse_arrays=False)
            return baker.bake(cloud, camera, depths, softness=softness, dtype=dtype)
    if backend == "gl":
        from renderers.gl_context import on_shared_context_release, shared_offscreen_context

        shared = shared_offscreen_context()
        # The shared lock serialises every use of the headless context (renders included).
        with shared.lock, _lock:
            baker = _baker.get("gl")
            if baker is None or baker.ctx is not shared.ctx:  # first use, or a new context
                baker = _baker["gl"] = MPIBaker(shared.ctx, renderer="gl")
                on_shared_context_release(release_baker)
            return baker.bake(cloud, camera, depths, softness=softness, dtype=dtype)
    mpi = _bake_torch(cloud, camera, depths, softness)
    if dtype == "uint8":
        return MPI(np.round(mpi.rgba * np.float32(255.0)).astype(np.uint8), depths, camera)
    return mpi


def _bake_torch(cloud: GaussianCloud, camera: Camera, depths: np.ndarray, softness: float) -> MPI:
    from renderers.reference import render_gaussians_reference

    pieces, plane = plane_pieces(cloud, camera, depths, softness)
    bounds = np.searchsorted(plane, np.arange(depths.size + 1))
    rgba = np.zeros((depths.size, camera.height, camera.width, 4), np.float32)
    for p in range(depths.size):
        a, b = int(bounds[p]), int(bounds[p + 1])
        if b == a:
            continue
        img = render_gaussians_reference(pieces.subset(slice(a, b)), camera, (0.0, 0.0, 0.0))
        img = np.asarray(img, dtype=np.float32)
        alpha = img[..., 3:4]
        # Over a black background the reference's rgb is premultiplied colour.
        rgba[p, ..., :3] = np.where(
            alpha > 0, np.minimum(img[..., :3] / np.maximum(alpha, 1e-12), 1.0), 0.0
        )
        rgba[p, ..., 3:] = alpha
    return MPI(np.clip(rgba, 0.0, 1.0), depths, camera)
