"""The animation document: Qt-free model of a Talking Head Studio project.

Time is integer frames at a rational FrameRate. A Project holds Takes (immutable sets of Curves
over the motion channels of models.motion_space), audio clips, the head, camera, markers and
embedded assets. Every change is an Edit pushed on a History (undo/redo, drag merging), and
announced on ``project.events``.
"""

from __future__ import annotations

from studio.document.curve import MAX_ABS_VALUE, MAX_FRAME, Curve, HandleMode, Interpolation
from studio.document.edits import (
    AddAudioClip,
    AddMarker,
    AddTake,
    CompoundEdit,
    Edit,
    ModifyAudioClip,
    RemoveAudioClip,
    RemoveMarker,
    RemoveTake,
    RenameTake,
    ReplaceTake,
    SetActiveTake,
    SetCamera,
    SetCurves,
    SetHead,
    SetSettings,
    delete_keys,
    insert_keys,
    move_keys,
    set_handle_mode,
    set_handles,
    set_interpolation,
)
from studio.document.errors import DocumentError
from studio.document.events import EVENT_KINDS, ChangeEvent, EventHub
from studio.document.fileformat import (
    SCHEMA_VERSION,
    ProjectFileError,
    load_project,
    read_project_info,
    save_project,
)
from studio.document.history import History
from studio.document.project import (
    HEAD_KINDS,
    AudioClip,
    CameraSettings,
    HeadRef,
    Marker,
    Project,
)
from studio.document.recovery import AutosavePolicy, RecoveryItem, RecoveryManager
from studio.document.take import TAKE_SOURCES, Take, new_id
from studio.document.timebase import FrameRate

__all__ = [
    "EVENT_KINDS",
    "HEAD_KINDS",
    "MAX_ABS_VALUE",
    "MAX_FRAME",
    "SCHEMA_VERSION",
    "TAKE_SOURCES",
    "AddAudioClip",
    "AddMarker",
    "AddTake",
    "AudioClip",
    "AutosavePolicy",
    "CameraSettings",
    "ChangeEvent",
    "CompoundEdit",
    "Curve",
    "DocumentError",
    "Edit",
    "EventHub",
    "FrameRate",
    "HandleMode",
    "HeadRef",
    "History",
    "Interpolation",
    "Marker",
    "ModifyAudioClip",
    "Project",
    "ProjectFileError",
    "RecoveryItem",
    "RecoveryManager",
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
    "Take",
    "delete_keys",
    "insert_keys",
    "load_project",
    "move_keys",
    "new_id",
    "read_project_info",
    "save_project",
    "set_handle_mode",
    "set_handles",
    "set_interpolation",
]
