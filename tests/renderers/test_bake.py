"""MPI baking (renderers.bake): plane assignment, baked MPIs against the Gaussian render, and the
three bakers (native CPU, GL atlas, torch reference) against each other."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.bake import (
    CPUMPIBaker,
    assign_planes,
    bake_mpi,
    baking_distance,
    plane_pieces,
)
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
    with pytest.raises(TypeError, match="Camera"):
        bake_mpi(cloud, "camera")
    with pytest.raises(ValueError, match="dtype"):
        bake_mpi(cloud, front_camera(), dtype="float16")
    with pytest.raises(ValueError, match="softness"):
        bake_mpi(cloud, front_camera(), softness=-0.5, backend="torch")
    with pytest.raises(ValueError, match="empty cloud"):
        bake_mpi(cloud.subset(np.zeros(len(cloud), bool)), front_camera())


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


# ---------------------------------------------------------------------------------- CPU baker
@pytest.fixture(scope="module")
def cpu_baker():
    from renderers.native import NativeUnavailable

    try:
        return CPUMPIBaker()
    except NativeUnavailable as exc:
        pytest.skip(f"native kernels unavailable: {exc}")


def one_sided_blob(n: int = 600) -> GaussianCloud:
    """blob_head with its outer half one-sided (facing out), as the shipped heads have."""
    cloud = blob_head(n)
    facing = np.where(np.arange(n) % 2 == 0, 1, 0).astype(np.int8)
    return GaussianCloud(cloud.means, cloud.quats, cloud.scales, cloud.opacities, cloud.sh, facing)


@pytest.mark.parametrize("softness", [1.0, 0.3, 0.0])
def test_cpu_bake_matches_torch_bake(cpu_baker, softness):
    cloud = one_sided_blob()
    cam = front_camera(40)
    depths = head_mpi_depths(baking_distance(cloud, cam), 6)
    a = cpu_baker.bake(cloud, cam, depths, softness=softness)
    b = bake_mpi(cloud, cam, depths, softness=softness, backend="torch", dtype="float32")
    assert a.rgba.dtype == np.uint8 and a.rgba.shape == (6, 40, 40, 4)
    pa, pb = a.premultiplied(), b.premultiplied()
    # 8-bit planes against float planes: rounding only (the torch planes are the oracle).
    assert np.abs(pa - pb).max() < 3.0 / 255.0
    assert _psnr(pa, pb) >= 50.0
    # Straight colour: where alpha is well above 8-bit noise the colours agree too.
    solid = b.rgba[..., 3] > 0.25
    assert solid.sum() > 100
    assert np.abs(a.float_rgba()[..., :3][solid] - b.rgba[..., :3][solid]).max() < 4.0 / 255.0


def test_cpu_bake_plane_contents(cpu_baker):
    """Single Gaussians land in their planes: on a plane in that plane only; midway (in
    disparity) between two planes split into two pieces of 1 - (1 - o)^0.5 each; straight
    colour; behind the camera nowhere."""
    cam = front_camera(48)
    depths = head_mpi_depths(0.6, 6)
    mid = 2.0 / (1.0 / depths[2] + 1.0 / depths[3])
    z_cam = np.array([depths[1], mid, -0.2])  # camera-space depths; the camera looks down -z
    means = np.stack([np.zeros(3), np.zeros(3), 0.6 - z_cam], 1)
    n = len(means)
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    cloud = GaussianCloud.from_colors(
        means, quats, np.full((n, 3), 0.05), np.full(n, 0.8), np.array([[0.9, 0.2, 0.1]] * n)
    )  # wide (~10 px): the pixel centres next to the mean see ~the peak opacity
    for softness, split in ((1.0, True), (0.0, False)):
        mpi = cpu_baker.bake(cloud, cam, depths, softness=softness, dtype="float32")
        alpha = mpi.rgba[:, 24, 24, 3]
        half = 1.0 - (1.0 - 0.8) ** 0.5
        expected = np.zeros(6)
        expected[1] = 0.8  # the Gaussian on plane 1
        if split:
            expected[2] = expected[3] = half
        else:  # nearest plane; midway in disparity rounds up to the farther one
            expected[3] = 0.8
        # The two Gaussians share pixel (24, 24) only through their own planes.
        np.testing.assert_allclose(alpha, expected, atol=2.5 / 255.0)
        occupied = mpi.rgba[..., 3].reshape(6, -1).max(1) > 0
        np.testing.assert_array_equal(occupied, expected > 0)
        for p in np.flatnonzero(expected):
            np.testing.assert_allclose(mpi.rgba[p, 24, 24, :3], [0.9, 0.2, 0.1], atol=2.0 / 255.0)


def test_cpu_baker_reuse_across_frames(cpu_baker):
    """One baker, a changing cloud (new means, new quats, same colours) and changing softness:
    every bake equals a fresh baker's."""
    base = one_sided_blob(500)
    cam = front_camera(32)
    depths = head_mpi_depths(baking_distance(base, cam), 8)
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(3):
        q = base.quats + rng.normal(scale=0.2, size=base.quats.shape).astype(np.float32)
        m = base.means + rng.normal(scale=0.005, size=base.means.shape).astype(np.float32)
        frames.append(GaussianCloud(m, q, base.scales, base.opacities, base.sh, base.facing))
    for cloud, softness in zip([*frames, frames[0]], [1.0, 1.0, 0.0, 1.0], strict=True):
        got = cpu_baker.bake_uint8(cloud, cam, depths, softness)
        want = CPUMPIBaker().bake_uint8(cloud, cam, depths, softness)
        np.testing.assert_array_equal(got, want)
    # Same arrays, moved camera: only the assignment changes.
    other = front_camera(32, x=0.03)
    np.testing.assert_array_equal(
        cpu_baker.bake_uint8(frames[0], other, depths),
        CPUMPIBaker().bake_uint8(frames[0], other, depths),
    )


