from __future__ import annotations

import numpy as np
import pytest
import torch

from renderers.camera import Camera, StereoRig
from renderers.gaussians import SH_C0, GaussianCloud
from renderers.mpi import MPI, ImPortraitMPI
from renderers.reference import (
    SH_C1,
    render_gaussians_reference,
    render_mpi_reference,
)

IDENTITY = np.array([[1.0, 0.0, 0.0, 0.0]])


def _one(mean, scale=0.002, opacity=0.9, color=(1.0, 1.0, 1.0), sh=None) -> GaussianCloud:
    if sh is not None:
        return GaussianCloud(
            np.array([mean]), IDENTITY, np.full((1, 3), scale), [opacity], np.array([sh])
        )
    return GaussianCloud.from_colors(
        np.array([mean]), IDENTITY, np.full((1, 3), scale), [opacity], np.array([color])
    )


def test_small_gaussian_lands_where_the_pinhole_predicts() -> None:
    cam = Camera.orbit((0, 0, 0), 1.0, yaw_deg=10, pitch_deg=5, width=64, height=48)
    cam = cam.with_principal_point(30.3, 25.9)
    mean = np.array([0.013, -0.021, 0.008])
    img = render_gaussians_reference(_one(mean, scale=0.001), cam)
    (u, v), _ = cam.project([mean])[0][0], None
    a = img[..., 3]
    i, j = np.unravel_index(np.argmax(a), a.shape)
    assert (i, j) == (int(v), int(u))  # pixel (i, j) covers [j, j + 1) x [i, i + 1)
    vv, uu = np.mgrid[0:48, 0:64] + 0.5
    centroid = np.array([(a * uu).sum(), (a * vv).sum()]) / a.sum()
    np.testing.assert_allclose(centroid, [u, v], atol=0.05)
    # Peak alpha = opacity (the 0.3 px^2 low-pass spreads but does not dim the centre much).
    assert 0.2 < a.max() <= 0.9


def test_background_and_empty_cloud() -> None:
    cam = Camera.orbit(width=16, height=8)
    empty = GaussianCloud(
        np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3)), [], np.zeros((0, 1, 3))
    )
    img = render_gaussians_reference(empty, cam, background=(0.2, 0.4, 0.6))
    np.testing.assert_allclose(img[..., :3], np.broadcast_to([0.2, 0.4, 0.6], (8, 16, 3)))
    assert (img[..., 3] == 0).all()
    behind = _one((0, 0, 1.5), scale=0.05)  # behind the camera at z = 1
    assert render_gaussians_reference(behind, cam)[..., 3].max() == 0
    faint = _one((0, 0, 0), scale=0.05, opacity=0.5 / 255)
    assert render_gaussians_reference(faint, cam)[..., 3].max() == 0


def test_opaque_front_gaussian_occludes_the_one_behind() -> None:
    cam = Camera.orbit((0, 0, 0), 1.0, fov_y_deg=20, width=32, height=32)
    front = _one((0, 0, 0.1), scale=0.05, opacity=1.0, color=(1.0, 0.0, 0.0))
    back = _one((0, 0, -0.1), scale=0.05, opacity=1.0, color=(0.0, 0.0, 1.0))
    for cloud in (
        GaussianCloud.from_colors(
            np.r_[front.means, back.means],
            np.r_[IDENTITY, IDENTITY],
            np.full((2, 3), 0.05),
            [1.0, 1.0],
            np.array([[1.0, 0, 0], [0, 0, 1.0]]),
        ),
        GaussianCloud.from_colors(
            np.r_[back.means, front.means],
            np.r_[IDENTITY, IDENTITY],
            np.full((2, 3), 0.05),
            [1.0, 1.0],
            np.array([[0, 0, 1.0], [1.0, 0, 0]]),
        ),
    ):
        img = render_gaussians_reference(cloud, cam, background=(0, 1, 0))
        centre = img[16, 16]
        # alpha is capped at 0.99 per Gaussian: about 1% of the blue one shows through.
        np.testing.assert_allclose(centre, [0.99, 0.0, 0.01 * 0.99, 1.0], atol=3e-4)
    # Seen from behind, blue is in front.
    rear = Camera.orbit((0, 0, 0), 1.0, yaw_deg=180, fov_y_deg=20, width=32, height=32)
    img = render_gaussians_reference(cloud, rear)
    assert img[16, 16, 2] > 0.98 and img[16, 16, 0] < 0.02


