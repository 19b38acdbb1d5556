"""OpenGL plumbing shared by the GL renderers: headless contexts, shader loading, readback.

Headless rendering uses an EGL standalone context (llvmpipe on machines without a GPU). Inside
the Qt GUI, do not create one: Qt's GLX context and an EGL context in the same process abort
(see ENVIRONMENT.md); there, pass the moderngl context made in ``QOpenGLWidget.initializeGL``
(or one shared with it) to the renderers instead.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from resources import resource_path

if TYPE_CHECKING:
    import moderngl

    from renderers.camera import Camera

__all__ = [
    "GLUnavailableError",
    "OffscreenTarget",
    "SharedContext",
    "begin_viewport",
    "camera_list",
    "create_offscreen_context",
    "egl_available",
    "load_shader",
    "on_shared_context_release",
    "release_shared_context",
    "render_views",
    "shared_offscreen_context",
    "use_premultiplied_blending",
]

# Framebuffer formats: moderngl dtype -> numpy dtype of the raw readback.
_READ_DTYPES = {"f1": np.uint8, "f2": np.float16, "f4": np.float32}


class GLUnavailableError(RuntimeError):
    """No OpenGL 3.3 context can be created here (no EGL/Mesa, no driver); callers fall back to
    the torch reference renderer."""


def create_offscreen_context() -> moderngl.Context:
    """A new headless moderngl context (EGL standalone, OpenGL >= 3.3 core).

    Raises GLUnavailableError (with the underlying reason) when moderngl is missing or no EGL
    context can be made.
    """
    try:
        import moderngl
    except ImportError as exc:  # pragma: no cover - moderngl is a hard dependency
        raise GLUnavailableError(f"moderngl is not installed: {exc}") from exc
    try:
        return moderngl.create_context(standalone=True, backend="egl", require=330)
    except Exception as exc:  # moderngl/glcontext raise plain Exception subclasses
        raise GLUnavailableError(f"cannot create a headless EGL OpenGL 3.3 context: {exc}") from exc


class SharedContext(NamedTuple):
    """The process-wide headless context and the lock that serialises its use."""

    ctx: moderngl.Context
    lock: threading.RLock


# One standalone EGL context per process: moderngl does not make a standalone context current on
# use, so two of them in one process clash. Everything headless (renderers.render, the MPI baker)
# shares this one. Reentrant so that a holder can call another user of the context.
_shared_lock = threading.RLock()
_shared: list[moderngl.Context] = []
_release_hooks: list[Callable[[], None]] = []


def shared_offscreen_context() -> SharedContext:
    """The process-wide headless EGL context (created on the first call), made current on the
    calling thread, and its lock.

    Hold ``lock`` (``with shared.lock:``) while using ``ctx`` or objects made on it; keep caches
    of GL objects keyed by the context object (``release_shared_context`` replaces it). Do not
    release ``ctx`` yourself. Raises GLUnavailableError when no EGL context can be created.
    """
    with _shared_lock:
        if not _shared:
            _shared.append(create_offscreen_context())  # GLUnavailableError propagates
        ctx = _shared[0]
        # Make it current on this thread: another standalone context created since (a test's,
        # an exporter's) would otherwise receive our draw calls. Entering without exiting is
        # deliberate: on EGL, restoring "the previous context" on exit is unreliable.
        ctx.__enter__()
        return SharedContext(ctx, _shared_lock)


def on_shared_context_release(hook: Callable[[], None]) -> None:
    """Register ``hook`` (once per function) to free a cache's GL objects: it runs, holding the
    lock, just before ``release_shared_context`` releases the context."""
    with _shared_lock:
        if hook not in _release_hooks:
            _release_hooks.append(hook)


def release_shared_context() -> None:
    """Run the release hooks, then release the shared context (if any); the next
    ``shared_offscreen_context`` makes a new one."""
    with _shared_lock:
        if not _shared:
            return
        for hook in list(_release_hooks):
            hook()
        _shared.pop().release()


@functools.cache
def egl_available() -> bool:
    """Whether a headless EGL context works in this process (probed once, then cached). The probe
    creates the shared context (``shared_offscreen_context``): a second, throw-away standalone
    context would leave the shared one not current."""
    try:
        shared_offscreen_context()
    except GLUnavailableError:
        return False
    return True


@functools.cache
def _shader_text(name: str) -> str:
    return resource_path("shaders", name).read_text(encoding="utf-8")


def load_shader(name: str, defines: dict[str, object] | None = None) -> str:
    """Source of ``resources/shaders/<name>``. With ``defines``, the file must not carry its own
    ``#version`` line: "#version 330 core" and one ``#define KEY VALUE`` per entry are prepended.

    Raises FileNotFoundError naming the path when the shader is missing from the install.
    """
    text = _shader_text(name)
    if defines is None:
        return text
    header = ["#version 330 core"] + [f"#define {k} {v}" for k, v in defines.items()]
    return "\n".join(header) + "\n" + text


class OffscreenTarget:
    """A colour framebuffer (RGBA) that grows on demand, for offscreen rendering and readback.

    dtype: "f1" (RGBA8, fastest on llvmpipe), "f2" (RGBA16F) or "f4" (RGBA32F).
    """

    def __init__(self, ctx: moderngl.Context, dtype: str = "f1") -> None:
        if dtype not in _READ_DTYPES:
            raise ValueError(
                f"framebuffer dtype must be one of {sorted(_READ_DTYPES)}, got {dtype!r}"
            )
        self.ctx = ctx
        self.dtype = dtype
        self.fbo: moderngl.Framebuffer | None = None
        self._size = (0, 0)

    def framebuffer(self, width: int, height: int) -> moderngl.Framebuffer:
        """A framebuffer at least ``width`` x ``height`` pixels (reallocated only to grow)."""
        if self.fbo is None or width > self._size[0] or height > self._size[1]:
            w, h = max(width, self._size[0]), max(height, self._size[1])
            if self.fbo is not None:
                self.fbo.release()
            rb = self.ctx.renderbuffer((w, h), 4, dtype=self.dtype)
            self.fbo = self.ctx.framebuffer(color_attachments=[rb])
            self._size = (w, h)
        return self.fbo

    def read(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Pixels of the window rectangle (x, y, width, height) as [height, width, 4] float32,
        image row 0 at the top (GL's bottom-left origin flipped)."""
        assert self.fbo is not None, "read() before framebuffer()"
        raw = self.fbo.read(viewport=(x, y, width, height), components=4, dtype=self.dtype)
        img = np.frombuffer(raw, dtype=_READ_DTYPES[self.dtype]).reshape(height, width, 4)[::-1]
        if self.dtype == "f1":
            return img.astype(np.float32) * np.float32(1.0 / 255.0)
        return img.astype(np.float32)

    def release(self) -> None:
        if self.fbo is not None:
            self.fbo.release()
            self.fbo = None
            self._size = (0, 0)


