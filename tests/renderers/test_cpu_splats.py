"""Native CPU splat rasteriser (renderers.cpu_splats, renderers/native/splat_cpu.c) against the
torch reference, plus its own contracts: uint8 output, plane atlas, bad input, threads."""

from __future__ import annotations

import os
from dataclasses import replace

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
from tests.renderers.test_splat_facing import (
    assert_one_sided_culled_like_the_reference,
)

native = pytest.importorskip("renderers.native")
if not native.native_available():  # no C compiler here: the GL renderers are used instead
    pytest.skip("native kernels unavailable", allow_module_level=True)

from renderers.cpu_splats import CPUSplatRenderer  # noqa: E402


@pytest.fixture
def renderer() -> CPUSplatRenderer:
    return CPUSplatRenderer(threads=2)


def _cam(yaw: float = 0.0, size: int = 128, **kw) -> Camera:
    return Camera.orbit(distance=0.6, yaw_deg=yaw, pitch_deg=-8.0, width=size, height=size, **kw)


def _subset(cloud: GaussianCloud, keep: np.ndarray) -> GaussianCloud:
    facing = None if cloud.facing is None else cloud.facing[keep]
    return replace(
        cloud, means=cloud.means[keep], quats=cloud.quats[keep], scales=cloud.scales[keep],
        opacities=cloud.opacities[keep], sh=cloud.sh[keep], facing=facing,
    )  # fmt: skip


# ----------------------------------------------------------------------------- against the oracle
@pytest.mark.parametrize(("seed", "k"), [(0, 1), (2, 4), (3, 16)])
def test_mono_matches_reference(renderer, seed: int, k: int) -> None:
    assert_mono_matches_reference(renderer, seed, k)


def test_stereo_pair_matches_reference(renderer) -> None:
    cloud = random_cloud(7, k=16)
    left, right = StereoRig(ipd=0.063, convergence=0.5).cameras(_cam(-15.0))
    renderer.upload(cloud)
    img = renderer.render([left, right], background=(0.1, 0.1, 0.1))
    assert img.shape == (2, 128, 128, 4)
    for i, cam in enumerate((left, right)):
        ref = render_gaussians_reference(cloud, cam, background=(0.1, 0.1, 0.1))
        assert psnr(img[i], ref) >= 35.0
    assert np.abs(img[0] - img[1]).mean() > 1e-3  # the eyes really differ


def test_cameras_of_one_call_equal_separate_calls(renderer) -> None:
    # A parallel rig shares one depth sort; unrelated cameras are sorted one by one.
    cloud = random_cloud(12, k=4)
    rig = list(StereoRig(ipd=0.063, convergence=0.5).cameras(_cam(5.0, size=64)))
    other = [_cam(40.0, size=64), _cam(-70.0, size=64).with_principal_point(20.0, 40.0)]
    renderer.upload(cloud)
    for cams in (rig, other, rig + other):
        together = renderer.render(cams, (0.2, 0.2, 0.2))
        for i, cam in enumerate(cams):
            np.testing.assert_array_equal(together[i], renderer.render([cam], (0.2, 0.2, 0.2))[0])


def test_stereo_strip_is_the_two_eyes_side_by_side(renderer) -> None:
    cloud = random_cloud(8, k=4)
    eyes = StereoRig(ipd=0.063, convergence=0.5).cameras(_cam(20.0, size=96))
    bg = (0.25, 0.5, 0.75)
    renderer.upload(cloud)
    strip = renderer.render_rgb_strip(eyes, bg)
    assert strip.shape == (96, 192, 3) and strip.dtype == np.uint8
    for i, cam in enumerate(eyes):
        rgba = renderer.render_rgba8(cam, bg)
        assert np.abs(strip[:, 96 * i : 96 * (i + 1)].astype(int) - rgba[..., :3]).max() <= 1
    # Into a caller's (padded) buffer: only the strip's pixels are written.
    buf = np.full((96, 200, 3), 7, np.uint8)
    renderer.render_rgb_strip(eyes, bg, out=buf[:, 4:196])
    assert np.array_equal(buf[:, 4:196], strip)
    assert np.all(buf[:, :4] == 7) and np.all(buf[:, 196:] == 7)
    with pytest.raises(ValueError, match="out"):
        renderer.render_rgb_strip(eyes, bg, out=np.empty((96, 190, 3), np.uint8))


@pytest.mark.parametrize("k", [1, 16])
def test_one_sided_gaussians_culled_like_the_reference(renderer, k: int) -> None:
    assert_one_sided_culled_like_the_reference(renderer, k)


