"""The explicit motion space every generator, rig, tracker and editor shares.

It is LivePortrait's space, the one Ditto's diffusion model generates: 21 implicit 3D keypoints,
per-frame expression deltas ``exp [21, 3]``, head pose (pitch, yaw, roll in degrees), translation
``t [3]`` and scale ``s``. Canonical keypoints ``x_c [21, 3]`` belong to the head (identity).

    x = s * (x_c @ R + exp) + t,    R = (Rz(roll) @ Ry(yaw) @ Rx(pitch)).T   (row vectors)

Coordinates follow LivePortrait's keypoint space: x to the image right, y down, z away from the
camera (a right-handed "RDF" frame), in normalised units where a face spans about [-0.5, 0.5].
Left/right of face parts are the *subject's* (keypoint 11, the subject's right eye, appears on the
image's left). docs/motion-space.md is this module in prose; keep the two in step.

The document stores a motion frame as a flat vector of named channels (CHANNELS); this module
is the one place that maps between that vector, the structured form, and Ditto's packed vector.
numpy only: importing it is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BLINK",
    "BROWS",
    "CHANNELS",
    "CHANNEL_DEFAULTS",
    "CHANNEL_GROUPS",
    "CHANNEL_INDEX",
    "DITTO_ANGLES",
    "DITTO_COND_DIM",
    "DITTO_EXP",
    "DITTO_MOTION_DIM",
    "DITTO_NUM_BINS",
    "DITTO_PITCH",
    "DITTO_POSE_BINS",
    "DITTO_ROLL",
    "DITTO_SCALE",
    "DITTO_T",
    "DITTO_YAW",
    "EMOTIONS",
    "EXP_CHANNELS",
    "EYEBALL",
    "EYES",
    "INTENSITY_CHANNELS",
    "JAW_OPEN_CHANNEL",
    "KEYPOINTS",
    "LIPS",
    "LIP_OPEN",
    "NUM_KEYPOINTS",
    "SMILE",
    "Keypoint",
    "MotionFrames",
    "angles_from_bin_logits",
    "bin_logits_from_angles",
    "channel_name",
    "pack_ditto",
    "rotation_matrix",
    "transform_keypoints",
    "unpack_ditto",
]

NUM_KEYPOINTS = 21


@dataclass(frozen=True)
class Keypoint:
    index: int
    name: str
    region: str  # one of: forehead, brows, eyes, nose, cheeks, lips, jaw
    where: str  # where it sits on a face, for people placing keypoints by hand


# The layout, written once. Consistent with LivePortrait's editor groups and Ditto's findings:
# lips 6,12,14,17,19,20; eyes 11,13,15,16,18; blink 11,13,15,16; eyeball 11,15; brows 1,2;
# smile 20,14,17,13,16,3,7; lip open 19,17; Ditto's dim 58 (= keypoint 19, y) acts as "jaw open"
# and dim 34 (= keypoint 11, y) opens the right eye.
KEYPOINTS: tuple[Keypoint, ...] = (
    Keypoint(0, "forehead", "forehead", "centre of the forehead, above the brows"),
    Keypoint(1, "brow_r", "brows", "middle of the subject's right eyebrow"),
    Keypoint(2, "brow_l", "brows", "middle of the subject's left eyebrow"),
    Keypoint(3, "cheek_r", "cheeks", "right cheekbone, below the outer eye corner"),
    Keypoint(4, "nose_bridge", "nose", "bridge of the nose between the eyes"),
    Keypoint(5, "nose_tip", "nose", "tip of the nose"),
    Keypoint(6, "upper_lip", "lips", "centre of the upper lip's red margin"),
    Keypoint(7, "cheek_l", "cheeks", "left cheekbone, below the outer eye corner"),
    Keypoint(8, "chin", "jaw", "point of the chin"),
    Keypoint(9, "jaw_r", "jaw", "right angle of the jaw, below the ear"),
    Keypoint(10, "jaw_l", "jaw", "left angle of the jaw, below the ear"),
    Keypoint(11, "eye_r_upper", "eyes", "right upper eyelid over the pupil (gaze, blink)"),
    Keypoint(12, "philtrum", "lips", "top of the upper lip, under the nose"),
    Keypoint(13, "eye_r_lower", "eyes", "right lower eyelid (blink, squint in a smile)"),
    Keypoint(14, "mouth_corner_r", "lips", "right corner of the mouth"),
    Keypoint(15, "eye_l_upper", "eyes", "left upper eyelid over the pupil (gaze, blink)"),
    Keypoint(16, "eye_l_lower", "eyes", "left lower eyelid (blink, squint in a smile)"),
    Keypoint(17, "lower_lip", "lips", "centre of the lower lip's red margin"),
    Keypoint(18, "glabella", "eyes", "between the brows, above the nose bridge"),
    Keypoint(19, "jaw_open", "lips", "below the lower lip, on the jaw: +y opens the mouth"),
    Keypoint(20, "mouth_corner_l", "lips", "left corner of the mouth"),
)
assert len(KEYPOINTS) == NUM_KEYPOINTS and all(k.index == i for i, k in enumerate(KEYPOINTS))

LIPS = (6, 12, 14, 17, 19, 20)
EYES = (11, 13, 15, 16, 18)
BLINK = (11, 13, 15, 16)
EYEBALL = (11, 15)
BROWS = (1, 2)
SMILE = (20, 14, 17, 13, 16, 3, 7)
LIP_OPEN = (19, 17)

# Ditto's eight emotions, in its order.
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt")


def channel_name(keypoint: int, axis: int) -> str:
    """Name of the expression channel of ``keypoint`` (0..20) along ``axis`` (0=x, 1=y, 2=z)."""
    return f"exp_{keypoint}_{'xyz'[axis]}"


EXP_CHANNELS = tuple(channel_name(k, a) for k in range(NUM_KEYPOINTS) for a in range(3))
POSE_CHANNELS = ("pitch", "yaw", "roll", "tx", "ty", "tz", "scale")
# eye_open: openness per eye, 1 = relaxed open, 0 = closed (generators convert to Ditto's aspect
# ratio at their boundary). eye_ball: pupil offset per eye relative to the eye centre in units of
# eye width, (x, y, z) for the right eye then the left eye; +x image right, +y down.
EYE_CHANNELS = (
    "eye_open_r", "eye_open_l",
    "eye_ball_0", "eye_ball_1", "eye_ball_2", "eye_ball_3", "eye_ball_4", "eye_ball_5",
)  # fmt: skip
# intensity: ConsistTalk's per-frame motion intensity, global plus optional per-region factors
# (the effective intensity of a region is intensity * intensity_<region>).
INTENSITY_CHANNELS = ("intensity", "intensity_lips", "intensity_upper", "intensity_head")
EMOTION_CHANNELS = tuple(f"emotion_{e}" for e in EMOTIONS)

CHANNELS: tuple[str, ...] = (
    POSE_CHANNELS + EXP_CHANNELS + EYE_CHANNELS + INTENSITY_CHANNELS + EMOTION_CHANNELS
)
CHANNEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(CHANNELS)}
JAW_OPEN_CHANNEL = channel_name(19, 1)


def _defaults() -> np.ndarray:
    d = np.zeros(len(CHANNELS), dtype=np.float64)
    for name in ("scale", "eye_open_r", "eye_open_l", *INTENSITY_CHANNELS, "emotion_neutral"):
        d[CHANNEL_INDEX[name]] = 1.0
    d.setflags(write=False)
    return d


# Value of a channel that has no keys: the neutral, resting pose.
CHANNEL_DEFAULTS: np.ndarray = _defaults()  # [C]


def _group_of(name: str) -> str:
    if name in ("pitch", "yaw", "roll", "tx", "ty", "tz", "scale"):
        return "head pose"
    if name.startswith("exp_"):
        region = KEYPOINTS[int(name.split("_")[1])].region
        return {"forehead": "brows", "cheeks": "lips"}.get(region, region)
    if name.startswith("eye_"):
        return "eye state"
    if name.startswith("intensity"):
        return "intensity"
    return "emotion"


# Channel -> timeline group, in the order the timeline shows them.
CHANNEL_GROUPS: dict[str, tuple[str, ...]] = {}
for _g in ("head pose", "eyes", "brows", "nose", "lips", "jaw", "eye state", "intensity",
           "emotion"):  # fmt: skip
    CHANNEL_GROUPS[_g] = tuple(c for c in CHANNELS if _group_of(c) == _g)
del _g


@dataclass
class MotionFrames:
    """Structured view of motion channels, any leading batch shape ``[...]``."""

    exp: np.ndarray  # [..., 21, 3]
    pitch: np.ndarray  # [...] degrees
    yaw: np.ndarray  # [...] degrees
    roll: np.ndarray  # [...] degrees
    t: np.ndarray  # [..., 3]
    scale: np.ndarray  # [...]
    eye_open: np.ndarray  # [..., 2] right, left
    eye_ball: np.ndarray  # [..., 6]
    intensity: np.ndarray  # [..., 4] global, lips, upper, head
    emotion: np.ndarray  # [..., 8] in EMOTIONS order

    @classmethod
    def from_channels(cls, values: np.ndarray) -> MotionFrames:
        """Split ``values [..., len(CHANNELS)]`` into named parts (views, no copies)."""
        values = np.asarray(values)
        if values.shape[-1] != len(CHANNELS):
            raise ValueError(
                f"motion channels: expected last dimension {len(CHANNELS)}, got {values.shape}"
            )
        i = CHANNEL_INDEX
        e0 = i["exp_0_x"]
        lead = values.shape[:-1]
        return cls(
            exp=values[..., e0 : e0 + 63].reshape(*lead, NUM_KEYPOINTS, 3),
            pitch=values[..., i["pitch"]],
            yaw=values[..., i["yaw"]],
            roll=values[..., i["roll"]],
            t=values[..., i["tx"] : i["tz"] + 1],
            scale=values[..., i["scale"]],
            eye_open=values[..., i["eye_open_r"] : i["eye_open_l"] + 1],
            eye_ball=values[..., i["eye_ball_0"] : i["eye_ball_5"] + 1],
            intensity=values[..., i["intensity"] : i["intensity_head"] + 1],
            emotion=values[..., i["emotion_angry"] : i["emotion_contempt"] + 1],
        )

    def to_channels(self) -> np.ndarray:
        """Inverse of :meth:`from_channels`: ``[..., len(CHANNELS)]`` float64."""
        lead = np.shape(self.pitch)
        out = np.empty((*lead, len(CHANNELS)), dtype=np.float64)
        view = MotionFrames.from_channels(out)
        for field in ("exp", "pitch", "yaw", "roll", "t", "scale", "eye_open", "eye_ball",
                      "intensity", "emotion"):  # fmt: skip
            getattr(view, field)[...] = getattr(self, field)
        return out


def rotation_matrix(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """LivePortrait's head rotation for row vectors: ``R = (Rz(roll) @ Ry(yaw) @ Rx(pitch)).T``.

    Angles in degrees, any matching batch shape ``[...]``; returns ``[..., 3, 3]`` float64, used as
    ``x @ R``.
    """
    p, y, r = (np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (pitch, yaw, roll))
    p, y, r = np.broadcast_arrays(p, y, r)
    cp, sp, cy, sy, cr, sr = np.cos(p), np.sin(p), np.cos(y), np.sin(y), np.cos(r), np.sin(r)
    one, zero = np.ones_like(p), np.zeros_like(p)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(*p.shape, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*p.shape, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*p.shape, 3, 3)
    return np.swapaxes(rz @ ry @ rx, -1, -2)


def transform_keypoints(x_c: np.ndarray, frames: MotionFrames) -> np.ndarray:
    """Driven keypoints ``x = s * (x_c @ R + exp) + t``.

    x_c: [21, 3] canonical keypoints. Returns [..., 21, 3] for the batch shape of ``frames``.
    """
    r = rotation_matrix(frames.pitch, frames.yaw, frames.roll)  # [..., 3, 3]
    s = np.asarray(frames.scale)[..., None, None]
    return s * (np.asarray(x_c) @ r + frames.exp) + np.asarray(frames.t)[..., None, :]


# --- Ditto's packed 265-D motion vector ----------------------------------------------------------
# [0] scale - 1, [1:67] pitch logits, [67:133] yaw logits, [133:199] roll logits, [199:202] t,
# [202:265] exp (21 x 3, keypoint-major). Angles decode as 3 * E[softmax(logits)] - 97.5 degrees.
DITTO_MOTION_DIM = 265
DITTO_COND_DIM = 1103  # audio 1024 | emotion 8 | eye_open 2 | eye_ball 6 | canonical kp 63
_NUM_BINS = 66
DITTO_NUM_BINS = _NUM_BINS
DITTO_SCALE = 0  # scale - 1
DITTO_PITCH = slice(1, 67)  # 66 bin logits each
DITTO_YAW = slice(67, 133)
DITTO_ROLL = slice(133, 199)
DITTO_ANGLES = (DITTO_PITCH, DITTO_YAW, DITTO_ROLL)
DITTO_POSE_BINS = slice(1, 199)  # the three angles' logits together
DITTO_T = slice(199, 202)
DITTO_EXP = slice(202, 265)  # exp [21, 3] flattened keypoint-major: keypoint k at 3k..3k+2
_BINS = np.arange(_NUM_BINS, dtype=np.float64)


def angles_from_bin_logits(logits: np.ndarray) -> np.ndarray:
    """Degrees from LivePortrait's 66-bin logits ``[..., 66]`` -> ``[...]``."""
    logits = np.asarray(logits, dtype=np.float64)
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return 3.0 * (p @ _BINS) - 97.5


