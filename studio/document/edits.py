"""Undoable changes to a Project.

An Edit validates everything before it touches the project, so an edit that raises leaves the
project unchanged. ``apply`` then ``revert`` restores the project exactly (the same objects where
it can: takes and curves are immutable, so restoring the previous object is both exact and keeps
its evaluation cache). Every edit emits a ChangeEvent on ``project.events`` for what changed.

Drags: give every step of one drag the same ``merge_key`` (any hashable, e.g.
``("move-keys", drag_id)``); History merges consecutive steps into one undo step. For key drags,
build each step from the drag-start take (``move_keys(..., base=start_take)``) so keys passed
over during the drag are not lost (a moved key replaces a key it lands on).
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import numpy as np

from models.motion_space import CHANNEL_INDEX
from studio.document.curve import Curve, HandleMode, Interpolation
from studio.document.errors import DocumentError
from studio.document.project import (
    AudioClip,
    CameraSettings,
    HeadRef,
    Marker,
    Project,
    check_settings,
)
from studio.document.take import Take
from studio.document.timebase import FrameRate

__all__ = [
    "AddAudioClip",
    "AddMarker",
    "AddTake",
    "CompoundEdit",
    "Edit",
    "ModifyAudioClip",
    "RemoveAudioClip",
    "RemoveMarker",
    "RemoveTake",
    "RenameTake",
    "ReplaceTake",
    "SetActiveTake",
    "SetCamera",
    "SetCurves",
    "SetHead",
    "SetSettings",
    "delete_keys",
    "insert_keys",
    "move_keys",
    "set_handle_mode",
    "set_handles",
    "set_interpolation",
]


class Edit:
    """Base class: ``label`` for the undo menu, ``merge_key`` (None: never merges)."""

    label: str = "Edit"
    merge_key: Hashable | None = None

    def apply(self, project: Project) -> None:
        """Make the change. Raises DocumentError (project unchanged) if it cannot."""
        raise NotImplementedError

    def revert(self, project: Project) -> None:
        """Undo ``apply`` exactly. Only valid right after apply (History guarantees it)."""
        raise NotImplementedError

    def merge(self, other: Edit) -> bool:
        """Absorb ``other`` (already applied after self) into self; True if merged.

        The default merges nothing. Mergeable edits merge when both have the same non-None
        merge_key and act on the same object.
        """
        return False

    def _mergeable(self, other: Edit) -> bool:
        return (
            self.merge_key is not None
            and type(other) is type(self)
            and other.merge_key == self.merge_key
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"


# ------------------------------------------------------------------------------------ curves
class SetCurves(Edit):
    """Replace (a Curve) or remove (None) the curves of some channels of one take.

    The previous curves are captured on the first apply; revert restores them exactly.
    Event: ``curves`` with detail ``take_id``, ``channels`` (tuple).
    Raises DocumentError for an unknown take or channel.
    """

    def __init__(
        self,
        take_id: str,
        curves: Mapping[str, Curve | None],
        label: str = "Edit curves",
        merge_key: Hashable | None = None,
    ) -> None:
        for ch, c in curves.items():
            if ch not in CHANNEL_INDEX:
                raise DocumentError(f"unknown channel {ch!r}")
            if c is not None and not isinstance(c, Curve):
                raise DocumentError(f"channel {ch!r}: expected a Curve or None, got {c!r}")
        self.take_id = take_id
        self.curves: dict[str, Curve | None] = dict(curves)
        self.label = label
        self.merge_key = merge_key
        self._previous: dict[str, Curve | None] | None = None
        self._before: Take | None = None
        self._after: Take | None = None

    def apply(self, project: Project) -> None:
        i = project.take_index(self.take_id)
        take = project.takes[i]
        if self._previous is None:
            self._previous = {ch: take.curves.get(ch) for ch in self.curves}
        if self._after is not None and take is self._before:
            new = self._after  # redo: reuse the take (and its evaluation cache)
        else:
            new = take.with_curves(self.curves)
        self._before, self._after = take, new
        project.takes[i] = new
        project.emit("curves", take_id=self.take_id, channels=tuple(self.curves))

    def revert(self, project: Project) -> None:
        assert self._previous is not None, "revert before apply"
        i = project.take_index(self.take_id)
        take = project.takes[i]
        if take is self._after and self._before is not None:
            old = self._before
        else:
            old = take.with_curves(self._previous)
        self._after = take
        self._before = old
        project.takes[i] = old
        project.emit("curves", take_id=self.take_id, channels=tuple(self.curves))

    def merge(self, other: Edit) -> bool:
        if not self._mergeable(other) or other.take_id != self.take_id:  # type: ignore[attr-defined]
            return False
        assert isinstance(other, SetCurves)
        if self._previous is None or other._previous is None:
            return False
        for ch, prev in other._previous.items():
            self._previous.setdefault(ch, prev)
        self.curves.update(other.curves)
        self._after = other._after
        return True


def _resolve_take(project: Project, take_id: str | None) -> Take:
    return project.take(take_id) if take_id is not None else project.active_take


def insert_keys(
    project: Project,
    keys: Mapping[str, tuple[object, object]],
    *,
    take_id: str | None = None,
    interp: Interpolation | int | None = None,
    label: str = "Insert keys",
    merge_key: Hashable | None = None,
) -> SetCurves:
    """An edit inserting (or re-valuing) keys: ``{channel: (frames, values)}``.

    Not applied: push it on a History. Raises DocumentError for bad channels/frames/values.
    """
    take = _resolve_take(project, take_id)
    new = {ch: take.curve(ch).with_keys(f, v, interp) for ch, (f, v) in keys.items()}
    return SetCurves(take.id, new, label, merge_key)


def delete_keys(
    project: Project,
    keys: Mapping[str, object],
    *,
    take_id: str | None = None,
    label: str = "Delete keys",
) -> SetCurves:
    """An edit deleting the keys ``{channel: frames}`` (frames without keys are ignored)."""
    take = _resolve_take(project, take_id)
    return SetCurves(take.id, {ch: take.curve(ch).without_keys(f) for ch, f in keys.items()}, label)


def move_keys(
    project: Project,
    keys: Mapping[str, object],
    frame_delta: int,
    value_delta: float = 0.0,
    *,
    take_id: str | None = None,
    base: Take | None = None,
    label: str = "Move keys",
    merge_key: Hashable | None = None,
) -> SetCurves:
    """An edit moving keys ``{channel: frames}`` by ``frame_delta`` and ``value_delta``.

    ``base``: the take whose curves are moved (default: the project's current take). During a
    drag pass the drag-start take and the total delta, with one merge_key for the whole drag.
    A moved key landing on an unmoved key replaces it. Raises DocumentError for missing keys.
    """
    take = base if base is not None else _resolve_take(project, take_id)
    new = {
        ch: take.curve(ch).with_moved_keys(f, frame_delta, value_delta) for ch, f in keys.items()
    }
    return SetCurves(take.id, new, label, merge_key)


def set_interpolation(
    project: Project,
    keys: Mapping[str, object | None],
    interp: Interpolation | int,
    *,
    take_id: str | None = None,
    label: str = "Set interpolation",
) -> SetCurves:
    """An edit setting the interpolation of keys ``{channel: frames or None (all)}``."""
    take = _resolve_take(project, take_id)
    new = {ch: take.curve(ch).with_interpolation(f, interp) for ch, f in keys.items()}
    return SetCurves(take.id, new, label)


def set_handle_mode(
    project: Project,
    keys: Mapping[str, object | None],
    mode: HandleMode | int,
    *,
    take_id: str | None = None,
    label: str = "Set handle type",
) -> SetCurves:
    """An edit setting the handle mode of keys ``{channel: frames or None (all)}``."""
    take = _resolve_take(project, take_id)
    new = {ch: take.curve(ch).with_handle_mode(f, mode) for ch, f in keys.items()}
    return SetCurves(take.id, new, label)


def set_handles(
    project: Project,
    channel: str,
    frame: int,
    left: tuple[float, float] | None = None,
    right: tuple[float, float] | None = None,
    *,
    take_id: str | None = None,
    base: Take | None = None,
    label: str = "Move handle",
    merge_key: Hashable | None = None,
) -> SetCurves:
    """An edit setting the handles of one key (see Curve.with_handles)."""
    take = base if base is not None else _resolve_take(project, take_id)
    return SetCurves(
        take.id, {channel: take.curve(channel).with_handles(frame, left, right)}, label, merge_key
    )


# ------------------------------------------------------------------------------------- takes
class AddTake(Edit):
    """Insert ``take`` at ``index`` (default: the end); ``activate`` makes it active.

    Event: ``takes`` with ``action='add'``, ``take_id``. Raises DocumentError for a duplicate id.
    """

    def __init__(
        self, take: Take, index: int | None = None, activate: bool = False, label: str = "Add take"
    ) -> None:
        if not isinstance(take, Take):
            raise DocumentError(f"AddTake needs a Take, got {take!r}")
        self.take = take
        self.index = index
        self.activate = activate
        self.label = label
        self._prev_active: str | None = None
        self._at: int | None = None

    def apply(self, project: Project) -> None:
        if any(t.id == self.take.id for t in project.takes):
            raise DocumentError(f"a take with id {self.take.id!r} already exists")
        n = len(project.takes)
        at = n if self.index is None else max(0, min(n, self.index))
        project.takes.insert(at, self.take)
        self._at = at
        self._prev_active = project.active_take_id
        if self.activate:
            project.active_take_id = self.take.id
        project.emit("takes", action="add", take_id=self.take.id)

    def revert(self, project: Project) -> None:
        i = project.take_index(self.take.id)
        self.take = project.takes.pop(i)
        assert self._prev_active is not None
        project.active_take_id = self._prev_active
        project.emit("takes", action="remove", take_id=self.take.id)


class RemoveTake(Edit):
    """Remove a take. If it was active, the next take (or the previous) becomes active; revert
    restores its position and the active take. Raises DocumentError for the last take."""

    def __init__(self, take_id: str, label: str = "Delete take") -> None:
        self.take_id = take_id
        self.label = label
        self._take: Take | None = None
        self._index = -1
        self._prev_active = ""

    def apply(self, project: Project) -> None:
        i = project.take_index(self.take_id)
        if len(project.takes) == 1:
            raise DocumentError("cannot delete the only take")
        self._index = i
        self._prev_active = project.active_take_id
        self._take = project.takes.pop(i)
        if project.active_take_id == self.take_id:
            project.active_take_id = project.takes[min(i, len(project.takes) - 1)].id
        project.emit("takes", action="remove", take_id=self.take_id)

    def revert(self, project: Project) -> None:
        assert self._take is not None
        project.takes.insert(self._index, self._take)
        project.active_take_id = self._prev_active
        project.emit("takes", action="add", take_id=self.take_id)


class SetActiveTake(Edit):
    """Make ``take_id`` the active take. Event: ``takes`` with ``action='activate'``."""

    def __init__(self, take_id: str, label: str = "Switch take") -> None:
        self.take_id = take_id
        self.label = label
        self._prev = ""

    def apply(self, project: Project) -> None:
        project.take(self.take_id)
        self._prev = project.active_take_id
        project.active_take_id = self.take_id
        project.emit("takes", action="activate", take_id=self.take_id)

    def revert(self, project: Project) -> None:
        project.active_take_id = self._prev
        project.emit("takes", action="activate", take_id=self._prev)


class _SwapTake(Edit):
    """Swap a take for a new version of itself (same id); revert puts the old object back."""

    def __init__(self, take_id: str, label: str) -> None:
        self.take_id = take_id
        self.label = label
        self._old: Take | None = None

    def _new(self, old: Take) -> Take:
        raise NotImplementedError

    def apply(self, project: Project) -> None:
        i = project.take_index(self.take_id)
        old = project.takes[i]
        new = self._new(old)
        self._old = old
        project.takes[i] = new
        project.emit("takes", action="change", take_id=self.take_id)

    def revert(self, project: Project) -> None:
        assert self._old is not None
        project.takes[project.take_index(self.take_id)] = self._old
        project.emit("takes", action="change", take_id=self.take_id)


class RenameTake(_SwapTake):
    """Rename a take. Event: ``takes`` with ``action='change'``."""

    def __init__(self, take_id: str, name: str, label: str = "Rename take") -> None:
        if not isinstance(name, str):
            raise DocumentError(f"take name must be a string, got {name!r}")
        super().__init__(take_id, label)
        self.name = name

    def _new(self, old: Take) -> Take:
        return old.with_name(self.name)


class ReplaceTake(_SwapTake):
    """Replace a take by ``take`` with the same id (e.g. regenerated motion)."""

    def __init__(self, take: Take, label: str = "Replace take") -> None:
        if not isinstance(take, Take):
            raise DocumentError(f"ReplaceTake needs a Take, got {take!r}")
        super().__init__(take.id, label)
        self.take = take

    def _new(self, old: Take) -> Take:
        return self.take


# ---------------------------------------------------------------------------------- settings
class SetSettings(Edit):
    """Change frame rate, duration and/or work range (None: unchanged).

    Changing the frame rate does not move keys (time is frames). A shorter duration without a
    work range clamps the work range into it. Keys outside the new [0, duration) are kept and
    reported in ``keys_outside`` ({take_id: {channel: count}}) and in the event detail.
    Event: ``settings`` with ``frame_rate``, ``duration``, ``work_range``, ``keys_outside``.
    Raises DocumentError for invalid values.
    """

    def __init__(
        self,
        frame_rate: FrameRate | str | int | float | None = None,
        duration: int | None = None,
        work_range: tuple[int, int] | None = None,
        label: str = "Change project settings",
        merge_key: Hashable | None = None,
    ) -> None:
        self.frame_rate = None if frame_rate is None else FrameRate.parse(frame_rate)
        self.duration = duration
        self.work_range = None if work_range is None else tuple(work_range)
        self.label = label
        self.merge_key = merge_key
        self.keys_outside: dict[str, dict[str, int]] = {}
        self._prev: tuple[FrameRate, int, tuple[int, int]] | None = None

    def apply(self, project: Project) -> None:
        fr = self.frame_rate or project.frame_rate
        d = project.duration if self.duration is None else self.duration
        if isinstance(d, float) and d.is_integer():
            d = int(d)
        if self.work_range is not None:
            wr = self.work_range
        else:
            start, end = project.work_range
            wr = (start, end) if end <= d else (min(start, max(0, d - 1)), d)
        check_settings(d, wr)
        wr = (int(wr[0]), int(wr[1]))
        d = int(d)
        self.keys_outside = {}
        for take in project.takes:
            counts = {
                ch: int(np.count_nonzero((c.frames < 0) | (c.frames >= d)))
                for ch, c in take.curves.items()
            }
            counts = {ch: n for ch, n in counts.items() if n}
            if counts:
                self.keys_outside[take.id] = counts
        if self._prev is None:
            self._prev = (project.frame_rate, project.duration, tuple(project.work_range))
        project.frame_rate, project.duration, project.work_range = fr, d, wr
        project.emit(
            "settings", frame_rate=fr, duration=d, work_range=wr, keys_outside=self.keys_outside
        )

    def revert(self, project: Project) -> None:
        assert self._prev is not None
        project.frame_rate, project.duration, project.work_range = self._prev  # type: ignore[assignment]
        project.emit(
            "settings",
            frame_rate=project.frame_rate,
            duration=project.duration,
            work_range=project.work_range,
            keys_outside={},
        )

    def merge(self, other: Edit) -> bool:
        if not self._mergeable(other):
            return False
        assert isinstance(other, SetSettings)
        for name in ("frame_rate", "duration", "work_range"):
            if getattr(other, name) is not None:
                setattr(self, name, getattr(other, name))
        self.keys_outside = other.keys_outside
        return True


# ------------------------------------------------------------------------------------ assets
class _AssetState:
    """Remembers one asset key's bytes (or absence) so revert can restore it exactly."""

    _MISSING = object()

    def __init__(self, project: Project, key: str) -> None:
        self.key = key
        self.data: Any = project.assets.get(key, self._MISSING)

    def restore(self, project: Project) -> None:
        if self.data is self._MISSING:
            project.assets.pop(self.key, None)
        else:
            project.assets[self.key] = self.data


def _check_bytes(data: object, what: str) -> bytes:
    if not isinstance(data, (bytes, bytearray)):
        raise DocumentError(f"{what}: asset data must be bytes, got {type(data).__name__}")
    return bytes(data)


# ------------------------------------------------------------------------------------- audio
class AddAudioClip(Edit):
    """Add an audio clip; with ``asset_data``, also embed those bytes as ``assets[clip.asset]``.

    Events: ``audio`` (``action='add'``, ``clip_id``) and ``assets`` when data is embedded.
    Raises DocumentError for a duplicate clip id or non-bytes data.
    """

    def __init__(
        self,
        clip: AudioClip,
        asset_data: bytes | None = None,
        index: int | None = None,
        label: str = "Add audio",
    ) -> None:
        if not isinstance(clip, AudioClip):
            raise DocumentError(f"AddAudioClip needs an AudioClip, got {clip!r}")
        self.clip = clip
        self.asset_data = None if asset_data is None else _check_bytes(asset_data, clip.name)
        self.index = index
        self.label = label
        self._asset: _AssetState | None = None

    def apply(self, project: Project) -> None:
        if any(c.id == self.clip.id for c in project.audio_clips):
            raise DocumentError(f"an audio clip with id {self.clip.id!r} already exists")
        n = len(project.audio_clips)
        at = n if self.index is None else max(0, min(n, self.index))
        if self.asset_data is not None:
            self._asset = _AssetState(project, self.clip.asset)
            project.assets[self.clip.asset] = self.asset_data
        project.audio_clips.insert(at, self.clip)
        if self.asset_data is not None:
            project.emit("assets", keys=(self.clip.asset,))
        project.emit("audio", action="add", clip_id=self.clip.id)

    def revert(self, project: Project) -> None:
        project.audio_clips.pop(project.audio_index(self.clip.id))
        if self._asset is not None:
            self._asset.restore(project)
            project.emit("assets", keys=(self.clip.asset,))
        project.emit("audio", action="remove", clip_id=self.clip.id)


class RemoveAudioClip(Edit):
    """Remove an audio clip (revert restores its position). With ``prune_asset`` (default), an
    embedded asset no longer used by any clip or the head is removed too (and restored on
    revert). Events: ``audio`` (``action='remove'``) and ``assets`` when pruned."""

    def __init__(self, clip_id: str, prune_asset: bool = True, label: str = "Delete audio") -> None:
        self.clip_id = clip_id
        self.prune_asset = prune_asset
        self.label = label
        self._clip: AudioClip | None = None
        self._index = -1
        self._asset: _AssetState | None = None

    def apply(self, project: Project) -> None:
        i = project.audio_index(self.clip_id)
        self._index = i
        self._clip = project.audio_clips.pop(i)
        self._asset = None
        key = self._clip.asset
        if self.prune_asset and key in project.assets and not project.asset_in_use(key):
            self._asset = _AssetState(project, key)
            del project.assets[key]
            project.emit("assets", keys=(key,))
        project.emit("audio", action="remove", clip_id=self.clip_id)

    def revert(self, project: Project) -> None:
        assert self._clip is not None
        if self._asset is not None:
            self._asset.restore(project)
            project.emit("assets", keys=(self._clip.asset,))
        project.audio_clips.insert(self._index, self._clip)
        project.emit("audio", action="add", clip_id=self.clip_id)


class ModifyAudioClip(Edit):
    """Change fields of a clip: ``name``, ``asset``, ``offset``, ``gain``, ``muted``.

    Mergeable (offset/gain drags). Event: ``audio`` with ``action='change'``, ``clip_id``.
    Raises DocumentError for unknown fields or invalid values.
    """

    _FIELDS = frozenset(f.name for f in fields(AudioClip)) - {"id"}

    def __init__(
        self,
        clip_id: str,
        label: str = "Change audio",
        merge_key: Hashable | None = None,
        **changes: Any,
    ) -> None:
        unknown = set(changes) - self._FIELDS
        if unknown:
            raise DocumentError(f"audio clip has no field(s) {sorted(unknown)}")
        self.clip_id = clip_id
        self.changes = changes
        self.label = label
        self.merge_key = merge_key
        self._old: AudioClip | None = None

    def apply(self, project: Project) -> None:
        i = project.audio_index(self.clip_id)
        old = project.audio_clips[i]
        new = replace(old, **self.changes)  # validates
        if self._old is None:
            self._old = old
        project.audio_clips[i] = new
        project.emit("audio", action="change", clip_id=self.clip_id)

    def revert(self, project: Project) -> None:
        assert self._old is not None
        project.audio_clips[project.audio_index(self.clip_id)] = self._old
        project.emit("audio", action="change", clip_id=self.clip_id)

    def merge(self, other: Edit) -> bool:
        if not self._mergeable(other) or other.clip_id != self.clip_id:  # type: ignore[attr-defined]
            return False
        assert isinstance(other, ModifyAudioClip)
        self.changes = {**self.changes, **other.changes}
        return True


# ------------------------------------------------------------------------------ head, camera
class SetHead(Edit):
    """Set (or clear, None) the head; with ``asset_data``, embed it as ``assets[head.asset]``.

    The previous head's asset stays in ``assets`` (never lose user data; the file format may
    drop unreferenced assets on save). Events: ``head`` and ``assets`` when data is embedded.
    """

    def __init__(
        self, head: HeadRef | None, asset_data: bytes | None = None, label: str = "Set head"
    ) -> None:
        if head is not None and not isinstance(head, HeadRef):
            raise DocumentError(f"SetHead needs a HeadRef or None, got {head!r}")
        if asset_data is not None and head is None:
            raise DocumentError("asset data given without a head")
        self.head = head
        self.asset_data = None if asset_data is None else _check_bytes(asset_data, "head")
        self.label = label
        self._old: HeadRef | None = None
        self._asset: _AssetState | None = None

    def apply(self, project: Project) -> None:
        self._old = project.head
        if self.asset_data is not None:
            assert self.head is not None
            self._asset = _AssetState(project, self.head.asset)
            project.assets[self.head.asset] = self.asset_data
            project.emit("assets", keys=(self.head.asset,))
        project.head = self.head
        project.emit("head", head=self.head)

    def revert(self, project: Project) -> None:
        project.head = self._old
        if self._asset is not None:
            self._asset.restore(project)
            project.emit("assets", keys=(self._asset.key,))
        project.emit("head", head=self._old)


class SetCamera(Edit):
    """Set the camera settings. Mergeable (orbit drags). Event: ``camera``."""

    def __init__(
        self, camera: CameraSettings, label: str = "Move camera", merge_key: Hashable | None = None
    ) -> None:
        if not isinstance(camera, CameraSettings):
            raise DocumentError(f"SetCamera needs CameraSettings, got {camera!r}")
        self.camera = camera
        self.label = label
        self.merge_key = merge_key
        self._old: CameraSettings | None = None

    def apply(self, project: Project) -> None:
        if self._old is None:
            self._old = project.camera
        project.camera = self.camera
        project.emit("camera", camera=self.camera)

    def revert(self, project: Project) -> None:
        assert self._old is not None
        project.camera = self._old
        project.emit("camera", camera=self._old)

    def merge(self, other: Edit) -> bool:
        if not self._mergeable(other):
            return False
        assert isinstance(other, SetCamera)
        self.camera = other.camera
        return True


# ----------------------------------------------------------------------------------- markers
class AddMarker(Edit):
    """Insert a marker, keeping ``markers`` sorted by (frame, name). Event: ``markers``."""

    def __init__(self, marker: Marker, label: str = "Add marker") -> None:
        if not isinstance(marker, Marker):
            raise DocumentError(f"AddMarker needs a Marker, got {marker!r}")
        self.marker = marker
        self.label = label
        self._index = -1

    def apply(self, project: Project) -> None:
        self._index = bisect.bisect_right(project.markers, self.marker)
        project.markers.insert(self._index, self.marker)
        project.emit("markers", action="add", marker=self.marker)

    def revert(self, project: Project) -> None:
        del project.markers[self._index]
        project.emit("markers", action="remove", marker=self.marker)


class RemoveMarker(Edit):
    """Remove a marker equal to ``marker``. Raises DocumentError if there is none."""

    def __init__(self, marker: Marker, label: str = "Delete marker") -> None:
        self.marker = marker
        self.label = label
        self._index = -1

    def apply(self, project: Project) -> None:
        try:
            self._index = project.markers.index(self.marker)
        except ValueError:
            raise DocumentError(f"no marker {self.marker!r}") from None
        del project.markers[self._index]
        project.emit("markers", action="remove", marker=self.marker)

    def revert(self, project: Project) -> None:
        project.markers.insert(self._index, self.marker)
        project.emit("markers", action="add", marker=self.marker)


# ---------------------------------------------------------------------------------- compound
class CompoundEdit(Edit):
    """Several edits as one undo step, applied in order and reverted in reverse order.

    If one raises during apply, the ones already applied are reverted and the error re-raised
    (the project is unchanged).
    """

    def __init__(self, edits: Sequence[Edit], label: str = "Edit") -> None:
        self.edits = list(edits)
        self.label = label

    def apply(self, project: Project) -> None:
        done: list[Edit] = []
        try:
            for e in self.edits:
                e.apply(project)
                done.append(e)
        except BaseException:
            for e in reversed(done):
                e.revert(project)
            raise

    def revert(self, project: Project) -> None:
        for e in reversed(self.edits):
            e.revert(project)
