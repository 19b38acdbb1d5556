"""Key-selection operations shared by the timeline and the graph editor (Qt-free).

A key selection is a set of ``(channel, frame)`` pairs, as in StudioController.selected_keys.
Each function here builds ONE undoable Edit for the whole selection (a SetCurves over every
affected channel), or returns None when there is nothing to do; callers push it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
from studio.document import (
    Curve,
    Edit,
    HandleMode,
    Interpolation,
    Project,
    SetCurves,
    Take,
    delete_keys,
    move_keys,
    set_handle_mode,
    set_interpolation,
)

__all__ = [
    "KeyClipboard",
    "copy_keys",
    "delete_keys_edit",
    "existing_keys",
    "insert_keys_at_frame_edit",
    "key_clipboard",
    "keys_by_channel",
    "move_keys_edit",
    "paste_keys_edit",
    "set_handle_mode_edit",
    "set_interpolation_edit",
    "set_key_clipboard",
]

Key = tuple[str, int]


def keys_by_channel(keys: Iterable[Key]) -> dict[str, np.ndarray]:
    """``{channel: sorted unique int64 frames [K]}`` in CHANNELS order."""
    out: dict[str, list[int]] = {}
    for ch, f in keys:
        out.setdefault(ch, []).append(int(f))
    return {
        ch: np.unique(np.asarray(out[ch], np.int64))
        for ch in sorted(out, key=lambda c: CHANNEL_INDEX.get(c, 1 << 30))
    }


def existing_keys(take: Take, keys: Iterable[Key]) -> set[Key]:
    """The members of ``keys`` that are keys of ``take`` (stale selections are dropped)."""
    out: set[Key] = set()
    for ch, frames in keys_by_channel(keys).items():
        c = take.curves.get(ch)
        if c is None or ch not in CHANNEL_INDEX:
            continue
        hit = np.isin(frames, c.frames)
        out.update((ch, int(f)) for f in frames[hit])
    return out


def delete_keys_edit(project: Project, keys: Iterable[Key]) -> Edit | None:
    """One edit deleting ``keys`` from the active take, or None if none of them exist."""
    live = existing_keys(project.active_take, keys)
    if not live:
        return None
    n = len(live)
    return delete_keys(
        project, dict(keys_by_channel(live)), label=f"Delete {n} key{'s' * (n != 1)}"
    )


def move_keys_edit(
    project: Project,
    keys: Iterable[Key],
    frame_delta: int,
    value_delta: float = 0.0,
    merge_key: Hashable | None = None,
) -> Edit | None:
    """One edit moving ``keys`` of the active take by whole frames (and a value offset).

    None when nothing moves. A moved key landing on an unmoved key replaces it.
    """
    live = existing_keys(project.active_take, keys)
    if not live or (int(frame_delta) == 0 and float(value_delta) == 0.0):
        return None
    n = len(live)
    return move_keys(
        project,
        dict(keys_by_channel(live)),
        int(frame_delta),
        float(value_delta),
        label=f"Move {n} key{'s' * (n != 1)}",
        merge_key=merge_key,
    )


def set_interpolation_edit(
    project: Project, keys: Iterable[Key], interp: Interpolation | int
) -> Edit | None:
    """One edit setting the interpolation of ``keys`` (the segments leaving them)."""
    live = existing_keys(project.active_take, keys)
    if not live:
        return None
    name = Interpolation(int(interp)).name.lower()
    return set_interpolation(
        project, dict(keys_by_channel(live)), interp, label=f"Interpolation: {name}"
    )


def set_handle_mode_edit(
    project: Project, keys: Iterable[Key], mode: HandleMode | int
) -> Edit | None:
    """One edit setting the bezier handle mode of ``keys``."""
    live = existing_keys(project.active_take, keys)
    if not live:
        return None
    name = HandleMode(int(mode)).name.lower().replace("_", " ")
    return set_handle_mode(project, dict(keys_by_channel(live)), mode, label=f"Handles: {name}")


def insert_keys_at_frame_edit(
    project: Project, channels: Iterable[str], frame: int, label: str = "Insert keys"
) -> Edit | None:
    """One edit keying ``channels`` at ``frame`` with their current (evaluated) values."""
    take = project.active_take
    new: dict[str, Curve] = {}
    for ch in channels:
        c = take.curve(ch)
        value = float(c.evaluate([frame], default=float(CHANNEL_DEFAULTS[CHANNEL_INDEX[ch]]))[0])
        new[ch] = c.with_keys([int(frame)], [value])
    if not new:
        return None
    return SetCurves(take.id, new, label)


@dataclass(frozen=True)
class KeyClipboard:
    """Copied keys: per channel, frames relative to the earliest copied key and the key data."""

    # channel -> (rel_frames [K] int64, values [K], interp [K], handle_mode [K],
    #             left [K, 2], right [K, 2])
    channels: dict[str, tuple[np.ndarray, ...]]

    @property
    def num_keys(self) -> int:
        return sum(int(v[0].shape[0]) for v in self.channels.values())


def copy_keys(take: Take, keys: Iterable[Key]) -> KeyClipboard | None:
    """The selected keys of ``take`` as a clipboard, or None if none exist."""
    live = keys_by_channel(existing_keys(take, keys))
    if not live:
        return None
    first = min(int(f[0]) for f in live.values())
    out: dict[str, tuple[np.ndarray, ...]] = {}
    for ch, frames in live.items():
        c = take.curves[ch]
        idx = np.searchsorted(c.frames, frames)
        out[ch] = (
            frames - first,
            c.values[idx].copy(),
            c.interp[idx].copy(),
            c.handle_mode[idx].copy(),
            c.left[idx].copy(),
            c.right[idx].copy(),
        )
    return KeyClipboard(out)


def paste_keys_edit(
    project: Project, clipboard: KeyClipboard, frame: int
) -> tuple[Edit, set[Key]] | None:
    """One edit pasting ``clipboard`` with its earliest key at ``frame`` (replacing keys there).

    Returns the edit and the pasted keys (to select them), or None for an empty clipboard.
    Keys keep their interpolation, handle mode and (free/aligned) handles.
    """
    take = project.active_take
    new: dict[str, Curve] = {}
    pasted: set[Key] = set()
    for ch, (rel, values, interp, mode, left, right) in clipboard.channels.items():
        frames = rel + int(frame)
        c = take.curve(ch).with_keys(frames, values, interp, mode)
        for i in np.flatnonzero((mode == HandleMode.FREE) | (mode == HandleMode.ALIGNED)):
            c = c.with_handles(int(frames[i]), tuple(left[i]), tuple(right[i]))
        new[ch] = c
        pasted.update((ch, int(f)) for f in frames)
    if not new:
        return None
    n = len(pasted)
    return SetCurves(take.id, new, f"Paste {n} key{'s' * (n != 1)}"), pasted


# One key clipboard for every key editor (copy in the timeline, paste in the graph editor).
_CLIPBOARD: list[KeyClipboard | None] = [None]


def key_clipboard() -> KeyClipboard | None:
    """The keys last copied in any key editor (None before the first copy)."""
    return _CLIPBOARD[0]


def set_key_clipboard(clip: KeyClipboard | None) -> None:
    """Replace the shared key clipboard."""
    _CLIPBOARD[0] = clip