def test_sh_degree_1_colour_depends_on_view_direction() -> None:
    sh = np.zeros((4, 3))
    sh[3] = (0.5, 0.0, -0.5)  # band-1 x coefficient: colour term -SH_C1 * x * sh[3]
    cloud = _one((0, 0, 0), scale=0.05, opacity=1.0, sh=sh)
    colours = {}
    for yaw in (-90, 0, 90):
        cam = Camera.orbit((0, 0, 0), 1.0, yaw_deg=yaw, fov_y_deg=20, width=16, height=16)
        px = render_gaussians_reference(cloud, cam)[8, 8]
        colours[yaw] = px[:3] / px[3]
    # Direction from the camera to the mean: x = -1 for the camera at +x (yaw 90).
    np.testing.assert_allclose(colours[90], 0.5 + SH_C1 * np.array([0.5, 0, -0.5]), atol=1e-3)
    np.testing.assert_allclose(colours[-90], 0.5 - SH_C1 * np.array([0.5, 0, -0.5]), atol=1e-3)
    np.testing.assert_allclose(colours[0], [0.5, 0.5, 0.5], atol=1e-3)


def _random_cloud(n: int, degree: int, seed: int = 0) -> GaussianCloud:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sh = rng.normal(scale=0.3, size=(n, (degree + 1) ** 2, 3))
    sh[:, 0] = (rng.uniform(size=(n, 3)) - 0.5) / SH_C0
    return GaussianCloud(
        rng.normal(scale=0.06, size=(n, 3)),
        q,
        np.exp(rng.normal(-4.5, 0.5, size=(n, 3))),
        rng.uniform(0.05, 0.95, n),
        sh,
    )


def test_axis_flip_is_a_change_of_coordinates_only() -> None:
    """Flipping the cloud (RUB <-> RDF) and the camera's world frame together changes nothing:
    checks the quaternion conjugation and the SH sign table used by the file readers."""
    cloud = _random_cloud(300, 3)
    cam = Camera.orbit((0, 0, 0), 0.5, yaw_deg=30, pitch_deg=15, width=40, height=40)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    flipped_cam = cam.with_pose(cam.world_to_camera @ flip)
    a = render_gaussians_reference(cloud, cam)
    b = render_gaussians_reference(cloud.flip_yz(), flipped_cam)
    np.testing.assert_allclose(a, b, atol=2e-5)
    assert a[..., 3].max() > 0.5


