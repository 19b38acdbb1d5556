"""GL Gaussian-splat renderer against the torch reference (renderers.reference)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from renderers.camera import Camera, StereoRig
from renderers.gaussians import SH_C0, GaussianCloud
from renderers.reference import render_gaussians_reference

pytestmark = pytest.mark.gl


@pytest.fixture
def renderer(ctx):
    from renderers.gl_splats import GaussianSplatRenderer

    r = GaussianSplatRenderer(ctx)
    yield r
    r.release()


def random_cloud(seed: int, n: int = 400, k: int = 1) -> GaussianCloud:
    """Anisotropic Gaussians in a 0.3 m box around the origin: 0.5 to 12 px at 128x128."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-0.15, 0.15, (n, 3))
    quats = rng.normal(size=(n, 4))
    scales = np.exp(rng.uniform(np.log(0.001), np.log(0.03), (n, 3)))
    opacities = rng.uniform(0.02, 1.0, n)
    sh = rng.normal(scale=0.4, size=(n, k, 3))
    sh[:, 0] = (rng.uniform(0.0, 1.0, (n, 3)) - 0.5) / SH_C0
    return GaussianCloud(
        means, quats / np.linalg.norm(quats, axis=1, keepdims=True), scales, opacities, sh
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


@pytest.mark.parametrize(("seed", "k"), [(0, 1), (1, 1), (2, 4), (3, 16)])
def test_mono_matches_reference(renderer, seed: int, k: int) -> None:
    assert_mono_matches_reference(renderer, seed, k)


def test_stereo_matches_reference_in_one_call(renderer) -> None:
    cloud = random_cloud(7, k=4)
    center = Camera.orbit(distance=0.5, yaw_deg=-15.0, width=128, height=128)
    left, right = StereoRig(ipd=0.063, convergence=0.5).cameras(center)
    renderer.upload(cloud)
    img = renderer.render([left, right])
    assert img.shape == (2, 128, 128, 4)
    for i, cam in enumerate((left, right)):
        assert psnr(img[i], render_gaussians_reference(cloud, cam)) >= 35.0
    assert np.abs(img[0] - img[1]).mean() > 1e-3  # the eyes really differ


def assert_lands_on_the_pinhole_pixel(renderer, tolerance_px: float) -> None:
    """A single small Gaussian's alpha centroid is within ``tolerance_px`` of the pixel the
    pinhole model predicts (off-centre principal point; any renderer with upload/render)."""
    point = np.array([[0.031, -0.017, 0.02]])
    cloud = GaussianCloud.from_colors(
        point, [[1.0, 0.0, 0.0, 0.0]], [[0.004, 0.004, 0.004]], [0.9], [[1.0, 1.0, 1.0]]
    )
    cam = Camera.orbit(distance=0.5, yaw_deg=10.0, pitch_deg=5.0, width=96, height=80)
    cam = cam.with_principal_point(50.3, 37.1)
    renderer.upload(cloud)
    alpha = renderer.render([cam])[0, ..., 3].astype(np.float64)
    u, v = cam.project(point)[0][0]
    jj, ii = np.meshgrid(np.arange(96) + 0.5, np.arange(80) + 0.5)
    total = alpha.sum()
    assert total > 1.0
    centroid = ((alpha * jj).sum() / total, (alpha * ii).sum() / total)
    assert abs(centroid[0] - u) < tolerance_px and abs(centroid[1] - v) < tolerance_px


def assert_mono_matches_reference(renderer, seed: int, k: int) -> None:
    """A splat renderer's mono image of a random cloud (k SH coefficients) against the torch
    reference: shape, dtype and >= 35 dB (the scene covering the image)."""
    cloud = random_cloud(seed, k=k)
    cam = Camera.orbit(distance=0.6, yaw_deg=25.0 * seed, pitch_deg=-8.0, width=128, height=128)
    bg = (0.2, 0.3, 0.4)
    renderer.upload(cloud)
    img = renderer.render([cam], background=bg)
    assert img.shape == (1, 128, 128, 4) and img.dtype == np.float32
    ref = render_gaussians_reference(cloud, cam, background=bg)
    assert ref[..., 3].mean() > 0.2  # the scene really covers the image
    assert psnr(img[0], ref) >= 35.0


def assert_draws_over_existing_content(ctx, renderer) -> None:
    """``renderer.draw`` into the right half of a caller's framebuffer with background None:
    the left half stays as it was and the right half matches the reference over that colour."""
    fb = ctx.framebuffer(color_attachments=[ctx.renderbuffer((64, 48), 4)])
    fb.use()
    ctx.clear(0.0, 0.0, 1.0, 1.0)
    cloud = random_cloud(5, n=60)
    cam = Camera.orbit(distance=0.6, width=32, height=48)
    renderer.upload(cloud)
    renderer.draw(cam, fb, viewport=(32, 0, 32, 48), background=None)
    raw = np.frombuffer(fb.read(components=4), np.uint8).reshape(48, 64, 4)[::-1] / 255.0
    assert np.all(raw[:, :32] == [0.0, 0.0, 1.0, 1.0])  # left half untouched
    ref = render_gaussians_reference(cloud, cam, background=(0.0, 0.0, 1.0))
    assert psnr(raw[:, 32:, :3], ref[..., :3]) >= 35.0
    fb.release()


def test_single_gaussian_lands_where_the_pinhole_predicts(renderer) -> None:
    assert_lands_on_the_pinhole_pixel(renderer, 0.1)


def test_sort_skipped_when_nothing_changed_and_update_matches_upload(renderer) -> None:
    cloud = random_cloud(11)
    cam = Camera.orbit(distance=0.6, width=64, height=64)
    renderer.upload(cloud)
    first = renderer.render([cam])
    sorts = renderer.sorter.sorts
    again = renderer.render([cam])
    assert renderer.sorter.sorts == sorts  # same pose, same cloud: no re-sort
    np.testing.assert_array_equal(first, again)

    moved = cloud.means + np.float32(0.01)
    renderer.update(means=moved, quats=cloud.quats, scales=cloud.scales * 1.2)
    updated = renderer.render([cam])
    assert renderer.sorter.sorts == sorts + 1
    from dataclasses import replace

    fresh = replace(cloud, means=moved, scales=cloud.scales * 1.2)
    renderer.upload(fresh)
    np.testing.assert_allclose(updated, renderer.render([cam]), atol=1e-6)
    with pytest.raises(ValueError, match="quats and scales"):
        renderer.update(quats=cloud.quats)
    with pytest.raises(ValueError, match="means must have shape"):
        renderer.update(means=cloud.means[:5])


def test_draw_into_caller_framebuffer_blends_over_existing_content(ctx, renderer) -> None:
    # The Qt viewport passes its own framebuffer and may composite over what it drew before.
    assert_draws_over_existing_content(ctx, renderer)


def test_empty_cloud_and_everything_behind_the_camera(renderer) -> None:
    cam = Camera.orbit(distance=0.6, width=32, height=32)
    renderer.upload(random_cloud(0, n=0))
    img = renderer.render([cam], background=(0.5, 0.25, 0.0))
    np.testing.assert_allclose(
        img[0, ..., :3], np.broadcast_to([0.5, 0.25, 0.0], (32, 32, 3)), atol=2e-3
    )
    assert img[..., 3].max() == 0.0
    behind = random_cloud(1, n=50)
    behind.means[:] = cam.position + 0.2  # all at z < 0 in the camera... or beside it
    behind.means[:, 2] = cam.position[2] + 0.3
    renderer.upload(behind)
    assert renderer.render([cam])[..., 3].max() == 0.0


def test_packed_covariances_match_float64_matrices() -> None:
    from renderers.gaussians import quats_to_rotmats
    from renderers.gl_splats import packed_covariances

    cloud = random_cloud(21, n=300)
    rot = quats_to_rotmats(cloud.quats)
    m = rot * cloud.scales.astype(np.float64)[:, None, :]
    full = m @ m.transpose(0, 2, 1)
    ref = full[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    got = packed_covariances(cloud.quats * 3.0, cloud.scales)  # unnormalised quats are fine
    assert got.dtype == np.float32 and got.shape == (300, 6)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6 * float(np.abs(ref).max()))


def test_partial_updates_and_covariances_match_a_fresh_upload(renderer) -> None:
    from dataclasses import replace

    from renderers.gl_splats import packed_covariances

    cloud = random_cloud(13)
    cam = Camera.orbit(distance=0.6, width=64, height=64)
    renderer.upload(cloud)
    rng = np.random.default_rng(0)
    moved = cloud.means + rng.normal(scale=0.005, size=cloud.means.shape)
    opac = np.clip(cloud.opacities * 0.7, 0.0, 1.0)
    scales = cloud.scales * 1.3
    renderer.update(means=moved)  # means alone: the opacities on the GPU stay as they are
    renderer.update(covariances=packed_covariances(cloud.quats, scales))
    after_means = renderer.render([cam])
    renderer.upload(replace(cloud, means=moved, scales=scales))
    np.testing.assert_allclose(after_means, renderer.render([cam]), atol=1e-6)
    renderer.update(opacities=opac)  # opacities alone keep the moved means
    after_opac = renderer.render([cam])
    renderer.upload(replace(cloud, means=moved, scales=scales, opacities=opac))
    np.testing.assert_allclose(after_opac, renderer.render([cam]), atol=1e-6)
    with pytest.raises(ValueError, match="covariances must have shape"):
        renderer.update(covariances=np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError, match="not both"):
        renderer.update(covariances=np.zeros((400, 6)), quats=cloud.quats, scales=cloud.scales)


@pytest.mark.parametrize("pieces", [1, 3, 7])
def test_ranged_drawing_equals_one_draw(renderer, pieces: int) -> None:
    """prepare() + draw_prepared() over K consecutive ranges of the sorted triangles composites
    exactly like one draw() (the viewport refines slow full-quality frames this way)."""
    from renderers.gl_context import OffscreenTarget

    cloud = random_cloud(11, n=900, k=4)
    cloud.facing = np.where(np.arange(len(cloud)) % 3 == 0, 1, 0).astype(np.int8)
    center = Camera.orbit(distance=0.55, yaw_deg=20.0, pitch_deg=-5.0, width=96, height=80)
    left, right = StereoRig(ipd=0.063, convergence=0.5).cameras(center)
    renderer.upload(cloud)
    bg = (0.1, 0.2, 0.3)
    one = renderer.render([left, right], background=bg)

    target = OffscreenTarget(renderer.ctx)
    try:
        fbo = target.framebuffer(2 * 96, 80)
        for i, cam in enumerate((left, right)):
            vp = (i * 96, 0, 96, 80)
            m = renderer.prepare(cam)
            assert 0 < m <= len(cloud)
            cuts = np.linspace(0, m, pieces + 1).round().astype(int)
            renderer.draw_prepared(fbo, 0, 0, viewport=vp, background=bg)  # clear only
            for a, b in itertools.pairwise(cuts):
                renderer.draw_prepared(fbo, int(a), int(b), viewport=vp)
        strip = target.read(0, 0, 2 * 96, 80)
    finally:
        target.release()
    ranged = strip.reshape(80, 2, 96, 4).transpose(1, 0, 2, 3)
    assert one[..., 3].mean() > 0.1
    assert np.abs(ranged - one).max() <= 1.0 / 255.0 + 1e-6


def test_draw_prepared_contract(renderer) -> None:
    cloud = random_cloud(12, n=50)
    cam = Camera.orbit(distance=0.6, width=32, height=32)
    renderer.upload(cloud)
    fbo = renderer.target.framebuffer(32, 32)
    with pytest.raises(RuntimeError):
        renderer.draw_prepared(fbo)  # nothing prepared since the upload
    m = renderer.prepare(cam)
    with pytest.raises(ValueError):
        renderer.draw_prepared(fbo, 0, m + 1)
    renderer.draw_prepared(fbo, 0, m)
    renderer.update(opacities=cloud.opacities)
    with pytest.raises(RuntimeError):
        renderer.draw_prepared(fbo)  # stale after an update
