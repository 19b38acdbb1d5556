"""The 3D viewport: the animated head, live, in an OpenGL window drawn with moderngl.

:class:`ViewportWidget` (``ViewportWidget(controller, parent=None)``) follows the controller: it
redraws on frameChanged / documentChanged / projectReplaced, deforms the head for the current frame
through its rig (cached by (revision, frame)) and uploads only the arrays that changed.

Navigation (viewport focused): left-drag or Alt+left-drag orbits, middle-drag or Shift+drag pans,
the wheel (or Alt+right-drag) zooms, F or Home frames the head. K toggles the 21 motion-space
keypoints: hover shows a keypoint's name, dragging one keys its expression delta at the current
frame as one undo step (preview while dragging, one edit on release). V cycles the view modes
(mono, stereo side-by-side, red-cyan anaglyph), 1/2/3 pick one.

Level of detail: on a software OpenGL (llvmpipe) or when a full frame takes longer than
``SLOW_FRAME_MS``, frames drawn while interacting (dragging, playing, scrubbing) use the
``lod_budget`` most contributing Gaussians and a reduced resolution that adapts so a frame draws
in about ``INTERACTIVE_MS`` (splatting on a CPU is fill-rate bound: a head filling an 800x600
view covers ~10^8 fragments); the full head at full resolution is drawn ``SETTLE_MS`` after the
interaction stops. The corner readout shows the frame time, fps and splat count.

Progressive full-quality frames: where a full-quality frame is slow (a software GL, or the last
one took ``REFINE_MIN_MS`` or more; never for MPI heads), a settled or changed view is first drawn
as an interactive frame, and after settling the full head at full resolution is refined in the
background: a 0-ms timer draws a batch of the sorted splats at a time (GaussianSplatRenderer's
``prepare``/``draw_prepared``) into the compositor's back layers and waits for the GL with the
GIL released, sizing the batches from the measured time per Gaussian so a step takes about
``REFINE_STEP_MS``. The window keeps showing the interactive frame meanwhile and presents the
finished image at once (composition only). Any new scene (interaction, frame, document, view
mode, resize, head, live pose) cancels the refinement; the next settle starts a new one.

CPU splats: on a software GL (llvmpipe) the head is rendered by the native CPU rasteriser
(``renderers.cpu_splats.CPUSplatRenderer``, ~3x faster than llvmpipe draws it; its calls release
the GIL) and the frame is composed on the CPU (``gl_scene.compose_cpu``) into one texture that
presents as a copy. The policies follow its speed: interactive, playback and live frames start
at full resolution (``_ADAPTIVE_START_CPU``) and adapt from there, and a full-quality frame is
rendered in one go on a worker thread (:class:`_CPURefiner`) while the window keeps showing the
interactive frame, then uploaded and presented. A GPU keeps ``GaussianSplatRenderer``, and so does
a software GL where the native library is unavailable (no C compiler, ``THS_NATIVE=0``).

Without OpenGL 3.3 (the offscreen Qt platform, no driver, a broken context) the widget paints a
message instead and the rest of the studio keeps working.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QObject,
    QPointF,
    QRectF,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QOpenGLContext,
    QPainter,
    QPen,
    QSurfaceFormat,
    QWheelEvent,
)
from PySide6.QtOpenGL import QOpenGLWindow
from PySide6.QtWidgets import QStackedLayout, QWidget

from models.motion_space import CHANNEL_DEFAULTS, CHANNELS, KEYPOINTS, NUM_KEYPOINTS
from studio.heads import (
    HeadResolveError,
    head_cache_key,
    lod_head,
    prepare_head,
    project_head,
    resolve_any_head,
    resolve_head,
    resolve_mpi,
)
from studio.viewport.camera_control import CameraControl, ViewState
from studio.viewport.gl_scene import VIEW_MODES, SceneCompositor, view_cameras
from studio.viewport.head_cache import DeformCache, SplatUploader
from studio.viewport.keypoint_edit import KeypointDrag

if TYPE_CHECKING:
    import moderngl

    from models.heads import RiggedGaussianHead
    from renderers.camera import Camera
    from renderers.mpi import MPI
    from studio.ui.controller import StudioController

__all__ = [
    "DEFAULT_LOD_BUDGET",
    "LIVE_MS",
    "PLAYBACK_MS",
    "REFINE_MIN_MS",
    "REFINE_STEP_MS",
    "SETTLE_MS",
    "SLOW_FRAME_MS",
    "VIEW_MODES",
    "LivePrepared",
    "ViewportWidget",
]

log = logging.getLogger(__name__)
# (resolution scale, LOD level) each kind of interactive frame starts from
_ADAPTIVE_START = {"interactive": (0.5, 0), "playback": (0.5, 0), "live": (0.25, 2)}
_STAND_IN = (0.25, 2)  # the stand-in for a full frame being refined (not adapted)
# With CPU splats (the native rasteriser, ~3x llvmpipe's speed; per-Gaussian work is cheap, so
# resolution costs less than it did): scrubs and playback start at full resolution with 25k and
# 12.5k Gaussians. Measured on 2 cores, 800x600: 25k 22 ms, 12.5k 20 ms, the full head 36 ms;
# 512x512: 6.25k 11.5 ms, 12.5k 14 ms. Live frames (the camera, generation previews) start
# cheap, half resolution at 6.25k, and adapt up within a few frames: the first preview of a
# generation shares the CPU with the generating child process (a 12.5k full-size first frame
# stalled the window 160 ms there).
_ADAPTIVE_START_CPU = {"interactive": (1.0, 0), "playback": (1.0, 1), "live": (0.5, 2)}
_STAND_IN_CPU = (0.5, 1)

DEFAULT_LOD_BUDGET = 25_000
SETTLE_MS = 150  # full quality this long after the last interaction
SLOW_FRAME_MS = 40.0  # a full-quality frame slower than this enables LOD on a hardware GL too
INTERACTIVE_MS = 25.0  # interactive frames aim at this draw time (resolution adapts)
# Live and playback frames share the frame time (~33-40 ms at 25-30 fps) with deforming the head,
# the rest of the studio window (timeline, inspector, the Live panel's feed) and the CPU with the
# tracking thread: they aim lower. (The GL window presents only itself: the studio window around
# it is no longer re-composed with OpenGL every frame, which cost ~16 ms on a software GL.)
LIVE_MS = 12.0
PLAYBACK_MS = 18.0  # 25 fps playback: 40 ms a frame
# A full-quality frame that took this long (GL finished) is refined progressively next time, in
# steps of about REFINE_STEP_MS each (the batch size adapts to the measured time per Gaussian).
REFINE_MIN_MS = 30.0
REFINE_STEP_MS = 25.0
_REFINE_FIRST_BATCH = 2048  # Gaussians in a job's first draw step (no measurement yet)
_PICK_RADIUS = 10.0  # logical pixels
_REGION_COLORS = {
    "forehead": "#9fb7ff",
    "brows": "#f2c14e",
    "eyes": "#5cc8ff",
    "nose": "#c7a6ff",
    "cheeks": "#ff9f6e",
    "lips": "#ff5f7e",
    "jaw": "#7ee08a",
}
_GL_UNPACK_ALIGNMENT, _GL_PACK_ALIGNMENT = 0x0CF5, 0x0D05
_SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software", "lavapipe")


def _surface_format() -> QSurfaceFormat:
    fmt = QSurfaceFormat()
    fmt.setRenderableType(QSurfaceFormat.RenderableType.OpenGL)
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(0)
    fmt.setStencilBufferSize(8)  # QPainter's overlay clips with the stencil buffer
    fmt.setSamples(0)
    return fmt


def gl_unavailable_reason() -> str | None:
    """Why no GL viewport can be shown in this process, or None when an OpenGL 3.3 context
    can be created and made current (probed with a throwaway QOpenGLContext)."""
    from PySide6.QtGui import QOffscreenSurface

    platform = QGuiApplication.platformName()
    if platform in ("offscreen", "minimal"):
        return f"OpenGL is not supported on the '{platform}' display platform"
    ctx = QOpenGLContext()
    ctx.setFormat(_surface_format())
    if not ctx.create():
        return "no OpenGL 3.3 context can be created (graphics driver missing?)"
    surface = QOffscreenSurface()
    surface.setFormat(ctx.format())
    surface.create()
    try:
        if not ctx.makeCurrent(surface):
            return "an OpenGL context was created but cannot be made current"
        major, minor = ctx.format().majorVersion(), ctx.format().minorVersion()
        ctx.doneCurrent()
    finally:
        surface.destroy()
    if (major, minor) < (3, 3):
        return f"OpenGL {major}.{minor} found; the viewport needs 3.3"
    return None


class ViewportWidget(QWidget):
    """The studio's 3D viewport (see the module docstring). ``controller``: StudioController."""

    # A new frame reached the screen (QOpenGLWindow.frameSwapped).
    framePresented = Signal()
    viewModeChanged = Signal(str)
    keypointsVisibleChanged = Signal(bool)
    # The head (or MPI) for the current project is loaded, or failed (see head_error).
    headChanged = Signal()
    _headLoaded = Signal(object, object, object, str)  # key, head, mpi, error (worker thread)

    def __init__(self, controller: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("viewport")
        self.setMinimumSize(160, 120)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.camera_control = CameraControl(ViewState.from_settings(controller.project.camera))
        self._view_mode = "mono"
        self._keypoints_visible = False
        self._lod_budget: int | None = DEFAULT_LOD_BUDGET
        self._lod_forced: bool | None = None  # None: auto (software GL or slow frames)
        # Head state (GUI thread only).
        self._head: RiggedGaussianHead | None = None
        self._mpi: MPI | None = None
        self._mpi_head: Any = None  # a rigged MPI head (models.heads.RiggedMPIHead): _mpi per frame
        self._mpi_values: np.ndarray | None = None  # the motion self._mpi was deformed with
        self._head_key: tuple | None = None
        self._loading_key: tuple | None = None
        self.head_error: str | None = None
        self._deform_full = DeformCache()
        self._deform_lod = DeformCache()
        # Interaction.
        self._interact_until = 0.0
        self._kp_drag: KeypointDrag | None = None
        self._kp_drag_view = 0
        self._preview_values: np.ndarray | None = None
        self._live_values: np.ndarray | None = None  # live capture overrides the take
        self._live_prepared: LivePrepared | None = None  # its deformed head, if prepared
        self._live_head: RiggedGaussianHead | None = None  # the head live frames deform
        self._hover_kp: int | None = None
        self._press_pos: QPointF | None = None
        # Statistics for the readout and the benchmark.
        self.stats: dict[str, Any] = {
            "render_ms": 0.0, "splats": 0, "lod": False, "scale": 1.0, "degraded": False,
            "renders": 0,
        }  # fmt: skip
        # Resolution scale of interactive frames, adapted towards INTERACTIVE_MS per frame.
        self._interactive_scale = 0.5
        self._lod_level = 0  # interactive budget = lod_budget >> level (adaptive, 0..2)
        # The two adapt separately per kind of interactive frame (their targets differ), each
        # starting where it left off: a live pose or a generation preview after a scrub would
        # otherwise start from the scrub's budget (25k Gaussians: ~170 ms on 2 cores) and stall
        # the window for its first frames. Live starts at the smallest budget.
        self._adaptive = dict(_ADAPTIVE_START)  # the CPU splat table once the GL is known
        self._render_times: deque[float] = deque(maxlen=120)
        self._full_ms = 0.0
        self._full_synced = False  # whether _full_ms was measured with the GL finished
        # Progressive full-quality frames (see the module docstring). refine_min_ms: None never
        # refines; 0 always does (tests).
        self.refine_min_ms: float | None = REFINE_MIN_MS
        self.refine_step_ms = REFINE_STEP_MS
        self._refine: _RefineJob | None = None
        # ms per Gaussian drawn, measured, carried between jobs of the same size and mode
        self._refine_rate: tuple[tuple, float] | None = None
        self._force_direct = False  # draw the next full-quality frame directly
        self._refine_timer = QTimer(self)
        self._refine_timer.setSingleShot(True)
        self._refine_timer.setInterval(0)
        self._refine_timer.timeout.connect(self._refine_step)
        self._cpu_refiner: _CPURefiner | None = None  # its worker thread, started on first use
        # Polls the CPU refiner's job (the worker makes no Qt calls: nothing can reach a
        # deleted widget from that thread).
        self._cpu_poll = QTimer(self)
        self._cpu_poll.setInterval(3)
        self._cpu_poll.timeout.connect(self._poll_cpu_refine)

        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.timeout.connect(self._on_settled)
        self._headLoaded.connect(self._on_head_loaded, Qt.ConnectionType.QueuedConnection)

        self._stack = QStackedLayout(self)
        self._stack.setContentsMargins(0, 0, 0, 0)
        self._message = _MessageView(self)
        self._gl: _GLView | None = None
        self._container: QWidget | None = None
        reason = gl_unavailable_reason()
        if reason is None:
            self._gl = _GLView(self)
            # The container never takes focus (it would hand it to the GL window, outside the
            # widget tree's shortcuts): this widget does, and gets the keys.
            self._container = QWidget.createWindowContainer(self._gl, self)
            self._container.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self._container.setMinimumSize(1, 1)
            self._stack.addWidget(self._container)
        self._stack.addWidget(self._message)
        self.gl_error: str | None = None
        if reason is not None:
            self._set_gl_unavailable(reason)

        controller.frameChanged.connect(self._on_frame_changed)
        controller.documentChanged.connect(self._on_document_changed)
        controller.projectReplaced.connect(self._on_project_replaced)
        controller.playingChanged.connect(self._on_playing_changed)
        self._request_head()

    # ------------------------------------------------------------------------------ public API
    @property
    def gl_available(self) -> bool:
        """False once the viewport knows it cannot draw with OpenGL (see ``gl_error``)."""
        return self._gl is not None and self.gl_error is None

    @property
    def view_mode(self) -> str:
        return self._view_mode

    def set_view_mode(self, mode: str) -> None:
        """ "mono", "sbs" (stereo side by side) or "anaglyph" (red-cyan). Raises ValueError."""
        if mode not in VIEW_MODES:
            raise ValueError(f"unknown view mode {mode!r}; expected one of {VIEW_MODES}")
        if mode != self._view_mode:
            self._view_mode = mode
            self._redraw(scene=True)
            self.viewModeChanged.emit(mode)

    @property
    def keypoints_visible(self) -> bool:
        return self._keypoints_visible

    def set_keypoints_visible(self, visible: bool) -> None:
        if bool(visible) != self._keypoints_visible:
            self._keypoints_visible = bool(visible)
            self._hover_kp = None
            self._redraw(scene=False)
            self.keypointsVisibleChanged.emit(self._keypoints_visible)

    def toggle_keypoints(self) -> None:
        self.set_keypoints_visible(not self._keypoints_visible)

    @property
    def view_state(self) -> ViewState:
        return self.camera_control.state

    def set_view_state(self, state: ViewState) -> None:
        self.camera_control.state = state
        self._redraw(scene=True)

    @property
    def lod_budget(self) -> int | None:
        return self._lod_budget

    def set_lod_budget(self, budget: int | None, force: bool | None = None) -> None:
        """Gaussians drawn while interacting (None: always the full head). force: True/False
        to use LOD while interacting regardless of the GL (None: automatic)."""
        if budget is not None and (isinstance(budget, bool) or int(budget) < 1):
            raise ValueError(f"LOD budget must be a positive integer or None, got {budget!r}")
        self._lod_budget = None if budget is None else int(budget)
        self._lod_forced = force
        self._lod_level = 0
        self._adaptive = dict(self._adaptive_start())
        self._redraw(scene=True)

    @property
    def splat_backend(self) -> str:
        """ "cpu" when Gaussian heads are rendered by the native CPU rasteriser (a software GL
        with the native library available), "gl" otherwise (and before GL started)."""
        gl = self._gl
        return "cpu" if gl is not None and gl.cpu_splats else "gl"

    def set_splat_backend(self, backend: str) -> None:
        """ "cpu" (only where available: else stays "gl") or "gl"; mainly for tests and
        benchmarks comparing the two. Raises ValueError for another name."""
        if backend not in ("cpu", "gl"):
            raise ValueError(f"unknown splat backend {backend!r}; expected 'cpu' or 'gl'")
        gl = self._gl
        if gl is None:
            return
        if gl.cpu_pending:  # still being built: an explicit request waits for it
            if _native_ok is None:
                _resolve_native()
            gl.take_up_native()
        want = backend == "cpu" and gl.cpu_available
        if want != gl.cpu_splats:
            self._cancel_refine()
            gl.cpu_splats = want
            self._adaptive = dict(self._adaptive_start())
            self._full_ms, self._full_synced = 0.0, False
            self._redraw(scene=True)

    def _adaptive_start(self) -> dict[str, tuple[float, int]]:
        return _ADAPTIVE_START_CPU if self.splat_backend == "cpu" else _ADAPTIVE_START

    @property
    def head(self) -> RiggedGaussianHead | None:
        """The rigged head being shown (None while loading, or when an MPI is shown)."""
        return self._head

    @property
    def head_ready(self) -> bool:
        return self._head_key is not None and self._loading_key is None

    @property
    def representation(self) -> str:
        """ "mpi" when a baked MPI is shown, else "gaussian"."""
        return "mpi" if self._mpi is not None else "gaussian"

    def frame_head(self) -> None:
        """Aim the view at the head (face and hair, not the shoulders) and fit it."""
        center, radius = self._head_bounds()
        w, h = max(self.width(), 1), max(self.height(), 1)
        aspect = (w / 2 if self._view_mode == "sbs" else w) / h
        self.camera_control.frame(center, radius, aspect)
        self._redraw(scene=True)

    def use_view_as_project_camera(self) -> bool:
        """Write the view's orbit into the project camera (one undo step)."""
        from studio.document import SetCamera

        cam = self.camera_control.state.to_settings(self.controller.project.camera)
        return self.controller.push(SetCamera(cam, label="Set camera from viewport"))

    @property
    def live_values(self) -> np.ndarray | None:
        """The live motion frame shown instead of the active take, or None."""
        return self._live_values

    def set_live_values(
        self, values: np.ndarray | None, prepared: LivePrepared | None = None
    ) -> None:
        """Show ``values [len(CHANNELS)]`` (live performance capture) instead of the active
        take at the current frame; None shows the take again. Each live frame counts as
        interaction: drawn with the interactive quality path (level of detail and adaptive
        resolution on a software GL) and never followed by a full-quality redraw while live.
        ``prepared``: :meth:`prepare_live` of the same values, done in another thread, so the
        GUI thread only uploads and draws. The frame is drawn at the event loop's next turn
        (not after Qt's update throttle). Raises ValueError for a wrong shape."""
        if values is None:
            if self._live_values is not None:
                self._live_values = None
                self._live_prepared = None
                self._live_head = None
                self._redraw(scene=True)
            return
        v = np.array(values, dtype=np.float64)
        if v.shape != (len(CHANNELS),):
            raise ValueError(f"live values must be [{len(CHANNELS)}], got {v.shape}")
        self._live_values = v
        self._live_prepared = prepared
        self._mark_interaction()
        self._redraw(scene=True)

    def prepare_live(self, values: np.ndarray) -> LivePrepared | None:
        """Deform the head live frames are drawn with (the level-of-detail head on a software
        GL) for ``values [len(CHANNELS)]``. Thread-safe: a capture thread calls it after
        tracking, in parallel with the GUI thread drawing the previous frame; pass the result
        to :meth:`set_live_values`. None before the first live frame was drawn (the viewport
        does not know its head yet) or without a Gaussian head."""
        head = self._live_head
        if head is None:
            return None
        v = np.array(values, dtype=np.float64)
        return LivePrepared(head, v, head.deform(v))

    def grab_frame(self) -> QImage:
        """The viewport's current image (renders a frame now). A null QImage without GL."""
        if not self.gl_available or self._gl is None:
            return QImage()
        return self._gl.grab_frame()

    def current_cameras(self) -> list[tuple[Camera, tuple[int, int, int, int]]]:
        """The view mode's cameras and viewports in device pixels (see gl_scene.view_cameras)."""
        w, h = self._device_size()
        cam = self.controller.project.camera
        return view_cameras(
            self.camera_control.state, self._view_mode, w, h, cam.ipd, cam.convergence
        )

    def keypoint_positions(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Projected keypoints per drawn view: (view index, xy [21, 2] logical pixels, visible
        [21] bool). Empty without a rigged head. Anaglyph overlays use the centre camera."""
        if self._head is None or self._mpi is not None:
            return []
        world = self._head.keypoints_world(self._values())
        dpr = self._dpr()
        w, h = self._device_size()
        if self._view_mode == "anaglyph":
            views = [(self.camera_control.state.camera(w, h), (0, 0, w, h))]
        else:
            views = self.current_cameras()
        out = []
        for i, (cam, (x, _y, _vw, _vh)) in enumerate(views):
            uv, depth = cam.project(world)
            vis = np.isfinite(uv).all(axis=1) & (depth > 0)
            xy = np.where(vis[:, None], (uv + np.array([x, 0.0])) / dpr, np.nan)
            out.append((i, xy, vis))
        return out

    # ------------------------------------------------------------------------------ head loading
    def _head_request_key(self) -> tuple:
        project = self.controller.project
        ref = project.head
        try:
            if ref is not None and ref.kind == "mpi":
                return ("mpi", ref.asset, str(self.controller.path))
            return head_cache_key(ref, project.assets)
        except HeadResolveError as exc:
            return ("error", str(exc))

    def _request_head(self) -> None:
        key = self._head_request_key()
        if key == self._head_key or key == self._loading_key:
            return
        self._loading_key = key
        project = self.controller.project
        path = self.controller.path
        signal = self._headLoaded
        # the interactive budgets _render_scene may pick (lod_budget >> level, level 0..2)
        budgets = [] if self._lod_budget is None else [self._lod_budget >> i for i in range(3)]

        def load() -> None:
            head = mpi = None
            errors = []
            try:
                mpi = resolve_mpi(project, path)
            except HeadResolveError as exc:
                errors.append(str(exc))
            if mpi is None and project.head is not None and project.head.kind != "mpi":
                try:  # a head file of the MPI kind: deformed into an MPI every frame
                    from models.heads import RiggedMPIHead

                    rigged = resolve_any_head(project.head, project.assets)
                    if isinstance(rigged, RiggedMPIHead):
                        mpi = rigged
                except HeadResolveError:
                    pass  # project_head below says what is wrong
            if mpi is None:
                try:
                    head = project_head(project)
                except HeadResolveError as exc:
                    errors.append(str(exc))
                    try:
                        head = resolve_head(None)  # the default head, so the view shows a face
                    except HeadResolveError as exc2:
                        errors.append(str(exc2))
            if head is not None:
                # The rig's stretch fits and the LOD sub-heads, built here rather than by the
                # first preview or live frame in the GUI thread (hundreds of ms on 2 cores).
                try:
                    prepare_head(head, budgets)
                except Exception:  # only a speed-up: the frames build what they need anyway
                    log.exception("viewport: preparing the head failed")
            try:
                signal.emit(key, head, mpi, "; ".join(errors))
            except RuntimeError:  # the widget was deleted while loading
                pass

        threading.Thread(target=load, name="viewport-head-loader", daemon=True).start()

    def _on_head_loaded(self, key: tuple, head: Any, mpi: Any, error: str) -> None:
        if key != self._loading_key:
            return  # a newer request is under way
        self._loading_key = None
        first = self._head_key is None
        self._head_key = key
        from models.heads import RiggedMPIHead

        self._mpi_head = mpi if isinstance(mpi, RiggedMPIHead) else None
        self._mpi_values = None
        if self._mpi_head is not None:
            mpi = self._deformed_mpi()
        self._head, self._mpi = head, mpi
        self._deform_full.clear()
        self._deform_lod.clear()
        self.head_error = error or None
        if error:
            self.controller.notify(f"Viewport: {error}", "warning")
        if self._gl is not None:
            self._gl.head_changed()
        if first and self.controller.project.camera == type(self.controller.project.camera)():
            # A project that never set its camera: frame the head instead of the bare default.
            self.frame_head()
        self.headChanged.emit()
        self._redraw(scene=True)

    def _deformed_mpi(self) -> MPI | None:
        """The rigged MPI head deformed by the current motion (cached while it is unchanged).
        A head that cannot take the motion shows its rest planes and says why once."""
        from studio.head_import import deformed_mpi

        head = self._mpi_head
        values = self._values()
        if self._mpi is not None and self._mpi_values is not None:
            if np.array_equal(values, self._mpi_values):
                return self._mpi
        try:
            mpi = deformed_mpi(head, values)
        except ValueError as exc:
            if self.head_error is None:
                self.head_error = f"cannot pose the MPI head: {exc}"
                self.controller.notify(f"Viewport: {self.head_error}", "warning")
            mpi = deformed_mpi(head, CHANNEL_DEFAULTS)
        self._mpi_values = values.copy()
        return mpi

    def _head_bounds(self) -> tuple[np.ndarray, float]:
        if self._mpi is not None:
            cam = self._mpi.camera
            depth = float(np.mean(self._mpi.depths))
            corners = cam.unproject(
                np.array([[0, 0], [cam.width, cam.height]], dtype=np.float64), depth
            )
            center = cam.unproject(np.array([[cam.cx, cam.cy]]), depth)[0]
            return center, 0.5 * float(np.linalg.norm(corners[1] - corners[0])) / math.sqrt(2)
        if self._head is None:
            return np.zeros(3), 0.15
        from models.heads.rig import PART_INDEX

        arrays = self._deform_for(self._head, self._deform_full)
        keep = ~np.isin(self._head.parts, [PART_INDEX["neck"], PART_INDEX["clothes"]])
        pts = arrays.means[keep] if keep.any() else arrays.means
        lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
        center = (lo + hi) / 2.0
        radius = float(np.linalg.norm(hi - lo)) / 2.0
        return center, max(radius * 0.85, 1e-3)

    # ------------------------------------------------------------------------------ state
    def _values(self) -> np.ndarray:
        if self._preview_values is not None:
            return self._preview_values
        if self._live_values is not None:
            return self._live_values
        return self.controller.current_values()

    def _deform_for(self, head: RiggedGaussianHead, cache: DeformCache) -> Any:
        if self._preview_values is not None:
            return head.deform(self._preview_values)
        if self._live_values is not None:
            self._live_head = head  # what prepare_live deforms from now on
            p = self._live_prepared
            if p is not None and p.head is head and np.array_equal(p.values, self._live_values):
                self.stats["live_prepared"] = self.stats.get("live_prepared", 0) + 1
                return p.arrays
            return head.deform(self._live_values)
        c = self.controller
        return cache.deform(head, (c.revision, c.frame), c.current_values())

    def _interacting(self) -> bool:
        return (
            self.camera_control.dragging
            or self._kp_drag is not None
            or self.controller.playing
            or self._live_values is not None  # live capture: a new pose every frame
            or time.perf_counter() < self._interact_until
        )

    def _mark_interaction(self) -> None:
        self._cancel_refine()
        self._interact_until = time.perf_counter() + SETTLE_MS / 1000.0
        self._settle.start(SETTLE_MS)

    def _degraded(self) -> bool:
        """Whether this frame is an interactive one drawn at reduced quality (LOD budget and
        resolution): while interacting, on a software GL or after slow full frames."""
        if self._head is None and self._mpi is None:
            return False
        if not self._interacting():
            # A slow full-quality frame is refined progressively after an interactive one.
            return not self._force_direct and self._progressive()
        if self._lod_forced is not None:
            return self._lod_forced
        software = self._gl is not None and self._gl.software
        return software or self._full_ms > SLOW_FRAME_MS

    def _on_settled(self) -> None:
        if self._interacting():
            self._settle.start(SETTLE_MS)
        elif self.stats.get("degraded"):
            if self._progressive() and not self._force_direct:
                if self._start_refine():
                    return
                self._force_direct = True  # cannot refine now: one direct frame, as before
            self._redraw(scene=True)

    def _progressive(self) -> bool:
        """Whether full-quality frames are refined progressively: a Gaussian head (MPI frames
        are cheap), level of detail not switched off, and a slow full frame (a software GL
        until one was measured, else the last one took REFINE_MIN_MS or more)."""
        gl = self._gl
        if gl is None or self.refine_min_ms is None or self._lod_forced is False:
            return False
        if self._head is None or self._mpi is not None or self._mpi_head is not None:
            return False
        if not self._full_synced:
            return gl.software or self._full_ms >= self.refine_min_ms
        return self._full_ms >= self.refine_min_ms

    def _redraw(self, scene: bool = True) -> None:
        # Every repaint of the GL window goes through paint_now(): drawn at the event loop's
        # next turn rather than after Qt's 5 ms update throttle (a playback frame waited that
        # long out of its 40 ms), and, never mixed with update(), never presented twice.
        if self._gl is not None and self.gl_error is None:
            if scene:
                self._cancel_refine()
                self._gl.scene_dirty = True
            self._gl.paint_now()
        else:
            self._message.update()

    def _set_gl_unavailable(self, reason: str) -> None:
        self.gl_error = reason
        self._message.text = f"3D viewport unavailable: {reason}."
        self._stack.setCurrentWidget(self._message)
        log.warning("viewport: %s", reason)

    def _device_size(self) -> tuple[int, int]:
        dpr = self._dpr()
        return max(round(self.width() * dpr), 1), max(round(self.height() * dpr), 1)

    def _dpr(self) -> float:
        return float(self.devicePixelRatioF())

    # ------------------------------------------------------------------------------ controller
    def _on_frame_changed(self, _frame: int) -> None:
        if self._kp_drag is not None:
            self._cancel_keypoint_drag()
        self._mark_interaction()
        self._redraw(scene=True)

    def _on_document_changed(self, kind: str, detail: dict) -> None:
        if kind == "camera":
            self.camera_control.state = ViewState.from_settings(self.controller.project.camera)
        if kind in ("head", "assets"):
            self._request_head()
        self._redraw(scene=True)

    def _on_project_replaced(self) -> None:
        self._cancel_keypoint_drag()
        self.camera_control.state = ViewState.from_settings(self.controller.project.camera)
        self._request_head()
        self._redraw(scene=True)

    def _on_playing_changed(self, playing: bool) -> None:
        if not playing:
            self._mark_interaction()

    # ------------------------------------------------------------------------------ input
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self._on_key(event):
            super().keyPressEvent(event)

    def event(self, event: QEvent) -> bool:
        # Keep the viewport's keys (F, Home, K, V, 1-3) while it has focus, even when the main
        # window binds them as shortcuts.
        return _claim_viewport_key(event) or super().event(event)

    def paintEvent(self, event: Any) -> None:
        # QWidget.grab()/render() of the window around the viewport (the studio's screenshots)
        # draw widgets, not native child windows: they would show a hole where the head is, so
        # the current frame is painted here for them. On screen (painting into the window's
        # backing store, which Qt does whenever something around the viewport repaints, ~10
        # times a second while playing) the GL window covers this widget: nothing to do.
        gl, container = self._gl, self._container
        if gl is None or container is None or not self.gl_available or container.isHidden():
            return
        painter = QPainter(self)
        try:
            store = self.backingStore()
            engine = painter.paintEngine()
            on_screen = store is None or engine is None
            on_screen = on_screen or _same_object(engine.paintDevice(), store.paintDevice())
            if not on_screen:
                img = gl.grab_frame()
                if not img.isNull():
                    painter.drawImage(container.geometry().topLeft(), img)
        finally:
            painter.end()

    def _take_focus(self) -> None:
        """Keyboard focus to this widget (a click into the GL window), activating its window."""
        if not self.isActiveWindow():
            self.activateWindow()
        self.setFocus(Qt.FocusReason.MouseFocusReason)

    def _forward_key(self, event: QKeyEvent) -> None:
        """A key typed into the GL window itself (when a window system focused it): the
        viewport's keys, else the main window's shortcut for it."""
        if not self._on_key(event):
            _trigger_shortcut(self, event)

    def _view_at(self, pos: QPointF) -> int:
        if self._view_mode == "sbs" and pos.x() >= self.width() / 2:
            return 1
        return 0

    def _pick_keypoint(self, pos: QPointF) -> tuple[int, int] | None:
        """(view index, keypoint) under ``pos`` (logical pixels), nearest first, or None."""
        if not self._keypoints_visible:
            return None
        best: tuple[float, int, int] | None = None
        for view, xy, vis in self.keypoint_positions():
            d = np.hypot(xy[:, 0] - pos.x(), xy[:, 1] - pos.y())
            d = np.where(vis, d, np.inf)
            k = int(np.argmin(d))
            if d[k] <= _PICK_RADIUS and (best is None or d[k] < best[0]):
                best = (float(d[k]), view, k)
        return None if best is None else (best[1], best[2])

    def _on_mouse_press(self, event: QMouseEvent) -> None:
        pos = event.position()
        button, mods = event.button(), event.modifiers()
        alt = bool(mods & Qt.KeyboardModifier.AltModifier)
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        if button == Qt.MouseButton.LeftButton and not alt and not shift:
            hit = self._pick_keypoint(pos)
            if hit is not None and self._head is not None:
                self._begin_keypoint_drag(*hit)
                return
        mode = None
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and shift):
            mode = "pan"
        elif button == Qt.MouseButton.LeftButton:
            mode = "orbit"
        elif button == Qt.MouseButton.RightButton and alt:
            mode = "zoom"
        if mode is not None:
            self.camera_control.begin(mode, pos.x(), pos.y(), self.height())
            self._mark_interaction()

    def _on_mouse_move(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._kp_drag is not None:
            self._move_keypoint_drag(pos)
            return
        if self.camera_control.dragging:
            if self.camera_control.move(pos.x(), pos.y()):
                self._mark_interaction()
                self._redraw(scene=True)
            return
        if self._keypoints_visible:
            hit = self._pick_keypoint(pos)
            k = None if hit is None else hit[1]
            if k != self._hover_kp:
                self._hover_kp = k
                self._redraw(scene=False)

    def _on_mouse_release(self, event: QMouseEvent) -> None:
        if self._kp_drag is not None and event.button() == Qt.MouseButton.LeftButton:
            self._finish_keypoint_drag()
            return
        if self.camera_control.dragging:
            self.camera_control.end()
            self._mark_interaction()

    def _on_wheel(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0
        if notches:
            self.camera_control.zoom(notches)
            self._mark_interaction()
            self._redraw(scene=True)
        event.accept()

    def _on_key(self, event: QKeyEvent) -> bool:
        """Viewport shortcuts; returns whether the key was used."""
        key = event.key()
        if event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        if key in (Qt.Key.Key_F, Qt.Key.Key_Home):
            self.frame_head()
        elif key == Qt.Key.Key_K:
            self.toggle_keypoints()
        elif key == Qt.Key.Key_V:
            modes = list(VIEW_MODES)
            self.set_view_mode(modes[(modes.index(self._view_mode) + 1) % len(modes)])
        elif key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3):
            self.set_view_mode(VIEW_MODES[key - Qt.Key.Key_1])
        elif key == Qt.Key.Key_Escape and self._kp_drag is not None:
            self._cancel_keypoint_drag()
        else:
            return False
        return True

    # ------------------------------------------------------------------------------ keypoint drag
    def _begin_keypoint_drag(self, view: int, k: int) -> None:
        cams = self.current_cameras()
        cam = cams[view][0] if self._view_mode != "anaglyph" else self._center_camera()
        try:
            self._kp_drag = KeypointDrag(self._head, self.controller.current_values(), k, cam)
        except ValueError as exc:
            self.controller.notify(f"Keypoint drag: {exc}", "warning")
            return
        self._kp_drag_view = view
        self._hover_kp = k
        self._mark_interaction()

    def _center_camera(self) -> Camera:
        w, h = self._device_size()
        return self.camera_control.state.camera(w, h)

    def _move_keypoint_drag(self, pos: QPointF) -> None:
        drag = self._kp_drag
        assert drag is not None
        dpr = self._dpr()
        x0 = 0
        if self._view_mode == "sbs":
            x0 = self.current_cameras()[self._kp_drag_view][1][0]
        u, v = pos.x() * dpr - x0, pos.y() * dpr
        self._preview_values = drag.update(u, v)
        self._mark_interaction()
        self._redraw(scene=True)

    def _finish_keypoint_drag(self) -> None:
        drag = self._kp_drag
        self._kp_drag = None
        self._preview_values = None
        if drag is not None and drag.changed:
            c = self.controller
            c.key_values(
                drag.keys(c.frame), label=f"Move keypoint {drag.keypoint.name} at frame {c.frame}"
            )
        self._mark_interaction()
        self._redraw(scene=True)

    def _cancel_keypoint_drag(self) -> None:
        if self._kp_drag is not None or self._preview_values is not None:
            self._kp_drag = None
            self._preview_values = None
            self._redraw(scene=True)

    # ------------------------------------------------------------------------------ drawing
    def _render_scene(self, view: _GLView, w: int, h: int) -> None:
        """Draw the head for the current state into the view's compositor (GL current)."""
        t0 = time.perf_counter()
        self._cancel_refine()
        view.take_up_native()
        degraded = self._degraded()
        self._force_direct = False
        live = self._live_values is not None and self._preview_values is None
        mode = "live" if live else "playback" if self.controller.playing else "interactive"
        # A view that changed without interaction (a new take, an edit, the view mode) while
        # full frames are refined progressively: a cheap stand-in, shown only until the refined
        # frame replaces it (the interactive budget, 25k Gaussians at half resolution, costs
        # ~0.1 s on 2 cores; this one the cost of a live frame).
        stand_in = degraded and not self._interacting()
        cpu = view.cpu_splats and self._mpi is None and self._mpi_head is None
        if stand_in:
            self._interactive_scale, self._lod_level = _STAND_IN_CPU if cpu else _STAND_IN
        elif degraded:
            self._interactive_scale, self._lod_level = self._adaptive[mode]
        lod = False
        draw = None
        render_cpu = None
        splats = 0
        if self._mpi_head is not None:
            self._mpi = self._deformed_mpi()
        if self._mpi is not None:
            renderer = view.mpi_renderer(self._mpi)
            splats = renderer.num_quads

            def draw(cam: Camera, fbo: moderngl.Framebuffer, vp: tuple) -> None:
                renderer.draw(cam, fbo, viewport=vp, background=None)

        elif self._head is not None:
            budget = self._lod_budget
            if budget is not None:
                budget = max(budget >> self._lod_level, 1)
            lod = degraded and budget is not None and len(self._head) > budget
            head = lod_head(self._head, budget) if lod else self._head
            arrays = self._deform_for(head, self._deform_lod if lod else self._deform_full)
            splat = view.splat_renderer(lod)
            splat.uploader.push(arrays)
            splats = len(arrays)

            if cpu:

                def render_cpu(cam: Camera, out: np.ndarray) -> None:
                    # GIL released: the capture thread tracks the next frame meanwhile
                    splat.renderer.render_rgba8(cam, None, out)

            else:

                def draw(cam: Camera, fbo: moderngl.Framebuffer, vp: tuple) -> None:
                    if live:  # the capture thread tracks the next frame meanwhile: no GIL
                        view.draw_splats_nogil(splat.renderer, cam, fbo, vp)
                    else:
                        splat.renderer.draw(cam, fbo, viewport=vp, background=None)

        scale = self._interactive_scale if degraded else 1.0
        sw, sh = max(round(w * scale), 1), max(round(h * scale), 1)
        cam = self.controller.project.camera
        views = view_cameras(
            self.camera_control.state, self._view_mode, sw, sh, cam.ipd, cam.convergence
        )
        if cpu:
            # Composed on the CPU and written into a texture: nothing queued for the GL to
            # finish, the measured time is the whole frame's.
            view.compositor.render_cpu(render_cpu, views, self._view_mode, w, h, content=(sw, sh))
        else:
            view.compositor.render(draw, views, self._view_mode, w, h, content=(sw, sh))
        if cpu:
            pass
        elif view.sync_timing or (degraded and (live or self.controller.playing)):
            # Without a finish the draw calls only queue work (a software GL rasterises when
            # the frame is presented), the measured time is a fraction of the real one and the
            # adaptive resolution would creep up: streaming frames (live, playback) must be
            # timed honestly to hold their rate. A scrub is latency-bound instead: there the
            # rasteriser's threads overlap Qt's own work until the swap (45 vs 53 ms a scrub).
            # Live frames wait with the GIL released (see _GLView.finish): the capture thread
            # tracks and deforms the next pose meanwhile.
            if live:
                view.finish()
            else:
                view.ctx.finish()
        synced = view.sync_timing or cpu
        if cpu:
            pass
        elif not degraded and view.software and self._head is not None and self._mpi is None:
            # Full-quality frames on a software GL are timed honestly (the swap would wait for
            # the rasteriser anyway): they decide whether the next one is refined progressively.
            view.finish()
            synced = True
        ms = (time.perf_counter() - t0) * 1000.0
        if stand_in:
            self._settle.start(SETTLE_MS)
        elif degraded:
            # Live capture and playback present a new frame every 33-40 ms, sharing it with
            # deformation, Qt's composition (and live tracking): they aim lower than a scrub.
            target = LIVE_MS if live else PLAYBACK_MS if self.controller.playing else INTERACTIVE_MS
            # Fill rate dominates on a software GL: time ~ pixels ~ scale^2. Damped step.
            want = scale * math.sqrt(target / max(ms, 1.0))
            self._interactive_scale = float(np.clip(0.5 * scale + 0.5 * want, 0.25, 1.0))
            # Per-Gaussian work (projection, triangle setup) does not shrink with resolution:
            # at the smallest scale, halve the budget (down to a quarter); give it back when fast.
            if ms > 1.5 * target and scale <= 0.3 and self._lod_level < 2:
                self._lod_level += 1
            elif ms < 0.5 * target and self._lod_level > 0:
                self._lod_level -= 1
            self._adaptive[mode] = (self._interactive_scale, self._lod_level)
            self._settle.start(SETTLE_MS)
        elif self._head is not None or self._mpi is not None:
            self._full_ms = ms
            self._full_synced = synced
        self._render_times.append(time.perf_counter())
        self.stats.update(
            render_ms=ms, splats=splats, lod=lod, scale=scale, degraded=degraded,
            renders=self.stats["renders"] + 1,
        )  # fmt: skip

    # ------------------------------------------------------------------------------ refinement
    def _start_refine(self) -> bool:
        """Start refining the full-quality frame progressively (see the module docstring).
        False when it cannot start now (no exposed GL window, no Gaussian head)."""
        self._cancel_refine()
        gl = self._gl
        if gl is None or gl.ctx is None or gl.compositor is None or self._head is None:
            return False
        if not gl.isExposed() or not gl.isValid():
            return False
        w, h = self._device_size()
        cam = self.controller.project.camera
        views = view_cameras(
            self.camera_control.state, self._view_mode, w, h, cam.ipd, cam.convergence
        )
        job = _RefineJob((w, h), self._view_mode, views, self.stats["renders"])
        self._refine = job
        if gl.cpu_splats:
            return self._start_cpu_refine(gl, job)
        self._refine_timer.start()
        return True

    def _start_cpu_refine(self, gl: _GLView, job: _RefineJob) -> bool:
        """Hand the full-quality frame to the CPU refiner's thread: the head deformed for this
        frame (cached per frame) and the background, here; the render (GIL released) and the
        composition there. :meth:`_on_cpu_refined` shows it."""
        assert self._head is not None and gl.compositor is not None
        t0 = time.perf_counter()
        job.cpu = True
        job.arrays = self._deform_for(self._head, self._deform_full)
        job.splats = len(job.arrays)
        job.head_id = id(self._head)
        gl.makeCurrent()
        try:
            job.background = gl.compositor.cpu_background(job.mode, *job.size)
        finally:
            gl.doneCurrent()
        job.total_ms = (time.perf_counter() - t0) * 1000.0
        if self._cpu_refiner is None:
            self._cpu_refiner = _CPURefiner()
        self._cpu_refiner.submit(job)
        self._cpu_poll.start()
        return True

    def _poll_cpu_refine(self) -> None:
        job = self._refine
        if job is None or not job.cpu:
            self._cpu_poll.stop()
        elif job.done.is_set():
            self._cpu_poll.stop()
            self._on_cpu_refined(job)

    def _on_cpu_refined(self, job: _RefineJob) -> None:
        """A full-quality frame from the CPU refiner (GUI thread): shown unless superseded."""
        if job is not self._refine:
            return  # cancelled: a newer scene was drawn meanwhile
        gl = self._gl
        if job.error is not None or job.frame is None:
            log.error("viewport: rendering the full-quality frame failed: %s", job.error)
            self._refine = None
            self._force_direct = True  # never leave the window on the stand-in
            self._redraw(scene=True)
            return
        if gl is None or gl.compositor is None or not self._refine_still_valid(job):
            self._cancel_refine()
            self._settle.start(SETTLE_MS)
            return
        t0 = time.perf_counter()
        gl.makeCurrent()
        try:
            gl.compositor.show_cpu_scene(job.frame, job.mode, *job.size)
        finally:
            gl.doneCurrent()
        ms = (time.perf_counter() - t0) * 1000.0
        job.steps = 1
        job.max_ms = ms  # what the GUI thread spent on it here (the render ran in the worker)
        job.log.append((round(job.total_ms, 1), job.splats))
        job.total_ms += ms
        self._refine = None
        self._refine_finished(gl, job)

    def _refine_finished(self, gl: _GLView, job: _RefineJob) -> None:
        """The full-quality frame of ``job`` is in place: record it and present it."""
        gl.scene_dirty = False
        self._full_ms = job.total_ms
        self._full_synced = True
        self._render_times.append(time.perf_counter())
        self.stats.update(
            render_ms=job.total_ms, splats=job.splats, lod=False, scale=1.0, degraded=False,
            renders=self.stats["renders"] + 1, refine_steps=job.steps,
            refine_max_ms=job.max_ms, refine_log=job.log, refines=self.stats.get("refines", 0) + 1,
        )  # fmt: skip
        gl.paint_now()  # composition only: the scene is cached

    def _cancel_refine(self) -> None:
        if self._refine is not None:
            self._refine.cancelled = True
            self._refine = None
            self._refine_timer.stop()
            self._cpu_poll.stop()
            self.stats["refine_cancelled"] = self.stats.get("refine_cancelled", 0) + 1

    def _refine_still_valid(self, job: _RefineJob) -> bool:
        gl = self._gl
        return (
            gl is not None
            and gl.ctx is not None
            and gl.compositor is not None
            and gl.isExposed()
            and self.gl_error is None
            and self._head is not None
            and self._mpi is None
            and not self._interacting()
            and not gl.scene_dirty
            and job.size == self._device_size()
            and job.mode == self._view_mode
            and job.renders == self.stats["renders"]
        )

    def _refine_batch(self, job: _RefineJob) -> int:
        """Gaussians to draw in the next step: refine_step_ms over the measured ms per Gaussian
        (at most twice the previous batch of this job, so a misestimate cannot run away)."""
        rate = self._refine_rate
        if rate is None or rate[0] != (job.size, job.mode):
            n = _REFINE_FIRST_BATCH
        else:
            n = int(self.refine_step_ms / max(rate[1], 1e-6))
        if job.last_batch:
            n = min(n, 2 * job.last_batch)
        return max(n, 256)

    def _refine_step(self) -> None:
        """One step of the refinement job (a 0-ms timer; GL made current here)."""
        job = self._refine
        if job is None:
            return
        if not self._refine_still_valid(job):
            self._cancel_refine()
            self._settle.start(SETTLE_MS)  # try again once things are quiet
            return
        gl = self._gl
        assert gl is not None and gl.compositor is not None and self._head is not None
        t0 = time.perf_counter()
        try:
            drawn = self._refine_work(gl, job)
        except Exception:
            # Never leave the window on the stand-in: draw the full frame directly instead
            # (whose own failure paintGL reports).
            log.exception("viewport: refining the full-quality frame failed")
            self._refine = None
            self._force_direct = True
            self._redraw(scene=True)
            return
        ms = (time.perf_counter() - t0) * 1000.0
        job.steps += 1
        job.log.append((round(ms, 1), drawn))
        job.total_ms += ms
        job.max_ms = max(job.max_ms, ms)
        if drawn:
            rate = ms / drawn
            key = (job.size, job.mode)
            old = self._refine_rate
            if old is not None and old[0] == key and rate < old[1]:
                rate = 0.5 * (rate + old[1])  # quick to slow down, slow to speed up
            self._refine_rate = (key, rate)
        if job.m >= 0 and job.pos >= job.m:
            job.view += 1
            job.m = -1
        if job.view < len(job.views):
            self._refine_timer.start()
            return
        self._finish_refine(job)

    def _refine_work(self, gl: _GLView, job: _RefineJob) -> int:
        """The GL work of one refinement step (GL made current here); returns the Gaussians
        drawn (0 for the preparation steps)."""
        assert self._head is not None and gl.compositor is not None
        drawn = 0
        gl.makeCurrent()
        try:
            if job.arrays is None:
                # Step 0: the full head deformed for this frame (cached per frame); no GL.
                job.arrays = self._deform_for(self._head, self._deform_full)
            elif job.slot is None:
                # Step 1: uploaded, and the background of the back layers.
                slot = gl.splat_renderer(False)
                slot.uploader.push(job.arrays)
                job.slot, job.splats = slot, len(job.arrays)
                job.fbos = gl.compositor.begin_back(job.views, job.mode, *job.size)
            elif job.m < 0:
                # Sort and project the next view once; its triangles are drawn in batches.
                job.m = job.slot.renderer.prepare(job.views[job.view][0])
                job.pos = 0
            else:
                drawn = min(self._refine_batch(job), job.m - job.pos)
                _cam, vp = job.views[job.view]
                stop = job.pos + drawn
                job.slot.renderer.draw_prepared(job.fbos[job.view], job.pos, stop, viewport=vp)
                job.pos = stop
                job.last_batch = drawn
            # Bounded, measured steps: wait for the GL here (GIL released) rather than let a
            # software GL rasterise the queued work in some later swap.
            gl.finish()
        finally:
            gl.doneCurrent()
        return drawn

    def _finish_refine(self, job: _RefineJob) -> None:
        gl = self._gl
        assert gl is not None and gl.compositor is not None
        self._refine = None
        if not gl.compositor.swap_back():
            self._settle.start(SETTLE_MS)
            return
        self._refine_finished(gl, job)

    def _fps(self) -> float | None:
        now = time.perf_counter()
        recent = [t for t in self._render_times if now - t < 1.0]
        if len(recent) < 3:
            return None
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def _paint_overlay(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self._keypoints_visible:
            self._paint_keypoints(painter)
        # Readout, top-left corner.
        s = self.stats
        parts = [f"{s['render_ms']:.0f} ms"]
        fps = self._fps()
        if fps is not None:
            parts.append(f"{fps:.0f} fps")
        if self._mpi is not None:
            parts.append(f"MPI {self._mpi.num_planes} planes")
        elif s["splats"]:
            parts.append(f"{s['splats'] / 1000:.0f}k splats" + (" (LOD)" if s["lod"] else ""))
        if s["degraded"] and s["scale"] < 1.0:
            parts.append(f"{s['scale'] * 100:.0f}% res")
        if self._view_mode != "mono":
            parts.append({"sbs": "stereo SBS", "anaglyph": "anaglyph"}[self._view_mode])
        text = "  ·  ".join(parts)
        if self._loading_key is not None:
            text = "Loading head…"
        font = QFont(painter.font())
        font.setPointSizeF(max(font.pointSizeF() * 0.9, 7.0))
        painter.setFont(font)
        fm = painter.fontMetrics()
        rect = QRectF(8, 8, fm.horizontalAdvance(text) + 12, fm.height() + 6)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 110))
        painter.drawRoundedRect(rect, 4, 4)
        painter.setPen(QColor("#c8cad0"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_keypoints(self, painter: QPainter) -> None:
        active = self._kp_drag.index if self._kp_drag is not None else self._hover_kp
        for _view, xy, vis in self.keypoint_positions():
            for k in range(NUM_KEYPOINTS):
                if not vis[k]:
                    continue
                color = QColor(_REGION_COLORS.get(KEYPOINTS[k].region, "#ffffff"))
                r = 5.0 if k == active else 3.5
                painter.setPen(QPen(QColor(10, 10, 12, 200), 1.2))
                painter.setBrush(color)
                painter.drawEllipse(QPointF(xy[k, 0], xy[k, 1]), r, r)
            if active is not None and vis[active]:
                kp = KEYPOINTS[active]
                label = f"{kp.index} {kp.name} ({kp.region})"
                if self._kp_drag is not None:
                    e = self._kp_drag.exp
                    label += f"  x {e[0]:+.3f}  y {e[1]:+.3f}"
                fm = painter.fontMetrics()
                p = QPointF(xy[active, 0] + 9, xy[active, 1] - 9)
                rect = QRectF(p.x(), p.y() - fm.ascent() - 3, fm.horizontalAdvance(label) + 10,
                              fm.height() + 4)  # fmt: skip
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QColor(0, 0, 0, 160))
                painter.drawRoundedRect(rect, 3, 3)
                painter.setPen(QColor("#f0f0f2"))
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)


class LivePrepared:
    """A live frame's head deformed off the GUI thread (:meth:`ViewportWidget.prepare_live`):
    the head it was deformed from, the values and the GaussianArrays."""

    __slots__ = ("arrays", "head", "values")

    def __init__(self, head: Any, values: np.ndarray, arrays: Any) -> None:
        self.head, self.values, self.arrays = head, values, arrays


class _RefineJob:
    """State of one progressive full-quality frame (ViewportWidget._refine_step)."""

    def __init__(self, size: tuple[int, int], mode: str, views: list, renders: int) -> None:
        self.size, self.mode, self.views, self.renders = size, mode, views, renders
        self.arrays: Any = None  # the deformed full head (GaussianArrays)
        self.slot: _SplatSlot | None = None
        self.fbos: list[Any] = []
        self.splats = 0
        self.view = 0  # the view being drawn
        self.m = -1  # its prepared triangles (-1: not prepared yet)
        self.pos = 0  # triangles of it drawn so far
        self.last_batch = 0
        self.steps = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.log: list[tuple[float, int]] = []  # (ms, Gaussians drawn) per step
        # CPU splats (_CPURefiner): the whole frame rendered and composed in its thread
        self.cpu = False
        self.cancelled = False
        self.head_id = 0
        self.background: np.ndarray | None = None  # [H, W, 4] uint8, row 0 at the top
        self.frame: np.ndarray | None = None  # the composed frame, same layout
        self.error: BaseException | None = None
        self.done = threading.Event()  # set by the refiner once frame or error is there


class _CPURefiner:
    """One worker thread rendering full-quality frames with its own CPUSplatRenderer (the GIL
    released during the render, OpenCV's composition mostly too), so settling after a scrub
    or a new take never blocks the GUI thread. Jobs are taken newest first: one submitted
    while another renders replaces any not yet started. A finished job has ``done`` set (the
    viewport polls it: this thread makes no Qt calls)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: _RefineJob | None = None
        self._thread: threading.Thread | None = None
        self._slot: _SplatSlot | None = None
        self._head_id = 0

    def submit(self, job: _RefineJob) -> None:
        with self._cond:
            self._pending = job
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="viewport-cpu-refine", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        from studio.viewport import gl_scene

        while True:
            with self._cond:
                while self._pending is None:
                    self._cond.wait()
                job, self._pending = self._pending, None
            if job.cancelled:
                continue
            t0 = time.perf_counter()
            try:
                if self._slot is None:
                    self._slot = _SplatSlot(None, cpu=True)
                if job.head_id != self._head_id:
                    self._slot.uploader.invalidate()
                    self._head_id = job.head_id
                self._slot.uploader.push(job.arrays)
                images = []
                for cam, vp in job.views:
                    if job.cancelled:
                        break
                    img = np.empty((cam.height, cam.width, 4), np.uint8)
                    self._slot.renderer.render_rgba8(cam, None, img)
                    images.append((img, vp))
                else:
                    job.frame = gl_scene.compose_cpu(images, job.background, job.mode)
            except Exception as exc:  # reported (and drawn directly instead) by the GUI thread
                job.error = exc
            job.total_ms += (time.perf_counter() - t0) * 1000.0
            job.done.set()


class _SplatSlot:
    """A splat renderer with its delta uploader: GaussianSplatRenderer, or with ``cpu`` the
    native CPUSplatRenderer (raises NativeUnavailable where it cannot be built)."""

    def __init__(self, ctx: moderngl.Context | None, cpu: bool = False) -> None:
        if cpu:
            from renderers.cpu_splats import CPUSplatRenderer

            self.renderer: Any = CPUSplatRenderer(ctx)
        else:
            from renderers.gl_splats import GaussianSplatRenderer

            self.renderer = GaussianSplatRenderer(ctx)
        self.uploader = SplatUploader(self.renderer)


class _GLView(QOpenGLWindow):
    """The GL surface of a ViewportWidget: owns the moderngl context and GL objects.

    A QOpenGLWindow in a window container rather than a QOpenGLWidget: a QOpenGLWidget makes
    Qt compose the whole top-level window with OpenGL on every viewport frame (on a software GL
    ~16 ms for the studio window), while a native child window presents only itself and the
    rest of the window keeps Qt's raster backing store. The window never takes keyboard focus
    (the ViewportWidget does, so the main window's shortcuts keep working); key events that
    reach it anyway are handed to the owner (see :meth:`ViewportWidget._forward_key`).
    """

    def __init__(self, owner: ViewportWidget) -> None:
        share = QOpenGLContext.globalShareContext()  # AA_ShareOpenGLContexts, as QOpenGLWidget
        behavior = QOpenGLWindow.UpdateBehavior.NoPartialUpdate  # draw straight to the window
        if share is not None:
            super().__init__(share, behavior)
        else:
            super().__init__(behavior)
        self.owner = owner
        self.setFormat(_surface_format())
        self.setFlag(Qt.WindowType.WindowDoesNotAcceptFocus, True)
        self.ctx: moderngl.Context | None = None
        self.compositor: SceneCompositor | None = None
        self.software = False
        # Gaussian heads rendered by the native CPU rasteriser (see the module docstring):
        # where available on a software GL; ViewportWidget.set_splat_backend switches.
        self.cpu_available = False
        self.cpu_splats = False
        self.cpu_pending = False  # the native library is being built (see initializeGL)
        self.sync_timing = False  # glFinish after a scene render (benchmarks: honest timings)
        self.scene_dirty = True
        self._splats: dict[tuple[bool, bool], _SplatSlot] = {}  # (lod, cpu) -> slot
        self._mpi_renderer: Any = None
        self._mpi_obj: Any = None
        self._gl_finish: Any = None  # glFinish releasing the GIL (see finish())
        self._gl_draw_arrays: Any = None  # glDrawArrays releasing the GIL (draw_splats_nogil)
        # Live frames draw their splats with the GIL released (draw_splats_nogil); False draws
        # them with moderngl as every other frame does (tests compare the two).
        self.nogil_draws = True
        self._paint_posted = False  # an update request from paint_now() is on its way
        self._events = _GLViewEvents(self)
        self.installEventFilter(self._events)
        self.frameSwapped.connect(owner.framePresented)

    def take_up_native(self) -> None:
        """Switch to CPU splats once the library initializeGL had built in a thread is there
        (called before every scene render; a no-op after the first)."""
        if self.cpu_pending and _native_ok is not None:
            self.cpu_pending = False
            self.cpu_available = self.cpu_splats = _native_ok
            self.owner._adaptive = dict(self.owner._adaptive_start())

    # GL objects ------------------------------------------------------------------------------
    def splat_renderer(self, lod: bool) -> _SplatSlot:
        key = (lod, self.cpu_splats)
        slot = self._splats.get(key)
        if slot is None:
            slot = self._splats[key] = _SplatSlot(self.ctx, cpu=self.cpu_splats)
        return slot

    def mpi_renderer(self, mpi: MPI) -> Any:
        from renderers.gl_mpi import MPIRenderer

        if self._mpi_renderer is None:
            self._mpi_renderer = MPIRenderer(self.ctx)
        if self._mpi_obj is not mpi:
            self._mpi_renderer.upload(mpi)
            self._mpi_obj = mpi
        return self._mpi_renderer

    def paint_now(self) -> None:
        """Draw at the next turn of the event loop, ahead of the widgets' repaints (every
        repaint the viewport asks for: live, playback and scrubbed frames, interaction,
        overlays). update() goes through QWindow::requestUpdate, which waits for a 5 ms timer
        (Qt's throttle for windows updated many times a frame): every live pose and playback
        frame waited that long. Posting the update request ourselves draws it as soon as the
        slot that changed the view returns; requests until then share the one paint. Not
        together with update(): the timer's request would present the same frame a second
        time (Qt paints on every update request)."""
        if not self.isExposed():
            self.update()  # painted when exposed
        elif not self._paint_posted:
            self._paint_posted = True
            QCoreApplication.postEvent(
                self, QEvent(QEvent.Type.UpdateRequest), Qt.EventPriority.HighEventPriority.value
            )

    def finish(self) -> None:
        """glFinish on the current context without holding the GIL. moderngl's finish keeps
        the GIL while a software GL rasterises (5-10 ms of a live frame on llvmpipe), which
        stalls the capture thread's Python (tracking, deformation) for that long; a ctypes
        call releases it. Falls back to moderngl where the entry point is not found."""
        if self._gl_finish is None:
            self._gl_finish = _gl_finish_function(self.context()) or self.ctx.finish
        self._gl_finish()

    def draw_splats_nogil(
        self, renderer: Any, cam: Camera, fbo: moderngl.Framebuffer, vp: tuple
    ) -> None:
        """``renderer.draw(cam, fbo, viewport=vp, background=None)`` (a GaussianSplatRenderer)
        with its one big draw call made through ctypes, which releases the GIL. On a software
        GL the draw call itself runs the vertex stage and bins every triangle into tiles in
        this thread (~5 ms for a live frame's 6k Gaussians on 2 cores): through moderngl the
        GIL was held all that time and the capture thread's tracking waited for it. Falls back
        to ``draw`` where glDrawArrays cannot be found or ``nogil_draws`` is off."""
        if self._gl_draw_arrays is None:
            self._gl_draw_arrays = _gl_function(self.context(), b"glDrawArrays", 3) or False
        fn = self._gl_draw_arrays
        if not fn or not self.nogil_draws:
            renderer.draw(cam, fbo, viewport=vp, background=None)
            return
        if renderer.prepare(cam):
            renderer.draw_prepared(fbo, viewport=vp, draw_arrays=fn)

    def head_changed(self) -> None:
        for slot in self._splats.values():
            slot.uploader.invalidate()
        self._mpi_obj = None
        self.scene_dirty = True

    def _drop_gl(self) -> None:
        self._splats = {}
        self._mpi_renderer = None
        self._mpi_obj = None
        self.compositor = None
        self.ctx = None
        self._gl_finish = None
        self._gl_draw_arrays = None

    def _release_gl(self) -> None:
        # The context is about to go (the window is destroyed).
        if self.ctx is None:
            return
        self.makeCurrent()
        try:
            for slot in self._splats.values():
                slot.renderer.release()
            if self._mpi_renderer is not None:
                self._mpi_renderer.release()
            if self.compositor is not None:
                self.compositor.release()
        except Exception as exc:  # releasing on a dying context must never crash the app
            log.debug("viewport: GL release failed: %s", exc)
        finally:
            self.doneCurrent()
            self._drop_gl()

    def grab_frame(self) -> QImage:
        """The scene and the overlays as an RGB32 image (device pixels, devicePixelRatio set),
        rendered now into an offscreen framebuffer: the window's own back buffer is undefined
        after a swap. A null QImage before the window was first exposed (no GL context yet)."""
        ctx, compositor, owner = self.ctx, self.compositor, self.owner
        if ctx is None or compositor is None or not self.isValid():
            return QImage()
        w, h = owner._device_size()
        self.makeCurrent()
        try:
            rb = ctx.renderbuffer((w, h), 4)
            fbo = ctx.framebuffer(color_attachments=[rb])
            try:
                if self.scene_dirty or not compositor.present(fbo, w, h):
                    # A settled view is grabbed at full quality now, not refined later.
                    owner._force_direct = True
                    owner._render_scene(self, w, h)
                    self.scene_dirty = False
                    compositor.present(fbo, w, h)
                    self.paint_now()  # the window shows the previous scene: present this one
                data = fbo.read(viewport=(0, 0, w, h), components=4, alignment=1)
            finally:
                fbo.release()
                rb.release()
        finally:
            self.doneCurrent()
        img = QImage(data, w, h, w * 4, QImage.Format.Format_RGBX8888)
        img = img.flipped(Qt.Orientation.Vertical).convertToFormat(QImage.Format.Format_RGB32)
        img.setDevicePixelRatio(owner._dpr())
        painter = QPainter(img)
        try:
            owner._paint_overlay(painter)
        finally:
            painter.end()
        return img

    # QOpenGLWindow ---------------------------------------------------------------------------
    def initializeGL(self) -> None:
        self._drop_gl()
        try:
            import moderngl

            ctx = moderngl.create_context(require=330)
            self.compositor = SceneCompositor(ctx)
            self.ctx = ctx
        except Exception as exc:  # moderngl raises plain Exceptions for driver problems
            self._drop_gl()
            reason = f"OpenGL error: {exc}"
            QTimer.singleShot(0, lambda: self.owner._set_gl_unavailable(reason))
            return
        renderer = str(ctx.info.get("GL_RENDERER", "")).lower()
        self.software = any(s in renderer for s in _SOFTWARE_GL)
        if self.software:
            # Reduced-resolution frames magnified on the CPU (see gl_scene): playback in the
            # studio window costs ~3.5 ms less CPU per frame on llvmpipe. OpenCV (~0.2 s to
            # import) is loaded in the background, not by the first interactive frame.
            self.compositor.cpu_magnify = True
            threading.Thread(target=_warm_import, args=("cv2",), name="viewport-cv2",
                             daemon=True).start()  # fmt: skip
            # Loaded now when built (setup builds it); else built in a thread (~1-2 s of a C
            # compiler, not in the GUI thread) and taken up by the first frame after that.
            status = _native_splats_status()
            self.cpu_pending = status is None
            self.cpu_available = bool(status)
        self.cpu_splats = self.cpu_available
        self.owner._adaptive = dict(self.owner._adaptive_start())
        context = self.context()
        if context is not None:
            context.aboutToBeDestroyed.connect(self._release_gl)
        self.scene_dirty = True

    def resizeGL(self, w: int, h: int) -> None:
        # Nothing to force: a scene cached at another size is not presented (present() is
        # False) but re-rendered, and one already rendered at this size (grab_frame() during
        # the resize) is presented as it is.
        pass

    def paintGL(self) -> None:
        ctx = self.ctx
        if ctx is None or self.compositor is None:
            return
        owner = self.owner
        w, h = owner._device_size()
        # moderngl sizes a detected framebuffer by the GL viewport, which the last frame left
        # at whatever it drew last (a reduced-resolution view, the size before a resize): the
        # present's framebuffer copy must see the window's size.
        ctx.viewport = (0, 0, w, h)
        fbo = ctx.detect_framebuffer(self.defaultFramebufferObject())
        fbo.use()
        try:
            if self.scene_dirty or not self.compositor.present(fbo, w, h):
                owner._render_scene(self, w, h)
                self.scene_dirty = False
                self.compositor.present(fbo, w, h)
        except Exception as exc:
            log.exception("viewport: drawing failed")
            self.scene_dirty = False
            reason = f"drawing failed: {exc}"
            QTimer.singleShot(0, lambda: owner._set_gl_unavailable(reason))
            return
        # moderngl uploads with GL_UNPACK_ALIGNMENT 1; QPainter's glyph cache uploads 4-byte
        # aligned rows assuming GL's default, and garbles text otherwise.
        funcs = self.context().functions()
        funcs.glPixelStorei(_GL_UNPACK_ALIGNMENT, 4)
        funcs.glPixelStorei(_GL_PACK_ALIGNMENT, 4)
        painter = QPainter(self)
        try:
            owner._paint_overlay(painter)
        finally:
            painter.end()

    # events -> owner -------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.owner._take_focus()
        self.owner._on_mouse_press(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self.owner._on_mouse_move(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self.owner._on_mouse_release(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.owner._on_wheel(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self.owner._forward_key(event)

    def focusInEvent(self, event: Any) -> None:
        # Should the window system focus it anyway, hand focus back to the widget tree.
        QTimer.singleShot(0, self.owner, self.owner._take_focus)
        super().focusInEvent(event)


class _GLViewEvents(QObject):
    """The GL window's own event handling, as an event filter rather than an ``event``
    override: with a Python ``event`` override, QOpenGLWindow's C++ painting (making the
    context current, the buffer swap: on a software GL a copy of the whole window to the X
    server, ~5 ms a live frame) ran inside a Python call holding the GIL, and the capture
    thread's tracking waited that long. Without the override PySide calls the C++ event()
    with the GIL released; only paintGL takes it."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.UpdateRequest:
            obj._paint_posted = False  # type: ignore[attr-defined]
            return False
        return _claim_viewport_key(event)


_native_ok: bool | None = None  # whether the native library loaded (None: not known yet)
_native_lock = threading.Lock()
_native_thread: threading.Thread | None = None


def _native_splats_status() -> bool | None:
    """Whether CPU splats can be used: loads the native library when it is built (a dlopen);
    otherwise starts building it in a thread and returns None until that is done."""
    global _native_thread
    if _native_ok is not None:
        return _native_ok
    try:
        from renderers.native import library_path

        built = library_path().exists()
    except Exception:
        built = False
    if built:
        _resolve_native()
        return _native_ok
    with _native_lock:
        if _native_thread is None:
            _native_thread = threading.Thread(
                target=_resolve_native, name="viewport-native-build", daemon=True
            )
            _native_thread.start()
    return None


def _resolve_native() -> None:
    global _native_ok
    _native_ok = _native_splats_available()


def _native_splats_available() -> bool:
    """Whether the native CPU splat rasteriser can be loaded here (builds it on first use,
    ~1 s, unless setup did); False without a C compiler or with THS_NATIVE=0."""
    try:
        from renderers.native import NativeUnavailable, load_library
    except ImportError:
        return False
    try:
        load_library()
    except NativeUnavailable as exc:
        log.info("viewport: CPU splats unavailable (%s); drawing with OpenGL", exc)
        return False
    except Exception:
        log.exception("viewport: loading the native splat library failed")
        return False
    return True


def _warm_import(name: str) -> None:
    """Import module ``name`` ahead of its first use (a background thread); a module that
    cannot be imported is left to its user to report."""
    try:
        importlib.import_module(name)
    except Exception:
        pass


def _gl_finish_function(context: QOpenGLContext | None) -> Any:
    """``glFinish`` of ``context`` (current) as a ctypes function, which releases the GIL
    while it waits; None when the context does not give its address."""
    return _gl_function(context, b"glFinish", 0)


def _gl_function(context: QOpenGLContext | None, name: bytes, nargs: int) -> Any:
    """The GL entry point ``name`` of ``context`` (current) as a ctypes function taking
    ``nargs`` C ints and returning nothing (glFinish, glDrawArrays); ctypes releases the GIL
    during the call. None when the context does not give its address."""
    import ctypes
    import sys

    if context is None:
        return None
    try:
        addr = int(context.getProcAddress(name) or 0)
    except (TypeError, ValueError):
        return None
    if not addr:
        return None
    proto = ctypes.WINFUNCTYPE if sys.platform == "win32" else ctypes.CFUNCTYPE
    return proto(None, *([ctypes.c_int] * nargs))(addr)


def _claim_viewport_key(event: QEvent) -> bool:
    """Accept a shortcut override for one of the viewport's own keys (so the key reaches the
    viewport instead of a main-window shortcut); True when it did."""
    if (
        event.type() == QEvent.Type.ShortcutOverride
        and isinstance(event, QKeyEvent)
        and _is_viewport_key(event)
    ):
        event.accept()
        return True
    return False


def _same_object(a: Any, b: Any) -> bool:
    """Whether two Qt wrappers stand for the same C++ object."""
    import shiboken6

    if a is None or b is None:
        return False
    return shiboken6.getCppPointer(a) == shiboken6.getCppPointer(b)


def _is_viewport_key(event: QKeyEvent) -> bool:
    """F/Home/K/V/1-3 without modifiers: the viewport keeps them while it has focus, even when
    the main window binds them as shortcuts (Home = "frame all" elsewhere)."""
    keys = (Qt.Key.Key_F, Qt.Key.Key_Home, Qt.Key.Key_K, Qt.Key.Key_V, Qt.Key.Key_1,
            Qt.Key.Key_2, Qt.Key.Key_3)  # fmt: skip
    return event.key() in keys and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier


def _trigger_shortcut(widget: QWidget, event: QKeyEvent) -> bool:
    """Trigger the enabled QAction or QShortcut of ``widget``'s main window bound to the key of
    ``event`` (what Qt's shortcut map does for keys typed into the widget tree). Returns
    whether one fired."""
    from PySide6.QtGui import QAction, QKeySequence, QShortcut

    key = event.key()
    if key in (Qt.Key.Key_unknown, Qt.Key.Key_Shift, Qt.Key.Key_Control, Qt.Key.Key_Alt,
               Qt.Key.Key_Meta):  # fmt: skip
        return False
    seq = QKeySequence(event.keyCombination())
    top = widget.window()
    while top.parentWidget() is not None:  # a floating dock: its main window's actions
        top = top.parentWidget().window()
    exact = QKeySequence.SequenceMatch.ExactMatch
    for act in top.findChildren(QAction):
        if (
            act.isEnabled()
            and act.shortcutContext() != Qt.ShortcutContext.WidgetShortcut
            and any(s.matches(seq) == exact for s in act.shortcuts())
        ):
            act.trigger()
            return True
    for sc in top.findChildren(QShortcut):
        if sc.isEnabled() and any(k.matches(seq) == exact for k in sc.keys()):
            sc.activated.emit()
            return True
    return False


class _MessageView(QWidget):
    """Painted instead of the GL view when OpenGL is unavailable."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.text = ""

    def paintEvent(self, event: Any) -> None:
        p = QPainter(self)
        r = self.rect()
        p.fillRect(r, QColor("#15161a"))
        p.setPen(QColor("#b0b3ba"))
        p.drawText(
            r.adjusted(16, 16, -16, -16),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            self.text or "3D viewport unavailable.",
        )
        p.end()
