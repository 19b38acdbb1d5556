"""MPI baking (renderers.bake): plane assignment, and baked MPIs against the Gaussian render."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.bake import assign_planes, bake_mpi, baking_distance, plane_pieces
from renderers.camera import Camera
from renderers.gaussians import GaussianCloud
from renderers.mpi import head_mpi_depths


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - b) ** 2))
    return 10.0 * np.log10(1.0 / max(mse, 1e-12))


def blob_head(n: int = 4000, seed: int = 0) -> GaussianCloud:
    """A bumpy coloured ellipsoid shell (a stand-in head, 0.09 m radius) facing +z."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = 0.09 * (1.0 + 0.1 * np.sin(7 * d[:, 0]) * np.cos(5 * d[:, 1]))
    means = d * r[:, None] * np.array([0.85, 1.1, 1.0])
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    colors = 0.5 + 0.45 * np.stack([d[:, 0], d[:, 1], np.sin(9 * d[:, 2])], 1)
    scales = rng.uniform(0.004, 0.009, size=(n, 3))
    return GaussianCloud.from_colors(means, q, scales, np.full(n, 0.9), colors)


def front_camera(size: int = 96, x: float = 0.0) -> Camera:
    return Camera.look_at((x, 0.0, 0.6), (0.0, 0.0, 0.0), fov_y_deg=30.0, width=size, height=size)


def test_assign_planes_nearest_and_soft():
    depths = head_mpi_depths(0.6, 5)
    lo, w = assign_planes(depths, depths, softness=1.0)
    # A point on a plane belongs to it (or to the next one with weight 0).
    plane = np.where(w > 0.5, lo + 1, lo)
    np.testing.assert_array_equal(plane, np.arange(5))
    mid = 2.0 / (1.0 / depths[1] + 1.0 / depths[2])  # halfway in disparity
    lo, w = assign_planes(np.array([mid]), depths, softness=1.0)
    assert lo[0] == 1 and abs(w[0] - 0.5) < 1e-4
    lo, w = assign_planes(np.array([mid * 0.999, mid * 1.001]), depths, softness=0.0)
    assert list(np.where(w > 0.5, lo + 1, lo)) == [1, 2]
    lo, w = assign_planes(np.array([0.1, 5.0]), depths)  # clamped to the end planes
    assert list(np.where(w > 0.5, lo + 1, lo)) == [0, 4]
    with pytest.raises(ValueError, match="softness"):
        assign_planes(depths, depths, softness=2.0)
    with pytest.raises(ValueError, match="increasing"):
        assign_planes(depths, depths[::-1])


def test_split_pieces_keep_the_opacity():
    cloud = blob_head(500)
    cam = front_camera()
    depths = head_mpi_depths(baking_distance(cloud, cam), 24)
    pieces, plane = plane_pieces(cloud, cam, depths, softness=1.0)
    assert np.all(np.diff(plane) >= 0) and plane.min() >= 0 and plane.max() < 24
    assert len(cloud) <= len(pieces) <= 2 * len(cloud)
    # Group pieces by their source Gaussian (same mean): "over" of the pieces == the original.
    key = {tuple(m): i for i, m in enumerate(cloud.means.tolist())}
    trans = np.ones(len(cloud))
    for m, o in zip(pieces.means.tolist(), pieces.opacities, strict=True):
        trans[key[tuple(m)]] *= 1.0 - o
    np.testing.assert_allclose(1.0 - trans, cloud.opacities, atol=1e-5)


def test_torch_bake_reproduces_the_render():
    from renderers.reference import render_gaussians_reference, render_mpi_reference

    cloud = blob_head(600)
    cam = front_camera(40)
    mpi = bake_mpi(cloud, cam, num_planes=6, backend="torch")
    assert mpi.rgba.shape == (6, 40, 40, 4) and mpi.depths[0] < mpi.depths[-1]
    ref = np.asarray(render_gaussians_reference(cloud, cam, (0.0, 0.0, 0.0)))
    out = np.asarray(render_mpi_reference(mpi, cam, (0.0, 0.0, 0.0)))
    assert _psnr(out[..., :3], ref[..., :3]) >= 30.0
    assert np.abs(out[..., 3] - ref[..., 3]).mean() < 0.01


def test_bad_arguments():
    cloud = blob_head(50)
    with pytest.raises(ValueError, match="backend"):
        bake_mpi(cloud, front_camera(), backend="vulkan")
    with pytest.raises(ValueError, match="increasing"):
        bake_mpi(cloud, front_camera(), depths=[0.6, 0.5])
    with pytest.raises(ValueError, match="in front of it"):
        bake_mpi(cloud, front_camera(), distance=0.1)
    with pytest.raises(TypeError, match="GaussianCloud"):
        bake_mpi("cloud", front_camera())


@pytest.fixture(scope="module")
def gl():
    from renderers.gl_context import egl_available

    if not egl_available():
        pytest.skip("no headless EGL OpenGL context")
    yield
    from renderers.bake import release_baker

    release_baker()


@pytest.mark.gl
def test_gl_bake_psnr_on_the_default_head(gl):
    from models.heads import load_builtin_head
    from renderers.render import render

    head = load_builtin_head("default")
    cloud = GaussianCloud(head.means, head.quats, head.scales, head.opacities, head.sh)
    cam = Camera.look_at((0, 0, 0.6), (0, 0, 0), fov_y_deg=30.0, width=192, height=192)
    ref = render(cloud, cam, backend="gl")[0]
    mpi = bake_mpi(cloud, cam, backend="gl")
    assert mpi.num_planes == 24
    np.testing.assert_allclose(mpi.depths, head_mpi_depths(baking_distance(cloud, cam)))
    out = render(mpi, cam, backend="gl")[0]
    assert _psnr(out[..., :3], ref[..., :3]) >= 30.0  # the requirement
    # A slightly moved camera still sees a plausible head (parallax of the planes).
    side = Camera.look_at((0.05, 0.02, 0.6), (0, 0, 0), fov_y_deg=30.0, width=192, height=192)
    s_ref = render(cloud, side, backend="gl")[0]
    s_out = render(mpi, side, backend="gl")[0]
    assert _psnr(s_out[..., :3], s_ref[..., :3]) >= 24.0
    # Hard assignment is (nearly) exact at the baking camera.
    hard = render(bake_mpi(cloud, cam, softness=0.0, backend="gl"), cam, backend="gl")[0]
    assert _psnr(hard[..., :3], ref[..., :3]) >= 40.0


@pytest.mark.gl
def test_gl_bake_matches_torch_bake(gl):
    cloud = blob_head(600)
    cam = front_camera(40)
    a = bake_mpi(cloud, cam, num_planes=6, backend="gl")
    b = bake_mpi(cloud, cam, num_planes=6, backend="torch")
    pa, pb = a.premultiplied(), b.premultiplied()
    assert np.abs(pa - pb).mean() < 0.01
    assert np.abs(pa[..., 3].sum(0) - pb[..., 3].sum(0)).max() < 0.1
