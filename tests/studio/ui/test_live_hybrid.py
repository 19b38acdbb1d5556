"""The Live panel's hybrid mode (offscreen): a drawn-face video drives the head while the
project's audio drives the lips, live and in the recorded take."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from models.face.testface import draw_face
from models.hybrid import LIP_CHANNELS
from models.motion_space import CHANNEL_INDEX as CI
from studio.document import AudioClip, Project
from studio.ui.controller import StudioController
from studio.ui.live_panel import LivePanel
from studio.ui.live_session import AudioInputUnavailable

FPS = 25
W, H = 320, 240
# 6 s: the session plays the clip in real time and skips frames it falls behind on (before a
# recording starts), so a busy machine must still leave the recordings below enough of it.
N = 150
SR = 16_000


def recorded_frames(panel) -> int:
    """Frames recorded so far, 0 before the first live frame arrives (a tracking child process
    takes ~1 s to deliver it)."""
    frame = panel.last_frame
    return 0 if frame is None else (frame.recorded_frames or 0)


def _video_mouth(i: int) -> float:
    return 0.5 + 0.5 * np.sin(2 * np.pi * i / 12.5)


def _video_roll(i: int) -> float:
    return 8.0 * np.sin(2 * np.pi * i / 75)


def _gate(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(SR * seconds)) / SR
    gate = (np.sin(2 * np.pi * 1.25 * t - 0.5) > 0.0).astype(np.float64)
    buzz = sum(np.sin(2 * np.pi * 130 * h * t) / h for h in range(1, 25))
    return (0.3 * buzz * gate).astype(np.float32), gate[:: SR // FPS]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face_models) -> Path:
    import av

    path = tmp_path_factory.mktemp("live_hybrid") / "face.mp4"
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        st.options = {"preset": "ultrafast", "crf": "16"}
        for i in range(N):
            img = draw_face(W, H, mouth_open=_video_mouth(i), roll=_video_roll(i), seed=i).image
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


@pytest.fixture
def panel(qtbot, tmp_path):
    import soundfile as sf

    project = Project.new(fps=FPS, duration_frames=200)
    audio, _ = _gate(8.0)
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format="WAV", subtype="PCM_16")
    project.assets["audio/speech.wav"] = buf.getvalue()
    project.audio_clips.append(AudioClip.new("speech", "audio/speech.wav", offset=0))
    c = StudioController(project)
    p = LivePanel(c)
    p.profiles_path = tmp_path / "performers"
    p.mic_factory = _NoMic
    p._cameras_probed = True
    p.lips_model = "procedural"
    p.hybrid_audio = "project"
    qtbot.addWidget(p)
    yield p
    p.shutdown()


def test_hybrid_checkbox_is_enabled_and_needs_audio(qtbot, clip, tmp_path):
    c = StudioController(Project.new(fps=FPS, duration_frames=50))
    p = LivePanel(c)
    qtbot.addWidget(p)
    p.mic_factory, p._cameras_probed, p.hybrid_audio = _NoMic, True, "project"
    try:
        assert p.hybrid_check.isEnabled()
        assert p.set_hybrid(True)  # not running: applies from Start
        p.set_source(clip)
        p.start()
        # No microphone and no project audio: hybrid switches itself off and says why.
        assert not p.hybrid_check.isChecked() and p.hybrid is None
        assert "needs a microphone or project audio" in p.status_label.text()
    finally:
        p.shutdown()


def test_hybrid_live_and_recorded_lips_follow_the_project_audio(qtbot, panel, clip):
    c = panel.controller
    c.set_frame(5)
    panel.set_source(clip)
    panel.set_hybrid(True)
    panel.start()
    assert panel.hybrid is not None and panel.hybrid.kind == "project"
    qtbot.waitUntil(lambda: panel.frames_shown >= 3, timeout=20_000)
    assert panel.hybrid.mixer.wait(10.0)
    assert panel.start_recording()
    qtbot.waitUntil(lambda: recorded_frames(panel) >= 50, timeout=30_000)
    # Live: the shown lips are the mixer's (the procedural lips move only the jaw, lower and
    # upper lip in y and the corners in x; the tracker would move the others too).
    lips = panel.last_frame.tracked.values[[CI[ch] for ch in LIP_CHANNELS]]
    assert lips[LIP_CHANNELS.index("exp_12_y")] == 0.0
    with qtbot.waitSignal(panel.takeRecorded, timeout=60_000) as sig:
        panel.stop_recording()
    take = sig.args[0]
    cap = take.metadata["capture"]
    assert cap["lips"] == "audio (project)" and cap["start_frame"] == 5
    n = cap["length_frames"]
    frames = 5 + np.arange(n)
    values = take.evaluate(frames)
    _, gate = _gate(8.0)
    jaw = values[:, CI["exp_19_y"]]
    # The take's lips are the project audio's from the take's first frame...
    assert np.corrcoef(jaw, gate[5 : 5 + n])[0, 1] > 0.7
    # ...while the head follows the video.
    assert np.ptp(values[:, CI["roll"]]) > 5.0
    # Switching off ends hybrid mode; the session runs on.
    panel.set_hybrid(False)
    assert panel.hybrid is None and panel.running


class _FakeMicRecorder:
    """A microphone that streams the syllables from a thread in 20 ms blocks (the
    PortAudio callback), as MicRecorder does: on_audio per block, t0, snapshot(), stop()."""

    rate = 16_000

    def __init__(self, *args, **kwargs):
        self.on_audio = kwargs.get("on_audio")
        self.t0 = None
        self._chunks: list[np.ndarray] = []
        self._stop = None

    @staticmethod
    def probe(device=None):
        return None

    def start(self):
        import threading
        import time

        audio, _ = _gate(30.0)
        self._stop = threading.Event()

        def run():
            block = self.rate // 50
            t_start = time.perf_counter()
            for i in range(0, len(audio), block):
                if self._stop.wait(max(0.0, t_start + i / self.rate - time.perf_counter())):
                    return
                if self.t0 is None:
                    self.t0 = t_start
                chunk = audio[i : i + block]
                self._chunks.append(chunk[:, None])
                if self.on_audio is not None:
                    self.on_audio(chunk)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def snapshot(self):
        if not self._chunks:
            return None
        return np.concatenate(self._chunks).astype(np.float32), self.rate, self.t0

    def stop(self):
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
        return self.snapshot()


def test_hybrid_from_the_microphone(qtbot, panel, clip, monkeypatch):
    from studio.ui import live_panel as live_mod

    monkeypatch.setattr(live_mod, "MicRecorder", _FakeMicRecorder)
    panel.hybrid_audio = "auto"
    panel.set_source(clip)
    panel.set_hybrid(True)
    panel.start()
    assert panel.hybrid is not None and panel.hybrid.kind == "microphone"
    qtbot.waitUntil(lambda: panel.hybrid.mixer.frames >= 5, timeout=20_000)  # lips streaming
    assert panel.start_recording()
    qtbot.waitUntil(lambda: recorded_frames(panel) >= 40, timeout=30_000)
    with qtbot.waitSignal(panel.takeRecorded, timeout=60_000) as sig:
        panel.stop_recording()
    take = sig.args[0]
    cap = take.metadata["capture"]
    assert cap["lips"] == "audio (microphone)" and cap["audio"] == "microphone"
    # The microphone's audio is the take's clip, and the take's lips follow it.
    clips = [c for c in panel.controller.project.audio_clips if "(mic)" in c.name]
    assert len(clips) == 1 and clips[0].offset == cap["start_frame"]
    n = cap["length_frames"]
    values = take.evaluate(cap["start_frame"] + np.arange(n))
    from studio.document.audio import read_audio

    wav = read_audio(panel.controller.project.assets[clips[0].asset])
    from models.procedural import audio_envelope

    env, _ = audio_envelope(wav.samples[:, 0], wav.sample_rate, FPS, n)
    assert np.corrcoef(values[:, CI["exp_19_y"]], env)[0, 1] > 0.6
    panel.stop()
    qtbot.waitUntil(lambda: panel.session is None, timeout=20_000)
    assert panel.hybrid is None  # the microphone is closed with the session
