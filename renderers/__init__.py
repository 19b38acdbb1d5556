"""Renderers: cameras, stereo rigs, Gaussian-splat and MPI heads, their file formats, an OpenGL
path (moderngl), a pure-torch reference and gsplat on CUDA. Qt-free; torch and moderngl are
imported by the modules that need them.

The one call most code needs is :func:`renderers.render.render` (re-exported here lazily so that
importing the package does not import moderngl).
"""

from renderers.camera import Camera, StereoRig
from renderers.formats import FormatError, load_gaussians, save_gaussians
from renderers.gaussians import SH_C0, GaussianCloud
from renderers.mpi import MPI, ImPortraitMPI, as_mpi, disparity_depths, head_mpi_depths

__all__ = [
    "MPI",
    "SH_C0",
    "Camera",
    "FormatError",
    "GaussianCloud",
    "ImPortraitMPI",
    "StereoRig",
    "as_mpi",
    "disparity_depths",
    "head_mpi_depths",
    "load_gaussians",
    "render",
    "render_gaussians_reference",
    "render_mpi_reference",
    "save_gaussians",
]


def __getattr__(name: str):
    # Lazy: render pulls in moderngl, the references pull in torch.
    if name == "render":
        from renderers.render import render

        return render
    if name in ("render_gaussians_reference", "render_mpi_reference"):
        from renderers import reference

        return getattr(reference, name)
    raise AttributeError(f"module 'renderers' has no attribute {name!r}")
