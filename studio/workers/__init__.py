"""Background work for the studio: Qt-free generator jobs run in QThreads with progress and
Cancel (each ``yield`` is progress and a cancellation point), jobs in child processes that speak
JSON lines with the same interface (:class:`ChildProcess`), and the status-bar indicator."""

from __future__ import annotations

from studio.workers.process import ChildProcess
from studio.workers.runner import (
    Cancelled,
    Progress,
    Worker,
    active_workers,
    as_progress,
    cancel_all_workers,
)
from studio.workers.status import WorkerStatus

__all__ = [
    "Cancelled",
    "ChildProcess",
    "Progress",
    "Worker",
    "WorkerStatus",
    "active_workers",
    "as_progress",
    "cancel_all_workers",
]