def test_bake_mpi_sees_in_place_edits(cpu_baker):
    """bake_mpi's cached CPU baker does not trust array identity: a cloud edited in place
    between two calls is baked as edited."""
    cloud = blob_head(300)
    cam = front_camera(32)
    bake_mpi(cloud, cam, num_planes=5, backend="cpu")
    cloud.means[:, 0] += 0.02
    cloud.quats[:] = cloud.quats[::-1]
    got = bake_mpi(cloud, cam, num_planes=5, backend="cpu")
    want = CPUMPIBaker().bake(cloud, cam, num_planes=5)
    np.testing.assert_array_equal(got.rgba, want.rgba)


def test_cpu_bake_skips_non_finite_gaussians(cpu_baker):
    cloud = blob_head(300)
    cam = front_camera(32)
    depths = head_mpi_depths(baking_distance(cloud, cam), 5)
    bad = GaussianCloud(cloud.means.copy(), cloud.quats, cloud.scales.copy(), cloud.opacities,
                        cloud.sh)  # fmt: skip
    bad.means[3] = np.nan
    bad.scales[7] = np.nan
    bad.scales[9, 1] = np.nan
    keep = np.ones(len(cloud), bool)
    keep[[3, 7, 9]] = False
    for softness in (1.0, 0.0):
        got = cpu_baker.bake_uint8(bad, cam, depths, softness)
        want = CPUMPIBaker().bake_uint8(cloud.subset(keep), cam, depths, softness)
        np.testing.assert_array_equal(got, want)


