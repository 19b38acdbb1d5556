"""Qt-free viewport maths: orbit/pan/zoom state machine, framing, per-mode view cameras."""

from __future__ import annotations

import numpy as np
import pytest

from studio.document import CameraSettings
from studio.viewport.camera_control import CameraControl, ViewState
from studio.viewport.gl_scene import view_cameras


def test_orbit_drag_turns_the_view():
    c = CameraControl(ViewState())
    c.begin("orbit", 100, 100, 400)
    assert c.move(140, 100)  # drag right: the camera swings to the viewer's left
    assert c.state.yaw == pytest.approx(-40 * c.orbit_deg_per_px)
    c.move(140, 60)  # drag up: the camera goes down
    assert c.state.pitch < 0
    c.end()
    assert not c.dragging and not c.move(0, 0)
    c.begin("orbit", 0, 0, 400)
    c.move(0, 10_000)
    assert c.state.pitch == pytest.approx(89.0)  # clamped
    with pytest.raises(ValueError, match="drag mode"):
        c.begin("spin", 0, 0, 1)


def test_pan_keeps_the_target_plane_under_the_cursor():
    c = CameraControl(ViewState(distance=0.6, fov_deg=30.0))
    h = 400
    cam0 = c.state.camera(h, h)
    point = np.array(c.state.target)  # on the target plane
    u0, v0 = cam0.project(point[None])[0][0]
    c.begin("pan", 50, 50, h)
    c.move(80, 30)  # +30 px right, -20 px up
    c.end()
    u1, v1 = c.state.camera(h, h).project(point[None])[0][0]
    assert u1 - u0 == pytest.approx(30.0, abs=1e-6)
    assert v1 - v0 == pytest.approx(-20.0, abs=1e-6)


def test_zoom_and_frame():
    c = CameraControl(ViewState(distance=1.0))
    c.zoom(1)
    assert c.state.distance == pytest.approx(c.zoom_per_notch)
    c.zoom(-1000)
    assert c.state.distance == pytest.approx(50.0)
    c.frame(np.array([0.0, 0.1, 0.0]), 0.1, aspect=1.0)
    assert c.state.target == pytest.approx((0.0, 0.1, 0.0))
    cam = c.state.camera(200, 200)
    # The sphere's silhouette fits within the image (90 %).
    edge = np.array([[0.0, 0.1 + 0.1 * c.state.distance / np.hypot(c.state.distance, 0.1), 0]])
    v = cam.project(edge)[0][0, 1]
    assert 0 < v < 100 and v > 100 - 0.5 * 200 * 0.95


def test_settings_round_trip():
    s = CameraSettings(yaw=10, pitch=-5, distance=0.8, fov_deg=25, target=(0, 0.1, 0), ipd=0.05)
    v = ViewState.from_settings(s)
    assert v.to_settings(CameraSettings(ipd=0.05)) == s


def test_view_cameras_per_mode():
    v = ViewState(distance=0.6)
    ((mono, vp),) = view_cameras(v, "mono", 640, 480)
    assert vp == (0, 0, 640, 480) and mono.width == 640
    (left, lvp), (right, rvp) = view_cameras(v, "sbs", 640, 480, ipd=0.064, convergence=0.6)
    assert lvp == (0, 0, 320, 480) and rvp == (320, 0, 320, 480)
    assert left.width == right.width == 320 and left.height == 480
    # Parallel rig with the baseline along the camera's x axis, left eye at -x.
    np.testing.assert_allclose(right.position - left.position, [0.064, 0, 0], atol=1e-12)
    # Zero disparity at the convergence distance (the target).
    ul = left.project(np.zeros((1, 3)))[0][0, 0]
    ur = right.project(np.zeros((1, 3)))[0][0, 0]
    assert ul == pytest.approx(ur)
    views = view_cameras(v, "anaglyph", 640, 480, ipd=0.0)
    assert [vp for _, vp in views] == [(0, 0, 640, 480)] * 2
    assert views[0][0] == views[1][0]  # ipd 0: one camera for both eyes
    with pytest.raises(ValueError, match="view mode"):
        view_cameras(v, "vr", 10, 10)
