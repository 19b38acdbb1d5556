"""Motion data export and import: CSV, JSON and Ditto's packed 265-D layout (.npy). Qt-free.

Table (one row per project frame, CSV header = these names, JSON ``columns``):

    frame            integer project frame
    time_s           frame / project fps
    pitch yaw roll   head rotation, degrees (LivePortrait's convention, models.motion_space)
    tx ty tz scale   head translation (keypoint units) and scale
    exp_<k>_<x|y|z>  expression delta of keypoint k = 0..20 (keypoint units, RDF: +y down)
    eye_open_l eye_open_r    openness, 1 = relaxed open, 0 = closed
    eye_ball_0..5    pupil offsets (right eye x y z, left eye x y z), eye widths
    intensity intensity_lips intensity_upper intensity_head   motion intensity factors
    emotion_<name>   weights of Ditto's 8 emotions (angry disgust fear happy neutral sad
                     surprise contempt)
    mouth_open       derived, 0..1: clip(exp_19_y / full_open, 0, 1), full_open = 0.6 / jaw_gain
                     is the exp_19_y at which the head's rig reaches its full jaw angle (0.6 rad)
    blink_l blink_r  derived, 0..1: the rig's upper-lid closure
                     clip((1 - eye_open) + exp_{15|11}_y / lid_travel_upper, 0, 1)
                     (left eye: keypoint 15, right eye: keypoint 11; the subject's sides)

Derived columns use the project head's rig constants (the built-in default head when the project
has no rigged head); the JSON records them under ``rig``. Import ignores derived columns and
reads the channel columns by name; missing channels keep their defaults.

Ditto (.npy): float32 ``[F, 265]`` = models.motion_space.pack_ditto (scale - 1, 66-bin pitch, yaw,
roll logits, t, exp 21x3).

Writes are atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.motion_space import (
    CHANNEL_DEFAULTS,
    CHANNEL_INDEX,
    CHANNELS,
    EMOTIONS,
    EXP_CHANNELS,
    INTENSITY_CHANNELS,
    JAW_OPEN_CHANNEL,
    pack_ditto,
)
from studio.document import Interpolation, Project, Take
from studio.document.errors import DocumentError
from studio.export.errors import ExportError

if TYPE_CHECKING:
    from models.heads import RiggedGaussianHead

__all__ = [
    "DERIVED_COLUMNS",
    "MOTION_COLUMNS",
    "MOTION_FORMAT",
    "derived_motion",
    "export_motion",
    "import_motion",
    "motion_table",
    "read_motion",
    "rig_constants",
]

MOTION_FORMAT = "talking-head-studio/motion"
JAW_MAX_RAD = 0.6  # the rig clamps the jaw angle to [-0.05, 0.6] rad (models.heads.rig)
CHANNEL_COLUMNS: tuple[str, ...] = (
    *("pitch", "yaw", "roll", "tx", "ty", "tz", "scale"),
    *EXP_CHANNELS,
    *("eye_open_l", "eye_open_r"),
    *(f"eye_ball_{i}" for i in range(6)),
    *INTENSITY_CHANNELS,
    *(f"emotion_{e}" for e in EMOTIONS),
)
DERIVED_COLUMNS = ("mouth_open", "blink_l", "blink_r")
MOTION_COLUMNS: tuple[str, ...] = ("frame", "time_s", *CHANNEL_COLUMNS, *DERIVED_COLUMNS)
assert sorted(CHANNEL_COLUMNS) == sorted(CHANNELS)
_SUFFIXES = (".csv", ".json", ".npy")


def rig_constants(project: Project | None = None) -> dict[str, float]:
    """The rig values the derived columns use: ``mouth_full_open`` (exp_19_y at full jaw),
    ``lid_travel_upper`` (exp_{11,15}_y that closes an open upper lid). From the project's head
    when it is a rigged head, else from the built-in default head."""
    from models.heads import RiggedGaussianHead

    head = None
    if project is not None and project.head is not None:
        from studio.export.heads import load_project_head

        with contextlib.suppress(ExportError):
            loaded = load_project_head(project)
            head = loaded if isinstance(loaded, RiggedGaussianHead) else None
    if head is None:
        return dict(_builtin_constants())
    return _constants(head)


def _constants(head: RiggedGaussianHead) -> dict[str, float]:
    return {
        "mouth_full_open": JAW_MAX_RAD / float(head.rig.jaw_gain),
        "lid_travel_upper": float(head.rig.lid_travel_upper),
    }


@functools.cache
def _builtin_constants() -> dict[str, float]:
    from models.heads import load_builtin_head

    return _constants(load_builtin_head("default"))


def derived_motion(values: np.ndarray, rig: dict[str, float]) -> dict[str, np.ndarray]:
    """mouth_open, blink_l, blink_r ``[F]`` in [0, 1] from channels ``values [F, C]``."""
    v = np.asarray(values, dtype=np.float64)
    ch = CHANNEL_INDEX
    mouth = np.clip(v[:, ch[JAW_OPEN_CHANNEL]] / rig["mouth_full_open"], 0.0, 1.0)
    travel = rig["lid_travel_upper"]
    blink_l = (1.0 - v[:, ch["eye_open_l"]]) + v[:, ch["exp_15_y"]] / travel
    blink_r = (1.0 - v[:, ch["eye_open_r"]]) + v[:, ch["exp_11_y"]] / travel
    return {
        "mouth_open": mouth,
        "blink_l": np.clip(blink_l, 0.0, 1.0),
        "blink_r": np.clip(blink_r, 0.0, 1.0),
    }


def _range(project: Project, frame_range: tuple[int, int] | None) -> tuple[int, int]:
    start, end = frame_range if frame_range is not None else project.work_range
    if not 0 <= int(start) < int(end) <= project.duration:
        raise ExportError(
            f"range {start}:{end} is outside the project (frames 0:{project.duration}, "
            "end exclusive, start < end)"
        )
    return int(start), int(end)


def motion_table(
    project: Project,
    frame_range: tuple[int, int] | None = None,
    rig: dict[str, float] | None = None,
) -> tuple[tuple[str, ...], np.ndarray]:
    """(MOTION_COLUMNS, float64 ``[F, len(MOTION_COLUMNS)]``) of the active take at every
    project frame of ``frame_range`` (default: the work range). Raises ExportError for a range
    outside the project."""
    start, end = _range(project, frame_range)
    frames = np.arange(start, end)
    values = project.evaluate(frames)  # [F, C]
    rig = rig or rig_constants(project)
    derived = derived_motion(values, rig)
    table = np.empty((frames.size, len(MOTION_COLUMNS)), dtype=np.float64)
    table[:, 0] = frames
    table[:, 1] = project.frame_rate.seconds(frames.astype(np.float64))
    for j, name in enumerate(CHANNEL_COLUMNS):
        table[:, 2 + j] = values[:, CHANNEL_INDEX[name]]
    for j, name in enumerate(DERIVED_COLUMNS):
        table[:, 2 + len(CHANNEL_COLUMNS) + j] = derived[name]
    return MOTION_COLUMNS, table


def _atomic_write(out: Path, data: bytes) -> None:
    tmp = out.with_name(f".{out.name}.part-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def export_motion(
    project: Project,
    out: str | os.PathLike[str],
    frame_range: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the active take's motion to ``out`` (.csv, .json or .npy, by suffix) and return it.

    Raises ExportError for an unknown suffix, an existing file without ``overwrite``, a range
    outside the project, or an unwritable/full destination (nothing is left behind).
    """
    from studio.export.job import _os_error

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ExportError(f"{out}: motion files end in .csv, .json or .npy")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: the folder {parent} does not exist")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; pass --force to overwrite it")
    if suffix == ".npy":
        start, end = _range(project, frame_range)
        packed = pack_ditto(project.evaluate(np.arange(start, end))).astype(np.float32)
        buf = io.BytesIO()
        np.save(buf, packed)
        data = buf.getvalue()
    else:
        rig = rig_constants(project)
        columns, table = motion_table(project, frame_range, rig)
        data = (_csv_bytes if suffix == ".csv" else _json_bytes)(project, columns, table, rig)
    try:
        _atomic_write(out, data)
    except OSError as exc:
        raise _os_error(exc, out) from None
    return out


