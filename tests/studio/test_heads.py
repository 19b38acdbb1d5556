"""studio.heads: head references -> rigged heads, arrays -> clouds, LOD sub-heads, baked MPIs."""

from __future__ import annotations

import numpy as np
import pytest

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
from renderers import GaussianCloud
from studio import heads
from studio.document import HeadRef, Project


@pytest.fixture(scope="module")
def head():
    return heads.resolve_head(None)


def test_default_head_is_resolved_once_and_cached(head):
    assert len(head) > 1000
    assert heads.resolve_head("builtin:default") is head
    assert heads.resolve_head(HeadRef("builtin:default", "head")) is head
    assert heads.project_head(Project.new()) is head  # no head: the default one


def test_bad_references_raise_one_line_errors(tmp_path):
    with pytest.raises(heads.HeadResolveError, match="unknown built-in head"):
        heads.resolve_head("builtin:nope")
    with pytest.raises(heads.HeadResolveError, match="cannot load head"):
        heads.resolve_head(str(tmp_path / "missing.thead"))
    bad = tmp_path / "bad.thead"
    bad.write_bytes(b"not a zip")
    with pytest.raises(heads.HeadResolveError, match=r"bad\.thead"):
        heads.resolve_head(str(bad))
    with pytest.raises(heads.HeadResolveError, match="MPI"):
        heads.resolve_head(HeadRef("x", "mpi"))


def test_arrays_to_cloud_keeps_every_field(head):
    values = CHANNEL_DEFAULTS.copy()
    values[CHANNEL_INDEX["yaw"]] = 20.0
    values[CHANNEL_INDEX["exp_19_y"]] = 0.05
    arrays = head.deform(values)
    cloud = heads.arrays_to_cloud(arrays)
    assert isinstance(cloud, GaussianCloud)
    assert len(cloud) == len(head)
    for name in ("means", "quats", "scales", "opacities", "sh"):
        a, b = getattr(arrays, name), getattr(cloud, name)
        assert b.dtype == np.float32 and b.shape == a.shape
        np.testing.assert_array_equal(a, b)
    assert np.shares_memory(cloud.means, arrays.means)  # no copy per frame
    # Same frame convention: the rig's RUB metres are the renderers' world space.
    assert not np.allclose(cloud.means, head.means)


def test_deformed_cloud_at_rest_is_the_rest_pose(head):
    cloud = heads.deformed_cloud(head, CHANNEL_DEFAULTS)
    np.testing.assert_array_equal(cloud.means, head.means)
    rest = heads.rest_cloud(head)
    np.testing.assert_array_equal(rest.sh, head.sh)


def test_lod_head_is_a_rigged_subset(head):
    from models.heads.rig import PART_INDEX

    sub = heads.lod_head(head, 5000)
    assert 4900 < len(sub) <= 5000

    # Facial features keep a larger share than skin (eyes and brows survive the budget).
    def share(name: str) -> float:
        return (sub.parts == PART_INDEX[name]).sum() / (head.parts == PART_INDEX[name]).sum()

    assert share("iris_r") > 3 * share("skin") > 0
    assert sub.scales.max() <= heads._MAX_LOD_GROWTH * head.scales.max() + 1e-6  # bounded growth
    assert heads.lod_head(head, 5000) is sub
    assert heads.lod_head(head, len(head) + 1) is head
    index = sub.metadata["lod_index"]
    values = CHANNEL_DEFAULTS.copy()
    values[CHANNEL_INDEX["pitch"]] = 10.0
    values[CHANNEL_INDEX["exp_17_y"]] = 0.03
    # The sub-head deforms exactly like the same Gaussians of the full head.
    np.testing.assert_allclose(
        sub.deform(values).means, head.deform(values).means[index], atol=1e-6
    )
    np.testing.assert_allclose(sub.keypoints_world(values), head.keypoints_world(values))
    with pytest.raises(ValueError, match="budget"):
        heads.lod_head(head, 0)


@pytest.mark.parametrize("budget", [12_500, 6_250])
def test_lod_sub_heads_cover_the_head_without_holes(head, budget):
    """Where the full head is opaque, its LOD sub-head is too: kept discs stand in for the patch
    they replace. (A random subset grown uniformly left 4-18 % of these pixels see-through.)"""
    from renderers.camera import Camera
    from renderers.gl_context import egl_available
    from renderers.render import render

    if not egl_available():
        pytest.skip("no headless EGL OpenGL context")
    sub = heads.lod_head(head, budget)
    for eye in ((0.0, 0.0, 0.6), (0.35, 0.1, 0.5)):
        cam = Camera.look_at(eye, (0, 0, 0), fov_y_deg=30.0, width=96, height=96)
        full = np.asarray(render(heads.rest_cloud(head), cam))[..., 3].reshape(96, 96)
        lod = np.asarray(render(heads.rest_cloud(sub), cam))[..., 3].reshape(96, 96)
        opaque = full > 0.98
        assert opaque.mean() > 0.2  # the head fills the view
        assert (opaque & (lod < 0.9)).mean() < 0.005


def _tiny_mpi():
    from renderers import MPI, Camera

    rgba = np.zeros((3, 16, 16, 4), np.float32)
    rgba[:, 4:12, 4:12] = (0.8, 0.5, 0.3, 0.7)
    return MPI(rgba, np.array([0.5, 0.6, 0.7]), Camera.from_fov(30, 16, 16))


def test_resolve_mpi(tmp_path):
    from renderers.formats.mpi_folder import write_mpi_folder

    assert heads.resolve_mpi(Project.new()) is None
    write_mpi_folder(tmp_path / "head_mpi", _tiny_mpi())
    project = Project.new()
    project.head = HeadRef("head_mpi", "mpi")
    # Relative paths are looked up beside the project file.
    mpi = heads.resolve_mpi(project, tmp_path / "p.ths")
    assert mpi.num_planes == 3 and mpi.width == 16
    project.head = HeadRef(str(tmp_path / "missing"), "mpi")
    with pytest.raises(heads.HeadResolveError, match="MPI"):
        heads.resolve_mpi(project)
    assert heads.project_head(project) is heads.resolve_head(None)


def test_prepare_head_builds_the_rig_data_of_the_head_and_its_lod_sub_heads(head):
    heads.prepare_head(head, [20_000, None, 10 * len(head)])
    sub = heads.lod_head(head, 20_000)  # the cached sub-head prepare_head built
    for h in (head, sub):
        assert h._stretch_fits is not None
    fits = sub._stretch_fits
    values = CHANNEL_DEFAULTS.copy()
    values[CHANNEL_INDEX["exp_19_y"]] = 0.05  # the jaw stretches the skin: the fits are used
    sub.deform(values)
    assert sub._stretch_fits is fits  # not rebuilt on the first expressive frame