def bin_logits_from_angles(degrees: np.ndarray) -> np.ndarray:
    """Logits ``[..., 66]`` whose decoded angle is ``degrees`` (two-hot log-probabilities).

    Angles outside the representable range [-97.5, 97.5] are clamped to it.
    """
    c = np.clip((np.asarray(degrees, dtype=np.float64) + 97.5) / 3.0, 0.0, _NUM_BINS - 1.0)
    lo = np.minimum(np.floor(c), _NUM_BINS - 2)
    w_hi = c - lo
    p = np.zeros((*c.shape, _NUM_BINS))
    np.put_along_axis(p, lo[..., None].astype(np.int64), (1.0 - w_hi)[..., None], axis=-1)
    np.put_along_axis(p, (lo + 1)[..., None].astype(np.int64), w_hi[..., None], axis=-1)
    # log(p + eps): the eps mass on the other 64 bins moves the decoded angle by < 1e-6 degrees.
    return np.log(p + 1e-12)


def pack_ditto(values: np.ndarray) -> np.ndarray:
    """Motion channels ``[..., len(CHANNELS)]`` -> Ditto's packed ``[..., 265]`` (float64)."""
    m = MotionFrames.from_channels(values)
    lead = np.shape(m.pitch)
    out = np.empty((*lead, DITTO_MOTION_DIM), dtype=np.float64)
    out[..., DITTO_SCALE] = m.scale - 1.0
    out[..., DITTO_PITCH] = bin_logits_from_angles(m.pitch)
    out[..., DITTO_YAW] = bin_logits_from_angles(m.yaw)
    out[..., DITTO_ROLL] = bin_logits_from_angles(m.roll)
    out[..., DITTO_T] = m.t
    out[..., DITTO_EXP] = m.exp.reshape(*lead, 63)
    return out


