"""Autosave and crash recovery (Qt-free; the timer that calls it lives in the UI).

A session writes a marker file when it starts and removes it (with its autosaves) when it ends
cleanly. Autosaves are ordinary ``.ths`` files written atomically into the recovery folder, with
an extra ``recovery.json`` member (original path, time, session). At the next start,
:meth:`RecoveryManager.pending_recoveries` lists the autosaves of sessions whose marker is still
there but whose process is gone (the app crashed or was killed) and that are newer than the
project file they belong to.

Recovery folder: ``$XDG_STATE_HOME/talking-head-studio/recovery``, else
``~/.local/state/talking-head-studio/recovery``.

Autosaves store external asset references as absolute paths (their own folder is not the
project's), so a recovered project finds its assets wherever it is saved next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import socket
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.document.fileformat import (
    _pid_alive,
    _save,
    atomic_write,
    load_project,
)

if TYPE_CHECKING:
    from studio.document.project import Project

__all__ = ["AutosavePolicy", "RecoveryItem", "RecoveryManager", "default_recovery_dir"]

RECOVERY_MEMBER = "recovery.json"
_SESSION_RE = re.compile(r"^session-(?P<sid>[0-9A-Za-z]+-[0-9a-f]+)\.json$")
_AUTOSAVE_RE = re.compile(r"^(?P<sid>[0-9A-Za-z]+-[0-9a-f]+)--(?P<key>[^/\\]+)\.ths$")


def default_recovery_dir() -> Path:
    """``$XDG_STATE_HOME/talking-head-studio/recovery`` or ``~/.local/state/...``."""
    state = os.environ.get("XDG_STATE_HOME", "").strip()
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "talking-head-studio" / "recovery"


def _process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to detect reused pids."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        return int(data[data.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class RecoveryItem:
    """An autosave left behind by a session that did not end cleanly."""

    original_path: Path | None  # the project file it belongs to; None for an untitled project
    recovery_path: Path  # the autosave (.ths) in the recovery folder
    saved_at: float  # when it was written, seconds since the epoch (time.time())


@dataclass(frozen=True)
class AutosavePolicy:
    """When the next autosave is due: ``interval_minutes`` after the last one, if anything changed.

    Times are seconds on any one clock (time.time() or time.monotonic()).
    Raises ValueError for a non-positive or non-finite interval.
    """

    interval_minutes: float = 2.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval_minutes) and self.interval_minutes > 0):
            raise ValueError(f"autosave interval must be > 0 minutes, got {self.interval_minutes}")

    @property
    def interval_seconds(self) -> float:
        return self.interval_minutes * 60.0

    def next_due(self, last_change: float | None, last_autosave: float | None) -> float | None:
        """Time at which an autosave is due, or None when there is nothing unsaved.

        ``last_change``: time of the latest change not yet written anywhere (None: none).
        ``last_autosave``: time the project was last written (autosave, save, or open);
        None means never, and then a change is due at once. The interval counts from the last
        write, not from the last change, so continuous editing still gets autosaved.
        """
        if last_change is None:
            return None
        if last_autosave is None:
            return last_change
        if last_change <= last_autosave:
            return None
        return last_autosave + self.interval_seconds

    def due(self, now: float, last_change: float | None, last_autosave: float | None) -> bool:
        """Whether an autosave should be written at ``now`` (see :meth:`next_due`)."""
        when = self.next_due(last_change, last_autosave)
        return when is not None and now >= when


def _key_for(project_path: str | os.PathLike[str] | None, key: str | None) -> str:
    if key is not None:
        if not re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", key):
            raise ValueError(f"autosave key must be 1-64 of [0-9A-Za-z_.-], got {key!r}")
        return key
    if project_path is None:
        return "untitled"
    absolute = os.path.abspath(os.fspath(project_path))
    stem = re.sub(r"[^0-9A-Za-z_.-]+", "_", Path(absolute).stem)[:40] or "project"
    digest = hashlib.sha256(absolute.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{stem}-{digest}"


class RecoveryManager:
    """Session markers, autosaves and the recovery of autosaves after a crash.

    One instance per running app (one session). All methods touch only ``recovery_dir``;
    OSErrors from the file system propagate (the caller shows them), except that unreadable
    entries of other sessions are skipped when listing.
    """

    def __init__(self, recovery_dir: str | os.PathLike[str] | None = None) -> None:
        self.recovery_dir = Path(recovery_dir) if recovery_dir is not None else (
            default_recovery_dir())  # fmt: skip
        self.session_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._started = False

    # -- this session --------------------------------------------------------------------------

    @property
    def marker_path(self) -> Path:
        return self.recovery_dir / f"session-{self.session_id}.json"

    def session_started(self) -> None:
        """Write this session's marker (pid, start time, host) so a crash can be detected."""
        self.recovery_dir.mkdir(parents=True, exist_ok=True)
        marker = {
            "pid": os.getpid(),
            "process_start": _process_start(os.getpid()),
            "host": socket.gethostname(),
            "started_at": time.time(),
        }
        data = json.dumps(marker).encode()
        atomic_write(self.marker_path, lambda f: f.write(data), backups=0)
        self._started = True

    def autosave_path(
        self, project_path: str | os.PathLike[str] | None, *, key: str | None = None
    ) -> Path:
        """Where :meth:`autosave` writes for this project in this session."""
        return self.recovery_dir / f"{self.session_id}--{_key_for(project_path, key)}.ths"

    def autosave(
        self,
        project: Project,
        project_path: str | os.PathLike[str] | None,
        *,
        key: str | None = None,
    ) -> Path:
        """Atomically write ``project`` to its recovery file; returns that file's path.

        The file is keyed by ``project_path`` (an untitled project, ``None``, has one slot per
        session unless ``key`` names another). Starts the session if :meth:`session_started`
        was not called, since an autosave nobody can detect as orphaned would be useless.
        Raises ProjectFileError if the project cannot be written.
        """
        if not self._started or not self.marker_path.exists():
            self.session_started()
        original = None if project_path is None else os.path.abspath(os.fspath(project_path))
        info = {
            "original_path": original,
            "saved_at": time.time(),
            "session_id": self.session_id,
            "pid": os.getpid(),
        }
        path = self.autosave_path(project_path, key=key)
        _save(
            project,
            path,
            backups=0,
            relative_to=None,
            extra_members={RECOVERY_MEMBER: json.dumps(info).encode()},
        )
        return path

    def remove_autosave(
        self, project_path: str | os.PathLike[str] | None, *, key: str | None = None
    ) -> None:
        """Delete this session's autosave of a project (after an explicit save, or on close)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.autosave_path(project_path, key=key))

    def session_ended_cleanly(self) -> None:
        """Remove this session's autosaves, then its marker (in that order: a crash in between
        leaves autosaves without a marker, which are never offered)."""
        for path in self._files_of(self.session_id):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.marker_path)
        self._started = False

    # -- other (crashed) sessions --------------------------------------------------------------

    def _files_of(self, session_id: str) -> list[Path]:
        try:
            names = os.listdir(self.recovery_dir)
        except FileNotFoundError:
            return []
        return [
            self.recovery_dir / n
            for n in names
            if (m := _AUTOSAVE_RE.match(n)) and m["sid"] == session_id
        ]

    def _session_crashed(self, marker: Path) -> bool:
        """True when the marker's process is gone (or its pid now belongs to another process)."""
        try:
            info = json.loads(marker.read_bytes())
            pid = int(info["pid"])
            host = info.get("host")
            recorded_start = info.get("process_start")
        except (OSError, ValueError, KeyError, TypeError):
            return False  # being written right now, or not ours: leave it alone
        if host is not None and host != socket.gethostname():
            return False  # a shared home folder: we cannot see that machine's processes
        if pid == os.getpid():
            return False
        if not _pid_alive(pid):
            return True
        if recorded_start is not None and sys.platform.startswith("linux"):
            current = _process_start(pid)
            return current is not None and current != recorded_start
        return False

    def pending_recoveries(self) -> list[RecoveryItem]:
        """Autosaves of crashed sessions that are newer than their project file, newest first.

        Autosaves whose project file was saved after them are not offered (they stay on disk
        until :meth:`discard`). Unreadable autosaves are skipped. Never raises for the contents
        of the recovery folder.
        """
        try:
            names = os.listdir(self.recovery_dir)
        except OSError:
            return []
        crashed = {
            m["sid"]
            for n in names
            if (m := _SESSION_RE.match(n))
            and m["sid"] != self.session_id
            and self._session_crashed(self.recovery_dir / n)
        }
        items = []
        for n in names:
            m = _AUTOSAVE_RE.match(n)
            if not m or m["sid"] not in crashed:
                continue
            path = self.recovery_dir / n
            info = _read_recovery_info(path)
            if info is None:
                continue
            original, saved_at = info
            if original is not None:
                try:
                    if os.stat(original).st_mtime >= saved_at:
                        continue
                except OSError:
                    pass  # the project file is gone: the autosave is all there is
            items.append(RecoveryItem(original, path, saved_at))
        items.sort(key=lambda it: it.saved_at, reverse=True)
        return items

    def recover(self, item: RecoveryItem) -> Project:
        """Load the autosaved project (the autosave stays until :meth:`discard`).

        Raises ProjectFileError if it cannot be read.
        """
        return load_project(item.recovery_path)

    def discard(self, item: RecoveryItem) -> None:
        """Delete an autosave; the crashed session's marker goes with its last autosave."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(item.recovery_path)
        m = _AUTOSAVE_RE.match(item.recovery_path.name)
        if m and m["sid"] != self.session_id and not self._files_of(m["sid"]):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.recovery_dir / f"session-{m['sid']}.json")


def _read_recovery_info(path: Path) -> tuple[Path | None, float] | None:
    """(original path, saved_at) from an autosave's recovery.json, or None if unreadable."""
    try:
        with zipfile.ZipFile(path) as zf:
            info: Any = json.loads(zf.read(RECOVERY_MEMBER))
        saved_at = float(info["saved_at"])
        original = info["original_path"]
        if original is not None and not isinstance(original, str):
            return None
        if not math.isfinite(saved_at):
            return None
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError, EOFError, zlib.error):
        return None
    return (Path(original) if original is not None else None), saved_at
