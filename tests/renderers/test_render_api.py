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


def _gsplat_torch_impl():
    """gsplat's pure-torch projection and SH (the CUDA kernels' documented equivalents)."""
    pytest.importorskip("gsplat")
    from gsplat.cuda import _torch_impl

    return _torch_impl


def test_gsplat_arguments_project_like_the_reference() -> None:
    """What render_gsplat hands gsplat (viewmats, Ks, wxyz quats, eps2d, per-camera colours),
    run through gsplat's own pure-torch projection, gives the reference's screen-space
    Gaussians (means, conics, depths; float32 inputs, so float32 tolerances), and its colours
    are gsplat's SH basis evaluated from each camera centre, clamped like the reference's. This
    checks our side of the gsplat mapping without a GPU; the CUDA compositing itself is
    checked by the gpu test below."""
    import torch

    from renderers.gsplat_backend import GsplatScene
    from renderers.reference import project_gaussians

    impl = _gsplat_torch_impl()
    cloud = small_cloud(200, seed=7, k=16)
    rig = StereoRig(0.063, 0.45)
    head = Camera.orbit(yaw_deg=25.0, pitch_deg=-10.0, distance=0.45, width=64, height=48)
    cams = list(rig.cameras(head))
    args = GsplatScene(cloud).arguments(cams, (0.2, 0.2, 0.2))
    assert args["sh_degree"] is None and args["colors"].shape == (2, 200, 3)
    a = {k: (v.double() if torch.is_tensor(v) else v) for k, v in args.items()}
    covars, _ = impl._quat_scale_to_covar_preci(a["quats"], a["scales"], compute_preci=False)
    radii, means2d, depths, conics, _ = impl._fully_fused_projection(
        a["means"], covars, a["viewmats"], a["Ks"], a["width"], a["height"],
        eps2d=a["eps2d"], near_plane=a["near_plane"],
    )  # fmt: skip
    campos = torch.linalg.inv(a["viewmats"])[:, :3, 3]  # [C, 3]
    sh = torch.from_numpy(cloud.sh).double()
    for i, cam in enumerate(cams):
        ours = project_gaussians(cloud, cam, dtype=torch.float64)
        idx = ours["index"]
        assert len(idx) > 150 and (radii[i, idx] > 0).all()
        assert (means2d[i, idx] - ours["mean2d"]).abs().max() < 1e-4  # px
        assert (depths[i, idx] - ours["depth"]).abs().max() < 1e-6  # m
        conic = ours["conic"]
        size = torch.maximum(conic[:, 0, 0].abs(), conic[:, 1, 1].abs())
        for k, (r, c) in enumerate(
            [(0, 0), (0, 1), (1, 1)]
        ):  # gsplat: (a, b, c) of [[a, b], [b, c]]
            assert ((conics[i, idx, k] - conic[:, r, c]).abs() / size).max() < 1e-5
        their_sh = impl._spherical_harmonics(3, a["means"] - campos[i], sh) + 0.5
        assert (their_sh > 1.0).any()  # highlights: the clamp matters
        assert (a["colors"][i, idx] - their_sh[idx].clamp(0.0, 1.0)).abs().max() < 1e-5
        assert (a["colors"][i, idx] - ours["color"]).abs().max() < 1e-5


