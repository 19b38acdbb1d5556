"""Timeline (dope sheet) tests: real mouse and key events at computed pixel positions."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QColor, QImage, QRegion, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from studio.document import History, Interpolation, Project, insert_keys
from studio.ui.controller import StudioController
from studio.ui.timeline import KEY_SEL, TimelineWidget, _Drag
from studio.ui.waveform import AudioPeaks

JAW = "exp_19_y"


def _project() -> Project:
    p = Project.new(fps=25, duration_frames=100)
    h = History(p)
    h.push(
        insert_keys(
            p,
            {
                JAW: ([10, 20, 30, 40], [0.0, 0.03, 0.01, 0.02]),
                "pitch": ([10, 25, 50], [0.0, 5.0, -3.0]),
            },
            interp=Interpolation.BEZIER,
        )
    )
    return p


@pytest.fixture
def timeline(qtbot):
    c = StudioController(_project())
    w = TimelineWidget(c)
    qtbot.addWidget(w)
    w.resize(900, 500)
    w.show()
    qtbot.waitExposed(w)
    w.set_group_expanded("lips", True)
    w.set_group_expanded("head pose", True)
    w.set_view(-5, 8.0)  # frame f at x = NAME_W + (f + 5) * 8
    return c, w


def _pt(w: TimelineWidget, frame: float, row: str) -> QPoint:
    r = w.row_rect(row)
    return QPoint(round(w.x_for_frame(frame)), r.center().y())


def _keys(c: StudioController, ch: str) -> list[int]:
    return c.project.active_take.curve(ch).frames.tolist()


def test_scrubbing_the_ruler_sets_the_frame(timeline):
    c, w = timeline
    y = w.RULER_H // 3
    QTest.mousePress(
        w,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        QPoint(round(w.x_for_frame(40)), y),
    )
    assert c.frame == 40
    for f in (45, 52, 61):
        QTest.mouseMove(w, QPoint(round(w.x_for_frame(f)), y))
    assert c.frame == 61
    QTest.mouseRelease(
        w,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        QPoint(round(w.x_for_frame(61)), y),
    )
    assert c.frame == 61
    assert c.history.index == 0  # scrubbing is not an edit


def test_box_select_then_x_deletes_and_undo_restores(timeline):
    c, w = timeline
    before = _keys(c, JAW)
    a = _pt(w, 15, JAW) - QPoint(0, 6)
    b = _pt(w, 35, JAW) + QPoint(0, 6)
    QTest.mousePress(w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(w, (a + b) / 2)
    QTest.mouseMove(w, b)
    QTest.mouseRelease(w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert c.selected_keys == {(JAW, 20), (JAW, 30)}
    QTest.keyClick(w, Qt.Key.Key_X)
    assert _keys(c, JAW) == [10, 40]
    assert _keys(c, "pitch") == [10, 25, 50]  # other rows untouched
    assert c.selected_keys == set()
    assert c.history.index == 1  # one delete
    c.undo()
    assert _keys(c, JAW) == before


def test_dragging_a_key_moves_it_by_whole_frames_in_one_undo_step(timeline):
    c, w = timeline
    start = _pt(w, 20, JAW)
    QTest.mousePress(w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    assert c.selected_keys == {(JAW, 20)}
    # 3.4 frames to the right in several steps: previews only, the document does not change.
    for dx in (5, 12, 20, 27):
        QTest.mouseMove(w, start + QPoint(dx, 1))
        assert _keys(c, JAW) == [10, 20, 30, 40]
    QTest.mouseRelease(
        w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(27, 1)
    )
    assert _keys(c, JAW) == [10, 23, 30, 40]
    assert c.project.active_take.curve(JAW).values[1] == pytest.approx(0.03)
    assert c.selected_keys == {(JAW, 23)}
    assert c.history.index == 1
    c.undo()
    assert _keys(c, JAW) == [10, 20, 30, 40]


def test_dragging_a_group_summary_key_moves_every_channel(timeline):
    c, w = timeline
    start = _pt(w, 10, "summary")
    QTest.mousePress(w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    assert c.selected_keys == {(JAW, 10), ("pitch", 10)}
    QTest.mouseMove(w, start - QPoint(10, 0))
    QTest.mouseMove(w, start - QPoint(16, 0))
    QTest.mouseRelease(
        w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start - QPoint(16, 0)
    )
    assert _keys(c, JAW)[0] == 8 and _keys(c, "pitch")[0] == 8
    assert c.history.index == 1
    c.undo()
    assert _keys(c, JAW)[0] == 10 and _keys(c, "pitch")[0] == 10


def test_shift_click_extends_and_click_on_empty_clears(timeline):
    c, w = timeline
    QTest.mouseClick(w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _pt(w, 30, JAW))
    QTest.mouseClick(
        w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, _pt(w, 25, "pitch")
    )
    assert c.selected_keys == {(JAW, 30), ("pitch", 25)}
    QTest.mouseClick(
        w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, _pt(w, 30, JAW)
    )
    assert c.selected_keys == {("pitch", 25)}
    QTest.mouseClick(w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _pt(w, 70, JAW))
    assert c.selected_keys == set()


def test_copy_paste_at_the_playhead(timeline):
    c, w = timeline
    c.select_keys({(JAW, 20), (JAW, 30)})
    QTest.keyClick(w, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    c.set_frame(60)
    QTest.keyClick(w, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert _keys(c, JAW) == [10, 20, 30, 40, 60, 70]
    curve = c.project.active_take.curve(JAW)
    assert curve.values[4] == pytest.approx(0.03) and curve.values[5] == pytest.approx(0.01)
    assert c.selected_keys == {(JAW, 60), (JAW, 70)}
    c.undo()
    assert _keys(c, JAW) == [10, 20, 30, 40]


def test_dragging_the_work_range_end_is_one_settings_edit(timeline):
    c, w = timeline
    y = w.RULER_H - 3
    start = QPoint(round(w.x_for_frame(99)) - 3, y)
    QTest.mousePress(w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(w, QPoint(round(w.x_for_frame(90)), y))
    QTest.mouseMove(w, QPoint(round(w.x_for_frame(79)), y))
    assert c.project.work_range == (0, 100)  # preview only
    QTest.mouseRelease(
        w,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        QPoint(round(w.x_for_frame(79)), y),
    )
    assert c.project.work_range == (0, 80)
    assert c.history.index == 1
    assert c.frame == 0  # the range drag did not scrub


def test_channel_names_select_channels_and_groups_collapse(timeline):
    c, w = timeline
    r = w.row_rect(JAW)
    QTest.mouseClick(
        w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(60, r.center().y())
    )
    assert c.selected_channels == [JAW]
    r = w.row_rect("pitch")
    QTest.mouseClick(
        w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, QPoint(60, r.center().y())
    )
    assert c.selected_channels == [JAW, "pitch"]
    g = w.row_rect("lips")
    QTest.mouseClick(
        w, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(8, g.center().y())
    )
    assert not w.is_group_expanded("lips")
    with pytest.raises(KeyError):
        w.row_rect(JAW)


def test_ctrl_wheel_zooms_about_the_cursor_and_home_frames_all(timeline):
    _, w = timeline
    x = round(w.x_for_frame(30))
    f_before = w.frame_at(x)
    ppf = w.view()[1]
    pos = QPointF(x, w.row_rect(JAW).center().y())
    wheel = QWheelEvent(
        pos,
        QPointF(w.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(w, wheel)
    assert w.view()[1] == pytest.approx(ppf * 1.0015**240)  # two notches in
    assert w.frame_at(x) == pytest.approx(f_before)  # about the cursor
    # A plain horizontal wheel pans time without zooming.
    ppf = w.view()[1]
    x0 = w.view()[0]
    pan = QWheelEvent(
        pos,
        QPointF(w.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(120, 0),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(w, pan)
    assert w.view()[1] == ppf and w.view()[0] < x0
    QTest.keyClick(w, Qt.Key.Key_Home)
    # Frames 0..99 (the duration) all lie inside the time area.
    assert w.NAME_W < w.x_for_frame(0) < w.x_for_frame(99) < w.width() - 4
    assert w.x_for_frame(99) - w.x_for_frame(0) > 0.9 * (w.width() - w.NAME_W - 30)


def test_document_events_refresh_rows_without_edits(timeline):
    c, w = timeline
    c.push(insert_keys(c.project, {"exp_6_y": ([5], [0.01])}))
    assert w.row_rect("exp_6_y").height() == w.ROW_H  # a newly keyed channel gets a row
    n = c.history.index
    c.undo()
    c.redo()
    assert c.history.index == n  # the widget never pushes in response to events


def test_renders_the_demo_project(qtbot, tmp_path):
    from studio.demo import build_demo_project

    c = StudioController(build_demo_project())
    w = TimelineWidget(c)
    qtbot.addWidget(w)
    w.resize(1000, 400)
    w.show()
    qtbot.waitExposed(w)
    img = w.grab().toImage()
    assert not img.isNull()
    # The audio lane shows the speech: its middle row of pixels is not all background.
    y = w.RULER_H + w.MARKER_H + w.AUDIO_H // 2 - 6
    colours = {img.pixel(x, y) for x in range(w.NAME_W + 20, 900, 3)}
    assert len(colours) > 1


def test_audio_peaks_match_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50_000).astype(np.float32)
    peaks = AudioPeaks(x[:, None], 16_000)
    for spp in (0.5, 3.0, 64.0, 5000.0):
        n = peaks.num_columns(spp)
        mins, maxs = peaks.columns(-2, n + 4, spp)
        assert np.isnan(mins[:2]).all() and np.isnan(maxs[-2:]).all()
        for col in (0, 1, n // 2, n - 2):
            a = int(col * spp)
            b = max(int((col + 1) * spp), a + 1)
            if spp < 4 * AudioPeaks.BLOCK:
                assert mins[col + 2] == x[a:b].min() and maxs[col + 2] == x[a:b].max()
            else:  # block-snapped edges: the true extremes of the column are contained
                assert mins[col + 2] <= x[a:b].min() + 1e-6
                assert maxs[col + 2] >= x[a:b].max() - 1e-6
    # Cached: asking again returns the same values without recomputing.
    again = peaks.columns(0, 10, 64.0)
    assert np.array_equal(again[0], peaks.columns(0, 10, 64.0)[0])
    with pytest.raises(ValueError):
        AudioPeaks(np.zeros(0, np.float32), 16_000)


class _PaintRecorder(QObject):
    """Records the regions of the paint events a widget gets."""

    def __init__(self, widget) -> None:
        super().__init__(widget)
        self.regions: list[QRegion] = []
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.regions.append(QRegion(event.region()))
        return False


def _same_image(a: QImage, b: QImage) -> bool:
    fmt = QImage.Format.Format_RGB32
    return a.convertToFormat(fmt) == b.convertToFormat(fmt)


def test_a_frame_change_repaints_two_strips_from_the_background(timeline, qtbot):
    """While playing or scrubbing, a new frame repaints the strips the playhead leaves and
    enters (and the frame readout), copied from the background pixmap: no row, key or waveform
    is painted again, and what the screen shows equals a full repaint."""
    c, w = timeline
    qtbot.waitUntil(lambda: w._bg_key is not None)  # the first full paint
    recorder = _PaintRecorder(w)
    painted: list[QRect] = []
    original = w._paint_clip

    def counting(p, clip, overlays=True):
        painted.append(clip)
        original(p, clip, overlays)

    w._paint_clip = counting
    try:
        for f in (31, 32, 33, 60):
            strips = QRegion(QRect(0, 0, w.NAME_W, w.RULER_H))  # the frame readout
            for x in (w.x_for_frame(c.frame), w.x_for_frame(f)):  # the playhead's label: 64 px
                strips += QRegion(QRect(int(x) - 32, 0, 64, w.height()))
            c.set_frame(f)
            qtbot.waitUntil(lambda: bool(recorder.regions))
            region = recorder.regions.pop()
            assert region.subtracted(strips).isEmpty(), list(region)
            assert sum(r.width() * r.height() for r in region) <= 0.2 * w.width() * w.height()
        assert painted == []  # all from the background pixmap
    finally:
        del w._paint_clip
    screen = w.screen().grabWindow(w.winId()).toImage()
    w._bg_key = None
    assert _same_image(screen, w.grab().toImage())


def test_background_pixmap_paints_like_a_direct_paint(timeline):
    """The background pixmap plus the playhead and the readout look exactly like painting
    everything directly (what a drag preview does), and follow selection and edits."""
    c, w = timeline
    c.set_frame(27)
    c.select_keys({(JAW, 20)})
    cached = w.grab().toImage()
    w._drag = _Drag("box", QPointF(0, 0), Qt.KeyboardModifier.NoModifier)  # no box drawn
    try:
        direct = w.grab().toImage()
    finally:
        w._drag = None
    assert _same_image(cached, direct)
    # The background follows the document and the selection.
    p = _pt(w, 20, JAW)
    assert QColor(cached.pixel(p)) == KEY_SEL
    c.select_keys(set())
    assert QColor(w.grab().toImage().pixel(p)) != KEY_SEL
    c.push(insert_keys(c.project, {JAW: ([35], [0.05])}))
    c.select_keys({(JAW, 35)})
    assert QColor(w.grab().toImage().pixel(_pt(w, 35, JAW))) == KEY_SEL
