"""The Live panel (offscreen): a synthetic drawn-face video as the source, tracking in the
capture thread, calibration, recording into a take, a camera that is missing or unplugged,
per-region switches, the virtual camera message, the viewport hook and the menus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from models.face.sources import CameraDisconnectedError, FrameSource
from models.face.testface import draw_face
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS
from studio.document import Project
from studio.ui import live_panel as live_mod
from studio.ui.controller import StudioController
from studio.ui.live_panel import LivePanel
from studio.ui.live_session import AudioInputUnavailable

FPS = 25
W, H = 320, 240
MOUTH = [CHANNEL_INDEX[f"exp_{k}_{a}"] for k in (3, 6, 7, 8, 9, 10, 12, 14, 17, 19, 20)
         for a in "xyz"]  # fmt: skip
HEAD = [CHANNEL_INDEX[c] for c in ("pitch", "yaw", "roll", "tx", "ty", "scale")]


def _mouth(i: int) -> float:
    return 0.5 + 0.5 * np.sin(2 * np.pi * i / 20)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face_models) -> Path:
    """3.2 s of a drawn face at 25 fps whose mouth opens and closes (H.264, PyAV). Long enough
    for the recordings below on a busy machine: the session plays it in real time and skips
    the frames it falls behind on before a recording starts (a slow first frame)."""
    import av

    path = tmp_path_factory.mktemp("live") / "face.mp4"
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        st.options = {"preset": "ultrafast", "crf": "16"}
        for i in range(80):
            img = draw_face(W, H, mouth_open=_mouth(i), seed=i).image
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


class _NoMic:
    def start(self):
        raise AudioInputUnavailable("no microphone (audio input device) found")

    def stop(self):
        return None


class _FakeMic:
    """A microphone that 'recorded' a 440 Hz tone starting 0.2 s before it was asked."""

    rate = 16_000

    def start(self):
        self.t0 = time.perf_counter() - 0.2

    def stop(self):
        n = int((time.perf_counter() - self.t0) * self.rate)
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / self.rate)
        return tone.astype(np.float32)[:, None], self.rate, self.t0


class _Unplugged(FrameSource):
    """A 'camera' that delivers ``n`` frames at 25 fps, then fails like an unplugged one."""

    is_live = True
    description = "camera 7"

    def __init__(self, n: int):
        super().__init__()
        self.n, self.fps, self.size = n, float(FPS), (W, H)

    def _frames(self):
        t0 = time.monotonic()
        for i in range(self.n):
            time.sleep(max(0.0, t0 + i / FPS - time.monotonic()))
            yield i / FPS, draw_face(W, H, mouth_open=_mouth(i), seed=i).image
        raise CameraDisconnectedError("camera 7 stopped delivering frames (unplugged?)")


@pytest.fixture
def panel(qtbot, tmp_path):
    project = Project.new(fps=FPS, duration_frames=100)
    c = StudioController(project)
    p = LivePanel(c)
    p.profiles_path = tmp_path / "performers"
    p.mic_factory = _NoMic
    p._cameras_probed = True  # tests choose their sources; no camera probing
    p.countdown_s = 0
    p.calibration_frames = 4
    qtbot.addWidget(p)
    p.resize(420, 760)
    yield p
    p.shutdown()


def _wait_frames(qtbot, p, n, timeout=20_000):
    qtbot.waitUntil(lambda: p.frames_shown >= n, timeout=timeout)


def _wait_stopped(qtbot, p, timeout=20_000):
    qtbot.waitUntil(lambda: p.session is None, timeout=timeout)


# ----------------------------------------------------------------------------- tests
def test_start_shows_frames_faces_fps_and_stop(qtbot, panel, clip):
    panel.set_source(clip)
    assert panel.start()
    assert panel.running and panel.start_button.text() == "Stop"
    _wait_frames(qtbot, panel, 8)
    f = panel.last_frame
    assert f.tracked.found and f.points.shape == (468, 2)
    assert f.preview.shape == (H, W, 3)
    assert panel.faces_label.text() == "1 face"
    assert "Tracking" in panel.status_label.text()
    fps = float(panel.fps_label.text().split()[0])
    assert 5 < fps < 200
    # The feed shows the frame: picture pixels (not the empty background) where the face is.
    img = panel.feed.grab().toImage()
    assert not img.isNull() and panel.feed.image_rect().width() > 100
    qtbot.waitUntil(lambda: panel.latency_label.text().startswith("Latency"), timeout=5000)
    panel.stop()
    _wait_stopped(qtbot, panel)
    assert panel.status_label.text() == "Stopped" and panel.start_button.text() == "Start"


def test_several_faces_note(qtbot, panel, clip):
    def two_faces():
        class Two(FrameSource):
            description = "two faces"

            def _frames(self):
                for i in range(200):
                    a = draw_face(W, H, centre=(90, 120), face_height=120, seed=i).image
                    b = draw_face(W, H, centre=(240, 120), face_height=100, seed=i).image
                    yield i / FPS, np.concatenate([a[:, :160], b[:, 160:]], axis=1)

        return Two()

    panel.set_source(two_faces)
    panel.start()
    qtbot.waitUntil(lambda: "faces" in panel.faces_label.text(), timeout=20_000)
    assert panel.faces_label.text() == "2 faces: following the largest"


def test_calibration_saves_a_profile(qtbot, panel, clip):
    from models.face.tracker import PerformerProfile

    panel.set_source(clip)
    panel.performer_edit.setText("Ada L")
    panel.start()
    _wait_frames(qtbot, panel, 2)
    with qtbot.waitSignal(panel.session.calibrated, timeout=20_000):
        panel.calibrate()
    path = panel.profiles_path / "Ada_L.json"
    assert path.is_file()
    prof = PerformerProfile.load(path)
    assert prof.name == "Ada L" and prof.frames == 4
    assert json.loads(path.read_text())["version"] == 1
    assert panel.profile_combo.currentText() == "Ada_L"
    assert "Calibrated" in panel.status_label.text()
    # Selecting "no profile" and back loads the JSON again.
    assert panel.select_profile(None) and panel.profile is None
    assert panel.select_profile(path) and panel.profile.name == "Ada L"


def test_record_makes_one_undoable_take_at_the_project_fps(qtbot, panel, clip):
    c = panel.controller
    c.set_frame(10)
    takes_before = len(c.project.takes)
    panel.set_source(clip)
    panel.start()
    _wait_frames(qtbot, panel, 3)
    assert panel.start_recording()
    qtbot.waitUntil(lambda: (panel.last_frame.recorded_frames or 0) >= 12, timeout=20_000)
    with qtbot.waitSignal(panel.takeRecorded, timeout=30_000) as sig:
        panel.stop_recording()
    take = sig.args[0]
    cap = take.metadata["capture"]
    # The video is at the project's rate: one take frame per recorded frame.
    assert cap["length_frames"] == cap["frames"] >= 12
    assert cap["start_frame"] == 10 and take.source == "recorded"
    assert len(c.project.takes) == takes_before + 1 and c.project.active_take_id == take.id
    # The mouth moved, so the jaw channel is keyed, starting at the current frame.
    jaw = take.curves["exp_19_y"]
    assert jaw.frames[0] == 10 and jaw.frames[-1] == 10 + cap["length_frames"] - 1
    assert (
        np.ptp(
            take.evaluate(np.arange(10, 10 + cap["length_frames"]))[:, CHANNEL_INDEX["exp_19_y"]]
        )
        > 0.005
    )
    assert c.history.undo_label.startswith("Record Live")
    c.undo()
    assert len(c.project.takes) == takes_before
    panel.stop()
    _wait_stopped(qtbot, panel)


def test_record_with_microphone_embeds_aligned_audio(qtbot, panel, clip):
    from studio.document.audio import read_audio

    c = panel.controller
    c.set_frame(5)
    panel.mic_factory = _FakeMic
    panel.set_source(clip)
    panel.start()
    _wait_frames(qtbot, panel, 2)
    panel.start_recording()
    qtbot.waitUntil(lambda: (panel.last_frame.recorded_frames or 0) >= 8, timeout=20_000)
    with qtbot.waitSignal(panel.takeRecorded, timeout=30_000) as sig:
        panel.stop_recording()
    take = sig.args[0]
    clips = c.project.audio_clips
    assert len(clips) == 1 and clips[0].offset == 5
    audio = read_audio(c.project.assets[clips[0].asset])
    n = take.metadata["capture"]["length_frames"]
    assert audio.duration == pytest.approx(n / FPS, abs=0.05)
    c.undo()  # take and audio are one step
    assert not c.project.audio_clips and take.id not in {t.id for t in c.project.takes}


def test_no_camera_gives_a_clear_message(qtbot, panel):
    panel._fill_sources([])  # what the probe finds on a machine without cameras
    assert panel.source_combo.currentText() == "No camera found"
    assert not panel.start()
    assert panel.status_label.text().startswith("No camera")
    panel.set_source(0)  # camera 0 explicitly: cv2 fails to open it here
    with qtbot.waitSignal(
        panel.statusChanged, timeout=10_000, check_params_cb=lambda t: t.startswith("No camera")
    ):
        panel.start()
    _wait_stopped(qtbot, panel)
    assert "not available" in panel.status_label.text()
    assert panel.start_button.text() == "Start" and not panel.record_button.isEnabled()


def test_video_ending_keeps_the_recording(qtbot, panel, clip):
    panel.pace = False
    panel.set_source(clip)
    panel.start()
    _wait_frames(qtbot, panel, 1)
    panel.start_recording()
    with qtbot.waitSignal(panel.takeRecorded, timeout=30_000) as sig:
        pass  # the 80-frame video ends by itself
    take = sig.args[0]
    assert take.metadata["capture"]["frames"] >= 20
    assert "ended" in take.metadata["capture"]["ended"]
    assert "kept" in panel.status_label.text()
    assert not panel.record_button.isChecked() and panel.session is None


def test_unplugged_camera_keeps_the_recording(qtbot, panel, clip):
    panel.set_source(lambda: _Unplugged(24))
    panel.start()
    _wait_frames(qtbot, panel, 2)
    panel.start_recording()
    with qtbot.waitSignal(panel.takeRecorded, timeout=30_000) as sig:
        pass
    take = sig.args[0]
    assert take.metadata["capture"]["frames"] >= 10
    assert "unplugged" in take.metadata["capture"]["ended"]
    assert (
        "disconnected" in panel.status_label.text().lower() or "kept" in panel.status_label.text()
    )


def test_disabling_a_region_zeroes_its_channels(qtbot, panel, clip):
    panel.smoothing_slider.setValue(0)  # no filter: the output is the measurement at once
    assert not panel.settings.smoothing
    panel.pace = False
    panel.set_source(clip)
    panel.start()
    _wait_frames(qtbot, panel, 3)
    panel.set_region_enabled("mouth", False)
    panel.set_region_enabled("head", False)
    rev = panel.settings_revision
    assert rev > 0
    qtbot.waitUntil(
        lambda: panel.last_frame.settings_rev >= rev and panel.last_frame.tracked.found,
        timeout=20_000,
    )
    v = panel.last_frame.tracked.values
    assert np.array_equal(v[MOUTH], CHANNEL_DEFAULTS[MOUTH])
    assert np.array_equal(v[HEAD], CHANNEL_DEFAULTS[HEAD])
    brows = [CHANNEL_INDEX[f"exp_{k}_{a}"] for k in (1, 2, 18) for a in "xyz"]
    assert np.abs(v[brows]).max() > 0  # the other regions still follow
    assert panel.settings.enabled["eyes"] and not panel.settings.enabled["mouth"]


def test_virtual_camera_without_pyvirtualcam_says_what_is_needed(qtbot, panel, monkeypatch):
    monkeypatch.setattr(
        live_mod, "virtualcam_missing",
        lambda: f"{live_mod.VIRTUALCAM_HELP}: pyvirtualcam is not installed",
    )  # fmt: skip
    panel.virtualcam_check.setChecked(True)
    assert not panel.virtualcam_check.isChecked()
    assert "pyvirtualcam" in panel.status_label.text()
    assert "v4l2loopback" in panel.status_label.text()


def test_hybrid_mode_is_offered(panel):
    # Hybrid mode itself is tested in test_live_hybrid.py.
    assert panel.hybrid_check.isEnabled()
    assert "lips" in panel.hybrid_check.toolTip()


def test_viewport_follows_live_values(qtbot, panel, clip):
    """A stand-in viewport gets every shown frame's values and None when live stops."""

    class _Viewport:
        gl_available = False

        def __init__(self):
            self.calls = []

        def set_live_values(self, v):
            self.calls.append(None if v is None else np.array(v))

    vp = _Viewport()
    panel.set_viewport(vp)
    panel.set_source(clip)
    panel.start()
    _wait_frames(qtbot, panel, 3)
    assert vp.calls[-1].shape == (len(CHANNELS),)
    panel.stop()
    _wait_stopped(qtbot, panel)
    assert vp.calls[-1] is None


