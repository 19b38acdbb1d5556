"""Small panels: takes, undo history and the log.

They read the controller and change the project only through Edits (``controller.push``).
"""

from __future__ import annotations

import html
import logging
import time

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.document import AddTake, RemoveTake, RenameTake, SetActiveTake, Take
from studio.ui.controller import StudioController
from studio.ui.style import COLORS, icon

__all__ = ["HistoryPanel", "LogHandler", "LogPanel", "TakesPanel"]


def _tool(text: str, tip: str, icon_name: str | None = None) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    if icon_name:
        b.setIcon(icon(icon_name))
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    return b


class TakesPanel(QWidget):
    """The project's takes; the active one in bold. Double-click (or Enter) activates a take;
    New, Duplicate, Rename, Delete are undoable."""

    def __init__(self, controller: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.list = QListWidget()
        self.list.setObjectName("takes_list")
        self.list.itemActivated.connect(self._activate_item)
        self.new_button = _tool("New", "Add an empty take and make it active")
        self.dup_button = _tool("Duplicate", "Copy the selected take (non-destructive editing)")
        self.rename_button = _tool("Rename", "Rename the selected take")
        self.delete_button = _tool("Delete", "Delete the selected take (undoable)")
        self.new_button.clicked.connect(self.new_take)
        self.dup_button.clicked.connect(self.duplicate_take)
        self.rename_button.clicked.connect(self.rename_take)
        self.delete_button.clicked.connect(self.delete_take)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for b in (self.new_button, self.dup_button, self.rename_button, self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        controller.projectReplaced.connect(self.refresh)
        controller.documentChanged.connect(self._on_document)
        self.refresh()

    def _on_document(self, kind: str, _detail: dict) -> None:
        if kind in ("takes", "curves"):
            self.refresh()

    def refresh(self) -> None:
        project = self.controller.project
        current = self.selected_take_id()
        self.list.blockSignals(True)
        self.list.clear()
        for take in project.takes:
            n = sum(len(c) for c in take.curves.values())
            active = take.id == project.active_take_id
            item = QListWidgetItem(f"{take.name}\n{take.source} · {len(take.curves)} ch · {n} keys")
            item.setData(Qt.ItemDataRole.UserRole, take.id)
            item.setToolTip("Active take" if active else "Double-click to make it active")
            if active:
                f = QFont(item.font())
                f.setBold(True)
                item.setFont(f)
                item.setIcon(icon("dot", COLORS["accent"]))
            else:
                item.setIcon(icon("dot", "#4a4d55"))
            self.list.addItem(item)
            if take.id == (current or project.active_take_id):
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.delete_button.setEnabled(len(project.takes) > 1)

    def selected_take_id(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _activate_item(self, item: QListWidgetItem) -> None:
        take_id = item.data(Qt.ItemDataRole.UserRole)
        if take_id != self.controller.project.active_take_id:
            self.controller.push(SetActiveTake(take_id))

    def _unique_name(self, base: str) -> str:
        names = {t.name for t in self.controller.project.takes}
        if base not in names:
            return base
        n = 2
        while f"{base} {n}" in names:
            n += 1
        return f"{base} {n}"

    def new_take(self) -> None:
        take = Take.new(self._unique_name("Take"), source="keyed")
        self.controller.push(AddTake(take, activate=True, label="New take"))

    def duplicate_take(self) -> None:
        take_id = self.selected_take_id() or self.controller.project.active_take_id
        src = self.controller.project.take(take_id)
        copy = Take.new(
            self._unique_name(f"{src.name} copy"), dict(src.curves), src.source, src.metadata
        )
        index = self.controller.project.take_index(take_id) + 1
        self.controller.push(AddTake(copy, index=index, activate=True, label="Duplicate take"))

    def rename_take(self, name: str | None = None) -> None:
        take_id = self.selected_take_id() or self.controller.project.active_take_id
        take = self.controller.project.take(take_id)
        if name is None:
            name, ok = QInputDialog.getText(self, "Rename take", "Name:", text=take.name)
            if not ok:
                return
        name = name.strip()
        if name and name != take.name:
            self.controller.push(RenameTake(take_id, name))

    def delete_take(self) -> None:
        take_id = self.selected_take_id()
        if take_id is not None:
            self.controller.push(RemoveTake(take_id))


class HistoryPanel(QWidget):
    """The undo history (like QUndoView): "Original" then one row per edit; the current state
    is selected; clicking a row undoes or redoes up to it."""

    def __init__(self, controller: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.list = QListWidget()
        self.list.setObjectName("history_list")
        self.list.itemClicked.connect(self._jump)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.list)
        controller.historyChanged.connect(self.refresh)
        controller.projectReplaced.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        h = self.controller.history
        self.list.blockSignals(True)
        self.list.clear()
        labels = ["Original", *h.labels]
        dim = QColor(COLORS["text_dim"])
        for i, label in enumerate(labels):
            item = QListWidgetItem(label)
            if i > h.index:
                item.setForeground(dim)  # undone: redo brings it back
                f = QFont(item.font())
                f.setItalic(True)
                item.setFont(f)
            self.list.addItem(item)
        self.list.setCurrentRow(h.index)
        self.list.scrollToItem(self.list.currentItem())
        self.list.blockSignals(False)

    def _jump(self, item: QListWidgetItem) -> None:
        self.jump_to(self.list.row(item))

    def jump_to(self, index: int) -> None:
        """Undo or redo until ``index`` edits are applied."""
        h = self.controller.history
        index = max(0, min(index, len(h)))
        while h.index > index and h.can_undo:
            self.controller.undo()
        while h.index < index and h.can_redo:
            self.controller.redo()


class _Bridge(QObject):
    record = Signal(str, str, str)  # level, message, details (traceback)


class LogHandler(logging.Handler):
    """A logging handler that forwards records to the GUI thread through ``bridge.record``
    (a queued signal, so records from worker threads arrive safely)."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.bridge = _Bridge()

    def emit(self, record: logging.LogRecord) -> None:  # type: ignore[override]
        try:
            level = (
                "error"
                if record.levelno >= logging.ERROR
                else "warning"
                if record.levelno >= logging.WARNING
                else "info"
            )
            details = ""
            if record.exc_info:
                details = logging.Formatter().formatException(record.exc_info)
            self.bridge.record.emit(level, record.getMessage(), details)
        except Exception:  # a handler must never raise
            self.handleError(record)


class LogPanel(QWidget):
    """Timestamped messages (controller.message and Python logging), coloured by level.
    Tracebacks go here, never into dialogs."""

    MAX_BLOCKS = 5000

    def __init__(self, controller: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = QPlainTextEdit()
        self.view.setObjectName("log_view")
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(self.MAX_BLOCKS)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.clear_button = _tool("Clear", "Clear the log")
        self.clear_button.clicked.connect(self.view.clear)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addStretch(1)
        bar.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.view)
        layout.addLayout(bar)
        self.lines: list[tuple[str, str]] = []  # (level, text), for tests and copy
        controller.message.connect(self.add)

    def add(self, text: str, level: str = "info", details: str = "") -> None:
        color = {"error": COLORS["error"], "warning": COLORS["warning"]}.get(level, COLORS["text"])
        stamp = time.strftime("%H:%M:%S")
        tag = {"error": "ERROR", "warning": "WARN"}.get(level, "INFO")
        self.lines.append((level, text))
        body = html.escape(text)
        if details:
            body += "<br><pre style='color:#8e9098'>" + html.escape(details.rstrip()) + "</pre>"
        self.view.appendHtml(
            f"<span style='color:{COLORS['text_dim']}'>{stamp}</span> "
            f"<span style='color:{color}'><b>{tag}</b> {body}</span>"
        )

    def text(self) -> str:
        return self.view.toPlainText()
