"""The Generate from Audio dialog (offscreen): a tiny generation through the worker adds the take
as one undo step; Cancel stops it; Regenerate Range prefills the play range; Ctrl+G opens it."""

from __future__ import annotations

import io

import numpy as np
import pytest

from models.motion_space import CHANNEL_INDEX, JAW_OPEN_CHANNEL
from studio.document import AudioClip, Curve, Interpolation, Project, Take
from studio.ui.controller import StudioController
from studio.ui.generate_dialog import GenerateDialog

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(autouse=True)
def _child_one_thread(monkeypatch):
    """The generation child on one torch thread too (see torch_one_thread)."""
    from studio.ui import generate_dialog

    monkeypatch.setattr(generate_dialog, "CHILD_TORCH_THREADS", 1)


def _wav(seconds: float, rate: int = 16000) -> bytes:
    import soundfile as sf

    t = np.arange(round(seconds * rate)) / rate
    x = 0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * (np.sin(2 * np.pi * 4 * t) > 0)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _project(seconds: float = 1.0) -> Project:
    n = int(np.ceil(seconds * 25))
    p = Project.new(fps=25, duration_frames=n)
    p.assets["audio/speech.wav"] = _wav(seconds)
    p.audio_clips.append(AudioClip.new("speech", "audio/speech.wav"))
    take = Take.new(
        "Keyed", {"yaw": Curve([0, n - 1], [0.0, 8.0], Interpolation.LINEAR, channel="yaw")}
    )
    p.takes = [take]
    p.active_take_id = take.id
    p.validate()
    return p


class FakeViewport:
    """Records what the dialog shows on the head."""

    def __init__(self) -> None:
        self.shown: list = []

    def set_live_values(self, values) -> None:
        self.shown.append(None if values is None else np.array(values))


def _dialog(qtbot, controller, **kw) -> GenerateDialog:
    dlg = GenerateDialog(controller, **kw)
    qtbot.addWidget(dlg)
    return dlg


def test_generates_a_take_as_one_undo_step(qtbot, tiny_dir):
    c = StudioController(_project(1.0))
    old = c.project.active_take
    viewport = FakeViewport()
    dlg = _dialog(qtbot, c, viewport=viewport)
    dlg.set_model(tiny_dir)
    dlg.steps.setValue(2)
    dlg.seed.setValue(7)
    assert dlg.whole.isChecked() and dlg.generate_button.isEnabled()
    done = []
    dlg.generated.connect(done.append)
    worker = dlg.start()
    assert worker is not None and not dlg.generate_button.isEnabled()
    qtbot.waitUntil(lambda: not dlg.is_running and dlg.worker is None, timeout=30000)
    assert len(done) == 1 and len(c.project.takes) == 2
    take = c.project.active_take
    assert take.name == "Generated (seed 7)" and take.id == done[0][0]
    assert dlg.progress.value() == 1000
    assert dlg.preview._values is not None and dlg.preview._values.size > 0
    # The previews went to the head, and the head shows the take again afterwards.
    assert any(v is not None and v.shape == (90,) for v in viewport.shown)
    assert viewport.shown[-1] is None
    assert c.history.undo_label.startswith("Generate")
    c.undo()  # one step removes the take and restores the active one
    assert [t.id for t in c.project.takes] == [old.id] and c.project.active_take_id == old.id


def test_cancel_stops_and_adds_nothing(qtbot, tiny_dir):
    c = StudioController(_project(4.0))
    dlg = _dialog(qtbot, c)
    dlg.set_model(tiny_dir)
    dlg.steps.setValue(50)
    steps = []

    def on_progress(report):
        steps.append(report.fraction)
        if len(steps) == 3:
            dlg.cancel()

    worker = dlg.start()
    worker.progress.connect(on_progress)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=30000)
    assert len(c.project.takes) == 1 and not c.history.can_undo
    assert "Cancelled" in dlg.status.text()
    assert max(f or 0 for f in steps) < 0.5  # it stopped long before the end
    assert dlg.generate_button.isEnabled()


