"""Playback: frames follow the clock at the project rate, loop/stop at the play range, and no
audio device means silent playback at the same rate with one notice."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from studio.document import AudioClip, Project
from studio.ui.controller import StudioController
from studio.ui.playback import AudioOutput, PlaybackEngine, mix_project_audio


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class NoDevice(AudioOutput):
    @staticmethod
    def probe(device=None):
        return "no audio output device found"


class FakeDevice(AudioOutput):
    """Records what would play instead of opening PortAudio."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[tuple[int, int, int]] = []  # (samples, rate, start sample)

    @staticmethod
    def probe(device=None):
        return None

    def start(self, buffer, rate, start_sample):
        self.started.append((buffer.shape[0], rate, start_sample))
        self._stream = object()
        self.latency = 0.0

    def stop(self):
        self._stream = None


def _engine(qtbot, fps=25, duration=100, audio=None):
    c = StudioController(Project.new(fps=fps, duration_frames=duration))
    clock = FakeClock()
    e = PlaybackEngine(c, clock=clock, audio=audio or NoDevice())
    return c, e, clock


def test_frames_follow_the_clock_at_the_project_rate(qtbot):
    c, e, clock = _engine(qtbot, fps=25)
    c.set_frame(10)
    c.set_playing(True)
    clock.t += 0.5
    e.tick()
    assert c.frame == 10 + 12  # 0.5 s at 25 fps = 12.5 frames: frame 22 is showing
    clock.t += 0.02
    e.tick()
    assert c.frame == 23
    c.set_playing(False)
    clock.t += 5.0
    e.tick()
    assert c.frame == 23


def test_ntsc_rate(qtbot):
    c, e, clock = _engine(qtbot, fps="30000/1001", duration=1000)
    c.set_playing(True)
    clock.t += 10.0
    e.tick()
    assert c.frame == 299  # 10 s * 29.97 = 299.7


def test_loop_wraps_and_no_loop_stops_on_the_last_frame(qtbot):
    c, e, clock = _engine(qtbot, duration=100)
    c.set_play_range(20, 40)
    c.set_frame(30)
    c.set_playing(True)
    clock.t += 0.5  # 12.5 frames: 42.5 -> wraps to 22.5
    e.tick()
    assert c.playing and c.frame == 22
    c.set_loop(False)
    clock.t += 2.0
    e.tick()
    assert not c.playing and c.frame == 39


def test_playing_from_the_end_restarts_and_reverse_shuttle(qtbot):
    c, e, clock = _engine(qtbot)
    c.set_frame(99)
    c.set_playing(True)
    assert c.frame == 0  # from the last frame, play starts over
    c.set_playing(False)
    c.set_frame(50)
    c.set_play_speed(-2.0)
    c.set_playing(True)
    clock.t += 0.4  # -20 frames
    e.tick()
    assert c.frame == 30


def test_scrubbing_during_playback_reanchors(qtbot):
    c, e, clock = _engine(qtbot)
    c.set_playing(True)
    clock.t += 0.2
    e.tick()
    c.set_frame(70)  # the user drags the playhead
    clock.t += 0.2
    e.tick()
    assert c.frame == 75


def test_stop_and_return_goes_back_to_where_play_started(qtbot):
    c, e, clock = _engine(qtbot)
    c.set_frame(12)
    c.set_playing(True)
    clock.t += 1.0
    e.tick()
    assert c.frame == 37
    e.stop_and_return()
    assert not c.playing and c.frame == 12


def test_real_time_rate_within_tolerance(qtbot):
    c = StudioController(Project.new(fps=25, duration_frames=1000))
    e = PlaybackEngine(c, audio=NoDevice())
    frames = []
    c.frameChanged.connect(frames.append)
    c.set_playing(True)
    qtbot.wait(500)
    c.set_playing(False)
    # 0.5 s at 25 fps = 12.5 frames; timers on a loaded machine are late, not early.
    assert 10 <= c.frame <= 16, c.frame
    assert frames == sorted(frames)
    e.shutdown()


def _wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.2 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


def test_no_device_plays_silently_with_one_notice(qtbot, tmp_path):
    c, e, clock = _engine(qtbot)
    c.project.audio_clips.append(AudioClip.new("v", str(_wav(tmp_path / "v.wav", 1.0))))
    notices = []
    c.message.connect(lambda text, level: notices.append((level, text)))
    for _ in range(3):
        c.set_playing(True)
        clock.t += 0.4
        e.tick()
        c.set_playing(False)
    assert c.frame == 30  # three times 0.4 s at 25 fps: silent playback keeps the rate
    assert len(notices) == 1 and notices[0][0] == "warning"
    assert "no audio output device" in notices[0][1].lower()
    assert e.audio_status == "no audio output device found"


def test_audio_starts_at_the_playhead_and_missing_clips_are_reported(qtbot, tmp_path):
    dev = FakeDevice()
    c, _engine_kept_alive, _clock = _engine(qtbot, audio=dev)
    c.project.audio_clips.append(AudioClip.new("v", str(_wav(tmp_path / "v.wav", 2.0)), offset=5))
    c.project.audio_clips.append(AudioClip.new("gone", str(tmp_path / "gone.wav")))
    notices = []
    c.message.connect(lambda text, level: notices.append(text))
    c.set_frame(25)
    c.set_playing(True)
    # 8 kHz mix; the clip starts at frame 5 (0.2 s): the buffer is 2.2 s, play from 1.0 s.
    assert dev.started == [(int(2.2 * 8000), 8000, 8000)]
    assert any("gone" in n for n in notices)
    c.set_play_speed(2.0)  # no audio while shuttling faster
    assert not dev.active
    c.set_playing(False)


def test_mix_respects_gain_mute_and_offset(tmp_path):
    p = Project.new(fps=25, duration_frames=100)
    a = str(_wav(tmp_path / "a.wav", 0.5))
    p.audio_clips.append(AudioClip("1", "a", a, offset=25, gain=0.5))
    p.audio_clips.append(AudioClip("2", "b", a, offset=0, muted=True))
    mix, rate, problems = mix_project_audio(p)
    assert problems == [] and rate == 8000
    assert mix.shape == (int(1.5 * 8000), 2)
    assert np.abs(mix[:8000]).max() == 0.0
    assert np.abs(mix[8000:]).max() == pytest.approx(0.1, abs=0.01)


def test_changing_speed_while_playing_keeps_the_playhead_where_it_is(qtbot):
    c, e, clock = _engine(qtbot, fps=25)
    c.set_frame(10)
    c.set_playing(True)
    clock.t += 0.4  # 10 frames
    e.tick()
    assert c.frame == 20
    c.set_play_speed(2.0)  # L again: faster from here, not from where playback started
    assert e.position() == pytest.approx(20.0)
    clock.t += 0.2  # 5 frames of time at 2x
    e.tick()
    assert c.frame == 30
    c.set_play_speed(-1.0)
    clock.t += 0.2
    e.tick()
    assert c.frame == 25
