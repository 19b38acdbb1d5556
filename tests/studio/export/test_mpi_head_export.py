"""Export of a project whose head is a rigged MPI head file (.thead of the MPI kind): every frame
is the head deformed by the motion and drawn as an MPI from both eyes."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import tiny_project

from studio.export import ExportSettings, run_export
from studio.export.heads import RiggedMPISource, resolve_head_source


@pytest.fixture(scope="module")
def mpi_head_file(tmp_path_factory):
    from models.heads import load_builtin_head, save_head
    from studio.head_import import bake_mpi_head

    head = bake_mpi_head(load_builtin_head("default"), width=96, height=96, num_planes=8)
    path = tmp_path_factory.mktemp("mpihead") / "baked.thead"
    save_head(head, path)
    return path


def _project(path, frames=3):
    from studio.document import HeadRef

    project = tiny_project(frames=frames, audio=False)
    project.head = HeadRef(str(path))
    return project


def test_rigged_mpi_head_source_deforms_per_frame(mpi_head_file):
    from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX

    project = _project(mpi_head_file)
    source = resolve_head_source(project)  # "gaussian" by default: still drawn as an MPI
    assert isinstance(source, RiggedMPISource) and source.kind == "mpi"
    assert isinstance(resolve_head_source(project, "mpi"), RiggedMPISource)
    rest = source.frame(CHANNEL_DEFAULTS.copy())
    v = CHANNEL_DEFAULTS.copy()
    v[CHANNEL_INDEX["exp_19_y"]] = 0.06  # jaw open
    opened = source.frame(v)
    assert rest.rgba.shape == opened.rgba.shape == (8, 96, 96, 4)
    assert np.abs(rest.rgba - opened.rgba).max() > 0.2


def test_project_with_a_rigged_mpi_head_exports(mpi_head_file, tmp_path):
    from studio.document import HeadRef

    project = _project(mpi_head_file)
    done = run_export(project, ExportSettings(tmp_path / "m.mp4", eye_size=(48, 48), audio=False))
    assert done.path.name == "m_LR.mp4" and done.path.stat().st_size > 0
    project.head = HeadRef(str(tmp_path / "missing.thead"))
    from studio.export import ExportError

    with pytest.raises(ExportError, match=r"missing\.thead"):
        run_export(project, ExportSettings(tmp_path / "x.mp4", eye_size=(48, 48), audio=False))
