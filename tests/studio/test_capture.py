"""Performance capture glue: resampling, record_take (fake and real tracker), the reenact CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from models.face.sources import CameraDisconnectedError, FrameSource
from models.motion_space import CHANNEL_DEFAULTS, CHANNELS
from models.motion_space import CHANNEL_INDEX as CI
from studio.capture import (
    CaptureError,
    add_take_to_project,
    iter_record_take,
    record_take,
    resample_to_frames,
)
from studio.document import Project


class _Source(FrameSource):
    def __init__(self, times, fail_after=None):
        super().__init__()
        self.times, self.fail_after, self.description, self.fps = times, fail_after, "fake", 30.0

    def _frames(self):
        for i, t in enumerate(self.times):
            if self.fail_after is not None and i == self.fail_after:
                raise CameraDisconnectedError("camera 0 stopped delivering frames")
            yield t, np.full((8, 8, 3), i, np.uint8)


class _Tracked:
    def __init__(self, values, found=True):
        self.values, self.found, self.num_faces = values, found, 1


class _Tracker:
    """Yaw = 10 * t degrees; no face while the frame's value is 3."""

    def __init__(self):
        from models.face.tracker import TrackerSettings

        self.settings, self.calibrated, self.num_faces, self.calibrated_with = (
            TrackerSettings(), False, 1, None)  # fmt: skip

    def calibrate(self, frames):
        self.calibrated, self.calibrated_with = True, len(frames)

    def process(self, frame, t):
        v = CHANNEL_DEFAULTS.copy()
        v[CI["yaw"]] = 10.0 * t
        return _Tracked(v, found=int(frame[0, 0, 0]) != 3)


def test_resample_linear_and_drops_repeated_times():
    t = np.array([0.0, 0.05, 0.05, 0.1, 0.2])
    v = np.stack([t * 10, -t], 1)
    out = resample_to_frames(t, v, 25)
    assert out.shape == (6, 2) and np.allclose(out[:, 0], np.arange(6) * 0.4)
    with pytest.raises(ValueError):
        resample_to_frames(t, v, 0)


def test_record_take_resamples_to_project_fps():
    times = np.cumsum(np.r_[0, np.full(59, 1 / 30)]) + 5.0  # 2 s at 30 fps, clock starts at 5
    project = Project.new(25, 10)
    items = list(iter_record_take(_Source(times), _Tracker(), project, calibrate_frames=4))
    assert items[0].phase == "calibrating" and items[-1].phase == "done"
    take = items[-1].take
    assert take.source == "recorded" and take.metadata["capture"]["calibration_frames"] == 4
    assert take.metadata["capture"]["length_frames"] == 46  # 56 frames at 30 fps = 1.83 s
    yaw = take.evaluate(np.arange(46))[:, CI["yaw"]]
    assert np.allclose(yaw, np.arange(46) / 25 * 10.0, atol=0.02)  # time 0 = first recorded
    add_take_to_project(project, take)
    assert project.active_take_id == take.id and project.duration == 46


def test_camera_unplugged_keeps_what_was_recorded():
    tr = _Tracker()
    take = record_take(_Source(np.arange(20) / 30, fail_after=12), tr, 30.0)
    assert take.metadata["capture"]["frames"] == 12
    assert "stopped" in take.metadata["capture"]["ended"]
    with pytest.raises(CameraDisconnectedError):  # nothing recorded yet: the error stands
        record_take(_Source(np.arange(20) / 30, fail_after=2), tr, 30.0, calibrate_frames=3)


def test_nothing_recorded_is_an_error():
    with pytest.raises(CaptureError, match="nothing recorded"):
        record_take(_Source([0.0, 0.1]), _Tracker(), 25.0, calibrate_frames=5)
    with pytest.raises(CaptureError, match="no face"):
        tr = _Tracker()
        tr.process = lambda f, t: _Tracked(CHANNEL_DEFAULTS.copy(), found=False)
        record_take(_Source([0.0, 0.1]), tr, 25.0)


def test_max_seconds_and_channels():
    take = record_take(_Source(np.arange(100) / 50), _Tracker(), 25.0, max_seconds=1.0)
    assert take.metadata["capture"]["length_frames"] == 26
    assert set(take.curves) <= set(CHANNELS)


def test_reenact_cli_on_a_drawn_face_video(tmp_path, face_models):
    import cv2

    from models.face.testface import draw_face
    from studio.commands import reenact
    from studio.document import load_project, save_project

    video = tmp_path / "frames"  # an image sequence at --fps 25 (the default rate)
    video.mkdir()
    opens = [0.0] * 5 + [0, 0.3, 0.6, 1.0, 0.6, 0.3, 0, 0, 0.5, 1.0, 0.5, 0]
    for i, m in enumerate(opens):  # different noise per frame: no frozen-camera frames
        img = draw_face(320, 240, mouth_open=m, seed=i).image
        cv2.imwrite(str(video / f"{i:04d}.png"), img[..., ::-1])
    save_project(Project.new(25, 5), tmp_path / "p.ths")
    parser = argparse.ArgumentParser()
    reenact.add_parser(parser.add_subparsers())
    args = parser.parse_args(["reenact", "--source", str(video), "--project",
                              str(tmp_path / "p.ths"), "--out", str(tmp_path / "p2.ths"),
                              "--calibrate-frames", "5", "--smoothing", "5"])  # fmt: skip
    assert reenact.run(args) == 0
    p2 = load_project(tmp_path / "p2.ths")
    take = p2.active_take
    assert take.source == "recorded" and p2.duration == 12
    jaw = take.evaluate(np.arange(12))[:, CI["exp_19_y"]]
    assert np.corrcoef(jaw, opens[5:])[0, 1] > 0.8
