"""The viewport's GL frame: view cameras per mode, background, scene cache and composition.

Qt-free (moderngl only, lazily imported by the caller's context): the Qt widget hands in its
moderngl context and default framebuffer; tests can use an EGL standalone context instead.

A frame is drawn in two steps so that cheap repaints (hover labels, the FPS readout) never redraw
the head, and so that interactive frames can be drawn at a reduced resolution (the scene then
fills the lower-left part of the scene textures and is magnified bilinearly when presented):
:meth:`SceneCompositor.render` draws the head over a dark gradient into cached scene textures
(one for mono and side-by-side, one per eye for anaglyph); :meth:`present` composes them into
the target framebuffer (anaglyph: red from the left eye's luminance, green and blue from the
right eye, the "half-colour" anaglyph that limits retinal rivalry).

Presenting is a framebuffer copy wherever no pixel needs computing: a full-resolution mono or
side-by-side scene is blitted without scaling (a memcpy on a software GL: ~0.3 ms, where the
sampling pass over a 1158x568 view costs 7-14 ms of CPU on llvmpipe). With ``cpu_magnify`` (set
on a software GL, where the "GPU" is the CPU anyway) a reduced-resolution scene is magnified by
OpenCV instead of a shader: read back (a few hundred kB), bilinear resize (the same half-pixel
centred, edge-clamped interpolation as the shader), upload and copy: ~1.5 ms of CPU before the
copy, where the shader pass cost ~12 ms of CPU into an offscreen target (1158x568 from 25 %).
The magnified image is kept, so repainting an unchanged scene (hover, the readout) is a copy.
On llvmpipe under X any full write of the window's framebuffer costs ~3-7 ms, a copy or a
clear alike: the present's floor, which the sampling pass added its own CPU time to.

CPU scenes (:meth:`SceneCompositor.render_cpu`, or :func:`compose_cpu` on any thread and then
:meth:`SceneCompositor.show_cpu_scene`): where the head is rendered on the CPU
(``renderers.cpu_splats``: premultiplied RGBA8 images, row 0 at the top), the whole frame is
composed on the CPU too: over the same background (the GL gradient drawn once per size and
mode and read back), anaglyph mixed, magnified, flipped to GL's row order and written into one
texture that presents as a copy. That skips the background pass, the image's blend pass and
the read-back for magnifying, each a full-viewport pass of several ms on llvmpipe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from renderers.camera import StereoRig

if TYPE_CHECKING:
    import moderngl

    from renderers.camera import Camera
    from studio.viewport.camera_control import ViewState

__all__ = [
    "BACKGROUND_BOTTOM",
    "BACKGROUND_TOP",
    "VIEW_MODES",
    "SceneCompositor",
    "compose_cpu",
    "view_cameras",
    "view_viewports",
]

VIEW_MODES = ("mono", "sbs", "anaglyph")
BACKGROUND_TOP = (0.215, 0.228, 0.255)
BACKGROUND_BOTTOM = (0.062, 0.066, 0.076)

Viewport = tuple[int, int, int, int]  # x, y, width, height in device pixels, GL bottom-left

_FULLSCREEN_VERT = """
#version 330 core
out vec2 v_uv;
void main() {
    // One triangle covering the viewport; uv in [0, 1] over the visible part.
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    v_uv = p;
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
"""

_BACKGROUND_FRAG = """
#version 330 core
in vec2 v_uv;
uniform vec3 u_top;
uniform vec3 u_bottom;
uniform float u_aspect;
out vec4 f_color;
void main() {
    vec3 c = mix(u_bottom, u_top, smoothstep(0.0, 1.0, v_uv.y));
    // A soft light behind the head (upper middle), fading to the edges.
    vec2 d = (v_uv - vec2(0.5, 0.58)) * vec2(u_aspect, 1.0);
    c += 0.045 * exp(-dot(d, d) * 3.0);
    // Ordered dither against 8-bit banding in a dark gradient.
    float n = fract(52.9829189 * fract(dot(gl_FragCoord.xy, vec2(0.06711056, 0.00583715))));
    f_color = vec4(c + (n - 0.5) / 255.0, 1.0);
}
"""

_BLIT_FRAG = """
#version 330 core
in vec2 v_uv;
uniform sampler2D u_scene;
uniform vec2 u_uv_scale;
uniform vec2 u_texel;
out vec4 f_color;
void main() {
    // Stay half a texel inside the drawn part: bilinear taps must not reach unused texels.
    vec2 uv = clamp(v_uv * u_uv_scale, 0.5 * u_texel, u_uv_scale - 0.5 * u_texel);
    f_color = vec4(texture(u_scene, uv).rgb, 1.0);
}
"""

_ANAGLYPH_FRAG = """
#version 330 core
in vec2 v_uv;
uniform sampler2D u_left;
uniform sampler2D u_right;
uniform vec2 u_uv_scale;
uniform vec2 u_texel;
out vec4 f_color;
void main() {
    vec2 uv = clamp(v_uv * u_uv_scale, 0.5 * u_texel, u_uv_scale - 0.5 * u_texel);
    vec3 l = texture(u_left, uv).rgb;
    vec3 r = texture(u_right, uv).rgb;
    f_color = vec4(dot(l, vec3(0.299, 0.587, 0.114)), r.g, r.b, 1.0);
}
"""


def view_cameras(
    view: ViewState,
    mode: str,
    width: int,
    height: int,
    ipd: float = 0.063,
    convergence: float = 0.6,
) -> list[tuple[Camera, Viewport]]:
    """The cameras a view mode draws and their viewports (device pixels, GL origin).

    mono: the centre camera over the whole image. sbs: the left eye in the left half, the right
    eye in the right half (each half-width camera keeps the vertical field of view). anaglyph:
    both eyes over the whole image (drawn into separate layers). ipd 0 (allowed by the project's
    camera settings) gives two identical eyes. Raises ValueError for an unknown mode.
    """
    vps = view_viewports(mode, width, height)
    if mode == "mono":
        return [(view.camera(vps[0][2], vps[0][3]), vps[0])]
    center = view.camera(vps[0][2], vps[0][3])
    if ipd > 0 and math.isfinite(ipd):
        left, right = StereoRig(ipd, convergence).cameras(center)
    else:
        left = right = center
    return [(left, vps[0]), (right, vps[1])]


def view_viewports(mode: str, width: int, height: int) -> list[Viewport]:
    """The viewports (device pixels, GL origin) of :func:`view_cameras`. Raises ValueError for
    an unknown mode."""
    if mode not in VIEW_MODES:
        raise ValueError(f"unknown view mode {mode!r}; expected one of {VIEW_MODES}")
    w, h = max(int(width), 1), max(int(height), 1)
    if mode == "mono":
        return [(0, 0, w, h)]
    if mode == "sbs":
        ew = max(w // 2, 1)
        return [(0, 0, ew, h), (w - ew, 0, ew, h)]
    return [(0, 0, w, h), (0, 0, w, h)]


DrawFn = Callable[["Camera", "moderngl.Framebuffer", Viewport], None]
# fills out [H, W, 4] uint8 (the camera's size) with the premultiplied head, row 0 at the top
RenderFn = Callable[["Camera", np.ndarray], None]


class SceneCompositor:
    """Scene textures, background and composition on one moderngl context.

    Not thread-safe; use from the thread that owns the context. ``release()`` frees GL objects.
    """

    def __init__(self, ctx: moderngl.Context, cpu_magnify: bool = False) -> None:
        import moderngl

        self._mgl = moderngl
        self.ctx = ctx
        self._bg = ctx.program(vertex_shader=_FULLSCREEN_VERT, fragment_shader=_BACKGROUND_FRAG)
        self._bg["u_top"].value = BACKGROUND_TOP
        self._bg["u_bottom"].value = BACKGROUND_BOTTOM
        self._blit = ctx.program(vertex_shader=_FULLSCREEN_VERT, fragment_shader=_BLIT_FRAG)
        self._blit["u_scene"].value = 0
        self._ana = ctx.program(vertex_shader=_FULLSCREEN_VERT, fragment_shader=_ANAGLYPH_FRAG)
        self._ana["u_left"].value = 0
        self._ana["u_right"].value = 1
        self._vaos = {
            name: ctx.vertex_array(prog, [])
            for name, prog in (("bg", self._bg), ("blit", self._blit), ("ana", self._ana))
        }
        self._layers: list[tuple[moderngl.Texture, moderngl.Framebuffer]] = []
        self._back: list[tuple[moderngl.Texture, moderngl.Framebuffer]] = []
        self._back_mode: str | None = None  # mode of the scene being built in the back layers
        self._size = (0, 0)
        self._content = (0, 0)  # the part of the layers the cached scene covers
        self.mode: str | None = None  # mode of the cached scene
        # Magnify reduced-resolution scenes with OpenCV (see the module docstring); falls back
        # to the shader where OpenCV cannot be imported.
        self.cpu_magnify = cpu_magnify
        self._out: tuple[moderngl.Texture, moderngl.Framebuffer] | None = None
        self._out_valid = False  # _out holds the cached scene, composed at full size
        self._out_rgba: np.ndarray | None = None  # [H, W, 4] uint8, the magnified image
        # The cached scene is a CPU-composed frame in _out (render_cpu / show_cpu_scene).
        self._cpu_scene = False
        self._cpu_bg: dict[tuple, np.ndarray] = {}  # (mode, w, h) -> [h, w, 4] uint8, top row 0
        self._cpu_bg_small: tuple[tuple, np.ndarray] | None = None  # resized to a content size

    def _ensure(self, width: int, height: int, layers: int) -> None:
        if self._size != (width, height):
            self._release_layers()
            self._size = (width, height)
        while len(self._layers) < layers:
            self._layers.append(self._new_layer(width, height))

    def _new_layer(self, width: int, height: int) -> tuple[moderngl.Texture, moderngl.Framebuffer]:
        tex = self.ctx.texture((width, height), 4, dtype="f1")
        tex.filter = (self._mgl.LINEAR, self._mgl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        return tex, self.ctx.framebuffer(color_attachments=[tex])

    def draw_background(self, framebuffer: moderngl.Framebuffer, viewport: Viewport) -> None:
        """The dark vertical gradient over ``viewport`` (opaque, no blending)."""
        ctx = self.ctx
        framebuffer.use()
        ctx.viewport = viewport
        ctx.scissor = None
        ctx.disable(self._mgl.BLEND | self._mgl.DEPTH_TEST | self._mgl.CULL_FACE)
        self._bg["u_aspect"].value = viewport[2] / max(viewport[3], 1)
        self._vaos["bg"].render(self._mgl.TRIANGLES, vertices=3)

    def render(
        self,
        draw: DrawFn | None,
        views: list[tuple[Camera, Viewport]],
        mode: str,
        width: int,
        height: int,
        content: tuple[int, int] | None = None,
    ) -> None:
        """Draw the scene: background, then ``draw(camera, framebuffer, viewport)`` for every
        view (None: background only, e.g. no head yet). width/height: the presented size in
        device pixels; content: the (smaller) size the views were made for, when drawing at a
        reduced resolution (default: width x height). Raises ValueError for an unknown mode or
        a content size larger than the scene."""
        if mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {mode!r}; expected one of {VIEW_MODES}")
        cw, ch = content or (width, height)
        if not (0 < cw <= width and 0 < ch <= height):
            raise ValueError(f"content size {cw}x{ch} must lie within {width}x{height}")
        anaglyph = mode == "anaglyph"
        self._ensure(width, height, 2 if anaglyph else 1)
        self._back_mode = None
        self._content = (cw, ch)
        self._out_valid = False
        self._cpu_scene = False
        for i, (cam, vp) in enumerate(views):
            _, fbo = self._layers[i if anaglyph else 0]
            self.draw_background(fbo, vp)
            if draw is not None:
                draw(cam, fbo, vp)
        self.ctx.scissor = None
        self.mode = mode

    def begin_back(
        self, views: list[tuple[Camera, Viewport]], mode: str, width: int, height: int
    ) -> list[moderngl.Framebuffer]:
        """Start building a full-resolution scene (width x height) in the back layers: draws the
        background of every view and returns each view's framebuffer, to draw the head into
        (e.g. over several steps); :meth:`swap_back` presents it. Any :meth:`render` or
        :meth:`invalidate` abandons it. Raises ValueError for an unknown mode."""
        if mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {mode!r}; expected one of {VIEW_MODES}")
        anaglyph = mode == "anaglyph"
        layers = 2 if anaglyph else 1
        self._ensure(width, height, layers)
        while len(self._back) < layers:
            self._back.append(self._new_layer(width, height))
        fbos = []
        for i, (_cam, vp) in enumerate(views):
            _, fbo = self._back[i if anaglyph else 0]
            self.draw_background(fbo, vp)
            fbos.append(fbo)
        self.ctx.scissor = None
        self._back_mode = mode
        return fbos

    def swap_back(self) -> bool:
        """Make the scene built since :meth:`begin_back` the cached scene (full resolution),
        presented by the next :meth:`present`. False (nothing changes) when it was abandoned."""
        if self._back_mode is None:
            return False
        n = len(self._back)
        self._layers[:n], self._back = self._back, self._layers[:n]
        self._content = self._size
        self.mode, self._back_mode = self._back_mode, None
        self._out_valid = False
        self._cpu_scene = False
        return True

    # ------------------------------------------------------------------------------ CPU scenes
    def cpu_background(
        self, mode: str, width: int, height: int, content: tuple[int, int] | None = None
    ) -> np.ndarray:
        """The background of a CPU-composed scene: [ch, cw, 4] uint8, row 0 at the top, opaque.
        The GL gradient of every view of ``mode`` drawn at width x height (once per size and
        mode, read back); resized to ``content`` (cw, ch) when that is smaller. GL current.
        Raises ValueError for an unknown mode."""
        key = (mode, width, height)
        bg = self._cpu_bg.get(key)
        if bg is None:
            tex = self.ctx.texture((width, height), 4, dtype="f1")
            fbo = self.ctx.framebuffer(color_attachments=[tex])
            try:
                for vp in view_viewports(mode, width, height):
                    self.draw_background(fbo, vp)
                self.ctx.scissor = None
                raw = np.empty((height, width, 4), np.uint8)
                fbo.read_into(raw, components=4, alignment=1)
            finally:
                fbo.release()
                tex.release()
            bg = np.ascontiguousarray(raw[::-1])
            if len(self._cpu_bg) >= 6:  # sizes seen while resizing: keep a few
                self._cpu_bg.clear()
            self._cpu_bg[key] = bg
        cw, ch = content or (width, height)
        if (cw, ch) == (width, height):
            return bg
        small_key = (key, cw, ch)
        if self._cpu_bg_small is None or self._cpu_bg_small[0] != small_key:
            cv2 = _cv2()
            if cv2 is not None:
                # (bilinear: a smooth gradient; INTER_AREA cost 3.6 ms a frame at 800x600)
                small = cv2.resize(bg, (cw, ch), interpolation=cv2.INTER_LINEAR)
            else:  # nearest rows and columns
                ys = (np.arange(ch) * height) // ch
                xs = (np.arange(cw) * width) // cw
                small = np.ascontiguousarray(bg[ys][:, xs])
            self._cpu_bg_small = (small_key, small)
        return self._cpu_bg_small[1]

    def render_cpu(
        self,
        render: RenderFn | None,
        views: list[tuple[Camera, Viewport]],
        mode: str,
        width: int,
        height: int,
        content: tuple[int, int] | None = None,
    ) -> None:
        """:meth:`render` with the head drawn on the CPU: ``render(camera, out)`` fills
        ``out [camera.height, camera.width, 4]`` uint8 with the premultiplied head (row 0 at
        the top), composed with :func:`compose_cpu` and shown with :meth:`show_cpu_scene`.
        None: background only. Raises ValueError as :meth:`render`."""
        if mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {mode!r}; expected one of {VIEW_MODES}")
        cw, ch = content or (width, height)
        if not (0 < cw <= width and 0 < ch <= height):
            raise ValueError(f"content size {cw}x{ch} must lie within {width}x{height}")
        bg = self.cpu_background(mode, width, height, (cw, ch))
        images = []
        if render is not None:
            for cam, vp in views:
                img = np.empty((cam.height, cam.width, 4), np.uint8)
                render(cam, img)
                images.append((img, vp))
        self.show_cpu_scene(compose_cpu(images, bg, mode), mode, width, height)

    def show_cpu_scene(self, frame: np.ndarray, mode: str, width: int, height: int) -> None:
        """Make ``frame`` [ch, cw, 4] uint8 (row 0 at the top, from :func:`compose_cpu`) the
        cached scene, magnified to width x height when smaller (bilinear, as the shader);
        :meth:`present` copies it. GL current. Raises ValueError for a frame larger than the
        scene or an unknown mode."""
        if mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {mode!r}; expected one of {VIEW_MODES}")
        ch, cw = frame.shape[:2]
        if not (0 < cw <= width and 0 < ch <= height) or frame.shape[2:] != (4,):
            raise ValueError(f"frame {frame.shape} must be [h, w, 4] within {width}x{height}")
        self._ensure(width, height, 0)
        self._back_mode = None
        shape = (height, width)
        if self._out is None or self._out_rgba is None or self._out_rgba.shape[:2] != shape:
            self._release_out()
            self._out = self._new_layer(width, height)
            self._out_rgba = np.empty((height, width, 4), np.uint8)
        out = self._out_rgba
        cv2 = _cv2()
        if cv2 is None:
            if (cw, ch) == (width, height):
                out[...] = frame[::-1]
            else:
                ys = ((np.arange(height) + 0.5) * ch / height).astype(np.int64)
                xs = ((np.arange(width) + 0.5) * cw / width).astype(np.int64)
                out[...] = frame[::-1][ys][:, xs]
        elif (cw, ch) == (width, height):
            cv2.flip(frame, 0, dst=out)  # GL wants the bottom row first
        else:
            # Flipped small, then magnified (bilinear with centred pixels is symmetric): the
            # interpolation of _compose_on_cpu and the shaders.
            cv2.resize(cv2.flip(frame, 0), (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
        self._out[0].write(out)
        self._content = (cw, ch)
        self.mode = mode
        self._out_valid = True
        self._cpu_scene = True

    def present(self, framebuffer: moderngl.Framebuffer, width: int, height: int) -> bool:
        """Compose the cached scene into ``framebuffer`` over (0, 0, width, height). Returns
        False (and draws nothing) when there is no scene of that size yet."""
        if self.mode is None or self._size != (width, height):
            return False
        if not self._layers and not self._cpu_scene:
            return False
        ctx = self.ctx
        ctx.scissor = None  # a blit is clipped by the scissor test too
        if self._cpu_scene:
            if not self._out_valid or self._out is None:
                return False
            ctx.copy_framebuffer(framebuffer, self._out[1])
            framebuffer.use()
            return True
        full = self._content == self._size
        if full and self.mode != "anaglyph":
            ctx.copy_framebuffer(framebuffer, self._layers[0][1])
            framebuffer.use()
            return True
        if self.cpu_magnify and self._compose_on_cpu():
            assert self._out is not None
            ctx.copy_framebuffer(framebuffer, self._out[1])
            framebuffer.use()
            return True
        framebuffer.use()
        ctx.viewport = (0, 0, width, height)
        ctx.disable(self._mgl.BLEND | self._mgl.DEPTH_TEST | self._mgl.CULL_FACE)
        uv_scale = (self._content[0] / width, self._content[1] / height)
        texel = (1.0 / width, 1.0 / height)
        for prog in (self._blit, self._ana):
            prog["u_uv_scale"].value = uv_scale
            prog["u_texel"].value = texel
        if self.mode == "anaglyph":
            self._layers[0][0].use(0)
            self._layers[1][0].use(1)
            self._vaos["ana"].render(self._mgl.TRIANGLES, vertices=3)
        else:
            self._layers[0][0].use(0)
            self._vaos["blit"].render(self._mgl.TRIANGLES, vertices=3)
        return True

    def _compose_on_cpu(self) -> bool:
        """Compose the cached scene (reduced resolution or anaglyph) at full size into ``_out``
        with numpy and OpenCV, once per scene. False where OpenCV is missing (the caller
        composes with the shaders)."""
        if self._out_valid:
            return True
        cv2 = _cv2()
        if cv2 is None:
            self.cpu_magnify = False
            return False
        (w, h), (cw, ch) = self._size, self._content
        small = np.empty((ch, cw, 4), np.uint8)  # bottom row first, as GL reads it
        self._layers[0][1].read_into(small, viewport=(0, 0, cw, ch), components=4, alignment=1)
        if self.mode == "anaglyph":
            right = np.empty_like(small)
            self._layers[1][1].read_into(right, viewport=(0, 0, cw, ch), components=4, alignment=1)
            # As _ANAGLYPH_FRAG, before magnifying (both are linear: the order does not matter).
            luma = small[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            right[..., 0] = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
            small = right
        small[..., 3] = 255  # opaque, as the shaders write it
        if self._out is None or self._out_rgba is None or self._out_rgba.shape[:2] != (h, w):
            self._release_out()
            self._out = self._new_layer(w, h)
            self._out_rgba = np.empty((h, w, 4), np.uint8)
        big = small
        if (cw, ch) != (w, h):
            # INTER_LINEAR samples at pixel centres ((x + 0.5) * cw / w - 0.5) and clamps at
            # the edges: the shaders' bilinear taps clamped half a texel inside the drawn part.
            big = cv2.resize(small, (w, h), dst=self._out_rgba, interpolation=cv2.INTER_LINEAR)
        self._out[0].write(big)
        self._out_valid = True
        return True

    def _release_out(self) -> None:
        if self._out is not None:
            self._out[1].release()
            self._out[0].release()
        self._out, self._out_rgba, self._out_valid = None, None, False

    def read_scene(self, layer: int = 0) -> bytes:
        """Raw RGBA8 bytes of a cached scene layer (bottom row first), for tests. A CPU scene
        has one layer: the composed frame at full size."""
        if self._cpu_scene and self._out is not None:
            if layer != 0:
                raise IndexError("a CPU-composed scene has one layer")
            return self._out[1].read(components=4)
        return self._layers[layer][1].read(components=4)

    @property
    def cpu_scene(self) -> bool:
        """Whether the cached scene was composed on the CPU (render_cpu / show_cpu_scene)."""
        return self._cpu_scene and self.mode is not None

    def invalidate(self) -> None:
        self.mode = None
        self._back_mode = None
        self._out_valid = False
        self._cpu_scene = False

    def _release_layers(self) -> None:
        for tex, fbo in self._layers + self._back:
            fbo.release()
            tex.release()
        self._layers, self._back = [], []
        self.mode = None
        self._back_mode = None
        self._cpu_scene = False
        self._cpu_bg_small = None
        self._release_out()

    def release(self) -> None:
        self._release_layers()
        for vao in self._vaos.values():
            vao.release()
        for prog in (self._bg, self._blit, self._ana):
            prog.release()


def compose_cpu(
    images: list[tuple[np.ndarray, Viewport]], background: np.ndarray, mode: str
) -> np.ndarray:
    """A CPU scene: every premultiplied head image ``[vh, vw, 4]`` uint8 (row 0 at the top)
    over ``background [H, W, 4]`` (:meth:`SceneCompositor.cpu_background`, the content size)
    at its viewport (GL origin, bottom-left), anaglyph eyes mixed as ``_ANAGLYPH_FRAG`` does.
    Returns [H, W, 4] uint8, opaque, row 0 at the top. Thread-safe (numpy and OpenCV, which
    release the GIL for the big operations). ``images`` empty: the background alone. Raises
    ValueError when an image does not fit its viewport."""
    if mode not in VIEW_MODES:
        raise ValueError(f"unknown view mode {mode!r}; expected one of {VIEW_MODES}")
    h, w = background.shape[:2]
    for img, (x, y, vw, vh) in images:
        if img.shape != (vh, vw, 4) or x < 0 or y < 0 or x + vw > w or y + vh > h:
            raise ValueError(f"image {img.shape} does not fit viewport {(x, y, vw, vh)} of {w}x{h}")
    if mode != "anaglyph":
        if len(images) == 1 and images[0][0].shape[:2] == (h, w):
            return _over(images[0][0], background)
        frame = background.copy()
        for img, vp in images:
            rows, cols = _rows_cols(vp, h)
            frame[rows, cols] = _over(img, np.ascontiguousarray(background[rows, cols]))
        return frame
    eyes = []
    for img, vp in images[:2]:
        eye = background.copy()
        rows, cols = _rows_cols(vp, h)
        eye[rows, cols] = _over(img, np.ascontiguousarray(background[rows, cols]))
        eyes.append(eye)
    if not eyes:
        return background.copy()
    left, right = eyes[0], eyes[-1] if len(eyes) > 1 else eyes[0].copy()
    # As _ANAGLYPH_FRAG: red from the left eye's luminance, green and blue from the right eye.
    luma = left[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    right[..., 0] = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
    return right


def _rows_cols(vp: Viewport, height: int) -> tuple[slice, slice]:
    """Numpy rows and columns (row 0 at the top) of a GL viewport in an image ``height`` tall."""
    x, y, vw, vh = vp
    return slice(height - y - vh, height - y), slice(x, x + vw)


def _over(img: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Premultiplied ``img`` over opaque ``bg`` (both [h, w, 4] uint8): img + bg * (1 - a),
    rounded; alpha 255. No halo: the renderer's colours are already weighted by coverage."""
    cv2 = _cv2()
    if cv2 is not None:
        inv = cv2.bitwise_not(cv2.extractChannel(img, 3))
        inv4 = cv2.cvtColor(inv, cv2.COLOR_GRAY2BGRA)  # 4 x (255 - a); alpha 255 does no harm
        return cv2.add(img, cv2.multiply(bg, inv4, scale=1.0 / 255.0))
    inv = 255 - img[..., 3:4].astype(np.uint16)
    t = bg.astype(np.uint16) * inv + 128
    out = img + ((t + (t >> 8)) >> 8).astype(np.uint8)
    out[..., 3] = 255
    return out


def _cv2() -> Any:
    """OpenCV, imported on first use (a heavy import; the widget warms it up in a thread), or
    None where it cannot be imported."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2
