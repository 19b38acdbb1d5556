"""RecoveryManager: session markers, autosaves, and offering them after a crash."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import zipfile
from pathlib import Path

import pytest
from fileformat_factory import make_project

from studio.document.fileformat import ProjectFileError, load_project, save_project
from studio.document.project import HeadRef
from studio.document.recovery import RecoveryItem, RecoveryManager, default_recovery_dir

needs_fork = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="simulates a crashed session with fork",
)


@pytest.fixture(scope="module")
def project():
    return make_project(duration=30, key_every=3, channels=("pitch", "yaw", "exp_19_y"))


def _session(recovery_dir: Path, project, paths: list, *, clean: bool) -> None:
    """Run in a child: start a session, autosave, then end cleanly or "crash" (no cleanup)."""
    mgr = RecoveryManager(recovery_dir)
    mgr.session_started()
    for p in paths:
        mgr.autosave(project, p)
    if clean:
        mgr.session_ended_cleanly()
    os._exit(0)


def _run_session(recovery_dir: Path, project, paths: list, *, clean: bool = False) -> None:
    child = multiprocessing.get_context("fork").Process(
        target=_session, args=(recovery_dir, project, paths), kwargs={"clean": clean}
    )
    child.start()
    child.join()
    assert child.exitcode == 0


def test_default_dir_follows_xdg_state_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_recovery_dir() == tmp_path / "talking-head-studio" / "recovery"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "state" / "talking-head-studio" / "recovery"
    assert default_recovery_dir() == expected
    monkeypatch.delenv("XDG_STATE_HOME")
    assert RecoveryManager().recovery_dir == expected


def test_own_session_autosaves_are_not_offered_and_clean_end_removes_them(
    tmp_path: Path,
    project,
) -> None:
    mgr = RecoveryManager(tmp_path / "rec")
    mgr.session_started()
    marker = json.loads(mgr.marker_path.read_text())
    assert marker["pid"] == os.getpid() and marker["started_at"] <= time.time()
    saved = mgr.autosave(project, tmp_path / "a.ths")
    untitled = mgr.autosave(project, None)
    assert saved != untitled and saved.exists() and untitled.exists()
    with zipfile.ZipFile(saved) as zf:
        info = json.loads(zf.read("recovery.json"))
    assert info["original_path"] == str(tmp_path / "a.ths")
    assert load_project(saved) == project
    assert mgr.pending_recoveries() == []  # we are alive
    # A second manager (another running instance) does not offer them either.
    assert RecoveryManager(tmp_path / "rec").pending_recoveries() == []
    mgr.remove_autosave(None)
    assert not untitled.exists()
    mgr.session_ended_cleanly()
    assert os.listdir(tmp_path / "rec") == []


@needs_fork
def test_crashed_session_is_offered_recovered_and_discarded(tmp_path: Path, project) -> None:
    rec = tmp_path / "rec"
    original = tmp_path / "show.ths"
    save_project(project, original)
    old = time.time() - 60
    os.utime(original, (old, old))  # the project file predates the autosave
    _run_session(rec, project, [original, None])
    mgr = RecoveryManager(rec)
    items = mgr.pending_recoveries()
    assert {it.original_path for it in items} == {original, None}
    assert all(isinstance(it, RecoveryItem) and it.recovery_path.parent == rec for it in items)
    assert items[0].saved_at >= items[1].saved_at  # newest first
    for it in items:
        assert mgr.recover(it) == project
    mgr.discard(items[0])
    assert len(mgr.pending_recoveries()) == 1
    mgr.discard(items[1])
    assert mgr.pending_recoveries() == []
    assert os.listdir(rec) == []  # the dead session's marker went with its last autosave


@needs_fork
def test_clean_exit_leaves_nothing_to_recover(tmp_path: Path, project) -> None:
    _run_session(tmp_path / "rec", project, [tmp_path / "x.ths"], clean=True)
    assert RecoveryManager(tmp_path / "rec").pending_recoveries() == []
    assert os.listdir(tmp_path / "rec") == []


@needs_fork
def test_autosave_older_than_the_project_file_is_not_offered(tmp_path: Path, project) -> None:
    original = tmp_path / "show.ths"
    _run_session(tmp_path / "rec", project, [original])
    mgr = RecoveryManager(tmp_path / "rec")
    assert len(mgr.pending_recoveries()) == 1  # the project file does not exist: offered
    save_project(project, original)
    future = time.time() + 60
    os.utime(original, (future, future))
    assert mgr.pending_recoveries() == []


def _fake_marker(rec: Path, sid: str, **fields) -> None:
    rec.mkdir(parents=True, exist_ok=True)
    (rec / f"session-{sid}.json").write_text(json.dumps(fields))


def test_reused_pid_counts_as_crashed_other_host_does_not(tmp_path: Path, project) -> None:
    import socket

    rec = tmp_path / "rec"
    donor = RecoveryManager(rec)
    autosave = donor.autosave(project, tmp_path / "p.ths")
    donor.marker_path.unlink()
    # Same pid as a live process (our parent) but a different process start time: pid reused.
    sid = f"{os.getppid()}-0000abcd"
    autosave.rename(rec / f"{sid}--p.ths")
    _fake_marker(rec, sid, pid=os.getppid(), process_start=-5, host=socket.gethostname())
    mgr = RecoveryManager(rec)
    if sys.platform.startswith("linux"):
        assert [it.recovery_path.name for it in mgr.pending_recoveries()] == [f"{sid}--p.ths"]
    # Another machine's session (shared home folder): we cannot tell, so it is not offered.
    _fake_marker(rec, sid, pid=999_999_999, host="some-other-host")
    assert mgr.pending_recoveries() == []
    # A dead pid on this host is offered; a garbled marker is left alone.
    _fake_marker(rec, sid, pid=999_999_999, host=socket.gethostname())
    assert len(mgr.pending_recoveries()) == 1
    (rec / f"session-{sid}.json").write_text("{garbled")
    assert mgr.pending_recoveries() == []


def test_corrupt_autosave_is_skipped_and_recover_raises(tmp_path: Path, project) -> None:
    import socket

    rec = tmp_path / "rec"
    sid = "999999999-0000beef"
    _fake_marker(rec, sid, pid=999_999_999, host=socket.gethostname())
    (rec / f"{sid}--junk.ths").write_bytes(b"PK\x03\x04 not really")
    mgr = RecoveryManager(rec)
    assert mgr.pending_recoveries() == []
    with pytest.raises(ProjectFileError, match=r"junk\.ths"):
        mgr.recover(RecoveryItem(None, rec / f"{sid}--junk.ths", 0.0))


def test_autosave_keeps_external_assets_absolute(tmp_path: Path) -> None:
    head = tmp_path / "heads" / "h.ply"
    head.parent.mkdir()
    head.write_bytes(b"ply\n")
    p = make_project(duration=20, key_every=5, channels=("yaw",), external_head=head)
    mgr = RecoveryManager(tmp_path / "rec")
    path = mgr.autosave(p, tmp_path / "project.ths")
    assert mgr._started and mgr.marker_path.exists()  # autosave starts the session itself
    with zipfile.ZipFile(path) as zf:
        doc = json.loads(zf.read("project.json"))
    assert doc["head"]["asset"] == {"external": str(head)}
    assert load_project(path).head == HeadRef(str(head), "gaussian")
    mgr.session_ended_cleanly()


def test_autosave_key_validation(tmp_path: Path, project) -> None:
    mgr = RecoveryManager(tmp_path)
    assert mgr.autosave_path(None, key="doc-2").name.endswith("--doc-2.ths")
    assert mgr.autosave_path(tmp_path / "a b.ths") != mgr.autosave_path(tmp_path / "x" / "a b.ths")
    with pytest.raises(ValueError):
        mgr.autosave_path(None, key="../escape")
