"""Animation > Auto-Emotion from Take: keys the active take's emotion curve (the play range when
one is set) as one undo step, with a status message; no expression to read is a message."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QMenu
from window_helpers import make_window

from models.emotion import apply_emotion_template
from models.motion_space import CHANNEL_INDEX, EMOTIONS
from models.procedural import procedural_motion
from studio.project_ops import new_project, take_from_dense
from studio.ui import dialogs

F = 150
HAPPY = slice(60, 110)
_EMO0 = CHANNEL_INDEX["emotion_angry"]


def _project():
    """One take: procedural speech over 6 s, happy on frames 60..109, no emotion keys."""
    sr = 16000
    t = np.arange(6 * sr) / sr
    audio = 0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * (np.sin(2 * np.pi * 4 * t) > 0)
    dense = procedural_motion(audio, sr, 25.0, F, seed=1)
    w = np.zeros((F, 8))
    w[:, EMOTIONS.index("neutral")] = 1.0
    w[HAPPY] = 0.0
    w[HAPPY, EMOTIONS.index("happy")] = 1.0
    dense = apply_emotion_template(dense, w)
    dense[:, _EMO0 : _EMO0 + 8] = 0.0
    project = new_project(duration_s=F / 25.0)
    take = take_from_dense(dense, "Speech", "procedural")
    project.takes.append(take)
    project.active_take_id = take.id
    return project


def _window(qtbot, tmp_path, monkeypatch, project):
    monkeypatch.setattr(dialogs, "ask_recovery", lambda parent, items: ("later", None))
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda parent, name: "discard")
    return make_window(qtbot, tmp_path, project, show=False)


def _emotion_keys(take) -> int:
    return sum(take.curve(f"emotion_{e}").frames.size for e in EMOTIONS)


def test_action_keys_the_emotion_curve_and_undo_removes_them(qtbot, tmp_path, monkeypatch):
    w = _window(qtbot, tmp_path, monkeypatch, _project())
    c = w.controller
    anim = next(m for m in w.menuBar().findChildren(QMenu) if m.title() == "&Animation")
    assert "Auto-&Emotion from Take" in [a.text() for a in anim.actions()]
    messages = []
    c.message.connect(lambda text, level: messages.append((text, level)))
    before = c.project.active_take
    assert before.curve("emotion_happy").frames.size == 0
    w.actions_by_id["auto_emotion"].trigger()
    take = c.project.active_take
    keys = take.curve("emotion_happy").frames.size  # every emotion channel keyed there
    assert keys > 0 and take.id == before.id
    assert _emotion_keys(take) == keys * len(EMOTIONS)
    v = take.evaluate(np.arange(70, 100))[:, _EMO0 : _EMO0 + 8].mean(axis=0)
    assert v.argmax() == EMOTIONS.index("happy")
    text, level = messages[-1]
    assert level == "info" and f"set {keys} emotion keys" in text and "Speech" in text
    assert c.history.undo_label == "Auto-emotion"
    c.undo()  # one step
    assert c.project.active_take is before
    assert c.project.active_take.curve("emotion_happy").frames.size == 0


def test_action_uses_the_play_range(qtbot, tmp_path, monkeypatch):
    w = _window(qtbot, tmp_path, monkeypatch, _project())
    c = w.controller
    c.set_play_range(50, 120)
    w.actions_by_id["auto_emotion"].trigger()
    frames = c.project.active_take.curve("emotion_happy").frames
    assert frames.size and frames.min() >= 50 and frames.max() < 120


def test_nothing_to_read_is_a_message(qtbot, tmp_path, monkeypatch):
    project = new_project(duration_s=2.0)  # its take has no expression keys
    w = _window(qtbot, tmp_path, monkeypatch, project)
    c = w.controller
    messages = []
    c.message.connect(lambda text, level: messages.append((text, level)))
    depth = c.history.can_undo
    assert w.auto_emotion_from_take() is False
    text, level = messages[-1]
    assert text.startswith("Auto-emotion:") and "no expression keys" in text
    assert level == "warning" and c.history.can_undo == depth
