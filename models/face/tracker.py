"""Webcam/video performance capture: frames -> motion-space channel vectors.

``FaceTracker.process(frame, t)`` runs ``FaceLandmarker.track`` on the frame and maps the 468-point
mesh to one frame of ``models.motion_space.CHANNELS`` (the mapping is documented in
docs/motion-space.md, "Performance capture"). In short:

- Pose: a similarity fit (Umeyama, with the mesh's own z) of a stable, expression-free subset of
  mesh points (nose, eye corners, cheekbones; not the face's outline) against the performer's
  neutral mesh from calibration gives ``obs = s * can @ R + t``; ``R`` decomposes into
  pitch/yaw/roll with ``rotation_matrix``'s convention (LivePortrait's; +yaw turns the face to the
  image left, +pitch tips it down, +roll turns it clockwise on screen). "relative" pose is
  relative to the neutral (calibration) pose; "absolute" adds the neutral's own pose, measured
  from the face's anatomical axes (eye line and midline). The mesh model reads pose partly from
  where the face sits in its crop, so calibration lets the crop settle on each neutral frame
  (``FaceLandmarker.track(settle=True)``) and tracking re-crops on fast moves (``recrop``).
- Expression: keypoints (``keypoints_from_landmarks``) taken back into the head frame
  (``(kp - t) @ R.T / s``) minus the neutral keypoints, in keypoint units: the neutral mesh is
  scaled so that its keypoints match the reference canonical keypoints (the default head's x_c),
  so a performer's expression lands on our rig at the rig's scale.
- Eyes: ``eye_open`` from the lid distance over the eye width, normalised by the neutral's;
  ``eye_ball`` from the iris centre's offset from the eye centre, in eye widths, relative to the
  neutral gaze.
- Filtering: a One-Euro filter over all channels (``min_cutoff``, ``beta``).
- Face lost (no face, black frame, ``None``, unreadable array, a frozen camera for longer than
  ``frozen_timeout_s``): the last output is held, then eased to the neutral face over
  ``ease_s`` seconds. Never raises for a bad frame.

Qt-free, numpy + cv2 (through FaceLandmarker). Not thread-safe: one tracker per thread.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.face.keypoints import keypoints_from_landmarks
from models.face.one_euro import OneEuroFilter
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS, NUM_KEYPOINTS

__all__ = [
    "DEFAULT_PIVOT",
    "REGIONS",
    "STABLE_MESH_POINTS",
    "FaceTracker",
    "PerformerProfile",
    "ProfileError",
    "TrackedFrame",
    "TrackerSettings",
    "angles_from_matrix",
    "default_reference_keypoints",
    "similarity_fit",
]


@functools.cache
def default_reference_keypoints() -> np.ndarray:
    """The default head's canonical keypoints x_c [21, 3] (read once from the shipped head):
    expression deltas are measured in the units of these keypoints, so the tracker drives the
    default head in its own units."""
    from models.heads import load_builtin_head

    kp = np.array(load_builtin_head("default").keypoints, dtype=np.float64)
    kp.setflags(write=False)
    return kp


# The default head's pose pivot (top of the neck) in keypoint units: head translation is
# reported as the motion of this point, so a nod about the neck is not read as a translation.
DEFAULT_PIVOT = (0.0, 0.1875, 0.1375)

# Mesh points that move with the skull, not with the expression: nose bridge, tip and wings, eye
# corners, cheekbones. No points of the face's outline (temples 127/356, 234/454, 93/323): the
# mesh puts those on the visible silhouette, which slides over the skull as the head turns or
# nods, so they are not rigid; with them the fit reads pitch 0.70x on the default head rendered
# at +-10 degrees (max error 3.2), 0.76x without (2.5); see docs/motion-space.md, "Known bias".
STABLE_MESH_POINTS = (1, 4, 5, 6, 168, 197, 195, 2, 98, 327, 33, 133, 362, 263, 116, 345, 123,
                      352)  # fmt: skip
# Keypoints used to scale the neutral face to the reference keypoints (the jaw angles sit on the
# mesh's silhouette and vary with the face's shape; the forehead point with the hairline).
_SCALE_KPS = (1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
# Regions: keypoints whose expression each region owns. Keypoints in no region (forehead, nose
# bridge, nose tip) are rigid: their residual after the pose fit is fit noise and is dropped.
REGIONS: dict[str, tuple[int, ...]] = {
    "head": (),
    "eyes": (11, 13, 15, 16),
    "brows": (1, 2, 18),
    "mouth": (3, 6, 7, 8, 9, 10, 12, 14, 17, 19, 20),
}
_JAW_RIDERS = (8, 17)  # move with the jaw: their exp is relative to keypoint 19's motion
_LID_KPS = (11, 13, 15, 16)  # their y is the blink: carried by eye_open instead (no double close)
# Mesh indices: lids (upper, lower) and eye corners (outer, inner) of the right then left eye.
_EYES = ((159, 145, 33, 133), (386, 374, 263, 362))
# Lid ratio of a closed eye as a fraction of the neutral ratio: iris-model contours, face mesh.
_CLOSED_FRACTION = {True: 0.3, False: 0.55}
_PITCH_OFFSET = 0.0  # anatomical-axes pitch of a frontal face (set from the default head)

# Channel units for the filter's speed term: beta is given per unit of these (degrees for angles).
_UNIT = np.ones(len(CHANNELS))
for _name, _u in (("pitch", 10.0), ("yaw", 10.0), ("roll", 10.0), ("tx", 0.1), ("ty", 0.1),
                  ("tz", 0.1), ("scale", 0.1)):  # fmt: skip
    _UNIT[CHANNEL_INDEX[_name]] = _u
_UNIT[CHANNEL_INDEX["exp_0_x"] : CHANNEL_INDEX["exp_20_z"] + 1] = 0.05
_UNIT[CHANNEL_INDEX["eye_open_r"] : CHANNEL_INDEX["eye_open_l"] + 1] = 0.5
_UNIT[CHANNEL_INDEX["eye_ball_0"] : CHANNEL_INDEX["eye_ball_5"] + 1] = 0.2
del _name, _u

_EXP0 = CHANNEL_INDEX["exp_0_x"]


class ProfileError(ValueError):
    """A performer profile cannot be built (no face in the calibration frames) or read."""


# ------------------------------------------------------------------------------------ geometry
def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama least-squares similarity ``dst ~ s * src @ R + t`` for row vectors.

    src, dst: [N, D]. Returns (s, R [D, D] proper rotation, t [D]). Raises ValueError for
    mismatched shapes or fewer than 3 points.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or len(src) < 3:
        raise ValueError(f"similarity_fit: need matching [N>=3, D] arrays, got {src.shape}, "
                         f"{dst.shape}")  # fmt: skip
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, d, vt = np.linalg.svd(a.T @ b)
    sign = np.ones(len(d))
    if np.linalg.det(u @ vt) < 0:
        sign[-1] = -1.0
    r = (u * sign) @ vt
    var = float((a**2).sum())
    s = float((d * sign).sum() / var) if var > 0 else 1.0
    return s, r, md - s * ms @ r


def angles_from_matrix(r: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a row-vector rotation ``R`` as built by
    ``models.motion_space.rotation_matrix`` (``R.T = Rz(roll) Ry(yaw) Rx(pitch)``)."""
    m = np.asarray(r, dtype=np.float64).T
    yaw = -math.degrees(math.asin(max(-1.0, min(1.0, float(m[2, 0])))))
    pitch = math.degrees(math.atan2(float(m[2, 1]), float(m[2, 2])))
    roll = math.degrees(math.atan2(float(m[1, 0]), float(m[0, 0])))
    return pitch, yaw, roll


