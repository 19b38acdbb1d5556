"""Graph editor tests: pyqtgraph mouse gestures sent as real Qt events at computed positions."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from models.motion_space import EMOTIONS
from studio.document import HandleMode, History, Interpolation, Project, insert_keys
from studio.ui.controller import StudioController
from studio.ui.curve_items import sample_frames, stack_weights
from studio.ui.graph_editor import DEFAULT_CHANNELS, GraphEditorWidget

JAW = "exp_19_y"
L = Qt.MouseButton.LeftButton
NOMOD = Qt.KeyboardModifier.NoModifier


def _project() -> Project:
    p = Project.new(fps=25, duration_frames=100)
    h = History(p)
    h.push(insert_keys(p, {JAW: ([10, 30, 50], [0.0, 0.04, 0.01])}, interp=Interpolation.BEZIER))
    return p


def _shown_editor(qtbot) -> tuple[StudioController, GraphEditorWidget]:
    """The graph editor on the jaw channel of the test project, shown at a fixed view."""
    c = StudioController(_project())
    c.select_channels([JAW])
    w = GraphEditorWidget(c)
    qtbot.addWidget(w)
    w.resize(900, 500)
    w.show()
    qtbot.waitExposed(w)
    w._vb.setRange(xRange=(0, 60), yRange=(-0.02, 0.06), padding=0)
    return c, w


@pytest.fixture
def editor(qtbot):
    c, w = _shown_editor(qtbot)
    qtbot.wait(10)
    return c, w


def _pos(w: GraphEditorWidget, frame: float, value: float) -> QPoint:
    return w.view_to_widget(frame, value).toPoint()


def _drag(w: GraphEditorWidget, a: QPoint, b: QPoint, mods=NOMOD, steps: int = 6) -> None:
    vp = w.plot.viewport()
    QTest.mousePress(vp, L, mods, a)
    for i in range(1, steps + 1):
        QTest.mouseMove(vp, a + (b - a) * (i / steps))
    QTest.mouseRelease(vp, L, mods, b)


def _curve(c: StudioController, ch: str = JAW):
    return c.project.active_take.curve(ch)


def test_shows_the_selection_or_the_default_channels(editor):
    c, w = editor
    assert w.channels == (JAW,)
    c.select_channels([])
    assert w.channels == DEFAULT_CHANNELS and DEFAULT_CHANNELS[0] == JAW


def test_dragging_a_key_changes_value_and_snapped_frame_in_one_undo_step(editor):
    c, w = editor
    a = _pos(w, 30, 0.04)
    target = w.view_to_widget(33.3, 0.02)
    vp = w.plot.viewport()
    QTest.mousePress(vp, L, NOMOD, a)
    for i in range(1, 7):
        QTest.mouseMove(vp, (QPointF(a) + (target - QPointF(a)) * (i / 6)).toPoint())
        assert _curve(c).frames.tolist() == [10, 30, 50]  # preview only
    QTest.mouseRelease(vp, L, NOMOD, target.toPoint())
    curve = _curve(c)
    assert curve.frames.tolist() == [10, 33, 50]  # frame snapped to a whole frame
    assert curve.values[1] == pytest.approx(0.02, abs=0.0015)  # value free (pixel accuracy)
    assert c.history.index == 1
    assert c.selected_keys == {(JAW, 33)}
    c.undo()
    assert _curve(c).frames.tolist() == [10, 30, 50]
    assert _curve(c).values[1] == pytest.approx(0.04)


def test_ctrl_click_inserts_a_key_on_the_curve(editor):
    c, w = editor
    before = _curve(c)
    v = float(before.evaluate([20])[0])
    QTest.mouseClick(w.plot.viewport(), L, Qt.KeyboardModifier.ControlModifier, _pos(w, 20.3, v))
    after = _curve(c)
    assert after.frames.tolist() == [10, 20, 30, 50]
    assert after.values[1] == pytest.approx(v, abs=1e-12)  # on the curve: the shape is kept
    assert c.selected_keys == {(JAW, 20)}
    assert c.history.index == 1


def test_click_selects_and_x_deletes(editor):
    c, w = editor
    vp = w.plot.viewport()
    QTest.mouseClick(vp, L, NOMOD, _pos(w, 50, 0.01))
    assert c.selected_keys == {(JAW, 50)}
    QTest.mouseClick(vp, L, Qt.KeyboardModifier.ShiftModifier, _pos(w, 10, 0.0))
    assert c.selected_keys == {(JAW, 50), (JAW, 10)}
    QTest.keyClick(w.plot, Qt.Key.Key_X)
    assert _curve(c).frames.tolist() == [30]
    c.undo()
    assert _curve(c).frames.tolist() == [10, 30, 50]


def test_box_select(editor):
    c, w = editor
    _drag(w, _pos(w, 5, 0.05), _pos(w, 35, -0.01))
    assert c.selected_keys == {(JAW, 10), (JAW, 30)}
    assert c.history.index == 0


def test_interpolation_menu_sets_the_key_interpolation(editor):
    c, w = editor
    QTest.mouseClick(w.plot.viewport(), Qt.MouseButton.RightButton, NOMOD, _pos(w, 10, 0.0))
    assert c.selected_keys == {(JAW, 10)}
    menu = w.context_menu()
    assert menu is not None
    sub = next(a.menu() for a in menu.actions() if a.text() == "Interpolation")
    next(a for a in sub.actions() if a.text() == "Constant").trigger()
    menu.close()
    curve = _curve(c)
    assert curve.interp.tolist() == [
        Interpolation.CONSTANT,
        Interpolation.BEZIER,
        Interpolation.BEZIER,
    ]
    assert curve.evaluate([29.5])[0] == 0.0  # held until the next key
    # The toolbar does the same for the selection.
    c.select_keys({(JAW, 30)})
    w.set_interpolation(Interpolation.LINEAR)
    assert _curve(c).interp[1] == Interpolation.LINEAR
    assert c.history.index == 2


def test_dragging_a_tangent_handle_makes_it_free_in_one_undo_step(editor):
    c, w = editor
    c.select_keys({(JAW, 30)})
    before = _curve(c)
    assert before.handle_mode[1] == HandleMode.AUTO_CLAMPED
    hx, hy = 30 + before.right[1, 0], 0.04 + before.right[1, 1]
    _drag(w, _pos(w, hx, hy), _pos(w, hx + 2, hy + 0.01))
    after = _curve(c)
    assert after.handle_mode[1] == HandleMode.FREE
    assert after.right[1, 0] == pytest.approx(before.right[1, 0] + 2, abs=0.2)
    assert after.right[1, 1] == pytest.approx(0.01, abs=0.0015)
    assert after.frames.tolist() == [10, 30, 50] and after.values[1] == 0.04
    assert c.history.index == 1
    c.undo()
    assert _curve(c) == before


def test_handle_mode_menu(editor):
    c, w = editor
    c.select_keys({(JAW, 30)})
    assert w.set_handle_mode(HandleMode.VECTOR)
    curve = _curve(c)
    assert curve.handle_mode[1] == HandleMode.VECTOR
    # Vector handles point a third of the way to the neighbours.
    assert curve.right[1, 0] == pytest.approx(20 / 3)
    assert curve.right[1, 1] == pytest.approx((0.01 - 0.04) / 3)


def test_playhead_follows_the_controller_and_scrubs(editor):
    c, w = editor
    c.set_frame(42)
    assert w._playhead.value() == 42
    # Left-drag along the frame axis scrubs.
    scene_y = w._vb.sceneBoundingRect().bottom() + 8  # on the tick labels below the view
    vp = w.plot.viewport()
    a = w.plot.mapFromScene(QPointF(w._vb.mapViewToScene(QPointF(20, 0)).x(), scene_y))
    b = w.plot.mapFromScene(QPointF(w._vb.mapViewToScene(QPointF(27, 0)).x(), scene_y))
    QTest.mousePress(vp, L, NOMOD, a)
    for i in range(1, 5):
        QTest.mouseMove(vp, a + (b - a) * (i / 4))
    QTest.mouseRelease(vp, L, NOMOD, b)
    assert c.frame == 27
    assert w._playhead.value() == 27
    assert c.history.index == 0


def test_curves_are_sampled_exactly_at_keys_and_steps():
    keys = np.array([10, 20])
    xs = sample_frames(0, 30, 31, keys)
    assert 10.0 in xs and 20.0 in xs
    assert np.all(np.diff(xs) > 0)
    assert ((xs > 19.999) & (xs < 20)).any()  # the instant before a key: vertical steps


def test_emotion_stacked_area_renders(qtbot):
    c = StudioController(Project.new(duration_frames=120))
    c.push(
        insert_keys(
            c.project,
            {
                "emotion_happy": ([0, 60, 110], [0.0, 0.9, 0.3]),
                "emotion_sad": ([20, 90], [0.0, 0.6]),
                "emotion_neutral": ([0, 100], [1.0, 0.0]),
            },
        )
    )
    c.select_channels([f"emotion_{e}" for e in EMOTIONS] + ["intensity"])
    w = GraphEditorWidget(c)
    qtbot.addWidget(w)
    w.resize(800, 400)
    w.show()
    qtbot.waitExposed(w)
    img = w.grab().toImage()
    assert not img.isNull()
    area = w.emotion_area
    assert area.isVisible() and area.num_bands == 8
    bands = area._bands
    assert bands.shape[0] == 9
    np.testing.assert_allclose(bands[-1], 1.0)  # normalised per frame
    assert np.all(np.diff(bands, axis=0) >= -1e-12)
    # Keys on each weight are editable like any curve: all 8 weights plus intensity are shown.
    assert len(w.channels) == 9
    # Turning the mix off hides the area.
    w._stack_action.setChecked(False)
    assert not w.emotion_area.isVisible()


def test_stack_weights_normalises_and_handles_all_zero_frames():
    w = np.zeros((8, 3))
    w[3, 0], w[5, 0] = 1.0, 3.0
    w[0, 2] = -1.0  # negative weights count as 0
    bands = stack_weights(w)
    np.testing.assert_allclose(bands[:, 0], [0, 0, 0, 0, 0.25, 0.25, 1, 1, 1])
    np.testing.assert_allclose(bands[:, 1], [0, 0, 0, 0, 0, 1, 1, 1, 1])  # all 0: neutral


def test_document_changes_refresh_without_feedback(editor):
    c, w = editor
    c.push(insert_keys(c.project, {JAW: ([40], [0.05])}))
    xs, _ = w._shown[JAW].keys.getData()
    assert 40.0 in xs.tolist()
    c.undo()
    xs, _ = w._shown[JAW].keys.getData()
    assert 40.0 not in xs.tolist()
    assert c.history.index == 0


def test_moving_the_playhead_does_not_redraw_the_curves(qtbot, monkeypatch):
    """The playhead moves every frame while playing: the curves, keys and axes are drawn from
    their item caches, and drawn again when the data or the view changes."""
    import pyqtgraph as pg

    painted: list[str] = []
    original = pg.PlotCurveItem.paint

    def counting(self, p, *args):
        painted.append("curve")
        return original(self, p, *args)

    monkeypatch.setattr(pg.PlotCurveItem, "paint", counting)  # before the items exist
    c, w = _shown_editor(qtbot)
    qtbot.waitUntil(lambda: bool(painted))
    qtbot.wait(50)
    painted.clear()
    for f in (20, 21, 22, 40):
        c.set_frame(f)
        qtbot.wait(20)
        assert w._playhead.value() == f
    assert painted == []
    c.push(insert_keys(c.project, {JAW: ([20], [0.05])}))  # new data: drawn again
    qtbot.waitUntil(lambda: bool(painted))
    painted.clear()
    w._vb.setRange(xRange=(0, 30), padding=0)  # a zoom too
    qtbot.waitUntil(lambda: bool(painted))