def test_single_gaussian_lands_where_the_pinhole_predicts(renderer) -> None:
    assert_lands_on_the_pinhole_pixel(renderer, 0.05)


def test_huge_splat_covering_the_whole_image(renderer) -> None:
    cloud = GaussianCloud.from_colors(
        np.zeros((2, 3)), [[1.0, 0, 0, 0]] * 2, [[40.0, 40.0, 40.0], [0.01, 0.01, 0.01]],
        [0.5, 0.9], [[0.2, 0.4, 0.6], [1.0, 0.0, 0.0]],
    )  # fmt: skip
    cam = Camera.orbit(distance=20.0, width=80, height=60)  # the big one fills the view
    renderer.upload(cloud)
    img = renderer.render([cam])[0]
    assert img[..., 3].min() > 0.4
    assert psnr(img, render_gaussians_reference(cloud, cam)) >= 40.0


# ----------------------------------------------------------------------------- outputs
def test_rgba8_equals_render_within_one_level(renderer) -> None:
    cloud = random_cloud(4, k=4)
    cam = Camera.orbit(distance=0.6, yaw_deg=40.0, width=100, height=76)  # partial tiles
    renderer.upload(cloud)
    for bg in ((0.3, 0.2, 0.1), None):
        ref = renderer.render([cam], bg or (0.0, 0.0, 0.0))[0]
        out = np.empty((76, 100, 4), np.uint8)
        got = renderer.render_rgba8(cam, bg, out=out)
        assert got is out
        assert np.abs(got / 255.0 - ref).max() <= 1.0 / 255.0 + 1e-6
    assert renderer.render_rgba8(cam).shape == (76, 100, 4)
    with pytest.raises(ValueError, match="out"):
        renderer.render_rgba8(cam, None, out=np.empty((76, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="out"):
        renderer.render_rgba8(cam, None, out=np.empty((76, 200, 4), np.uint8)[:, ::2])


def test_planes_are_the_subsets_rendered_alone(renderer) -> None:
    cloud = random_cloud(5, k=4)
    cam = _cam(10.0, size=64)
    plane = np.random.default_rng(0).integers(-1, 5, len(cloud))  # -1 and 4 are out of range
    renderer.upload(cloud)
    planes = renderer.render_planes(cam, plane, 4)
    assert planes.shape == (4, 64, 64, 4) and planes.dtype == np.float32
    alone = CPUSplatRenderer(threads=2)
    for p in range(4):
        alone.upload(_subset(cloud, plane == p))
        np.testing.assert_allclose(planes[p], alone.render([cam])[0], atol=1e-6)
    # Gaussians outside [0, planes) vanish: all of them there -> empty planes.
    empty = renderer.render_planes(cam, np.full(len(cloud), 7), 2)
    assert empty.shape == (2, 64, 64, 4) and np.all(empty == 0.0)
    with pytest.raises(ValueError, match="planes"):
        renderer.render_planes(cam, plane, 0)
    with pytest.raises(ValueError, match="plane"):
        renderer.render_planes(cam, plane[:-1], 4)


def _two_piece_arrays(cloud: GaussianCloud, lo: np.ndarray, w: np.ndarray, planes: int):
    """The split done outside the kernel, as renderers.bake did it before the kernel could:
    the cloud twice (near pieces, then far pieces) with plane_pieces' opacities, plane -1 for
    an empty piece."""
    w = np.where(w < 1 / 512, 0.0, np.where(w > 1 - 1 / 512, 1.0, w)).astype(np.float32)
    o = cloud.opacities
    log_t = np.log1p(-np.minimum(o, np.float32(1.0 - 1e-7)))
    opac = []
    for share in (np.float32(1.0) - w, w):
        op = np.where(share >= 1.0, o, -np.expm1(share * log_t))
        opac.append(np.where(o >= 1.0, np.float32(1.0), op).astype(np.float32))
    plane = np.concatenate([np.where(w < 1.0, lo, -1), np.where(w > 0.0, lo + 1, -1)])
    plane = np.where(np.concatenate([lo, lo]) < 0, -1, plane)
    plane = np.where(plane >= planes, -1, plane)
    twice = GaussianCloud(
        *(np.concatenate([a, a]) for a in (cloud.means, cloud.quats, cloud.scales)),
        np.concatenate(opac), np.concatenate([cloud.sh, cloud.sh]),
        facing=np.concatenate([cloud.facing, cloud.facing]),
    )  # fmt: skip
    return twice, plane


def test_split_planes_equal_the_two_piece_arrays(renderer) -> None:
    """far_weight: each Gaussian split into a near and a far piece inside the kernel (projected
    and sorted once) gives the planes of the two-piece arrays (renderers.bake's pieces),
    including pieces lighter than 1/512 folded into the other plane, a far piece beyond the
    last plane dropped and plane -1 skipped."""
    cloud = random_cloud(7, n=600, k=4)
    facing = np.where(np.arange(len(cloud)) % 3 == 0, 1, 0).astype(np.int8)
    cloud = replace(cloud, facing=facing)
    cloud.opacities[:5] = 1.0
    rng = np.random.default_rng(3)
    planes = 5
    lo = rng.integers(-1, planes, len(cloud)).astype(np.int32)  # -1 skipped; 4: no far plane
    w = rng.uniform(0.0, 1.0, len(cloud)).astype(np.float32)
    w[:40:4], w[1:40:4], w[2:40:4] = 0.0, 1.0, 0.001  # whole, whole far, folded (< 1/512)
    w[3:40:4] = 1.0 - 0.001
    cam = _cam(15.0, size=72)
    renderer.upload(cloud)
    got = renderer.render_planes(cam, lo, planes, far_weight=w)
    twice, plane = _two_piece_arrays(cloud, lo, w, planes)
    other = CPUSplatRenderer(threads=2)
    other.upload(twice)
    want = other.render_planes(cam, plane, planes)
    assert want[..., 3].max() > 0.5 and np.count_nonzero(want[..., 3].reshape(planes, -1).max(1))
    # Same pieces, same order per plane: equal up to float rounding of the piece opacities
    # (numpy's vectorised log1p / expm1 against libm's).
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_array_equal(got[..., 3] > 0, want[..., 3] > 0)
    got8 = renderer.render_planes_rgba8(cam, lo, planes, far_weight=w)
    want8 = other.render_planes_rgba8(cam, plane, planes)
    assert np.abs(got8.astype(int) - want8).max() <= 1
    with pytest.raises(ValueError, match="far_weight"):
        renderer.render_planes(cam, lo, planes, far_weight=w[:-1])


def test_straight_planes_are_the_unpremultiplied_planes(renderer) -> None:
    """straight=True equals OpenCV's unpremultiply of the premultiplied uint8 planes (what the
    bake did after the kernel), and the float planes are colour / alpha; zeroed=True leaves
    tiles without Gaussians alone and writes the same planes into a zeroed buffer."""
    cv2 = pytest.importorskip("cv2")
    cloud = random_cloud(8, n=500, k=4)
    cam = _cam(-10.0, size=100)  # partial tiles
    plane = np.random.default_rng(4).integers(0, 4, len(cloud))
    renderer.upload(cloud)
    pre = renderer.render_planes_rgba8(cam, plane, 4, out=np.empty((4, 100, 100, 4), np.uint8))
    want = pre.copy()
    for p in range(4):
        cv2.cvtColor(want[p], cv2.COLOR_mRGBA2RGBA, dst=want[p])
    got = renderer.render_planes_rgba8(cam, plane, 4, straight=True)
    assert (want[..., 3] > 0).mean() > 0.2 and (want[..., 3] == 0).mean() > 0.05
    assert np.abs(got.astype(int) - want).max() <= 1
    assert np.mean(got != want) < 1e-3
    # zeroed: the same planes (only touched tiles written); a non-zeroed buffer must not be.
    out = np.zeros_like(got)
    renderer.render_planes_rgba8(cam, plane, 4, out=out, straight=True, zeroed=True)
    np.testing.assert_array_equal(out, got)
    dirty = np.full_like(got, 77)
    renderer.render_planes_rgba8(cam, plane, 4, out=dirty, straight=True)
    np.testing.assert_array_equal(dirty, got)
    # Float planes: colour / alpha of the premultiplied ones, 0 where alpha is 0.
    pf = renderer.render_planes(cam, plane, 4)
    sf = renderer.render_planes(cam, plane, 4, straight=True)
    a = pf[..., 3:]
    expect = np.where(a > 0, np.minimum(pf[..., :3] / np.maximum(a, 1e-30), 1.0), 0.0)
    np.testing.assert_allclose(sf[..., :3], expect, atol=1e-5)
    np.testing.assert_array_equal(sf[..., 3], pf[..., 3])


# ----------------------------------------------------------------------------- bad input
def test_non_finite_gaussians_are_culled_and_the_rest_unchanged(renderer) -> None:
    from renderers.gl_splats import packed_covariances

    cloud = random_cloud(6, n=300)
    cam = _cam(-20.0, size=64)
    bad = np.zeros(len(cloud), bool)
    bad[[3, 50, 51, 120, 200, 250, 299]] = True
    cov = packed_covariances(cloud.quats, cloud.scales)
    renderer.upload(_subset(cloud, ~bad))
    renderer.update(covariances=cov[~bad])
    clean = renderer.render([cam])[0]
    means, opac = cloud.means.copy(), cloud.opacities.copy()
    means[3, 0], means[50, 2] = np.nan, np.inf
    opac[51], opac[120] = np.nan, -np.inf
    renderer.upload(replace(cloud, means=means, opacities=opac))
    cov[200, 1], cov[250, 5], cov[299, 0] = np.nan, np.inf, 1e38  # 1e38: overflows in float32
    renderer.update(covariances=cov)
    np.testing.assert_array_equal(renderer.render([cam])[0], clean)
    # NaN quaternions (the kernel's own covariances) are culled as well.
    quats = cloud.quats.copy()
    quats[bad] = np.nan
    renderer.upload(_subset(cloud, ~bad))
    clean = renderer.render([cam])[0]
    renderer.upload(replace(cloud, quats=quats))
    np.testing.assert_array_equal(renderer.render([cam])[0], clean)


def test_empty_cloud_and_everything_culled(renderer) -> None:
    cam = Camera.orbit(distance=0.6, width=32, height=32)
    renderer.upload(random_cloud(0, n=0))
    img = renderer.render([cam], background=(0.5, 0.25, 0.0))
    np.testing.assert_allclose(img[0, ..., :3], np.broadcast_to([0.5, 0.25, 0.0], (32, 32, 3)))
    assert img[..., 3].max() == 0.0
    assert renderer.render_planes(cam, np.zeros(0, int), 3).max() == 0.0
    assert renderer.render_rgba8(cam).max() == 0
    behind = random_cloud(1, n=50)
    behind.means[:, 2] = cam.position[2] + 0.3  # behind the camera (it looks along -z)
    renderer.upload(behind)
    assert renderer.render([cam])[..., 3].max() == 0.0


def test_update_matches_upload_and_shape_errors(renderer) -> None:
    cloud = random_cloud(11, k=4)
    cam = _cam(size=64)
    renderer.upload(cloud)
    moved = cloud.means + np.float32(0.01)
    renderer.update(means=moved, quats=cloud.quats, scales=cloud.scales * 1.2)
    updated = renderer.render([cam])
    renderer.upload(replace(cloud, means=moved, scales=cloud.scales * 1.2))
    np.testing.assert_array_equal(updated, renderer.render([cam]))
    from renderers.gl_splats import packed_covariances

    renderer.update(covariances=packed_covariances(cloud.quats, cloud.scales * 1.2))
    np.testing.assert_allclose(renderer.render([cam]), updated, atol=1e-5)
    n = len(cloud)
    bad_calls = [
        ({"quats": cloud.quats}, "quats and scales"),
        ({"means": cloud.means[:5]}, "means must have shape"),
        ({"opacities": cloud.opacities[:, None]}, "opacities must have shape"),
        ({"quats": cloud.quats[:, :3], "scales": cloud.scales}, "quats must have shape"),
        ({"quats": cloud.quats, "scales": cloud.scales[:-1]}, "scales must have shape"),
        ({"covariances": np.zeros((n, 3))}, "covariances must have shape"),
        ({"covariances": np.zeros((n, 6)), "quats": cloud.quats, "scales": cloud.scales},
         "not both"),
        ({"sh": cloud.sh[:, :1]}, "sh must have shape"),
        ({"facing": np.zeros(n + 1)}, "facing must have shape"),
    ]  # fmt: skip
    for kwargs, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            renderer.update(**kwargs)
    np.testing.assert_allclose(renderer.render([cam]), updated, atol=1e-5)  # still intact
    with pytest.raises(ValueError, match="no cameras"):
        renderer.render([])
    with pytest.raises(ValueError, match="one image size"):
        renderer.render([cam, Camera.orbit(distance=0.6, width=32, height=64)])


def test_bad_threads_raise_clean_errors() -> None:
    with pytest.raises(ValueError, match="threads"):
        CPUSplatRenderer(threads=-1)
    r = CPUSplatRenderer()
    r.upload(random_cloud(0, n=10))
    r.threads = 0
    with pytest.raises(ValueError, match="threads"):
        r.render([_cam(size=16)])


def test_switched_off_raises_native_unavailable(monkeypatch) -> None:
    from renderers.cpu_splats import NativeUnavailable

    monkeypatch.setenv("THS_NATIVE", "0")
    monkeypatch.setattr(native, "_library", None)
    with pytest.raises(NativeUnavailable, match="THS_NATIVE=0"):
        CPUSplatRenderer()


def test_one_and_two_threads_give_identical_images() -> None:
    cloud = random_cloud(9, n=2000, k=4)
    cams = list(StereoRig(ipd=0.063, convergence=0.5).cameras(_cam(30.0, size=96)))
    images = []
    for threads in (1, 2):
        r = CPUSplatRenderer(threads=threads)
        r.upload(cloud)
        images.append((r.render(cams), r.render_planes(cams[0], np.arange(2000) % 3, 3)))
    np.testing.assert_array_equal(images[0][0], images[1][0])
    np.testing.assert_array_equal(images[0][1], images[1][1])


# ----------------------------------------------------------------------------- GL
@pytest.mark.gl
def test_draw_into_caller_framebuffer_blends_over_existing_content(ctx) -> None:
    renderer = CPUSplatRenderer(ctx, threads=2)
    assert_draws_over_existing_content(ctx, renderer)
    renderer.release()


def test_library_load_leaves_the_environment_as_it_was(monkeypatch) -> None:
    """The passive OpenMP wait policy is set only while libgomp loads (children unaffected), and
    never over the user's own OpenMP wait settings."""
    from renderers import native

    path = native.library_path()
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    native._load_passive(path)
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    native._load_passive(path)
    assert os.environ["OMP_WAIT_POLICY"] == "active"


def test_loading_the_library_leaves_the_process_floating_point_state_alone() -> None:
    """A shared library linked with -ffast-math would switch the whole process to
    flush-to-zero / denormals-are-zero when it loads (gcc's crtfastmath.o): numpy and torch
    would then drop subnormal numbers. Checked in a fresh process, before and after loading."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "tiny = np.array([5e-324]); tiny32 = np.array([1e-45], np.float32)\n"
        "assert (tiny * 1.0)[0] != 0 and (tiny32 * np.float32(1))[0] != 0, 'before'\n"
        "from renderers.native import load_library\n"
        "load_library()\n"
        "assert (tiny * 1.0)[0] != 0, 'float64 subnormals flushed after loading'\n"
        "assert (tiny32 * np.float32(1))[0] != 0, 'float32 subnormals flushed after loading'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_an_unwritable_cache_directory_builds_under_the_temp_directory(
    monkeypatch, tmp_path
) -> None:
    """A cache directory that cannot be created (read-only home, sandbox) does not cost the
    native path: the library is built in the temp directory instead."""
    import tempfile

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("THS_NATIVE_CACHE", str(blocker / "native"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_failure", None)
    lib = native.load_library()
    assert str(tmp_path / "tmp") in lib._name and lib.ths_tile_size() > 0


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@pytest.mark.parametrize("isa", ["avx2", "portable"])
def test_other_instruction_set_paths_render_the_native_image(isa: str, monkeypatch) -> None:
    """The raster has an AVX-512, an AVX2 and a portable path; the machine builds one. The
    others are built here (THS_NATIVE_ISA, cached like the default build) and must give the same
    images, composited and plane atlas, within a level (float roundings of the projection)."""
    cloud = random_cloud(5, n=3000, k=16)
    cams = list(StereoRig(ipd=0.063, convergence=0.5).cameras(_cam(20.0, size=120)))
    planes = np.arange(3000) % 4
    bg = (0.2, 0.3, 0.4)

    def images(r: CPUSplatRenderer) -> tuple[np.ndarray, np.ndarray]:
        r.upload(cloud)
        return r.render(cams, bg), r.render_planes(cams[0], planes, 4)

    want, want_planes = images(CPUSplatRenderer(threads=2))
    monkeypatch.setenv("THS_NATIVE_ISA", isa)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_failure", None)
    r = CPUSplatRenderer(threads=2)
    has_avx2 = {"avx2", "fma"} <= _cpu_flags()
    assert r._lib.ths_simd_width() == (8 if isa == "avx2" and has_avx2 else 0)
    got, got_planes = images(r)
    assert np.abs(got - want).max() <= 1.01 / 255
    assert np.abs(got_planes - want_planes).max() <= 1.01 / 255
    for i, cam in enumerate(cams):
        assert psnr(got[i], render_gaussians_reference(cloud, cam, background=bg)) >= 35.0
