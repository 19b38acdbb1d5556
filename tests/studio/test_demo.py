"""The shipped demo project is what studio.demo builds, and it is alive."""

import numpy as np

from models.motion_space import CHANNEL_INDEX
from studio.demo import DEMO_PROJECT, build_demo_project
from studio.document import load_project


def test_shipped_demo_matches_the_builder():
    shipped = load_project(DEMO_PROJECT)
    built = build_demo_project()
    frames = np.arange(shipped.duration)
    assert shipped.duration == built.duration and shipped.frame_rate == built.frame_rate
    np.testing.assert_array_equal(shipped.evaluate(frames), built.evaluate(frames))
    assert shipped.assets == built.assets
    assert shipped.head == built.head


def test_demo_talks_blinks_and_moves():
    project = load_project(DEMO_PROJECT)
    motion = project.evaluate(np.arange(project.duration))
    jaw = motion[:, CHANNEL_INDEX["exp_19_y"]]
    assert jaw.max() > 0.03 and (jaw < 0.005).sum() > 10  # speaks, with pauses
    assert motion[:, CHANNEL_INDEX["eye_open_r"]].min() < 0.2  # blinks
    assert np.ptp(motion[:, CHANNEL_INDEX["yaw"]]) > 1.0  # sways
    assert len(project.audio_clips) == 1 and project.head.asset == "builtin:default"
