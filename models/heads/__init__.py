"""Head assets and rigs: Gaussian heads rigged to the motion space, the procedural default head,
and the ``.thead`` head file. numpy only; Qt-free; never imports renderers (studio converts
:class:`GaussianArrays` to ``renderers.GaussianCloud``).
"""

from models.heads.asset import (
    BUILTIN_HEADS,
    HeadFileError,
    builtin_head_path,
    load_builtin_head,
    load_head,
    save_head,
)
from models.heads.procedural import build_default_head
from models.heads.rig import PARTS, GaussianArrays, RigParams, RiggedGaussianHead

__all__ = [
    "BUILTIN_HEADS",
    "PARTS",
    "GaussianArrays",
    "HeadFileError",
    "RigParams",
    "RiggedGaussianHead",
    "build_default_head",
    "builtin_head_path",
    "load_builtin_head",
    "load_head",
    "save_head",
]
