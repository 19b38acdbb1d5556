"""Live performance capture behind the Live panel: a capture thread, microphone recording,
building the recorded take, and the virtual camera output.

:class:`LiveSession` reads a frame source and runs a ``FaceTracker`` in its own QThread. The GUI
never waits for it: the thread keeps only the newest :class:`LiveFrame` and emits
``frameReady`` when the GUI has taken the previous one, so a slow GUI skips frames and always
shows the latest. Everything that must not lose frames happens in the thread: recording (every
tracked frame with its timestamp) and calibration (the landmarks of the next N frames with a
face). The tracker is created and used in the thread only (it is not thread-safe), or runs in
a child process the thread hands each frame to (``tracking="process"``, studio.tracking_child:
there tracking does not compete with the GUI thread for the GIL); settings and
profiles from the GUI are handed over under a lock and applied before the next frame. Two hooks
run in the thread after tracking: hybrid mode (``set_hybrid``: a models.hybrid.HybridMixer puts
audio-driven lips into the tracked frame) and ``set_prepare`` (the viewport deforms its head for
the frame there, in parallel with the GUI drawing the previous one).

:func:`build_take_job` (Qt-free, for a ``studio.workers.Worker``: key reduction takes about a
second per minute of motion) turns a :class:`Recording` into a Take at the project's frame rate
(``resample_to_frames`` + ``take_from_dense``) and the microphone audio into WAV bytes aligned to
the take's first frame. :class:`MicRecorder` records through sounddevice (no input device: it
says so and recording goes on motion-only). :class:`VirtualCamera` sends RGB frames to
pyvirtualcam when it and a backend are installed.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

if TYPE_CHECKING:
    from models.face.sources import FrameSource
    from models.face.tracker import FaceTracker, PerformerProfile, TrackedFrame, TrackerSettings

__all__ = [
    "FEED_CONTOURS",
    "FEED_IRIS_COLOR",
    "LIVE_TRACKING",
    "NOTICE_S",
    "PREVIEW_MAX_SIDE",
    "TRACKING_MODES",
    "VIRTUALCAM_HELP",
    "AudioInputUnavailable",
    "LiveFrame",
    "LiveSession",
    "MicRecorder",
    "Recording",
    "VirtualCamera",
    "VirtualCameraUnavailable",
    "build_take_job",
    "describe_status",
    "draw_landmarks",
    "fps_of",
    "safe_name",
]

log = logging.getLogger(__name__)

PREVIEW_MAX_SIDE = 640  # frames are downscaled to this for display, in the capture thread
TRACKING_MODES = ("process", "thread")
# Where LiveSession runs the face tracker unless told. A child process measured better on the
# 2-core box (benchmarks/live_viewport.py --tracking, 29 interleaved pairs at load 1.5-5.7):
# presented FPS higher in 19 pairs, median latency lower in 17, p90 lower in 20; medians of
# runs at load >= 2.5: 28.3 vs 24.5 FPS, 55 vs 60 ms, p90 74 vs 113 ms. The gain is under load
# (the GUI thread no longer waits for the GIL behind tracking); on a quiet box it was not
# better (2 pairs: ~30 FPS both, 51 vs 36 ms median). Start-up is ~1 s slower (spawn, models).
LIVE_TRACKING = "process"
NOTICE_S = 10.0  # how long a frame's status text carries a notice (tracking moved, ...)
VIRTUALCAM_HELP = (
    "Virtual camera needs pyvirtualcam and a backend (v4l2loopback on Linux, OBS on Windows/macOS)"
)
# MediaPipe face-mesh contours drawn over the feed: (mesh indices, closed loop, colour).
FEED_CONTOURS: tuple[tuple[tuple[int, ...], bool, str], ...] = (
    ((10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
      152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109),
     True, "#9fb7ff"),
    ((33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246), True,
     "#5cc8ff"),
    ((263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466), True,
     "#5cc8ff"),
    ((70, 63, 105, 66, 107), False, "#f2c14e"),
    ((46, 53, 52, 65, 55), False, "#f2c14e"),
    ((300, 293, 334, 296, 336), False, "#f2c14e"),
    ((276, 283, 282, 295, 285), False, "#f2c14e"),
    ((168, 6, 197, 195, 5, 4, 1), False, "#c7a6ff"),
    ((61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185),
     True, "#ff5f7e"),
    ((78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191),
     True, "#ff5f7e"),
)  # fmt: skip
FEED_IRIS_COLOR = "#7ee08a"


# ------------------------------------------------------------------------------- data
@dataclass
class LiveFrame:
    """One processed frame as the GUI gets it.

    preview: RGB uint8 [h, w, 3], fitted into the preview box (at most PREVIEW_MAX_SIDE
    wide/high; ``LiveSession.set_preview_box``), mirrored when the tracker
    mirrors (so the overlay matches). points [468, 2] / iris [2, 5, 2]: landmarks in preview
    pixels (None without a face). t_captured / t_processed: ``time.perf_counter()`` when the
    source delivered the frame and when tracking finished. status_text: a line for the panel.
    settings_rev: the settings revision this frame was tracked with. overlay: the landmarks
    are drawn into ``preview`` already (``LiveSession.set_overlay``), so the GUI only shows it.
    """

    index: int
    timestamp: float
    preview: np.ndarray
    tracked: TrackedFrame
    points: np.ndarray | None
    iris: np.ndarray | None
    t_captured: float
    t_processed: float
    processed_fps: float
    source_fps: float
    source_size: tuple[int, int]
    status_text: str
    settings_rev: int
    recording: bool = False
    recorded_frames: int = 0
    recorded_seconds: float = 0.0
    calibrating: int = 0  # frames still to collect for calibration (0: not calibrating)
    prepared: Any = None  # what the session's ``prepare`` hook made of the values (or None)
    overlay: bool = False  # landmarks drawn into the preview (in the capture thread)


@dataclass
class Recording:
    """Tracked motion recorded in the capture thread: ``times [N]`` seconds from the first
    recorded frame, ``values [N, len(CHANNELS)]``; ``lost`` frames had no face. t_start: the
    ``perf_counter`` time of the first recorded frame (when it was captured; for a paced file,
    when it was due), to align microphone audio."""

    times: list[float] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    lost: int = 0
    t_start: float | None = None
    t0_source: float | None = None
    ended: str = ""  # why the source stopped while recording ("" if the user stopped)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def seconds(self) -> float:
        return self.times[-1] if self.times else 0.0


def describe_status(tracked: TrackedFrame, lost_for: float, settings: TrackerSettings) -> str:
    """A line for the panel from a TrackedFrame's status and how long the face has been lost."""
    status = tracked.status
    if status == "tracking":
        return "Tracking"
    if status == "frozen":
        return "Camera picture frozen: holding the last pose"
    if status in ("no_frame", "bad_frame"):
        return "Unreadable frame: holding the last pose"
    if lost_for < settings.hold_s:
        return "Face lost: holding the last pose"
    if lost_for < settings.hold_s + settings.ease_s:
        return "Face lost: easing to neutral"
    return "No face: neutral pose"


