"""Tile-based compute-shader Gaussian-splat renderer (3DGS / gsplat style), OpenGL 4.3.

Same images as ``renderers.gl_splats.GaussianSplatRenderer`` (and the torch reference), different
work: instead of rasterising one blended triangle per Gaussian back to front, where every layer
is shaded even behind opaque ones, each pixel tile composites its Gaussians FRONT TO BACK and
stops per pixel at transmittance < 1e-4 (the whole tile stops when all of its pixels have).

Pipeline per camera (shaders in resources/shaders/splat_tiles_*):

1. Projection (compute, one invocation per Gaussian, ``splat_tiles_project.comp``): the rules of
   ``splat_project.vert`` (near plane, opacity, one-sided back faces, EWA + 0.3 px^2, SH colour,
   alpha >= 1/255 bounding box), writing mean2d, conic, opacity and colour to an SSBO and the box
   in tiles plus the depth to a small key buffer (16 bytes per Gaussian).
2. Binning on the CPU (numpy): read the keys back, depth-sort the visible Gaussians, expand each
   to the tiles of its box as (tile << b | depth rank) keys, sort them, per-tile ranges
   [start, end) by searchsorted and the list of non-empty tiles; upload them.
3. Rasterisation (compute, ``splat_tiles_raster.comp``): one workgroup per NON-EMPTY 8x8 tile,
   one invocation per pixel column; Gaussians streamed through shared memory in batches of 64,
   those whose ellipse misses the tile dropped on loading; premultiplied (rgb, 1 - T) stored
   with imageStore into a cleared RGBA8 texture, row 0 at the top.
4. A full-viewport triangle, scissored to the non-empty tiles, copies it into the caller's
   framebuffer viewport, blended with (ONE, ONE_MINUS_SRC_ALPHA) over the cleared background
   (or over existing content).

Why these choices (measured on the 2-core llvmpipe dev machine, default head at 512x512, raster
times of the same frames interleaved; details in the shader): llvmpipe runs 8 invocations per
SIMD vector and skipping work inside a branch saved nothing measurable, only loop exits do; one
invocation per pixel with 16x16 tiles was ~2x slower than one per column; 8x8 tiles evaluate
~half the (pixel, Gaussian) pairs of 16x16 (raster ~0.5x) for ~1.6x the binning (8x16, 16x8,
8x4, 4x8 were slower in total); dropping Gaussians whose ellipse misses the tile (25 % of the
box-binned pairs) saved ~17 % of the raster; an empty workgroup costs ~3 us (11 ms for the 4096
tiles of an empty 512x512 image), hence only non-empty tiles are dispatched. Binning stays on the
CPU: it is ~15 ms of a ~140 ms frame here, its sorts ~2.5 ms of that; a GPU sort on llvmpipe runs
on the same two cores (not tried).

Attribute buffers, ``upload``/``update`` (shapes, validation, errors) and ``render`` are those of
``GaussianSplatRenderer`` (this class subclasses it and replaces allocation and drawing), so the
two stay interchangeable. Needs OpenGL 4.3 (compute shaders, SSBOs): Mesa llvmpipe gives 4.5
core; macOS (4.1) does not have it, so this cannot be the only GL path. Speed against the
triangle renderer: ``python -m benchmarks.render_tiles``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from renderers.gaussians import BACKFACE_COS, GaussianCloud, sh_degree_for_coeffs
from renderers.gl_context import begin_viewport, load_shader, use_premultiplied_blending
from renderers.gl_splats import NEAR_PLANE, GaussianSplatRenderer

if TYPE_CHECKING:
    import moderngl

    from renderers.camera import Camera
    from renderers.cpu_splats import CPUSplatRenderer

__all__ = ["TILE", "TiledSplatRenderer", "is_software_gl", "splat_renderer_for"]

_SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software", "lavapipe")

TILE = 8  # pixels per tile side (default; see splat_tiles_raster.comp for why 8)
_BATCH = 64  # Gaussians per shared-memory batch in the rasteriser
_PROJECT_GROUP = 256  # local_size_x of splat_tiles_project.comp
# SSBO binding points shared by the two compute shaders.
_BIND = {"mean": 0, "opacity": 1, "cov": 2, "normal": 3, "color": 4, "splat": 5, "key": 6}
_BIND_LIST, _BIND_RANGES, _BIND_TILES = 7, 8, 9


class TiledSplatRenderer(GaussianSplatRenderer):
    """Draws one GaussianCloud with compute shaders, tile by tile, front to back.

    Drop-in for ``GaussianSplatRenderer``: ``upload(cloud)``, ``update(...)``, ``draw(camera,
    framebuffer, viewport, background)``, ``render(cameras, background) -> [C, H, W, 4]``.
    dtype: "f1" (RGBA8, default), "f2" or "f4": the offscreen target of ``render`` and the
    intermediate image (RGBA16F for both float types). tile_width x tile_height: pixels per
    tile (8 x 8 is the fastest measured on llvmpipe).
    Raises RuntimeError from the constructor when the context is older than OpenGL 4.3, and
    ValueError for a tile shape the rasteriser cannot take.
    ``timings`` accumulates seconds per stage ("project", "bin", "raster", "blit"; the GPU
    stages are timed with a ``ctx.finish()`` only when ``sync_timings`` is set, for benchmarks).
    """

    def __init__(
        self,
        ctx: moderngl.Context,
        dtype: str = "f1",
        tile_width: int = TILE,
        tile_height: int = TILE,
    ) -> None:
        if ctx.version_code < 430:
            raise RuntimeError(
                f"TiledSplatRenderer needs OpenGL 4.3 compute shaders; this context is "
                f"{ctx.version_code}"
            )
        if tile_width not in (2, 4, 8, 16, 32, 64) or not 1 <= tile_height <= 32:
            raise ValueError(
                f"tile must be (w, h) with w a power of two in [2, {_BATCH}] and 1 <= h <= 32, "
                f"got ({tile_width}, {tile_height})"
            )
        super().__init__(ctx, dtype=dtype)
        self.tile = (tile_width, tile_height)
        # The intermediate image keeps the precision asked for the framebuffer (RGBA16F for
        # "f2"/"f4": half floats hold premultiplied colours to ~1e-3).
        self._image_format = ("rgba8", "f1") if dtype == "f1" else ("rgba16f", "f2")
        self._raster_prog = ctx.compute_shader(
            f"#version 430 core\n#define TILE_W {tile_width}\n#define TILE_H {tile_height}\n"
            f"#define BATCH {_BATCH}\n#define IMAGE_FORMAT {self._image_format[0]}\n"
            + load_shader("splat_tiles_raster.comp")
        )
        self._blit_prog = ctx.program(
            vertex_shader=load_shader("splat_tiles_blit.vert"),
            fragment_shader=load_shader("splat_tiles_blit.frag"),
        )
        self._blit_vao = ctx.vertex_array(self._blit_prog, [])
        self._project_progs: dict[int, moderngl.ComputeShader] = {}
        self._image: moderngl.Texture | None = None
        self._list_buf: moderngl.Buffer | None = None
        self._ranges_buf: moderngl.Buffer | None = None
        self._tiles_buf: moderngl.Buffer | None = None
        self._image_fbo: moderngl.Framebuffer | None = None
        self._busy_rect = (0, 0, 0, 0)  # pixels (x0, y0, x1, y1) holding non-empty tiles
        self.sync_timings = False
        self.timings = {"project": 0.0, "bin": 0.0, "raster": 0.0, "blit": 0.0}
        self.last_entries = 0  # (Gaussian, tile) pairs of the last draw (benchmarks)

    # ------------------------------------------------------------------------------ data
    def upload(self, cloud: GaussianCloud) -> None:
        """Upload every attribute of ``cloud`` (buffers are reallocated only to grow)."""
        n, k = len(cloud), cloud.sh.shape[1]
        if n > self._capacity or k != self._k or not self._buffers:
            self._allocate(max(n, 1), k)
        self._n = n
        self.update(
            cloud.means, cloud.quats, cloud.scales, cloud.opacities, cloud.sh, facing=cloud.facing
        )

    def _allocate(self, n: int, k: int) -> None:
        sh_degree_for_coeffs(k)
        for buf in self._buffers.values():
            buf.release()
        ctx = self.ctx
        # The attribute layouts GaussianSplatRenderer.update writes, read as std430 float
        # arrays by the projection shader.
        self._buffers = {
            **self._attribute_buffers(n, k),
            "splat": ctx.buffer(reserve=n * 32),
            "key": ctx.buffer(reserve=n * 16),
        }
        self._capacity, self._k = n, k

    def _project_program(self, k: int) -> moderngl.ComputeShader:
        if k not in self._project_progs:
            stride = 3 if k == 1 else 4 * ((3 * k + 3) // 4)
            header = (
                f"#version 430 core\n#define SH_COEFFS {k}\n#define COLOR_STRIDE {stride}\n"
                f"#define TILE_W {self.tile[0]}\n#define TILE_H {self.tile[1]}\n"
            )
            self._project_progs[k] = self.ctx.compute_shader(
                header + load_shader("splat_tiles_project.comp")
            )
        return self._project_progs[k]

    # ------------------------------------------------------------------------------ drawing
    def draw(
        self,
        camera: Camera,
        framebuffer: moderngl.Framebuffer,
        viewport: tuple[int, int, int, int] | None = None,
        background: tuple[float, float, float] | None = (0.0, 0.0, 0.0),
    ) -> None:
        """Draw the uploaded cloud seen by ``camera`` into ``framebuffer``: the same contract as
        ``GaussianSplatRenderer.draw`` (viewport (x, y, w, h) with GL's bottom-left origin,
        background cleared with alpha 0 first or None to blend over existing content; leaves
        premultiplied blending enabled)."""
        ctx = self.ctx
        vp = viewport or (0, 0, camera.width, camera.height)
        begin_viewport(ctx, framebuffer, vp, background)
        if self._n == 0:
            ctx.scissor = None
            return
        w, h = camera.width, camera.height
        tiles_x, tiles_y = -(-w // self.tile[0]), -(-h // self.tile[1])
        t0 = time.perf_counter()
        self._project(camera, tiles_x, tiles_y)
        self._sync()
        t1 = time.perf_counter()
        busy = self._bin(camera, tiles_x, tiles_y)
        t2 = time.perf_counter()
        self.timings["project"] += t1 - t0
        self.timings["bin"] += t2 - t1
        if busy == 0:
            ctx.scissor = None
            return
        image = self._image_for(w, h)
        ctx.scissor = None  # the whole image: empty tiles are not written by the rasteriser
        self._image_fbo.clear(0.0, 0.0, 0.0, 0.0)
        self._buffers["splat"].bind_to_storage_buffer(_BIND["splat"])
        self._list_buf.bind_to_storage_buffer(_BIND_LIST)
        self._ranges_buf.bind_to_storage_buffer(_BIND_RANGES)
        self._tiles_buf.bind_to_storage_buffer(_BIND_TILES)
        image.bind_to_image(0, read=False, write=True)
        self._raster_prog["u_size"].value = (w, h)
        self._raster_prog["u_tiles_x"].value = tiles_x
        self._raster_prog.run(busy, 1, 1)
        # The blit samples what imageStore wrote.
        ctx.memory_barrier()
        self._sync()
        t3 = time.perf_counter()
        framebuffer.use()
        ctx.viewport = vp
        # Only the rectangle of non-empty tiles (image rows go down, GL rows up): the rest of
        # the image is transparent, which matters for sparse draws such as MPI slices.
        x0, y0, x1, y1 = self._busy_rect
        x1, y1 = min(x1, w), min(y1, h)
        ctx.scissor = (vp[0] + x0, vp[1] + h - y1, x1 - x0, y1 - y0)
        use_premultiplied_blending(ctx)
        image.use(0)
        self._blit_prog["u_image"].value = 0
        self._blit_prog["u_viewport"].value = (vp[0], vp[1], w, h)
        self._blit_vao.render(self._mgl.TRIANGLES, vertices=3)
        ctx.scissor = None
        self._sync()
        self.timings["raster"] += t3 - t2
        self.timings["blit"] += time.perf_counter() - t3

    def _sync(self) -> None:
        if self.sync_timings:
            self.ctx.finish()

    def _project(self, camera: Camera, tiles_x: int, tiles_y: int) -> None:
        prog = self._project_program(self._k)
        w2c = np.asarray(camera.world_to_camera, dtype=np.float64)
        rot = w2c[:3, :3]
        w, h = camera.width, camera.height
        values = {
            "u_count": self._n,
            "u_r0": tuple(rot[0]),
            "u_r1": tuple(rot[1]),
            "u_r2": tuple(rot[2]),
            "u_t": tuple(w2c[:3, 3]),
            "u_intr": (camera.fx, camera.fy, camera.cx, camera.cy),
            "u_size": (float(w), float(h)),
            "u_tiles": (tiles_x, tiles_y),
            "u_lim": (
                (-0.15 * w - camera.cx) / camera.fx,
                (1.15 * w - camera.cx) / camera.fx,
                (-0.15 * h - camera.cy) / camera.fy,
                (1.15 * h - camera.cy) / camera.fy,
            ),
            "u_campos": tuple(camera.position),
            # > 1: no normal passes (two-sided clouds, or culling switched off).
            "u_backface": BACKFACE_COS if self.backface_culling and self._one_sided else 2.0,
            "u_near": NEAR_PLANE,
        }
        for name, value in values.items():
            if name in prog:  # the compiler drops unused uniforms
                prog[name].value = value
        for name, binding in _BIND.items():
            self._buffers[name].bind_to_storage_buffer(binding)
        prog.run(-(-self._n // _PROJECT_GROUP), 1, 1)
        # The key readback and the rasteriser read what the projection wrote.
        self.ctx.memory_barrier()

    def _bin(self, camera: Camera, tiles_x: int, tiles_y: int) -> int:
        """Read the keys back, build the per-tile front-to-back index list, the tile ranges and
        the list of non-empty tiles, upload them. Returns the number of non-empty tiles."""
        n = self._n
        keys = np.frombuffer(self._buffers["key"].read(size=n * 16), np.uint32).reshape(n, 4)
        hi = keys[:, 1]
        visible = np.flatnonzero(hi)  # x1 > 0 for every drawn Gaussian (exclusive end)
        if self.backface_culling and self._one_sided and self._k >= 16:
            # With 16 SH coefficients the parent keeps normals on the CPU only: cull here.
            view = self._means[visible] - np.asarray(camera.position, np.float32)
            dots = np.einsum("ij,ij->i", self._normals[visible], view)
            visible = visible[dots <= BACKFACE_COS * np.linalg.norm(view, axis=1)]
        if visible.size == 0:
            self.last_entries = 0
            return 0
        # Depth order: positive float32 depths sort like their bit patterns, and the Gaussian
        # index in the low bits breaks ties as a stable sort would (the reference's order);
        # a plain sort of these keys is ~4x faster than a stable argsort.
        depth_key = keys[visible, 2].astype(np.uint64) << np.uint64(32)
        depth_key |= visible.astype(np.uint64)
        depth_key.sort()
        order = (depth_key & np.uint64(0xFFFFFFFF)).astype(np.int64)
        m = order.size
        n_tiles = tiles_x * tiles_y
        # One sort key per (tile, Gaussian) pair: tile in the high bits, depth rank in the low
        # ones, so a plain sort groups by tile and orders each tile front to back. Built in two
        # repeat passes (box rows, then the tiles of each row): no division, and ~2x faster
        # than expanding then stable-argsorting by tile (measured, default head at 512x512).
        shift = max(1, (m - 1).bit_length())
        dt = np.uint32 if shift + (n_tiles - 1).bit_length() <= 32 else np.uint64
        lo, hi = keys[order, 0], keys[order, 1]
        x0, y0 = (lo & 0xFFFF).astype(dt), (lo >> 16).astype(dt)
        bw, bh = (hi & 0xFFFF).astype(dt) - x0, (hi >> 16).astype(dt) - y0
        sh, tx = dt(shift), dt(tiles_x)
        base = ((y0 * tx + x0) << sh) | np.arange(m, dtype=dt)
        row_g = np.repeat(np.arange(m), bh)
        row = np.arange(row_g.size, dtype=dt) - np.repeat(np.cumsum(bh, dtype=dt) - bh, bh)
        row_key = base[row_g] + ((row * tx) << sh)
        row_w = bw[row_g]
        total = int(row_w.sum())
        col = np.arange(total, dtype=dt) - np.repeat(np.cumsum(row_w, dtype=dt) - row_w, row_w)
        pair = np.repeat(row_key, row_w) + (col << sh)
        pair.sort()
        entries = order[pair & dt((1 << shift) - 1)].astype(np.uint32)
        ranges = np.searchsorted(pair >> sh, np.arange(n_tiles + 1, dtype=dt)).astype(np.uint32)
        busy = np.flatnonzero(ranges[1:] != ranges[:-1]).astype(np.uint32)
        tw, th = self.tile
        bx, by = busy % tiles_x, busy // tiles_x
        self._busy_rect = (
            int(bx.min()) * tw,
            int(by.min()) * th,
            (int(bx.max()) + 1) * tw,
            (int(by.max()) + 1) * th,
        )
        self._list_buf = _fit(self.ctx, self._list_buf, entries)
        self._ranges_buf = _fit(self.ctx, self._ranges_buf, ranges)
        self._tiles_buf = _fit(self.ctx, self._tiles_buf, busy)
        self.last_entries = total
        return int(busy.size)

    def _image_for(self, w: int, h: int) -> moderngl.Texture:
        if self._image is None or self._image.size != (w, h):
            if self._image is not None:
                self._image_fbo.release()
                self._image.release()
            self._image = self.ctx.texture((w, h), 4, dtype=self._image_format[1])
            self._image.filter = (self._mgl.NEAREST, self._mgl.NEAREST)
            self._image_fbo = self.ctx.framebuffer(color_attachments=[self._image])
        return self._image

    def release(self) -> None:
        """Free the GPU objects (the context itself belongs to the caller)."""
        objs = (self._image_fbo, self._image, self._list_buf, self._ranges_buf, self._tiles_buf)
        for obj in (*objs, self._blit_vao):
            if obj is not None:
                obj.release()
        for prog in self._project_progs.values():
            prog.release()
        self._raster_prog.release()
        self._blit_prog.release()
        self._image = self._image_fbo = self._list_buf = self._ranges_buf = self._tiles_buf = None
        self._project_progs = {}
        super().release()


def _fit(ctx: moderngl.Context, buf: moderngl.Buffer | None, data: np.ndarray) -> moderngl.Buffer:
    """Write ``data`` into ``buf``, reallocating (with 25 % headroom) only to grow."""
    if buf is None or buf.size < data.nbytes:
        if buf is not None:
            buf.release()
        buf = ctx.buffer(reserve=max(int(data.nbytes * 1.25), 16))
    buf.write(data)
    return buf


def is_software_gl(ctx: moderngl.Context) -> bool:
    """Whether ``ctx`` rasterises on the CPU (Mesa llvmpipe and friends)."""
    renderer = str(ctx.info.get("GL_RENDERER", "")).lower()
    return any(name in renderer for name in _SOFTWARE_GL)


def splat_renderer_for(ctx: moderngl.Context) -> GaussianSplatRenderer | CPUSplatRenderer:
    """The fastest splat renderer for ``ctx``. On a software GL (llvmpipe): the native CPU tile
    rasteriser (renderers/cpu_splats.py, ~3x faster than llvmpipe draws the default head) when
    it can be built here, else the tiled compute renderer (1.4-1.5x faster than triangles on
    llvmpipe: it stops each pixel once it is opaque, where blending shades every layer). On a
    GPU: the triangle renderer (a GPU blends triangles at no cost worth avoiding). All give the
    same image (>= 50 dB); all have ``upload``, ``update``, ``draw`` and ``render``."""
    if is_software_gl(ctx):
        from renderers.cpu_splats import CPUSplatRenderer
        from renderers.native import NativeUnavailable

        try:
            return CPUSplatRenderer(ctx)
        except NativeUnavailable:
            pass
        if ctx.version_code >= 430:
            return TiledSplatRenderer(ctx)
    return GaussianSplatRenderer(ctx)
