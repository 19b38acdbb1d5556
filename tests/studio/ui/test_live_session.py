"""LiveSession's capture loop with a fake source and tracker (no face models needed)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from models.face.sources import FrameSource
from models.face.tracker import TrackedFrame, TrackerSettings
from models.motion_space import CHANNEL_DEFAULTS
from studio.ui.live_session import LiveSession, _preview

FPS = 30.0


class _Video(FrameSource):
    """A 'video file' of ``n`` frames at 30 fps (not live: the session paces it)."""

    is_live = False
    description = "fake video"

    def __init__(self, n: int):
        super().__init__()
        self.n, self.fps, self.size = n, FPS, (64, 48)

    def _frames(self):
        for i in range(self.n):
            yield i / FPS, np.full((48, 64, 3), i, np.uint8)


class _SlowTracker:
    """Takes ``delay`` seconds a frame (a busy machine); remembers the timestamps it saw."""

    def __init__(self, delay: float):
        self.settings = TrackerSettings()
        self.delay = delay
        self.seen: list[float] = []

    def process(self, frame, t):
        time.sleep(self.delay)
        self.seen.append(t)
        return TrackedFrame(t, CHANNEL_DEFAULTS.copy(), "lost")


def _run(qtbot, n: int, delay: float, record: bool) -> tuple[_SlowTracker, LiveSession]:
    tracker = _SlowTracker(delay)
    session = LiveSession(lambda: _Video(n), lambda s, p: tracker, TrackerSettings(), pace=True)
    if record:
        session.start_recording()
    with qtbot.waitSignal(session.finished, timeout=20_000):
        session.start()
    return tracker, session


def test_a_paced_video_skips_to_the_newest_frame_when_tracking_falls_behind(qtbot):
    """Tracking slower than the video: frames more than a frame late are skipped (as a camera
    drops them), so the shown pose stays close to the video instead of falling behind."""
    tracker, session = _run(qtbot, 30, 0.1, record=False)
    assert session.outcome[0] == "ended"
    assert 3 <= len(tracker.seen) < 20
    gaps = np.diff(tracker.seen)
    assert gaps.max() > 1.5 / FPS  # frames were skipped
    assert tracker.seen[-1] >= 25 / FPS  # and it kept up with the video


def test_a_recording_keeps_every_frame_of_a_paced_video(qtbot):
    tracker, session = _run(qtbot, 12, 0.06, record=True)
    assert len(tracker.seen) == 12
    rec = session.stop_recording()
    assert rec is not None and len(rec) == 12


@pytest.mark.parametrize("mirror", [False, True])
def test_preview_downscales_mirrors_and_scales_the_landmarks(mirror):
    img = np.zeros((480, 640, 3), np.uint8)
    img[:, :320] = (200, 10, 10)  # left half red
    pts = np.array([[100.0, 50.0, 0.0], [600.0, 400.0, 0.0]])
    res = SimpleNamespace(landmarks=SimpleNamespace(points=pts, iris=None))
    out, points, iris = _preview(img, res, mirror, (320, 320))
    assert out.shape == (240, 320, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    red_side = out[:, 200:] if mirror else out[:, :120]
    assert (red_side[..., 0] > 150).all()
    np.testing.assert_allclose(points, pts[:, :2] * 0.5)
    assert iris is None


def test_preview_overlay_draws_the_landmarks_into_a_copy():
    """With ``overlay`` the preview carries the mesh (dots, contours, irises) drawn in the
    capture thread; the source's own frame is never drawn into (here it is not downscaled, so
    the preview would otherwise be that very array); points that are not finite are skipped."""
    from studio.ui.live_session import FEED_CONTOURS, draw_landmarks

    img = np.full((120, 160, 3), 40, np.uint8)
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(20, 140, 468), rng.uniform(20, 100, 468), np.zeros(468)])
    iris = np.array([[[50, 60], [55, 60], [45, 60], [50, 55], [50, 65]],
                     [[110, 60], [115, 60], [105, 60], [110, 55], [110, 65]]], float)  # fmt: skip
    res = SimpleNamespace(landmarks=SimpleNamespace(points=pts, iris=iris))
    plain, _, _ = _preview(img, res, False, (320, 320))
    out, points, _ = _preview(img, res, False, (320, 320), overlay=True)
    assert (img == 40).all() and (plain == 40).all()  # nothing drawn into the source
    assert out is not img and out.shape == img.shape
    xs, ys = np.floor(points - 0.5).astype(int).T
    assert np.mean((out[ys, xs] > 100).all(axis=1)) > 0.6  # translucent white dots (most
    lip = np.array(FEED_CONTOURS[-1][0])  # not under a contour line)
    ring = out[58:63, 54:57].astype(int)  # the right iris circle passes x = 55
    assert (ring[..., 1] - ring[..., 0]).max() > 30  # green
    drawn = np.abs(out.astype(int) - 40).sum(axis=2) > 0
    bad = pts.copy()
    bad[lip] = np.nan  # a contour with a missing point is left out, the rest still drawn
    out2 = img.copy()
    draw_landmarks(out2, bad[:, :2], None)
    assert 0 < (np.abs(out2.astype(int) - 40).sum(axis=2) > 0).sum() < drawn.sum()
    for where in ([-40.0, 20.0], [200.0, 50.0], [80.0, -3.0], [80.0, 500.0]):
        out3 = img.copy()
        draw_landmarks(out3, np.tile(where, (468, 1)), None)
        assert (out3 == 40).all()  # a face off the picture: no dots pinned to its edges


def test_session_hands_over_frames_with_the_overlay_drawn(qtbot):
    """set_overlay(True): frames with a face come with the landmarks drawn into the preview
    (LiveFrame.overlay), so the feed only shows the picture."""
    pts = np.column_stack([np.linspace(5, 60, 468), np.linspace(5, 40, 468), np.zeros(468)])

    class _Tracker(_SlowTracker):
        def process(self, frame, t):
            self.seen.append(t)
            lm = SimpleNamespace(points=pts, iris=None)
            return TrackedFrame(t, CHANNEL_DEFAULTS.copy(), "tracking", 1, lm)

    tracker = _Tracker(0.0)
    session = LiveSession(lambda: _Video(6), lambda s, p: tracker, TrackerSettings(), pace=True)
    session.set_overlay(True)
    frames = []
    session.frameReady.connect(lambda: frames.append(session.take_latest()))
    with qtbot.waitSignal(session.finished, timeout=20_000):
        session.start()
    got = [f for f in frames if f is not None]
    assert got and all(f.overlay for f in got)
    f = got[-1]
    assert (f.preview != np.full_like(f.preview, f.index)).any()  # drawn into


class _PidTracker:
    """values[0] = the process it runs in; in a child, ends that process at frame ``crash_at``
    (``parent``: the studio's pid)."""

    def __init__(self, settings, parent: int, crash_at: int | None):
        self.settings, self.parent, self.crash_at = settings, parent, crash_at
        self.profile, self.calibrated, self.num_faces, self.n = None, False, 0, 0

    def process(self, frame, t):
        import os

        if os.getpid() != self.parent and self.n == self.crash_at:
            os._exit(5)
        self.n += 1
        values = CHANNEL_DEFAULTS.copy()
        values[0] = os.getpid()
        return TrackedFrame(t, values, "lost")


def pid_tracker(settings, profile, parent: int = 0, crash_at: int | None = None):
    return _PidTracker(settings, parent, crash_at)


def _run_process(qtbot, n: int, crash_at: int | None, record: bool = True):
    import functools
    import os

    factory = functools.partial(pid_tracker, parent=os.getpid(), crash_at=crash_at)
    session = LiveSession(lambda: _Video(n), factory, TrackerSettings(), pace=True,
                          tracking="process")  # fmt: skip
    frames = []
    session.frameReady.connect(lambda: frames.append(session.take_latest()))
    if record:
        session.start_recording()
    with qtbot.waitSignal(session.finished, timeout=30_000):
        session.start()
    return session, [f for f in frames if f is not None]


def test_tracking_in_a_child_process(qtbot):
    import os

    session, frames = _run_process(qtbot, 8, None)
    assert session.outcome[0] == "ended" and session.tracking == "process"
    assert frames and all(f.tracked.values[0] not in (0, os.getpid()) for f in frames)
    assert len(session.stop_recording()) == 8  # every frame recorded
    assert session.tracking_pid is None  # the child is gone with the session


def test_a_crashed_tracking_process_falls_back_to_the_thread(qtbot):
    """The child dies at its 4th frame: that frame and the rest are tracked in the capture
    thread, the status line says so, and the recording loses nothing."""
    import os

    session, frames = _run_process(qtbot, 12, 3)
    assert session.outcome[0] == "ended" and session.tracking == "thread"
    pids = [f.tracked.values[0] for f in frames]
    assert pids[0] != os.getpid() and pids[-1] == os.getpid()
    after = [f for f in frames if f.tracked.values[0] == os.getpid()]
    assert all("tracking process stopped unexpectedly" in f.status_text for f in after)
    assert "in the studio process" in after[0].status_text
    rec = session.stop_recording()
    assert len(rec) == 12 and rec.lost == 12


def test_unpicklable_factories_track_in_the_thread(qtbot):
    tracker = _SlowTracker(0.0)
    session = LiveSession(lambda: _Video(3), lambda s, p: tracker, TrackerSettings(),
                          tracking="process")  # fmt: skip
    with qtbot.waitSignal(session.finished, timeout=20_000):
        session.start()
    assert session.tracking == "thread" and len(tracker.seen) == 3
    with pytest.raises(ValueError, match="tracking must be one of"):
        LiveSession(lambda: _Video(3), lambda s, p: tracker, TrackerSettings(), tracking="gpu")
