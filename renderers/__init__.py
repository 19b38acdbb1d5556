"""Renderers: cameras, stereo rigs, Gaussian-splat and MPI heads, their file formats, an OpenGL
path (moderngl), a pure-torch reference and gsplat on CUDA. Qt-free; torch and moderngl are
imported by the modules that need them.

The one call most code needs is :func:`renderers.render.render` (re-exported here lazily so that
importing the package does not import moderngl).
"""

from renderers.camera import Camera, StereoRig
from renderers.formats import FormatError, load_gaussians, save_gaussians
from renderers.gaussians import (
    BACKFACE_COS,
    SH_C0,
    GaussianCloud,
    backfacing,
    facing_normals,
)
from renderers.mpi import MPI, ImPortraitMPI, as_mpi, disparity_depths, head_mpi_depths

__all__ = [
    "BACKFACE_COS",
    "MPI",
    "SH_C0",
    "Camera",
    "FormatError",
    "GLUnavailableError",
    "GaussianCloud",
    "GaussianSplatRenderer",
    "GsplatUnavailableError",
    "ImPortraitMPI",
    "MPIBaker",
    "MPIRenderer",
    "SharedContext",
    "StereoRig",
    "as_mpi",
    "backfacing",
    "bake_mpi",
    "create_offscreen_context",
    "disparity_depths",
    "facing_normals",
    "head_mpi_depths",
    "load_gaussians",
    "lod_cloud",
    "on_shared_context_release",
    "release_gl",
    "release_shared_context",
    "render",
    "render_gaussians_reference",
    "render_mpi_reference",
    "save_gaussians",
    "select_lod",
    "shared_offscreen_context",
]

# Names resolved on first use (module, attribute): they import moderngl or torch.
_LAZY = {
    "render": ("renderers.render", "render"),
    "release_gl": ("renderers.render", "release_gl"),
    "GLUnavailableError": ("renderers.gl_context", "GLUnavailableError"),
    "create_offscreen_context": ("renderers.gl_context", "create_offscreen_context"),
    "shared_offscreen_context": ("renderers.gl_context", "shared_offscreen_context"),
    "release_shared_context": ("renderers.gl_context", "release_shared_context"),
    "on_shared_context_release": ("renderers.gl_context", "on_shared_context_release"),
    "SharedContext": ("renderers.gl_context", "SharedContext"),
    "GaussianSplatRenderer": ("renderers.gl_splats", "GaussianSplatRenderer"),
    "MPIRenderer": ("renderers.gl_mpi", "MPIRenderer"),
    "GsplatUnavailableError": ("renderers.gsplat_backend", "GsplatUnavailableError"),
    "select_lod": ("renderers.lod", "select_lod"),
    "lod_cloud": ("renderers.lod", "lod_cloud"),
    "render_gaussians_reference": ("renderers.reference", "render_gaussians_reference"),
    "bake_mpi": ("renderers.bake", "bake_mpi"),
    "MPIBaker": ("renderers.bake", "MPIBaker"),
    "render_mpi_reference": ("renderers.reference", "render_mpi_reference"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'renderers' has no attribute {name!r}")
