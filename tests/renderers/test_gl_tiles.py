"""Tile-based compute-shader splat renderer (renderers.gl_tiles) against the torch reference and
the triangle renderer (renderers.gl_splats)."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.camera import Camera, StereoRig
from renderers.gaussians import GaussianCloud
from renderers.reference import render_gaussians_reference
from tests.renderers.test_gl_splats import (
    assert_draws_over_existing_content,
    assert_lands_on_the_pinhole_pixel,
    assert_mono_matches_reference,
    psnr,
    random_cloud,
)
from tests.renderers.test_splat_facing import assert_one_sided_culled_like_the_reference

pytestmark = pytest.mark.gl


@pytest.fixture
def renderer(ctx):
    from renderers.gl_tiles import TiledSplatRenderer

    r = TiledSplatRenderer(ctx)
    yield r
    r.release()


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


@pytest.mark.parametrize("tile", [(16, 16), (8, 16), (16, 4)])
def test_other_tile_shapes_match_reference(ctx, tile: tuple[int, int]) -> None:
    from renderers.gl_tiles import TiledSplatRenderer

    r = TiledSplatRenderer(ctx, tile_width=tile[0], tile_height=tile[1])
    cloud = random_cloud(4)
    cam = Camera.orbit(distance=0.6, yaw_deg=40.0, width=100, height=76)  # partial tiles
    r.upload(cloud)
    assert psnr(r.render([cam])[0], render_gaussians_reference(cloud, cam)) >= 35.0
    r.release()


def test_float_target_is_closer_to_the_reference(ctx, renderer) -> None:
    from renderers.gl_tiles import TiledSplatRenderer

    cloud = random_cloud(6)
    cam = Camera.orbit(distance=0.6, yaw_deg=-30.0, width=96, height=96)
    ref = render_gaussians_reference(cloud, cam, background=(0.3, 0.2, 0.1))
    r16 = TiledSplatRenderer(ctx, dtype="f4")
    r16.upload(cloud)
    renderer.upload(cloud)
    p8 = psnr(renderer.render([cam], (0.3, 0.2, 0.1))[0], ref)
    p16 = psnr(r16.render([cam], (0.3, 0.2, 0.1))[0], ref)
    assert p16 >= 45.0 and p16 > p8
    r16.release()


def test_gaussians_across_tile_borders_and_image_edges(renderer) -> None:
    # Large and small Gaussians centred on tile corners, on the image border and just outside
    # it, on an image whose size is not a multiple of the tile.
    cam = Camera.orbit(distance=0.5, width=45, height=37)
    targets = [(8.0, 8.0), (16.0, 24.0), (0.0, 20.0), (44.9, 36.9), (-2.0, 10.0), (23.5, 39.0)]
    pts = []
    for u, v in targets:
        ray = np.linalg.inv(cam.K) @ np.array([u, v, 1.0])
        world = np.linalg.inv(cam.world_to_camera) @ np.append(0.5 * ray / ray[2], 1.0)
        pts.append(world[:3])
    n = len(pts)
    sizes = np.array([0.004, 0.012, 0.008, 0.01, 0.006, 0.009])[:, None].repeat(3, 1)
    cloud = GaussianCloud.from_colors(
        np.array(pts), np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)), sizes, np.full(n, 0.8),
        np.random.default_rng(0).uniform(0.2, 1.0, (n, 3)),
    )  # fmt: skip
    renderer.upload(cloud)
    img = renderer.render([cam], background=(0.1, 0.1, 0.1))[0]
    ref = render_gaussians_reference(cloud, cam, background=(0.1, 0.1, 0.1))
    assert ref[..., 3].max() > 0.5
    assert psnr(img, ref) >= 40.0
    assert np.abs(img - ref).max() < 0.03  # no seam or missing piece anywhere


def test_single_gaussian_lands_where_the_pinhole_predicts(renderer) -> None:
    assert_lands_on_the_pinhole_pixel(renderer, 0.1)


@pytest.mark.parametrize("k", [1, 16])  # 16: the normals stay on the CPU (binning culls)
def test_one_sided_back_faces_culled_like_the_reference(renderer, k: int) -> None:
    assert_one_sided_culled_like_the_reference(renderer, k)


def test_empty_cloud_and_everything_culled(renderer) -> None:
    cam = Camera.orbit(distance=0.6, width=32, height=32)
    renderer.upload(random_cloud(0, n=0))
    img = renderer.render([cam], background=(0.5, 0.25, 0.0))
    np.testing.assert_allclose(
        img[0, ..., :3], np.broadcast_to([0.5, 0.25, 0.0], (32, 32, 3)), atol=2e-3
    )
    assert img[..., 3].max() == 0.0
    behind = random_cloud(1, n=50)
    behind.means[:, 2] = cam.position[2] + 0.3  # behind the camera (it looks along -z)
    renderer.upload(behind)
    assert renderer.render([cam])[..., 3].max() == 0.0
    off = random_cloud(2, n=50)
    off.means[:, 0] += 1.0  # in front, but far off to the side
    renderer.upload(off)
    assert renderer.render([cam])[..., 3].max() == 0.0


def test_draw_into_caller_framebuffer_blends_over_existing_content(ctx, renderer) -> None:
    assert_draws_over_existing_content(ctx, renderer)


def test_update_matches_upload_and_bad_input_errors(renderer) -> None:
    from dataclasses import replace

    cloud = random_cloud(11)
    cam = Camera.orbit(distance=0.6, width=64, height=64)
    renderer.upload(cloud)
    moved = cloud.means + np.float32(0.01)
    renderer.update(means=moved, quats=cloud.quats, scales=cloud.scales * 1.2)
    updated = renderer.render([cam])
    renderer.upload(replace(cloud, means=moved, scales=cloud.scales * 1.2))
    np.testing.assert_allclose(updated, renderer.render([cam]), atol=1e-6)
    with pytest.raises(ValueError, match="quats and scales"):
        renderer.update(quats=cloud.quats)
    with pytest.raises(ValueError, match="means must have shape"):
        renderer.update(means=cloud.means[:5])
    with pytest.raises(ValueError, match="no cameras"):
        renderer.render([])
    with pytest.raises(ValueError, match="one image size"):
        renderer.render([cam, Camera.orbit(distance=0.6, width=32, height=64)])


def test_needs_compute_shaders_and_a_valid_tile(ctx) -> None:
    from renderers.gl_tiles import TiledSplatRenderer

    with pytest.raises(ValueError, match="tile"):
        TiledSplatRenderer(ctx, tile_width=12)
    with pytest.raises(ValueError, match="tile"):
        TiledSplatRenderer(ctx, tile_height=0)

    class OldContext:
        version_code = 410

    with pytest.raises(RuntimeError, match=r"OpenGL 4\.3"):
        TiledSplatRenderer(OldContext())  # type: ignore[arg-type]


def test_default_head_matches_the_triangle_renderer(ctx, renderer) -> None:
    from dataclasses import replace

    from models.heads import load_builtin_head
    from renderers.gl_splats import GaussianSplatRenderer
    from studio.heads import rest_cloud

    cloud = rest_cloud(load_builtin_head("default"))
    cloud = replace(cloud, means=cloud.means - cloud.means.mean(0))
    tri = GaussianSplatRenderer(ctx)
    tri.upload(cloud)
    renderer.upload(cloud)
    for yaw in (-20.0, 35.0, 180.0):
        cams = [Camera.orbit(distance=0.55, yaw_deg=yaw, fov_y_deg=30.0, width=256, height=256)]
        ours, theirs = renderer.render(cams, (1.0, 1.0, 1.0)), tri.render(cams, (1.0, 1.0, 1.0))
        assert theirs[..., 3].mean() > 0.2
        assert psnr(ours, theirs) >= 35.0
    tri.release()


def test_splat_renderer_for_picks_the_fastest_renderer(ctx, monkeypatch):
    """Software GL: the native CPU renderer when it can be built, else the tiled compute one
    (THS_NATIVE=0 stands for a machine without a C compiler); a GPU: triangles."""
    from renderers import native
    from renderers.cpu_splats import CPUSplatRenderer
    from renderers.gl_splats import GaussianSplatRenderer
    from renderers.gl_tiles import TiledSplatRenderer, is_software_gl, splat_renderer_for

    software = is_software_gl(ctx)
    renderer = splat_renderer_for(ctx)
    try:
        if software and native.native_available():
            assert isinstance(renderer, CPUSplatRenderer)
        elif software and ctx.version_code >= 430:
            assert isinstance(renderer, TiledSplatRenderer)
        else:
            assert type(renderer) is GaussianSplatRenderer
    finally:
        renderer.release()
    monkeypatch.setenv("THS_NATIVE", "0")
    monkeypatch.setattr(native, "_library", None)
    renderer = splat_renderer_for(ctx)
    try:
        if software and ctx.version_code >= 430:
            assert isinstance(renderer, TiledSplatRenderer)
        else:
            assert type(renderer) is GaussianSplatRenderer
    finally:
        renderer.release()
