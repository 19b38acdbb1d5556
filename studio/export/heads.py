"""Heads for export: turn a project's HeadRef into something that gives render-ready data per
frame of motion. Qt-free.

Heads are resolved by studio.heads (built-ins, embedded and external .thead files, baked MPI
folders, level-of-detail sub-heads); this module wraps them for the offline renderer.

Sources:
- :class:`RiggedHeadSource`: a RiggedGaussianHead driven by the motion channels (deform).
- :class:`StaticCloudSource`: any GaussianCloud, drawn unchanged (synthetic test scenes).
- :class:`StaticMPISource`: a project's baked MPI folder, drawn unchanged.
- :class:`RiggedMPISource`: a rigged MPI head (.thead of the MPI kind) deformed every frame.
- :class:`MPIHeadSource`: a rigged head baked into an MPI every frame (renderers.bake).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from studio.document import Project
from studio.export.errors import ExportError
from studio.heads import arrays_to_cloud

if TYPE_CHECKING:
    from models.heads import GaussianArrays, RiggedGaussianHead, RiggedMPIHead
    from renderers import MPI, Camera, GaussianCloud

__all__ = [
    "HeadSource",
    "MPIHeadSource",
    "RiggedHeadSource",
    "RiggedMPISource",
    "StaticCloudSource",
    "StaticMPISource",
    "load_project_head",
    "resolve_head_source",
]


class HeadSource:
    """What the offline renderer draws. ``kind`` is "gaussian" or "mpi". ``thread_safe``: whether
    ``frame`` may run on a worker thread (ahead of the GL thread's drawing, for one frame at a
    time); False for sources that use the GL context themselves."""

    kind = "gaussian"
    name = "head"
    thread_safe = False

    def rest_cloud(self) -> GaussianCloud:  # pragma: no cover - interface
        raise NotImplementedError

    def frame(self, values: np.ndarray) -> Any:  # pragma: no cover - interface
        """Render data for one frame of motion channels ``[len(CHANNELS)]``."""
        raise NotImplementedError

    def bind(self, ctx: Any, center: Camera) -> None:
        """Called once by the offline renderer with its GL context and the centre camera (the
        view the eyes are placed around), before the first frame. Sources that render on the
        GPU themselves (MPI baking) keep them; others ignore them."""


class RiggedHeadSource(HeadSource):
    """A rigged Gaussian head driven by the motion channels (``deform`` per frame)."""

    thread_safe = True  # deform is thread-safe

    def __init__(self, head: RiggedGaussianHead, lod_budget: int | None = None) -> None:
        if lod_budget is not None:
            from studio.heads import lod_head

            head = lod_head(head, int(lod_budget))
        self.head = head
        self.name = head.name

    def rest_cloud(self) -> GaussianCloud:
        return arrays_to_cloud(self.head.rest)

    def frame(self, values: np.ndarray) -> GaussianArrays:
        return self.head.deform(values)


class StaticCloudSource(HeadSource):
    """A GaussianCloud that does not move with the motion channels."""

    thread_safe = True  # nothing to compute

    def __init__(self, cloud: GaussianCloud, name: str = "cloud") -> None:
        self.cloud = cloud
        self.name = name

    def rest_cloud(self) -> GaussianCloud:
        return self.cloud

    def frame(self, values: np.ndarray) -> GaussianCloud:
        return self.cloud


class StaticMPISource(HeadSource):
    """A baked MPI folder drawn unchanged every frame (a plain MPI has no rig)."""

    kind = "mpi"
    thread_safe = True  # nothing to compute

    def __init__(self, mpi: MPI, name: str = "mpi") -> None:
        self.mpi = mpi
        self.name = name

    def frame(self, values: np.ndarray) -> MPI:
        return self.mpi


class RiggedMPISource(HeadSource):
    """A rigged MPI head (models.heads.RiggedMPIHead): its planes warped by the motion every
    frame (keypoint deltas, jaw, eyelids; the pose moves its camera)."""

    kind = "mpi"
    thread_safe = True  # deform is thread-safe

    def __init__(self, head: RiggedMPIHead) -> None:
        self.head = head
        self.name = head.name

    def frame(self, values: np.ndarray) -> MPI:
        from studio.head_import import deformed_mpi

        try:
            return deformed_mpi(self.head, values)
        except ValueError as exc:
            raise ExportError(f"cannot deform the MPI head {self.name!r}: {exc}") from None


class MPIHeadSource(HeadSource):
    """A rigged Gaussian head baked into an MPI every frame (renderers.bake on the export's own
    GL context), seen from the centre camera: IM-Portrait's 24 planes around the head."""

    kind = "mpi"

    def __init__(self, head: RiggedGaussianHead, num_planes: int = 24) -> None:
        self.head = head
        self.name = head.name
        self.num_planes = num_planes
        self._baker: Any = None
        self._camera: Camera | None = None

    def bind(self, ctx: Any, center: Camera) -> None:
        from renderers.bake import MPIBaker

        self._baker = MPIBaker(ctx)
        self._camera = center

    def frame(self, values: np.ndarray) -> Any:
        if self._baker is None or self._camera is None:
            raise ExportError("internal: MPI baking used before bind()")
        cloud = arrays_to_cloud(self.head.deform(values))
        w2c = np.asarray(self._camera.world_to_camera, dtype=np.float64)
        centre = np.asarray(self.head.kp_to_world[:3, 3], dtype=np.float64)
        distance = float(w2c[2, :3] @ centre + w2c[2, 3])  # depth of the head centre
        return self._baker.bake(cloud, self._camera, distance=distance, num_planes=self.num_planes)

    def release(self) -> None:
        if self._baker is not None:
            self._baker.release()
            self._baker = None


