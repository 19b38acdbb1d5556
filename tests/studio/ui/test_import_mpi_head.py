"""File > Import MPI Head Folder (and Import Head given a folder): a checked MPI folder becomes
the project's head (undoable); a bad folder gives one message and changes nothing. Offscreen."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from window_helpers import make_window

from studio.document import HeadRef, Project
from studio.ui import dialogs
from studio.ui import main_window as main_window_module

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/studio: the MPI helper
from test_head_import_mpi import make_mpi_folder


@pytest.fixture
def errors(monkeypatch):
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", lambda *_a: "discard")
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, title, text: shown.append((title, text)))
    return shown


def _wait_jobs(qtbot, w) -> None:
    qtbot.waitUntil(lambda: not w._jobs, timeout=10_000)


def test_menu_imports_an_mpi_folder_as_the_head(qtbot, tmp_path, errors, monkeypatch):
    folder = make_mpi_folder(tmp_path / "my mpi")
    w = make_window(qtbot, tmp_path, Project.new(fps=25, duration_frames=10), show=False)
    file_menu = w.menuBar().actions()[0].menu()
    texts = [a.text() for a in file_menu.actions()]
    assert texts.index("Import &MPI Head Folder…") == texts.index("Import &Head…") + 1
    asked = []
    monkeypatch.setattr(
        main_window_module, "ask_mpi_folder", lambda _p, start=None: asked.append(1) or folder
    )
    before = w.controller.project.head
    w.import_mpi_action.trigger()
    _wait_jobs(qtbot, w)
    assert asked and not errors
    assert w.controller.project.head == HeadRef(asset=str(folder), kind="mpi")
    w.controller.undo()  # one undo step
    assert w.controller.project.head == before


def test_import_head_given_a_folder_takes_it_as_an_mpi(qtbot, tmp_path, errors):
    folder = make_mpi_folder(tmp_path / "m")
    w = make_window(qtbot, tmp_path, Project.new(fps=25, duration_frames=10), show=False)
    assert w.import_head(folder) is not None
    _wait_jobs(qtbot, w)
    assert w.controller.project.head == HeadRef(asset=str(folder), kind="mpi") and not errors


def test_bad_mpi_folder_gives_one_message_and_changes_nothing(qtbot, tmp_path, errors):
    folder = make_mpi_folder(tmp_path / "broken")
    (folder / "plane_01.png").unlink()
    w = make_window(qtbot, tmp_path, Project.new(fps=25, duration_frames=10), show=False)
    before = w.controller.project.head
    w.import_mpi_head(folder)
    _wait_jobs(qtbot, w)
    assert errors == [
        ("Cannot import the head",
         "broken: not a usable MPI head folder: missing plane files: plane_01.png")
    ]  # fmt: skip
    assert w.controller.project.head == before
