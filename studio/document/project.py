"""The project: takes of motion, audio, the head asset, camera, markers, embedded files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.document.errors import DocumentError
from studio.document.events import ChangeEvent, EventHub
from studio.document.take import Take, new_id
from studio.document.timebase import FrameRate

__all__ = [
    "HEAD_KINDS",
    "AudioClip",
    "CameraSettings",
    "HeadRef",
    "Marker",
    "Project",
]

HEAD_KINDS = ("gaussian", "mpi", "head")


def _finite(name: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DocumentError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise DocumentError(f"{name} must be finite, got {value!r}")
    return v


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise DocumentError(f"{name} must be an integer frame, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class AudioClip:
    """A sound placed on the timeline: ``asset`` is a key into Project.assets or an external
    path; ``offset`` is the frame where its start plays. Raises DocumentError for bad values."""

    id: str
    name: str
    asset: str
    offset: int = 0
    gain: float = 1.0
    muted: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise DocumentError(f"audio clip id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.asset, str) or not self.asset:
            raise DocumentError(f"audio clip {self.name!r}: asset must be a non-empty string")
        object.__setattr__(self, "offset", _int(f"audio clip {self.name!r} offset", self.offset))
        gain = _finite(f"audio clip {self.name!r} gain", self.gain)
        if gain < 0:
            raise DocumentError(f"audio clip {self.name!r}: gain must be >= 0, got {gain}")
        object.__setattr__(self, "gain", gain)
        object.__setattr__(self, "muted", bool(self.muted))

    @classmethod
    def new(cls, name: str, asset: str, offset: int = 0, gain: float = 1.0) -> AudioClip:
        return cls(new_id(), name, asset, offset, gain)


@dataclass(frozen=True)
class HeadRef:
    """The head being animated: ``asset`` (assets key or path) of ``kind`` in HEAD_KINDS."""

    asset: str
    kind: str = "gaussian"

    def __post_init__(self) -> None:
        if not isinstance(self.asset, str) or not self.asset:
            raise DocumentError("head asset must be a non-empty string")
        if self.kind not in HEAD_KINDS:
            raise DocumentError(f"head kind must be one of {HEAD_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class CameraSettings:
    """Orbit camera and stereo rig. Angles in degrees, distances in metres.

    Raises DocumentError for non-finite values, distance/ipd/convergence <= 0 (ipd may be 0
    for mono) or fov outside (1, 179).
    """

    yaw: float = 0.0
    pitch: float = 0.0
    distance: float = 0.6
    fov_deg: float = 30.0
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ipd: float = 0.063
    convergence: float = 0.6

    def __post_init__(self) -> None:
        for name in ("yaw", "pitch", "distance", "fov_deg", "ipd", "convergence"):
            object.__setattr__(self, name, _finite(f"camera {name}", getattr(self, name)))
        try:
            target = tuple(_finite("camera target", t) for t in self.target)
        except TypeError:
            raise DocumentError(f"camera target must be 3 numbers, got {self.target!r}") from None
        if len(target) != 3:
            raise DocumentError(f"camera target must be 3 numbers, got {self.target!r}")
        object.__setattr__(self, "target", target)
        if self.distance <= 0 or self.convergence <= 0 or self.ipd < 0:
            raise DocumentError(
                "camera distance and convergence must be > 0 and ipd >= 0, got "
                f"{self.distance}, {self.convergence}, {self.ipd}"
            )
        if not 1.0 < self.fov_deg < 179.0:
            raise DocumentError(f"camera fov_deg must be in (1, 179), got {self.fov_deg}")


@dataclass(frozen=True, order=True)
class Marker:
    """A named frame on the timeline."""

    frame: int
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame", _int("marker frame", self.frame))
        if not isinstance(self.name, str):
            raise DocumentError(f"marker name must be a string, got {self.name!r}")


@dataclass(eq=True)
class Project:
    """The document. Change it through Edits (studio.document.edits) pushed on a History, so
    that every change is undoable and announced on ``events``.

    Invariants (checked by ``validate``, run on construction): at least one take, unique take
    ids, ``active_take_id`` names one of them, ``duration >= 1``,
    ``0 <= work_range[0] < work_range[1] <= duration``, unique audio clip ids.
    Keys may lie outside [0, duration): they are kept, evaluation is defined everywhere.
    """

    frame_rate: FrameRate = field(default_factory=FrameRate)
    duration: int = 250
    work_range: tuple[int, int] = (0, 250)
    takes: list[Take] = field(default_factory=list)
    active_take_id: str = ""
    audio_clips: list[AudioClip] = field(default_factory=list)
    head: HeadRef | None = None
    camera: CameraSettings = field(default_factory=CameraSettings)
    markers: list[Marker] = field(default_factory=list)
    assets: dict[str, bytes] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    events: EventHub = field(default_factory=EventHub, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.takes:
            take = Take.new("Take 1")
            self.takes = [take]
            if not self.active_take_id:
                self.active_take_id = take.id
        self.work_range = tuple(self.work_range)  # type: ignore[assignment]
        self.validate()

    @classmethod
    def new(cls, fps: str | int | float | FrameRate = 25, duration_frames: int = 250) -> Project:
        """An empty project: one empty take "Take 1" (active), work range = whole duration."""
        take = Take.new("Take 1")
        d = _int("duration", duration_frames)
        return cls(
            frame_rate=FrameRate.parse(fps),
            duration=d,
            work_range=(0, d),
            takes=[take],
            active_take_id=take.id,
        )

    def validate(self) -> None:
        """Check the invariants in the class docstring. Raises DocumentError."""
        if not isinstance(self.frame_rate, FrameRate):
            raise DocumentError(f"frame_rate must be a FrameRate, got {self.frame_rate!r}")
        check_settings(self.duration, self.work_range)
        if not self.takes or not all(isinstance(t, Take) for t in self.takes):
            raise DocumentError("a project needs at least one Take")
        ids = [t.id for t in self.takes]
        if len(set(ids)) != len(ids):
            raise DocumentError("take ids must be unique")
        if self.active_take_id not in ids:
            raise DocumentError(f"active take {self.active_take_id!r} is not in the project")
        clip_ids = [c.id for c in self.audio_clips]
        if len(set(clip_ids)) != len(clip_ids):
            raise DocumentError("audio clip ids must be unique")
        for a in self.assets.values():
            if not isinstance(a, (bytes, bytearray)):
                raise DocumentError("assets must be bytes")

    # --------------------------------------------------------------------------- queries
    @property
    def active_take(self) -> Take:
        return self.take(self.active_take_id)

    def take(self, take_id: str) -> Take:
        """The take with ``take_id``. Raises DocumentError if there is none."""
        for t in self.takes:
            if t.id == take_id:
                return t
        raise DocumentError(f"no take with id {take_id!r}")

    def take_index(self, take_id: str) -> int:
        for i, t in enumerate(self.takes):
            if t.id == take_id:
                return i
        raise DocumentError(f"no take with id {take_id!r}")

    def audio_clip(self, clip_id: str) -> AudioClip:
        for c in self.audio_clips:
            if c.id == clip_id:
                return c
        raise DocumentError(f"no audio clip with id {clip_id!r}")

    def audio_index(self, clip_id: str) -> int:
        for i, c in enumerate(self.audio_clips):
            if c.id == clip_id:
                return i
        raise DocumentError(f"no audio clip with id {clip_id!r}")

    def evaluate(self, frames: object) -> np.ndarray:
        """The active take at ``frames [F]``: float64 ``[F, len(CHANNELS)]``."""
        return self.active_take.evaluate(frames)

    def evaluate_frame(self, frame: int | float) -> np.ndarray:
        """The active take at one frame: float64 ``[len(CHANNELS)]``."""
        return self.active_take.evaluate_frame(frame)

    def asset_in_use(self, key: str) -> bool:
        """Whether an audio clip or the head refers to ``key``."""
        return any(c.asset == key for c in self.audio_clips) or (
            self.head is not None and self.head.asset == key
        )

    def emit(self, kind: str, **detail: Any) -> None:
        self.events.emit(ChangeEvent(kind, detail))


def check_settings(duration: object, work_range: object) -> None:
    """Raise DocumentError unless ``duration >= 1`` and the work range lies inside it."""
    d = _int("duration", duration)
    if d < 1:
        raise DocumentError(f"duration must be at least 1 frame, got {d}")
    try:
        start, end = (_int("work range", v) for v in work_range)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise DocumentError(f"work range must be (start, end), got {work_range!r}") from None
    if not 0 <= start < end <= d:
        raise DocumentError(
            f"work range ({start}, {end}) must satisfy 0 <= start < end <= duration {d}"
        )
