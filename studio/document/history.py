"""Undo history: a Qt-free QUndoStack. A Qt wrapper mirrors it through ``connect``."""

from __future__ import annotations

from collections.abc import Callable

from studio.document.edits import Edit
from studio.document.errors import DocumentError
from studio.document.events import ChangeEvent, EventHub
from studio.document.project import Project

__all__ = ["History"]


class History:
    """Applies Edits to ``project`` and keeps them for undo/redo (at most ``max_depth``).

    ``push`` applies an edit; if it raises, the project is unchanged (edits guarantee it) and
    nothing is pushed. A pushed edit merges into the previous one when ``previous.merge(edit)``
    accepts it (same merge_key), except into the state marked clean, so that saved state stays
    reachable (QUndoStack does the same). Pushing discards the redo tail.

    Listeners get ``ChangeEvent('history', {'action': 'push'|'merge'|'undo'|'redo'|'clear'|
    'clean', 'label': ..., 'index': ..., 'clean': ...})`` after each change.
    """

    def __init__(self, project: Project, max_depth: int = 500) -> None:
        if max_depth < 1:
            raise DocumentError(f"max_depth must be >= 1, got {max_depth}")
        self.project = project
        self.max_depth = max_depth
        self._edits: list[Edit] = []
        self._index = 0  # number of applied edits
        self._clean: int | None = 0  # index of the saved state; None: unreachable
        self.events = EventHub()

    # ------------------------------------------------------------------------------ queries
    @property
    def index(self) -> int:
        return self._index

    def __len__(self) -> int:
        return len(self._edits)

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._edits)

    @property
    def undo_label(self) -> str:
        return self._edits[self._index - 1].label if self.can_undo else ""

    @property
    def redo_label(self) -> str:
        return self._edits[self._index].label if self.can_redo else ""

    @property
    def is_modified(self) -> bool:
        """True unless the project is in the state of the last ``mark_clean``."""
        return self._clean != self._index

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self._edits]

    # ------------------------------------------------------------------------------ actions
    def push(self, edit: Edit) -> None:
        """Apply ``edit`` and record it (or merge it into the previous edit).

        Raises whatever the edit raises (DocumentError for invalid edits); then nothing changed.
        """
        edit.apply(self.project)
        del self._edits[self._index :]
        if self._clean is not None and self._clean > self._index:
            self._clean = None
        prev = self._edits[-1] if self._edits else None
        if prev is not None and self._clean != self._index and prev.merge(edit):
            self._notify("merge", prev.label)
            return
        self._edits.append(edit)
        self._index += 1
        if len(self._edits) > self.max_depth:
            drop = len(self._edits) - self.max_depth
            del self._edits[:drop]
            self._index -= drop
            if self._clean is not None:
                self._clean = self._clean - drop if self._clean >= drop else None
        self._notify("push", edit.label)

    def undo(self) -> Edit | None:
        """Revert the last applied edit; returns it (None if there is nothing to undo)."""
        if not self.can_undo:
            return None
        edit = self._edits[self._index - 1]
        edit.revert(self.project)
        self._index -= 1
        self._notify("undo", edit.label)
        return edit

    def redo(self) -> Edit | None:
        """Re-apply the next edit; returns it (None if there is nothing to redo)."""
        if not self.can_redo:
            return None
        edit = self._edits[self._index]
        edit.apply(self.project)
        self._index += 1
        self._notify("redo", edit.label)
        return edit

    def mark_clean(self) -> None:
        """Record the current state as saved."""
        self._clean = self._index
        self._notify("clean", "")

    def mark_unsaved(self) -> None:
        """Record that no state in the history matches what is on disk (e.g. a recovered
        autosave): the project counts as modified until the next ``mark_clean``."""
        self._clean = None
        self._notify("clean", "")

    def clear(self) -> None:
        """Forget all edits (the project is unchanged); the current state counts as clean if it
        was clean."""
        was_clean = not self.is_modified
        self._edits.clear()
        self._index = 0
        self._clean = 0 if was_clean else None
        self._notify("clear", "")

    # --------------------------------------------------------------------------- listeners
    def connect(self, callback: Callable[[ChangeEvent], object]) -> Callable[[ChangeEvent], object]:
        return self.events.connect(callback)

    def disconnect(self, callback: Callable[[ChangeEvent], object]) -> None:
        self.events.disconnect(callback)

    def _notify(self, action: str, label: str) -> None:
        self.events.emit(
            ChangeEvent(
                "history",
                {
                    "action": action,
                    "label": label,
                    "index": self._index,
                    "clean": not self.is_modified,
                },
            )
        )
