"""One-sided surfels (GaussianCloud.facing): .ply round trip, back-face culling in GL and the
torch reference, and the shared culling rule."""

from __future__ import annotations

import numpy as np
import pytest

from models.heads.rig import quat_multiply
from renderers.camera import Camera
from renderers.formats import read_ply, write_ply
from renderers.gaussians import BACKFACE_COS, GaussianCloud, backfacing, facing_normals
from renderers.reference import render_gaussians_reference


def shell_cloud(seed: int, n: int = 300) -> GaussianCloud:
    """Flat discs on a 6 cm sphere, local z along the outward normal for facing +1, inward for
    facing -1 (so the outward normal facing * R[:, 2] always points out), some two-sided."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    facing = rng.choice(np.array([-1, 0, 1], np.int8), n)
    z = d * np.where(facing < 0, -1.0, 1.0)[:, None]
    # Quaternion turning +z onto z (half-way vector), then a random spin about it.
    q = np.concatenate([1.0 + z[:, 2:3], np.cross([0.0, 0.0, 1.0], z)], 1)
    q[q[:, 0] < 1e-6] = [0.0, 1.0, 0.0, 0.0]  # z = -e_z: turn by pi about x
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    spin = rng.uniform(0, np.pi, n)
    s = np.stack([np.cos(spin / 2), 0 * spin, 0 * spin, np.sin(spin / 2)], 1)
    quats = quat_multiply(q, s)
    t = rng.uniform(0.006, 0.012, n)
    scales = np.stack([t, 0.8 * t, 0.1 * t], 1)
    colors = rng.uniform(0.1, 0.9, (n, 3))
    return GaussianCloud.from_colors(
        0.06 * d, quats, scales, rng.uniform(0.5, 0.99, n), colors, facing=facing
    )


def disc(facing: int) -> GaussianCloud:
    """One disc at the origin, local z = world +z (towards a frontal camera)."""
    return GaussianCloud.from_colors(
        np.zeros((1, 3)), [[1.0, 0, 0, 0]], [[0.02, 0.015, 0.002]], [0.9], [[0.9, 0.5, 0.2]],
        facing=[facing],
    )  # fmt: skip


def assert_one_sided_culled_like_the_reference(renderer, k: int) -> None:
    """A splat renderer culls a shell of mixed-facing discs (k SH coefficients) as the torch
    reference does, with back-face culling on and off (>= 35 dB both ways)."""
    from dataclasses import replace

    cloud = shell_cloud(3)
    if k > 1:
        sh = np.zeros((len(cloud), k, 3))
        sh[:, :1] = cloud.sh
        sh[:, 1:] = np.random.default_rng(3).normal(scale=0.1, size=(len(cloud), k - 1, 3))
        cloud = replace(cloud, sh=sh)
    cam = Camera.orbit(distance=0.3, yaw_deg=30.0, width=64, height=64)
    renderer.upload(cloud)
    img = renderer.render([cam])[0]
    assert psnr(img, render_gaussians_reference(cloud, cam)) >= 35.0
    renderer.backface_culling = False
    both = renderer.render([cam])[0]
    assert psnr(both, render_gaussians_reference(cloud, cam, backface_culling=False)) >= 35.0
    assert np.abs(both - img).max() > 0.05  # culling really changed something
    renderer.backface_culling = True


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


CAM = Camera.orbit(distance=0.5, width=48, height=48)


# ----------------------------------------------------------------------------- data and rule
def test_shell_normals_point_outwards() -> None:
    cloud = shell_cloud(0)
    n = cloud.normals()
    one = cloud.facing != 0
    assert np.all(np.abs(np.linalg.norm(n[one], axis=1) - 1) < 1e-5)
    assert np.all(n[~one] == 0)
    assert np.all(np.sum(n[one] * cloud.means[one], axis=1) > 0.059)


def test_facing_defaults_and_validation() -> None:
    c = disc(0)
    assert c.facing.dtype == np.int8 and not c.one_sided
    assert GaussianCloud(c.means, c.quats, c.scales, c.opacities, c.sh).facing.tolist() == [0]
    with pytest.raises(ValueError, match="facing"):
        GaussianCloud(c.means, c.quats, c.scales, c.opacities, c.sh, facing=[2])
    with pytest.raises(ValueError, match="facing"):
        GaussianCloud(c.means, c.quats, c.scales, c.opacities, c.sh, facing=[0, 1])
    assert disc(-1).subset(np.array([0])).facing.tolist() == [-1]


def test_backfacing_rule_and_margin() -> None:
    c = disc(1)
    assert not backfacing(c, [0, 0, 1.0])[0]  # in front
    assert backfacing(c, [0, 0, -1.0])[0]  # behind
    # just inside / outside the grazing margin (cos of the view direction to the normal)
    for cos, culled in ((BACKFACE_COS - 0.01, False), (BACKFACE_COS + 0.01, True)):
        pos = -np.array([np.sqrt(1 - cos**2), 0.0, cos])
        assert backfacing(c, pos)[0] == culled
    assert not backfacing(disc(0), [0, 0, -1.0])[0]  # two-sided: never


def test_flip_yz_keeps_the_culled_set() -> None:
    cloud = shell_cloud(1)
    pos = np.array([0.1, -0.3, 0.4])
    flipped = cloud.flip_yz()
    assert np.array_equal(flipped.facing, -cloud.facing)
    assert np.array_equal(backfacing(cloud, pos), backfacing(flipped, pos * [1, -1, -1]))
    assert backfacing(cloud, pos).any()


@pytest.mark.parametrize("axes", ["rub", "rdf"])
def test_ply_round_trip(tmp_path, axes: str) -> None:
    cloud = shell_cloud(2)
    path = tmp_path / "c.ply"
    write_ply(path, cloud, axes=axes)
    back = read_ply(path)
    assert np.array_equal(back.facing, cloud.facing)
    assert np.array_equal(back.quats, cloud.quats)
    # the file holds the outward normals in its own axes
    raw = read_ply(path, axes="rub")  # as stored: no conversion
    sign = np.array([1, -1, -1]) if axes == "rdf" else np.ones(3)
    np.testing.assert_allclose(raw.normals(), cloud.normals() * sign, atol=1e-6)


def test_ply_normals_ignored_without_our_comment(tmp_path) -> None:
    cloud = shell_cloud(3)
    path = tmp_path / "c.ply"
    write_ply(path, cloud)
    data = path.read_bytes().replace(b"comment facing nx ny nz\n", b"")
    (tmp_path / "other.ply").write_bytes(data)
    assert not read_ply(tmp_path / "other.ply").one_sided  # e.g. a tool's point normals
    assert np.array_equal(read_ply(tmp_path / "other.ply", facing=True).facing, cloud.facing)
    assert not read_ply(path, facing=False).one_sided
    # a two-sided cloud writes zero normals and no comment, like 3DGS
    write_ply(path, disc(0))
    assert b"comment facing" not in path.read_bytes()[:400]
    assert not read_ply(path, facing=True).one_sided


# ----------------------------------------------------------------------------- reference
def test_reference_culls_a_disc_facing_away() -> None:
    back_cam = Camera.orbit(distance=0.5, yaw_deg=180.0, width=48, height=48)
    assert render_gaussians_reference(disc(1), back_cam)[..., 3].max() == 0.0
    two = render_gaussians_reference(disc(0), back_cam)
    assert two[..., 3].max() > 0.5
    np.testing.assert_array_equal(
        render_gaussians_reference(disc(1), back_cam, backface_culling=False), two
    )
    np.testing.assert_array_equal(
        render_gaussians_reference(disc(1), CAM), render_gaussians_reference(disc(0), CAM)
    )


# ----------------------------------------------------------------------------- GL
@pytest.fixture
def renderer(ctx):
    from renderers.gl_splats import GaussianSplatRenderer

    r = GaussianSplatRenderer(ctx)
    yield r
    r.release()


@pytest.mark.gl
def test_gl_disc_facing_away_renders_nothing(renderer) -> None:
    back_cam = Camera.orbit(distance=0.5, yaw_deg=180.0, width=48, height=48)
    renderer.upload(disc(1))
    assert renderer.render(back_cam)[..., 3].max() == 0.0
    facing_us = renderer.render(CAM)
    renderer.backface_culling = False
    assert renderer.render(back_cam)[..., 3].max() > 0.5
    renderer.backface_culling = True
    renderer.upload(disc(0))
    np.testing.assert_array_equal(facing_us, renderer.render(CAM))
    assert renderer.render(back_cam)[..., 3].max() > 0.5


@pytest.mark.gl
@pytest.mark.parametrize(("yaw", "k"), [(0.0, 1), (120.0, 1), (230.0, 1), (120.0, 16)])
def test_gl_matches_reference_with_mixed_facing(renderer, yaw: float, k: int) -> None:
    """k = 16 (degree 3) culls on the CPU (no vertex input left for the normal)."""
    cloud = shell_cloud(4)
    if k > 1:
        rng = np.random.default_rng(5)
        sh = np.concatenate([cloud.sh, rng.normal(scale=0.3, size=(len(cloud), k - 1, 3))], 1)
        cloud = GaussianCloud(
            cloud.means, cloud.quats, cloud.scales, cloud.opacities, sh, facing=cloud.facing
        )
    cam = Camera.orbit(distance=0.35, yaw_deg=yaw, pitch_deg=20.0, width=96, height=96)
    renderer.upload(cloud)
    gl = renderer.render(cam, background=(0.2, 0.3, 0.4))[0]
    ref = render_gaussians_reference(cloud, cam, background=(0.2, 0.3, 0.4))
    assert psnr(gl, ref) >= 35.0
    # culling mattered: without it the reference differs
    ref_all = render_gaussians_reference(cloud, cam, (0.2, 0.3, 0.4), backface_culling=False)
    assert np.abs(ref_all - ref).max() > 0.05


@pytest.mark.gl
def test_gl_normals_follow_update(renderer) -> None:
    """Quats given to update() turn the normals: a disc turned to face away disappears."""
    renderer.upload(disc(1))
    assert renderer.render(CAM)[..., 3].max() > 0.5
    turned = np.array([[0.0, 1.0, 0.0, 0.0]], np.float32)  # pi about x: local z -> world -z
    renderer.update(quats=turned, scales=disc(1).scales)
    assert renderer.render(CAM)[..., 3].max() == 0.0
    renderer.update(facing=np.zeros(1, np.int8))
    assert renderer.render(CAM)[..., 3].max() > 0.5


def test_facing_normals_unnormalised_quats() -> None:
    q = np.array([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]])
    n = facing_normals(q, np.array([1, -1]))
    np.testing.assert_allclose(n, [[0, 0, 1], [0, 0, 1]], atol=1e-6)
