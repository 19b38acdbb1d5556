"""A Qt-free event hub: the document announces changes, views listen (napari style)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENT_KINDS", "ChangeEvent", "EventHub"]

log = logging.getLogger(__name__)

# Kinds the document emits. detail is a dict; its keys per kind are documented on the edits.
EVENT_KINDS = (
    "curves",
    "takes",
    "settings",
    "audio",
    "head",
    "camera",
    "markers",
    "assets",
    "metadata",
    "history",
)


@dataclass(frozen=True)
class ChangeEvent:
    """What changed: ``kind`` (one of EVENT_KINDS) and a ``detail`` dict (ids, channels...)."""

    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


class EventHub:
    """Callbacks ``callback(event: ChangeEvent)`` called in connection order on ``emit``.

    A callback that raises is logged and does not stop the others: the model has already
    changed, and one broken view must not leave the other views stale. ``blocked()`` suppresses
    emission (to avoid feedback loops while a view writes back). Deep-copying a hub gives an
    empty one: listeners belong to the live document, not to snapshots.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[[ChangeEvent], object]] = []
        self._blocked = 0

    def connect(self, callback: Callable[[ChangeEvent], object]) -> Callable[[ChangeEvent], object]:
        """Add ``callback`` (once; connecting twice is a no-op). Returns it (decorator use)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[ChangeEvent], object]) -> None:
        """Remove ``callback``; unknown callbacks are ignored."""
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass

    def emit(self, event: ChangeEvent) -> None:
        if self._blocked:
            return
        for cb in list(self._callbacks):
            try:
                cb(event)
            except Exception:
                log.exception("event listener %r failed on %s", cb, event.kind)

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """Suppress events inside the block."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __len__(self) -> int:
        return len(self._callbacks)

    def __deepcopy__(self, memo: dict) -> EventHub:
        return EventHub()

    def __copy__(self) -> EventHub:
        return EventHub()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventHub)

    __hash__ = object.__hash__

    def __reduce__(self):
        return (EventHub, ())