def _anatomical_angles(mesh: np.ndarray) -> tuple[float, float, float]:
    """Absolute head angles of a mesh from its eye line and midline (frontal face -> ~0)."""
    x = (mesh[263] - mesh[33]) + (mesh[362] - mesh[133])
    x /= np.linalg.norm(x)
    y = mesh[[2, 98, 327]].mean(0) - mesh[[9, 8, 168]].mean(0)
    y -= (y @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    pitch, yaw, roll = angles_from_matrix(np.stack([x, y, z]))  # rows: canonical axes in camera
    return pitch - _PITCH_OFFSET, yaw, roll


def _eye_metrics(
    points: np.ndarray, iris: np.ndarray | None, contours: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Lid ratio per eye [2] and iris offset from the eye centre in eye widths [2, 2] (x, y
    along the eye line and down; zeros without irises).

    With the iris model's eye contours (71 points per eye; 0 outer corner, 8 inner corner,
    4 lower-lid centre, 12 upper-lid centre, as MediaPipe maps them onto mesh 33, 133, 145, 159)
    the lids come from them: they follow a blink much more closely than the face mesh's lids.
    """
    p = points[:, :2]
    d = p[263] - p[33]
    ang = math.atan2(float(d[1]), float(d[0]))
    c, s = math.cos(ang), math.sin(ang)
    unroll = np.array([[c, -s], [s, c]])  # row vectors @ unroll rotates by -ang
    ratio = np.empty(2)
    ball = np.zeros((2, 2))
    for e, (up, lo, a, b) in enumerate(_EYES):
        if contours is not None:
            ca, cb, cu, cl = contours[e, 0], contours[e, 8], contours[e, 12], contours[e, 4]
        else:
            ca, cb, cu, cl = p[a], p[b], p[up], p[lo]
        width = max(float(np.linalg.norm(ca - cb)), 1e-6)
        ratio[e] = float(np.linalg.norm(cu - cl)) / width
        if iris is not None:
            ball[e] = ((iris[e, 0] - (ca + cb) / 2) @ unroll) / width
    return ratio, ball


# ------------------------------------------------------------------------------------ settings
@dataclass
class TrackerSettings:
    """What the live panel tunes; read on every frame, so changes apply at once.

    min_cutoff (Hz), beta: One-Euro strength (lower min_cutoff = smoother, more lag; higher beta
    = less lag on fast moves; beta is per 10 degrees / 0.05 keypoint units per second).
    smoothing: False passes the raw values. gains / enabled: per region ("head", "eyes",
    "brows", "mouth"); a disabled region stays at its neutral. pose: "relative" (to the
    calibration pose) or "absolute". translation: report tx, ty and scale (else 0 and 1).
    mirror: flip frames horizontally first (a mirrored webcam picture). ease_s: time to ease
    to neutral once the face is lost (after holding for hold_s). frozen_timeout_s: identical
    frames for this long count as a lost face. pivot: the rig's head pivot in keypoint units.
    """

    min_cutoff: float = 1.5
    beta: float = 0.5
    smoothing: bool = True
    gains: dict[str, float] = field(
        default_factory=lambda: {"head": 1.0, "eyes": 1.0, "brows": 1.0, "mouth": 1.0}
    )
    enabled: dict[str, bool] = field(
        default_factory=lambda: {"head": True, "eyes": True, "brows": True, "mouth": True}
    )
    pose: str = "relative"
    translation: bool = True
    mirror: bool = False
    hold_s: float = 0.0
    ease_s: float = 0.5
    frozen_timeout_s: float = 1.0
    pivot: tuple[float, float, float] = DEFAULT_PIVOT

    def __post_init__(self) -> None:
        if self.pose not in ("relative", "absolute"):
            raise ValueError(f"TrackerSettings.pose must be 'relative' or 'absolute', "
                             f"got {self.pose!r}")  # fmt: skip
        for name in list(self.gains) + list(self.enabled):
            if name not in REGIONS:
                raise ValueError(f"TrackerSettings: unknown region {name!r}; expected one of "
                                 f"{tuple(REGIONS)}")  # fmt: skip
        if self.min_cutoff <= 0 or self.beta < 0 or self.ease_s < 0 or self.hold_s < 0:
            raise ValueError("TrackerSettings: min_cutoff must be > 0; beta, ease_s, hold_s >= 0")

    def gain(self, region: str) -> float:
        """Effective settings gain of a region (0 when disabled)."""
        return float(self.gains.get(region, 1.0)) if self.enabled.get(region, True) else 0.0


@dataclass
class PerformerProfile:
    """A performer's calibrated neutral face (``FaceTracker.calibrate``), saved as JSON.

    neutral_mesh [468, 3]: the neutral mesh in keypoint units (its keypoints match the reference
    keypoints in scale and position), in the camera's axes at calibration. neutral_keypoints
    [21, 3]: ``keypoints_from_landmarks(neutral_mesh)``. eye_ratio [2]: neutral lid distance /
    eye width (right, left). eye_ball [2, 2]: neutral iris offsets. scale_px: pixels per keypoint
    unit at calibration. origin_px [3]: where the keypoint origin was in the image (x, y px, z).
    neutral_pose: (pitch, yaw, roll) of the neutral, absolute (anatomical axes). gains:
    per-region gains of this performer (multiplied with the settings' gains).
    """

    neutral_mesh: np.ndarray
    neutral_keypoints: np.ndarray
    eye_ratio: np.ndarray
    eye_ball: np.ndarray
    scale_px: float
    origin_px: np.ndarray
    neutral_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gains: dict[str, float] = field(
        default_factory=lambda: {"head": 1.0, "eyes": 1.0, "brows": 1.0, "mouth": 1.0}
    )
    frames: int = 1
    name: str = ""

    VERSION = 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("neutral_mesh", "neutral_keypoints", "eye_ratio", "eye_ball", "origin_px"):
            d[k] = np.round(np.asarray(d[k], dtype=np.float64), 7).tolist()
        d["neutral_pose"] = list(self.neutral_pose)
        d["version"] = self.VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PerformerProfile:
        """Raises ProfileError naming the first missing or malformed field."""
        if not isinstance(d, dict):
            raise ProfileError("performer profile: expected a JSON object")
        if d.get("version", 1) > cls.VERSION:
            raise ProfileError(f"performer profile version {d.get('version')} is newer than "
                               f"this program ({cls.VERSION})")  # fmt: skip
        shapes = {"neutral_mesh": (468, 3), "neutral_keypoints": (NUM_KEYPOINTS, 3),
                  "eye_ratio": (2,), "eye_ball": (2, 2), "origin_px": (3,)}  # fmt: skip
        arrays = {}
        for k, shape in shapes.items():
            try:
                a = np.asarray(d[k], dtype=np.float64)
            except (KeyError, TypeError, ValueError):
                raise ProfileError(
                    f"performer profile: field {k!r} missing or not numeric"
                ) from None
            if a.shape != shape or not np.isfinite(a).all():
                raise ProfileError(f"performer profile: field {k!r} must be finite {shape}")
            arrays[k] = a
        try:
            scale = float(d["scale_px"])
            pose = tuple(float(v) for v in d.get("neutral_pose", (0, 0, 0)))
            gains = {str(k): float(v) for k, v in dict(d.get("gains", {})).items()}
        except (KeyError, TypeError, ValueError):
            raise ProfileError(
                "performer profile: scale_px, neutral_pose or gains malformed"
            ) from None
        if not (scale > 0 and math.isfinite(scale)) or len(pose) != 3:
            raise ProfileError("performer profile: scale_px must be > 0, neutral_pose 3 angles")
        unknown = set(gains) - set(REGIONS)
        if unknown:
            raise ProfileError(f"performer profile: unknown region {sorted(unknown)[0]!r}")
        full = {"head": 1.0, "eyes": 1.0, "brows": 1.0, "mouth": 1.0, **gains}
        return cls(scale_px=scale, neutral_pose=pose, gains=full,  # type: ignore[arg-type]
                   frames=int(d.get("frames", 1)), name=str(d.get("name", "")),
                   **arrays)  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON atomically (temporary file + rename). Raises OSError."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PerformerProfile:
        """Read a profile. Raises ProfileError for unreadable or malformed files."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProfileError(f"cannot read performer profile {path}: {exc}") from None
        return cls.from_dict(d)


@dataclass
class TrackedFrame:
    """One processed frame.

    values [len(CHANNELS)]: the motion frame (filtered, gains applied; the neutral face while
    no face has been seen). status: "tracking", "lost" (no face: holding/easing), "frozen"
    (identical to the previous frame), "no_frame" (None), "bad_frame" (unusable array).
    num_faces: faces the detector saw the last time it ran. landmarks: the FaceLandmarks of
    this frame (None unless tracking). raw: unfiltered values (None unless tracking).
    process_ms: time spent in ``process``.
    """

    timestamp: float
    values: np.ndarray
    status: str
    num_faces: int = 0
    landmarks: Any = None
    raw: np.ndarray | None = None
    process_ms: float = 0.0

    @property
    def found(self) -> bool:
        return self.status == "tracking"


# ------------------------------------------------------------------------------------ tracker
class FaceTracker:
    """Turns video frames into motion-space frames; see the module docstring.

    landmarker: a ``FaceLandmarker`` (default: a new one with ``num_threads``).
    reference_keypoints [21, 3]: the canonical keypoints expression is scaled to (default: the
    default head's). Without a profile the first frame with a face becomes a provisional
    neutral (``calibrated`` stays False until ``calibrate`` or ``set_profile``).
    Raises what FaceLandmarker raises when the models are missing.
    """

    def __init__(
        self,
        landmarker: Any = None,
        settings: TrackerSettings | None = None,
        profile: PerformerProfile | None = None,
        *,
        reference_keypoints: np.ndarray | None = None,
        num_threads: int = 2,
    ) -> None:
        if landmarker is None:
            from models.face.landmarks import FaceLandmarker

            landmarker = FaceLandmarker(num_threads=num_threads)
        self.landmarker = landmarker
        self.settings = settings if settings is not None else TrackerSettings()
        ref = default_reference_keypoints() if reference_keypoints is None else reference_keypoints
        self.reference_keypoints = np.asarray(ref, dtype=np.float64)
        if self.reference_keypoints.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(
                f"reference_keypoints must be [21, 3], got {self.reference_keypoints.shape}"
            )
        self.profile: PerformerProfile | None = None
        self.calibrated = False
        self._filter = OneEuroFilter(1.0, 0.0)
        self.reset()
        if profile is not None:
            self.set_profile(profile)

    # ------------------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the tracked face and the filter state (keeps the profile)."""
        self.landmarker.reset()
        self._filter.reset()
        self._last_out = CHANNEL_DEFAULTS.copy()
        self._lost_since: float | None = None
        self._lost_from = self._last_out
        self._prev_sig: np.ndarray | None = None
        self._frozen_since: float | None = None
        self._last_result: TrackedFrame | None = None
        self._t_prev: float | None = None
        self._t0 = time.monotonic()
        self.num_faces = 0
        self._bad_frame = False
        self._last_landmarks = None

    def set_profile(self, profile: PerformerProfile) -> None:
        """Use ``profile`` as the neutral face from now on (resets the filter)."""
        if not isinstance(profile, PerformerProfile):
            raise TypeError(f"set_profile needs a PerformerProfile, got {type(profile).__name__}")
        self.profile = profile
        self.calibrated = True
        self._filter.reset()

    # ------------------------------------------------------------------------------ calibration
    def profile_from_landmarks(self, landmarks: list[Any], name: str = "") -> PerformerProfile:
        """A profile from the FaceLandmarks of neutral frames (the mean face, each frame aligned
        to the first by a similarity fit of the stable points). Raises ProfileError when the
        list is empty."""
        lms = [lm for lm in landmarks if lm is not None]
        if not lms:
            raise ProfileError("calibration: no face found in the neutral frames")
        s_idx = list(STABLE_MESH_POINTS)
        base = lms[0].points
        meshes, ratios, balls = [], [], []
        for lm in lms:
            s, r, t = similarity_fit(lm.points[s_idx], base[s_idx])
            meshes.append(s * lm.points @ r + t)
            ratio, ball = _eye_metrics(lm.points, lm.iris, lm.eye_contours)
            ratios.append(ratio)
            balls.append(ball)
        mesh = np.mean(meshes, axis=0)  # [468, 3] pixels, in the first frame's place
        kp = keypoints_from_landmarks(mesh)
        ref = self.reference_keypoints
        idx = list(_SCALE_KPS)
        a, b = kp[idx, :2], ref[idx, :2]
        ac, bc = a - a.mean(0), b - b.mean(0)
        k = float((ac * bc).sum() / max((ac**2).sum(), 1e-12))  # kp units per pixel
        if not (k > 0 and math.isfinite(k)):
            raise ProfileError("calibration: degenerate face (no extent)")
        origin = np.empty(3)
        origin[:2] = a.mean(0) - b.mean(0) / k
        origin[2] = kp[idx, 2].mean() - ref[idx, 2].mean() / k
        can = (mesh - origin) * k
        return PerformerProfile(
            neutral_mesh=can,
            neutral_keypoints=keypoints_from_landmarks(can),
            eye_ratio=np.maximum(np.mean(ratios, axis=0), 1e-3),
            eye_ball=np.mean(balls, axis=0),
            scale_px=1.0 / k,
            origin_px=origin,
            neutral_pose=_anatomical_angles(mesh),
            frames=len(lms),
            name=name,
        )

    def calibrate(self, frames: Any, name: str = "") -> PerformerProfile:
        """Average neutral frames (an iterable of RGB frames, or of (timestamp, frame) pairs)
        into a PerformerProfile, make it this tracker's profile and return it. Each frame's mesh
        comes from a settled crop, as steady tracking sees the face (a neutral from a crop still
        converging after the detection reads later poses ~2 degrees off). Frames without a face
        are skipped. Raises ProfileError when no frame has a face."""
        lms = []
        for item in frames:
            frame = item[1] if isinstance(item, tuple) else item
            lm = self._landmarks(frame, settle=True)
            if lm is not None:
                lms.append(lm)
        profile = self.profile_from_landmarks(lms, name)
        self.set_profile(profile)
        self.landmarker.reset()
        return profile

    # ------------------------------------------------------------------------------ per frame
    def _landmarks(self, frame: Any, settle: bool = False):
        """track() on a frame, or None for a missing/unusable frame or no face (never raises
        for bad frames; ``self._bad_frame`` tells an unusable array from a frame without a
        face)."""
        self._bad_frame = frame is None
        if frame is None:
            return None
        try:
            a = np.asarray(frame)
            if self.settings.mirror and a.ndim >= 2:
                a = np.ascontiguousarray(a[:, ::-1])
            lm = self.landmarker.track(a, settle=True) if settle else self.landmarker.track(a)
        except (ValueError, TypeError):  # FaceImageError is a ValueError
            self._bad_frame = True
            self.num_faces = 0
            return None
        if lm is not None:
            self.num_faces = int(lm.num_faces)
        else:
            # FaceLandmarker keeps the detector's last count privately (see the report).
            self.num_faces = int(getattr(self.landmarker, "_num_faces", 0) or 0)
        return lm

    def measure(self, landmarks: Any) -> np.ndarray:
        """Unfiltered motion channels [len(CHANNELS)] of one FaceLandmarks, gains applied.
        Without a profile, these landmarks become the provisional neutral."""
        if self.profile is None:
            self.profile = self.profile_from_landmarks([landmarks])
        prof = self.profile
        st = self.settings
        pts = np.asarray(landmarks.points, dtype=np.float64)
        s_idx = list(STABLE_MESH_POINTS)
        s, r, t = similarity_fit(prof.neutral_mesh[s_idx], pts[s_idx])
        out = CHANNEL_DEFAULTS.copy()
        gain = {g: st.gain(g) * float(prof.gains.get(g, 1.0)) for g in REGIONS}

        # Pose. Relative: R is already relative to the neutral (the canonical mesh is the
        # neutral as seen). Absolute: compose with the neutral's own pose.
        if st.pose == "absolute":
            from models.motion_space import rotation_matrix

            r_pose = rotation_matrix(*prof.neutral_pose) @ r
        else:
            r_pose = r
        pitch, yaw, roll = angles_from_matrix(r_pose)
        gh = gain["head"]
        out[CHANNEL_INDEX["pitch"]] = gh * pitch
        out[CHANNEL_INDEX["yaw"]] = gh * yaw
        out[CHANNEL_INDEX["roll"]] = gh * roll
        if st.translation:
            pivot = np.asarray(st.pivot, dtype=np.float64)
            p_obs = s * pivot @ r + t
            p_neu = prof.scale_px * pivot + prof.origin_px
            d = (p_obs - p_neu) / prof.scale_px
            out[CHANNEL_INDEX["tx"]] = gh * d[0]
            out[CHANNEL_INDEX["ty"]] = gh * d[1]
            out[CHANNEL_INDEX["scale"]] = 1.0 + gh * (s / prof.scale_px - 1.0)

        # Expression: keypoints in the head frame, minus the neutral's.
        kp = keypoints_from_landmarks(pts)
        kp_head = ((kp - t) @ r.T) / s
        delta = kp_head - prof.neutral_keypoints  # [21, 3] keypoint units
        for k in _JAW_RIDERS:
            delta[k] -= delta[19]
        for k in _LID_KPS:
            delta[k, 1] = 0.0
        exp = np.zeros((NUM_KEYPOINTS, 3))
        for region, kps in REGIONS.items():
            if kps:
                exp[list(kps)] = gain[region] * delta[list(kps)]
        out[_EXP0 : _EXP0 + 63] = exp.reshape(-1)

        # Eyes.
        contours = landmarks.eye_contours
        ratio, ball = _eye_metrics(pts, landmarks.iris, contours)
        closed = _CLOSED_FRACTION[contours is not None] * prof.eye_ratio
        openness = np.clip((ratio - closed) / (prof.eye_ratio - closed), 0.0, 1.5)
        ge = gain["eyes"]
        i = CHANNEL_INDEX["eye_open_r"]
        out[i : i + 2] = 1.0 - ge * (1.0 - openness)
        if landmarks.iris is not None:
            b = ge * (ball - prof.eye_ball)  # [2, 2]
            j = CHANNEL_INDEX["eye_ball_0"]
            out[j : j + 2] = b[0]
            out[j + 3 : j + 5] = b[1]
        return out

    def process(self, frame: Any, timestamp: float | None = None) -> TrackedFrame:
        """Track one frame (RGB uint8 [H, W, 3]; any array FaceLandmarker accepts; None for a
        dropped frame) taken at ``timestamp`` seconds (default: the monotonic clock since
        reset). Never raises for bad frames: they count as a lost face."""
        t_start = time.perf_counter()
        if timestamp is None:
            timestamp = time.monotonic() - self._t0
        timestamp = float(timestamp)
        st = self.settings
        status = "tracking"
        lm = None
        # Frozen camera: the same picture again. Repeat the last result for a while.
        sig = None
        if frame is not None:
            a = np.asarray(frame)
            if a.ndim >= 2 and a.size:
                sig = np.ascontiguousarray(
                    a[:: max(1, a.shape[0] // 24), :: max(1, a.shape[1] // 24)]
                )
        if (
            sig is not None
            and self._prev_sig is not None
            and sig.shape == self._prev_sig.shape
            and np.array_equal(sig, self._prev_sig)
            and self._last_result is not None
        ):
            if self._frozen_since is None:
                self._frozen_since = timestamp
            if timestamp - self._frozen_since < st.frozen_timeout_s:
                prev = self._last_result
                return TrackedFrame(timestamp, prev.values.copy(), "frozen", prev.num_faces,
                                    None, None, (time.perf_counter() - t_start) * 1e3)  # fmt: skip
            status = "lost"
        else:
            self._frozen_since = None
        self._prev_sig = sig

        if status == "tracking":
            if frame is None:
                status = "no_frame"
            else:
                lm = self._landmarks(frame)
                if lm is None:
                    status = "bad_frame" if self._bad_frame else "lost"
        if lm is not None:
            raw = self.measure(lm)
            if self._lost_since is not None:
                # Resume from the held/eased pose: the filter glides to the new one.
                self._filter.reset(self._last_out, self._t_prev)
                self._lost_since = None
            if st.smoothing:
                self._filter.min_cutoff = np.full(len(CHANNELS), st.min_cutoff)
                self._filter.beta = st.beta / _UNIT
                out = self._filter(raw, timestamp)
            else:
                self._filter.reset(raw, timestamp)
                out = raw.copy()
            self._last_landmarks = lm
        else:
            raw = None
            if self._lost_since is None:
                self._lost_since = timestamp
                self._lost_from = self._last_out.copy()
            w = _ease(
                (timestamp - self._lost_since - st.hold_s) / st.ease_s if st.ease_s > 0 else 1.0
            )
            out = self._lost_from + w * (CHANNEL_DEFAULTS - self._lost_from)
            if status == "tracking":
                status = "lost"
        self._last_out = out
        self._t_prev = timestamp
        res = TrackedFrame(timestamp, out.copy(), status, self.num_faces, lm, raw,
                           (time.perf_counter() - t_start) * 1e3)  # fmt: skip
        self._last_result = res
        return res


def _ease(x: float) -> float:
    """Smoothstep on [0, 1] (clamped): 0 -> 0, 1 -> 1, zero slope at both ends."""
    x = min(1.0, max(0.0, float(x)))
    return x * x * (3.0 - 2.0 * x)
