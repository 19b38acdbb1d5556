"""Live Link Face CSV (Epic's iPhone app; ARKit blendshapes) import to a take and export (Qt-free).

File layout: a header row, then one row per captured frame:
``Timecode, BlendShapeCount, <52 ARKit blendshapes>, HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw,
LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll``. Timecode is
``HH:MM:SS:FF.mmm`` (FF the frame at the timecode rate, .mmm a fraction of a frame).
Columns are found by name, case-insensitively and ignoring ``_``/``-``/spaces, so ``JawOpen``,
``jawOpen`` and ``jaw_open`` are one column and the order does not matter; unknown columns are
ignored, missing blendshapes read as 0.

The retargeting to our motion space (linear, in keypoint units of the default head) is the table
``RETARGET`` and is written out in docs/motion-space.md ("Live Link Face"); the export applies
its inverse where one is defined. Assumptions, stated where they matter: ARKit "Left"/"Right"
are the subject's own sides; head angles are radians (``angle_unit``) with ARKit's right-handed
y-up axes, so our yaw = -HeadYaw, pitch = +HeadPitch, roll = -HeadRoll (in degrees).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS

__all__ = [
    "ARKIT_BLENDSHAPES",
    "LIVELINK_COLUMNS",
    "RETARGET",
    "ROTATION_COLUMNS",
    "LiveLinkData",
    "LiveLinkError",
    "blendshapes_from_channels",
    "channels_from_blendshapes",
    "export_livelink",
    "format_timecode",
    "parse_timecode",
    "read_livelink",
    "take_from_livelink",
    "write_livelink",
]

ARKIT_BLENDSHAPES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward",
    "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight",
    "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight", "TongueOut",
)  # fmt: skip
assert len(ARKIT_BLENDSHAPES) == 52
ROTATION_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
                    "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")  # fmt: skip
LIVELINK_COLUMNS = ("Timecode", "BlendShapeCount", *ARKIT_BLENDSHAPES, *ROTATION_COLUMNS)
_ALL_NAMES = ARKIT_BLENDSHAPES + ROTATION_COLUMNS

# Amplitudes at blendshape 1.0, in keypoint units of the default head (a face is ~1 unit tall).
JAW = 0.12  # jawOpen: keypoint 19 down
LID_UP = 0.015  # eyeWide: upper lid up
LID_LOW = 0.02  # eyeSquint: lower lid up
SMILE_X, SMILE_Y = 0.03, 0.025  # mouth corners out and up
FROWN = 0.02  # corners down
STRETCH = 0.02  # corners out
PUCKER_IN, PUCKER_Z = 0.03, 0.02  # funnel/pucker: corners in, lips forward
BROW_UP, BROW_DOWN = 0.04, 0.03
LIP_UP, LIP_DOWN = 0.02, 0.02  # mouthUpperUp / mouthLowerDown
JAW_SIDE, MOUTH_SIDE = 0.04, 0.03
GAZE = 0.25  # eyeLook*: pupil offset in eye widths
CHEEK = 0.015  # cheekSquint: cheek up

# (blendshape, channel, coefficient): channel += coefficient * blendshape. eye_open is separate:
# eye_open_r = 1 - EyeBlinkRight (the rig closes both lids from it).
RETARGET: tuple[tuple[str, str, float], ...] = (
    ("JawOpen", "exp_19_y", JAW),
    ("JawRight", "exp_19_x", -JAW_SIDE), ("JawLeft", "exp_19_x", JAW_SIDE),
    ("JawRight", "exp_8_x", -JAW_SIDE), ("JawLeft", "exp_8_x", JAW_SIDE),
    ("EyeWideRight", "exp_11_y", -LID_UP), ("EyeWideLeft", "exp_15_y", -LID_UP),
    ("EyeSquintRight", "exp_13_y", -LID_LOW), ("EyeSquintLeft", "exp_16_y", -LID_LOW),
    ("MouthSmileRight", "exp_14_x", -SMILE_X), ("MouthSmileRight", "exp_14_y", -SMILE_Y),
    ("MouthSmileLeft", "exp_20_x", SMILE_X), ("MouthSmileLeft", "exp_20_y", -SMILE_Y),
    ("MouthFrownRight", "exp_14_y", FROWN), ("MouthFrownLeft", "exp_20_y", FROWN),
    ("MouthStretchRight", "exp_14_x", -STRETCH), ("MouthStretchLeft", "exp_20_x", STRETCH),
    ("MouthFunnel", "exp_14_x", PUCKER_IN), ("MouthFunnel", "exp_20_x", -PUCKER_IN),
    ("MouthPucker", "exp_14_x", PUCKER_IN), ("MouthPucker", "exp_20_x", -PUCKER_IN),
    ("MouthPucker", "exp_6_z", -PUCKER_Z), ("MouthPucker", "exp_17_z", -PUCKER_Z),
    ("MouthUpperUpRight", "exp_6_y", -LIP_UP / 2), ("MouthUpperUpLeft", "exp_6_y", -LIP_UP / 2),
    ("MouthLowerDownRight", "exp_17_y", LIP_DOWN / 2),
    ("MouthLowerDownLeft", "exp_17_y", LIP_DOWN / 2),
    ("MouthRight", "exp_6_x", -MOUTH_SIDE), ("MouthLeft", "exp_6_x", MOUTH_SIDE),
    ("MouthRight", "exp_17_x", -MOUTH_SIDE), ("MouthLeft", "exp_17_x", MOUTH_SIDE),
    ("BrowInnerUp", "exp_18_y", -BROW_UP),
    ("BrowInnerUp", "exp_1_y", -BROW_UP / 2), ("BrowInnerUp", "exp_2_y", -BROW_UP / 2),
    ("BrowOuterUpRight", "exp_1_y", -BROW_UP), ("BrowOuterUpLeft", "exp_2_y", -BROW_UP),
    ("BrowDownRight", "exp_1_y", BROW_DOWN), ("BrowDownLeft", "exp_2_y", BROW_DOWN),
    ("CheekSquintRight", "exp_3_y", -CHEEK), ("CheekSquintLeft", "exp_7_y", -CHEEK),
    # Gaze, +x image right, +y down. The subject's right eye looks "out" to the image left.
    ("EyeLookInRight", "eye_ball_0", GAZE), ("EyeLookOutRight", "eye_ball_0", -GAZE),
    ("EyeLookDownRight", "eye_ball_1", GAZE), ("EyeLookUpRight", "eye_ball_1", -GAZE),
    ("EyeLookInLeft", "eye_ball_3", -GAZE), ("EyeLookOutLeft", "eye_ball_3", GAZE),
    ("EyeLookDownLeft", "eye_ball_4", GAZE), ("EyeLookUpLeft", "eye_ball_4", -GAZE),
)  # fmt: skip
# Head angle columns -> our channels (sign; the unit conversion is angle_unit's).
_HEAD = (("HeadYaw", "yaw", -1.0), ("HeadPitch", "pitch", 1.0), ("HeadRoll", "roll", -1.0))
_ANGLE_UNITS = {"radians": 180.0 / math.pi, "degrees": 1.0, "normalized": 90.0}
_TC_RATES = (24, 25, 30, 48, 50, 60, 100, 120)
_TC_RE = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[:;.](\d+)(?:\.(\d+))?\s*$")


class LiveLinkError(ValueError):
    """A Live Link Face CSV cannot be read; the message names the row and column."""


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_KEY = {_key(n): n for n in LIVELINK_COLUMNS}


@dataclass
class LiveLinkData:
    """A parsed file: times [N] seconds from the first row, ``shapes`` name -> [N] for every
    blendshape and rotation column (missing ones are zeros), the timecode rate used, and the
    columns that were not recognised."""

    times: np.ndarray
    shapes: dict[str, np.ndarray]
    timecode_fps: float
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    start_timecode: str = ""

    def __len__(self) -> int:
        return len(self.times)


def parse_timecode(text: str, fps: float) -> float:
    """Seconds of ``HH:MM:SS:FF[.fff]`` at ``fps`` frames per second. Raises ValueError."""
    m = _TC_RE.match(text)
    if not m:
        raise ValueError(f"timecode {text!r} is not HH:MM:SS:FF.mmm")
    h, mi, s, ff = (int(g) for g in m.groups()[:4])
    frac = float("0." + m.group(5)) if m.group(5) else 0.0
    return h * 3600 + mi * 60 + s + (ff + frac) / fps


def format_timecode(seconds: float, fps: float) -> str:
    """``HH:MM:SS:FF.mmm`` of ``seconds`` at an integer timecode rate ``fps``."""
    rate = max(1, round(fps))
    frames_total = seconds * rate
    whole = math.floor(frames_total + 1e-6)
    sub = max(0.0, frames_total - whole)
    ff = whole % rate
    secs = whole // rate
    hms = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return f"{hms}:{ff:02d}.{int(sub * 1000 + 1e-6):03d}"


def read_livelink(
    source: str | os.PathLike[str] | io.TextIOBase, timecode_fps: float | None = None
) -> LiveLinkData:
    """Parse a Live Link Face CSV (path or text stream).

    timecode_fps: the rate of the FF field; default: the smallest standard rate (24, 25, 30,
    48, 50, 60, 100, 120) above the largest FF in the file. Raises LiveLinkError (one line,
    naming the row and column) for an empty file, a header without a Timecode column or any
    known blendshape, a row of the wrong length, a bad timecode or a non-numeric value.
    """
    label = "Live Link CSV"
    try:
        if isinstance(source, (str, os.PathLike)):
            label = str(source)
            text = Path(source).read_text(encoding="utf-8-sig")
        else:
            text = source.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise LiveLinkError(f"cannot read {label}: {exc}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise LiveLinkError(f"{label}: empty file")
    header = [h.strip() for h in rows[0]]
    cols: dict[str, int] = {}
    ignored = []
    for i, h in enumerate(header):
        name = _BY_KEY.get(_key(h))
        if name is None:
            ignored.append(h)
        elif name in cols:
            raise LiveLinkError(f"{label}: column {h!r} appears twice")
        else:
            cols[name] = i
    if "Timecode" not in cols:
        raise LiveLinkError(f"{label}: header has no Timecode column")
    known = [n for n in _ALL_NAMES if n in cols]
    if not known:
        raise LiveLinkError(f"{label}: header names no ARKit blendshape or head rotation column")
    n = len(rows) - 1
    if n == 0:
        raise LiveLinkError(f"{label}: no data rows after the header")
    vals = np.zeros((n, len(_ALL_NAMES)))
    tcs = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise LiveLinkError(f"{label}: row {r} has {len(row)} fields, the header {len(header)}")
        tc = row[cols["Timecode"]].strip()
        m = _TC_RE.match(tc)
        if not m:
            raise LiveLinkError(f"{label}: row {r}, column Timecode: {tc!r} is not HH:MM:SS:FF.mmm")
        tcs.append(tc)
        if "BlendShapeCount" in cols:
            bc = row[cols["BlendShapeCount"]].strip()
            if not bc.isdigit():
                raise LiveLinkError(
                    f"{label}: row {r}, column BlendShapeCount: {bc!r} is not a count"
                )
        for j, name in enumerate(_ALL_NAMES):
            if name not in cols:
                continue
            cell = row[cols[name]].strip()
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise LiveLinkError(
                    f"{label}: row {r}, column {header[cols[name]]}: {cell!r} is not a number"
                )
            vals[r - 2, j] = v
    if timecode_fps is None:
        max_ff = max(int(_TC_RE.match(t).group(4)) for t in tcs)
        timecode_fps = next((float(x) for x in _TC_RATES if x > max_ff), float(max_ff + 1))
    times = np.array([parse_timecode(t, timecode_fps) for t in tcs])
    if np.any(np.diff(times) < 0):
        bad = int(np.argmax(np.diff(times) < 0)) + 3
        raise LiveLinkError(f"{label}: row {bad}, column Timecode: time goes backwards")
    times -= times[0]
    shapes = {name: vals[:, j].copy() for j, name in enumerate(_ALL_NAMES)}
    missing = [nm for nm in _ALL_NAMES if nm not in cols]
    return LiveLinkData(times, shapes, float(timecode_fps), ignored, missing, tcs[0])


def channels_from_blendshapes(
    shapes: dict[str, np.ndarray], angle_unit: str = "radians"
) -> np.ndarray:
    """Motion channels ``[N, len(CHANNELS)]`` from blendshape columns (name -> [N]; missing
    names read as 0) through RETARGET, eye_open = 1 - EyeBlink, head angles converted."""
    if angle_unit not in _ANGLE_UNITS:
        raise ValueError(f"angle_unit must be one of {tuple(_ANGLE_UNITS)}, got {angle_unit!r}")
    n = len(next(iter(shapes.values()))) if shapes else 0
    z = np.zeros(n)
    out = np.tile(CHANNEL_DEFAULTS, (n, 1))
    for shape, ch, coef in RETARGET:
        out[:, CHANNEL_INDEX[ch]] += coef * np.asarray(shapes.get(shape, z), dtype=np.float64)
    out[:, CHANNEL_INDEX["eye_open_r"]] = 1.0 - np.asarray(shapes.get("EyeBlinkRight", z))
    out[:, CHANNEL_INDEX["eye_open_l"]] = 1.0 - np.asarray(shapes.get("EyeBlinkLeft", z))
    k = _ANGLE_UNITS[angle_unit]
    for col, ch, sign in _HEAD:
        out[:, CHANNEL_INDEX[ch]] = sign * k * np.asarray(shapes.get(col, z), dtype=np.float64)
    return out


def blendshapes_from_channels(
    values: np.ndarray, angle_unit: str = "radians"
) -> dict[str, np.ndarray]:
    """The inverse retargeting, where defined: ``values [N, len(CHANNELS)]`` -> every Live Link
    column name -> [N], each blendshape clipped to [0, 1]. Opposing shapes (smile/frown,
    outer-brow up/down, look in/out, jaw left/right) come from the sign of their channel;
    funnel, press, roll, shrug, dimple, sneer, cheek puff, mouth close and tongue have no
    inverse (0). Exact for files whose opposing shapes are not active at once."""
    if angle_unit not in _ANGLE_UNITS:
        raise ValueError(f"angle_unit must be one of {tuple(_ANGLE_UNITS)}, got {angle_unit!r}")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(CHANNELS):
        raise ValueError(f"motion must be [N, {len(CHANNELS)}], got {v.shape}")

    def c(name: str) -> np.ndarray:
        return v[:, CHANNEL_INDEX[name]]

    def pos(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, 1.0)

    out = {name: np.zeros(len(v)) for name in _ALL_NAMES}
    out["JawOpen"] = pos(c("exp_19_y") / JAW)
    out["JawLeft"] = pos(c("exp_19_x") / JAW_SIDE)
    out["JawRight"] = pos(-c("exp_19_x") / JAW_SIDE)
    out["EyeBlinkRight"] = pos(1.0 - c("eye_open_r"))
    out["EyeBlinkLeft"] = pos(1.0 - c("eye_open_l"))
    out["EyeWideRight"] = pos(-c("exp_11_y") / LID_UP)
    out["EyeWideLeft"] = pos(-c("exp_15_y") / LID_UP)
    out["EyeSquintRight"] = pos(-c("exp_13_y") / LID_LOW)
    out["EyeSquintLeft"] = pos(-c("exp_16_y") / LID_LOW)
    pucker = pos(-c("exp_6_z") / PUCKER_Z)
    out["MouthPucker"] = pucker
    for side, kp, sx in (("Right", 14, -1.0), ("Left", 20, 1.0)):
        y = c(f"exp_{kp}_y")
        smile = pos(-y / SMILE_Y)
        out[f"MouthSmile{side}"] = smile
        out[f"MouthFrown{side}"] = pos(y / FROWN)
        x_rest = sx * c(f"exp_{kp}_x") - SMILE_X * smile + PUCKER_IN * pucker  # outward left over
        out[f"MouthStretch{side}"] = pos(x_rest / STRETCH)
    inner = pos(-c("exp_18_y") / BROW_UP)
    out["BrowInnerUp"] = inner
    for side, kp in (("Right", 1), ("Left", 2)):
        y = c(f"exp_{kp}_y") + BROW_UP / 2 * inner
        out[f"BrowOuterUp{side}"] = pos(-y / BROW_UP)
        out[f"BrowDown{side}"] = pos(y / BROW_DOWN)
    out["CheekSquintRight"] = pos(-c("exp_3_y") / CHEEK)
    out["CheekSquintLeft"] = pos(-c("exp_7_y") / CHEEK)
    out["MouthUpperUpRight"] = out["MouthUpperUpLeft"] = pos(-c("exp_6_y") / LIP_UP)
    out["MouthLowerDownRight"] = out["MouthLowerDownLeft"] = pos(c("exp_17_y") / LIP_DOWN)
    side = c("exp_6_x") / MOUTH_SIDE
    out["MouthLeft"], out["MouthRight"] = pos(side), pos(-side)
    for x_ch, y_ch, eye, inward in (("eye_ball_0", "eye_ball_1", "Right", 1.0),
                                     ("eye_ball_3", "eye_ball_4", "Left", -1.0)):  # fmt: skip
        x, y = c(x_ch) / GAZE, c(y_ch) / GAZE
        out[f"EyeLookIn{eye}"] = pos(inward * x)
        out[f"EyeLookOut{eye}"] = pos(-inward * x)
        out[f"EyeLookDown{eye}"] = pos(y)
        out[f"EyeLookUp{eye}"] = pos(-y)
    k = _ANGLE_UNITS[angle_unit]
    for col, ch, sign in _HEAD:
        out[col] = sign * c(ch) / k
    return out


def take_from_livelink(
    data: LiveLinkData, fps: float, name: str = "Live Link", angle_unit: str = "radians",
    start_frame: int = 0,
):  # fmt: skip
    """A take (source "imported") from parsed Live Link data, resampled to ``fps`` and keyed
    with ``take_from_dense``. Raises ValueError for fps <= 0."""
    from studio.capture import resample_to_frames
    from studio.project_ops import take_from_dense

    dense_in = channels_from_blendshapes(data.shapes, angle_unit)
    dense = resample_to_frames(data.times, dense_in, fps)
    take = take_from_dense(dense, name, "imported", start_frame=start_frame)
    take.metadata["livelink"] = {
        "timecode": data.start_timecode, "timecode_fps": data.timecode_fps,
        "rows": len(data), "angle_unit": angle_unit,
    }  # fmt: skip
    take.metadata["capture"] = {"start_frame": int(start_frame), "length_frames": len(dense)}
    return take


def write_livelink(
    path: str | os.PathLike[str], values: np.ndarray, fps: float, angle_unit: str = "radians",
    start_seconds: float = 0.0,
) -> None:  # fmt: skip
    """Write motion ``values [N, len(CHANNELS)]`` sampled at ``fps`` as a Live Link Face CSV
    (header LIVELINK_COLUMNS, timecodes at round(fps)). Atomic (temporary file + rename).
    Raises OSError, ValueError for a bad shape."""
    shapes = blendshapes_from_channels(values, angle_unit)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LIVELINK_COLUMNS)
    count = str(len(_ALL_NAMES))
    for i in range(len(values)):
        tc = format_timecode(start_seconds + i / fps, fps)
        w.writerow([tc, count, *(f"{shapes[nm][i]:.6g}" for nm in _ALL_NAMES)])
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


def export_livelink(
    project, path: str | os.PathLike[str], frame_range: tuple[int, int] | None = None,
    angle_unit: str = "radians",
) -> tuple[int, int]:  # fmt: skip
    """Write the active take of ``project`` over ``frame_range`` (default the work range) as a
    Live Link Face CSV; returns the range written."""
    start, end = frame_range or project.work_range
    if end <= start:
        raise ValueError(f"empty frame range {start}:{end}")
    values = project.evaluate(np.arange(start, end))
    fps = project.frame_rate.fps
    write_livelink(path, values, fps, angle_unit, start_seconds=start / fps)
    return start, end
