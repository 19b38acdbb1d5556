"""File formats: 3DGS .ply, antimatter15 .splat, MPI folders. Bad input raises FormatError.

Axis conventions: our world is RUB (see renderers.gaussians). Gaussian files from training tools
are OpenCV RDF and are converted on load; see renderers.formats.ply.
"""

from __future__ import annotations

import os
from pathlib import Path

from renderers.formats.errors import FormatError
from renderers.formats.mpi_folder import read_mpi_folder, write_mpi_folder
from renderers.formats.ply import read_ply, write_ply
from renderers.formats.splat import read_splat, write_splat
from renderers.gaussians import GaussianCloud

__all__ = [
    "FormatError",
    "load_gaussians",
    "read_mpi_folder",
    "read_ply",
    "read_splat",
    "save_gaussians",
    "write_mpi_folder",
    "write_ply",
    "write_splat",
]


def load_gaussians(path: str | os.PathLike, axes: str | None = None) -> GaussianCloud:
    """Read a .ply or .splat file by its extension (axes: see read_ply / read_splat; None means
    the format's default). Raises FormatError for other extensions or bad files."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        return read_ply(path, axes=axes)
    if suffix == ".splat":
        return read_splat(path, axes=axes or "rdf")
    raise FormatError(f"{os.fspath(path)}: unknown Gaussian file type {suffix!r} (.ply, .splat)")


def save_gaussians(path: str | os.PathLike, cloud: GaussianCloud, axes: str | None = None) -> None:
    """Write a .ply (default axes "rub", recorded in the header) or .splat (default "rdf")."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        write_ply(path, cloud, axes=axes or "rub")
    elif suffix == ".splat":
        write_splat(path, cloud, axes=axes or "rdf")
    else:
        raise FormatError(
            f"{os.fspath(path)}: unknown Gaussian file type {suffix!r} (.ply, .splat)"
        )