# ------------------------------------------------------------------------------- capture
class _CaptureThread(QThread):
    def __init__(self, session: LiveSession) -> None:
        super().__init__()
        self.session = session
        self.setObjectName("live-capture")

    def run(self) -> None:  # the capture thread
        self.session._run()


class LiveSession(QObject):
    """Capture + tracking in a QThread (see the module docstring).

    ``source_factory()`` opens the FrameSource and ``tracker_factory(settings, profile)`` makes
    the FaceTracker; both run in the capture thread, so a slow camera open never blocks the GUI.
    ``pace``: deliver files and image sequences at their own frame rate (as a camera would;
    when tracking falls more than a frame behind, late frames are skipped, except while
    recording); False runs them as fast as tracking goes (tests, batch).
    ``spare``: a started TrackingProcess for the same ``tracker_factory`` (not yet used, with
    no profile) that the session takes over instead of starting its own (closed if it died).
    ``tracking``: "process" runs the tracker in a child process (``studio.tracking_child``:
    its own GIL, so tracking does not wait for the GUI thread's Python work), "thread" in the
    capture thread; None: :data:`LIVE_TRACKING`. The child needs a picklable
    ``tracker_factory`` (a module-level function); with another one (a test's lambda) the
    tracker runs in the thread. A child that dies or hangs is replaced by a tracker in the
    thread and the frames' status text says so for a while.

    Signals (delivered in the GUI thread): ``frameReady()`` a frame waits in
    :meth:`take_latest`; ``calibrated(object)`` a PerformerProfile; ``calibrationFailed(str)``;
    ``finished(str, str)`` kind ("ended" | "disconnected" | "error" | "stopped") and a message,
    once the thread has ended. A session runs once.
    """

    frameReady = Signal()
    calibrated = Signal(object)
    calibrationFailed = Signal(str)
    finished = Signal(str, str)
    _threadDone = Signal(str, str)

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        tracker_factory: Callable[[TrackerSettings, PerformerProfile | None], FaceTracker],
        settings: TrackerSettings,
        profile: PerformerProfile | None = None,
        *,
        pace: bool = True,
        tracking: str | None = None,
        spare: Any = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        tracking = LIVE_TRACKING if tracking is None else tracking
        if tracking not in TRACKING_MODES:
            raise ValueError(f"tracking must be one of {TRACKING_MODES}, got {tracking!r}")
        self.tracking = tracking  # what runs it once started: "process" or "thread"
        self.tracking_pid: int | None = None  # the child's process id while it tracks
        self._source_factory = source_factory
        self._tracker_factory = tracker_factory
        # A tracking process started ahead of time (live panel: when it is shown) for this
        # tracker_factory, so Start does not wait ~1 s for the child's imports and models.
        self._spare = spare
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._settings = _copy_settings(settings)
        self._settings_rev = 0
        self._settings_pending = False
        self._profile = profile
        self._profile_pending = False
        self._calib_request: tuple[int, str] | None = None
        self._latest: LiveFrame | None = None
        self._notified = False
        self._recording: Recording | None = None
        self._hybrid: tuple[Any, Callable[[], float | None]] | None = None
        self._prepare: Callable[[np.ndarray], Any] | None = None
        self._preview_box = (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE)
        self._overlay = False
        self._pace = pace
        self._thread: _CaptureThread | None = None
        self._outcome: tuple[str, str] | None = None
        self._notice: tuple[str, float] | None = None  # (text, since) for the status line
        self.source_description = ""
        self._threadDone.connect(self._on_thread_done)

    # ------------------------------------------------------------------------ control (GUI)
    def start(self) -> None:
        """Start the capture thread. Raises RuntimeError when started twice."""
        if self._thread is not None:
            raise RuntimeError("a LiveSession runs once")
        self._thread = _CaptureThread(self)
        self._thread.start()

    def stop(self, wait_ms: int = 5000) -> bool:
        """Ask the thread to stop and wait for it (True when it ended in time). Idempotent."""
        self._stop.set()
        if self._thread is None:
            return True
        return bool(self._thread.wait(wait_ms))

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._outcome is None

    @property
    def outcome(self) -> tuple[str, str] | None:
        """(kind, message) once the thread has ended, else None."""
        return self._outcome

    def take_latest(self) -> LiveFrame | None:
        """The newest frame (None when there is none); the next frame notifies again."""
        with self._lock:
            self._notified = False
            frame, self._latest = self._latest, None
        return frame

    def set_settings(self, settings: TrackerSettings) -> int:
        """Use a copy of ``settings`` from the next frame on; returns its revision number
        (``LiveFrame.settings_rev`` tells which frames used it)."""
        with self._lock:
            self._settings = _copy_settings(settings)
            self._settings_rev += 1
            self._settings_pending = True
            return self._settings_rev

    def set_profile(self, profile: PerformerProfile | None) -> None:
        """Use ``profile`` as the neutral face (None: the next face seen is a provisional one)."""
        with self._lock:
            self._profile = profile
            self._profile_pending = True

    def request_calibration(self, frames: int, name: str = "") -> None:
        """Build a PerformerProfile from the next ``frames`` frames with a face (``calibrated``
        or ``calibrationFailed`` follows). Raises ValueError for frames < 1."""
        if frames < 1:
            raise ValueError(f"calibration needs at least 1 frame, got {frames}")
        with self._lock:
            self._calib_request = (int(frames), name)

    def set_hybrid(self, mixer: Any, origin: Callable[[], float | None] | None = None) -> None:
        """Hybrid mode from the next frame on: the tracked values' lip channels are replaced
        with ``mixer.mix(values, t_captured - origin())`` (a models.hybrid.HybridMixer;
        ``origin()``: the perf_counter time of the mixer's audio sample 0, None while unknown:
        lips neutral). ``None`` ends hybrid mode."""
        with self._lock:
            self._hybrid = None if mixer is None else (mixer, origin or (lambda: None))

    def set_prepare(self, prepare: Callable[[np.ndarray], Any] | None) -> None:
        """Call ``prepare(values)`` in the capture thread for every frame (after tracking and
        the hybrid lips) and hand the result over as ``LiveFrame.prepared``: the viewport's
        ``prepare_live`` deforms the head there, in parallel with the GUI drawing the previous
        frame. Exceptions in it are logged and give None."""
        with self._lock:
            self._prepare = prepare

    def set_preview_box(self, width: int, height: int) -> None:
        """Downscale previews (in the capture thread) to fit ``width`` x ``height`` pixels (at
        most PREVIEW_MAX_SIDE), the size the feed shows them at, so the GUI draws them 1:1."""
        w = int(min(max(width, 16), PREVIEW_MAX_SIDE))
        h = int(min(max(height, 16), PREVIEW_MAX_SIDE))
        with self._lock:
            self._preview_box = (w, h)

    def set_overlay(self, on: bool) -> None:
        """Draw the tracked landmarks (mesh points, contours, irises) into the previews, in the
        capture thread (``LiveFrame.overlay``). Painting them in the GUI thread with QPainter
        cost ~5 ms a frame holding the GIL, which the capture thread's tracking waited for
        (``draw_landmarks``: ~0.5 ms here)."""
        with self._lock:
            self._overlay = bool(on)

    def start_recording(self) -> None:
        """Record every tracked frame from the next one on (a running recording restarts)."""
        with self._lock:
            self._recording = Recording()

    def stop_recording(self) -> Recording | None:
        """End the recording and return it (None when not recording). Works after the thread
        ended too: what the source delivered before it stopped is kept."""
        with self._lock:
            rec, self._recording = self._recording, None
        return rec

    @property
    def recording(self) -> bool:
        with self._lock:
            return self._recording is not None

    # ------------------------------------------------------------------------ the thread
    def _on_thread_done(self, kind: str, message: str) -> None:  # GUI thread
        if self._thread is not None:
            self._thread.wait()
        self._outcome = (kind, message)
        self.finished.emit(kind, message)

    def _run(self) -> None:
        kind, message = "stopped", "stopped"
        try:
            kind, message = self._capture()
        except Exception as exc:  # never let an exception escape a QThread
            log.exception("live capture failed")
            kind, message = "error", f"{type(exc).__name__}: {exc}"
        with self._lock:
            if self._recording is not None and kind != "stopped":
                self._recording.ended = message
        self._threadDone.emit(kind, message)

    def _capture(self) -> tuple[str, str]:
        from models.face.sources import CameraDisconnectedError, SourceError

        with self._lock:
            settings, profile = self._settings, self._profile
            self._settings_pending = self._profile_pending = False
        child = self._start_child(settings, profile)  # builds its tracker while the source opens
        tracker = None
        try:
            try:
                source = self._source_factory()
            except SourceError as exc:
                return "error", str(exc)
            self.source_description = source.description
            try:
                if child is not None:
                    tracker = self._child_ready(child)
                    if tracker is None and self._stop.is_set():
                        return "stopped", "stopped"
                if tracker is None:
                    self.tracking = "thread"
                    try:
                        tracker = self._tracker_factory(settings, profile)
                    except (OSError, ImportError, ValueError) as exc:  # models missing
                        return "error", f"face tracking is unavailable: {exc}"
                return self._loop(source, tracker, CameraDisconnectedError, SourceError)
            finally:
                source.close()
        except _Unavailable as exc:
            return "error", f"face tracking is unavailable: {exc}"
        finally:
            if child is not None:
                child.close()
            self.tracking_pid = None

    def _start_child(self, settings, profile):
        """The tracking process, started (None when tracking runs in this thread)."""
        if self.tracking != "process":
            return None
        from studio.tracking_child import TrackingProcess, picklable

        spare, self._spare = self._spare, None
        if spare is not None and spare.alive:
            spare.settings = settings  # applied in the child before the first frame
            if profile is not None:
                spare.set_profile(profile)
            self.tracking_pid = spare.pid
            return spare
        if spare is not None:
            spare.close()
        if not picklable(self._tracker_factory):
            log.info("live tracking in the capture thread: the tracker factory is not picklable")
            self.tracking = "thread"
            return None
        child = TrackingProcess(self._tracker_factory, settings, profile)
        try:
            child.start()
        except Exception as exc:  # no processes allowed, out of resources
            log.warning("cannot start the tracking process (%s): tracking in this thread", exc)
            self.tracking = "thread"
            return None
        self.tracking_pid = child.pid
        return child

    def _child_ready(self, child):
        """``child`` once its tracker is built, or None to track in this thread (it failed to
        start). Raises _Unavailable when building the tracker failed there as it would here."""
        from studio.tracking_child import TrackingProcessError, TrackingUnavailable

        try:
            child.wait_ready(self._stop)
        except TrackingUnavailable as exc:
            raise _Unavailable(str(exc)) from None
        except TrackingProcessError as exc:
            if not self._stop.is_set():
                log.warning("%s: tracking in the capture thread", exc)
                self._notice = (f"{exc}; tracking in the studio process", time.perf_counter())
            child.close()
            return None
        return child

    def _fall_back(self, child, exc: Exception):
        """A tracker in this thread for the child that failed with ``exc`` (same settings and
        profile; its filter and crop start afresh)."""
        log.warning("%s: tracking in the capture thread from now on", exc)
        child.close()
        self.tracking, self.tracking_pid = "thread", None
        self._notice = (f"{exc}; tracking in the studio process now", time.perf_counter())
        try:
            return self._tracker_factory(child.settings, child.profile)
        except (OSError, ImportError, ValueError) as err:
            raise _Unavailable(str(err)) from None

    def _loop(self, source, tracker, disconnected_error, source_error) -> tuple[str, str]:
        from studio.tracking_child import TrackingProcessError

        it = iter(source)
        times: deque[float] = deque(maxlen=60)
        wall0: float | None = None
        ts0: float | None = None
        index = 0
        lost_since: float | None = None
        calib: list[Any] = []
        calib_seen, calib_goal, calib_name = 0, 0, ""
        rev = 0
        late_s = 1.0 / source.fps if source.fps and source.fps > 0 else 0.1
        while not self._stop.is_set():
            try:
                item = next(it)
            except StopIteration:
                what = "The video" if not source.is_live else "The source"
                return "ended", f"{what} ended ({source.description})"
            except disconnected_error as exc:
                return "disconnected", str(exc)
            except source_error as exc:
                return "error", str(exc)
            ts, frame = item
            t_due: float | None = None  # when a camera would have delivered this frame
            if self._pace and not source.is_live:
                now = time.perf_counter()
                if wall0 is None:
                    wall0, ts0 = now, ts
                t_due = wall0 + (ts - ts0)
                delay = t_due - now
                if delay > 0 and self._stop.wait(delay):
                    break
                # Behind by more than a frame (a busy machine): skip to the newest frame, as
                # a camera drops frames a slow reader does not take. Tracking every frame fell
                # further and further behind (seconds at load 5 on 2 cores) while the latency
                # readout, measured from the read, did not show it. A recording keeps every
                # frame.
                if delay < -late_s and not self.recording:
                    continue
            t_cap = time.perf_counter()
            # Hand-overs from the GUI, applied between frames.
            with self._lock:
                if self._settings_pending:
                    mirror_changed = self._settings.mirror != tracker.settings.mirror
                    tracker.settings = self._settings
                    if mirror_changed:
                        tracker.landmarker.reset()  # the crop was found in the other image
                    self._settings_pending = False
                rev = self._settings_rev
                if self._profile_pending:
                    if self._profile is None:
                        tracker.profile = None
                        tracker.calibrated = False
                        tracker.reset()
                    else:
                        tracker.set_profile(self._profile)
                    self._profile_pending = False
                calib_req = self._calib_request
                if calib_req is not None:
                    self._calib_request = None
                    calib, calib_seen = [], 0
                    calib_goal, calib_name = calib_req
            try:
                res = tracker.process(frame, ts)
            except TrackingProcessError as exc:  # died or hung: track here from now on
                tracker = self._fall_back(tracker, exc)
                res = tracker.process(frame, ts)
            with self._lock:
                hybrid = self._hybrid
            if hybrid is not None:
                mixer, origin = hybrid
                t0 = origin()
                res.values = mixer.mix(res.values, -1.0 if t0 is None else t_cap - t0)
            t_proc = time.perf_counter()
            with self._lock:
                prepare = self._prepare
            prepared = None
            if prepare is not None:
                try:
                    prepared = prepare(res.values)
                except Exception:
                    log.exception("preparing the live frame failed")
            # Calibration: landmarks of the next frames with a face.
            calibrating = 0
            if calib_req is not None or calib_seen:
                calib_seen += 1
                if res.landmarks is not None:
                    calib.append(res.landmarks)
                calibrating = max(calib_goal - len(calib), 0)
                if len(calib) >= calib_goal or calib_seen >= 4 * calib_goal:
                    self._finish_calibration(tracker, calib, calib_goal, calib_name)
                    calib, calib_seen, calibrating = [], 0, 0
            # Status.
            if res.found:
                lost_since = None
            elif lost_since is None:
                lost_since = ts
            lost_for = 0.0 if lost_since is None else ts - lost_since
            # Recording: every frame, never dropped.
            with self._lock:
                rec = self._recording
                if rec is not None:
                    if rec.t0_source is None:
                        # The take's clock is the source's: a paced file read late (a busy
                        # machine catching up) starts when its frame was due, or the
                        # microphone audio would end before the take does.
                        rec.t0_source, rec.t_start = ts, t_cap if t_due is None else t_due
                    rec.times.append(ts - rec.t0_source)
                    rec.values.append(res.values)
                    rec.lost += not res.found
                    rec_n, rec_s = len(rec.times), rec.times[-1]
                else:
                    rec_n, rec_s = 0, 0.0
            times.append(t_proc)
            fps = fps_of(times, t_proc)
            with self._lock:
                box, overlay = self._preview_box, self._overlay
            preview, points, iris = _preview(frame, res, tracker.settings.mirror, box, overlay)
            status = describe_status(res, lost_for, tracker.settings)
            if self._notice is not None:
                if t_proc - self._notice[1] < NOTICE_S:
                    status = f"{status} · {self._notice[0]}"
                else:
                    self._notice = None
            live = LiveFrame(
                index, ts, preview, res, points, iris, t_cap, t_proc, fps, float(source.fps),
                tuple(source.size), status, rev,
                rec is not None, rec_n, rec_s, calibrating, prepared,
                overlay and points is not None,
            )  # fmt: skip
            index += 1
            with self._lock:
                self._latest = live
                notify = not self._notified
                self._notified = True
            if notify:
                self.frameReady.emit()
        return "stopped", "stopped"

    def _finish_calibration(self, tracker, lms: list[Any], goal: int, name: str) -> None:
        from models.face.tracker import ProfileError

        if len(lms) < max(1, goal // 2):
            self.calibrationFailed.emit(
                f"calibration: a face was found in only {len(lms)} of {goal} frames; look at "
                "the camera and try again"
            )
            return
        try:
            profile = tracker.profile_from_landmarks(lms, name)
        except ProfileError as exc:
            self.calibrationFailed.emit(str(exc))
            return
        tracker.set_profile(profile)
        self.calibrated.emit(profile)


class _Unavailable(Exception):
    """The tracker cannot be built (models missing, no runtime): the session ends with it."""


def _copy_settings(s: TrackerSettings) -> TrackerSettings:
    from dataclasses import replace

    return replace(s, gains=dict(s.gains), enabled=dict(s.enabled))


def _preview(
    frame: np.ndarray,
    res: TrackedFrame,
    mirror: bool,
    box: tuple[int, int] = (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE),
    overlay: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The frame as shown (mirrored like the tracker saw it, at most PREVIEW_MAX_SIDE) and the
    landmarks in its pixels; ``overlay``: with the landmarks drawn into it (``draw_landmarks``;
    never into ``frame`` itself)."""
    import cv2  # loaded by the tracker already

    img = np.asarray(frame)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)  # a camera's frame: no copy
    h, w = img.shape[:2]
    f = min(1.0, box[0] / max(w, 1), box[1] / max(h, 1))
    if f < 1.0:
        # Every frame waits for this before it is handed over: INTER_AREA at a fractional
        # ratio (640 -> 200-400 px) costs 2-10 ms on a busy 2-core machine. Halving with
        # pyrDown (blurred first, so no aliasing) and bilinear for the rest (at most 2:1,
        # where it does not alias either) take ~0.5 ms. Resized before mirroring: cv2 would
        # copy a mirrored view (negative strides) first, and so did np.ascontiguousarray.
        size = (max(1, round(w * f)), max(1, round(h * f)))
        while img.shape[1] >= 2 * size[0] and img.shape[0] >= 2 * size[1]:
            img = cv2.pyrDown(img)
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    if mirror:
        img = cv2.flip(img, 1)
    lm = res.landmarks
    if lm is None:
        return img, None, None
    points = np.asarray(lm.points, dtype=np.float64)[:, :2] * f
    iris = None if lm.iris is None else np.asarray(lm.iris, dtype=np.float64) * f
    if overlay:
        if np.shares_memory(img, np.asarray(frame)):
            img = img.copy()  # the source's frame (not downscaled, not mirrored)
        draw_landmarks(img, points, iris)
    return img, points, iris


def _rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def draw_landmarks(img: np.ndarray, points: np.ndarray, iris: np.ndarray | None = None) -> None:
    """Draw the face mesh into ``img`` (RGB uint8 [H, W, 3], C-contiguous, in place): the 468
    ``points`` [468, 2] (pixels, pixel (i, j) covering [i, i+1] x [j, j+1]) as translucent
    white 2x2 dots, the ``FEED_CONTOURS`` as anti-aliased 1-pixel lines, and ``iris``
    [2, 5, 2] (centre first) as circles. Contours with a point that is not finite are left out.

    What the feed used to paint with QPainter in the GUI thread (~5 ms a frame holding the
    GIL); here, in the capture thread, ~0.5 ms: numpy for the dots (one blend, not 468 calls)
    and one cv2 call per colour (each cv2 call releases the GIL, and getting it back from a
    busy GUI thread can take milliseconds, so they are few)."""
    import cv2

    h, w = img.shape[:2]
    if h < 2 or w < 2:
        return
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    ok = np.isfinite(pts).all(axis=1)
    pix = img.reshape(h * w, -1)  # a view: img is contiguous
    # Dots: the 2x2 pixels nearest each point, 43 % white over the picture; points off the
    # picture (a face partly out of frame) get none, as QPainter clipped them.
    inside = ok & (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    x = np.clip(np.floor(pts[inside, 0] - 0.5).astype(np.intp), 0, w - 2)
    y = np.clip(np.floor(pts[inside, 1] - 0.5).astype(np.intp), 0, h - 2)
    flat = ((y * w + x)[:, None] + np.array([0, 1, w, w + 1])).ravel()  # [4n] pixel indices
    sel = pix[flat].astype(np.uint16)  # overlapping dots: the same value written twice
    pix[flat] = ((sel * 145 + 255 * 110 + 127) // 255).astype(np.uint8)
    # Lines: cv2 samples pixel centres at integers; 4 fractional bits keep sub-pixel places.
    fixed = np.round((np.nan_to_num(pts) - 0.5) * 16.0).astype(np.int32)
    lines = [(rgb, [fixed[idx] for idx in loops if ok[idx].all()]) for rgb, loops in _contours()]
    if iris is not None:
        rings = []
        for eye in np.asarray(iris, dtype=np.float64):
            if np.isfinite(eye).all():
                r = max(float(np.mean(np.linalg.norm(eye[1:] - eye[0], axis=1))), 1.0)
                ring = eye[0] + r * _UNIT_CIRCLE
                rings.append(np.round((ring - 0.5) * 16.0).astype(np.int32))
        lines.append((_rgb(FEED_IRIS_COLOR), rings))
    for rgb, polys in lines:
        if polys:
            cv2.polylines(img, polys, False, rgb, 1, cv2.LINE_AA, 4)


_UNIT_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 33)),
                         np.sin(np.linspace(0, 2 * np.pi, 33))], axis=1)  # fmt: skip


@functools.cache
def _contours() -> list[tuple[tuple[int, int, int], list[np.ndarray]]]:
    """FEED_CONTOURS by colour, as index arrays of open polylines (closed loops repeat their
    first point), so each colour is one cv2 call."""
    groups: dict[str, list[np.ndarray]] = {}
    for idx, closed, color in FEED_CONTOURS:
        loop = (*idx, idx[0]) if closed else idx
        groups.setdefault(color, []).append(np.array(loop, dtype=np.intp))
    return [(_rgb(color), loops) for color, loops in groups.items()]


# ------------------------------------------------------------------------------- the take
def build_take_job(
    recording: Recording,
    fps: float,
    start_frame: int,
    name: str,
    audio: tuple[np.ndarray, int, float] | None = None,
    metadata: dict[str, Any] | None = None,
    lips: tuple[Any, float] | None = None,
):
    """Qt-free job: a recorded take at ``fps`` starting at ``start_frame``, and the microphone
    audio as WAV bytes trimmed/padded so its first sample is the take's first frame.

    ``audio``: (samples [S, C] float32, sample rate, perf_counter time of the first sample).
    ``lips``: hybrid mode, (mixer, offset): a models.hybrid.HybridMixer (or a callable making
    one here, in the job, e.g. from the recorded microphone audio) and the audio time of the
    first recorded frame; the take's lip channels are the mixer's at ``offset + times``.

    Returns (take, wav_bytes | None). Raises CaptureError when nothing (or no face) was recorded.
    """
    from studio.capture import CaptureError, resample_to_frames
    from studio.project_ops import take_from_dense

    n = len(recording)
    if n == 0:
        raise CaptureError("nothing was recorded (no frame arrived while recording)")
    if recording.lost == n:
        raise CaptureError(f"no face was found in the {n} recorded frames")
    values = np.asarray(recording.values)
    if lips is not None:
        yield "generating the lips from the audio"
        mixer, offset = lips
        if not hasattr(mixer, "mix"):
            mixer = mixer()
        values = mixer.mix(values, offset + np.asarray(recording.times))
    yield f"resampling {n} frames to {fps:g} fps"
    dense = resample_to_frames(np.asarray(recording.times), values, fps)
    yield f"keying {len(dense)} frames"
    take = take_from_dense(dense, name, "recorded", start_frame=start_frame)
    take.metadata["capture"] = {
        "frames": n,
        "start_frame": int(start_frame),
        "length_frames": len(dense),
        "frames_without_face": recording.lost,
        "ended": recording.ended or "stopped",
        **(metadata or {}),
    }
    wav = None
    if audio is not None and recording.t_start is not None:
        yield "encoding the microphone audio"
        samples, rate, t_audio = audio
        wav = _aligned_wav(samples, rate, recording.t_start - t_audio, len(dense) / fps)
    return take, wav


def _aligned_wav(samples: np.ndarray, rate: int, offset_s: float, length_s: float) -> bytes | None:
    """WAV (16-bit) of ``samples [S, C]`` starting ``offset_s`` seconds in (negative: silence
    first), cut to ``length_s``. None when nothing is left."""
    import soundfile as sf

    a = np.asarray(samples, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    skip = round(offset_s * rate)
    if skip >= 0:
        a = a[skip:]
    else:
        a = np.concatenate([np.zeros((-skip, a.shape[1]), np.float32), a])
    a = a[: max(round(length_s * rate), 0)]
    if len(a) == 0:
        return None
    buf = io.BytesIO()
    sf.write(buf, a, int(rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ------------------------------------------------------------------------------- microphone
class AudioInputUnavailable(RuntimeError):
    """No microphone could be opened (the message says why)."""


class MicRecorder:
    """Records the default (or ``device``) input through sounddevice, mono, in a PortAudio
    callback. ``start()`` raises AudioInputUnavailable; ``stop()`` returns
    (samples [S, 1] float32, rate, perf_counter time of the first sample)."""

    def __init__(
        self,
        device: str | int | None = None,
        rate: int = 48_000,
        on_audio: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        self.device = device if device not in ("", None) else None
        self.on_audio = on_audio  # called with each block [n] in the PortAudio thread
        self.rate = int(rate)
        self._stream = None
        self._chunks: list[np.ndarray] = []
        self._t0: float | None = None
        self._lock = threading.Lock()

    @staticmethod
    def probe(device: str | int | None = None) -> str | None:
        """None when an input device exists, else a one-line reason."""
        try:
            import sounddevice as sd
        except OSError as exc:
            return f"PortAudio is not available ({exc})"
        except ImportError:
            return "the sounddevice package is not installed"
        try:
            devices = sd.query_devices()
        except Exception as exc:  # PortAudioError
            return f"cannot list audio devices ({exc})"
        if not any(d.get("max_input_channels", 0) > 0 for d in devices):
            return "no microphone (audio input device) found"
        return None

    def start(self) -> None:
        reason = self.probe(self.device)
        if reason is not None:
            raise AudioInputUnavailable(reason)
        import sounddevice as sd

        self._chunks, self._t0 = [], None

        def callback(indata, frames, _time, _status) -> None:  # PortAudio thread
            now = time.perf_counter()
            with self._lock:
                if self._t0 is None:
                    # The first block ends now: its first sample is one block earlier.
                    self._t0 = now - frames / self.rate
                self._chunks.append(indata.copy())
            if self.on_audio is not None:
                try:
                    self.on_audio(indata[:, 0].copy())
                except Exception:  # a consumer's bug must not kill the audio stream
                    log.exception("microphone consumer failed")

        try:
            try:
                rate = int(sd.query_devices(self.device, "input")["default_samplerate"])
            except Exception:
                rate = self.rate
            self.rate = rate or self.rate
            stream = sd.InputStream(samplerate=self.rate, channels=1, dtype="float32",
                                    device=self.device, callback=callback)  # fmt: skip
            stream.start()
        except Exception as exc:  # PortAudioError, ValueError for a bad device
            raise AudioInputUnavailable(f"the microphone did not open ({exc})") from None
        self._stream = stream

    @property
    def t0(self) -> float | None:
        """perf_counter time of the first sample (None before the first block)."""
        with self._lock:
            return self._t0

    def snapshot(self) -> tuple[np.ndarray, int, float] | None:
        """What has been recorded so far, as ``stop()`` returns it, without stopping."""
        with self._lock:
            chunks, t0 = list(self._chunks), self._t0
        if not chunks or t0 is None:
            return None
        return np.concatenate(chunks).astype(np.float32), self.rate, t0

    def stop(self) -> tuple[np.ndarray, int, float] | None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # unplugged while recording: keep what arrived
                log.exception("closing the microphone failed")
        with self._lock:
            chunks, t0 = self._chunks, self._t0
            self._chunks, self._t0 = [], None
        if not chunks or t0 is None:
            return None
        return np.concatenate(chunks).astype(np.float32), self.rate, t0


# ------------------------------------------------------------------------------- virtual camera
class VirtualCameraUnavailable(RuntimeError):
    """pyvirtualcam is missing or found no backend (the message says what to install)."""


class VirtualCamera:
    """pyvirtualcam output of ``width`` x ``height`` RGB frames at ``fps``.

    Raises VirtualCameraUnavailable (with VIRTUALCAM_HELP) when pyvirtualcam is not installed or
    no backend opens. ``send(rgb)`` resizes frames of another size.
    """

    def __init__(self, width: int, height: int, fps: float = 30.0) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise VirtualCameraUnavailable(
                f"{VIRTUALCAM_HELP}: pyvirtualcam is not installed "
                "(pip install talking-head-studio[virtualcam])"
            ) from None
        # Even sizes: most backends want them (YUV formats).
        self.width, self.height = max(2, width // 2 * 2), max(2, height // 2 * 2)
        try:
            self._cam = pyvirtualcam.Camera(self.width, self.height, float(fps),
                                            fmt=pyvirtualcam.PixelFormat.RGB)  # fmt: skip
        except Exception as exc:  # RuntimeError when no backend is installed or running
            raise VirtualCameraUnavailable(f"{VIRTUALCAM_HELP}: {exc}") from None
        self.device = str(getattr(self._cam, "device", ""))
        self.frames_sent = 0

    def send(self, rgb: np.ndarray) -> None:
        a = np.asarray(rgb)
        if a.shape[:2] != (self.height, self.width):
            import cv2

            a = cv2.resize(a, (self.width, self.height), interpolation=cv2.INTER_AREA)
        self._cam.send(np.ascontiguousarray(a[:, :, :3], dtype=np.uint8))
        self.frames_sent += 1

    def close(self) -> None:
        cam, self._cam = getattr(self, "_cam", None), None
        if cam is not None:
            try:
                cam.close()
            except Exception:
                log.exception("closing the virtual camera failed")


def fps_of(times: deque[float] | list[float], now: float, window: float = 2.0) -> float:
    """Events per second over the last ``window`` seconds of ``times`` (perf_counter); 0 with
    fewer than two events in the window."""
    recent = [t for t in times if now - t <= window]
    if len(recent) < 2:
        return 0.0
    span = recent[-1] - recent[0]
    return (len(recent) - 1) / span if span > 0 else 0.0


def safe_name(name: str) -> str:
    """A file-name-safe form of a performer name ("performer" when empty)."""
    out = "".join(ch if ch.isalnum() or ch in "-_ " else "_" for ch in name).strip()
    return out.replace(" ", "_")[:64] or "performer"
