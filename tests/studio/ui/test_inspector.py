"""Inspector: semantic sliders key exactly their channels at the current frame, read back the
take, and one drag is one undo step; the selected key's fields edit it."""

from __future__ import annotations

import numpy as np
import pytest

from models.motion_space import (
    BLINK,
    CHANNEL_DEFAULTS,
    CHANNEL_INDEX,
    CHANNELS,
    LIP_OPEN,
    SMILE,
    channel_name,
)
from studio.document import Interpolation, Project
from studio.ui.controller import StudioController
from studio.ui.inspector import (
    CONTROLS_BY_ID,
    PLAYING_REFRESH_MS,
    SEMANTIC_CONTROLS,
    InspectorWidget,
    control_keys,
    control_value,
)


@pytest.fixture
def inspector(qtbot):
    c = StudioController(Project.new(fps=25, duration_frames=100))
    w = InspectorWidget(c)
    qtbot.addWidget(w)
    return w


def _keyed_at(c, frame):
    return {ch for ch, cv in c.project.active_take.curves.items() if cv.index_of(frame) is not None}


def test_controls_are_built_on_the_motion_space_groups():
    smile = {int(ch.split("_")[1]) for ch in CONTROLS_BY_ID["smile"].channels}
    assert smile == set(SMILE)
    lip = {int(ch.split("_")[1]) for ch in CONTROLS_BY_ID["lip_open"].channels}
    assert lip == set(LIP_OPEN)
    blink = CONTROLS_BY_ID["blink"].channels
    assert {int(ch.split("_")[1]) for ch in blink if ch.startswith("exp_")} == set(BLINK)
    assert {"eye_open_r", "eye_open_l"} <= set(blink)
    for c in SEMANTIC_CONTROLS:
        assert c.minimum < c.maximum and all(ch in CHANNELS for ch in c.channels)


def test_projection_round_trips_through_control_keys():
    base = np.array(CHANNEL_DEFAULTS)
    for control in SEMANTIC_CONTROLS:
        new = control_keys(control, base, 0.0, 0.7)
        values = base.copy()
        for ch, v in new.items():
            values[CHANNEL_INDEX[ch]] = v
        assert control_value(control, values) == pytest.approx(0.7), control.id


def test_smile_slider_keys_the_smile_channels_at_the_current_frame(inspector):
    c = inspector.controller
    c.set_frame(12)
    assert inspector.set_control("smile", 0.5)
    assert _keyed_at(c, 12) == set(CONTROLS_BY_ID["smile"].channels)
    v = c.current_values()
    corner_y = v[CHANNEL_INDEX[channel_name(14, 1)]]
    assert corner_y == pytest.approx(0.5 * -0.014)  # mouth corner up (-y)
    assert inspector.rows["smile"].value() == pytest.approx(0.5)
    assert inspector.rows["smile"].key_state == "keyed"
    c.set_frame(40)
    assert inspector.rows["smile"].key_state == "animated"
    c.undo()
    assert _keyed_at(c, 12) == set()


def test_head_angles_key_one_channel_in_degrees(inspector):
    c = inspector.controller
    c.set_frame(3)
    inspector.set_control("yaw", -20.0)
    assert _keyed_at(c, 3) == {"yaw"}
    assert c.current_values()[CHANNEL_INDEX["yaw"]] == pytest.approx(-20.0)


def test_blink_closes_the_eyes(inspector):
    c = inspector.controller
    inspector.set_control("blink", 1.0)
    v = c.current_values()
    assert v[CHANNEL_INDEX["eye_open_r"]] == pytest.approx(0.0)
    assert v[CHANNEL_INDEX["eye_open_l"]] == pytest.approx(0.0)
    inspector.set_control("wink_l", 0.0)  # the left eye shares channels with blink
    assert c.current_values()[CHANNEL_INDEX["eye_open_l"]] > 0.4


def test_a_drag_is_one_undo_step(inspector):
    c = inspector.controller
    row = inspector.rows["brow_raise"]
    c.set_frame(8)
    row.slider.sliderPressed.emit()
    row.dragging = True
    for pos in (550, 650, 800, 900):
        row.slider.setValue(pos)
    row.slider.sliderReleased.emit()
    row.dragging = False
    assert len(c.history) == 1
    assert row.value() == pytest.approx(CONTROLS_BY_ID["brow_raise"].minimum + 2 * 0.9)
    brow = c.current_values()[CHANNEL_INDEX[channel_name(1, 1)]]
    assert brow == pytest.approx(0.8 * -0.018)
    c.undo()
    assert c.project.active_take.curves == {}


