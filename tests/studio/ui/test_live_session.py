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
