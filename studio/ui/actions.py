"""Every command of the main window, written once: id, menu text, shortcuts (Blender/Maya
habits), icon and tooltip. Menus, toolbars and the shortcut help window are all built from
:data:`ACTIONS`, so the help table can never disagree with what the keys do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence

from studio.ui.style import icon

__all__ = ["ACTIONS", "ActionSpec", "build_actions", "shortcut_table"]


@dataclass(frozen=True)
class ActionSpec:
    id: str
    text: str
    section: str  # heading in the shortcut help
    shortcuts: tuple[str, ...] = ()
    icon: str | None = None
    tip: str = ""
    checkable: bool = False
    # Shortcuts with auto-repeat make arrows scrub; for toggles, repeat would flicker.
    repeat: bool = False


# fmt: off
ACTIONS: tuple[ActionSpec, ...] = (
    # File
    ActionSpec("new", "&New Project", "File", ("Ctrl+N",), "new", "Start an empty project"),
    ActionSpec("open", "&Open…", "File", ("Ctrl+O",), "open", "Open a project file (.ths)"),
    ActionSpec("save", "&Save", "File", ("Ctrl+S",), "save", "Save the project"),
    ActionSpec("save_as", "Save &As…", "File", ("Ctrl+Shift+S",), None, "Save under a new name"),
    ActionSpec("import_head", "Import &Head…", "File", (), "head",
               "Use a Gaussian-splat (.ply/.splat) or MPI head"),
    ActionSpec("import_audio", "Import &Audio…", "File", ("Ctrl+Shift+I",), "audio",
               "Add speech (WAV, FLAC, OGG) to the timeline at the current frame"),
    ActionSpec("export", "&Export…", "File", ("Ctrl+E",), "export",
               "Export a stereo VR clip, mono video or PNG sequence (renders in the background)"),
    ActionSpec("export_motion", "Export &Motion…", "File", ("Ctrl+Shift+E",), None,
               "Write the active take's motion as CSV, JSON or Ditto .npy"),
    ActionSpec("import_livelink", "Import &Live Link CSV…", "File", (), None,
               "A Live Link Face (ARKit blendshapes) CSV as a new take at the current frame"),
    ActionSpec("export_livelink", "Export Live Link &CSV…", "File", (), None,
               "The active take over the play range as a Live Link Face CSV"),
    ActionSpec("preferences", "&Preferences…", "File", ("Ctrl+,",), "settings",
               "Compute device, autosave, audio device, stereo IPD"),
    ActionSpec("quit", "&Quit", "File", ("Ctrl+Q",), None, "Close the studio"),
    # Edit
    ActionSpec("undo", "&Undo", "Edit", ("Ctrl+Z",), "undo", "Undo the last change", repeat=True),
    ActionSpec("redo", "&Redo", "Edit", ("Ctrl+Shift+Z", "Ctrl+Y"), "redo",
               "Redo the change you undid", repeat=True),
    ActionSpec("insert_key", "&Insert Key", "Animation", ("I",), "key",
               "Key the selected (or all animated) channels at the current frame"),
    ActionSpec("delete_keys", "&Delete Keys", "Animation", ("X", "Delete"), "key_delete",
               "Delete the selected keys"),
    ActionSpec("clear_keys_frame", "Clear Keys on Frame", "Animation", ("Alt+I",), None,
               "Delete the keys on this frame of the selected (or animated) channels"),
    ActionSpec("select_all_keys", "Select &All Keys", "Animation", ("A",), None,
               "Select every key of the active take"),
    ActionSpec("deselect_keys", "Deselect Keys", "Animation", ("Alt+A",), None,
               "Clear the key selection"),
    ActionSpec("generate", "&Generate from Audio…", "Animation", ("Ctrl+G",), None,
               "Generate lip-sync, eye and head motion from speech as new take(s)"),
    ActionSpec("regenerate_range", "&Regenerate Range…", "Animation", ("Ctrl+Shift+G",), None,
               "Generate new motion for the play range only; the rest of the take is kept"),
    ActionSpec("auto_emotion", "Auto-&Emotion from Take", "Animation", (), None,
               "Key the emotion curve from the active take's expression (the play range, or "
               "the whole take); one undo step"),
    # Playback
    ActionSpec("play", "&Play / Pause", "Playback", ("Space",), "play",
               "Play the play range from the playhead, or pause"),
    ActionSpec("stop", "&Stop and Return", "Playback", ("Esc",), "stop",
               "Stop playback and return to the frame where it started"),
    ActionSpec("shuttle_reverse", "Shuttle Backwards", "Playback", ("J",), "play_reverse",
               "Play backwards; press again to go faster"),
    ActionSpec("shuttle_pause", "Shuttle Pause", "Playback", ("K",), "pause", "Pause"),
    ActionSpec("shuttle_forward", "Shuttle Forwards", "Playback", ("L",), "play",
               "Play forwards; press again to go faster"),
    ActionSpec("loop", "&Loop Playback", "Playback", ("Ctrl+L",), "loop",
               "Wrap around at the end of the play range", checkable=True),
    ActionSpec("prev_frame", "Previous Frame", "Playback", ("Left",), None, repeat=True),
    ActionSpec("next_frame", "Next Frame", "Playback", ("Right",), None, repeat=True),
    ActionSpec("back_10", "Back 10 Frames", "Playback", ("Ctrl+Left",), None, repeat=True),
    ActionSpec("forward_10", "Forward 10 Frames", "Playback", ("Ctrl+Right",), None, repeat=True),
    ActionSpec("first_frame", "Jump to Start", "Playback", ("Shift+Left",), "to_start",
               "First frame of the play range"),
    ActionSpec("last_frame", "Jump to End", "Playback", ("Shift+Right",), "to_end",
               "Last frame of the play range"),
    ActionSpec("prev_key", "Previous Key", "Playback", ("Down",), "prev_key",
               "Jump to the previous key (selected channels, or all)", repeat=True),
    ActionSpec("next_key", "Next Key", "Playback", ("Up",), "next_key",
               "Jump to the next key (selected channels, or all)", repeat=True),
    ActionSpec("range_start", "Set Play Range Start", "Playback", ("Ctrl+Home",), None,
               "The play range starts at the playhead"),
    ActionSpec("range_end", "Set Play Range End", "Playback", ("Ctrl+End",), None,
               "The play range ends after the playhead"),
    ActionSpec("range_clear", "Clear Play Range", "Playback", ("Alt+P",), None,
               "Play the whole project"),
    ActionSpec("mute", "&Mute Audio", "Playback", ("Ctrl+M",), "audio_off",
               "Play without sound", checkable=True),
    # View
    ActionSpec("view_all", "&Frame All", "View", ("Home",), None,
               "Fit the timeline and graph editor to the whole animation"),
    ActionSpec("show_live", "&Live", "View", ("Ctrl+Shift+L",), None,
               "Show the Live panel: drive the head with a webcam, video or image folder"),
    ActionSpec("reset_layout", "&Reset Layout", "View", (), None,
               "Put every panel back where it started"),
    # Help
    ActionSpec("shortcuts", "&Keyboard Shortcuts", "Help", ("F1", "Ctrl+/"), "help",
               "Every shortcut of the studio"),
    ActionSpec("about", "&About Talking Head Studio", "Help", (), None),
)
# fmt: on

_BY_ID = {a.id: a for a in ACTIONS}


def build_actions(
    parent: QObject, handlers: dict[str, Callable[..., object]]
) -> dict[str, QAction]:
    """QActions for every spec, parented to ``parent`` (add them to the window so shortcuts
    work even with menus hidden). ``handlers[id]`` is connected to ``triggered`` (checkable
    actions get the checked state). Raises KeyError for a handler of an unknown action."""
    unknown = set(handlers) - set(_BY_ID)
    if unknown:
        raise KeyError(f"handlers for unknown actions: {sorted(unknown)}")
    out: dict[str, QAction] = {}
    for spec in ACTIONS:
        act = QAction(spec.text, parent)
        act.setObjectName(f"action_{spec.id}")
        if spec.shortcuts:
            act.setShortcuts([QKeySequence(s) for s in spec.shortcuts])
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        act.setAutoRepeat(spec.repeat)
        if spec.icon:
            act.setIcon(icon(spec.icon))
        tip = spec.tip or spec.text.replace("&", "")
        if spec.shortcuts:
            tip = f"{tip}  ({' / '.join(spec.shortcuts)})"
        act.setToolTip(tip)
        act.setStatusTip(spec.tip)
        act.setCheckable(spec.checkable)
        fn = handlers.get(spec.id)
        if fn is not None:
            if spec.checkable:
                act.toggled.connect(fn)
            else:
                act.triggered.connect(lambda _checked=False, f=fn: f())
        out[spec.id] = act
    return out


def shortcut_table() -> list[tuple[str, str, str]]:
    """(section, action, shortcuts) rows for every action with a shortcut, in menu order;
    shortcuts in the platform's native spelling."""
    rows = []
    for spec in ACTIONS:
        if spec.shortcuts:
            keys = " / ".join(
                QKeySequence(s).toString(QKeySequence.SequenceFormat.NativeText)
                for s in spec.shortcuts
            )
            rows.append((spec.section, spec.text.replace("&", "").rstrip("…"), keys))
    return rows