def camera_list(cameras: Camera | Sequence[Camera]) -> list[Camera]:
    """``cameras`` as a non-empty list of cameras sharing one image size (ValueError)."""
    cams = list(cameras) if isinstance(cameras, Sequence) else [cameras]
    if not cams:
        raise ValueError("render(): no cameras given")
    sizes = {(c.width, c.height) for c in cams}
    if len(sizes) != 1:
        raise ValueError(f"render(): all cameras must share one image size, got {sorted(sizes)}")
    return cams


def begin_viewport(
    ctx: moderngl.Context,
    framebuffer: moderngl.Framebuffer,
    viewport: tuple[int, int, int, int],
    background: tuple[float, float, float] | None,
) -> None:
    """Bind ``framebuffer``, set the viewport and scissor to ``viewport`` (x, y, w, h; GL origin
    bottom-left) and clear it to ``background`` with alpha 0 (None: keep the content). The
    caller resets ``ctx.scissor = None`` when done drawing."""
    framebuffer.use()
    ctx.viewport = viewport
    ctx.scissor = viewport
    if background is not None:
        r, g, b = (float(c) for c in background)
        ctx.clear(r, g, b, 0.0, viewport=viewport)


def use_premultiplied_blending(ctx: moderngl.Context) -> None:
    """Depth test and face culling off, blending (ONE, ONE_MINUS_SRC_ALPHA) with FUNC_ADD: back
    to front compositing of premultiplied colours."""
    import moderngl as mgl

    ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE)
    ctx.enable(mgl.BLEND)
    ctx.blend_func = (mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA)
    ctx.blend_equation = mgl.FUNC_ADD


def render_views(
    target: OffscreenTarget,
    draw: Callable[..., None],
    cameras: Camera | Sequence[Camera],
    background: tuple[float, float, float],
) -> np.ndarray:
    """Offscreen render of one or more cameras: ``[C, H, W, 4]`` float32.

    The views are drawn side by side into one framebuffer of ``target`` with
    ``draw(camera, framebuffer, viewport=..., background=...)`` and read back at once. Raises
    ValueError for no cameras or cameras of different image sizes.
    """
    cams = camera_list(cameras)
    w, h = cams[0].width, cams[0].height
    fbo = target.framebuffer(w * len(cams), h)
    for i, cam in enumerate(cams):
        draw(cam, fbo, viewport=(i * w, 0, w, h), background=background)
    strip = target.read(0, 0, w * len(cams), h)  # one readback for all views
    return np.ascontiguousarray(strip.reshape(h, len(cams), w, 4).transpose(1, 0, 2, 3))