def test_cpu_bake_dtypes_and_empty_cloud(cpu_baker):
    cloud = blob_head(300)
    cam = front_camera(32)
    a = bake_mpi(cloud, cam, num_planes=5, backend="cpu")
    b = bake_mpi(cloud, cam, num_planes=5, backend="cpu", dtype="float32")
    assert a.rgba.dtype == np.uint8 and b.rgba.dtype == np.float32
    np.testing.assert_allclose(b.rgba, a.rgba / 255.0, atol=1e-7)
    empty = cloud.subset(np.zeros(len(cloud), bool))
    mpi = cpu_baker.bake(empty, cam, distance=0.6, num_planes=4)
    assert mpi.rgba.shape == (4, 32, 32, 4) and not mpi.rgba.any()
    with pytest.raises(ValueError, match="increasing"):
        cpu_baker.bake(cloud, cam, depths=[0.6, 0.5])
    with pytest.raises(ValueError, match="softness"):
        cpu_baker.bake(cloud, cam, softness=1.5)
    with pytest.raises(ValueError, match="dtype"):
        cpu_baker.bake(cloud, cam, dtype="int16")


def test_native_off_falls_back(monkeypatch):
    """THS_NATIVE=0: "auto" bakes with GL or torch, "cpu" and MPIBaker(renderer="cpu") raise."""
    import renderers.native as native
    from renderers.bake import release_baker
    from renderers.gl_context import egl_available
    from renderers.native import NativeUnavailable

    release_baker()  # bake_mpi caches its bakers
    monkeypatch.setenv("THS_NATIVE", "0")
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_failure", None)
    cloud = blob_head(200)
    cam = front_camera(24)
    with pytest.raises(NativeUnavailable, match="THS_NATIVE"):
        bake_mpi(cloud, cam, num_planes=4, backend="cpu")
    with pytest.raises(NativeUnavailable):
        CPUMPIBaker()
    mpi = bake_mpi(cloud, cam, num_planes=4)
    want = bake_mpi(cloud, cam, num_planes=4, backend="gl" if egl_available() else "torch")
    np.testing.assert_array_equal(mpi.rgba, want.rgba)
    if egl_available():
        from renderers.bake import MPIBaker, shared_context

        baker = MPIBaker(shared_context())
        assert baker.renderer == "gl"
        baker.release()
        with pytest.raises(NativeUnavailable):
            MPIBaker(shared_context(), renderer="cpu")


@pytest.mark.gl
def test_mpi_baker_picks_the_cpu_rasteriser_on_software_gl(gl, cpu_baker):
    from renderers.bake import MPIBaker, shared_context
    from renderers.gl_tiles import is_software_gl

    ctx = shared_context()
    baker = MPIBaker(ctx)
    try:
        assert baker.renderer == ("cpu" if is_software_gl(ctx) else "gl")
        assert MPIBaker(ctx, renderer="gl").renderer == "gl"
        with pytest.raises(ValueError, match="renderer"):
            MPIBaker(ctx, renderer="vulkan")
    finally:
        baker.release()


@pytest.mark.gl
@pytest.mark.parametrize("softness", [1.0, 0.0])
def test_cpu_bake_matches_gl_bake_on_the_default_head(gl, cpu_baker, softness):
    from models.heads import load_builtin_head
    from renderers.bake import MPIBaker, shared_context
    from renderers.render import render

    head = load_builtin_head("default")
    cloud = GaussianCloud(
        head.means, head.quats, head.scales, head.opacities, head.sh, facing=head.facing
    )
    cam = Camera.look_at((0, 0, 0.6), (0, 0, 0), fov_y_deg=30.0, width=160, height=160)
    gl_baker = MPIBaker(shared_context(), renderer="gl")
    try:
        a = cpu_baker.bake(cloud, cam, softness=softness)
        b = gl_baker.bake(cloud, cam, softness=softness)
    finally:
        gl_baker.release()
    np.testing.assert_array_equal(a.depths, b.depths)
    assert _psnr(a.premultiplied(), b.premultiplied()) >= 45.0
    # At the baking camera both reproduce the Gaussian render (the CPU planes at least as well).
    ref = render(cloud, cam, backend="gl")[0][..., :3]
    pa = _psnr(render(a, cam, backend="gl")[0][..., :3], ref)
    pb = _psnr(render(b, cam, backend="gl")[0][..., :3], ref)
    assert pa >= (35.0 if softness else 45.0)
    assert pa >= pb - 1.0
