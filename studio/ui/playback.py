"""Playback: a clock-driven frame timer in step with the project's audio.

The frame shown is computed from a clock, never counted from timer ticks, so playback runs at
the project's frame rate whatever the timer jitter or the cost of drawing a frame (slow frames
are skipped, not slowed down). Audio plays through sounddevice from the playhead; with no output
device (or no PortAudio), playback runs silently at the same rate and says so once.

The controller is the single source of play state: :class:`PlaybackEngine` starts when
``controller.playingChanged(True)`` and follows ``play_speed``, ``loop`` and ``play_range``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from studio.document import Project
from studio.ui.controller import StudioController

__all__ = ["AudioOutput", "AudioUnavailable", "PlaybackEngine", "mix_project_audio"]

log = logging.getLogger(__name__)


class AudioUnavailable(RuntimeError):
    """No audio output: PortAudio missing, no output device, or the device refused to open."""


def mix_project_audio(
    project: Project, channels: int = 2
) -> tuple[np.ndarray | None, int, list[str]]:
    """Mix the project's unmuted audio clips onto the timeline from frame 0.

    Returns ``(samples [S, channels] float32 or None if there is no audio, sample_rate,
    problems)``; ``problems`` are one-line messages for clips that could not be read (missing
    or unreadable files): those clips are left out, the rest still plays.
    The mix rate is the first readable clip's rate; other clips are resampled to it.
    """
    from studio.audio_mix import mix_clips, read_clips

    problems: list[str] = []
    clips = read_clips(
        project,
        lambda clip, exc: problems.append(f"audio clip {clip.name!r} cannot be played: {exc}"),
    )
    if not clips:
        return None, 48000, problems
    rate = clips[0].sample_rate
    return mix_clips(clips, project.frame_rate, rate, channels=channels), rate, problems


# The output's buffer. The callback is Python: it runs only when it gets the GIL, which the
# GUI thread holds through paints and GL calls of 20+ ms on a software GL, so with PortAudio's
# "low" latency the device ran dry 7-8 times in 30 s of playback in the studio window, against
# once with "high" (PulseAudio null sink, 2 cores, benchmarks/playback.py --audio-latency). The
# picture is delayed by the stream's latency (PlaybackEngine), so sync is kept; only the start
# of playback waits that long.
AUDIO_LATENCY = "high"


class AudioOutput:
    """A sounddevice output stream playing a buffer from a position. Thread-safe start/stop.

    ``device``: a sounddevice device name or index, None for the system default.
    """

    def __init__(self, device: str | int | None = None) -> None:
        self.device = device
        self._stream = None
        self._lock = threading.Lock()
        self._buffer: np.ndarray | None = None
        self._pos = 0
        self.latency = 0.0

    @staticmethod
    def probe(device: str | int | None = None) -> str | None:
        """None if an output device is available, else a one-line reason."""
        try:
            import sounddevice as sd
        except OSError as exc:  # libportaudio2 is not installed
            return f"PortAudio is not available ({exc})"
        except ImportError:
            return "the sounddevice package is not installed"
        try:
            devices = sd.query_devices()
        except Exception as exc:  # PortAudioError and friends
            return f"cannot list audio devices ({exc})"
        outputs = [d for d in devices if d.get("max_output_channels", 0) > 0]
        if not outputs:
            return "no audio output device found"
        if device not in (None, ""):
            names = [d.get("name") for d in outputs]
            if isinstance(device, str) and device not in names:
                return f"audio device {device!r} is not connected"
        return None

    @staticmethod
    def output_devices() -> list[str]:
        """Names of the output devices (empty without PortAudio or devices)."""
        try:
            import sounddevice as sd

            return [d["name"] for d in sd.query_devices() if d.get("max_output_channels", 0) > 0]
        except Exception:
            return []

    def start(self, buffer: np.ndarray, rate: int, start_sample: int) -> None:
        """Play ``buffer [S, C]`` from ``start_sample``. Raises AudioUnavailable."""
        self.stop()
        reason = self.probe(self.device)
        if reason is not None:
            raise AudioUnavailable(reason)
        import sounddevice as sd

        with self._lock:
            self._buffer = buffer
            self._pos = max(0, int(start_sample))

        def callback(outdata, frames, _time, _status) -> None:  # PortAudio thread
            with self._lock:
                buf, pos = self._buffer, self._pos
                self._pos = pos + frames
            outdata.fill(0)
            if buf is not None and pos < buf.shape[0]:
                chunk = buf[pos : pos + frames]
                outdata[: chunk.shape[0]] = chunk

        try:
            stream = sd.OutputStream(
                samplerate=rate,
                channels=buffer.shape[1],
                dtype="float32",
                device=self.device if self.device not in ("", None) else None,
                callback=callback,
                latency=AUDIO_LATENCY,
            )
            stream.start()
        except Exception as exc:  # PortAudioError, ValueError for bad devices
            raise AudioUnavailable(f"the audio device did not open ({exc})") from None
        self._stream = stream
        lat = stream.latency
        self.latency = float(lat if np.isscalar(lat) else lat[0])

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # a device unplugged while playing
                log.exception("closing the audio stream failed")

    @property
    def active(self) -> bool:
        return self._stream is not None


class PlaybackEngine(QObject):
    """Advances ``controller.frame`` while ``controller.playing``.

    ``clock``: seconds on a monotonic clock (tests pass a fake one). The frame at time t is
    ``f0 + (t - t0) * fps * speed`` from the anchor (f0, t0) set at start, on seeks, speed
    changes and loops. Within the play range [start, end): forwards past the end it wraps to
    start (loop) or stops on the last frame; backwards likewise at the start.

    Signals: ``audioStatusChanged(str)``: "" when audio plays or is idle, else the reason it
    is silent.
    """

    audioStatusChanged = Signal(str)

    def __init__(
        self,
        controller: StudioController,
        clock: Callable[[], float] = time.monotonic,
        audio: AudioOutput | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.clock = clock
        self.audio = audio if audio is not None else AudioOutput()
        self.muted = False
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.tick)
        self._f0 = 0.0
        self._t0 = 0.0
        self._speed0 = 1.0  # the speed since the anchor (the controller's may be newer)
        self._start_frame = 0
        self._moving = False  # True while the engine itself moves the playhead
        self._mix_key: object = None
        self._mix: tuple[np.ndarray | None, int] = (None, 48000)
        self._warned: set[str] = set()
        self._probe_cache: tuple[float, str | None] | None = None
        self.audio_status = ""
        controller.playingChanged.connect(self._on_playing)
        controller.frameChanged.connect(self._on_frame)
        controller.playSpeedChanged.connect(self._on_speed)
        controller.projectReplaced.connect(self._on_project)
        controller.documentChanged.connect(self._on_document)

    # --------------------------------------------------------------------------- queries
    @property
    def fps(self) -> float:
        return self.controller.project.frame_rate.fps

    @property
    def start_frame(self) -> int:
        """Where the current playback started (Esc returns there)."""
        return self._start_frame

    def position(self) -> float:
        """The fractional frame playback is at now (the anchor when stopped)."""
        if not self.controller.playing:
            return float(self.controller.frame)
        return self._f0 + (self.clock() - self._t0) * self.fps * self._speed0

    # --------------------------------------------------------------------------- control
    def set_muted(self, muted: bool) -> None:
        self.muted = bool(muted)
        if self.controller.playing:
            self._restart_audio()

    def set_device(self, device: str | None) -> None:
        """Use another output device (None or "": the system default)."""
        self.audio.stop()
        self.audio.device = device or None
        self._warned.discard("device")
        self._probe_cache = None
        if self.controller.playing:
            self._restart_audio()

    def stop_and_return(self) -> None:
        """Stop, and put the playhead back where playback started (Esc)."""
        if self.controller.playing:
            back = self._start_frame
            self.controller.set_playing(False)
            self.controller.set_frame(back)

    def shutdown(self) -> None:
        self._timer.stop()
        self.audio.stop()

    # ------------------------------------------------------------------------- internals
    def _anchor(self, frame: float) -> None:
        self._f0 = float(frame)
        self._t0 = self.clock()
        self._speed0 = self.controller.play_speed
        self._restart_audio()

    def _on_playing(self, playing: bool) -> None:
        if playing:
            start, end = self.controller.play_range
            f = self.controller.frame
            forward = self.controller.play_speed > 0
            # Playing from outside the range, or from its last frame, starts it over.
            if not start <= f < end or (forward and f >= end - 1) or (not forward and f <= start):
                f = start if forward else end - 1
                self._move(f)
            self._start_frame = self.controller.frame
            self._anchor(f)
            self._timer.start(max(4, int(500.0 / max(self.fps, 1.0))))
        else:
            self._timer.stop()
            self.audio.stop()

    def _on_frame(self, frame: int) -> None:
        if self.controller.playing and not self._moving:
            self._anchor(frame)  # the user scrubbed during playback

    def _on_speed(self, _speed: float) -> None:
        if self.controller.playing:
            # From where the old speed got to: position() still uses it until re-anchored.
            self._anchor(self.position())

    def _on_project(self) -> None:
        self._mix_key = None
        if self.controller.playing:
            self.controller.set_playing(False)

    def _on_document(self, kind: str, _detail: dict) -> None:
        if kind in ("audio", "assets", "settings"):
            self._mix_key = None
            if self.controller.playing:
                self._anchor(self.position())

    def _move(self, frame: int) -> None:
        self._moving = True
        try:
            self.controller.set_frame(frame)
        finally:
            self._moving = False

    def tick(self) -> None:
        """Show the frame for the current time (the timer calls this; tests may too)."""
        c = self.controller
        if not c.playing:
            return
        start, end = c.play_range
        f = self.position()
        speed = self._speed0
        length = end - start
        if speed > 0 and f >= end:
            if c.loop and length > 0:
                f = start + math.fmod(f - end, length)
                self._f0, self._t0 = f, self.clock()
                self._move(math.floor(f))
                self._restart_audio()
                return
            self._move(end - 1)
            c.set_playing(False)
            return
        if speed < 0 and f < start:
            if c.loop and length > 0:
                f = end - math.fmod(start - f, length)
                self._f0, self._t0 = f, self.clock()
                self._move(min(math.floor(f), end - 1))
                return
            self._move(start)
            c.set_playing(False)
            return
        # The epsilon absorbs clock subtraction error (0.52 s * 25 must be frame 13, not 12).
        self._move(math.floor(f + 1e-6))

    # ----------------------------------------------------------------------------- audio
    def _set_status(self, text: str) -> None:
        if text != self.audio_status:
            self.audio_status = text
            self.audioStatusChanged.emit(text)

    def _notice(self, key: str, text: str, level: str = "warning") -> None:
        """Say ``text`` once per session and key (not on every loop)."""
        if key not in self._warned:
            self._warned.add(key)
            self.controller.notify(text, level)

    def _probe(self) -> str | None:
        """AudioOutput.probe, cached for a few seconds: loops and scrubs re-anchor often."""
        now = time.monotonic()
        if self._probe_cache is None or now - self._probe_cache[0] > 5.0:
            self._probe_cache = (now, self.audio.probe(self.audio.device))
        return self._probe_cache[1]

    def _current_mix(self) -> tuple[np.ndarray | None, int]:
        project = self.controller.project
        key = (
            tuple(project.audio_clips),
            project.frame_rate,
            tuple(id(project.assets.get(c.asset)) for c in project.audio_clips),
        )
        if key != self._mix_key:
            mix, rate, problems = mix_project_audio(project)
            for p in problems:
                self._notice(f"clip:{p}", p.capitalize(), "warning")
            self._mix, self._mix_key = (mix, rate), key
        return self._mix

    def _restart_audio(self) -> None:
        self.audio.stop()
        c = self.controller
        if not c.playing or self.muted or c.play_speed != 1.0:
            self._set_status("muted" if self.muted else "")
            return
        if not c.project.audio_clips:
            self._set_status("")
            return
        reason = self._probe()
        if reason is not None:
            self._set_status(reason)
            self._notice("device", f"No sound: {reason}. Playing silently at the project rate.")
            return
        mix, rate = self._current_mix()
        if mix is None:
            self._set_status("no playable audio")
            return
        start = round(float(c.project.frame_rate.seconds(self._f0)) * rate)
        if start >= mix.shape[0]:
            self._set_status("")
            return
        try:
            self.audio.start(mix, rate, start)
        except AudioUnavailable as exc:
            self._set_status(str(exc))
            self._notice("device", f"No sound: {exc}. Playing silently at the project rate.")
            return
        # The picture waits for the sound to come out of the speakers.
        self._t0 += self.audio.latency
        self._set_status("")
