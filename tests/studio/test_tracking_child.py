"""studio.tracking_child: a FaceTracker in a spawned process, with fake trackers (no face
models needed) and, where the models are installed, the real one against itself in-process."""

from __future__ import annotations

import functools
import os
import time

import numpy as np
import pytest

from models.face.tracker import TrackedFrame, TrackerSettings
from models.motion_space import CHANNEL_DEFAULTS
from studio.tracking_child import (
    TrackingProcess,
    TrackingProcessError,
    TrackingUnavailable,
    picklable,
)


class _Landmarker:
    def __init__(self, log: list):
        self.log = log

    def reset(self) -> None:
        self.log.append("landmarker.reset")


class FakeTracker:
    """values[0] = the frame's mean, values[1] = its height; the status says what it did last.
    A frame whose first pixel is 255 ends the process, 254 hangs it, 253 raises."""

    def __init__(self, settings, profile):
        self.settings, self.profile = settings, profile
        self.calibrated = profile is not None
        self.num_faces = 0
        self.log: list = []
        self.landmarker = _Landmarker(self.log)

    def set_profile(self, profile) -> None:
        self.log.append(("set_profile", profile))
        self.profile, self.calibrated = profile, True

    def reset(self) -> None:
        self.log.append("reset")

    def process(self, frame, t):
        if frame is None:
            return TrackedFrame(t, CHANNEL_DEFAULTS.copy(), "no_frame")
        a = np.asarray(frame)
        first = int(a.flat[0])
        if first == 255:
            os._exit(3)
        if first == 254:
            time.sleep(60)
        if first == 253:
            raise ValueError("tracker bug")
        values = CHANNEL_DEFAULTS.copy()
        values[0], values[1] = float(a.mean()), float(a.shape[0])
        self.num_faces = 2
        lm = {"mirror": self.settings.mirror, "log": list(self.log), "pid": os.getpid()}
        self.log.clear()
        return TrackedFrame(t, values, "tracking", 2, lm, values.copy(), 1.0)


def fake_factory(settings, profile):
    return FakeTracker(settings, profile)


def unavailable_factory(settings, profile):
    raise OSError("face models not installed")


@pytest.fixture
def child():
    tp = TrackingProcess(fake_factory, TrackerSettings(), None, frame_timeout=1.0)
    tp.start()
    tp.wait_ready()
    yield tp
    tp.close()


def test_frames_go_through_shared_memory_and_results_come_back(child):
    assert child.pid != os.getpid()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(48, 64), (480, 640), (720, 1280), (48, 64)]):  # grows a slot
        frame = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
        res = child.process(frame, i / 30)
        assert res.found and res.timestamp == i / 30 and res.num_faces == 2
        assert res.values[0] == pytest.approx(frame.mean()) and res.values[1] == h
        assert res.landmarks["pid"] == child.pid
    assert child.num_faces == 2
    assert child.process(None, 1.0).status == "no_frame"  # inline
    mirrored = np.full((8, 8, 3), 7, np.uint8)[:, ::-1]  # not contiguous
    assert child.process(mirrored, 1.1).values[0] == 7


def test_changes_reach_the_child_in_order_before_the_next_frame(child):
    frame = np.zeros((16, 16, 3), np.uint8)
    child.settings = TrackerSettings(mirror=True)
    child.landmarker.reset()
    child.reset()
    prof = {"name": "me"}  # any picklable object stands for a profile
    child.set_profile(prof)
    assert child.calibrated and child.profile is prof
    lm = child.process(frame, 0.0).landmarks
    assert lm["mirror"] is True
    assert lm["log"] == ["landmarker.reset", "reset", ("set_profile", prof)]
    child.profile, child.calibrated = None, False
    assert child.process(frame, 0.1).landmarks["log"] == []
    assert child.settings.mirror and not child.calibrated


def test_a_tracker_error_is_raised_here_and_the_child_goes_on(child):
    with pytest.raises(RuntimeError, match="ValueError: tracker bug"):
        child.process(np.full((4, 4, 3), 253, np.uint8), 0.0)
    assert child.process(np.zeros((4, 4, 3), np.uint8), 0.1).found


def test_a_child_that_dies_is_reported(child):
    with pytest.raises(TrackingProcessError, match=r"stopped unexpectedly.*exit status 3"):
        child.process(np.full((4, 4, 3), 255, np.uint8), 0.0)
    with pytest.raises(TrackingProcessError):
        child.process(np.zeros((4, 4, 3), np.uint8), 0.1)  # stays failed


def test_a_hung_child_times_out_and_is_killed():
    tp = TrackingProcess(fake_factory, TrackerSettings(), frame_timeout=0.3)
    tp.start()
    tp.wait_ready()
    proc = tp._proc
    t = time.perf_counter()
    with pytest.raises(TrackingProcessError, match=r"did not answer in 0\.3 s"):
        tp.process(np.full((4, 4, 3), 254, np.uint8), 0.0)
    assert time.perf_counter() - t < 3.0
    assert not proc.is_alive() and tp._slots == []


def test_factory_errors_and_unpicklable_factories():
    tp = TrackingProcess(unavailable_factory, TrackerSettings())
    with pytest.raises(TrackingUnavailable, match="face models not installed"):
        tp.wait_ready()  # starts it too
    assert tp._proc is None
    assert picklable(fake_factory) and picklable(functools.partial(fake_factory, None))
    assert not picklable(lambda s, p: None)


def test_the_child_exits_when_the_studio_goes_away(child):
    proc = child._proc
    child._conn.close()  # what the studio's death does to the Pipe
    proc.join(5.0)
    assert proc.exitcode == 0
    child._conn = None


def test_close_stops_the_child(child):
    proc = child._proc
    child.close()
    assert not proc.is_alive()
    child.close()  # idempotent


def test_real_tracker_in_the_child_matches_it_in_process(face_models):
    """The same frames through FaceTracker here and in the child give the same motion."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    from models.face.testface import draw_face
    from models.face.tracker import FaceTracker

    factory = _real_tracker
    here = factory(TrackerSettings(), None)
    tp = TrackingProcess(factory, TrackerSettings())
    try:
        tp.wait_ready()
        lms = []
        for i in range(6):
            img = draw_face(640, 480, centre=(320 + 8 * i, 240), mouth_open=0.1 * i, seed=i).image
            a, b = here.process(img, i / 30), tp.process(img, i / 30)
            assert a.status == b.status == "tracking" and a.num_faces == b.num_faces
            np.testing.assert_allclose(b.values, a.values, rtol=0, atol=1e-9)
            np.testing.assert_allclose(b.landmarks.points, a.landmarks.points, atol=1e-9)
            lms.append(b.landmarks)
        prof_here = here.profile_from_landmarks(lms, "me")
        prof_child = tp.profile_from_landmarks(lms, "me")  # computed here, the child's reference
        np.testing.assert_allclose(prof_child.neutral_mesh, prof_here.neutral_mesh)
        assert isinstance(here, FaceTracker)
    finally:
        tp.close()


def _real_tracker(settings, profile):
    from models.face.tracker import FaceTracker

    return FaceTracker(settings=settings, profile=profile, num_threads=1)
