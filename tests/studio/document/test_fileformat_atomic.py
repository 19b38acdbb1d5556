"""atomic_write: the target always holds old or new contents; backups; leftovers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from studio.document.fileformat import atomic_write


def _write(data: bytes):
    return lambda f: f.write(data)


def test_writes_and_keeps_one_backup(tmp_path: Path) -> None:
    p = tmp_path / "a.ths"
    atomic_write(p, _write(b"one"))
    assert p.read_bytes() == b"one"
    assert not (tmp_path / "a.ths.bak").exists()
    atomic_write(p, _write(b"two"))
    atomic_write(p, _write(b"three"))
    assert p.read_bytes() == b"three"
    assert (tmp_path / "a.ths.bak").read_bytes() == b"two"
    assert sorted(os.listdir(tmp_path)) == ["a.ths", "a.ths.bak"]


def test_rotates_n_backups_and_zero_keeps_none(tmp_path: Path) -> None:
    p = tmp_path / "a.ths"
    for i in range(5):
        atomic_write(p, _write(b"v%d" % i), backups=3)
    assert p.read_bytes() == b"v4"
    assert (tmp_path / "a.ths.bak").read_bytes() == b"v3"
    assert (tmp_path / "a.ths.bak2").read_bytes() == b"v2"
    assert (tmp_path / "a.ths.bak3").read_bytes() == b"v1"
    assert len(os.listdir(tmp_path)) == 4
    q = tmp_path / "b.ths"
    atomic_write(q, _write(b"x"), backups=0)
    atomic_write(q, _write(b"y"), backups=0)
    assert not (tmp_path / "b.ths.bak").exists()
    with pytest.raises(ValueError):
        atomic_write(q, _write(b"z"), backups=-1)


def test_backup_is_not_the_same_inode_as_new_file(tmp_path: Path) -> None:
    # The backup is made by hard link: writing the new version must not change it.
    p = tmp_path / "a.ths"
    atomic_write(p, _write(b"old"))
    atomic_write(p, _write(b"new"))
    assert os.stat(p).st_ino != os.stat(tmp_path / "a.ths.bak").st_ino
    assert os.stat(tmp_path / "a.ths.bak").st_nlink == 1


def test_failure_leaves_target_and_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "a.ths"
    atomic_write(p, _write(b"good"))

    def boom(f) -> None:
        f.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(p, boom)
    assert p.read_bytes() == b"good"
    assert sorted(os.listdir(tmp_path)) == ["a.ths"]


def test_keeps_permissions_and_follows_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.ths"
    atomic_write(real, _write(b"1"))
    os.chmod(real, 0o640)
    link = tmp_path / "link.ths"
    link.symlink_to(real)
    atomic_write(link, _write(b"2"))
    assert link.is_symlink() and real.read_bytes() == b"2"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640


def test_removes_temp_files_of_dead_processes_only(tmp_path: Path) -> None:
    p = tmp_path / "a.ths"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".a.ths.tmp-{dead_pid}-deadbeef"
    # a writer killed while linking the backup leaves the backup's temporary name
    stale_bak = tmp_path / f".a.ths.bak.tmp-{dead_pid}-deadbeef"
    live = tmp_path / f".a.ths.tmp-{os.getppid()}-cafebabe"  # our parent is alive
    other = tmp_path / f".b.ths.tmp-{dead_pid}-deadbeef"
    for f in (stale, stale_bak, live, other):
        f.write_bytes(b"junk")
    atomic_write(p, _write(b"x"))
    assert not stale.exists() and not stale_bak.exists()
    assert live.exists() and other.exists()


def test_os_errors_during_save_become_project_file_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from fileformat_factory import make_project

    from studio.document import fileformat
    from studio.document.fileformat import ProjectFileError, load_project, save_project

    p = make_project(duration=20, key_every=5, channels=("yaw",), n_takes=1)
    path = tmp_path / "p.ths"
    save_project(p, path)
    before = path.read_bytes()
    p.metadata["changed"] = True
    for name in ("fsync", "replace"):

        def fail(*args, **kwargs):
            raise OSError(errno.EIO, "Input/output error")

        with monkeypatch.context() as m:
            m.setattr(fileformat.os, name, fail)
            with pytest.raises(ProjectFileError, match=r"cannot save \(Input/output error\)"):
                save_project(p, path)
        assert path.read_bytes() == before, name
        assert "changed" not in load_project(path).metadata
        assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n], name
