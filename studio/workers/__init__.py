"""Background work for the studio: Qt-free generator jobs run in QThreads with progress and
Cancel (each ``yield`` is progress and a cancellation point), plus the status-bar indicator."""

from __future__ import annotations

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
    "Progress",
    "Worker",
    "WorkerStatus",
    "active_workers",
    "as_progress",
    "cancel_all_workers",
]