def test_regenerate_range_prefills_and_keeps_the_rest(qtbot):
    c = StudioController(_project(2.0))
    before = c.project.active_take.evaluate(np.arange(50))
    dlg = _dialog(qtbot, c, frame_range=(10, 30))
    assert dlg.ranged.isChecked() and dlg.windowTitle() == "Regenerate Range"
    assert (dlg.range_a.value(), dlg.range_b.value()) == (10, 29)
    dlg.set_model("procedural")
    for r in ("eyes", "brows", "pose", "expression"):
        dlg.regions[r].setChecked(False)
    assert dlg.request().regions == ["lips"] and dlg.request().frame_range == (10, 30)
    dlg.start()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=30000)
    after = c.project.active_take.evaluate(np.arange(50))
    keep = np.r_[0:10, 30:50]
    np.testing.assert_array_equal(after[keep], before[keep])
    jaw = CHANNEL_INDEX[JAW_OPEN_CHANNEL]
    assert after[10:30, jaw].max() > 0.0
    np.testing.assert_array_equal(after[:, CHANNEL_INDEX["yaw"]], before[:, CHANNEL_INDEX["yaw"]])


def test_no_audio_and_no_region_disable_generate(qtbot):
    c = StudioController(Project.new(fps=25, duration_frames=20))
    dlg = _dialog(qtbot, c)
    assert not dlg.generate_button.isEnabled() and "no audio" in dlg.status.text()
    c2 = StudioController(_project(0.4))
    dlg2 = _dialog(qtbot, c2)
    for box in dlg2.regions.values():
        box.setChecked(False)
    assert not dlg2.generate_button.isEnabled() and "region" in dlg2.status.text()


def test_audio_file_is_embedded_with_the_take(qtbot, tmp_path, monkeypatch):
    from studio.ui import dialogs

    wav = tmp_path / "line.wav"
    wav.write_bytes(_wav(1.0))
    monkeypatch.setattr(dialogs, "ask_audio_path", lambda parent, start=None: wav)
    c = StudioController(Project.new(fps=25, duration_frames=10))
    dlg = _dialog(qtbot, c)
    dlg.set_model("procedural")
    dlg.audio.activated.emit(dlg.audio.findData("__file__"))
    assert dlg.audio.currentText() == "line.wav" and dlg.generate_button.isEnabled()
    dlg.start()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=30000)
    p = c.project
    assert len(p.audio_clips) == 1 and len(p.takes) == 2 and p.duration == 25
    c.undo()
    assert not p.audio_clips and len(p.takes) == 1 and p.duration == 10


def test_ctrl_g_and_the_animation_menu(qtbot, tmp_path, monkeypatch):
    from PySide6.QtGui import QKeySequence
    from PySide6.QtWidgets import QMenu
    from window_helpers import make_window

    from studio.ui import dialogs
    from studio.ui.actions import shortcut_table

    monkeypatch.setattr(dialogs, "ask_recovery", lambda parent, items: ("later", None))
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda parent, name: "discard")
    w = make_window(qtbot, tmp_path, _project(1.0), focus=True)
    c = w.controller
    anim = next(m for m in w.menuBar().findChildren(QMenu) if m.title() == "&Animation")
    texts = [a.text() for a in anim.actions()]
    assert "&Generate from Audio…" in texts and "&Regenerate Range…" in texts
    act = w.actions_by_id["generate"]
    assert act.shortcuts() == [QKeySequence("Ctrl+G")]
    assert ("Animation", "Generate from Audio", "Ctrl+G") in shortcut_table()
    act.trigger()  # (offscreen windows do not always get the key focus Ctrl+G needs)
    dlg = w.generate_dialog
    assert dlg.isVisible() and dlg.whole.isChecked()
    c.set_play_range(5, 20)
    w.actions_by_id["regenerate_range"].trigger()
    assert w.generate_dialog is dlg and dlg.ranged.isChecked()
    assert dlg.frame_range() == (5, 20)
    dlg.close()
    w.close()


def test_ic_init_checkbox_sets_the_request(qtbot):
    dlg = _dialog(qtbot, StudioController(_project(1.0)))
    assert dlg.ic_init.text() == "Consistent segments (IC-Init, slower)"
    assert not dlg.ic_init.isChecked() and dlg.request().ic_init is False
    dlg.ic_init.setChecked(True)
    assert dlg.request().ic_init is True


def test_a_bad_model_fails_with_one_line(qtbot, tmp_path):
    c = StudioController(_project(0.4))
    dlg = _dialog(qtbot, c)
    dlg.set_model(tmp_path / "no-such-model")
    dlg.device.setCurrentIndex(dlg.device.findData("cpu"))
    failures = []
    worker = dlg.start()
    worker.failed.connect(lambda message, tb: failures.append((message, tb)))
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=60000)
    assert len(failures) == 1 and "does not exist" in failures[0][0]
    assert "\n" not in failures[0][0] and failures[0][1] == ""
    assert dlg.status.text().startswith("Failed: model folder") and len(c.project.takes) == 1
    assert dlg.generate_button.isEnabled() and not c.history.can_undo


