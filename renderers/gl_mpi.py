"""OpenGL (moderngl, GL 3.3 core) multiplane-image renderer matching render_mpi_reference.

The D premultiplied planes live in one RGBA texture array (sampler2DArray, bilinear, transparent
border like ``grid_sample``'s zero padding). Each plane is drawn as world-space quads at its depth
in the MPI camera: perspective-correct texture interpolation over a world-space quad *is* the
plane-induced homography, and GL's near-plane clipping drops what lies behind the target camera.
All planes go in one draw call, far to near, blended with premultiplied "over"
(ONE, ONE_MINUS_SRC_ALPHA).

Empty space is skipped: every plane is cut into CELL x CELL texel cells at upload, and only cells
whose alpha (dilated by one texel, for bilinear footprints) is non-zero become quads. Head MPIs
are mostly empty per plane, and on llvmpipe the cost is the covered pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from renderers.gl_context import (
    OffscreenTarget,
    begin_viewport,
    load_shader,
    render_views,
    use_premultiplied_blending,
)
from renderers.mpi import MPI, ImPortraitMPI, as_mpi

if TYPE_CHECKING:
    import moderngl

    from renderers.camera import Camera

__all__ = ["MPIRenderer"]

CELL = 32  # texels per side of the empty-space-skipping cells
_NEAR, _FAR = 1e-3, 1e4  # GL clip range (metres); depth testing is off, only clipping matters


class MPIRenderer:
    """Draws one MPI with OpenGL; owns its texture array and quad buffer on ``ctx``.

    texture_dtype: "f1" (RGBA8 premultiplied, fastest filtering on llvmpipe) or "f2" (RGBA16F,
    for exact low-alpha colour). fbo_dtype: readback framebuffer format for ``render``.
    cell: empty-space-skipping cell size in texels (0: one quad per non-empty plane).
    """

    def __init__(
        self,
        ctx: moderngl.Context,
        texture_dtype: str = "f1",
        fbo_dtype: str = "f1",
        cell: int = CELL,
    ) -> None:
        import moderngl

        if texture_dtype not in ("f1", "f2"):
            raise ValueError(f"texture_dtype must be 'f1' or 'f2', got {texture_dtype!r}")
        self._mgl = moderngl
        self.ctx = ctx
        self.texture_dtype = texture_dtype
        self.cell = int(cell)
        self.target = OffscreenTarget(ctx, fbo_dtype)
        self._prog = ctx.program(
            vertex_shader=load_shader("mpi_plane.vert"),
            fragment_shader=load_shader("mpi_plane.frag"),
        )
        self._prog["u_planes"].value = 0
        self._sampler = ctx.sampler(
            filter=(moderngl.LINEAR, moderngl.LINEAR),
            repeat_x=False,
            repeat_y=False,
            border_color=(0.0, 0.0, 0.0, 0.0),
        )
        self._texture: moderngl.TextureArray | None = None
        self._vbo: moderngl.Buffer | None = None
        self._vao: moderngl.VertexArray | None = None
        self._vertices = 0
        self.mpi: MPI | None = None

    @property
    def num_quads(self) -> int:
        """Quads drawn per view (after empty-cell skipping)."""
        return self._vertices // 6

    def upload(self, mpi: MPI | ImPortraitMPI) -> None:
        """Upload the planes and build the quads of their non-empty cells."""
        mpi = as_mpi(mpi)
        d, h, w = mpi.num_planes, mpi.height, mpi.width
        if self.texture_dtype == "f1":
            data = mpi.premultiplied_uint8()
        else:
            data = mpi.premultiplied().astype(np.float16)
        tex = self._texture
        if tex is not None and tex.size == (w, h, d) and tex.dtype == self.texture_dtype:
            # a rigged head uploads every frame: writing into the texture skips re-allocating
            # and re-initialising 25 MB (512x512x24) of GL storage
            tex.write(data)
        else:
            if tex is not None:
                tex.release()
            self._texture = self.ctx.texture_array((w, h, d), 4, data, dtype=self.texture_dtype)
        vertices = _cell_quads(mpi, self.cell)
        if self._vao is not None:
            self._vao.release()
        if self._vbo is not None:
            self._vbo.release()
        self._vertices = len(vertices)
        self._vbo = self.ctx.buffer(vertices.tobytes() if len(vertices) else b"\0" * 24)
        self._vao = self.ctx.vertex_array(self._prog, [(self._vbo, "3f 3f", "a_world", "a_tex")])
        self.mpi = mpi

    def draw(
        self,
        camera: Camera,
        framebuffer: moderngl.Framebuffer,
        viewport: tuple[int, int, int, int] | None = None,
        background: tuple[float, float, float] | None = (0.0, 0.0, 0.0),
    ) -> None:
        """Draw the uploaded MPI seen by ``camera`` into ``framebuffer`` (viewport and background
        as in GaussianSplatRenderer.draw). Raises RuntimeError before ``upload``."""
        if self.mpi is None or self._vao is None:
            raise RuntimeError("MPIRenderer.draw() before upload()")
        mgl = self._mgl
        ctx = self.ctx
        begin_viewport(
            ctx, framebuffer, viewport or (0, 0, camera.width, camera.height), background
        )
        if self._vertices:
            mvp = camera.gl_projection(_NEAR, _FAR) @ camera.gl_view()
            self._prog["u_mvp"].write(mvp.T.astype(np.float32).tobytes())
            self._texture.use(0)
            self._sampler.use(0)
            use_premultiplied_blending(ctx)
            self._vao.render(mgl.TRIANGLES, vertices=self._vertices)
            self._sampler.clear(0)
        ctx.scissor = None

    def render(
        self,
        cameras: Camera | Sequence[Camera],
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> np.ndarray:
        """Offscreen render: [C, H, W, 4] float32 (RGB over ``background``, alpha = coverage).
        All cameras must share one image size (ValueError)."""
        return render_views(self.target, self.draw, cameras, background)

    def release(self) -> None:
        for obj in (self._vao, self._vbo, self._texture, self._sampler, self._prog):
            if obj is not None:
                obj.release()
        self.target.release()
        self._vao = self._vbo = self._texture = None
        self.mpi = None


def _cell_quads(mpi: MPI, cell: int = CELL) -> np.ndarray:
    """Vertices [6 Q, 6] float32 (world xyz, s, t, layer) of the non-empty cells, far plane first.

    A cell covers texels [x0, x1) x [y0, y1); it is kept when any alpha within one texel of it is
    non-zero. Cells on the image border extend one texel beyond it, where bilinear sampling
    fades into the transparent border exactly as the reference's zero padding does.
    """
    d, h, w = mpi.num_planes, mpi.height, mpi.width
    if cell <= 0:
        cell = max(h, w)
    cam = mpi.camera
    c2w = cam.camera_to_world
    ny, nx = -(-h // cell), -(-w // cell)
    occ = _occupied_cells(_alpha_mask(mpi.rgba), cell, ny, nx)  # [D, ny, nx]
    xs = np.minimum(np.arange(nx + 1) * cell, w).astype(np.float64)
    ys = np.minimum(np.arange(ny + 1) * cell, h).astype(np.float64)
    xs[0], ys[0] = -1.0, -1.0
    xs[-1], ys[-1] = w + 1.0, h + 1.0
    out = []
    corner_idx = np.array([[0, 0], [1, 0], [0, 1], [0, 1], [1, 0], [1, 1]])
    for plane in range(d - 1, -1, -1):  # far to near
        cy, cx = np.nonzero(occ[plane])
        if cy.size == 0:
            continue
        u = xs[cx[:, None] + corner_idx[None, :, 0]]  # [Q, 6]
        v = ys[cy[:, None] + corner_idx[None, :, 1]]
        z = float(mpi.depths[plane])
        pc = np.stack(
            [(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, np.full_like(u, z)], -1
        )
        world = pc @ c2w[:3, :3].T + c2w[:3, 3]
        verts = np.concatenate(
            [world, (u / w)[..., None], (v / h)[..., None], np.full_like(u, plane)[..., None]], -1
        )
        out.append(verts.reshape(-1, 6))
    if not out:
        return np.zeros((0, 6), np.float32)
    return np.concatenate(out).astype(np.float32)


def _alpha_mask(rgba: np.ndarray) -> np.ndarray:
    """alpha > 0 [D, H, W] bool of planes [D, H, W, 4] (uint8: one compare per pixel word)."""
    if rgba.dtype == np.uint8 and rgba.flags.c_contiguous and np.little_endian:
        return rgba.view(np.uint32)[..., 0] >= np.uint32(1 << 24)  # alpha is the high byte
    return rgba[..., 3] > 0


def _occupied_cells(alpha: np.ndarray, cell: int, ny: int, nx: int) -> np.ndarray:
    """[D, ny, nx] bool: cells of ``cell`` x ``cell`` texels with a non-zero alpha within one
    texel of them (the 3x3 dilation bilinear taps need), for alpha [D, H, W] bool.

    Dilating the whole image costs several full passes; instead a cell's own texels are
    reduced in one pass and only the texel rows and columns on cell borders (a 1/cell sliver)
    are dilated into the neighbouring cells: the same result."""
    d, h, w = alpha.shape
    if h != ny * cell or w != nx * cell:  # pad to whole cells (empty texels change nothing)
        pad = np.zeros((d, ny * cell, nx * cell), bool)
        pad[:, :h, :w] = alpha
        alpha, h, w = pad, ny * cell, nx * cell
    alpha = np.ascontiguousarray(alpha)
    if cell % 8 == 0:
        # 8 texels per 64-bit word, and the cell's rows reduced first (numpy's fast path: a
        # long contiguous inner loop); reducing short axes first was ~4x slower.
        words = alpha.view(np.uint64).reshape(d, ny, cell, w // 8)
        occ = (words.max(axis=2).reshape(d, ny, nx, cell // 8) != 0).any(axis=3)
    else:
        occ = alpha.reshape(d, ny, cell, w).any(axis=2).reshape(d, ny, nx, cell).any(axis=3)
    if ny > 1:

        def row_cells(rows: np.ndarray) -> np.ndarray:  # [D, ny - 1, W] -> [D, ny - 1, nx]
            r = rows.copy()
            r[..., 1:] |= rows[..., :-1]
            r[..., :-1] |= rows[..., 1:]
            return r.reshape(d, ny - 1, nx, cell).any(axis=3)

        occ[:, :-1] |= row_cells(alpha[:, cell::cell])  # a cell's top row reaches the one above
        occ[:, 1:] |= row_cells(alpha[:, cell - 1 : h - 1 : cell])  # bottom row: the one below
    if nx > 1:

        def col_cells(cols: np.ndarray) -> np.ndarray:  # [D, H, nx - 1] -> [D, ny, nx - 1]
            c = cols.copy()
            c[:, 1:] |= cols[:, :-1]
            c[:, :-1] |= cols[:, 1:]
            return c.reshape(d, ny, cell, nx - 1).any(axis=2)

        occ[:, :, :-1] |= col_cells(alpha[:, :, cell::cell])
        occ[:, :, 1:] |= col_cells(alpha[:, :, cell - 1 : w - 1 : cell])
    return occ