def unpack_ditto(packed: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Ditto's packed ``[..., 265]`` -> motion channels ``[..., len(CHANNELS)]``.

    Channels Ditto does not carry (eye state, intensity, emotion) come from ``base``
    (``[..., C]`` or ``[C]``), or are the defaults.
    """
    packed = np.asarray(packed, dtype=np.float64)
    if packed.shape[-1] != DITTO_MOTION_DIM:
        raise ValueError(f"Ditto motion: expected last dimension 265, got {packed.shape}")
    lead = packed.shape[:-1]
    out = np.broadcast_to(CHANNEL_DEFAULTS if base is None else base, (*lead, len(CHANNELS)))
    out = np.array(out, dtype=np.float64)
    m = MotionFrames.from_channels(out)
    m.scale[...] = packed[..., DITTO_SCALE] + 1.0
    m.pitch[...] = angles_from_bin_logits(packed[..., DITTO_PITCH])
    m.yaw[...] = angles_from_bin_logits(packed[..., DITTO_YAW])
    m.roll[...] = angles_from_bin_logits(packed[..., DITTO_ROLL])
    m.t[...] = packed[..., DITTO_T]
    m.exp[...] = packed[..., DITTO_EXP].reshape(*lead, NUM_KEYPOINTS, 3)
    return out
