"""Renderers: cameras, stereo rigs, Gaussian-splat and MPI heads, their file formats, an OpenGL
path (moderngl), a pure-torch reference and gsplat on CUDA. Qt-free; torch and moderngl are
imported by the modules that need them.
"""

from renderers.gaussians import SH_C0, GaussianCloud

__all__ = ["SH_C0", "GaussianCloud"]
