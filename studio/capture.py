"""Performance capture glue (Qt-free): a frame source + a FaceTracker -> a recorded Take.

``iter_record_take`` is the worker form: it yields a CaptureProgress per frame (the last one
carries the take), so a Qt worker can report progress and cancel between frames.
``record_take`` runs it to the end and returns the take. The tracked motion (irregular
timestamps, a webcam's jitter and dropped frames included) is resampled to the project's frame
rate by linear interpolation and turned into keys with ``take_from_dense`` (key reduction within
the channel tolerances). Nothing here changes the project: add the take with an ``AddTake`` edit.

``add_take_to_project`` is what the CLI does with it: add (activate) and extend the duration
to cover the take.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.face.sources import FrameSource
    from models.face.tracker import FaceTracker, TrackedFrame
    from models.hybrid import HybridMixer
    from studio.document import FrameRate, Project, Take

__all__ = [
    "CaptureError",
    "CaptureProgress",
    "add_take_to_project",
    "iter_record_take",
    "record_take",
    "resample_to_frames",
]


class CaptureError(ValueError):
    """Nothing usable was recorded (no frames, or no face at all)."""


@dataclass
class CaptureProgress:
    """Where a recording stands. phase: "calibrating", "recording", "done" or "disconnected"
    (the source failed; what was recorded is kept). ``take`` is set on the last item only."""

    phase: str
    frames: int = 0  # frames read from the source, calibration included
    recorded: int = 0  # frames recorded after calibration
    seconds: float = 0.0  # recorded time
    lost: int = 0  # recorded frames without a face
    num_faces: int = 0
    tracked: TrackedFrame | None = None
    take: Take | None = None
    message: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def resample_to_frames(times: np.ndarray, values: np.ndarray, fps: float) -> np.ndarray:
    """Samples ``values [N, C]`` at ``times [N]`` seconds -> ``[F, C]`` at ``f / fps`` seconds
    after the first sample, ``F = floor((t_last - t_first) * fps) + 1``; linear in between.
    Non-increasing timestamps are dropped (a camera repeating a time stamp). Raises ValueError
    for mismatched shapes, no samples or fps <= 0."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or t.shape != (len(v),) or len(v) == 0:
        raise ValueError(f"resample: need times [N] and values [N, C], got {t.shape}, {v.shape}")
    if not fps > 0:
        raise ValueError(f"resample: fps must be positive, got {fps}")
    keep = np.ones(len(t), dtype=bool)
    last = -np.inf
    for i, x in enumerate(t):  # strictly increasing
        keep[i] = x > last
        last = max(last, x)
    t, v = t[keep], v[keep]
    n = int(np.floor((t[-1] - t[0]) * fps + 1e-9)) + 1
    grid = t[0] + np.arange(n) / fps
    return np.stack([np.interp(grid, t, v[:, c]) for c in range(v.shape[1])], axis=1)


def _fps_of(project_or_fps: Project | FrameRate | float) -> float:
    fr = getattr(project_or_fps, "frame_rate", project_or_fps)
    return float(getattr(fr, "fps", fr))