def test_viewport_widget_live_values_hook(qtbot, monkeypatch):
    """ViewportWidget.set_live_values overrides the evaluated frame (no GL needed)."""
    from studio.demo import build_demo_project
    from studio.viewport import widget as widget_mod

    monkeypatch.setattr(widget_mod, "gl_unavailable_reason", lambda: "no GL in this test")
    c = StudioController(build_demo_project())
    vp = widget_mod.ViewportWidget(c)
    qtbot.addWidget(vp)
    vp.resize(320, 240)
    qtbot.waitUntil(lambda: vp.head_ready, timeout=30_000)
    base = vp.keypoint_positions()[0][1].copy()
    v = CHANNEL_DEFAULTS.copy()
    v[CHANNEL_INDEX["yaw"]] = 30.0
    vp.set_live_values(v)
    assert np.allclose(vp.live_values, v)
    turned = vp.keypoint_positions()[0][1]
    assert np.nanmax(np.abs(turned - base)) > 5  # pixels
    vp.set_live_values(None)
    assert vp.live_values is None
    assert np.allclose(vp.keypoint_positions()[0][1], base, equal_nan=True)
    with pytest.raises(ValueError, match="live values"):
        vp.set_live_values(np.zeros(3))


# ----------------------------------------------------------------------------- the window
@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from window_helpers import make_window

    from studio.ui import dialogs

    errors = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: errors.append(text))
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda parent, name: "discard")
    w = make_window(qtbot, tmp_path, Project.new(fps=FPS, duration_frames=50))
    w.errors = errors
    yield w
    w.shutdown()