def _cell(name: str, v: float) -> str:
    return str(int(v)) if name == "frame" else repr(float(v))  # repr: shortest exact float


def _csv_bytes(project: Project, columns: tuple[str, ...], table: np.ndarray, rig: dict) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in table:
        w.writerow([_cell(c, v) for c, v in zip(columns, row, strict=True)])
    return buf.getvalue().encode("utf-8")


def _json_bytes(project: Project, columns: tuple[str, ...], table: np.ndarray, rig: dict) -> bytes:
    fr = project.frame_rate
    doc = {
        "format": MOTION_FORMAT,
        "version": 1,
        "frame_rate": str(fr),
        "fps": fr.fps,
        "take": project.active_take.name,
        "rig": rig,
        "columns": list(columns),
        "rows": [[int(r[0]), *(float(x) for x in r[1:])] for r in table],
    }
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def read_motion(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read a motion CSV or JSON: (frames [F] int64, values [F, len(CHANNELS)] float64 in
    CHANNELS order with defaults for missing channels, the channel names present in the file).

    Raises ExportError (naming the file) for unreadable files, a missing or non-integer
    ``frame`` column, duplicate frames, or non-finite numbers.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: cannot read motion file ({exc})") from None
    try:
        if suffix == ".json":
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("format") != MOTION_FORMAT:
                raise ValueError(f"not a {MOTION_FORMAT} JSON file")
            columns = [str(c) for c in doc["columns"]]
            rows = [[float(x) for x in r] for r in doc["rows"]]
        elif suffix == ".csv":
            reader = csv.reader(io.StringIO(text))
            columns = [c.strip() for c in next(reader)]
            rows = [[float(x) for x in r] for r in reader if r]
        else:
            raise ValueError("motion files to import end in .csv or .json")
        table = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    except (ValueError, KeyError, TypeError, StopIteration) as exc:
        raise ExportError(f"{path}: not a readable motion table ({exc})") from None
    if "frame" not in columns:
        raise ExportError(f"{path}: no 'frame' column")
    if not table.size:
        raise ExportError(f"{path}: the motion table has no rows")
    if not np.isfinite(table).all():
        raise ExportError(f"{path}: the motion table contains NaN or infinite numbers")
    raw_frames = table[:, columns.index("frame")]
    if np.any(raw_frames != np.round(raw_frames)):
        raise ExportError(f"{path}: the frame column must hold whole frames")
    frames = raw_frames.astype(np.int64)
    if np.unique(frames).size != frames.size:
        raise ExportError(f"{path}: the frame column has duplicate frames")
    values = np.tile(CHANNEL_DEFAULTS, (frames.size, 1))
    present = tuple(c for c in columns if c in CHANNEL_INDEX)
    for name in present:
        values[:, CHANNEL_INDEX[name]] = table[:, columns.index(name)]
    return frames, values, present


def import_motion(path: str | os.PathLike[str], name: str | None = None) -> Take:
    """A new take (source "imported") keyed at every frame of a motion CSV/JSON with linear
    interpolation, for the channels the file has that leave their default somewhere; so the
    take evaluates to the file's values at its frames. Add it to a project with AddTake.

    Raises ExportError for unreadable files (see read_motion) or values the document refuses.
    """
    path = Path(path)
    frames, values, present = read_motion(path)
    keep = [
        c for c in present
        if np.any(values[:, CHANNEL_INDEX[c]] != CHANNEL_DEFAULTS[CHANNEL_INDEX[c]])
    ]  # fmt: skip
    order = sorted(keep, key=CHANNEL_INDEX.__getitem__)
    idx = [CHANNEL_INDEX[c] for c in order]
    try:
        return Take.from_samples(
            name or path.stem,
            frames,
            values[:, idx] if idx else np.zeros((frames.size, 0)),
            channels=tuple(order),
            source="imported",
            interp=Interpolation.LINEAR,
            metadata={"imported_from": path.name},
        )
    except DocumentError as exc:
        raise ExportError(f"{path}: {exc}") from None