@pytest.mark.parametrize("chunk", [3, 64, 100_000])
def test_early_stop_rule(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """3DGS stops a pixel before the Gaussian that would drop T below 1e-4: with alpha 0.5 per
    Gaussian, 13 are composited (T = 2^-13 >= 1e-4) and the 14th ends the pixel."""
    import renderers.reference as reference

    monkeypatch.setattr(reference, "_CHUNK", chunk)
    cam = Camera.orbit((0, 0, 0), 1.0, width=9, height=9)
    n = 20
    means = np.zeros((n, 3))
    means[:, 2] = np.linspace(0.1, -0.1, n)  # all on the optical axis: the centre of pixel (4, 4)
    cloud = GaussianCloud.from_colors(
        means, np.repeat(IDENTITY, n, 0), np.full((n, 3), 0.001), np.full(n, 0.5), np.ones((n, 3))
    )
    px = render_gaussians_reference(cloud, cam, dtype=torch.float64)[4, 4]
    assert px[3] == pytest.approx(1 - 2.0**-13, abs=1e-7)


def test_chunking_does_not_change_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    import renderers.reference as reference

    cloud = _random_cloud(300, 1, seed=4)
    cam = Camera.orbit((0, 0, 0), 0.5, yaw_deg=-20, width=40, height=36)
    images = []
    for chunk in (13, 100_000):
        monkeypatch.setattr(reference, "_CHUNK", chunk)
        images.append(render_gaussians_reference(cloud, cam))
    np.testing.assert_allclose(images[0], images[1], atol=1e-5)


# ------------------------------------------------------------------------------------------- MPI
def _plane_mpi(depth: float, cam: Camera) -> MPI:
    """One plane at ``depth``: a small opaque white square on a transparent plane."""
    rgba = np.zeros((1, cam.height, cam.width, 4), np.float32)
    rgba[0, 28:36, 30:38] = 1.0
    return MPI(rgba, [depth], cam)


def _centroid(alpha: np.ndarray) -> np.ndarray:
    vv, uu = np.mgrid[0 : alpha.shape[0], 0 : alpha.shape[1]] + 0.5
    return np.array([(alpha * uu).sum(), (alpha * vv).sum()]) / alpha.sum()


def test_mpi_at_reference_camera_is_the_composite() -> None:
    cam = Camera.orbit((0, 0, 0), 1.0, width=24, height=20)
    rng = np.random.default_rng(0)
    rgba = rng.uniform(size=(3, 20, 24, 4)).astype(np.float32)
    img = render_mpi_reference(MPI(rgba, [0.9, 1.0, 1.1], cam), cam, background=(0, 0, 1))
    acc_c, acc_a = np.zeros((20, 24, 3)), np.zeros((20, 24))
    for d in (2, 1, 0):
        a = rgba[d, ..., 3]
        acc_c = rgba[d, ..., :3] * a[..., None] + acc_c * (1 - a[..., None])
        acc_a = a + acc_a * (1 - a)
    np.testing.assert_allclose(img[..., 3], acc_a, atol=1e-5)
    np.testing.assert_allclose(img[..., :3], acc_c + (1 - acc_a[..., None]) * [0, 0, 1], atol=1e-5)


@pytest.mark.parametrize("depth", [0.8, 1.0, 1.6])
def test_mpi_plane_parallax(depth: float) -> None:
    ref = Camera.orbit((0, 0, 0), 1.0, fov_y_deg=30, width=64, height=64)
    mpi = _plane_mpi(depth, ref)
    tx = 0.02
    moved = ref.with_pose(ref.world_to_camera - np.pad([[tx]], ((0, 3), (3, 0)))[:4, :4])
    assert moved.position[0] == pytest.approx(tx)
    a0 = render_mpi_reference(mpi, ref)[..., 3]
    a1 = render_mpi_reference(mpi, moved)[..., 3]
    shift = _centroid(a1) - _centroid(a0)
    assert shift[0] == pytest.approx(-ref.fx * tx / depth, abs=0.05)
    assert shift[1] == pytest.approx(0.0, abs=0.05)
    assert a1.sum() == pytest.approx(a0.sum(), rel=1e-3)


def test_mpi_stereo_disparity_follows_the_rig() -> None:
    center = Camera.orbit((0, 0, 0), 1.0, fov_y_deg=30, width=64, height=64)
    left, right = StereoRig(0.063, convergence=1.0).cameras(center)
    for depth in (0.85, 1.0, 1.05):
        mpi = _plane_mpi(depth, center)
        ul = _centroid(render_mpi_reference(mpi, left)[..., 3])[0]
        ur = _centroid(render_mpi_reference(mpi, right)[..., 3])[0]
        expected = center.fx * 0.063 / depth - center.fx * 0.063 / 1.0
        assert ul - ur == pytest.approx(expected, abs=0.5)
        assert abs(ul - ur - expected) < 0.05


def test_mpi_plane_behind_the_camera_is_invisible() -> None:
    ref = Camera.orbit((0, 0, 0), 1.0, fov_y_deg=30, width=32, height=32)
    rgba = np.ones((1, 32, 32, 4), np.float32)
    mpi = MPI(rgba, [0.5], ref)
    past = Camera.orbit((0, 0, 0), 0.3, width=32, height=32)  # the plane (z = 0.5) is behind it
    assert render_mpi_reference(mpi, past)[..., 3].max() == 0.0
    rear = Camera.orbit((0, 0, 0), 0.2, yaw_deg=180, width=32, height=32)  # sees its back
    assert render_mpi_reference(mpi, rear)[16, 16, 3] == pytest.approx(1.0)


def test_im_portrait_frontal_view_shows_the_frontal_image() -> None:
    cam = Camera.orbit((0, 0, 0), 1.0, width=16, height=16)
    rng = np.random.default_rng(2)
    frontal, residual = rng.uniform(size=(16, 16, 3)), rng.uniform(size=(16, 16, 3))
    alpha = np.zeros((4, 16, 16))
    # Each pixel has one opaque plane, at a random depth: the frontal view sees only it.
    which = rng.integers(0, 4, size=(16, 16))
    for d in range(4):
        alpha[d][which == d] = 1.0
    mpi = ImPortraitMPI(frontal, residual, alpha, [0.9, 0.95, 1.0, 1.05], cam)
    img = render_mpi_reference(mpi, cam)
    np.testing.assert_allclose(img[..., :3], frontal, atol=1e-5)
    np.testing.assert_allclose(img[..., 3], 1.0, atol=1e-6)
