"""Heads for export: turn a project's HeadRef into something that gives render-ready data per
frame of motion. Qt-free.

Heads are resolved by studio.heads (built-ins, embedded and external .thead files, baked MPI
folders, level-of-detail sub-heads); this module wraps them for the offline renderer.

Sources:
- :class:`RiggedHeadSource`: a RiggedGaussianHead driven by the motion channels (deform).
- :class:`StaticCloudSource`: any GaussianCloud, drawn unchanged (synthetic test scenes).
- :class:`StaticMPISource`: a project's baked MPI head (MPI heads do not animate yet).
- :class:`MPIHeadSource`: an MPI baked per frame by ``models.heads.bake_mpi`` (not there yet:
  asking for it raises ExportError).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studio.document import HeadRef, Project
from studio.export.errors import ExportError

if TYPE_CHECKING:
    from models.heads import GaussianArrays, RiggedGaussianHead
    from renderers import MPI, GaussianCloud

BUILTIN_PREFIX = "builtin:"

__all__ = [
    "HeadSource",
    "MPIHeadSource",
    "RiggedHeadSource",
    "StaticCloudSource",
    "StaticMPISource",
    "load_project_head",
    "resolve_head_source",
]


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
    """A rigged Gaussian head driven by the motion channels (``deform`` per frame)."""

    def __init__(self, head: RiggedGaussianHead, lod_budget: int | None = None) -> None:
        if lod_budget is not None:
            from studio.heads import lod_head

            head = lod_head(head, int(lod_budget))
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


class StaticMPISource(HeadSource):
    """A baked MPI drawn unchanged every frame (MPI heads do not animate yet)."""

    kind = "mpi"

    def __init__(self, mpi: MPI, name: str = "mpi") -> None:
        self.mpi = mpi
        self.name = name

    def frame(self, values: np.ndarray) -> MPI:
        return self.mpi


class MPIHeadSource(HeadSource):
    """An MPI per frame from ``bake(head, values)`` (models.heads MPI baking, when it lands)."""

    kind = "mpi"

    def __init__(self, head: Any, bake: Any) -> None:
        self.head, self._bake = head, bake
        self.name = getattr(head, "name", "head")

    def frame(self, values: np.ndarray) -> Any:
        return self._bake(self.head, values)


def _normalised_ref(project: Project) -> HeadRef | None:
    ref = project.head
    if ref is not None and not ref.asset.startswith(BUILTIN_PREFIX):
        name = Path(ref.asset).name
        if name.startswith(BUILTIN_PREFIX) and ref.asset not in project.assets:
            # load_project(missing_assets="keep") resolves every asset against the project
            # folder, turning "builtin:default" into "<folder>/builtin:default"; built-ins are
            # names, not files.
            ref = HeadRef(name, ref.kind)
    return ref


def load_project_head(project: Project) -> RiggedGaussianHead:
    """The project's rigged Gaussian head (studio.heads.project_head: built-ins, embedded or
    external .thead; the default head when there is none or it is an MPI).

    Raises ExportError (one line) when it cannot be loaded.
    """
    from studio.heads import HeadResolveError, resolve_head

    ref = _normalised_ref(project)
    try:
        if ref is None or ref.kind == "mpi":
            return resolve_head(None)
        return resolve_head(ref, project.assets)
    except HeadResolveError as exc:
        raise ExportError(str(exc).strip().splitlines()[0]) from None


def resolve_head_source(
    project: Project,
    kind: str = "gaussian",
    lod_budget: int | None = None,
    project_path: str | os.PathLike[str] | None = None,
) -> HeadSource:
    """A HeadSource for ``project`` rendered as ``kind`` ("gaussian" or "mpi").

    "mpi": the project's baked MPI when its head is an MPI (studio.heads.resolve_mpi; relative
    folders are looked up next to ``project_path``), drawn unchanged every frame; a Gaussian
    head baked to an MPI per frame needs ``models.heads.bake_mpi``, which does not exist yet.
    Raises ExportError when the head cannot be loaded, or for "mpi" without an MPI to draw.
    """
    from studio.heads import HeadResolveError, lod_head, resolve_mpi

    ref = _normalised_ref(project)
    if kind == "mpi":
        if ref is not None and ref.kind == "mpi":
            try:
                mpi = resolve_mpi(project, project_path)
            except HeadResolveError as exc:
                raise ExportError(str(exc).strip().splitlines()[0]) from None
            return StaticMPISource(mpi, name=ref.asset)
        import models.heads as heads_pkg

        bake = getattr(heads_pkg, "bake_mpi", None)
        if bake is None:
            raise ExportError(
                "MPI export of a Gaussian head needs MPI baking, which models.heads does not "
                "have yet (bake_mpi); use --head gaussian"
            )
        return MPIHeadSource(load_project_head(project), bake)
    if ref is not None and ref.kind == "mpi":
        raise ExportError(
            f"the project's head {ref.asset!r} is an MPI, not a Gaussian head; use --head mpi"
        )
    head = load_project_head(project)
    if lod_budget is not None:
        head = lod_head(head, int(lod_budget))
    return RiggedHeadSource(head)
