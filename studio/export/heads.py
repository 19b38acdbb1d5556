"""Heads for export: turn a project's HeadRef into something that gives render-ready data per
frame of motion. Qt-free.

Private adapter until ``studio.heads`` lands (a colleague's module): resolving "builtin:<name>",
embedded assets and external files is done here; when ``studio.heads`` exists its resolver is
preferred (see :func:`resolve_head_source`).

Sources:
- :class:`RiggedHeadSource`: a RiggedGaussianHead driven by the motion channels (deform).
- :class:`StaticCloudSource`: a plain 3DGS cloud (.ply/.splat) or any GaussianCloud; it does not
  move (tests render synthetic scenes through the export pipeline with it).
- :class:`MPIHeadSource`: an MPI baked per frame by ``models.heads.bake_mpi`` (not there yet:
  asking for it raises ExportError).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studio.document import Project
from studio.export.errors import ExportError

if TYPE_CHECKING:
    from models.heads import GaussianArrays, RiggedGaussianHead
    from renderers import GaussianCloud

__all__ = [
    "HeadSource",
    "MPIHeadSource",
    "RiggedHeadSource",
    "StaticCloudSource",
    "load_project_head",
    "resolve_head_source",
]

_PER_GAUSSIAN = ("means", "quats", "scales", "opacities", "sh", "parts", "skin_index",
                 "skin_weight", "jaw_weight", "lid_angle", "pose_weight")  # fmt: skip


class HeadSource:
    """What the offline renderer draws. ``kind`` is "gaussian" or "mpi"."""

    kind = "gaussian"
    name = "head"

    def rest_cloud(self) -> GaussianCloud:  # pragma: no cover - interface
        raise NotImplementedError

    def frame(self, values: np.ndarray) -> Any:  # pragma: no cover - interface
        """Render data for one frame of motion channels ``[len(CHANNELS)]``."""
        raise NotImplementedError


def _cloud(arrays: Any) -> GaussianCloud:
    from renderers import GaussianCloud

    return GaussianCloud(arrays.means, arrays.quats, arrays.scales, arrays.opacities, arrays.sh)


class RiggedHeadSource(HeadSource):
    """A rigged Gaussian head; with ``lod_budget`` only the most contributing Gaussians are kept
    (survivors enlarged to keep coverage, renderers.lod), which also makes deform cheaper."""

    def __init__(self, head: RiggedGaussianHead, lod_budget: int | None = None) -> None:
        if lod_budget is not None and lod_budget < len(head):
            head = _lod_head(head, int(lod_budget))
        self.head = head
        self.name = head.name

    def rest_cloud(self) -> GaussianCloud:
        return _cloud(self.head.rest)

    def frame(self, values: np.ndarray) -> GaussianArrays:
        return self.head.deform(values)


class StaticCloudSource(HeadSource):
    """A GaussianCloud that does not move with the motion channels."""

    def __init__(self, cloud: GaussianCloud, name: str = "cloud") -> None:
        self.cloud = cloud
        self.name = name

    def rest_cloud(self) -> GaussianCloud:
        return self.cloud

    def frame(self, values: np.ndarray) -> GaussianCloud:
        return self.cloud


class MPIHeadSource(HeadSource):
    """An MPI per frame from ``bake(head, values)`` (models.heads MPI baking)."""

    kind = "mpi"

    def __init__(self, head: Any, bake: Any) -> None:
        self.head, self._bake = head, bake
        self.name = getattr(head, "name", "head")

    def frame(self, values: np.ndarray) -> Any:
        return self._bake(self.head, values)


def _lod_head(head: RiggedGaussianHead, budget: int) -> RiggedGaussianHead:
    from models.heads import RiggedGaussianHead
    from renderers.lod import contribution_scores, select_lod

    cloud = _cloud(head.rest)
    index = select_lod(cloud, budget)
    score = contribution_scores(cloud)
    arrays = {name: np.asarray(getattr(head, name))[index] for name in _PER_GAUSSIAN}
    kept = float(score[index].sum())
    if kept > 0:  # enlarge the two largest axes so the total covered area stays about the same
        factor = float(np.clip(np.sqrt(score.sum() / kept), 1.0, 1.5))
        scales = arrays["scales"].copy()
        order = np.argsort(scales, axis=1)
        rows = np.arange(len(scales))[:, None]
        scales[rows, order[:, 1:]] *= np.float32(factor)
        arrays["scales"] = scales
    fields = {f: getattr(head, f) for f in head.__dataclass_fields__}
    fields.update(arrays)
    fields["metadata"] = {**head.metadata, "lod_budget": budget}
    return RiggedGaussianHead(**fields)


def _load_head_file(path: Path, label: str) -> RiggedGaussianHead | GaussianCloud:
    suffix = path.suffix.lower()
    try:
        if suffix == ".thead":
            from models.heads import load_head

            return load_head(path)
        if suffix in (".ply", ".splat"):
            from renderers import load_gaussians

            return load_gaussians(path)
    except Exception as exc:  # HeadFileError, FormatError, OSError: one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"head {label}: {first}") from None
    raise ExportError(f"head {label}: unknown head file type {suffix!r} (.thead, .ply, .splat)")


def load_project_head(project: Project) -> RiggedGaussianHead | GaussianCloud:
    """The project's head as a rigged head (.thead, built-ins) or a static cloud (.ply/.splat).

    No head: the built-in default head. Raises ExportError for unknown built-ins and missing or
    unreadable head files.
    """
    from models.heads import load_builtin_head

    ref = project.head
    if ref is None:
        return load_builtin_head("default")
    asset = ref.asset
    if not asset.startswith("builtin:") and Path(asset).name.startswith("builtin:"):
        # A project file loader that resolves every asset against the project folder turns
        # "builtin:default" into "<folder>/builtin:default"; built-ins are names, not files.
        asset = Path(asset).name
    if asset.startswith("builtin:"):
        name = asset.split(":", 1)[1] or "default"
        try:
            return load_builtin_head(name)
        except KeyError:
            raise ExportError(f"head {asset!r}: no such built-in head") from None
    if asset in project.assets:
        suffix = Path(asset).suffix or (".thead" if project.assets[asset][:2] == b"PK" else "")
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="ths-head-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(project.assets[asset])
            return _load_head_file(Path(tmp), asset)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    path = Path(asset)
    if not path.is_file():
        raise ExportError(f"head {asset!r}: no such file (and not embedded in the project)")
    return _load_head_file(path, asset)


def resolve_head_source(
    project: Project, kind: str = "gaussian", lod_budget: int | None = None
) -> HeadSource:
    """A HeadSource for ``project`` rendered as ``kind`` ("gaussian" or "mpi").

    Raises ExportError when the head cannot be loaded, or for "mpi" when models.heads has no
    MPI baking yet (``bake_mpi``).
    """
    from models.heads import RiggedGaussianHead

    head = load_project_head(project)
    if kind == "mpi":
        import models.heads as heads_pkg

        bake = getattr(heads_pkg, "bake_mpi", None)
        if bake is None:
            raise ExportError(
                "MPI export is not available yet: models.heads has no MPI baking (bake_mpi); "
                "use --head gaussian"
            )
        return MPIHeadSource(head, bake)
    if isinstance(head, RiggedGaussianHead):
        return RiggedHeadSource(head, lod_budget)
    cloud = head
    if lod_budget is not None and lod_budget < len(cloud):
        from renderers.lod import lod_cloud

        cloud = lod_cloud(cloud, lod_budget, compensate=True)
    return StaticCloudSource(cloud, name=str(project.head.asset if project.head else "cloud"))
