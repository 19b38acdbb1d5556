"""Project-level operations shared by the CLI and the studio window (Qt-free).

Creating projects, embedding audio, turning dense motion into a take, auto-emotion, and summaries.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_GROUPS, CHANNELS
from studio.document import (
    AudioClip,
    Curve,
    FrameRate,
    Interpolation,
    Project,
    Take,
)
from studio.document.audio import AudioData, read_audio
from studio.document.edits import SetCurves
from studio.document.events import EventHub
from studio.document.keyreduce import reduce_keys, tolerance_for

if TYPE_CHECKING:
    from models.emotion import EmotionDatabase

__all__ = [
    "AutoEmotion",
    "audio_asset_key",
    "auto_emotion_keys",
    "describe_project",
    "embed_audio",
    "new_project",
    "project_audio",
    "snapshot_project",
    "take_from_dense",
]

DEFAULT_DURATION_S = 10.0
MAX_DURATION_S = 3 * 3600.0


def audio_asset_key(name: str) -> str:
    """Key under which an embedded audio file is stored in ``Project.assets``."""
    return f"audio/{Path(name).name}"


def embed_audio(project: Project, source: Path | str, offset: int = 0) -> AudioClip:
    """Read an audio file, store its bytes in ``project.assets`` and return a clip for it.

    The clip is not added to the project (callers add it through an undoable edit).
    Raises AudioError for unreadable audio.
    """
    path = Path(source)
    data = path.read_bytes() if path.is_file() else None
    read_audio(data if data is not None else path, name=str(path))  # validate before embedding
    key = audio_asset_key(path.name)
    # Two different files with one name must not overwrite each other.
    stem, n = key, 1
    while key in project.assets and project.assets[key] != data:
        n += 1
        key = f"{Path(stem).with_suffix('')}_{n}{Path(stem).suffix}"
    project.assets[key] = data
    return AudioClip(id=uuid.uuid4().hex, name=path.stem, asset=key, offset=int(offset))


def project_audio(project: Project, clip: AudioClip) -> AudioData:
    """Decoded audio of a clip: embedded bytes, or an external file relative to nothing.

    Raises AudioError when the clip's audio is missing or unreadable.
    """
    if clip.asset in project.assets:
        return read_audio(project.assets[clip.asset], name=clip.asset)
    return read_audio(Path(clip.asset), name=clip.asset)


def snapshot_project(project: Project) -> Project:
    """A copy of ``project`` that later edits cannot change, for a background job (export,
    generation) to read while the GUI keeps editing the original.

    Edits replace takes, clips and settings rather than mutating them, so copying the containers
    is enough; asset bytes are shared (immutable). The copy has its own (empty) event hub.
    """
    return dataclasses.replace(
        project,
        takes=list(project.takes),
        audio_clips=list(project.audio_clips),
        markers=list(project.markers),
        assets=dict(project.assets),
        metadata=dict(project.metadata),
        events=EventHub(),
    )


def new_project(
    frame_rate: FrameRate | None = None,
    duration_s: float | None = None,
    audio: Path | str | None = None,
) -> Project:
    """A new project with one empty take; with ``audio``, the speech embedded at frame 0 and the
    duration defaulting to the audio's length.
    """
    frame_rate = frame_rate or FrameRate(25)
    if duration_s is not None and not (0 < duration_s <= MAX_DURATION_S):
        raise ValueError(f"duration must be between 0 and {MAX_DURATION_S:.0f} s, got {duration_s}")
    project = Project.new(fps=frame_rate, duration_frames=1)
    clip = None
    if audio is not None:
        clip = embed_audio(project, audio)
        if duration_s is None:
            duration_s = project_audio(project, clip).duration
        project.audio_clips.append(clip)
    seconds = DEFAULT_DURATION_S if duration_s is None else duration_s
    project.duration = max(1, int(np.ceil(seconds * frame_rate.fps - 1e-9)))
    project.work_range = (0, project.duration)
    return project


def take_from_dense(
    values: np.ndarray,
    name: str,
    source: str,
    start_frame: int = 0,
    tolerance_scale: float = 1.0,
) -> Take:
    """A take whose linear keys reproduce dense motion ``values [F, len(CHANNELS)]`` within the
    per-channel tolerances of studio.document.keyreduce. Channels that never leave their default
    get no keys.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(CHANNELS):
        raise ValueError(f"dense motion must be [F, {len(CHANNELS)}], got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("dense motion contains NaN or infinite values")
    curves: dict[str, Curve] = {}
    for c, channel in enumerate(CHANNELS):
        column = values[:, c]
        tol = tolerance_for(channel) * tolerance_scale
        if np.abs(column - CHANNEL_DEFAULTS[c]).max() <= tol:
            continue
        keep = reduce_keys(column, tol)
        frames = keep + int(start_frame)
        interp = np.full(keep.size, Interpolation.LINEAR, dtype=np.int8)
        curves[channel] = Curve(frames, column[keep], interp, channel=channel)
    return Take.new(name=name, curves=curves, source=source)


@dataclass(frozen=True)
class AutoEmotion:
    """Emotion keys read from a take: ``frames [K]`` (project frames), ``weights [K, 8]``
    (EMOTIONS order, rows sum to 1), the take and frame range they cover (end exclusive), and
    ``edit``: one undoable SetCurves (not applied) writing them to the take's ``emotion_*``
    curves, replacing the emotion keys inside the range and keeping those outside."""

    take_id: str
    frame_range: tuple[int, int]
    frames: np.ndarray
    weights: np.ndarray
    edit: SetCurves


def auto_emotion_keys(
    project: Project,
    take_id: str | None = None,
    frame_range: tuple[int, int] | None = None,
    tolerance: float = 0.05,
    database: EmotionDatabase | None = None,
) -> AutoEmotion:
    """Auto-emotion (models.emotion.auto_emotion) on a take: its expression over
    ``frame_range`` (default the whole project, ``[0, duration)``) is scored against the emotion
    database (default: the templates) and the per-frame weights are reduced to linear keys
    within ``tolerance`` (models.emotion.emotion_keys). ``take_id`` defaults to the active take.

    Raises DocumentError for an unknown take; ValueError for a range outside ``[0, duration)``
    or shorter than 2 frames, or a take without expression keys (nothing to read).
    """
    from models.emotion import auto_emotion, emotion_keys
    from models.motion_space import EMOTIONS

    take = project.take(take_id) if take_id is not None else project.active_take
    a, b = (0, project.duration) if frame_range is None else (int(v) for v in frame_range)
    if not 0 <= a < b <= project.duration:
        raise ValueError(f"range {a}:{b} is not inside the project's frames 0:{project.duration}")
    if b - a < 2:
        raise ValueError(f"range {a}:{b} is shorter than 2 frames")
    if not any(ch.startswith("exp_") for ch in take.curves):
        raise ValueError(f"take {take.name!r} has no expression keys to read an emotion from")
    fps = project.frame_rate.fps
    values = take.evaluate(np.arange(a, b))  # [F, C]
    median = max(1, round(9 * fps / 25.0)) | 1  # the running median spans 0.36 s
    weights = auto_emotion(
        values, database=database, smooth_frames=6.0 * fps / 25.0, median_frames=median
    )
    keys, w = emotion_keys(weights, tolerance)
    frames = keys + a
    curves: dict[str, Curve | None] = {}
    for j, e in enumerate(EMOTIONS):
        ch = f"emotion_{e}"
        old = take.curve(ch)
        inside = old.frames[(old.frames >= a) & (old.frames < b)]
        curves[ch] = old.without_keys(inside).with_keys(frames, w[:, j], Interpolation.LINEAR)
    edit = SetCurves(take.id, curves, label="Auto-emotion")
    return AutoEmotion(take.id, (a, b), frames, w, edit)


def describe_project(project: Project, name: str = "project", all_channels: bool = False) -> str:
    """A human-readable summary (what ``talking-head-studio info`` prints)."""
    fr = project.frame_rate
    seconds = project.duration / fr.fps
    rate = f"{fr.numerator}" if fr.denominator == 1 else f"{fr.numerator}/{fr.denominator}"
    lines = [
        f"{name}",
        f"  frame rate   {rate} fps",
        f"  duration     {project.duration} frames ({seconds:.2f} s)",
        f"  work range   {project.work_range[0]}..{project.work_range[1]}",
    ]
    head = project.head
    lines.append(f"  head         {head.asset} ({head.kind})" if head else "  head         none")
    if project.audio_clips:
        for clip in project.audio_clips:
            try:
                audio = project_audio(project, clip)
                detail = f"{audio.duration:.2f} s, {audio.sample_rate} Hz, {audio.channels} ch"
            except ValueError as exc:
                detail = f"unreadable: {exc}"
            where = "embedded" if clip.asset in project.assets else "external"
            lines.append(f"  audio        {clip.name} at frame {clip.offset} ({where}; {detail})")
    else:
        lines.append("  audio        none")
    lines.append(f"  markers      {len(project.markers)}")
    lines.append(f"  takes        {len(project.takes)}")
    for take in project.takes:
        active = "*" if take.id == project.active_take_id else " "
        total = sum(len(c) for c in take.curves.values())
        lines.append(
            f"   {active} {take.name} [{take.source}]: {len(take.curves)} keyed channels, "
            f"{total} keys"
        )
    take = project.active_take
    lines.append(f"  tracks of the active take ({take.name}):")
    for group, channels in CHANNEL_GROUPS.items():
        keyed = [(ch, len(take.curves[ch])) for ch in channels if ch in take.curves]
        count = sum(k for _, k in keyed)
        lines.append(
            f"    {group:<10} {len(keyed):>2}/{len(channels):<2} channels keyed, {count} keys"
        )
        shown = channels if all_channels else [ch for ch, _ in keyed]
        for ch in shown:
            n = len(take.curves[ch]) if ch in take.curves else 0
            lines.append(f"      {ch:<18} {n} keys")
    return "\n".join(lines)
