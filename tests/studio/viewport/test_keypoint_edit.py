"""Keypoint drags: screen motion -> expression channels, axis masks and magnitude limits."""

from __future__ import annotations

import numpy as np
import pytest

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
from studio import heads
from studio.viewport.camera_control import ViewState
from studio.viewport.keypoint_edit import KEYPOINT_AXES, KeypointDrag, exp_limit


@pytest.fixture(scope="module")
def head():
    return heads.resolve_head(None)


def _posed():
    v = CHANNEL_DEFAULTS.copy()
    v[CHANNEL_INDEX["yaw"]] = 15.0
    v[CHANNEL_INDEX["pitch"]] = -5.0
    v[CHANNEL_INDEX["exp_1_z"]] = 0.01
    return v


def test_dragged_keypoint_follows_the_cursor(head):
    cam = ViewState(yaw=20.0, distance=0.6, target=(0, 0.02, 0)).camera(400, 300)
    values = _posed()
    drag = KeypointDrag(head, values, 1, cam)  # brow_r: x and y
    uv0 = cam.project(head.keypoints_world(values)[1][None])[0][0]
    target = uv0 + np.array([6.0, -9.0])
    new = drag.update(*target)
    uv1 = cam.project(head.keypoints_world(new)[1][None])[0][0]
    np.testing.assert_allclose(uv1, target, atol=0.05)
    assert new[CHANNEL_INDEX["exp_1_z"]] == pytest.approx(0.01)  # z never changes
    changed = np.flatnonzero(new != values)
    assert set(changed) <= {CHANNEL_INDEX["exp_1_x"], CHANNEL_INDEX["exp_1_y"]}
    keys = drag.keys(12)
    assert set(keys) == {"exp_1_x", "exp_1_y"}
    assert keys["exp_1_y"] == ([12], [pytest.approx(new[CHANNEL_INDEX["exp_1_y"]])])
    np.testing.assert_array_equal(values, _posed())  # the input is not modified


def test_region_mask_limits_axes(head):
    assert KEYPOINT_AXES[19] == (1,) and KEYPOINT_AXES[11] == (1,) and KEYPOINT_AXES[6] == (0, 1)
    cam = ViewState(distance=0.6).camera(400, 300)
    values = CHANNEL_DEFAULTS.copy()
    drag = KeypointDrag(head, values, 19, cam)  # jaw: y only
    uv0 = cam.project(head.keypoints_world(values)[19][None])[0][0]
    new = drag.update(uv0[0] + 20, uv0[1] + 4)
    assert new[CHANNEL_INDEX["exp_19_x"]] == 0.0
    assert new[CHANNEL_INDEX["exp_19_y"]] > 0  # dragging down opens (RDF +y is down)
    assert set(drag.keys(0)) == {"exp_19_y"}


def test_magnitude_is_clamped(head):
    cam = ViewState(distance=0.6).camera(400, 300)
    values = CHANNEL_DEFAULTS.copy()
    drag = KeypointDrag(head, values, 6, cam)
    uv0 = cam.project(head.keypoints_world(values)[6][None])[0][0]
    new = drag.update(uv0[0] + 300, uv0[1] + 300)
    e = new[[CHANNEL_INDEX["exp_6_x"], CHANNEL_INDEX["exp_6_y"]]]
    assert np.linalg.norm(e) == pytest.approx(exp_limit(6))
    assert e[0] > 0 and e[1] > 0  # clamped along the drag direction
    assert drag.changed
    # A keypoint already beyond the limit is not snapped back by a small drag.
    values[CHANNEL_INDEX["exp_6_y"]] = 0.12
    drag = KeypointDrag(head, values, 6, cam)
    uv0 = cam.project(head.keypoints_world(values)[6][None])[0][0]
    new = drag.update(uv0[0], uv0[1] - 1.0)
    assert 0.1 < new[CHANNEL_INDEX["exp_6_y"]] < 0.12


def test_bad_keypoint(head):
    cam = ViewState().camera(10, 10)
    with pytest.raises(IndexError):
        KeypointDrag(head, CHANNEL_DEFAULTS, 21, cam)