def test_a_crashed_child_is_reported_and_its_files_removed(qtbot, monkeypatch, caplog):
    import sys

    from studio.ui import generate_dialog

    script = "import sys; sys.stderr.write('Traceback...\\nBoom: torch fell over\\n'); sys.exit(7)"
    monkeypatch.setattr(generate_dialog, "generation_command",
                        lambda *a: (sys.executable, ["-c", script]))  # fmt: skip
    c = StudioController(_project(0.4))
    dlg = _dialog(qtbot, c)
    dlg.set_model("procedural")
    worker = dlg.start()
    qtbot.waitUntil(lambda: worker.folder is not None, timeout=10000)
    folder = worker.folder
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=30000)
    assert dlg.status.text() == (
        "Failed: the generation process stopped unexpectedly (exit 7): Boom: torch fell over"
    )
    assert "Traceback..." in caplog.text  # the whole stderr tail is in the log
    assert not folder.exists() and len(c.project.takes) == 1


def test_variations_emotion_and_status_bar_once_hidden(qtbot, tiny_dir):
    from studio.workers import WorkerStatus

    status = WorkerStatus()
    qtbot.addWidget(status)
    c = StudioController(_project(1.0))
    dlg = _dialog(qtbot, c, worker_status=status)
    dlg.show()
    dlg.set_model(tiny_dir)
    dlg.steps.setValue(2)
    dlg.variations.setValue(2)
    dlg.emotion.setCurrentIndex(dlg.emotion.findData("happy"))
    worker = dlg.start()
    # While the dialog shows progress the status bar stays as it is (no main-window re-layout).
    assert status.current() is None
    dlg.hide()
    assert status.current() is worker
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=60000)
    assert status.current() is None and len(c.project.takes) == 3
    names = [t.name for t in c.project.takes[1:]]
    assert names == ["Generated (seed 0) 1/2", "Generated (seed 0) 2/2"]
    happy = CHANNEL_INDEX["emotion_happy"]
    assert c.project.active_take.evaluate(np.arange(25))[:, happy].min() == pytest.approx(1.0)
    c.undo()
    assert len(c.project.takes) == 1


def test_coalesced_reports_keep_the_newest_preview_and_every_notice(qapp, tmp_path):
    from studio.generation import GenerateRequest
    from studio.ui.generate_dialog import GenerationProcess

    proc = GenerationProcess(_project(0.4), GenerateRequest())
    proc._dir = tmp_path  # as start() would make it (no child is run here)
    np.save(tmp_path / "preview-0.npy", np.full((4, 90), 0.5, np.float32))
    first = proc.handle_lines([
        {"step": 0, "total": 4, "text": "preparing", "notices": ["model fallback"]},
        {"step": 2, "total": 4, "text": "step 2/4", "preview": "preview-0.npy",
         "preview_start": 3},
    ])  # fmt: skip
    assert first.fraction == 0.5 and first.text == "step 2/4"
    values, start, notices = first.preview
    assert values.shape == (4, 90) and start == 3 and notices == ("model fallback",)
    proc.pending = first  # held back by the rate limit: the next report carries it on
    second = proc.handle_lines(
        [{"step": 3, "total": 4, "text": "step 3/4", "notices": ["CPU retry"]}, {"junk": 1}]
    )
    assert second.text == "step 3/4" and second.preview[1] == 3
    assert second.preview[0] is values and second.preview[2] == ("model fallback", "CPU retry")
    proc.pending = None
    third = proc.handle_lines([{"step": 4, "total": 4, "text": "step 4/4"}])
    assert third.preview is None and third.fraction == 1.0
    assert proc.handle_lines([{"error": "bad audio"}]) is None and proc.error == "bad audio"


def test_shutdown_cancels_a_running_generation_and_waits(qtbot, tiny_dir):
    c = StudioController(_project(4.0))
    dlg = _dialog(qtbot, c)
    dlg.set_model(tiny_dir)
    dlg.steps.setValue(50)
    worker = dlg.start()
    qtbot.waitUntil(lambda: worker.last_progress.fraction > 0, timeout=60000)
    folder = worker.folder
    dlg.shutdown()  # what the main window does when it closes
    assert not worker.is_running and dlg.worker is None
    assert len(c.project.takes) == 1 and not folder.exists()


