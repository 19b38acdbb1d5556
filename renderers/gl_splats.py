"""OpenGL (moderngl, GL 3.3 core) Gaussian-splat renderer matching renderers.reference.

Pipeline per camera (shaders in resources/shaders/splat_*.{vert,frag}):

1. CPU depth sort (renderers.sorting; skipped when pose and cloud are unchanged) -> element
   buffer of Gaussian indices, farthest first (N x 4 bytes: the only per-frame upload when just
   the view changes).
2. Transform-feedback pass: one vertex per Gaussian from static vertex buffers (mean, opacity,
   3D covariance, colour or SH: one buffer each, so ``update`` writes any subset and never reads
   back), fetched in sorted order; the vertex shader does the EWA
   projection (+0.3 px^2 low-pass, the reference's clamped Jacobian), culls (behind the near
   plane, off-screen, opacity < 1/255, one-sided Gaussians facing away from the camera: see
   "Back-face culling" below), evaluates SH for the view direction and writes ONE
   triangle circumscribing the alpha >= 1/255 ellipse (3 x 20 bytes).
3. Draw pass: ``glDrawArrays(GL_TRIANGLES)`` over the captured buffer with a trivial vertex
   shader; the fragment shader evaluates the Gaussian in whitened coordinates, alpha =
   min(0.99, o exp(-d^2/2)), discards below 1/255 and outputs premultiplied colour, blended
   back to front with (ONE, ONE_MINUS_SRC_ALPHA) over the cleared background.

Why this layout (measured on the 2-core llvmpipe dev machine, relative numbers because the
machine is shared): vertex-shader texelFetch from data textures made a draw ~30x slower than the
same data from vertex attributes, instanced 4-vertex quads ~5x slower than plain triangles, and
each triangle carries a fixed setup/binning cost comparable to ~50 covered pixels. So data lives
in plain vertex attributes, the heavy maths runs once per Gaussian (not per corner), and each
Gaussian is a single triangle (30 % more pixels than a quad, half the triangles).

Alternatives measured head to head in one process (2026-11, same machine, load 3-5; draw time
relative to this design, see docs/PERFORMANCE.md): oriented quads (2 triangles) 1.6x slower on
the synthetic 50k head and 1.25x on the shipped head (larger splats), hexagons 2.2x / 1.9x; one
GL_POINTS sprite per Gaussian drawn straight from the sorted attributes (no transform feedback,
gl_FragCoord against the centre) renders the same image at 1.05x; RGBA16F target 1.35x; no
blending at all 0.92x; a constant fragment shader 0.76x (so the exp/discard maths is a quarter of
the draw, exp2 or a linear falloff change nothing); triangles shrunk to 5 % of their area 0.24x
(the fixed per-triangle cost) and to half their area 0.70x. Front-to-back with a depth test that
rejects everything behind the first layer (an upper bound for any saturation/occlusion skipping)
saves only 18 % even at ~180 layers per pixel: llvmpipe has no hierarchical z, and a rejected 4x4
block still costs most of a shaded one. LP_NUM_THREADS 1/2/4 gave the same ratio on 2 cores.
So the remaining lever on llvmpipe is fewer Gaussians (``renderers.lod``, ``render(budget=)``).

Back-face culling (``GaussianCloud.facing``): one-sided Gaussians (surfels of closed opaque
surfaces, e.g. the procedural default head's skin, hair shell, eyeballs and shirt) whose outward
normal points away from the camera (cos > ``BACKFACE_COS``) emit the degenerate triangle: about
half of a closed surface is hidden behind its own front side, so this drops those Gaussians'
triangles and fragments without changing the image (the torch reference applies the same rule).
The normals ``facing * R[:, 2]`` live in their own vertex buffer, rewritten with the quats. With
degree-3 SH (12 vec4 inputs) GL's 16 vertex inputs leave no room for them: there the culled
Gaussians are dropped from the sorted index list on the CPU instead (same rule).
``backface_culling = False`` turns it off (comparisons, benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from renderers.gaussians import (
    BACKFACE_COS,
    SH_C0,
    GaussianCloud,
    facing_normals,
    sh_degree_for_coeffs,
)
from renderers.gl_context import (
    OffscreenTarget,
    begin_viewport,
    load_shader,
    render_views,
    use_premultiplied_blending,
)
from renderers.sorting import DepthSorter

if TYPE_CHECKING:
    import moderngl

    from renderers.camera import Camera

__all__ = ["NEAR_PLANE", "GaussianSplatRenderer", "checked_attributes", "packed_covariances"]

NEAR_PLANE = 0.01  # metres; the reference culls Gaussians closer than this
_TF_STRIDE = 20  # bytes per captured corner: vec4 (ndc xy, r, opacity) + packed RGBA8
_VARYINGS = ["v_pos0", "v_col0", "v_pos1", "v_col1", "v_pos2", "v_col2"]


def packed_covariances(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """World covariances R diag(s^2) R^T as [N, 6] float32 (xx, xy, xz, yy, yz, zz) from
    quats [N, 4] (w, x, y, z; normalised here) and linear scales [N, 3].

    Computed in float32 without [N, 3, 3] temporaries: ~4 ms for 50k Gaussians on the 2-core dev
    machine against ~60 ms for the float64 matrix products (relative error ~1e-6), which is what
    lets a posed frame (new quats every frame) fit a live viewport's budget.
    """
    q = np.asarray(quats, dtype=np.float32)
    s = np.asarray(scales, dtype=np.float32)
    inv = np.float32(1.0) / np.sqrt(np.einsum("ij,ij->i", q, q))
    w, x, y, z = (q[:, i] * inv for i in range(4))
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    sx, sy, sz = s[:, 0], s[:, 1], s[:, 2]
    # M = R diag(s); covariance = M M^T.
    m00, m01, m02 = (1 - 2 * (yy + zz)) * sx, 2 * (xy - wz) * sy, 2 * (xz + wy) * sz
    m10, m11, m12 = 2 * (xy + wz) * sx, (1 - 2 * (xx + zz)) * sy, 2 * (yz - wx) * sz
    m20, m21, m22 = 2 * (xz - wy) * sx, 2 * (yz + wx) * sy, (1 - 2 * (xx + yy)) * sz
    out = np.empty((q.shape[0], 6), dtype=np.float32)
    out[:, 0] = m00 * m00 + m01 * m01 + m02 * m02
    out[:, 1] = m00 * m10 + m01 * m11 + m02 * m12
    out[:, 2] = m00 * m20 + m01 * m21 + m02 * m22
    out[:, 3] = m10 * m10 + m11 * m11 + m12 * m12
    out[:, 4] = m10 * m20 + m11 * m21 + m12 * m22
    out[:, 5] = m20 * m20 + m21 * m21 + m22 * m22
    return out


def _sh_glsl(k: int) -> tuple[int, str, str]:
    """(number of vec4 attributes, declarations, unpacking code) for K SH coefficients."""
    n_vec4 = (3 * k + 3) // 4
    decl = "\n".join(f"in vec4 a_sh{i};" for i in range(n_vec4))
    comps = "xyzw"

    def flt(j: int) -> str:
        return f"a_sh{j // 4}.{comps[j % 4]}"

    unpack = " ".join(
        f"sh[{c}] = vec3({flt(3 * c)}, {flt(3 * c + 1)}, {flt(3 * c + 2)});" for c in range(k)
    )
    return n_vec4, decl, unpack


class GaussianSplatRenderer:
    """Draws one GaussianCloud with OpenGL; owns its GPU buffers on ``ctx``.

    ``upload(cloud)`` once (or on topology change), ``update(...)`` for per-frame animation, then
    ``draw(camera, framebuffer)`` into any framebuffer (e.g. the Qt widget's) or
    ``render(cameras)`` for numpy images; ``prepare(camera)`` + ``draw_prepared(fbo, a, b)``
    split one draw into ranges of its sorted triangles. Not thread-safe; use it from the
    context's thread.
    """

    def __init__(self, ctx: moderngl.Context, sort_method: str = "auto", dtype: str = "f1") -> None:
        import moderngl

        self._mgl = moderngl
        self.ctx = ctx
        self.sorter = DepthSorter(sort_method, NEAR_PLANE)
        self.target = OffscreenTarget(ctx, dtype)
        self._draw_prog = ctx.program(
            vertex_shader=load_shader("splat_draw.vert"),
            fragment_shader=load_shader("splat_draw.frag"),
        )
        self._proj_progs: dict[int, moderngl.Program] = {}
        self._n = 0
        self._k = 1
        self._capacity = 0
        self._version = 0
        self._means = np.zeros((0, 3), np.float32)
        self._quats = np.zeros((0, 4), np.float32)
        self._facing = np.zeros(0, np.int8)
        self._normals = np.zeros((0, 3), np.float32)  # CPU copy (degree-3 SH: CPU culling)
        self._one_sided = False
        # Cull one-sided Gaussians that face away from the camera (see the module docstring).
        self.backface_culling = True
        self._buffers: dict[str, moderngl.Buffer] = {}
        self._proj_vao: moderngl.VertexArray | None = None
        self._draw_vao: moderngl.VertexArray | None = None
        # (m, width, height) of the last prepare(), None when stale (see draw_prepared).
        self._prepared: tuple[int, int, int] | None = None
        # Seconds spent in CPU sorting and index upload since the last reset (benchmarks).
        self.timings = {"sort": 0.0, "upload": 0.0}

    # ------------------------------------------------------------------------------ data
    @property
    def num_gaussians(self) -> int:
        return self._n

    def upload(self, cloud: GaussianCloud) -> None:
        """Upload every attribute of ``cloud`` (buffers are reallocated only to grow)."""
        n, k = len(cloud), cloud.sh.shape[1]
        if n > self._capacity or k != self._k or self._proj_vao is None:
            self._allocate(max(n, 1), k)
        self._n = n
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
        """Re-upload the given attributes of the current cloud (same N and SH size), e.g. an
        animated head's means/quats every frame. Each attribute has its own GPU buffer, so any
        subset can be given and nothing is read back from the GPU.

        means [N, 3], opacities [N], sh [N, K, 3]; quats [N, 4] and scales [N, 3] go together
        (they become covariances, ``packed_covariances``); or covariances [N, 6] float32 packed
        (xx, xy, xz, yy, yz, zz), e.g. computed once and cached by the caller. facing [N] int8
        in {-1, 0, 1} (``GaussianCloud.facing``): the normals of one-sided Gaussians follow the
        quats given here or earlier (covariances alone leave them as they were).

        Raises ValueError for wrong shapes, quats without scales (and vice versa), or
        covariances together with quats/scales.
        """
        n = self._n
        new = checked_attributes(
            n, self._k, means, quats, scales, opacities, sh, covariances, facing
        )
        self._prepared = None
        means, quats, scales = new.get("means"), new.get("quats"), new.get("scales")
        opacities, sh, covariances = new.get("opacities"), new.get("sh"), new.get("covariances")
        if means is not None:
            self._buffers["mean"].write(means)
            self._means = means
            self._version += 1
        if opacities is not None:
            self._buffers["opacity"].write(opacities)
        normals_stale = False
        if "facing" in new:
            self._facing = new["facing"]
            was_one_sided, self._one_sided = self._one_sided, bool(self._facing.any())
            normals_stale = self._one_sided or was_one_sided
        if quats is not None:
            self._buffers["cov"].write(packed_covariances(quats, scales))
            self._quats = quats
            normals_stale = normals_stale or self._one_sided
        if normals_stale:
            if self._one_sided and self._quats.shape[0] == n:
                self._normals = facing_normals(self._quats, self._facing)
            else:
                self._normals = np.zeros((n, 3), np.float32)
            if _gpu_backface(self._k):
                self._buffers["normal"].write(self._normals)
        if covariances is not None:
            self._buffers["cov"].write(covariances)
        if sh is not None:
            if self._k == 1:
                col = np.clip(0.5 + SH_C0 * sh[:, 0, :], 0.0, 1.0).astype(np.float32)
                self._buffers["color"].write(col)
            else:
                n_vec4 = (3 * self._k + 3) // 4
                flat = np.zeros((n, 4 * n_vec4), np.float32)
                flat[:, : 3 * self._k] = sh.reshape(n, -1)
                self._buffers["color"].write(flat)

    def _attribute_buffers(self, n: int, k: int) -> dict[str, moderngl.Buffer]:
        """The per-Gaussian attribute buffers ``update`` writes, for ``n`` Gaussians with ``k``
        SH coefficients per channel: tightly packed float32 rows (means [n, 3], opacities [n],
        packed covariances [n, 6], normals [n, 3], colours / SH [n, n_color])."""
        ctx = self.ctx
        n_color = 3 if k == 1 else 4 * ((3 * k + 3) // 4)
        return {
            "mean": ctx.buffer(reserve=n * 12),
            "opacity": ctx.buffer(reserve=n * 4),
            "cov": ctx.buffer(reserve=n * 24),
            "normal": ctx.buffer(np.zeros((n, 3), np.float32)),  # two-sided until told
            "color": ctx.buffer(reserve=n * 4 * n_color),
        }

    def _allocate(self, n: int, k: int) -> None:
        sh_degree_for_coeffs(k)
        self._prepared = None
        for buf in self._buffers.values():
            buf.release()
        for vao in (self._proj_vao, self._draw_vao):
            if vao is not None:
                vao.release()
        ctx = self.ctx
        self._buffers = {
            **self._attribute_buffers(n, k),
            "index": ctx.buffer(reserve=n * 4),
            "tf": ctx.buffer(reserve=n * 3 * _TF_STRIDE),
        }
        self._capacity, self._k = n, k
        prog = self._projection_program(k)
        b = self._buffers
        if k == 1:
            color_attr = (b["color"], "3f", "a_color")
        else:
            n_vec4 = (3 * k + 3) // 4
            names = [f"a_sh{i}" for i in range(n_vec4)]
            color_attr = (b["color"], " ".join(["4f"] * n_vec4), *names)
        self._proj_vao = ctx.vertex_array(
            prog,
            [
                (b["mean"], "3f", "a_mean"),
                (b["opacity"], "1f", "a_opacity"),
                (b["cov"], "3f 3f", "a_cov_a", "a_cov_b"),
                *([(b["normal"], "3f", "a_normal")] if _gpu_backface(k) else []),
                color_attr,
            ],
            index_buffer=b["index"],
            index_element_size=4,
        )
        self._draw_vao = ctx.vertex_array(
            self._draw_prog, [(b["tf"], "4f 4f1", "a_pos", "a_color")]
        )
        self.sorter.invalidate()

    def _projection_program(self, k: int) -> moderngl.Program:
        if k not in self._proj_progs:
            degree = sh_degree_for_coeffs(k)
            src = load_shader(
                "splat_project.vert",
                {"SH_DEGREE": degree, "SH_COEFFS": k, "GPU_BACKFACE": int(_gpu_backface(k))},
            )
            _, decl, unpack = _sh_glsl(k) if degree > 0 else (0, "", "")
            src = src.replace("@SH_DECLARATIONS@", decl).replace("@SH_UNPACK@", unpack)
            self._proj_progs[k] = self.ctx.program(vertex_shader=src, varyings=_VARYINGS)
        return self._proj_progs[k]

    # ------------------------------------------------------------------------------ drawing
    def draw(
        self,
        camera: Camera,
        framebuffer: moderngl.Framebuffer,
        viewport: tuple[int, int, int, int] | None = None,
        background: tuple[float, float, float] | None = (0.0, 0.0, 0.0),
    ) -> None:
        """Draw the uploaded cloud seen by ``camera`` into ``framebuffer``.

        viewport: (x, y, width, height) in window pixels (GL origin bottom-left); default
        (0, 0, camera.width, camera.height). background: clear the viewport to this colour with
        alpha 0 first (None: blend over the existing content). Leaves blending enabled with
        (ONE, ONE_MINUS_SRC_ALPHA), depth test and face culling disabled.
        """
        ctx = self.ctx
        begin_viewport(
            ctx, framebuffer, viewport or (0, 0, camera.width, camera.height), background
        )
        m = self.prepare(camera)
        if m:
            self._draw_triangles(0, m)
        ctx.scissor = None

    def prepare(self, camera: Camera) -> int:
        """Sort and project the uploaded cloud for ``camera`` into the captured triangle buffer
        (the first two steps of ``draw``) without drawing; returns m, the number of sorted
        triangles (farthest first; culled Gaussians stay in it as degenerate triangles).

        With :meth:`draw_prepared` this splits one ``draw`` into pieces (a viewport that
        refines a slow full-quality frame a few milliseconds at a time): drawing the ranges
        [0, a), [a, b), ..., [z, m) in that order into the same target composites exactly like
        one draw, since the triangles are blended back to front in buffer order. The prepared
        buffer is valid until the next ``draw``, ``prepare``, ``update`` or ``upload``.
        """
        mgl = self._mgl
        self._prepared = None
        if self._n == 0:
            self._prepared = (0, camera.width, camera.height)
            return 0
        w2c = np.asarray(camera.world_to_camera, dtype=np.float64)
        t0 = time.perf_counter()
        order = self.sorter.order(self._means, w2c, self._version)
        cull = self.backface_culling and self._one_sided
        if cull and not _gpu_backface(self._k):
            view = self._means[order] - np.asarray(camera.position, np.float32)
            dots = np.einsum("ij,ij->i", self._normals[order], view)
            order = order[dots <= BACKFACE_COS * np.linalg.norm(view, axis=1)]
        t1 = time.perf_counter()
        m = int(order.size)
        if m == 0:
            self._prepared = (0, camera.width, camera.height)
            return 0
        self._buffers["index"].write(order)
        self.timings["sort"] += t1 - t0
        self.timings["upload"] += time.perf_counter() - t1
        prog = self._projection_program(self._k)
        rot = w2c[:3, :3]
        prog["u_r0"].value = tuple(rot[0])
        prog["u_r1"].value = tuple(rot[1])
        prog["u_r2"].value = tuple(rot[2])
        prog["u_t"].value = tuple(w2c[:3, 3])
        prog["u_intr"].value = (camera.fx, camera.fy, camera.cx, camera.cy)
        w, h = camera.width, camera.height
        prog["u_size"].value = (float(w), float(h))
        prog["u_lim"].value = (
            (-0.15 * w - camera.cx) / camera.fx,
            (1.15 * w - camera.cx) / camera.fx,
            (-0.15 * h - camera.cy) / camera.fy,
            (1.15 * h - camera.cy) / camera.fy,
        )
        prog["u_near"].value = NEAR_PLANE
        prog["u_campos"].value = tuple(camera.position)
        if _gpu_backface(self._k):
            # > 1: no normal can pass the test (two-sided clouds, or culling switched off).
            prog["u_backface"].value = BACKFACE_COS if cull else 2.0
        self._proj_vao.transform(self._buffers["tf"], mgl.POINTS, vertices=m)
        self._prepared = (m, w, h)
        return m

    def draw_prepared(
        self,
        framebuffer: moderngl.Framebuffer,
        start: int = 0,
        stop: int | None = None,
        viewport: tuple[int, int, int, int] | None = None,
        background: tuple[float, float, float] | None = None,
        draw_arrays: Callable[[int, int, int], None] | None = None,
    ) -> None:
        """Draw the prepared triangles [start, stop) (default: all m of the last
        :meth:`prepare`) into ``framebuffer``, blended over its content (background: clear the
        viewport to it first, as ``draw`` does). viewport as in ``draw`` (default: the prepared
        camera's whole image). Leaves the same GL state as ``draw``.

        draw_arrays: issues the draw call itself, ``glDrawArrays(mode, first, count)`` (e.g. a
        ctypes binding, which releases the GIL: on a software GL the call runs the vertex stage
        and bins every triangle in the calling thread, milliseconds other Python threads could
        use); the renderer binds its program and vertex array first. None: moderngl draws.

        Raises RuntimeError without a valid :meth:`prepare` and ValueError for a range outside
        [0, m].
        """
        if self._prepared is None:
            raise RuntimeError("draw_prepared() needs prepare() first (and no draw/update since)")
        m, w, h = self._prepared
        stop = m if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= m:
            raise ValueError(f"draw_prepared(): range [{start}, {stop}) outside [0, {m}]")
        ctx = self.ctx
        begin_viewport(ctx, framebuffer, viewport or (0, 0, w, h), background)
        if stop > start:
            self._draw_triangles(start, stop, draw_arrays)
        ctx.scissor = None

    def _draw_triangles(
        self, start: int, stop: int, draw_arrays: Callable[[int, int, int], None] | None = None
    ) -> None:
        use_premultiplied_blending(self.ctx)
        if draw_arrays is None:
            self._draw_vao.render(self._mgl.TRIANGLES, vertices=3 * (stop - start), first=3 * start)
            return
        # moderngl binds the program, its uniforms and the vertex array for a draw of nothing
        self._draw_vao.render(self._mgl.TRIANGLES, vertices=0)
        draw_arrays(self._mgl.TRIANGLES, 3 * start, 3 * (stop - start))

    def render(
        self,
        cameras: Camera | Sequence[Camera],
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> np.ndarray:
        """Offscreen render of the uploaded cloud: [C, H, W, 4] float32, RGB composited over
        ``background``, alpha = coverage. All cameras must share one image size (ValueError)."""
        return render_views(self.target, self.draw, cameras, background)

    def release(self) -> None:
        """Free the GPU objects (the context itself belongs to the caller)."""
        for vao in (self._proj_vao, self._draw_vao):
            if vao is not None:
                vao.release()
        for buf in self._buffers.values():
            buf.release()
        for prog in self._proj_progs.values():
            prog.release()
        self._draw_prog.release()
        self.target.release()
        self._buffers, self._proj_progs = {}, {}
        self._proj_vao = self._draw_vao = None


def _gpu_backface(k: int) -> bool:
    """Whether the projection shader culls back faces itself (not for 16 SH coefficients)."""
    return k < 16


def checked_attributes(
    n: int,
    k: int,
    means: np.ndarray | None = None,
    quats: np.ndarray | None = None,
    scales: np.ndarray | None = None,
    opacities: np.ndarray | None = None,
    sh: np.ndarray | None = None,
    covariances: np.ndarray | None = None,
    facing: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The arguments of a splat renderer's ``update`` for a cloud of ``n`` Gaussians with
    ``k`` SH coefficients, checked all at once (so a bad one changes nothing): the given ones
    as contiguous float32 (facing int8), keyed by argument name. Raises ValueError for wrong
    shapes, quats without scales (and vice versa), or covariances together with quats."""
    if (quats is None) != (scales is None):
        raise ValueError("update(): quats and scales must be given together")
    if covariances is not None and quats is not None:
        raise ValueError("update(): give covariances or quats+scales, not both")
    shapes = {
        "means": (means, (n, 3)),
        "quats": (quats, (n, 4)),
        "scales": (scales, (n, 3)),
        "opacities": (opacities, (n,)),
        "sh": (sh, (n, k, 3)),
        "covariances": (covariances, (n, 6)),
    }
    new = {name: _checked(a, shape, name) for name, (a, shape) in shapes.items() if a is not None}
    if facing is not None:
        facing = np.asarray(facing)
        if facing.shape != (n,):
            raise ValueError(f"update(): facing must have shape {(n,)}, got {facing.shape}")
        new["facing"] = np.ascontiguousarray(facing, dtype=np.int8)
    return new


def _checked(a: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.shape != shape:
        raise ValueError(f"update(): {name} must have shape {shape}, got {a.shape}")
    return a