def test_view_live_shows_the_dock(qtbot, window):
    from PySide6.QtGui import QKeySequence

    act = window.actions_by_id["show_live"]
    assert act.shortcut() == QKeySequence("Ctrl+Shift+L")
    dock = window.docks["live"]
    dock.hide()
    act.trigger()
    assert dock.isVisible() and isinstance(window.panels["live"], LivePanel)
    view_menu = next(m for m in window.menuBar().findChildren(type(window.recent_menu))
                     if m.title() == "&View")  # fmt: skip
    assert act in view_menu.actions()


def test_livelink_import_is_one_undo_step_and_export_writes_it(qtbot, window, tmp_path):
    from studio.livelink import read_livelink, write_livelink
    from studio.ui import livelink_io

    c = window.controller
    values = np.tile(CHANNEL_DEFAULTS, (60, 1))
    values[:, CHANNEL_INDEX["exp_19_y"]] = 0.06 * np.sin(np.arange(60) / 6) ** 2
    src = tmp_path / "face.csv"
    write_livelink(src, values, FPS)
    c.set_frame(20)
    takes = len(c.project.takes)
    worker = livelink_io.import_livelink_csv(window, src)
    qtbot.waitUntil(lambda: len(c.project.takes) == takes + 1, timeout=10_000)
    worker.wait()
    take = c.project.active_take
    assert take.name == "face" and take.curves["exp_19_y"].frames[0] >= 20
    assert c.project.duration == 80  # grew to cover the 60 frames from frame 20
    assert c.history.undo_label == "Import Live Link face.csv"
    out = tmp_path / "out.csv"
    assert livelink_io.export_livelink_csv(window, out)
    data = read_livelink(out)
    assert len(data) == c.project.duration  # the play range covers the project
    c.undo()
    assert len(c.project.takes) == takes and c.project.duration == 50
    # A broken file: a message, no take, no exception.
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,live link file\n1,2,3\n")
    livelink_io.import_livelink_csv(window, bad)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=10_000)
    assert len(c.project.takes) == takes