class _GsplatWithoutCuda:
    """A stand-in for the gsplat module whose rasterization() runs gsplat's pure-torch
    projection and SH on the CPU and composites densely by the 3DGS rules (gsplat's compositor
    needs CUDA), so render_gsplat's own code (empty clouds, one-sided culling per camera group,
    output assembly) runs on a machine without a GPU."""

    def __init__(self, impl) -> None:
        self.impl = impl
        self.calls: list[tuple[int, int]] = []  # (Gaussians, cameras) per call

    def rasterization(self, **a):
        import torch

        impl = self.impl
        self.calls.append((len(a["means"]), len(a["viewmats"])))
        covars, _ = impl._quat_scale_to_covar_preci(a["quats"], a["scales"], compute_preci=False)
        _, means2d, depths, conics, _ = impl._fully_fused_projection(
            a["means"], covars, a["viewmats"], a["Ks"], a["width"], a["height"],
            eps2d=a["eps2d"], near_plane=a["near_plane"],
        )  # fmt: skip
        campos = torch.linalg.inv(a["viewmats"])[:, :3, 3]
        w, h = a["width"], a["height"]
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # [P, 2]
        images, alphas = [], []
        for i in range(len(a["viewmats"])):
            keep = torch.nonzero(depths[i] >= a["near_plane"]).squeeze(1)
            keep = keep[torch.sort(depths[i, keep], stable=True).indices]
            if a["sh_degree"] is None:  # per-camera colours [C, N, 3]
                colour = a["colors"][i, keep]
            else:  # SH coefficients [N, K, 3], gsplat's rule
                dirs = a["means"][keep] - campos[i]
                colour = impl._spherical_harmonics(a["sh_degree"], dirs, a["colors"][keep])
                colour = colour.add(0.5).clamp_min(0.0)
            d = pix[:, None] - means2d[i, keep][None]  # [P, M, 2]
            c = conics[i, keep]
            sigma = 0.5 * (c[:, 0] * d[..., 0] ** 2 + c[:, 2] * d[..., 1] ** 2)
            sigma = sigma + c[:, 1] * d[..., 0] * d[..., 1]
            alpha = (a["opacities"][keep] * torch.exp(-sigma)).clamp(max=0.99)
            alpha = torch.where(alpha >= 1.0 / 255.0, alpha, torch.zeros_like(alpha))
            t_after = torch.cumprod(1.0 - alpha, dim=1)
            alpha = torch.where(t_after >= 1e-4, alpha, torch.zeros_like(alpha))
            t_after = torch.cumprod(1.0 - alpha, dim=1)
            t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], 1)
            rgb = (alpha * t_before) @ colour + t_after[:, -1:] * a["backgrounds"][i]
            images.append(rgb.reshape(h, w, 3))
            alphas.append((1.0 - t_after[:, -1]).reshape(h, w, 1))
        return torch.stack(images), torch.stack(alphas), {}


def test_render_gsplat_code_path_on_cpu_with_gsplats_torch_projection(monkeypatch) -> None:
    import torch

    from renderers import gsplat_backend

    fake = _GsplatWithoutCuda(_gsplat_torch_impl())
    monkeypatch.setattr(gsplat_backend, "_require", lambda: (torch, fake))
    monkeypatch.setattr(gsplat_backend, "_DEVICE", "cpu")
    bg = (0.2, 0.3, 0.1)
    cams = list(
        StereoRig(0.063, 0.5).cameras(
            Camera.orbit(yaw_deg=-20.0, distance=0.5, width=40, height=32)
        )
    )
    cloud = small_cloud(150, seed=3, k=9)
    out = gsplat_backend.render_gsplat(cloud, cams, bg)
    assert out.shape == (2, 32, 40, 4) and out.dtype == np.float32
    assert fake.calls == [(150, 2)]  # two-sided: both eyes in one call
    for i, cam in enumerate(cams):
        assert psnr(out[i], render_gaussians_reference(cloud, cam, bg)) >= 60.0

    # One-sided Gaussians: each group of cameras that culls the same set gets its own call
    # with the culled Gaussians left out, and the images still match the reference.
    rng = np.random.default_rng(5)
    cloud.facing = rng.choice(np.array([-1, 0, 1], np.int8), len(cloud))
    wide = [Camera.orbit(yaw_deg=y, distance=0.5, width=40, height=32) for y in (-70.0, 70.0)]
    fake.calls.clear()
    out = gsplat_backend.render_gsplat(cloud, wide, bg)
    assert len(fake.calls) == 2 and all(n < 150 for n, _ in fake.calls)
    for i, cam in enumerate(wide):
        assert psnr(out[i], render_gaussians_reference(cloud, cam, bg)) >= 60.0

    empty = gsplat_backend.render_gsplat(cloud.subset(np.zeros(150, bool)), cams, bg)
    assert np.allclose(empty[..., :3], bg) and not empty[..., 3].any()


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
