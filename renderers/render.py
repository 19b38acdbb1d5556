"""The one public render call for every head representation and backend.

``render(scene, cameras, ...) -> [C, H, W, 4] float32``: scene is a GaussianCloud or an MPI
(or ImPortraitMPI); a stereo pair is just two cameras, rendered with one upload and one readback.

Backends: "gl" (moderngl on a cached headless EGL context: llvmpipe without a GPU; Gaussians there
go through the native CPU rasteriser, see ``renderers.gl_tiles.splat_renderer_for``), "cpu" (the
native CPU rasteriser of renderers/cpu_splats.py without any GL: Gaussians; MPIs use the torch
reference), "torch" (the pure-torch reference, slow but exact), "gsplat" (CUDA, Gaussians only)
and "auto" (gl when an EGL context can be made, else cpu when the native library can be built,
else torch). Inside the Qt GUI use the renderer classes with the widget's
context instead (EGL and Qt's GLX context must not share a process; see ENVIRONMENT.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from renderers.camera import Camera
from renderers.gaussians import GaussianCloud
from renderers.gl_context import GLUnavailableError, egl_available
from renderers.lod import select_lod
from renderers.mpi import MPI, ImPortraitMPI, as_mpi

__all__ = ["BACKENDS", "GLUnavailableError", "release_gl", "render"]

BACKENDS = ("auto", "gl", "cpu", "torch", "gsplat")

# Renderers (and what they hold) on the shared headless context, recreated when it changes.
_gl: dict[str, Any] = {}
# The "cpu" backend's renderer and the key of the cloud it holds (no GL: no context to follow).
_cpu: dict[str, Any] = {}


def render(
    scene: GaussianCloud | MPI | ImPortraitMPI,
    cameras: Camera | Sequence[Camera],
    width: int | None = None,
    height: int | None = None,
    backend: str = "auto",
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    budget: int | None = None,
) -> np.ndarray:
    """Render ``scene`` for each camera: [C, H, W, 4] float32, RGB composited over
    ``background`` (in [0, 1]), alpha = accumulated coverage; image row 0 at the top.

    width/height: resize every camera's pixel grid (``Camera.with_size``; a missing one keeps the
    camera's). budget: for Gaussians, draw at most this many (the most contributing ones,
    ``renderers.lod.select_lod`` without camera so the subset stays cached while the view moves).

    Raises TypeError for a wrong scene/camera type; ValueError for bad shapes, NaN/inf values,
    cameras of different sizes, a bad background/budget/backend; GLUnavailableError for
    backend="gl" without a context; NativeUnavailable for "cpu" without a C compiler;
    GsplatUnavailableError for "gsplat" without CUDA/gsplat.
    """
    if backend not in BACKENDS:
        raise ValueError(f"render(): unknown backend {backend!r}; expected one of {BACKENDS}")
    cams = _check_cameras(cameras, width, height)
    bg = _check_background(background)
    if isinstance(scene, GaussianCloud):
        _check_cloud(scene)
        if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget < 1):
            raise ValueError(f"render(): budget must be a positive integer, got {budget!r}")
    elif isinstance(scene, MPI | ImPortraitMPI):
        if budget is not None:
            raise ValueError("render(): budget applies to Gaussian clouds, not MPIs")
        scene = as_mpi(scene)
    else:
        raise TypeError(
            "render(): scene must be a GaussianCloud, MPI or ImPortraitMPI, "
            f"got {type(scene).__name__}"
        )
    if backend == "auto":
        if egl_available():
            backend = "gl"
        else:
            from renderers.native import native_available

            backend = "cpu" if native_available() else "torch"
    if backend == "gl":
        return _render_gl(scene, cams, bg, budget)
    if backend == "cpu" and isinstance(scene, GaussianCloud):
        return _render_cpu(scene, cams, bg, budget)
    if isinstance(scene, GaussianCloud) and budget is not None and budget < len(scene):
        scene = scene.subset(select_lod(scene, budget))
    if backend == "gsplat":
        if not isinstance(scene, GaussianCloud):
            raise ValueError("render(): the gsplat backend renders Gaussian clouds only")
        from renderers.gsplat_backend import render_gsplat

        return render_gsplat(scene, cams, bg)
    from renderers.reference import render_gaussians_reference, render_mpi_reference

    if isinstance(scene, GaussianCloud):
        return np.stack([render_gaussians_reference(scene, c, bg) for c in cams])
    return np.stack([render_mpi_reference(scene, c, bg) for c in cams])


def release_gl() -> None:
    """Free the shared headless context (``renderers.gl_context.release_shared_context``) and
    everything cached on it, e.g. this module's renderers and the MPI baker; the next gl render
    creates them again."""
    from renderers.gl_context import release_shared_context

    release_shared_context()


def _release_renderers() -> None:
    # Runs as a release hook of the shared context, holding its lock.
    for key in ("splats", "mpi"):
        if key in _gl:
            _gl[key].release()
    _gl.clear()


# ---------------------------------------------------------------------------------- GL backend
def _render_gl(
    scene: GaussianCloud | MPI,
    cams: list[Camera],
    bg: tuple[float, float, float],
    budget: int | None,
) -> np.ndarray:
    from renderers.gl_context import on_shared_context_release, shared_offscreen_context

    shared = shared_offscreen_context()  # GLUnavailableError propagates
    with shared.lock:
        ctx = shared.ctx
        if _gl.get("ctx") is not ctx:  # first use (or the context was replaced)
            _gl.clear()
            _gl["ctx"] = ctx
            on_shared_context_release(_release_renderers)
        if isinstance(scene, GaussianCloud):
            from renderers.gl_tiles import splat_renderer_for

            if "splats" not in _gl:
                _gl["splats"] = splat_renderer_for(ctx)
            renderer = _uploaded(_gl, scene, budget)
        else:
            from renderers.gl_mpi import MPIRenderer

            if "mpi" not in _gl:
                _gl["mpi"] = MPIRenderer(ctx)
            renderer = _gl["mpi"]
            key = _mpi_key(scene)
            # The planes themselves are held (compared by identity): a rigged MPI head reuses
            # an output buffer only when nothing else holds it, so a held buffer cannot come
            # back with new content under the same identity and sums.
            if _gl.get("mpi_rgba") is not scene.rgba or _gl.get("mpi_key") != key:
                renderer.upload(scene)
                _gl["mpi_rgba"], _gl["mpi_key"] = scene.rgba, key
        return renderer.render(cams, bg)


def _render_cpu(
    scene: GaussianCloud, cams: list[Camera], bg: tuple[float, float, float], budget: int | None
) -> np.ndarray:
    from renderers.cpu_splats import CPUSplatRenderer

    if "splats" not in _cpu:
        _cpu["splats"] = CPUSplatRenderer()  # NativeUnavailable propagates
    return _uploaded(_cpu, scene, budget).render(cams, bg)


def _uploaded(cache: dict[str, Any], cloud: GaussianCloud, budget: int | None) -> Any:
    """``cache["splats"]`` (a splat renderer) holding ``cloud`` (its LOD subset with a budget):
    uploaded only when the cloud or budget differs from the last one (``cache["splats_key"]``)."""
    renderer = cache["splats"]
    key = (_cloud_key(cloud), budget)
    if cache.get("splats_key") != key:
        if budget is not None and budget < len(cloud):
            cloud = cloud.subset(select_lod(cloud, budget))
        renderer.upload(cloud)
        cache["splats_key"] = key
    return renderer


def _cloud_key(cloud: GaussianCloud) -> tuple:
    # Identity of the arrays plus cheap O(N) sums: a new or edited cloud is re-uploaded, a
    # repeated render of the same one (the common case: a moving camera) is not.
    arrays = (cloud.means, cloud.quats, cloud.scales, cloud.opacities, cloud.sh, cloud.facing)
    return tuple((id(a), a.shape, float(a.sum(dtype=np.float64))) for a in arrays)


def _mpi_key(mpi: MPI) -> tuple:
    # with the planes' identity (held by the caller): cheap sums of colour and alpha catch an
    # MPI edited in place
    total = np.uint64 if mpi.rgba.dtype == np.uint8 else np.float64
    return (
        mpi.rgba.shape,
        mpi.rgba.dtype.str,
        float(mpi.rgba.sum(dtype=total)),
        mpi.depths.tobytes(),
        np.asarray(mpi.camera.world_to_camera).tobytes(),
        (mpi.camera.fx, mpi.camera.fy, mpi.camera.cx, mpi.camera.cy),
    )


# ---------------------------------------------------------------------------------- validation
def _check_cameras(cameras: Any, width: int | None, height: int | None) -> list[Camera]:
    cams = [cameras] if isinstance(cameras, Camera) else cameras
    if not isinstance(cams, Sequence) or isinstance(cams, str):
        raise TypeError(
            "render(): cameras must be a Camera or a sequence of them, "
            f"got {type(cameras).__name__}"
        )
    cams = list(cams)
    if not cams:
        raise ValueError("render(): no cameras given")
    for i, c in enumerate(cams):
        if not isinstance(c, Camera):
            raise TypeError(f"render(): cameras[{i}] is a {type(c).__name__}, not a Camera")
    for name, v in (("width", width), ("height", height)):
        if v is not None and (isinstance(v, bool) or int(v) != v or v < 1):
            raise ValueError(f"render(): {name} must be a positive integer, got {v!r}")
    if width is not None or height is not None:
        cams = [c.with_size(int(width or c.width), int(height or c.height)) for c in cams]
    sizes = {(c.width, c.height) for c in cams}
    if len(sizes) != 1:
        raise ValueError(
            f"render(): cameras have different image sizes {sorted(sizes)}; pass width/height"
        )
    return cams


def _check_background(background: Any) -> tuple[float, float, float]:
    bg = np.asarray(background, dtype=np.float64)
    if bg.shape != (3,) or not np.all(np.isfinite(bg)):
        raise ValueError(f"render(): background must be 3 finite floats (RGB), got {background!r}")
    return (float(bg[0]), float(bg[1]), float(bg[2]))


def _check_cloud(cloud: GaussianCloud) -> None:
    n = cloud.means.shape[0] if cloud.means.ndim == 2 else -1
    expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,)}
    for name, shape in expected.items():
        a = getattr(cloud, name)
        if a.shape != shape or n < 0:
            raise ValueError(
                f"render(): GaussianCloud.{name} must have shape {shape}, got {a.shape}"
            )
    if cloud.sh.ndim != 3 or cloud.sh.shape[0] != n or cloud.sh.shape[2] != 3:
        raise ValueError(
            f"render(): GaussianCloud.sh must have shape [{n}, K, 3], got {cloud.sh.shape}"
        )
    if cloud.sh.shape[1] not in (1, 4, 9, 16):
        raise ValueError(
            f"render(): GaussianCloud.sh has K={cloud.sh.shape[1]}; K must be 1, 4, 9 or 16"
        )
    for name in ("means", "quats", "scales", "opacities", "sh"):
        a = getattr(cloud, name)
        bad = ~np.isfinite(a)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(n, -1).any(axis=1))
            raise ValueError(
                f"render(): GaussianCloud.{name} has NaN/inf in {rows.size} Gaussian(s), "
                f"first at index {int(rows[0])}"
            )
    if n and (cloud.opacities.min() < 0 or cloud.opacities.max() > 1):
        raise ValueError("render(): GaussianCloud.opacities must lie in [0, 1] (post-sigmoid)")
    if n and cloud.scales.min() < 0:
        raise ValueError("render(): GaussianCloud.scales must be >= 0 (linear, not log)")
    qn = np.linalg.norm(cloud.quats, axis=1) if n else np.ones(0)
    if n and qn.min() < 1e-12:
        raise ValueError(
            f"render(): GaussianCloud.quats has a zero quaternion at index {int(qn.argmin())}"
        )
