"""The main window: shortcuts, file operations, recovery, bad input (offscreen, no dialogs)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from window_helpers import make_window

from models.motion_space import CHANNEL_INDEX, CHANNELS
from studio.document import AudioClip, History, Interpolation, Project, insert_keys
from studio.document.fileformat import load_project, save_project
from studio.document.recovery import RecoveryManager
from studio.ui import dialogs
from studio.ui.actions import ACTIONS, shortcut_table

JAW = "exp_19_y"


def _project() -> Project:
    p = Project.new(fps=25, duration_frames=100)
    History(p).push(
        insert_keys(
            p,
            {JAW: ([0, 20, 40], [0.0, 0.03, 0.01]), "pitch": ([0, 50], [0.0, 5.0])},
            interp=Interpolation.LINEAR,
        )
    )
    return p


@pytest.fixture
def asked(monkeypatch):
    """Answers for every question the window may ask, and a record of what it asked."""
    record: dict[str, list] = {"errors": [], "unsaved": [], "recovery": []}
    answers = {"unsaved": "discard", "recovery": ("later", None)}

    def show_error(parent, title, text):
        record["errors"].append((title, text))

    def ask_unsaved(parent, name):
        record["unsaved"].append(name)
        return answers["unsaved"]

    def ask_recovery(parent, items):
        record["recovery"].append(list(items))
        a = answers["recovery"]
        return a(items) if callable(a) else a

    monkeypatch.setattr(dialogs, "show_error", show_error)
    monkeypatch.setattr(dialogs, "show_info", lambda *a: None)
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", ask_unsaved)
    monkeypatch.setattr(dialogs, "ask_recovery", ask_recovery)
    record["answers"] = answers  # type: ignore[assignment]
    return record


def _make_window(qtbot, tmp_path, project=None, recovery_dir=None):
    project = project if project is not None else _project()
    return make_window(qtbot, tmp_path, project, recovery_dir=recovery_dir, focus=True)


@pytest.fixture
def window(qtbot, tmp_path, asked):
    return _make_window(qtbot, tmp_path)


def _key(window, key, mods=Qt.KeyboardModifier.NoModifier):
    QTest.keyClick(window, key, mods)


def test_i_inserts_a_key_on_every_animated_channel_at_the_current_frame(window):
    c = window.controller
    c.set_frame(30)
    before = c.current_values().copy()
    _key(window, Qt.Key.Key_I)
    take = c.project.active_take
    for ch in (JAW, "pitch"):
        i = take.curves[ch].index_of(30)
        assert i is not None, ch
        # Keying the current value does not change the pose.
        assert take.curves[ch].values[i] == pytest.approx(before[CHANNEL_INDEX[ch]])
    assert c.history.undo_label.startswith("Insert key")


def test_i_keys_only_the_selected_channels(window):
    c = window.controller
    c.set_frame(7)
    c.select_channels(["yaw"])
    _key(window, Qt.Key.Key_I)
    take = c.project.active_take
    assert take.curves["yaw"].index_of(7) is not None
    assert take.curves[JAW].index_of(7) is None


def test_undo_redo_shortcuts(window):
    c = window.controller
    c.set_frame(30)
    original = c.project.active_take
    _key(window, Qt.Key.Key_I)
    keyed = c.project.active_take
    assert keyed is not original and c.is_modified
    _key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert c.project.active_take is original and not c.is_modified
    _key(
        window,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert c.project.active_take is keyed
    _key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    _key(window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)  # the Windows habit
    assert c.project.active_take is keyed
    assert window.isWindowModified()


def test_x_deletes_selected_keys_and_arrows_step_frames(window):
    c = window.controller
    c.select_keys({(JAW, 20)})
    _key(window, Qt.Key.Key_X)
    assert c.project.active_take.curves[JAW].index_of(20) is None
    assert c.selected_keys == set()
    c.set_frame(10)
    _key(window, Qt.Key.Key_Right)
    _key(window, Qt.Key.Key_Right)
    _key(window, Qt.Key.Key_Left)
    assert c.frame == 11
    _key(window, Qt.Key.Key_Up)  # next key: the jaw's key at 40 (20 was deleted)
    assert c.frame == 40
    _key(window, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert c.frame == 0


def test_home_asks_the_editors_to_frame_all(window, qtbot):
    with qtbot.waitSignal(window.controller.viewAllRequested, timeout=1000):
        _key(window, Qt.Key.Key_Home)


def test_space_plays_and_pauses_and_jkl_shuttle(window):
    c = window.controller
    _key(window, Qt.Key.Key_Space)
    assert c.playing and c.play_speed == 1
    _key(window, Qt.Key.Key_Space)
    assert not c.playing
    _key(window, Qt.Key.Key_L)
    _key(window, Qt.Key.Key_L)
    assert c.playing and c.play_speed == 2
    _key(window, Qt.Key.Key_J)
    assert c.playing and c.play_speed == -1
    _key(window, Qt.Key.Key_K)
    assert not c.playing


def test_save_and_reopen_gives_the_same_project(window, tmp_path, asked):
    c = window.controller
    c.set_frame(33)
    _key(window, Qt.Key.Key_I)
    path = tmp_path / "shot.ths"
    assert window.save_as(path)
    assert not c.is_modified and c.path == path and not window.isWindowModified()
    assert "shot.ths" in window.windowTitle()
    saved = c.project
    window.new_project()
    assert c.project is not saved and c.path is None
    assert window.open_project(path)
    assert c.project == saved
    assert c.path == path and not c.is_modified
    # Ctrl+S after a change writes the same file again.
    c.set_frame(5)
    _key(window, Qt.Key.Key_I)
    _key(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not c.is_modified
    assert load_project(path) == c.project
    assert dialogs.recent_files(window.settings)[0] == path
    assert asked["errors"] == []


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not a zip file", b"PK\x03\x04 truncated zip"],
    ids=["empty", "text", "truncated"],
)
def test_a_bad_project_file_gives_a_message_and_keeps_the_project(window, tmp_path, asked, content):
    bad = tmp_path / "bad.ths"
    bad.write_bytes(content)
    c = window.controller
    before = c.project
    assert not window.open_project(bad)
    assert c.project is before
    ((title, text),) = asked["errors"]
    assert title == "Cannot open the project"
    assert "bad.ths" in text and "Traceback" not in text and "\n" not in text
    assert any("bad.ths" in line for _level, line in window.log_panel.lines)


def test_unsaved_changes_prompt_can_cancel_new_and_close(window, asked, qtbot):
    c = window.controller
    _key(window, Qt.Key.Key_I)
    asked["answers"]["unsaved"] = "cancel"
    edited = c.project
    assert not window.new_project()
    assert c.project is edited and len(asked["unsaved"]) == 1
    window.close()
    assert window.isVisible()  # the close was cancelled
    asked["answers"]["unsaved"] = "discard"
    window.close()
    assert not window.isVisible()


def test_missing_panels_show_their_reason_inline(window):
    # Offscreen Qt has no OpenGL: the viewport dock says so instead of crashing.
    text = window.panels["viewport"].text()
    assert text.startswith("Viewport unavailable:")


def test_every_shortcut_is_in_the_help_table(window, qtbot):
    rows = shortcut_table()
    assert len(rows) == sum(1 for a in ACTIONS if a.shortcuts)
    keys = " ".join(r[2] for r in rows)
    for k in ("Space", "Ctrl+Z", "Ctrl+Shift+Z", "Home", "Ctrl+S", "Del", "Left", "J", "K", "L"):
        assert k in keys, k
    window.show_shortcuts()
    dlg = window.findChild(dialogs.ShortcutsDialog)
    assert dlg is not None and dlg.table.rowCount() == len(rows)
    dlg.close()


def test_preferences_are_stored_in_the_settings_file(window, tmp_path):
    prefs = dialogs.Preferences(device="cpu", autosave_minutes=7.5, audio_device="", ipd_mm=58.0)
    window.apply_preferences(prefs)
    again = dialogs.load_preferences(dialogs.open_settings(tmp_path / "settings.ini"))
    assert again == prefs
    assert (tmp_path / "settings.ini").read_text().count("autosave_minutes") == 1


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recovery_prompt_after_a_crash(qtbot, tmp_path, asked):
    recovery_dir = tmp_path / "recovery"
    # A session that autosaved an edited project, then died without ending cleanly.
    crashed = RecoveryManager(recovery_dir)
    lost = _project()
    History(lost).push(insert_keys(lost, {"yaw": ([12], [21.0])}))
    crashed.autosave(lost, tmp_path / "work.ths")
    marker = json.loads(crashed.marker_path.read_text())
    marker["pid"], marker["process_start"] = _dead_pid(), None
    crashed.marker_path.write_text(json.dumps(marker))

    asked["answers"]["recovery"] = lambda items: ("recover", items[0])
    window = _make_window(qtbot, tmp_path, project=Project.new(), recovery_dir=recovery_dir)
    assert window.start_session()
    (items,) = asked["recovery"]
    assert len(items) == 1 and items[0].original_path == tmp_path / "work.ths"
    c = window.controller
    assert c.project == lost
    assert c.path == tmp_path / "work.ths"
    assert c.is_modified and window.isWindowModified()
    # The old autosave is gone and this session holds the work now.
    assert not items[0].recovery_path.exists()
    assert window.recovery.autosave_path(c.path).exists()
    window.close()  # clean exit: our autosaves go too, nothing is offered next time
    assert RecoveryManager(recovery_dir).pending_recoveries() == []


def test_recovery_decide_later_keeps_the_autosave(qtbot, tmp_path, asked):
    recovery_dir = tmp_path / "recovery"
    crashed = RecoveryManager(recovery_dir)
    crashed.autosave(_project(), None)
    marker = json.loads(crashed.marker_path.read_text())
    marker["pid"], marker["process_start"] = _dead_pid(), None
    crashed.marker_path.write_text(json.dumps(marker))
    window = _make_window(qtbot, tmp_path, project=Project.new(), recovery_dir=recovery_dir)
    assert not window.start_session()
    assert len(asked["recovery"]) == 1
    assert len(RecoveryManager(recovery_dir).pending_recoveries()) == 1


def test_autosave_writes_after_a_change_and_indicator_says_so(window):
    c = window.controller
    window.start_session(offer_recovery=False)
    assert not window.autosave_if_due()  # nothing changed yet
    c.set_frame(3)
    window.insert_key()
    assert "Unsaved" in window.autosave_label.text()
    window._last_write = 0.0  # the last write was long ago: an autosave is due now
    assert window.autosave_if_due()
    assert "Autosaved" in window.autosave_label.text()
    path = window.recovery.autosave_path(None)
    assert load_project(path) == c.project


def _write_wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def test_import_audio_runs_in_a_worker_and_is_one_undo_step(window, qtbot, tmp_path):
    wav = tmp_path / "line.wav"
    _write_wav(wav, seconds=5.0)
    c = window.controller
    c.set_frame(10)
    worker = window.import_audio(wav)
    with qtbot.waitSignal(worker.done, timeout=5000):
        pass
    (clip,) = c.project.audio_clips
    assert clip.offset == 10 and c.project.assets[clip.asset] == wav.read_bytes()
    assert c.project.duration == 10 + 125  # 5 s at 25 fps, past the old 100 frames
    c.undo()
    assert c.project.audio_clips == [] and c.project.duration == 100


def test_import_of_a_missing_or_bad_audio_file_is_a_message(window, qtbot, tmp_path, asked):
    worker = window.import_audio(tmp_path / "nope.wav")
    with qtbot.waitSignal(worker.done, timeout=5000):
        pass
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    worker = window.import_audio(bad)
    with qtbot.waitSignal(worker.done, timeout=5000):
        pass
    assert [t for t, _ in asked["errors"]] == ["Cannot import the audio"] * 2
    assert "nope.wav" in asked["errors"][0][1]
    assert window.controller.project.audio_clips == []


def test_project_with_a_missing_audio_file_opens_with_a_warning(window, tmp_path, asked):
    wav = tmp_path / "voice.wav"
    _write_wav(wav)
    p = _project()
    p.audio_clips.append(AudioClip.new("voice", str(wav)))
    path = tmp_path / "external.ths"
    save_project(p, path)
    wav.unlink()
    assert window.open_project(path)
    assert window.controller.project.audio_clips[0].name == "voice"
    ((title, text),) = asked["errors"]
    assert "missing" in title.lower() and "external.ths" in text
    # Playing it is silent, not an error.
    window.controller.set_playing(True)
    window.playback.tick()
    window.controller.set_playing(False)


def test_takes_and_history_panels_follow_the_document(window):
    c = window.controller
    takes = window.panels["takes"]
    history = window.panels["history"]
    takes.new_take()
    assert len(c.project.takes) == 2 and takes.list.count() == 2
    assert c.project.active_take.name == "Take"
    assert history.list.count() == 2 and history.list.item(1).text() == "New take"
    history.jump_to(0)
    assert len(c.project.takes) == 1
    history.jump_to(1)
    assert len(c.project.takes) == 2


def test_all_channels_are_keyable_on_a_fresh_project(window):
    window.new_project()
    c = window.controller
    c.set_frame(0)
    window.insert_key()
    assert set(c.project.active_take.curves) == set(CHANNELS)


def test_graph_editor_tabbed_away_refreshes_when_raised(qtbot, tmp_path, monkeypatch):
    """Behind the Timeline tab the graph editor skips redrawing on edits (a generated take
    would cost ~0.1 s per refresh) and catches up when its tab is raised."""
    from studio.document import Project

    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *_a: "discard")  # on close
    w = make_window(qtbot, tmp_path, Project.new(fps=25, duration_frames=50), show=True)
    graph = w.panels["graph"]
    w.docks["graph"].raise_()
    qtbot.waitUntil(lambda: not graph.visibleRegion().isEmpty(), timeout=3000)
    w.docks["timeline"].raise_()
    qtbot.waitUntil(lambda: graph.visibleRegion().isEmpty(), timeout=3000)
    calls: list[object] = []
    original = type(graph)._refresh

    def counting(self, channels=None):
        calls.append(channels)
        original(self, channels)

    monkeypatch.setattr(type(graph), "_refresh", counting)
    w.controller.set_frame(10)
    assert w.controller.insert_key(["yaw"])
    assert calls == [] and graph._stale
    w.docks["graph"].raise_()
    qtbot.waitUntil(lambda: bool(calls), timeout=3000)
    assert calls == [None] and not graph._stale


def test_graph_editor_tabbed_away_moves_its_playhead_when_raised(qtbot, tmp_path, monkeypatch):
    """Behind the Timeline tab the graph editor's playhead line stays put while the frame
    changes (moving it cost ~2 ms a frame of playback) and jumps to the frame when raised;
    shown, it follows every frame."""
    from studio.document import Project

    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *_a: "discard")  # on close
    w = make_window(qtbot, tmp_path, Project.new(fps=25, duration_frames=50), show=True)
    graph = w.panels["graph"]
    c = w.controller
    w.docks["timeline"].raise_()
    qtbot.waitUntil(lambda: graph.visibleRegion().isEmpty(), timeout=3000)
    c.set_frame(3)
    c.set_frame(7)
    assert graph._playhead.value() != 7 and graph._playhead_stale
    w.docks["graph"].raise_()
    qtbot.waitUntil(lambda: graph._playhead.value() == 7, timeout=3000)
    assert not graph._playhead_stale
    c.set_frame(12)
    assert graph._playhead.value() == 12


def test_panels_keep_their_sizes_through_relayouts_scrubbing_and_play(window, qtbot):
    # QMainWindow without a central widget moved the separator between the panel columns by
    # 3 px on every relayout of the window; the transport's time display asked for one on every
    # frame, so the viewport crept narrower while scrubbing or playing.
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(100)
    docks = {k: window.docks[k] for k in ("viewport", "inspector", "timeline")}
    before = {k: d.geometry() for k, d in docks.items()}
    assert window.centralWidget() is not None and window.centralWidget().width() == 0
    c = window.controller
    for frame in (1, 7, 11, 23, 3):
        c.set_frame(frame)
        qtbot.wait(20)
    c.set_playing(True)
    qtbot.wait(150)
    c.set_playing(False)
    for _ in range(3):
        window.layout().invalidate()
        window.layout().activate()
        qtbot.wait(20)
    assert {k: d.geometry() for k, d in docks.items()} == before
    assert docks["viewport"].width() > 2 * docks["inspector"].width()  # the viewport has the room
