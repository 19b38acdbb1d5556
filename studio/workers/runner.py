"""Run Qt-free generator functions in a QThread (napari ``thread_worker`` style).

A job is a plain generator function: it ``yield``s progress and ``return``s its result. Every
``yield`` is both a progress report and a cancellation point, so a job stays Qt-free and a test
can simply iterate it::

    def import_audio(path):              # Qt-free: no studio.ui, no PySide6
        yield Progress(0.0, "Reading")
        data = path.read_bytes()
        yield Progress(0.5, "Decoding")
        return decode(data)

    worker = Worker(import_audio, path, name="Import audio")
    worker.finished_ok.connect(use_result)
    worker.failed.connect(show_message)
    worker.start()

What a job may yield: a :class:`Progress`, a float fraction in [0, 1], a ``(done, total)``
pair, a string (a status text, fraction unknown) or None (just a cancellation point).

Signals are emitted from the worker thread and delivered to receivers living in the GUI thread
through queued connections, so slots always run in the GUI thread.
"""

from __future__ import annotations

import logging
import math
import threading
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

__all__ = [
    "Cancelled",
    "Progress",
    "Worker",
    "active_workers",
    "as_progress",
    "cancel_all_workers",
]

log = logging.getLogger(__name__)


# Exceptions that mean bad input rather than a bug (AudioError, FormatError and friends are
# ValueErrors; missing files are OSErrors): reported as their message, without a traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


class Cancelled(Exception):
    """Raised by :meth:`Worker.result` when the job was cancelled."""


@dataclass(frozen=True)
class Progress:
    """One progress report: ``fraction`` in [0, 1] or None (unknown), a short ``text`` for the
    status bar, and an optional ``preview`` object for views that show partial results."""

    fraction: float | None = None
    text: str = ""
    preview: Any = None


def as_progress(value: object) -> Progress:
    """Normalise whatever a job yielded into a :class:`Progress` (see the module docstring).

    Fractions are clamped to [0, 1]; NaN becomes unknown. Raises TypeError for other types.
    """
    if value is None:
        return Progress()
    if isinstance(value, Progress):
        frac = value.fraction
    elif isinstance(value, str):
        return Progress(None, value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        frac, value = float(value), Progress(float(value))
    elif (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, (int, float)) for v in value)
    ):
        done, total = value
        frac = float(done) / float(total) if total else None
        value = Progress(frac, f"{done}/{total}")
    else:
        raise TypeError(f"a job yielded {type(value).__name__}; expected Progress, float or str")
    if frac is not None:
        frac = None if math.isnan(frac) else min(max(frac, 0.0), 1.0)
    return Progress(frac, value.text, value.preview)


# Workers that were started and have not finished yet (for shutdown and the leak fixture).
_ACTIVE: set[Worker] = set()
_ACTIVE_LOCK = threading.Lock()


def active_workers() -> list[Worker]:
    """Workers started in this process whose thread has not finished yet."""
    with _ACTIVE_LOCK:
        return list(_ACTIVE)


def cancel_all_workers(wait_ms: int = 5000) -> bool:
    """Ask every active worker to cancel and wait for them; True if all stopped in time."""
    workers = active_workers()
    for w in workers:
        w.cancel()
    return all(w.wait(wait_ms) for w in workers)


class _Thread(QThread):
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def run(self) -> None:  # runs in the new thread
        self._worker._run()


class Worker(QObject):
    """Runs ``function(*args, **kwargs)`` (a generator function, or a plain function) in its
    own QThread.

    Signals (all delivered in the GUI thread):
        started_running(): the thread began.
        progress(object): a :class:`Progress` for every yield.
        finished_ok(object): the job returned (its return value).
        failed(str, str): the job raised: a one-line message and the formatted traceback
            (for the log, never for a dialog; "" for EXPECTED_ERRORS, whose message is
            enough).
        cancelled(): the job stopped at a yield after :meth:`cancel`.
        done(): after any of the three above, once the thread has ended (delivered by the
            GUI event loop); the worker is then no longer in :func:`active_workers`.

    ``cancel()`` is thread-safe and takes effect at the job's next yield: the generator is
    closed there (its ``finally`` blocks run) and nothing after that yield executes.
    A Worker runs once; start it again and it raises RuntimeError.
    """

    started_running = Signal()
    progress = Signal(object)
    finished_ok = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal()

    def __init__(
        self,
        function: Callable[..., Any],
        *args: Any,
        name: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.name = name or getattr(function, "__name__", "job")
        self._function = function
        self._args = args
        self._kwargs = kwargs
        self._cancel = threading.Event()
        self._thread: _Thread | None = None
        self._outcome: tuple[str, Any] | None = None  # ("ok"|"error"|"cancelled", value)
        self.last_progress = Progress()

    # --------------------------------------------------------------------------- control
    def start(self) -> None:
        """Start the job in a new thread. Raises RuntimeError if it was started before."""
        if self._thread is not None:
            raise RuntimeError(f"worker {self.name!r} was already started")
        self._thread = _Thread(self)
        # Finished is handled in this (the GUI) thread: it joins the thread before the worker
        # lets go of it, so a QThread is never destroyed while still running.
        self._thread.finished.connect(self._on_thread_finished)
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next yield (thread-safe; no effect once it finished)."""
        self._cancel.set()

    @property
    def is_cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._outcome is None

    def wait(self, msecs: int = 5000) -> bool:
        """Block until the thread has finished (True) or ``msecs`` passed (False)."""
        if self._thread is None:
            return True
        return bool(self._thread.wait(msecs))

    def result(self) -> Any:
        """The job's return value. Raises Cancelled, RuntimeError (job failed or still
        running) accordingly."""
        if self._outcome is None:
            raise RuntimeError(f"worker {self.name!r} has not finished")
        kind, value = self._outcome
        if kind == "cancelled":
            raise Cancelled(self.name)
        if kind == "error":
            raise RuntimeError(value)
        return value

    # ------------------------------------------------------------------------- the thread
    def _run(self) -> None:
        self.started_running.emit()
        try:
            outcome = self._execute()
        except BaseException as exc:  # never let an exception escape a QThread
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if isinstance(exc, EXPECTED_ERRORS) and text:
                # Bad input (a missing file, an unreadable format): the message says it all.
                message, tb = text, ""
            else:
                message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
                tb = traceback.format_exc()
            outcome = ("error", (message, tb))
        self._outcome = outcome if outcome[0] != "error" else ("error", outcome[1][0])
        if outcome[0] == "ok":
            self.finished_ok.emit(outcome[1])
        elif outcome[0] == "cancelled":
            self.cancelled.emit()
        else:
            message, tb = outcome[1]
            if tb:
                log.error("%s failed: %s\n%s", self.name, message, tb)
            else:
                log.info("%s failed: %s", self.name, message)
            self.failed.emit(message, tb)

    def _on_thread_finished(self) -> None:  # GUI thread
        if self._thread is not None:
            self._thread.wait()
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self)
        self.done.emit()

    def _execute(self) -> tuple[str, Any]:
        if self._cancel.is_set():
            return ("cancelled", None)
        out = self._function(*self._args, **self._kwargs)
        if not isinstance(out, Generator):
            return ("ok", out)
        gen = out
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return ("ok", stop.value)
                report = as_progress(item)
                self.last_progress = report
                self.progress.emit(report)
                if self._cancel.is_set():
                    return ("cancelled", None)
        finally:
            gen.close()  # runs the job's finally blocks at the yield where it stopped

    def __repr__(self) -> str:
        state = "running" if self.is_running else (self._outcome or ("idle",))[0]
        return f"Worker({self.name!r}, {state})"
