"""File > Import Head: a head file, a 3DGS .ply or a portrait becomes the project's head, embedded
as a rigged .thead that the viewport and export load (undoable); anything else gives one
message and changes nothing. Offscreen."""

from __future__ import annotations

import pytest
from window_helpers import make_window

from studio.document import Project
from studio.ui import dialogs


@pytest.fixture
def errors(monkeypatch):
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *_a: "discard")
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, title, text: shown.append((title, text)))
    return shown


def _wait_jobs(qtbot, w, timeout=60_000) -> None:
    qtbot.waitUntil(lambda: not w._jobs, timeout=timeout)


def test_import_a_head_file_embeds_it(qtbot, tmp_path, errors):
    from models.heads import builtin_head_path
    from studio.heads import project_head

    w = make_window(qtbot, tmp_path, Project.new(fps=25, duration_frames=10), show=False)
    before = w.controller.project.head
    assert w.import_head(builtin_head_path("default")) is not None
    _wait_jobs(qtbot, w)
    assert not errors
    project = w.controller.project
    assert project.head.asset == "head/default.thead" and project.head.asset in project.assets
    head = project_head(project)  # what the viewport and export load
    assert len(head) > 30_000 and head.keypoints.shape == (21, 3)
    w.controller.undo()
    assert w.controller.project.head == before


def test_import_a_ply_rigs_it(qtbot, tmp_path, errors, face_models):
    from models.heads import load_builtin_head
    from renderers.formats import save_gaussians
    from studio.heads import project_head, rest_cloud

    ply = tmp_path / "scan.ply"
    # The whole head: a level-of-detail subset has holes the landmark model may not read as a face.
    cloud = rest_cloud(load_builtin_head("default"))
    save_gaussians(ply, cloud)
    w = make_window(qtbot, tmp_path, Project.new(fps=25, duration_frames=10), show=False)
    w.import_head(ply)
    _wait_jobs(qtbot, w)
    assert not errors
    head = project_head(w.controller.project)
    assert w.controller.project.head.asset == "head/scan.thead"
    n = len(cloud)
    assert len(head) == n and head.skin_weight.shape[0] == n  # rigged


def test_not_a_head_gives_one_message(qtbot, tmp_path, errors):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    broken = tmp_path / "broken.thead"
    broken.write_bytes(b"not a zip")
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat nonsense\n")
    w = make_window(qtbot, tmp_path, Project.new(fps=25, duration_frames=10), show=False)
    before = w.controller.project.head
    assert w.import_head(bad) is None
    w.import_head(broken)
    _wait_jobs(qtbot, w)
    w.import_head(garbage)  # fails in the import child process: its one-line error comes back
    _wait_jobs(qtbot, w)
    assert [t for t, _ in errors] == ["Cannot import the head"] * 3
    assert "notes.txt: not a head" in errors[0][1] and "broken.thead" in errors[1][1]
    assert "garbage.ply" in errors[2][1] and "Traceback" not in errors[2][1]
    assert w.controller.project.head == before
