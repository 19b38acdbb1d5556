"""The GL viewport under an X display (the suite runs under xvfb-run).

The GL window needs a real platform (not "offscreen"), and Qt's GLX context cannot be made in a
process that already made an EGL context (renderer tests do): so these tests run in a fresh
child pytest process on this file, and each test here reports its twin's outcome from the
child's JUnit XML. Without DISPLAY they skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from gl_child import child_outcome, run_child

pytestmark = pytest.mark.gl

CHILD = os.environ.get("THS_VIEWPORT_GL_CHILD") == "1"


@pytest.fixture(scope="module")
def child_outcomes(tmp_path_factory):
    """{test name: (outcome, message)} from one child run of this module (parent only)."""
    if CHILD:
        return None
    return run_child(
        [str(Path(__file__))],
        "THS_VIEWPORT_GL_CHILD",
        tmp_path_factory.mktemp("viewport_gl"),
        "viewport",
    )


def _in_child(request, child_outcomes) -> bool:
    """True in the child (run the test body); in the parent, report the child's outcome."""
    return child_outcome(request, CHILD, child_outcomes)


@pytest.fixture
def viewport(qtbot):
    if not CHILD:
        return None  # the parent only reports the child's outcome
    from studio.demo import build_demo_project
    from studio.ui.controller import StudioController
    from studio.viewport.widget import ViewportWidget

    ctrl = StudioController(build_demo_project())
    vp = ViewportWidget(ctrl)
    qtbot.addWidget(vp)
    vp.resize(240, 180)
    vp.show()
    qtbot.waitExposed(vp)
    if not vp.gl_available:
        pytest.skip(f"no OpenGL in this display: {vp.gl_error}")
    qtbot.waitUntil(lambda: vp.head_ready, timeout=30_000)
    return vp


