"""The status-bar progress indicator for workers: a label, a progress bar and a Cancel button.

It shows the most recently started worker that is still running (and how many others run).
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from studio.workers.runner import Progress, Worker

__all__ = ["WorkerStatus"]


class WorkerStatus(QWidget):
    """Tracks workers given to :meth:`track`; hidden when none runs. Cancel cancels the shown
    worker (it stops at its next yield)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workers: list[Worker] = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.label = QLabel()
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
    def workers(self) -> list[Worker]:
        return list(self._workers)

    def track(self, worker: Worker) -> None:
        """Show ``worker``'s progress until it is done (call before or after ``start``)."""
        self._workers.append(worker)
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_done)
        self._show_current()

    def current(self) -> Worker | None:
        return self._workers[-1] if self._workers else None

    def cancel_current(self) -> None:
        w = self.current()
        if w is not None:
            w.cancel()
            self.label.setText(f"{w.name}: cancelling…")
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
        self.label.setText(text)
        if report.fraction is None:
            self.bar.setRange(0, 0)  # busy indicator
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(report.fraction * 1000))
