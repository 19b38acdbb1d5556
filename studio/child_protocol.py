"""The child side of the studio's long jobs run as processes (``studio.export.child``,
``studio.generation_child``). Qt-free.

What both children share: one JSON object per line on stdout, flushed per line (:func:`emit`);
one-line error texts (:func:`one_line`); exit status 0 done, :data:`EXIT_ERROR` for bad input,
:data:`EXIT_CANCELLED` after SIGINT/SIGTERM; a lower CPU priority so the studio's GUI thread
keeps its core (:func:`lower_priority`); and cancellation as a flag the job polls between its
steps (:func:`cancel_on_signals`), never an exception raised inside torch, a GL call or a
cleanup. The studio side is :class:`studio.workers.process.ChildProcess`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.document import Project

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_ERROR",
    "cancel_on_signals",
    "emit",
    "load_snapshot",
    "lower_priority",
    "one_line",
]

EXIT_ERROR = 2
EXIT_CANCELLED = 3


def emit(obj: dict[str, Any]) -> None:
    """Write ``obj`` as one JSON line on stdout and flush (the parent reads line by line)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def lower_priority(nice: int) -> None:
    """Raise this process's niceness by ``nice`` (> 0) where the OS allows it; else nothing."""
    if nice > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)


@contextlib.contextmanager
def cancel_on_signals() -> Iterator[threading.Event]:
    """An Event set by SIGINT (and SIGTERM where it exists) while the block runs; the previous
    handlers are restored after it."""
    cancel = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        cancel.set()

    signals = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {s: signal.signal(s, on_signal) for s in signals}
    try:
        yield cancel
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def load_snapshot(path: Path) -> Project | None:
    """The project snapshot the studio saved for the child, or None after emitting the error
    line (the caller then exits with EXIT_ERROR)."""
    from studio.document.fileformat import ProjectFileError, load_project

    try:
        return load_project(path)
    except ProjectFileError as exc:
        emit({"error": f"cannot read the project snapshot: {one_line(exc)}"})
        return None