def test_tails_in_one_batch_are_merged_and_deleted_once_read(qapp, tmp_path):
    from studio.generation import GenerateRequest
    from studio.ui.generate_dialog import GenerationProcess, merge_tails

    proc = GenerationProcess(_project(0.4), GenerateRequest())
    proc._dir = tmp_path
    np.save(tmp_path / "preview-0.npy", np.full((16, 90), 1.0, np.float32))
    np.save(tmp_path / "preview-1.npy", np.full((16, 90), 2.0, np.float32))
    report = proc.handle_lines([
        {"step": 1, "total": 4, "text": "a", "preview": "preview-0.npy", "preview_start": 0},
        {"step": 2, "total": 4, "text": "b", "preview": "preview-1.npy", "preview_start": 12},
    ])  # fmt: skip
    values, start, _ = report.preview
    assert start == 0 and values.shape == (28, 90)
    assert (values[:12] == 1.0).all() and (values[12:] == 2.0).all()
    assert not list(tmp_path.glob("preview-*.npy"))  # read and removed
    # A report held back by the rate limit is merged with the next tail, not replaced.
    proc.pending = report
    np.save(tmp_path / "preview-2.npy", np.full((16, 90), 3.0, np.float32))
    later = proc.handle_lines(
        [{"step": 3, "total": 4, "text": "c", "preview": "preview-2.npy", "preview_start": 24}]
    )
    values, start, _ = later.preview
    assert start == 0 and values.shape == (40, 90)
    assert (values[:12] == 1.0).all() and (values[12:24] == 2.0).all() and (values[24:] == 3).all()
    # A gap (never between consecutive tails) is NaN, not stale data.
    v, s = merge_tails((np.ones((2, 1)), 0), (np.zeros((2, 1)), 5))
    assert s == 0 and v.shape == (7, 1) and np.isnan(v[2:5]).all()


def test_dialog_assembles_tails_for_the_plot_and_the_head(qtbot):
    from studio.workers import Progress

    c = StudioController(_project(1.0))
    viewport = FakeViewport()
    dlg = _dialog(qtbot, c, viewport=viewport)
    c.set_frame(3)
    jaw = CHANNEL_INDEX[JAW_OPEN_CHANNEL]
    a = np.zeros((16, 90))
    a[:, jaw] = 0.1
    b = np.zeros((16, 90))
    b[:, jaw] = 0.2
    dlg._on_progress(Progress(0.5, "w1", (a, 0, ())))
    dlg._on_progress(Progress(0.7, "w2", (b, 12, ())))
    np.testing.assert_allclose(dlg.preview._values, [0.1] * 12 + [0.2] * 16)
    assert len(viewport.shown) == 1 and viewport.shown[0][jaw] == 0.1  # frame 3 unchanged
    dlg.preview.grab()  # paints (decimated, NaN-safe)


def test_limits_widgets_set_the_request(qtbot):
    dlg = _dialog(qtbot, StudioController(_project(1.0)))
    r = dlg.request()
    assert r.max_angle is None and r.region_scale is None and r.limits() is None
    assert dlg.max_angle.text() == "No limit"
    dlg.max_angle.setValue(12.5)
    dlg.region_scale["lips"].setValue(0.8)
    dlg.region_scale["brows"].setValue(1.2)
    r = dlg.request().validated()
    assert r.max_angle == 12.5 and r.region_scale == {"lips": 0.8, "brows": 1.2}
    assert dlg.region_scale["jaw"].maximum() == 2.0 and dlg.region_scale["eyes"].value() == 1.0


def test_clipped_audio_notice_is_shown(qtbot):
    import soundfile as sf

    p = _project(1.0)
    t = np.arange(16000) / 16000
    buf = io.BytesIO()
    sf.write(buf, np.clip(4 * np.sin(2 * np.pi * 150 * t), -1, 1), 16000, format="WAV")
    p.assets["audio/speech.wav"] = buf.getvalue()
    c = StudioController(p)
    messages = []
    c.message.connect(lambda text, level: messages.append((text, level)))
    dlg = _dialog(qtbot, c)
    dlg.set_model("procedural")
    dlg.start()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=30000)
    warned = [text for text, level in messages if level == "warning" and "clipped" in text]
    assert len(warned) == 1 and "lips may look exaggerated" in warned[0]
    assert "clipped" in dlg.status.text()
