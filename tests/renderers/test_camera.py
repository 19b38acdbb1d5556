from __future__ import annotations

import math

import numpy as np
import pytest

from renderers.camera import Camera, StereoRig


def _off_centre_camera() -> Camera:
    cam = Camera.orbit((0.01, 0.02, -0.03), 0.7, yaw_deg=20, pitch_deg=-10, width=96, height=64)
    return cam.with_principal_point(41.3, 36.8)


def test_pixel_centre_convention_and_projection() -> None:
    cam = Camera(100.0, 120.0, 32.0, 24.0, 64, 48)
    # The ray through pixel (row 3, column 5) passes its centre (5.5, 3.5).
    p = cam.unproject([[5.5, 3.5]], 2.0)
    uv, depth = cam.project(p)
    np.testing.assert_allclose(uv, [[5.5, 3.5]], atol=1e-12)
    np.testing.assert_allclose(depth, [2.0])
    np.testing.assert_allclose(p, [[(5.5 - 32) / 100 * 2, (3.5 - 24) / 120 * 2, 2.0]])
    uv, depth = cam.project([[0.0, 0.0, -1.0]])
    assert depth[0] == -1.0 and np.isnan(uv).all()


def test_orbit_conventions() -> None:
    front = Camera.orbit((0, 0, 0), 2.0, 0, 0, fov_y_deg=40, width=64, height=64)
    np.testing.assert_allclose(front.position, [0, 0, 2], atol=1e-12)
    np.testing.assert_allclose(front.forward, [0, 0, -1], atol=1e-12)
    # World +y (up) appears above the image centre (smaller v), world +x to the right.
    uv, _ = front.project([[0, 0.1, 0], [0.1, 0, 0]])
    assert uv[0, 1] < 32 and uv[1, 0] > 32
    assert front.fov_y_deg == pytest.approx(40.0)
    right = Camera.orbit((0, 0, 0), 2.0, yaw_deg=90)
    np.testing.assert_allclose(right.position, [2, 0, 0], atol=1e-12)
    above = Camera.orbit((0, 0, 0), 2.0, pitch_deg=30)
    assert above.position[1] == pytest.approx(1.0)
    top = Camera.orbit((0, 0, 0), 2.0, pitch_deg=90)
    np.testing.assert_allclose(top.position, [0, 2, 0], atol=1e-12)
    np.testing.assert_allclose(top.forward, [0, -1, 0], atol=1e-12)


def test_look_at_matches_orbit() -> None:
    orbit = Camera.orbit((0.1, 0.2, 0.3), 1.5, 35, 25, 30, 80, 60)
    look = Camera.look_at(orbit.position, (0.1, 0.2, 0.3), fov_y_deg=30, width=80, height=60)
    np.testing.assert_allclose(look.world_to_camera, orbit.world_to_camera, atol=1e-12)
    with pytest.raises(ValueError, match="parallel"):
        Camera.look_at((0, 1, 0), (0, 0, 0))


def test_pose_inverse_and_position() -> None:
    cam = _off_centre_camera()
    np.testing.assert_allclose(cam.camera_to_world @ cam.world_to_camera, np.eye(4), atol=1e-12)
    _, depth = cam.project([cam.position + cam.forward])
    assert depth[0] == pytest.approx(1.0)


def test_gl_matrices_reproduce_the_pinhole() -> None:
    cam = _off_centre_camera()
    rng = np.random.default_rng(1)
    pts = rng.normal(scale=0.1, size=(50, 3))
    uv, depth = cam.project(pts)
    near, far = 0.1, 5.0
    clip = (cam.gl_projection(near, far) @ cam.gl_view() @ np.c_[pts, np.ones(50)].T).T
    ndc = clip[:, :3] / clip[:, 3:]
    np.testing.assert_allclose((ndc[:, 0] + 1) / 2 * cam.width, uv[:, 0], atol=1e-9)
    np.testing.assert_allclose((1 - ndc[:, 1]) / 2 * cam.height, uv[:, 1], atol=1e-9)
    np.testing.assert_allclose(clip[:, 3], depth, atol=1e-12)
    for z, expected in ((near, -1.0), (far, 1.0)):
        p = cam.unproject([[10.0, 20.0]], z)
        c = cam.gl_projection(near, far) @ cam.gl_view() @ np.r_[p[0], 1.0]
        assert c[2] / c[3] == pytest.approx(expected)
    with pytest.raises(ValueError):
        cam.gl_projection(1.0, 0.5)


def test_with_size_keeps_relative_positions() -> None:
    cam = _off_centre_camera()
    half = cam.with_size(48, 128)
    p = np.array([[0.02, -0.01, 0.0]])
    uv, _ = cam.project(p)
    uv2, _ = half.project(p)
    np.testing.assert_allclose(uv2, uv * [48 / 96, 128 / 64], atol=1e-9)


def test_dict_round_trip_and_validation() -> None:
    cam = _off_centre_camera()
    assert Camera.from_dict(cam.to_dict()) == cam
    with pytest.raises(ValueError, match="width"):
        Camera(1, 1, 0, 0, 0, 10)
    with pytest.raises(ValueError, match="focal"):
        Camera(0, 1, 0, 0, 10, 10)
    with pytest.raises(ValueError, match="rotation"):
        Camera(1, 1, 0, 0, 10, 10, np.diag([2.0, 1, 1, 1]))
    with pytest.raises(ValueError, match="missing"):
        Camera.from_dict({"fx": 1})
    assert not cam.world_to_camera.flags.writeable


@pytest.mark.parametrize("convergence", [0.6, 1.0, 2.5])
def test_stereo_disparity(convergence: float) -> None:
    center = Camera.orbit(
        (0, 0, 0), 1.0, yaw_deg=15, pitch_deg=5, fov_y_deg=35, width=160, height=120
    )
    rig = StereoRig(ipd=0.063, convergence=convergence)
    left, right = rig.cameras(center)
    f, b = center.fx, 0.063
    # Left eye on the viewer's left: along the centre camera's -x axis.
    np.testing.assert_allclose(
        left.position, center.position - b / 2 * center.camera_to_world[:3, 0]
    )
    np.testing.assert_allclose(
        right.position, center.position + b / 2 * center.camera_to_world[:3, 0]
    )
    # Parallel cameras, never toe-in.
    np.testing.assert_array_equal(left.rotation, center.rotation)
    np.testing.assert_array_equal(right.rotation, center.rotation)
    for z in (0.4, 0.8, convergence, 1.7, 4.0):
        p = center.unproject([[70.0, 50.0]], z)
        ul = left.project(p)[0][0, 0]
        ur = right.project(p)[0][0, 0]
        assert ul - ur == pytest.approx(f * b / z - f * b / convergence, abs=0.5)
        assert left.project(p)[0][0, 1] == pytest.approx(right.project(p)[0][0, 1])
    p = center.unproject([[12.0, 99.0]], convergence)
    assert left.project(p)[0][0, 0] == pytest.approx(right.project(p)[0][0, 0], abs=1e-9)
    near = center.unproject([[80.0, 60.0]], convergence / 2)
    assert left.project(near)[0][0, 0] > right.project(near)[0][0, 0]  # crossed when nearer


def test_stereo_without_convergence_and_validation() -> None:
    center = Camera.orbit(width=64, height=64)
    left, right = StereoRig(0.05, math.inf).cameras(center)
    assert left.cx == right.cx == center.cx
    with pytest.raises(ValueError):
        StereoRig(ipd=0.0)
    with pytest.raises(ValueError):
        StereoRig(convergence=-1.0)
