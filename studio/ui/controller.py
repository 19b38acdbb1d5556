"""The studio's session state, shared by every panel: the open project, its undo history, the
current frame, the key and channel selection, and play state.

Panels never change the project directly: they build an Edit (studio.document.edits) and call
:meth:`StudioController.push`, which applies it through the Qt-free History (one undo step; drags
pass a merge_key so a whole drag is one step). The controller turns the document's Qt-free events
into Qt signals so views can listen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from models.motion_space import CHANNELS
from studio.document import (
    ChangeEvent,
    DocumentError,
    Edit,
    History,
    Project,
    SetSettings,
    delete_keys,
    insert_keys,
)

__all__ = ["StudioController"]


class StudioController(QObject):
    # The project object was swapped (new/open/recover): views rebuild everything.
    projectReplaced = Signal()
    # The document changed: kind is a studio.document.EVENT_KINDS entry, detail its dict.
    documentChanged = Signal(str, dict)
    # Undo history changed (push/merge/undo/redo/clean): labels and modified flag may differ.
    historyChanged = Signal()
    frameChanged = Signal(int)
    # Selected keys: set of (channel, frame); selected channels: list of names (graph editor).
    keySelectionChanged = Signal()
    channelSelectionChanged = Signal()
    playingChanged = Signal(bool)
    pathChanged = Signal()
    # A line for the status bar and log panel (level: "info" | "warning" | "error").
    message = Signal(str, str)
    loopChanged = Signal(bool)
    # Playback speed (1 = real time; negative plays backwards; J/K/L shuttle).
    playSpeedChanged = Signal(float)
    # "Frame all" (Home): editors fit their view to the whole animation.
    viewAllRequested = Signal()

    def __init__(self, project: Project | None = None, path: Path | None = None) -> None:
        super().__init__()
        self._project: Project = project if project is not None else Project.new()
        self._history = History(self._project)
        self._path: Path | None = path
        self._frame = 0
        self._playing = False
        self._loop = True
        self._play_speed = 1.0
        self.selected_keys: set[tuple[str, int]] = set()
        self.selected_channels: list[str] = []
        # Cache of the evaluated active take at one frame, invalidated on any document change.
        self._revision = 0
        self._cached: tuple[int, int, np.ndarray] | None = None
        self._connect_project()

    # ---------------------------------------------------------------------------- project
    @property
    def project(self) -> Project:
        return self._project

    @property
    def history(self) -> History:
        return self._history

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def revision(self) -> int:
        """Increases on every document change; views use it to skip redundant work."""
        return self._revision

    @property
    def is_modified(self) -> bool:
        return self._history.is_modified

    def set_project(self, project: Project, path: Path | None, modified: bool = False) -> None:
        """Replace the open project (new, open, recover). Clears undo and selection."""
        self._disconnect_project()
        self._project = project
        self._history = History(project)
        if not modified:
            self._history.mark_clean()
        else:
            # A recovered project differs from what is on disk until saved.
            self._history.mark_unsaved()
        self._path = path
        self.selected_keys.clear()
        self.selected_channels = []
        self._connect_project()
        self._bump()
        self._frame = min(max(self._frame, 0), max(project.duration - 1, 0))
        self.projectReplaced.emit()
        self.pathChanged.emit()
        self.historyChanged.emit()
        self.frameChanged.emit(self._frame)

    def set_path(self, path: Path | None) -> None:
        self._path = path
        self.pathChanged.emit()

    def mark_saved(self, path: Path) -> None:
        self._history.mark_clean()
        self.set_path(path)
        self.historyChanged.emit()

    def _connect_project(self) -> None:
        self._project.events.connect(self._on_document_event)
        self._history.events.connect(self._on_history_event)

    def _disconnect_project(self) -> None:
        self._project.events.disconnect(self._on_document_event)
        self._history.events.disconnect(self._on_history_event)

    def _on_document_event(self, event: ChangeEvent) -> None:
        self._bump()
        self.documentChanged.emit(event.kind, dict(event.detail))
        if event.kind in ("curves", "takes") and self.selected_keys:
            self._prune_key_selection()
        if event.kind == "settings" and self._frame >= self._project.duration:
            self.set_frame(self._project.duration - 1)

    def _prune_key_selection(self) -> None:
        """Drop selected keys that no longer exist (undo, take switch): views trust it."""
        take = self._project.active_take
        keep = {
            (ch, f)
            for ch, f in self.selected_keys
            if ch in take.curves and take.curves[ch].index_of(f) is not None
        }
        if keep != self.selected_keys:
            self.selected_keys = keep
            self.keySelectionChanged.emit()

    def _on_history_event(self, event: ChangeEvent) -> None:
        self.historyChanged.emit()

    def _bump(self) -> None:
        self._revision += 1
        self._cached = None

    # ------------------------------------------------------------------------------ edits
    def push(self, edit: Edit) -> bool:
        """Apply ``edit`` as one undo step. Returns False (and reports why) if it was refused."""
        from studio.document import DocumentError

        try:
            self._history.push(edit)
        except DocumentError as exc:
            self.message.emit(f"{edit.label}: {exc}", "error")
            return False
        return True

    def undo(self) -> None:
        if self._history.can_undo:
            label = self._history.undo_label
            self._history.undo()
            self.message.emit(f"Undo {label}", "info")

    def redo(self) -> None:
        if self._history.can_redo:
            label = self._history.redo_label
            self._history.redo()
            self.message.emit(f"Redo {label}", "info")

    # ------------------------------------------------------------------------------ time
    @property
    def frame(self) -> int:
        return self._frame

    def set_frame(self, frame: int) -> None:
        """Move the playhead (clamped to the project). Emits frameChanged when it moves."""
        frame = int(min(max(int(frame), 0), max(self._project.duration - 1, 0)))
        if frame != self._frame:
            self._frame = frame
            self.frameChanged.emit(frame)

    def current_values(self) -> np.ndarray:
        """The active take evaluated at the current frame: ``[len(CHANNELS)]`` float64 (cached;
        do not modify)."""
        key = (self._revision, self._frame)
        if self._cached is None or self._cached[:2] != key:
            values = self._project.evaluate_frame(self._frame)
            self._cached = (*key, values)
        return self._cached[2]

    @property
    def playing(self) -> bool:
        return self._playing

    def set_playing(self, playing: bool) -> None:
        """Start or stop playback (the playback engine listens to playingChanged)."""
        if playing != self._playing:
            self._playing = playing
            self.playingChanged.emit(playing)

    def toggle_playing(self) -> None:
        self.set_playing(not self._playing)

    @property
    def loop(self) -> bool:
        """Whether playback wraps around at the end of the play range."""
        return self._loop

    def set_loop(self, loop: bool) -> None:
        if bool(loop) != self._loop:
            self._loop = bool(loop)
            self.loopChanged.emit(self._loop)

    @property
    def play_speed(self) -> float:
        return self._play_speed

    def set_play_speed(self, speed: float) -> None:
        """Playback speed factor; 0 is refused (stop playback instead). Raises ValueError."""
        speed = float(speed)
        if speed == 0 or not np.isfinite(speed):
            raise ValueError(f"play speed must be finite and non-zero, got {speed}")
        if speed != self._play_speed:
            self._play_speed = speed
            self.playSpeedChanged.emit(speed)

    @property
    def play_range(self) -> tuple[int, int]:
        """The project's work range ``(start, end)``, end exclusive: what playback loops over."""
        start, end = self._project.work_range
        return int(start), int(end)

    def set_play_range(self, start: int, end: int) -> bool:
        """Set the work range (undoable, consecutive changes merge). ``end`` is exclusive."""
        return self.push(
            SetSettings(
                work_range=(int(start), int(end)), label="Set play range", merge_key="play-range"
            )
        )

    def step(self, frames: int) -> None:
        """Move the playhead by ``frames`` (clamped to the project)."""
        self.set_frame(self._frame + int(frames))

    def go_to_start(self) -> None:
        self.set_frame(self.play_range[0])

    def go_to_end(self) -> None:
        self.set_frame(self.play_range[1] - 1)

    def key_frames(self, channels: list[str] | None = None) -> np.ndarray:
        """Sorted unique key frames of the active take over ``channels`` (default: the selected
        channels, or all)."""
        take = self._project.active_take
        chans = channels if channels is not None else (self.selected_channels or list(take.curves))
        frames = [take.curves[ch].frames for ch in chans if ch in take.curves]
        if not frames:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(frames))

    def jump_to_key(self, direction: int) -> bool:
        """Jump to the next (direction > 0) or previous key frame; False if there is none."""
        frames = self.key_frames()
        if direction > 0:
            later = frames[frames > self._frame]
            target = int(later[0]) if later.size else None
        else:
            earlier = frames[frames < self._frame]
            target = int(earlier[-1]) if earlier.size else None
        if target is None:
            return False
        self.set_frame(target)
        return True

    # ----------------------------------------------------------------------------- keying
    def keying_channels(self) -> list[str]:
        """Channels that Insert Key (I) keys: the selected channels, else every channel the
        active take animates, else all channels (a fresh project)."""
        if self.selected_channels:
            return list(self.selected_channels)
        animated = list(self._project.active_take.curves)
        return animated if animated else list(CHANNELS)

    def insert_key(self, channels: list[str] | None = None) -> bool:
        """Key ``channels`` (default :meth:`keying_channels`) at the current frame with their
        current values, as one undo step. Returns False if refused (reported on ``message``)."""
        chans = list(channels) if channels is not None else self.keying_channels()
        if not chans:
            return False
        values = self.current_values()
        from models.motion_space import CHANNEL_INDEX

        keys = {ch: ([self._frame], [float(values[CHANNEL_INDEX[ch]])]) for ch in chans}
        return self.key_values(keys, label=f"Insert key at frame {self._frame}")

    def key_values(
        self,
        keys: dict[str, tuple[list[int], list[float]]],
        label: str = "Insert keys",
        merge_key: object = None,
    ) -> bool:
        """Insert or re-value keys ``{channel: (frames, values)}`` in the active take (one undo
        step; steps with the same ``merge_key`` merge, for drags)."""
        try:
            edit = insert_keys(self._project, keys, label=label, merge_key=merge_key)
        except DocumentError as exc:
            self.message.emit(f"{label}: {exc}", "error")
            return False
        return self.push(edit)

    def delete_selected_keys(self) -> bool:
        """Delete the selected keys (one undo step). False (with a message) if none selected."""
        if not self.selected_keys:
            self.message.emit("Delete keys: no keys selected", "warning")
            return False
        by_channel: dict[str, list[int]] = {}
        for ch, f in self.selected_keys:
            by_channel.setdefault(ch, []).append(int(f))
        n = len(self.selected_keys)
        try:
            edit = delete_keys(self._project, by_channel, label=f"Delete {n} key{'s' * (n != 1)}")
        except DocumentError as exc:
            self.message.emit(f"Delete keys: {exc}", "error")
            return False
        if self.push(edit):
            self.select_keys(set())
            return True
        return False

    def delete_keys_at_frame(self, channels: list[str] | None = None) -> bool:
        """Delete the keys at the current frame on ``channels`` (default: keying_channels)."""
        take = self._project.active_take
        chans = channels if channels is not None else self.keying_channels()
        hit = {
            ch: [self._frame]
            for ch in chans
            if ch in take.curves and take.curves[ch].index_of(self._frame) is not None
        }
        if not hit:
            self.message.emit(f"No keys at frame {self._frame}", "warning")
            return False
        return self.push(delete_keys(self._project, hit, label=f"Delete keys at {self._frame}"))

    def select_all_keys(self) -> None:
        """Select every key of the active take (of the selected channels, if any)."""
        take = self._project.active_take
        chans = self.selected_channels or list(take.curves)
        self.select_keys(
            {(ch, int(f)) for ch in chans if ch in take.curves for f in take.curves[ch].frames}
        )

    def request_view_all(self) -> None:
        self.viewAllRequested.emit()

    def notify(self, text: str, level: str = "info") -> None:
        """Send a line to the status bar and log (level: info | warning | error)."""
        self.message.emit(text, level)

    # ------------------------------------------------------------------------- selection
    def select_keys(self, keys: set[tuple[str, int]], extend: bool = False) -> None:
        new = (self.selected_keys | keys) if extend else set(keys)
        if new != self.selected_keys:
            self.selected_keys = new
            self.keySelectionChanged.emit()

    def select_channels(self, channels: list[str]) -> None:
        if list(channels) != self.selected_channels:
            self.selected_channels = list(channels)
            self.channelSelectionChanged.emit()
