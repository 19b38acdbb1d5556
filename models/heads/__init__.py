"""Head assets and rigs: Gaussian and MPI heads rigged to the motion space, the procedural default
head, and the ``.thead`` head file. numpy only (cv2 for the MPI warp); Qt-free; never imports
renderers (studio converts :class:`GaussianArrays` to ``renderers.GaussianCloud`` and
:class:`MPIArrays` to ``renderers.MPI``).
"""

from models.heads.asset import (
    BUILTIN_HEADS,
    HeadFileError,
    builtin_head_path,
    load_builtin_head,
    load_head,
    save_head,
)
from models.heads.mpi_head import MAX_MPI_ANGLE, MPIArrays, MPIRigParams, RiggedMPIHead
from models.heads.procedural import build_default_head
from models.heads.rig import PARTS, GaussianArrays, RiggedGaussianHead, RigParams

__all__ = [
    "BUILTIN_HEADS",
    "MAX_MPI_ANGLE",
    "PARTS",
    "GaussianArrays",
    "HeadFileError",
    "MPIArrays",
    "MPIRigParams",
    "PortraitImportError",
    "PortraitResult",
    "RigParams",
    "RiggedGaussianHead",
    "RiggedMPIHead",
    "build_default_head",
    "builtin_head_path",
    "load_builtin_head",
    "load_head",
    "portrait_head",
    "save_head",
]


def __getattr__(name: str):
    # Portrait import pulls in cv2, scipy and the face models: loaded on first use only.
    if name in ("PortraitImportError", "PortraitResult", "portrait_head"):
        from models.heads import portrait

        return getattr(portrait, name)
    raise AttributeError(f"module 'models.heads' has no attribute {name!r}")
