"""renderers.render.render(): the public call, its checks and its backends."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.camera import Camera, StereoRig
from renderers.gaussians import SH_C0, GaussianCloud
from renderers.gl_context import egl_available
from renderers.mpi import MPI, head_mpi_depths
from renderers.reference import render_gaussians_reference
from renderers.render import render


def small_cloud(n: int = 120, seed: int = 0, k: int = 1) -> GaussianCloud:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(n, 4))
    sh = rng.normal(scale=0.3, size=(n, k, 3))
    sh[:, 0] = (rng.uniform(size=(n, 3)) - 0.5) / SH_C0
    return GaussianCloud(
        rng.uniform(-0.1, 0.1, (n, 3)),
        quats / np.linalg.norm(quats, axis=1, keepdims=True),
        rng.uniform(0.002, 0.02, (n, 3)),
        rng.uniform(0.1, 1.0, n),
        sh,
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


CAM = Camera.orbit(distance=0.5, width=48, height=40)

needs_gl = pytest.mark.skipif(not egl_available(), reason="no headless EGL OpenGL context")


@pytest.mark.gl
@needs_gl
def test_gl_backend_shapes_stereo_and_agreement_with_torch() -> None:
    cloud = small_cloud(k=4)
    pair = StereoRig(0.063, 0.5).cameras(CAM)
    gl = render(cloud, pair, backend="gl", background=(0.0, 0.5, 1.0))
    assert gl.shape == (2, 40, 48, 4) and gl.dtype == np.float32
    ref = render(cloud, pair, backend="torch", background=(0.0, 0.5, 1.0))
    assert ref.shape == gl.shape
    assert min(psnr(gl[i], ref[i]) for i in range(2)) >= 35.0
    auto = render(cloud, CAM, backend="auto", width=64, height=32)
    assert auto.shape == (1, 32, 64, 4)
    # Repeated calls reuse the cached upload and give identical frames.
    np.testing.assert_array_equal(render(cloud, pair, backend="gl", background=(0.0, 0.5, 1.0)), gl)


@pytest.mark.gl
@needs_gl
def test_gl_backend_renders_mpis_and_reuploads_edited_clouds() -> None:
    rng = np.random.default_rng(0)
    mpi = MPI(rng.uniform(size=(4, 40, 48, 4)), head_mpi_depths(0.5, 4), CAM)
    out = render(mpi, [CAM, CAM], backend="gl")
    assert out.shape == (2, 40, 48, 4)
    assert psnr(out[0], render(mpi, CAM, backend="torch")[0]) >= 35.0
    planes8 = np.round(mpi.rgba * 255).astype(np.uint8)
    mpi8 = MPI(planes8, mpi.depths, CAM)
    before = render(mpi8, CAM, backend="gl")
    planes8[..., 0] = 255 - planes8[..., 0]  # colour edited in place, alpha unchanged
    after = render(mpi8, CAM, backend="gl")
    assert psnr(after[0], render(mpi8, CAM, backend="torch")[0]) >= 35.0
    assert np.abs(after - before).max() > 0.2
    cloud = small_cloud()
    first = render(cloud, CAM, backend="gl")
    cloud.means += np.float32(0.02)  # edited in place: must not reuse the stale upload
    second = render(cloud, CAM, backend="gl")
    assert psnr(second[0], render_gaussians_reference(cloud, CAM)) >= 35.0
    assert np.abs(first - second).max() > 0.05


def test_budget_draws_the_most_contributing_subset() -> None:
    cloud = small_cloud(60)
    out = render(cloud, CAM, backend="torch", budget=10)
    from renderers.lod import select_lod

    expect = render_gaussians_reference(cloud.subset(select_lod(cloud, 10)), CAM)
    np.testing.assert_allclose(out[0], expect, atol=1e-6)
    with pytest.raises(ValueError, match="budget"):
        render(cloud, CAM, backend="torch", budget=0)
    rng = np.random.default_rng(0)
    mpi = MPI(rng.uniform(size=(2, 40, 48, 4)), head_mpi_depths(0.5, 2), CAM)
    with pytest.raises(ValueError, match="budget applies"):
        render(mpi, CAM, backend="torch", budget=5)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("means", np.zeros((120, 2), np.float32), r"means must have shape"),
        ("quats", np.zeros((119, 4), np.float32), r"quats must have shape"),
        ("opacities", np.zeros((120, 1), np.float32), r"opacities must have shape"),
        ("sh", np.zeros((120, 5, 3), np.float32), r"K=5"),
    ],
)
def test_bad_shapes_raise(field: str, value: np.ndarray, match: str) -> None:
    cloud = small_cloud()
    setattr(cloud, field, value)  # arrays replaced after construction bypass __post_init__
    with pytest.raises(ValueError, match=match):
        render(cloud, CAM, backend="torch")


def test_cpu_backend_agrees_with_torch_without_any_gl(monkeypatch) -> None:
    """ "cpu" needs no GL context; "auto" takes it when EGL is missing (native library built)."""
    import importlib

    from renderers import native

    render_module = importlib.import_module("renderers.render")  # the module, not the function

    if not native.native_available():
        pytest.skip("native kernels unavailable: no C compiler")
    cloud = small_cloud(k=4)
    pair = StereoRig(0.063, 0.5).cameras(CAM)
    cpu = render(cloud, pair, backend="cpu", background=(0.0, 0.5, 1.0))
    ref = render(cloud, pair, backend="torch", background=(0.0, 0.5, 1.0))
    assert cpu.shape == ref.shape and cpu.dtype == np.float32
    assert psnr(cpu, ref) >= 40.0
    monkeypatch.setattr(render_module, "egl_available", lambda: False)
    auto = render(cloud, pair, backend="auto", background=(0.0, 0.5, 1.0))
    np.testing.assert_array_equal(auto, cpu)
    out = render(cloud, CAM, backend="cpu", budget=10)  # a budget re-uploads a subset
    assert out.shape == (1, CAM.height, CAM.width, 4)


@pytest.mark.parametrize("backend", ["torch", "gl", "cpu", "auto"])
def test_nan_means_are_rejected_not_rendered_black(backend: str) -> None:
    cloud = small_cloud()
    cloud.means[7, 1] = np.nan
    cloud.means[30, 0] = np.inf
    with pytest.raises(ValueError, match=r"means has NaN/inf in 2 Gaussian\(s\), first at index 7"):
        render(cloud, CAM, backend=backend)


def test_other_bad_inputs() -> None:
    cloud = small_cloud()
    with pytest.raises(TypeError, match="scene must be"):
        render(np.zeros((3, 3)), CAM)
    with pytest.raises(TypeError, match=r"cameras\[1\]"):
        render(cloud, [CAM, "left"])
    with pytest.raises(ValueError, match="different image sizes"):
        render(cloud, [CAM, CAM.with_size(10, 10)], backend="torch")
    with pytest.raises(ValueError, match="unknown backend"):
        render(cloud, CAM, backend="vulkan")
    with pytest.raises(ValueError, match="background"):
        render(cloud, CAM, backend="torch", background=(0.0, np.nan, 0.0))
    with pytest.raises(ValueError, match="no cameras"):
        render(cloud, [], backend="torch")
    with pytest.raises(ValueError, match="width"):
        render(cloud, CAM, width=0, backend="torch")
    cloud.opacities[3] = 1.5
    with pytest.raises(ValueError, match="opacities must lie"):
        render(cloud, CAM, backend="torch")


def test_gsplat_backend_errors_clearly_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: covered by the gpu test")
    from renderers.gsplat_backend import GsplatUnavailableError, gsplat_available

    assert not gsplat_available()
    with pytest.raises(GsplatUnavailableError, match="CUDA"):
        render(small_cloud(), CAM, backend="gsplat")


@pytest.mark.gpu
def test_gsplat_matches_reference() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("gsplat")
    cloud = small_cloud(300, k=16)
    cams = list(StereoRig(0.063, 0.5).cameras(Camera.orbit(distance=0.5, width=128, height=128)))
    out = render(cloud, cams, backend="gsplat", background=(0.2, 0.2, 0.2))
    for i, cam in enumerate(cams):
        assert psnr(out[i], render_gaussians_reference(cloud, cam, (0.2, 0.2, 0.2))) >= 35.0


@pytest.mark.gl
@needs_gl
def test_shared_offscreen_context_is_one_per_process_and_released_with_its_caches() -> None:
    from renderers import render as render_module
    from renderers.gl_context import shared_offscreen_context
    from renderers.render import release_gl

    cloud = small_cloud(seed=4)
    shared = shared_offscreen_context()
    assert shared_offscreen_context().ctx is shared.ctx
    with shared.lock:  # reentrant: a holder may render
        render(cloud, CAM, backend="gl")
    assert render_module._gl["ctx"] is shared.ctx
    release_gl()
    assert render_module._gl == {}  # the release hook freed the cached renderers
    again = shared_offscreen_context()
    assert again.ctx is not shared.ctx
    out = render(cloud, CAM, backend="gl")
    assert out.shape[0] == 1 and out[..., 3].max() > 0