def load_project_head(project: Project) -> RiggedGaussianHead:
    """The project's rigged Gaussian head (studio.heads.project_head: built-ins, embedded or
    external .thead; the default head when there is none or it is an MPI).

    Raises ExportError (one line) when it cannot be loaded.
    """
    from studio.heads import HeadResolveError, resolve_head

    ref = project.head
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

    A rigged MPI head file is deformed every frame and drawn as an MPI whatever ``kind`` says
    (RiggedMPISource). "mpi": the project's baked
    MPI folder when its head is one (studio.heads.resolve_mpi; relative folders are looked up
    next to ``project_path``), drawn unchanged; otherwise the rigged Gaussian head baked into an
    MPI every frame (MPIHeadSource).
    Raises ExportError when the head cannot be loaded.
    """
    from models.heads import RiggedMPIHead
    from studio.heads import HeadResolveError, lod_head, resolve_any_head, resolve_mpi

    ref = project.head
    if ref is not None and ref.kind != "mpi":
        try:
            rigged = resolve_any_head(ref, project.assets)
        except HeadResolveError as exc:
            raise ExportError(str(exc).strip().splitlines()[0]) from None
        if isinstance(rigged, RiggedMPIHead):
            # A head file of the MPI kind can only be drawn as an MPI: whatever ``kind`` says
            # (the settings default to the reference's kind, which names a file, not a folder).
            return RiggedMPISource(rigged)
    if kind == "mpi":
        if ref is not None and ref.kind == "mpi":
            try:
                mpi = resolve_mpi(project, project_path)
            except HeadResolveError as exc:
                raise ExportError(str(exc).strip().splitlines()[0]) from None
            return StaticMPISource(mpi, name=ref.asset)
        return MPIHeadSource(load_project_head(project))
    if ref is not None and ref.kind == "mpi":
        raise ExportError(
            f"the project's head {ref.asset!r} is an MPI, not a Gaussian head; use --head mpi"
        )
    head = load_project_head(project)
    if lod_budget is not None:
        head = lod_head(head, int(lod_budget))
    return RiggedHeadSource(head)