def _settled(qtbot, vp) -> np.ndarray:
    """The full-quality image [H, W, 3] uint8 after interaction settled."""
    qtbot.wait(250)
    # On a loaded machine the full-quality redraw can come well after SETTLE_MS: wait for it
    # (no settle pending, the last frame drawn at full quality, no repaint queued) instead of
    # grabbing whatever interactive frame is on screen.
    qtbot.waitUntil(
        lambda: not vp._settle.isActive() and not vp.stats["degraded"] and not vp._gl.scene_dirty,
        timeout=20000,
    )
    img = vp.grab_frame().convertToFormat(vp.grab_frame().Format.Format_RGB888)
    assert not img.isNull()
    ptr = img.constBits()
    a = np.frombuffer(ptr, np.uint8, count=img.sizeInBytes()).reshape(img.height(), -1)
    return a[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def test_head_is_drawn_and_changes_with_the_frame(request, child_outcomes, qtbot, viewport):
    if not _in_child(request, child_outcomes):
        return
    vp = viewport
    ctrl = vp.controller
    a = _settled(qtbot, vp)
    h, w, _ = a.shape
    corner = a[2:10, 2:10].reshape(-1, 3).mean(0)
    center = a[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].reshape(-1, 3).astype(float)
    assert np.abs(center - corner).sum(1).mean() > 40  # a head in front of the background
    assert corner.max() < 90  # the dark gradient
    assert not vp.stats["degraded"] and vp.stats["splats"] == len(vp.head)
    ctrl.set_frame(45)  # the demo's motion moves head and mouth
    b = _settled(qtbot, vp)
    assert np.abs(a.astype(int) - b).mean() > 0.5
    assert vp.stats["splats"] == len(vp.head)  # back at full quality after settling


def test_orbit_drag_changes_the_view(request, child_outcomes, qtbot, viewport):
    if not _in_child(request, child_outcomes):
        return
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    vp = viewport
    before = _settled(qtbot, vp)
    yaw0 = vp.view_state.yaw
    gl = vp._gl
    QTest.mousePress(gl, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.AltModifier, QPoint(20, 90))
    QTest.mouseMove(gl, QPoint(80, 90))
    QTest.mouseRelease(gl, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.AltModifier,
                       QPoint(80, 90))  # fmt: skip
    assert vp.view_state.yaw < yaw0 - 10
    after = _settled(qtbot, vp)
    assert np.abs(before.astype(int) - after).mean() > 2
    QTest.keyClick(gl, Qt.Key.Key_F)  # frame the head again: same angles, re-aimed
    assert vp.view_state.yaw < yaw0 - 10


def test_keypoint_drag_keys_exp_in_one_undo_step(request, child_outcomes, qtbot, viewport):
    if not _in_child(request, child_outcomes):
        return
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from models.motion_space import CHANNEL_INDEX

    vp = viewport
    ctrl = vp.controller
    ctrl.set_frame(20)
    vp.set_keypoints_visible(True)
    _settled(qtbot, vp)
    _, xy, vis = vp.keypoint_positions()[0]
    assert vis[1]
    start = QPoint(round(xy[1, 0]), round(xy[1, 1]))  # brow_r
    index_before = ctrl.history.index
    before = ctrl.current_values().copy()
    gl = vp._gl
    QTest.mousePress(gl, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for dy in range(1, 7):
        QTest.mouseMove(gl, start + QPoint(0, -dy))
    assert ctrl.current_values()[CHANNEL_INDEX["exp_1_y"]] == before[CHANNEL_INDEX["exp_1_y"]]
    QTest.mouseRelease(gl, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       start + QPoint(0, -6))  # fmt: skip
    after = ctrl.current_values()
    assert after[CHANNEL_INDEX["exp_1_y"]] < before[CHANNEL_INDEX["exp_1_y"]] - 1e-3  # brow up
    assert after[CHANNEL_INDEX["exp_1_z"]] == before[CHANNEL_INDEX["exp_1_z"]]
    take = ctrl.project.active_take
    assert take.curves["exp_1_y"].index_of(20) is not None
    assert "exp_1_z" not in take.curves or take.curves["exp_1_z"].index_of(20) is None
    assert vp.view_state.yaw == pytest.approx(0.0)  # the drag did not orbit
    assert "keypoint" in ctrl.history.undo_label
    assert ctrl.history.index == index_before + 1
    ctrl.undo()  # one step restores everything
    np.testing.assert_array_equal(ctrl.current_values(), before)


def test_stereo_modes_render(request, child_outcomes, qtbot, viewport):
    if not _in_child(request, child_outcomes):
        return
    vp = viewport
    mono = _settled(qtbot, vp).astype(int)
    vp.set_view_mode("sbs")
    sbs = _settled(qtbot, vp).astype(int)
    w = sbs.shape[1]
    left, right = sbs[:, : w // 2], sbs[:, w - w // 2 :]
    assert left.std() > 20 and right.std() > 20  # a head in each half
    assert 0 < np.abs(left - right).mean() < 25  # two eyes: similar, not identical
    vp.set_view_mode("anaglyph")
    ana = _settled(qtbot, vp).astype(int)
    # Half-colour anaglyph: red is the left eye's luminance, green and blue are the right eye's.
    # So red follows the (mono) luminance rather than the mono red, while green and blue stay
    # close to mono's (the eyes are a few pixels apart); and it is not the mono image.
    lum = mono[..., :3] @ np.array([0.299, 0.587, 0.114])
    head = np.abs(mono - mono[0, 0]).sum(axis=2) > 30  # pixels that show the head
    assert head.sum() > 500
    assert np.abs(ana[..., 0] - lum)[head].mean() < np.abs(ana[..., 0] - mono[..., 0])[head].mean()
    assert np.abs(ana[..., 1:] - mono[..., 1:])[head].mean() < 20
    assert np.abs(ana - mono)[head].mean() > 2
    assert vp.stats["renders"] >= 3


def test_mpi_head(request, child_outcomes, qtbot, viewport, tmp_path):
    if not _in_child(request, child_outcomes):
        return
    from renderers import MPI, Camera
    from renderers.formats.mpi_folder import write_mpi_folder
    from studio.document import HeadRef, SetHead

    cam = Camera.orbit((0, 0, 0), 0.6, width=64, height=64)
    rgba = np.zeros((4, 64, 64, 4), np.float32)
    rgba[:, 16:48, 16:48] = (0.9, 0.6, 0.4, 0.6)
    write_mpi_folder(tmp_path / "mpi", MPI(rgba, np.linspace(0.5, 0.7, 4), cam))
    vp = viewport
    vp.controller.push(SetHead(HeadRef(str(tmp_path / "mpi"), "mpi")))
    qtbot.waitUntil(lambda: vp.head_ready and vp.representation == "mpi", timeout=10_000)
    img = _settled(qtbot, vp).astype(int)
    h, w, _ = img.shape
    assert img[h // 2, w // 2, 0] > img[2, 2, 0] + 60  # the orange planes over the background


def test_rigged_mpi_head_follows_the_motion(request, child_outcomes, qtbot, viewport, tmp_path):
    """A head file of the MPI kind is drawn as an MPI deformed by the current frame's motion."""
    if not _in_child(request, child_outcomes):
        return
    from models.heads import load_builtin_head, save_head
    from studio.document import HeadRef, SetHead
    from studio.head_import import bake_mpi_head

    path = tmp_path / "baked.thead"
    save_head(bake_mpi_head(load_builtin_head("default"), width=96, height=96, num_planes=8), path)
    vp = viewport
    vp.controller.push(SetHead(HeadRef(str(path))))
    qtbot.waitUntil(lambda: vp.head_ready and vp.representation == "mpi", timeout=20_000)
    assert vp.head_error is None and vp.head is None
    vp.frame_head()
    rest = _settled(qtbot, vp).astype(int)
    assert np.abs(rest - rest[2, 2]).sum(axis=2).mean() > 10  # the face over the background
    vp.controller.set_frame(45)  # the demo's motion turns the head and moves the mouth
    moved = _settled(qtbot, vp).astype(int)
    assert np.abs(moved - rest).mean() > 0.5


def test_live_frames_stay_interactive_and_use_prepared_deforms(
    request, child_outcomes, qtbot, viewport
):
    """Live values: every frame on the interactive path (LOD + reduced resolution on a software
    GL), no full-quality redraw between live frames, and a head deformed off the GUI thread
    (prepare_live) is drawn as is."""
    if not _in_child(request, child_outcomes):
        return
    import threading

    from models.motion_space import CHANNEL_DEFAULTS
    from models.motion_space import CHANNEL_INDEX as CI

    vp = viewport
    if not vp._gl.software:
        vp.set_lod_budget(vp.lod_budget, force=True)
    v = CHANNEL_DEFAULTS.copy()
    assert vp.prepare_live(v) is None  # no live frame drawn yet: nothing to prepare with
    v[CI["yaw"]] = 10.0
    before = vp.stats["renders"]
    vp.set_live_values(v)
    # (degraded alone may be the stand-in drawn before a full frame is refined)
    qtbot.waitUntil(lambda: vp.stats["degraded"] and vp.stats["renders"] > before, timeout=5000)
    renders = vp.stats["renders"]
    for i in range(6):
        v = v.copy()
        v[CI["exp_19_y"]] = 0.02 * i
        box: list = []
        t = threading.Thread(target=lambda v=v, box=box: box.append(vp.prepare_live(v)))
        t.start()
        t.join()
        assert box[0] is not None and box[0].head is not vp.head  # the LOD head
        vp.set_live_values(v, box[0])
        qtbot.wait(30)
    qtbot.wait(400)  # longer than SETTLE_MS: still no full-quality frame while live
    assert vp.stats["degraded"] and vp.stats["renders"] > renders
    assert vp.stats["splats"] < len(vp.head)
    assert vp.stats.get("live_prepared", 0) >= 1
    vp.set_live_values(None)
    qtbot.waitUntil(lambda: not vp.stats["degraded"], timeout=5000)  # full quality again
    assert vp.stats["splats"] == len(vp.head)


def test_live_poses_are_drawn_at_once_and_presented_once(request, child_outcomes, qtbot, viewport):
    """A live pose is drawn at the event loop's next turn (not after QWindow's update throttle)
    and presented once (no second present from the throttle's timer); streaming frames wait
    for the GL through a glFinish that releases the GIL."""
    if not _in_child(request, child_outcomes):
        return
    import ctypes

    from models.motion_space import CHANNEL_DEFAULTS
    from models.motion_space import CHANNEL_INDEX as CI

    vp = viewport
    if not vp._gl.software:
        vp.set_lod_budget(vp.lod_budget, force=True)
    presented: list[int] = []
    vp.framePresented.connect(lambda: presented.append(vp.stats["renders"]))
    v = CHANNEL_DEFAULTS.copy()
    vp.set_live_values(v)
    qtbot.waitUntil(lambda: vp.stats["degraded"], timeout=5000)
    qtbot.wait(100)
    renders, n0 = vp.stats["renders"], len(presented)
    for i in range(1, 6):
        v = v.copy()
        v[CI["yaw"]] = 2.0 * i
        vp.set_live_values(v)
        qtbot.waitUntil(lambda r=renders + i: vp.stats["renders"] >= r, timeout=5000)
        qtbot.wait(30)  # Qt's 5 ms update timer would have fired by now
    assert vp.stats["renders"] == renders + 5
    assert presented[n0:] == list(range(renders + 1, renders + 6))  # each pose once
    if vp.splat_backend == "gl":  # (CPU splats queue nothing for the GL to finish)
        assert isinstance(vp._gl._gl_finish, ctypes._CFuncPtr)
    vp.set_live_values(None)


def test_playback_frames_and_repaints_are_drawn_at_once_and_presented_once(
    request, child_outcomes, qtbot, viewport
):
    """Every repaint the viewport asks for (a playback frame, an overlay change) is drawn at
    the event loop's next turn and presented once; an overlay change re-presents the cached
    scene without rendering the head again."""
    if not _in_child(request, child_outcomes):
        return
    vp = viewport
    ctrl = vp.controller
    if not vp._gl.software:
        vp.set_lod_budget(vp.lod_budget, force=True)
    presented: list[int] = []
    vp.framePresented.connect(lambda: presented.append(vp.stats["renders"]))
    _settled(qtbot, vp)
    ctrl.set_playing(True)  # playback frames: the playback quality path (no engine: no ticks)
    try:
        renders, n0 = vp.stats["renders"], len(presented)
        for i in range(1, 5):
            ctrl.set_frame(ctrl.frame + 1)
            qtbot.waitUntil(lambda r=renders + i: vp.stats["renders"] >= r, timeout=5000)
            qtbot.wait(30)  # Qt's 5 ms update timer would have fired by now
        assert vp.stats["renders"] == renders + 4
        assert presented[n0:] == list(range(renders + 1, renders + 5))  # each frame once
        assert vp.stats["degraded"]
    finally:
        ctrl.set_playing(False)
    _settled(qtbot, vp)
    renders, n0 = vp.stats["renders"], len(presented)
    vp.set_keypoints_visible(True)  # an overlay change: the cached scene, presented again
    qtbot.waitUntil(lambda: len(presented) > n0, timeout=5000)
    qtbot.wait(30)
    assert presented[n0:] == [renders] and vp.stats["renders"] == renders
    vp.set_keypoints_visible(False)


def test_the_window_shows_the_presented_scene(request, child_outcomes, qtbot, viewport):
    """What reaches the screen (the scene copied or magnified into the window's framebuffer,
    then the overlay) is what grab_frame() renders offscreen, settled and while playing."""
    if not _in_child(request, child_outcomes):
        return
    vp = viewport
    gl = vp._gl

    def on_screen() -> np.ndarray:
        qtbot.waitUntil(lambda: not gl._paint_posted, timeout=5000)  # the last paint is done
        qtbot.wait(50)
        origin = gl.mapToGlobal(gl.position() * 0)
        img = gl.screen().grabWindow(0, origin.x(), origin.y(), gl.width(), gl.height())
        return _image_array(img.toImage())

    for mode, size in (("mono", (240, 180)), ("anaglyph", (240, 180)), ("mono", (300, 200))):
        vp.set_view_mode(mode)
        vp.resize(*size)  # the last one: larger than the scene presented before
        grabbed = _settled(qtbot, vp)
        shown = on_screen()
        assert shown.shape == grabbed.shape
        top = 40  # below the readout (its fps can differ between the two paints)
        assert np.abs(shown[top:].astype(int) - grabbed[top:]).mean() < 1.0, mode
    vp.set_view_mode("mono")
    vp.controller.set_playing(True)
    try:  # a reduced-resolution frame, magnified into the window
        vp._adaptive["playback"] = (0.5, 1)
        vp.controller.set_frame(vp.controller.frame + 1)
        qtbot.waitUntil(lambda: vp.stats["degraded"] and not gl.scene_dirty, timeout=5000)
        shown = on_screen()
        assert vp.stats["scale"] < 1.0 or not gl.software
        grabbed = _image_array(gl.grab_frame())  # the same cached scene, composed offscreen
        assert np.abs(shown[40:].astype(int) - grabbed[40:]).mean() < 1.0
    finally:
        vp.controller.set_playing(False)


def _grab_rgb(vp) -> np.ndarray:
    img = vp.grab_frame().convertToFormat(vp.grab_frame().Format.Format_RGB888)
    a = np.frombuffer(img.constBits(), np.uint8, count=img.sizeInBytes()).reshape(img.height(), -1)
    return a[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def test_live_splats_drawn_without_the_gil_match_moderngl(request, child_outcomes, qtbot, viewport):
    """Live frames draw their splats through a ctypes glDrawArrays (the GIL released while a
    software GL sets up the triangles): the same image as moderngl's draw, and the GUI thread
    lets other Python threads run meanwhile. The window's own event handling (update requests,
    the viewport's keys) is an event filter, so Qt's C++ paint and swap run without the GIL."""
    if not _in_child(request, child_outcomes):
        return
    import ctypes

    from models.motion_space import CHANNEL_DEFAULTS
    from models.motion_space import CHANNEL_INDEX as CI

    vp = viewport
    vp.set_splat_backend("gl")  # the GL path's draw (CPU splats have no GL draw to make)
    if not vp._gl.software:
        vp.set_lod_budget(vp.lod_budget, force=True)
    assert "event" not in type(vp._gl).__dict__  # no Python override holding the GIL
    v = CHANNEL_DEFAULTS.copy()
    v[CI["yaw"]] = 12.0
    v[CI["exp_19_y"]] = 0.03
    images = {}
    for nogil in (True, False, True):
        vp._gl.nogil_draws = nogil
        vp.set_live_values(v.copy())
        qtbot.waitUntil(lambda: vp.stats["degraded"] and not vp._gl.scene_dirty, timeout=5000)
        vp._adaptive["live"] = (0.5, 1)  # the same resolution and LOD for every grab
        vp._gl.scene_dirty = True  # grab a fresh render of the same pose with this path
        images.setdefault(nogil, []).append(_grab_rgb(vp))
    assert isinstance(vp._gl._gl_draw_arrays, ctypes._CFuncPtr)
    # Below the corner readout (its frame time and fps differ from grab to grab).
    a, b = images[True][-1][40:].astype(int), images[False][0][40:].astype(int)
    assert a.std() > 5  # a head, not an empty frame
    assert np.abs(images[True][0][40:].astype(int) - a).max() <= 1  # comparable grabs
    assert np.abs(a - b).max() <= 1
    vp.set_live_values(None)


@pytest.fixture
def studio_window(qtbot, tmp_path):
    """The studio main window on the demo project, shown and active (child only)."""
    if not CHILD:
        return None
    from studio.demo import build_demo_project
    from studio.document.recovery import RecoveryManager
    from studio.ui import dialogs
    from studio.ui.controller import StudioController
    from studio.ui.main_window import MainWindow
    from studio.ui.playback import AudioOutput
    from studio.viewport.widget import ViewportWidget

    class SilentAudio(AudioOutput):
        @staticmethod
        def probe(device=None):
            return "no audio output device found"

    w = MainWindow(
        StudioController(build_demo_project()),
        settings=dialogs.open_settings(tmp_path / "settings.ini"),
        recovery=RecoveryManager(tmp_path / "recovery"),
        audio=SilentAudio(),
    )
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    vp = w.panels["viewport"]
    assert isinstance(vp, ViewportWidget)
    if not vp.gl_available:
        pytest.skip(f"no OpenGL in this display: {vp.gl_error}")
    qtbot.waitUntil(lambda: vp.head_ready, timeout=30_000)
    return w


def _image_array(img) -> np.ndarray:
    img = img.convertToFormat(img.Format.Format_RGB888)
    a = np.frombuffer(img.constBits(), np.uint8, count=img.sizeInBytes()).reshape(img.height(), -1)
    return a[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def test_main_window_shortcuts_work_with_the_viewport_focused(
    request, child_outcomes, qtbot, studio_window
):
    """A click into the GL window focuses the viewport widget (not the native GL window), so
    the main window's shortcuts (Space, I, Ctrl+Z) fire while the viewport keeps its own keys
    (F, K, V); keys that reach the GL window itself still do both."""
    if not _in_child(request, child_outcomes):
        return
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    w = studio_window
    vp = w.panels["viewport"]
    ctrl = vp.controller
    QTest.mouseClick(vp._gl, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(5, 5))  # fmt: skip
    qtbot.waitUntil(lambda: QApplication.focusWidget() is vp, timeout=5000)
    assert not vp._container.hasFocus()

    QTest.keyClick(vp, Qt.Key.Key_Space)  # Play / Pause
    assert ctrl.playing
    QTest.keyClick(vp, Qt.Key.Key_Space)
    assert not ctrl.playing
    ctrl.set_frame(7)
    index = ctrl.history.index
    QTest.keyClick(vp, Qt.Key.Key_I)  # Insert Key
    assert ctrl.history.index == index + 1
    QTest.keyClick(vp, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # Undo
    assert ctrl.history.index == index
    QTest.keyClick(vp, Qt.Key.Key_K)  # the viewport's own key
    assert vp.keypoints_visible
    QTest.keyClick(vp, Qt.Key.Key_V)
    assert vp.view_mode == "sbs"
    QTest.keyClick(vp, Qt.Key.Key_1)
    assert vp.view_mode == "mono"

    # Keys typed into the GL window (should a window system focus it): same behaviour.
    QTest.keyClick(vp._gl, Qt.Key.Key_K)
    assert not vp.keypoints_visible
    QTest.keyClick(vp._gl, Qt.Key.Key_Space)
    assert ctrl.playing
    QTest.keyClick(vp._gl, Qt.Key.Key_Space)
    assert not ctrl.playing


def test_window_screenshot_docking_and_resize(request, child_outcomes, qtbot, studio_window):
    """QWidget.grab() of the main window (the studio's --screenshot) shows the head; the
    viewport keeps drawing after its dock floats, docks again and resizes."""
    if not _in_child(request, child_outcomes):
        return
    from PySide6.QtCore import QPoint

    w = studio_window
    vp = w.panels["viewport"]
    frame = _settled(qtbot, vp)
    shot = _image_array(w.grab().toImage())
    dpr = vp.devicePixelRatioF()
    top_left = vp.mapTo(w, QPoint(0, 0))
    x, y = round(top_left.x() * dpr), round(top_left.y() * dpr)
    fh, fw, _ = frame.shape
    region = shot[y : y + fh, x : x + fw].astype(int)
    assert region.shape == frame.shape
    assert np.abs(region - frame).mean() < 3  # the head, not a hole
    assert region.std() > 20

    dock = w.docks["viewport"]
    dock.setFloating(True)
    dock.resize(420, 300)
    qtbot.waitExposed(dock)
    qtbot.wait(100)
    floating = _settled(qtbot, vp)
    assert floating.shape[1] == round(vp.width() * dpr)
    assert floating.std() > 20 and vp.stats["splats"] == len(vp.head)
    renders = vp.stats["renders"]
    dock.setFloating(False)
    qtbot.wait(100)
    docked = _settled(qtbot, vp)
    assert docked.std() > 20 and vp.stats["renders"] > renders
    assert vp.gl_available


def _scene_layers(vp, n: int) -> list[np.ndarray]:
    """The cached scene layers (what the window presents) as [H, W, 3] uint8, no overlay."""
    gl = vp._gl
    w, h = vp._device_size()
    gl.makeCurrent()
    try:
        raw = [gl.compositor.read_scene(i) for i in range(n)]
    finally:
        gl.doneCurrent()
    return [np.frombuffer(r, np.uint8).reshape(h, w, 4)[..., :3].copy() for r in raw]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def _refined_frame(qtbot, vp, mode: str, frame: int) -> dict:
    """Show ``frame`` in view ``mode``, wait for its full-quality refinement and check it is a
    settled full frame of the whole head; returns the viewport's stats."""
    vp.set_view_mode(mode)
    refines = vp.stats.get("refines", 0)
    vp.controller.set_frame(frame)
    qtbot.waitUntil(lambda r=refines: vp.stats.get("refines", 0) > r, timeout=30_000)
    assert vp._refine is None and not vp._gl.scene_dirty
    s = vp.stats
    assert not s["degraded"] and s["scale"] == 1.0 and s["splats"] == len(vp.head)
    return s


def test_full_quality_frames_are_refined_progressively(request, child_outcomes, qtbot, viewport):
    if not _in_child(request, child_outcomes):
        return
    vp = viewport
    vp.set_splat_backend("gl")  # the GL path's progressive refinement
    vp.resize(320, 240)
    vp.refine_min_ms = 0.0  # refine every full-quality frame (this small one is fast anyway)
    vp.refine_step_ms = 2.0  # in many small steps
    _settled(qtbot, vp)
    for mode, layers, frame in (("mono", 1, 30), ("sbs", 1, 31), ("anaglyph", 2, 32)):
        s = _refined_frame(qtbot, vp, mode, frame)
        assert s["refine_steps"] >= 6  # deform, upload, one projection per view, batches
        assert sum(n for _ms, n in s["refine_log"]) >= len(vp.head) // 4  # culled ones drawn
        refined = _scene_layers(vp, layers)
        # The same state drawn directly (the path without refinement) matches it.
        vp.refine_min_ms = None
        vp._gl.scene_dirty = True
        assert not vp.grab_frame().isNull()
        direct = _scene_layers(vp, layers)
        vp.refine_min_ms = 0.0
        for a, b in zip(refined, direct, strict=True):
            assert a.std() > 5  # not blank
            assert _psnr(a, b) > 40.0


def test_interaction_cancels_refinement(request, child_outcomes, qtbot, viewport):
    if not _in_child(request, child_outcomes):
        return
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    vp = viewport
    vp.set_splat_backend("gl")  # the GL path's progressive refinement
    vp.refine_min_ms = 0.0
    vp.refine_step_ms = 1.0
    _settled(qtbot, vp)
    refines = vp.stats.get("refines", 0)
    cancelled = vp.stats.get("refine_cancelled", 0)
    vp.controller.set_frame(12)
    qtbot.waitUntil(lambda: vp._refine is not None and vp._refine.steps >= 4, timeout=30_000)
    assert vp.stats["degraded"]  # the window still shows the interactive frame
    pos = QPointF(100, 80)
    wheel = QWheelEvent(pos, pos, QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)  # fmt: skip
    QApplication.sendEvent(vp._gl, wheel)
    assert vp._refine is None
    assert vp.stats["refine_cancelled"] == cancelled + 1
    assert vp.stats.get("refines", 0) == refines  # the cancelled job was never presented
    # After settling again a new refinement reaches full quality.
    qtbot.waitUntil(lambda: vp.stats.get("refines", 0) > refines, timeout=30_000)
    assert not vp.stats["degraded"] and vp.stats["splats"] == len(vp.head)


def test_direct_full_frames_when_they_are_fast(request, child_outcomes, qtbot, viewport):
    if not _in_child(request, child_outcomes):
        return
    vp = viewport
    vp.refine_min_ms = 1e9  # every measured full frame counts as fast
    _settled(qtbot, vp)  # the first (unmeasured) one may be refined on a software GL
    refines = vp.stats.get("refines", 0)
    vp.controller.set_frame(40)
    _settled(qtbot, vp)
    assert vp.stats.get("refines", 0) == refines and vp.stats["splats"] == len(vp.head)


def test_a_failing_refinement_falls_back_to_a_direct_frame(
    request, child_outcomes, qtbot, viewport, monkeypatch
):
    if not _in_child(request, child_outcomes):
        return
    vp = viewport
    vp.set_splat_backend("gl")  # the GL path's progressive refinement
    vp.refine_min_ms = 0.0
    _settled(qtbot, vp)

    def broken(gl, job):
        raise RuntimeError("simulated GL failure")

    monkeypatch.setattr(vp, "_refine_work", broken)
    vp.controller.set_frame(25)
    b = _settled(qtbot, vp)
    assert vp._refine is None and vp.gl_available
    assert vp.stats["splats"] == len(vp.head) and b.std() > 5


def _cpu_viewport(vp):
    """Switch ``vp`` to CPU splats, or skip where the native rasteriser is unavailable."""
    vp.set_splat_backend("cpu")
    if vp.splat_backend != "cpu":
        pytest.skip("CPU splats need a software GL and the native library")
    return vp


def test_cpu_splats_match_the_gl_image(request, child_outcomes, qtbot, viewport):
    """On a software GL the head is rendered by the CPU rasteriser and composed on the CPU:
    the same picture as the GL path in every view mode (not flipped, no premultiplied-alpha
    halo, the same background), settled and at a reduced resolution."""
    if not _in_child(request, child_outcomes):
        return
    vp = _cpu_viewport(viewport)
    for mode in ("mono", "sbs", "anaglyph"):
        vp.set_view_mode(mode)
        images = {}
        for backend in ("cpu", "gl", "cpu"):
            vp.set_splat_backend(backend)
            images[backend] = _settled(qtbot, vp)[40:].astype(int)  # below the readout
            assert vp.splat_backend == backend and vp.stats["splats"] == len(vp.head)
        assert _psnr(images["cpu"], images["gl"]) > 38.0, mode
        assert images["cpu"].std() > 5
    vp.set_view_mode("mono")
    assert vp._gl.compositor.cpu_scene


def test_cpu_full_frames_are_rendered_on_a_worker(request, child_outcomes, qtbot, viewport):
    """With CPU splats a slow full-quality frame is rendered in one go on the refiner's thread
    (one step in the GUI thread: the upload) and matches the frame drawn directly."""
    if not _in_child(request, child_outcomes):
        return
    vp = _cpu_viewport(viewport)
    vp.refine_min_ms = 0.0  # refine every full-quality frame
    _settled(qtbot, vp)
    for mode, frame in (("mono", 30), ("sbs", 31), ("anaglyph", 32)):
        s = _refined_frame(qtbot, vp, mode, frame)
        assert s["refine_steps"] == 1
        refined = _scene_layers(vp, 1)[0]
        vp.refine_min_ms = None
        vp._gl.scene_dirty = True
        assert not vp.grab_frame().isNull()
        direct = _scene_layers(vp, 1)[0]
        vp.refine_min_ms = 0.0
        assert refined.std() > 5
        assert _psnr(refined, direct) > 50.0, mode


def test_interaction_cancels_cpu_refinement(request, child_outcomes, qtbot, viewport, monkeypatch):
    """A frame the refiner's thread is still rendering is dropped when the view changes, and
    a failing one falls back to a frame drawn directly."""
    if not _in_child(request, child_outcomes):
        return
    import threading

    from studio.viewport import gl_scene

    vp = _cpu_viewport(viewport)
    vp.refine_min_ms = 0.0
    _settled(qtbot, vp)
    gate = threading.Event()
    mode = {"fail": False}
    compose = gl_scene.compose_cpu

    def gated(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            gate.wait(10)
            if mode["fail"]:
                raise RuntimeError("simulated failure")
        return compose(*args, **kwargs)

    monkeypatch.setattr(gl_scene, "compose_cpu", gated)
    refines = vp.stats.get("refines", 0)
    cancelled = vp.stats.get("refine_cancelled", 0)
    vp.controller.set_frame(12)
    qtbot.waitUntil(lambda: vp._refine is not None, timeout=10_000)
    job = vp._refine
    vp.controller.set_frame(13)  # a new scene while the worker renders
    assert vp._refine is not job and job.cancelled
    assert vp.stats["refine_cancelled"] == cancelled + 1
    gate.set()
    qtbot.waitUntil(lambda: vp.stats.get("refines", 0) > refines, timeout=30_000)
    assert not vp.stats["degraded"] and vp.stats["splats"] == len(vp.head)
    assert vp.stats.get("refines", 0) == refines + 1  # only the new frame's was shown
    gate.clear()
    mode["fail"] = True
    vp.controller.set_frame(25)
    qtbot.waitUntil(lambda: vp._refine is not None, timeout=10_000)
    gate.set()
    b = _settled(qtbot, vp)
    assert vp._refine is None and vp.gl_available
    assert vp.stats["splats"] == len(vp.head) and b.std() > 5
