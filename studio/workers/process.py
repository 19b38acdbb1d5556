"""Run a Qt-free job in a child process that speaks JSON lines, with the Worker interface.

Why a process and not a :class:`studio.workers.Worker` thread: some jobs hold the Python GIL
for hundreds of milliseconds at a time (software-GL draw calls, importing torch, loading and
running a model), and the GUI thread cannot run while they do. A child has its own GIL, and a
crash there leaves the studio running.

:class:`ChildProcess` is the studio side shared by the export (studio.ui.export_dialog,
``studio.export.child``) and the generation (studio.ui.generate_dialog,
``studio.generation_child``). The protocol both children speak: one JSON object per line on
stdout; ``{"error": "<one line>"}`` for bad input, ``{"cancelled": true}`` after SIGINT (they
stop at their next step and remove what they wrote), a ``done`` line at the end; previews are
files in the job's temporary folder, written whole before their line is printed (the export's
thumbnails replace each other atomically; the generation writes one file per preview tail,
which the studio deletes once read); anything else is a crash (non-zero exit or a signal, the
traceback on stderr). Subclasses say what the lines mean.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QProcess, QProcessEnvironment, QTimer, Signal

from studio.workers.runner import Progress

__all__ = ["CANCEL_KILL_MS", "PROGRESS_INTERVAL_S", "ChildProcess"]

log = logging.getLogger(__name__)

CANCEL_KILL_MS = 30_000  # a cancelled child still running after this is killed
PROGRESS_INTERVAL_S = 0.25  # the most progress reports the GUI shows per second: 4
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding studio/


def first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


class ChildProcess(QObject):
    """One job in a child process, with the interface of :class:`studio.workers.Worker` that
    dialogs and the status bar use: the same signals, ``name``, ``last_progress``,
    ``start``/``cancel``/``wait``, ``is_running``, ``is_cancel_requested``.

    ``start`` makes a temporary folder and calls :meth:`write_inputs` there in a Python thread
    (saving a big project takes a while), then starts :meth:`command` with QProcess (the
    studio's folder on PYTHONPATH). Every batch of stdout lines goes to :meth:`handle_lines`,
    which returns the report to show; reports are rate-limited to PROGRESS_INTERVAL_S and
    coalesced (only the newest is emitted; a subclass carries over what must not be lost, see
    :attr:`pending`). ``cancel`` sends SIGINT (a child stuck longer than CANCEL_KILL_MS is
    killed). ``failed`` carries the child's one-line error, or "the <what> process stopped
    unexpectedly" with the last line it printed on stderr (the whole tail goes to the log).
    The temporary folder is removed when the job ends, whatever the outcome.
    """

    started_running = Signal()
    progress = Signal(object)
    finished_ok = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal()
    _inputs_written = Signal(str)  # "" or why the inputs could not be written

    #: what the job is called in messages ("the export process stopped unexpectedly")
    what = "child"
    #: prefix of the temporary folder
    temp_prefix = "ths-job-"

    def __init__(self, *, name: str) -> None:
        super().__init__()
        self.name = name
        self._cancel = False
        self._started = False
        self._outcome: str | None = None  # "ok" | "error" | "cancelled"
        self._dir: Path | None = None
        self._saver: threading.Thread | None = None
        self._proc: QProcess | None = None
        self._pid = 0
        self._stdout = b""
        self._stderr = b""
        self.result: Any = None  # set by handle_lines from the "done" line
        self.error: str | None = None  # set by handle_lines from an "error" line
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        self.pending: Progress | None = None  # a report held back by the rate limit
        self._last_emit = 0.0
        self._emit_timer = QTimer(self)
        self._emit_timer.setSingleShot(True)
        self._emit_timer.timeout.connect(self._emit_pending)
        self._inputs_written.connect(self._launch)
        # Determinate from the start: no busy animation (it repaints the window ~12 times/s).
        self.last_progress = Progress(0.0, "")

    # ------------------------------------------------------------------- for subclasses
    def write_inputs(self, folder: Path) -> None:
        """Write what the child reads into ``folder`` (runs in a Python thread). Raise to fail
        the job with the exception's message."""

    @staticmethod
    def save_snapshot_and_json(folder: Path, project: Any, json_name: str, text: str) -> None:
        """What both children read: the project as ``folder/snapshot.ths`` (no backup) and one
        JSON file ``folder/json_name`` (their settings or request)."""
        from studio.document.fileformat import save_project

        save_project(project, folder / "snapshot.ths", backups=0)
        (folder / json_name).write_text(text, encoding="utf-8")

    def command(self, folder: Path) -> tuple[str, list[str]]:
        """(program, arguments) of the child."""
        raise NotImplementedError

    def handle_lines(self, messages: list[dict[str, Any]]) -> Progress | None:
        """Take a batch of the child's JSON objects (in order): set :attr:`result` for the
        ``done`` line and :attr:`error` for an ``error`` line; return the progress report to
        show for the batch (None: nothing new)."""
        raise NotImplementedError

    def cleanup(self, outcome: str) -> None:
        """Remove what a killed or crashed child left outside the temporary folder."""

    @property
    def folder(self) -> Path | None:
        """The job's temporary folder (None before ``start`` and after the end)."""
        return self._dir

    @property
    def pid(self) -> int:
        return self._pid

    # --------------------------------------------------------------------------- control
    def start(self) -> None:
        """Write the inputs (in a thread), then start the child. Runs once."""
        if self._started:
            raise RuntimeError(f"{self.what} {self.name!r} was already started")
        self._started = True
        _LIVE.add(self)  # until finished: the dialog may drop its reference in ``done``
        self._dir = Path(tempfile.mkdtemp(prefix=self.temp_prefix))
        self._saver = threading.Thread(target=self._save, name=f"{self.what}-inputs", daemon=True)
        self._saver.start()

    def cancel(self) -> None:
        """Ask the child to stop at its next step (SIGINT); it removes what it wrote."""
        if self._cancel or self._outcome is not None:
            return
        self._cancel = True
        proc = self._proc
        if proc is not None and proc.state() != QProcess.ProcessState.NotRunning:
            if os.name == "posix" and self._pid:
                with contextlib.suppress(OSError):
                    os.kill(self._pid, signal.SIGINT)
            else:
                proc.terminate()
            self._kill_timer.start(CANCEL_KILL_MS)  # a child stuck in one step is killed

    @property
    def is_cancel_requested(self) -> bool:
        return self._cancel

    @property
    def is_running(self) -> bool:
        return self._started and self._outcome is None

    def wait(self, msecs: int = 5000) -> bool:
        """Block until the child has ended (True; ``done`` has then been emitted) or ``msecs``
        passed (False). A cancelled child that does not stop in time is killed."""
        deadline = time.monotonic() + msecs / 1000
        if self._saver is not None:
            self._saver.join(max(0.0, deadline - time.monotonic()))
        if self._proc is None:
            QCoreApplication.sendPostedEvents(self)  # a queued launch (or failure) lands now
        if self._proc is None:
            if self._outcome is None and self._saver is not None and not self._saver.is_alive():
                self._finish("cancelled" if self._cancel else "error")
            return self._outcome is not None
        left = max(0, int((deadline - time.monotonic()) * 1000))
        if not self._proc.waitForFinished(left) and self._cancel:
            self._kill()
            self._proc.waitForFinished(2000)
        return self._outcome is not None

    # ------------------------------------------------------------------------ the child
    def _save(self) -> None:  # the saver thread
        assert self._dir is not None
        try:
            self.write_inputs(self._dir)
            reason = ""
        except Exception as exc:  # ProjectFileError, OSError: reported, never raised here
            reason = first_line(str(exc)) or type(exc).__name__
        self._inputs_written.emit(reason)

    def _launch(self, reason: str) -> None:
        if self._outcome is not None or self._proc is not None:
            return
        if reason:
            self.error = f"cannot save the project for the {self.what}: {reason}"
            self._finish("error")
            return
        if self._cancel:
            self._finish("cancelled")
            return
        assert self._dir is not None
        program, args = self.command(self._dir)
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        old = env.value("PYTHONPATH", "")
        env.insert("PYTHONPATH", _ROOT + (os.pathsep + old if old else ""))
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self._proc = proc
        proc.start(program, args)
        if proc.waitForStarted(10_000):
            self._pid = int(proc.processId())
            self.started_running.emit()

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._outcome is None:
            self.error = (
                f"the {self.what} process could not be started ({self._proc.errorString()})"
            )
            self._finish("error")

    def _read_stderr(self) -> None:
        assert self._proc is not None
        self._stderr = (self._stderr + bytes(self._proc.readAllStandardError()))[-8000:]

    def _read_stdout(self) -> None:
        assert self._proc is not None
        self._stdout += bytes(self._proc.readAllStandardOutput())
        *lines, self._stdout = self._stdout.split(b"\n")
        messages = []
        for raw in lines:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue  # not ours (a library printing on stdout)
            if isinstance(msg, dict):
                messages.append(msg)
        if not messages:
            return
        report = self.handle_lines(messages)
        if report is None or self._cancel:
            return
        self.last_progress = report
        # At most PROGRESS_INTERVAL_S apart: each report repaints the dialog and the status bar.
        self.pending = report
        wait = self._last_emit + PROGRESS_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self._emit_pending()
        elif not self._emit_timer.isActive():
            self._emit_timer.start(max(1, round(wait * 1000)))

    def _emit_pending(self) -> None:
        self._emit_timer.stop()
        report, self.pending = self.pending, None
        if report is not None and self._outcome is None and not self._cancel:
            self._last_emit = time.monotonic()
            self.progress.emit(report)

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        if self._proc is not None:
            self._stdout += b"\n"
            self._read_stdout()
            self._read_stderr()
            self._emit_pending()  # the last report before the outcome
        if self.result is not None:
            # The "done" line comes after the result was complete: it stands even if the
            # process then failed on its way out.
            if exit_code != 0 or status != QProcess.ExitStatus.NormalExit:
                log.warning("%s process ended with %s after finishing", self.what, exit_code)
            self._finish("ok")
        elif self._cancel:
            self._finish("cancelled")
        elif self.error is not None and status == QProcess.ExitStatus.NormalExit:
            self._finish("error")
        else:
            tail = self._stderr.decode("utf-8", "replace").strip()
            last = tail.splitlines()[-1] if tail else ""
            how = "crashed" if status == QProcess.ExitStatus.CrashExit else f"exit {exit_code}"
            self.error = f"the {self.what} process stopped unexpectedly ({how})" + (
                f": {last}" if last else ""
            )
            log.error("%s child process failed (%s); its last output:\n%s", self.what, how, tail)
            self._finish("error")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning:
            log.warning("%s process did not stop when asked; killing it", self.what)
            self._proc.kill()

    def _finish(self, outcome: str) -> None:
        if self._outcome is not None:
            return
        self._outcome = outcome
        self._emit_timer.stop()
        self.pending = None
        if outcome != "ok":
            self.cleanup(outcome)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if outcome == "ok":
            self.finished_ok.emit(self.result)
        elif outcome == "cancelled":
            self.cancelled.emit()
        else:
            self.failed.emit(self.error or f"the {self.what} failed", "")
        self.done.emit()
        # Let go later, not inside the QProcess's own ``finished`` signal (deleting it there
        # would pull the object out from under Qt).
        QTimer.singleShot(0, lambda: _LIVE.discard(self))

    def __repr__(self) -> str:
        state = "running" if self.is_running else (self._outcome or "idle")
        return f"{type(self).__name__}({self.name!r}, {state})"


_LIVE: set[ChildProcess] = set()  # started and not yet let go of
