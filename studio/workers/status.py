"""The status-bar progress indicator for workers: a label, a progress bar and a Cancel button.

It shows the most recently started worker that is still running (and how many others run).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QToolButton, QWidget

from studio.workers.process import ChildProcess
from studio.workers.runner import Progress, Worker

__all__ = ["WorkerStatus"]

LABEL_WIDTH = 300  # logical pixels


class _FixedLabel(QLabel):
    """A label of fixed width that elides its text (full text in the tooltip).

    Why: a status-bar label whose size hint follows its text re-lays out the whole main window
    on every progress report ("step 3/40"), which on a software GL re-renders the 3D viewport:
    0.4-1 s stalls many times during a generation.
    """

    def __init__(self) -> None:
        super().__init__()
        # Fixed in both directions: Qt then skips the parent re-layout on every setText.
        self.setFixedSize(LABEL_WIDTH, self.fontMetrics().height() + 4)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._full = ""

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        if text == self._full:
            return
        self._full = text
        elided = self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, LABEL_WIDTH)
        self.setText(elided)
        self.setToolTip(text if elided != text else "")


class WorkerStatus(QWidget):
    """Tracks workers given to :meth:`track`; hidden when none runs. Cancel cancels the shown
    worker (it stops at its next yield)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workers: list[Worker | ChildProcess] = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.label = _FixedLabel()
        self.bar = QProgressBar()
        self.bar.setFixedWidth(160)
        self.bar.setFixedHeight(14)
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop this job (it stops at its next step)")
        self.cancel_button.clicked.connect(self.cancel_current)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.setVisible(False)

    @property
    def workers(self) -> list[Worker | ChildProcess]:
        return list(self._workers)

    def track(self, worker: Worker | ChildProcess) -> None:
        """Show ``worker``'s progress (a Worker, or a job in a child process with the same
        interface) until it is done (call before or after ``start``)."""
        self._workers.append(worker)
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_done)
        self._show_current()

    def current(self) -> Worker | ChildProcess | None:
        return self._workers[-1] if self._workers else None

    def cancel_current(self) -> None:
        w = self.current()
        if w is not None:
            w.cancel()
            self.label.set_full_text(f"{w.name}: cancelling…")
            self.cancel_button.setEnabled(False)

    def _on_progress(self, report: Progress) -> None:
        w = self.sender()
        if w is self.current():
            self._show(report)

    def _on_done(self) -> None:
        w = self.sender()
        if w in self._workers:
            self._workers.remove(w)
        self._show_current()

    def _show_current(self) -> None:
        w = self.current()
        self.setVisible(w is not None)
        if w is not None:
            self.cancel_button.setEnabled(not w.is_cancel_requested)
            self._show(w.last_progress)

    def _show(self, report: Progress) -> None:
        w = self.current()
        if w is None:
            return
        others = len(self._workers) - 1
        text = w.name + (f": {report.text}" if report.text else "")
        if others:
            text += f"  (+{others} more)"
        self.label.set_full_text(text)
        # No animated busy indicator for an unknown fraction: its animation repaints (and on a
        # software GL re-composes) the main window ~12 times a second; the text says what runs.
        self.bar.setRange(0, 1000)
        value = 0 if report.fraction is None else round(report.fraction * 1000)
        if value != self.bar.value():
            self.bar.setValue(value)