def test_readback_follows_the_frame(inspector):
    c = inspector.controller
    c.set_frame(0)
    inspector.set_control("pitch", 10.0)
    c.set_frame(20)
    inspector.set_control("pitch", -10.0)
    c.set_frame(10)  # halfway between the keys (auto-clamped bezier: symmetric)
    assert inspector.rows["pitch"].value() == pytest.approx(0.0, abs=1e-6)
    c.set_frame(20)
    assert inspector.rows["pitch"].value() == pytest.approx(-10.0)


def test_readback_is_throttled_while_playing_and_exact_when_stopped(inspector, qtbot):
    c = inspector.controller
    c.set_frame(0)
    inspector.set_control("pitch", 0.0)
    c.set_frame(50)
    inspector.set_control("pitch", 50.0)
    inspector.set_control("smile", 0.5)
    c.set_frame(0)
    row = inspector.rows["pitch"]
    edits = len(c.history)

    def shown_frame() -> int:  # the frame the inspector last read back ("FRAME 12  ·  Take")
        return int(inspector.frame_label.text().split()[1])

    def pitch() -> float:
        return float(c.current_values()[CHANNEL_INDEX["pitch"]])

    assert shown_frame() == 0 and row.value() == pytest.approx(0.0)
    c.set_playing(True)  # no playback engine here: the test moves the playhead
    for f in range(1, 11):
        c.set_frame(f)
    # Ten frames within the interval: nothing read back yet.
    assert shown_frame() == 0 and row.value() == pytest.approx(0.0)
    qtbot.waitUntil(lambda: shown_frame() == 10, timeout=5 * PLAYING_REFRESH_MS)
    assert row.value() == pytest.approx(pitch()) and row.value() > 0.0
    assert inspector.rows["smile"].key_state == "animated"
    c.set_frame(30)
    c.set_frame(50)  # a key: its state shows at the next read-back, not at once
    assert shown_frame() == 10 and inspector.rows["smile"].key_state == "animated"
    c.set_playing(False)  # stopping reads back the exact frame at once
    assert shown_frame() == 50 and row.value() == pytest.approx(50.0)
    assert inspector.rows["smile"].key_state == "keyed"
    c.set_frame(25)  # stopped: stepping and scrubbing read back at once
    assert shown_frame() == 25 and row.value() == pytest.approx(pitch())
    qtbot.wait(PLAYING_REFRESH_MS + 50)  # the read-back pending from playing was dropped
    assert shown_frame() == 25
    assert len(c.history) == edits  # read-backs never key


def test_readback_leaves_unchanged_widgets_alone(inspector):
    """An unchanged value or key state is not written again: QDoubleSpinBox.setValue repaints
    and a re-polish relays out the inspector even when nothing changed."""
    c = inspector.controller
    c.set_frame(5)
    inspector.set_control("yaw", 12.0)
    c.set_frame(15)
    inspector.set_control("yaw", -12.0)
    c.set_frame(5)
    row = inspector.rows["yaw"]
    written: list[float] = []
    row.spin.setValue = written.append  # shadows the method for the row's Python calls
    try:
        row.spin.setProperty("keyState", "sentinel")  # a re-polish would write "keyed" again
        inspector.refresh()
        assert written == [] and row.spin.property("keyState") == "sentinel"
        c.set_frame(10)  # a new value and key state are shown
        assert len(written) == 1 and row.key_state == "animated"
        assert row.spin.property("keyState") == "animated"
    finally:
        del row.spin.setValue
    assert row.value() == pytest.approx(12.0)  # the shadowed write never reached the box


def test_selected_key_fields_edit_value_frame_and_interpolation(inspector):
    c = inspector.controller
    c.set_frame(5)
    inspector.set_control("roll", 4.0)
    c.select_keys({("roll", 5)})
    f = inspector.key_fields
    assert f.channel.text() == "roll" and f.frame.value() == 5
    assert f.value.value() == pytest.approx(4.0)
    f.value.setValue(6.0)
    assert c.project.active_take.curves["roll"].values[0] == pytest.approx(6.0)
    f.frame.setValue(9)
    curve = c.project.active_take.curves["roll"]
    assert list(curve.frames) == [9] and c.selected_keys == {("roll", 9)}
    f.interp.setCurrentIndex(f.interp.findData(int(Interpolation.CONSTANT)))
    f.interp.activated.emit(f.interp.currentIndex())
    assert c.project.active_take.curves["roll"].interp[0] == Interpolation.CONSTANT
    assert len(c.history) == 4
    c.select_keys(set())
    assert not f.value.isEnabled()
