"""The inspector: semantic sliders that key the current frame, and the selected key's fields.

A semantic control (smile, blink, gaze...) is a direction in the motion space, built on the
keypoint groups of models.motion_space: ``values = base + s * direction``. The slider shows the
current frame's projection onto that direction, so it reads back whatever the take holds
(generated, recorded or keyed); moving it keys exactly the direction's channels at the current
frame. One drag is one undo step (merged edits), as in orange-canvas.

While the project plays, the inspector reads back at most every ``PLAYING_REFRESH_MS`` (and at
once, exactly, when playback stops): refreshing sixteen sliders and spin boxes on every frame
cost a quarter of a 25 fps frame budget on a 2-core machine, for numbers nobody reads at that
speed. Stopped, scrubbing or stepping, it always shows the exact current frame.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QScrollArea,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from models.motion_space import (
    BLINK,
    BROWS,
    CHANNEL_DEFAULTS,
    CHANNEL_INDEX,
    EYEBALL,
    LIP_OPEN,
    LIPS,
    SMILE,
    channel_name,
)
from studio.document import DocumentError, HandleMode, Interpolation, move_keys, set_interpolation
from studio.document import set_handle_mode as set_handle_mode_edit
from studio.ui.controller import StudioController
from studio.ui.style import COLORS, icon

__all__ = [
    "PLAYING_REFRESH_MS",
    "SEMANTIC_CONTROLS",
    "ControlRow",
    "InspectorWidget",
    "SemanticControl",
    "control_keys",
    "control_value",
]


@dataclass(frozen=True)
class SemanticControl:
    """A slider over a direction in the motion space.

    ``direction``: channel -> change per slider unit. ``minimum``/``maximum``: slider range in
    slider units (degrees for the head angles). Raises ValueError for unknown channels or an
    all-zero direction.
    """

    id: str
    label: str
    group: str
    direction: Mapping[str, float]
    minimum: float = 0.0
    maximum: float = 1.0
    tip: str = ""
    decimals: int = 2
    _vec: np.ndarray = field(init=False, repr=False, compare=False)  # [C]

    def __post_init__(self) -> None:
        unknown = [ch for ch in self.direction if ch not in CHANNEL_INDEX]
        if unknown:
            raise ValueError(f"control {self.id}: unknown channels {unknown}")
        vec = np.zeros(len(CHANNEL_DEFAULTS))
        for ch, d in self.direction.items():
            vec[CHANNEL_INDEX[ch]] = d
        if not np.any(vec):
            raise ValueError(f"control {self.id}: the direction is zero")
        object.__setattr__(self, "_vec", vec)

    @property
    def channels(self) -> list[str]:
        return list(self.direction)

    @property
    def vector(self) -> np.ndarray:
        """The direction as a ``[C]`` vector over CHANNELS (read-only use)."""
        return self._vec


def control_value(control: SemanticControl, values: np.ndarray) -> float:
    """The slider value that ``values [C]`` (one frame of all channels) shows: the
    least-squares projection of ``values - CHANNEL_DEFAULTS`` onto the direction."""
    d = control.vector
    return float(np.dot(np.asarray(values) - CHANNEL_DEFAULTS, d) / np.dot(d, d))


def control_keys(
    control: SemanticControl, base: np.ndarray, s_from: float, s_to: float
) -> dict[str, float]:
    """Channel values after moving ``control`` from ``s_from`` to ``s_to`` starting at
    ``base [C]``: ``{channel: base + (s_to - s_from) * direction}`` for its channels."""
    delta = float(s_to) - float(s_from)
    return {ch: float(base[CHANNEL_INDEX[ch]] + delta * d) for ch, d in control.direction.items()}


def _kp(vectors: Mapping[int, tuple[float, float, float]], group: tuple[int, ...] | None = None,
        **extra: float) -> dict[str, float]:  # fmt: skip
    """Direction from per-keypoint (dx, dy, dz) deltas (+ extra named channels). ``group``, when
    given, must cover the keypoints used: the controls are built on the motion-space groups."""
    if group is not None:
        assert set(vectors) <= set(group), (sorted(vectors), group)
    out: dict[str, float] = {}
    for k, vec in vectors.items():
        for axis, v in enumerate(vec):
            if v:
                out[channel_name(k, axis)] = v
    out.update(extra)
    return out


# Magnitudes follow models.procedural (jaw 0.055, lips ~0.01, lids 0.03) so a slider at 1 is a
# full, natural expression on our heads. Keypoint space: +x image right, +y down, +z away from
# the camera; the subject's right (keypoints 11, 13, 14, 3) sits at -x.
# fmt: off
SEMANTIC_CONTROLS: tuple[SemanticControl, ...] = (
    SemanticControl("smile", "Smile", "Mouth", _kp({
        20: (0.010, -0.014, 0), 14: (-0.010, -0.014, 0), 17: (0, 0.002, 0),
        13: (0, -0.004, 0), 16: (0, -0.004, 0), 3: (0, -0.006, 0), 7: (0, -0.006, 0)}, SMILE),
        -1.0, 1.0, "Mouth corners up and out, cheeks up, a slight squint (negative: frown)"),
    SemanticControl("grin", "Grin", "Mouth", _kp({
        # Corners and upper lip only: the jaw belongs to "Lip open", so a talking mouth does
        # not read back as a grin.
        20: (0.014, -0.008, 0), 14: (-0.014, -0.008, 0), 6: (0, -0.008, 0)}, LIPS),
        0.0, 1.0, "A wide smile showing the upper teeth"),
    SemanticControl("lip_open", "Lip open", "Mouth", _kp({
        # 1.0 is a wide-open mouth (~18 degrees of jaw on the default head); speech peaks near
        # 0.5.
        19: (0, 0.2, 0), 17: (0, 0.07, 0)}, LIP_OPEN),
        0.0, 1.0, "Open the jaw and the lips (the 'jaw open' direction)"),
    SemanticControl("pout", "Pout", "Mouth", _kp({
        6: (0, 0.002, -0.012), 12: (0, 0, -0.006), 17: (0, -0.002, -0.012),
        14: (0.008, 0, -0.004), 20: (-0.008, 0, -0.004)}, LIPS),
        0.0, 1.0, "Lips pushed forward, corners in"),
    SemanticControl("brow_raise", "Brow raise", "Brows", _kp({
        1: (0, -0.018, 0), 2: (0, -0.018, 0)}, BROWS),
        -1.0, 1.0, "Raise both brows (negative: lower them)"),
    SemanticControl("blink", "Blink", "Eyes", _kp({
        11: (0, 0.03, 0), 15: (0, 0.03, 0), 13: (0, -0.006, 0), 16: (0, -0.006, 0)}, BLINK,
        eye_open_r=-1.0, eye_open_l=-1.0),
        0.0, 1.0, "Close both eyes (0 open, 1 closed)"),
    SemanticControl("wink_l", "Wink L", "Eyes", _kp({
        15: (0, 0.03, 0), 16: (0, -0.006, 0), 7: (0, -0.004, 0)}, (*BLINK, 7),
        eye_open_l=-1.0),
        0.0, 1.0, "Close the subject's left eye, left cheek up"),
    SemanticControl("wink_r", "Wink R", "Eyes", _kp({
        11: (0, 0.03, 0), 13: (0, -0.006, 0), 3: (0, -0.004, 0)}, (*BLINK, 3),
        eye_open_r=-1.0),
        0.0, 1.0, "Close the subject's right eye, right cheek up"),
    SemanticControl("gaze_h", "Gaze H", "Eyes", _kp({
        11: (0.004, 0, 0), 15: (0.004, 0, 0)}, EYEBALL, eye_ball_0=0.25, eye_ball_3=0.25),
        -1.0, 1.0, "Look to the image right (+) or left (-)"),
    SemanticControl("gaze_v", "Gaze V", "Eyes", _kp({
        11: (0, -0.003, 0), 15: (0, -0.003, 0)}, EYEBALL, eye_ball_1=-0.2, eye_ball_4=-0.2),
        -1.0, 1.0, "Look up (+) or down (-)"),
    SemanticControl("pitch", "Pitch", "Head", {"pitch": 1.0}, -40.0, 40.0,
                    "Nod: head pitch in degrees", 1),
    SemanticControl("yaw", "Yaw", "Head", {"yaw": 1.0}, -60.0, 60.0,
                    "Turn: head yaw in degrees", 1),
    SemanticControl("roll", "Roll", "Head", {"roll": 1.0}, -40.0, 40.0,
                    "Tilt: head roll in degrees", 1),
    SemanticControl("tx", "Move X", "Head", {"tx": 1.0}, -0.3, 0.3,
                    "Head translation to the image right (keypoint units)", 3),
    SemanticControl("ty", "Move Y", "Head", {"ty": 1.0}, -0.3, 0.3,
                    "Head translation downwards (keypoint units)", 3),
    SemanticControl("tz", "Move Z", "Head", {"tz": 1.0}, -0.3, 0.3,
                    "Head translation away from the camera (LivePortrait keeps it 0)", 3),
)
# fmt: on
CONTROLS_BY_ID = {c.id: c for c in SEMANTIC_CONTROLS}

_STEPS = 1000  # slider resolution over [minimum, maximum]
# While playing, the inspector reads back at most this often (5 Hz): see the module docstring.
PLAYING_REFRESH_MS = 200
_drag_ids = itertools.count(1)


class _Slider(QSlider):
    """A slider that ignores the wheel unless focused, so scrolling the inspector never
    changes (and keys) a value by accident."""

    def wheelEvent(self, event) -> None:
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class ControlRow(QWidget):
    """One semantic control: label, slider, value field and a key button whose diamond says
    whether its channels are keyed on this frame (yellow), animated (green) or not (grey).

    ``valueEdited(float, bool)``: the user moved it (value, whether a drag is in progress).
    """

    valueEdited = Signal(float, bool)
    keyRequested = Signal()
    dragStarted = Signal()
    dragFinished = Signal()

    def __init__(self, control: SemanticControl, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.control = control
        self.dragging = False
        self._updating = False
        self.key_state = ""  # set_key_state("none") below styles the row
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        self.label = QLabel(control.label)
        self.label.setMinimumWidth(64)
        self.label.setToolTip(control.tip)
        self.slider = _Slider(Qt.Orientation.Horizontal)
        self.slider.setObjectName(f"slider_{control.id}")
        self.slider.setRange(0, _STEPS)
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.slider.setToolTip(control.tip)
        self.spin = QDoubleSpinBox()
        self.spin.setObjectName(f"spin_{control.id}")
        self.spin.setDecimals(control.decimals + 1 if control.decimals < 3 else 3)
        # Typing may go past the slider range (a cartoonish smile), within reason.
        span = control.maximum - control.minimum
        self.spin.setRange(control.minimum - span, control.maximum + span)
        self.spin.setSingleStep(span / 50)
        self.spin.setKeyboardTracking(False)
        self.spin.setFixedWidth(76)
        # No step buttons: the slider is beside it. (NoButtons under a style sheet leaves the
        # text 1 px wide, a Qt quirk; the theme gives "compact" spin boxes 0-width buttons.)
        self.spin.setProperty("compact", True)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.key_button = QToolButton()
        self.key_button.setObjectName(f"key_{control.id}")
        self.key_button.setAutoRaise(True)
        self.key_button.setToolTip(f"Key {control.label.lower()} at the current frame")
        self.key_button.clicked.connect(self.keyRequested)
        grid.addWidget(self.label, 0, 0)
        grid.addWidget(self.slider, 0, 1)
        grid.addWidget(self.spin, 0, 2)
        grid.addWidget(self.key_button, 0, 3)
        grid.setColumnStretch(1, 1)
        self.slider.sliderPressed.connect(self._on_pressed)
        self.slider.sliderReleased.connect(self._on_released)
        self.slider.valueChanged.connect(self._on_slider)
        self.spin.valueChanged.connect(self._on_spin)
        self.set_key_state("none")

    # slider position <-> control value
    def _to_pos(self, value: float) -> int:
        c = self.control
        t = (value - c.minimum) / (c.maximum - c.minimum)
        return round(min(max(t, 0.0), 1.0) * _STEPS)

    def _to_value(self, pos: int) -> float:
        c = self.control
        return c.minimum + (c.maximum - c.minimum) * pos / _STEPS

    def value(self) -> float:
        return float(self.spin.value())

    def show_value(self, value: float) -> None:
        """Display ``value`` without emitting valueEdited (readback). Ignored while dragging."""
        if self.dragging or not math.isfinite(value):
            return
        # An unchanged value must not touch the widgets: QDoubleSpinBox.setValue resets its
        # text and repaints even when the value is the same.
        pos = self._to_pos(value)
        if self.spin.value() == round(value, self.spin.decimals()) and self.slider.value() == pos:
            return
        self._updating = True
        try:
            with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
                self.slider.setValue(pos)
                self.spin.setValue(value)
        finally:
            self._updating = False

    def set_key_state(self, state: str) -> None:
        """ "keyed" (on this frame), "animated" (elsewhere) or "none"."""
        if state == self.key_state:
            return  # re-polishing an unchanged spin box costs a relayout and a repaint
        self.key_state = state
        color = {"keyed": COLORS["keyed"], "animated": COLORS["animated"]}.get(state, "#5d6068")
        self.key_button.setIcon(icon("key", color))
        self.spin.setProperty("keyState", state)
        self.spin.style().unpolish(self.spin)
        self.spin.style().polish(self.spin)

    def _on_pressed(self) -> None:
        self.dragging = True
        self.dragStarted.emit()

    def _on_released(self) -> None:
        self.dragging = False
        self.dragFinished.emit()

    def _on_slider(self, pos: int) -> None:
        if self._updating:
            return
        value = self._to_value(pos)
        with QSignalBlocker(self.spin):
            self.spin.setValue(value)
        self.valueEdited.emit(value, self.dragging)

    def _on_spin(self, value: float) -> None:
        if self._updating:
            return
        with QSignalBlocker(self.slider):
            self.slider.setValue(self._to_pos(value))
        self.valueEdited.emit(float(value), False)


class KeyFields(QWidget):
    """Numeric fields of the selected key(s): channel, frame, value, interpolation, handles.

    With several keys selected, frame and value edits move all of them by the same amount
    and interpolation/handles apply to all; the fields show the first selected key.
    """

    def __init__(self, controller: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.channel = QLabel("–")
        self.frame = QSpinBox()
        self.frame.setObjectName("key_frame")
        self.frame.setRange(-1_000_000, 1_000_000)
        self.frame.setKeyboardTracking(False)
        self.value = QDoubleSpinBox()
        self.value.setObjectName("key_value")
        self.value.setDecimals(4)
        self.value.setRange(-1e6, 1e6)
        self.value.setSingleStep(0.001)
        self.value.setKeyboardTracking(False)
        self.interp = QComboBox()
        self.interp.setObjectName("key_interp")
        for it in Interpolation:
            self.interp.addItem(it.name.capitalize(), int(it))
        self.handles = QComboBox()
        self.handles.setObjectName("key_handles")
        for hm in HandleMode:
            self.handles.addItem(hm.name.replace("_", " ").capitalize(), int(hm))
        form.addRow(self.summary)
        form.addRow("Channel", self.channel)
        form.addRow("Frame", self.frame)
        form.addRow("Value", self.value)
        form.addRow("Interpolation", self.interp)
        form.addRow("Handles", self.handles)
        self.frame.valueChanged.connect(self._on_frame)
        self.value.valueChanged.connect(self._on_value)
        self.interp.activated.connect(self._on_interp)
        self.handles.activated.connect(self._on_handles)
        self._shown: tuple[str, int] | None = None
        self.refresh()

    def _sorted(self) -> list[tuple[str, int]]:
        return sorted(self.controller.selected_keys, key=lambda k: (CHANNEL_INDEX[k[0]], k[1]))

    def refresh(self) -> None:
        keys = self._sorted()
        take = self.controller.project.active_take
        first = keys[0] if keys else None
        curve = take.curves.get(first[0]) if first else None
        i = curve.index_of(first[1]) if curve is not None and first is not None else None
        enabled = i is not None
        for w in (self.frame, self.value, self.interp, self.handles):
            w.setEnabled(enabled)
        widgets = (self.frame, self.value, self.interp, self.handles)
        blockers = [QSignalBlocker(w) for w in widgets]
        try:
            if not enabled:
                self._shown = None
                self.summary.setText(
                    "No key selected. Select keys in the timeline or graph editor."
                )
                self.channel.setText("–")
                return
            assert curve is not None and first is not None and i is not None
            self._shown = first
            n = len(keys)
            self.summary.setText(
                "1 key selected" if n == 1 else f"{n} keys selected: edits apply to all"
            )
            self.channel.setText(first[0])
            self.frame.setValue(int(curve.frames[i]))
            self.value.setValue(float(curve.values[i]))
            self.interp.setCurrentIndex(self.interp.findData(int(curve.interp[i])))
            self.handles.setCurrentIndex(self.handles.findData(int(curve.handle_mode[i])))
        finally:
            del blockers

    def _by_channel(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for ch, f in self.controller.selected_keys:
            out.setdefault(ch, []).append(int(f))
        return out

    def _on_frame(self, frame: int) -> None:
        if self._shown is None:
            return
        delta = int(frame) - self._shown[1]
        if delta == 0:
            return
        c = self.controller
        try:
            edit = move_keys(c.project, self._by_channel(), delta, label="Move keys")
        except DocumentError as exc:
            c.notify(f"Move keys: {exc}", "error")
            self.refresh()
            return
        moved = {(ch, f + delta) for ch, f in c.selected_keys}
        if c.push(edit):
            c.select_keys(moved)
        self.refresh()

    def _on_value(self, value: float) -> None:
        if self._shown is None:
            return
        curve = self.controller.project.active_take.curves.get(self._shown[0])
        i = curve.index_of(self._shown[1]) if curve is not None else None
        if curve is None or i is None:
            return
        delta = float(value) - float(curve.values[i])
        if delta == 0:
            return
        c = self.controller
        try:
            edit = move_keys(c.project, self._by_channel(), 0, delta, label="Change key value")
        except DocumentError as exc:
            c.notify(f"Change key value: {exc}", "error")
            self.refresh()
            return
        c.push(edit)

    def _on_interp(self, index: int) -> None:
        c = self.controller
        if not c.selected_keys:
            return
        interp = Interpolation(self.interp.itemData(index))
        try:
            edit = set_interpolation(
                c.project, self._by_channel(), interp, label=f"Interpolation: {interp.name.lower()}"
            )
        except DocumentError as exc:
            c.notify(f"Set interpolation: {exc}", "error")
            return
        c.push(edit)

    def _on_handles(self, index: int) -> None:
        c = self.controller
        if not c.selected_keys:
            return
        mode = HandleMode(self.handles.itemData(index))
        try:
            edit = set_handle_mode_edit(
                c.project, self._by_channel(), mode, label=f"Handles: {mode.name.lower()}"
            )
        except DocumentError as exc:
            c.notify(f"Set handles: {exc}", "error")
            return
        c.push(edit)


class InspectorWidget(QWidget):
    """Semantic sliders grouped by region (mouth, brows, eyes, head) and the selected key.

    Reads the active take at the current frame; edits go through ``controller.key_values``
    (one undo step per drag or per typed value).
    """

    def __init__(self, controller: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.rows: dict[str, ControlRow] = {}
        self._drag: dict[str, tuple[np.ndarray, float, int]] = {}  # id -> (base, s0, drag id)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        col = QVBoxLayout(body)
        col.setContentsMargins(8, 4, 8, 8)
        col.setSpacing(3)
        self.frame_label = QLabel()
        self.frame_label.setObjectName("sectionTitle")
        col.addWidget(self.frame_label)
        group = None
        for control in SEMANTIC_CONTROLS:
            if control.group != group:
                group = control.group
                title = QLabel(group.upper())
                title.setObjectName("sectionTitle")
                col.addWidget(title)
            row = ControlRow(control)
            row.valueEdited.connect(lambda v, drag, c=control: self._edited(c, v, drag))
            row.dragStarted.connect(lambda c=control: self._begin_drag(c))
            row.dragFinished.connect(lambda c=control: self._end_drag(c))
            row.keyRequested.connect(lambda c=control: self._key_control(c))
            self.rows[control.id] = row
            col.addWidget(row)
        title = QLabel("SELECTED KEY")
        title.setObjectName("sectionTitle")
        col.addWidget(title)
        self.key_fields = KeyFields(controller)
        col.addWidget(self.key_fields)
        col.addStretch(1)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        # While playing, one read-back per PLAYING_REFRESH_MS (a single-shot timer: the first
        # frame change starts it, the read-back shows the frame current when it fires).
        self._playing_timer = QTimer(self)
        self._playing_timer.setSingleShot(True)
        self._playing_timer.setInterval(PLAYING_REFRESH_MS)
        self._playing_timer.timeout.connect(self.refresh)
        controller.frameChanged.connect(self._on_frame)
        controller.playingChanged.connect(self._on_playing)
        controller.documentChanged.connect(self._on_document)
        controller.projectReplaced.connect(self.refresh)
        controller.keySelectionChanged.connect(self.key_fields.refresh)
        self.refresh()

    def _request_refresh(self) -> None:
        """Refresh now, or, while playing, within PLAYING_REFRESH_MS."""
        if self.controller.playing:
            if not self._playing_timer.isActive():
                self._playing_timer.start()
        else:
            self.refresh()

    def _on_frame(self, _frame: int) -> None:
        self._request_refresh()

    def _on_playing(self, playing: bool) -> None:
        if not playing:
            self.refresh()  # the exact frame playback stopped on, at once

    def _on_document(self, kind: str, _detail: dict) -> None:
        if kind in ("curves", "takes", "settings"):
            self._request_refresh()

    def refresh(self) -> None:
        """Read the controls and key states back from the current frame (now, also while
        playing)."""
        self._playing_timer.stop()
        c = self.controller
        values = c.current_values()
        take = c.project.active_take
        frame = c.frame
        self.frame_label.setText(f"FRAME {frame}  ·  {take.name}")
        for control in SEMANTIC_CONTROLS:
            row = self.rows[control.id]
            row.show_value(control_value(control, values))
            curves = [take.curves.get(ch) for ch in control.channels]
            if all(cv is not None and cv.index_of(frame) is not None for cv in curves):
                row.set_key_state("keyed")
            elif any(cv is not None for cv in curves):
                row.set_key_state("animated")
            else:
                row.set_key_state("none")
        self.key_fields.refresh()

    # -------------------------------------------------------------------------- editing
    def _begin_drag(self, control: SemanticControl) -> None:
        values = self.controller.current_values().copy()
        self._drag[control.id] = (values, control_value(control, values), next(_drag_ids))

    def _end_drag(self, control: SemanticControl) -> None:
        self._drag.pop(control.id, None)
        self.refresh()

    def set_control(self, control_id: str, value: float) -> bool:
        """Key ``control_id`` to ``value`` at the current frame (as if typed). Raises KeyError
        for an unknown control."""
        control = CONTROLS_BY_ID[control_id]
        return self._edited(control, value, False)

    def _edited(self, control: SemanticControl, value: float, dragging: bool) -> bool:
        c = self.controller
        if dragging and control.id in self._drag:
            base, s0, drag_id = self._drag[control.id]
            merge_key: object = ("inspector", control.id, c.frame, drag_id)
        else:
            base = c.current_values().copy()
            s0 = control_value(control, base)
            merge_key = None
        new = control_keys(control, base, s0, value)
        keys = {ch: ([c.frame], [v]) for ch, v in new.items()}
        ok = c.key_values(keys, label=f"{control.label} at frame {c.frame}", merge_key=merge_key)
        if not dragging:
            self.refresh()
        return ok

    def _key_control(self, control: SemanticControl) -> None:
        self.controller.insert_key(control.channels)