def iter_record_take(
    source: FrameSource,
    tracker: FaceTracker,
    project: Project | FrameRate | float,
    *,
    calibrate_frames: int = 0,
    name: str = "Capture",
    max_seconds: float | None = None,
    start_frame: int = 0,
    should_stop: Callable[[], bool] | None = None,
    hybrid: HybridMixer | None = None,
) -> Iterator[CaptureProgress]:
    """Record ``source`` through ``tracker``; yields a CaptureProgress per frame and a last one
    with the Take (phase "done", or "disconnected" when the camera failed mid-session).

    The first ``calibrate_frames`` frames are the performer's neutral face: they calibrate the
    tracker (``tracker.calibrate``) and are not recorded. Recording stops at the end of the
    source, after ``max_seconds``, or when ``should_stop()`` returns True. The take starts at
    ``start_frame`` at the project's frame rate (``project``: a Project, FrameRate or fps).

    ``hybrid``: a models.hybrid.HybridMixer whose audio starts with the first recorded frame:
    the recorded lips are its lips at each frame's time, everything else is tracked.

    Raises ProfileError when no calibration frame shows a face, CaptureError when nothing was
    recorded, and SourceError from the source (except a mid-session camera failure after
    frames were recorded, which ends the take).
    """
    from models.face.sources import CameraDisconnectedError
    from studio.project_ops import take_from_dense

    fps = _fps_of(project)
    if not fps > 0:
        raise ValueError(f"record_take: project fps must be positive, got {fps}")
    calib: list[np.ndarray] = []
    times: list[float] = []
    values: list[np.ndarray] = []
    frames = lost = 0
    t_rec0: float | None = None
    phase = "calibrating" if calibrate_frames > 0 else "recording"
    ended = "end of source"
    it = iter(source)
    while True:
        if should_stop is not None and should_stop():
            ended = "stopped"
            break
        try:
            item = next(it)
        except StopIteration:
            break
        except CameraDisconnectedError as exc:
            if not values:
                raise
            ended = str(exc)
            phase = "disconnected"
            break
        frames += 1
        t, frame = item
        if len(calib) < calibrate_frames:
            calib.append(frame)
            if len(calib) == calibrate_frames:
                tracker.calibrate(calib)
                phase = "recording"
            yield CaptureProgress("calibrating", frames, 0, 0.0, 0, tracker.num_faces)
            continue
        if t_rec0 is None:
            t_rec0 = t
        rel = t - t_rec0
        if max_seconds is not None and rel > max_seconds + 1e-9:
            ended = "time limit"
            break
        res = tracker.process(frame, rel)
        lost += not res.found
        times.append(rel)
        values.append(res.values if hybrid is None else hybrid.mix(res.values, rel))
        yield CaptureProgress("recording", frames, len(values), rel, lost, res.num_faces, res)
    if not values:
        used = min(frames, calibrate_frames)
        raise CaptureError(
            f"nothing recorded from {source.description or 'the source'} "
            f"({frames} frames read, {used} for calibration)"
        )
    if lost == len(values):
        raise CaptureError(f"no face found in the {len(values)} recorded frames of "
                           f"{source.description or 'the source'}")  # fmt: skip
    dense = resample_to_frames(np.array(times), np.array(values), fps)
    meta = {
        "capture": {
            "source": source.description,
            "source_fps": round(float(source.fps), 4),
            "frames": len(values),
            "start_frame": int(start_frame),
            "length_frames": len(dense),
            "frames_without_face": lost,
            "calibration_frames": min(frames, calibrate_frames),
            "calibrated": bool(tracker.calibrated),
            "pose": tracker.settings.pose,
            "ended": ended,
        }
    }
    if hybrid is not None:
        meta["capture"]["lips"] = f"audio ({hybrid.generator_name})"

    take = take_from_dense(dense, name, "recorded", start_frame=start_frame)
    take.metadata.update(meta)
    yield CaptureProgress(
        "disconnected" if phase == "disconnected" else "done", frames, len(values),
        times[-1], lost, tracker.num_faces, None, take, ended, meta,
    )  # fmt: skip


def record_take(
    source: FrameSource,
    tracker: FaceTracker,
    project: Project | FrameRate | float,
    *,
    calibrate_frames: int = 0,
    name: str = "Capture",
    max_seconds: float | None = None,
    start_frame: int = 0,
    progress: Callable[[CaptureProgress], None] | None = None,
    hybrid: HybridMixer | None = None,
) -> Take:
    """``iter_record_take`` run to the end; ``progress`` is called with every item. Returns
    the recorded Take (source "recorded"). Raises like ``iter_record_take``."""
    take = None
    for p in iter_record_take(
        source, tracker, project, calibrate_frames=calibrate_frames, name=name,
        max_seconds=max_seconds, start_frame=start_frame, hybrid=hybrid,
    ):  # fmt: skip
        if progress is not None:
            progress(p)
        if p.take is not None:
            take = p.take
    assert take is not None
    return take


def add_take_to_project(project: Project, take: Take, activate: bool = True) -> None:
    """Add ``take`` (AddTake edit, applied directly: the CLI has no history) and extend the
    project's duration, and the work range when it covered the whole project, to the take's
    last key. For the GUI push the same edits on the History instead."""
    from studio.document import AddTake, SetSettings

    AddTake(take, activate=activate).apply(project)
    kr = take.key_range()
    end = 0 if kr is None else kr[1] + 1
    cap = take.metadata.get("capture", {})
    if "length_frames" in cap:
        end = max(end, int(cap.get("start_frame", 0)) + int(cap["length_frames"]))
    if end > project.duration:
        whole = project.work_range == (0, project.duration)
        SetSettings(duration=end, work_range=(0, end) if whole else None).apply(project)