def test_build_take_job_resamples_and_aligns_the_audio():
    """Qt-free: 1 s at 30 fps -> 26 frames at 25 fps; microphone audio that started 0.5 s
    before the first frame is cut so it starts with the take."""
    from studio.capture import CaptureError
    from studio.document.audio import read_audio
    from studio.ui.live_session import Recording, build_take_job

    rec = Recording(t_start=100.0)
    for i in range(31):
        v = CHANNEL_DEFAULTS.copy()
        v[CHANNEL_INDEX["yaw"]] = 10.0 * i / 30
        rec.times.append(i / 30)
        rec.values.append(v)
    rate = 8000
    ramp = np.arange(3 * rate, dtype=np.float32)[:, None] / (3 * rate)  # value = time / 3 s
    job = build_take_job(rec, 25.0, 7, "t", (ramp, rate, 99.5))
    with pytest.raises(StopIteration) as stop:
        while True:
            next(job)
    take, wav = stop.value.value
    assert take.metadata["capture"]["length_frames"] == 26
    yaw = take.evaluate(np.arange(7, 33))[:, CHANNEL_INDEX["yaw"]]
    assert np.allclose(yaw, 10.0 * np.arange(26) / 25, atol=0.02)
    audio = read_audio(wav)
    assert audio.duration == pytest.approx(26 / 25, abs=1e-3)
    assert float(audio.samples[0, 0]) == pytest.approx(0.5 / 3, abs=1e-3)  # starts 0.5 s in
    with pytest.raises(CaptureError):
        next(build_take_job(Recording(), 25.0, 0, "empty"))


def test_a_spare_tracking_process_is_started_when_shown_and_taken_by_start(qtbot, panel, clip):
    """Shown, the panel starts a tracking child ahead of time; Start takes it over (no ~1 s
    wait for the child's imports), and shutdown closes a spare nobody took."""
    from studio.ui import live_session

    if live_session.LIVE_TRACKING != "process":
        pytest.skip("tracking runs in the capture thread by default")
    panel.show()
    panel.prewarm_tracking()
    spare = panel._spare_tracking
    assert spare is not None and spare.alive and spare.factory is panel.tracker_factory
    panel.set_source(clip)
    assert panel.start()
    _wait_frames(qtbot, panel, 4)
    assert panel._spare_tracking is None and panel.session.tracking_pid == spare.pid
    panel.stop()
    _wait_stopped(qtbot, panel)
    assert not spare.alive  # the session closed it with itself
    panel.prewarm_tracking()  # the next one, as after the session's end
    second = panel._spare_tracking
    assert second is not None and second.alive
    panel.shutdown()
    assert panel._spare_tracking is None and not second.alive
