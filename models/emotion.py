"""Emotion templates, emotion selection and auto-emotion on our rig's expression space.

Emotion selection follows ConsistentAvatar (section 4.2): a database of expression vectors, each
labelled with an emotion; a frame's expression is compared with every entry by cosine similarity
and takes the label of the most similar entries. ConsistentAvatar takes the argmax (one label per
frame); the studio needs a blend, so here the best similarity per emotion goes through a softmax
with a temperature into 8 weights (Ditto's order, models.motion_space.EMOTIONS), and the weights
are smoothed over time.

The database starts from analytic templates (:data:`EMOTION_TEMPLATES`, one ``exp [21, 3]`` per
emotion, in motion-space units on our 21 keypoints; y is down, the subject's right side is -x):

==========  =====================================================================================
emotion     template (keypoint deltas)
==========  =====================================================================================
angry       brows (1, 2) down and pulled in, glabella (18) down, lower lids (13, 16) up, lips
            pressed (lower lip 17 up, upper lip 6 down), mouth corners (14, 20) slightly in
disgust     upper lip (6) and philtrum (12) raised, nose tip (5) up, brows down, cheeks (3, 7) and
            lower lids up, mouth corners down, lower lip pushed down
fear        brows up and pulled in, glabella up, upper lids (11, 15) up (eyes wide) and lower lids
            tense (up), mouth corners stretched sideways and down, jaw (19) and lower lip slightly
            open
happy       mouth corners up and out (the smile group), cheeks up, lower lids up (squint), lower lip
            a little up
neutral     zero: the resting face
sad         inner brows up (brows up and in, glabella up), upper lids a little down, mouth corners
            down and in, lower lip pushed up (pout)
surprise    brows and forehead (0) up, glabella up, upper lids up and lower lids down (eyes wide),
            jaw open, lower lip down, mouth corners in
contempt    asymmetric: the left mouth corner (20) pulled back (+z), a little out and up, the lower
            lip (17) drawn towards it, the left cheek (7) a little up
==========  =====================================================================================

The magnitudes are those of a clear but not extreme expression (the jaw opens 0.055 at full speech
energy in models.procedural); :func:`apply_emotion_template` adds the weighted templates to a take,
so any motion (procedural or keyed) reacts to the emotion curve.

Speech moves the jaw and lips, which would read as "surprise" (an open jaw), fear or disgust (a
wide mouth, a lifted upper lip) frame after frame, so :func:`auto_emotion` by default ignores the
jaw and lip opening (:data:`SPEECH_DIMS`), takes out what is faster than an expression (a running
median: syllables, blinks) and, in a take that speaks, measures the other lip dims
(:data:`SPEECH_MOVED_DIMS`) from the take's own median mouth (:func:`remove_speech`); each emotion
is then also scored without the lip dims, so a take that is happy throughout still reads happy
from its cheeks and eyes. What cannot be told apart from speech: an emotion that lives only in a
speaking mouth for the whole take (contempt's one-sided corner) reads neutral. numpy only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.motion_space import (
    CHANNEL_INDEX,
    CHANNELS,
    EMOTIONS,
    LIPS,
    NUM_KEYPOINTS,
)

__all__ = [
    "EMOTION_TEMPLATES",
    "SPEECH_DIMS",
    "SPEECH_MOVED_DIMS",
    "EmotionDatabase",
    "apply_emotion_template",
    "auto_emotion",
    "emotion_keys",
    "emotion_scores",
    "remove_speech",
    "smooth_weights",
    "speech_activity",
    "template_matrix",
]

_EXP0 = CHANNEL_INDEX["exp_0_x"]
_EMO0 = CHANNEL_INDEX["emotion_angry"]
X, Y, Z = 0, 1, 2


def _template(entries: Sequence[tuple[int, int, float]]) -> np.ndarray:
    """``exp [21, 3]`` from (keypoint, axis, value) entries."""
    e = np.zeros((NUM_KEYPOINTS, 3))
    for k, a, v in entries:
        e[k, a] += v
    e.setflags(write=False)
    return e


# Right-side keypoints sit at -x, left-side at +x: "out" is -x for 14/1/3/13 and +x for 20/2/7/16.
EMOTION_TEMPLATES: dict[str, np.ndarray] = {
    "angry": _template([
        (1, Y, 0.010), (2, Y, 0.010), (1, X, 0.004), (2, X, -0.004), (18, Y, 0.006),
        (13, Y, -0.004), (16, Y, -0.004), (11, Y, 0.002), (15, Y, 0.002),
        (17, Y, -0.004), (6, Y, 0.002), (14, X, 0.003), (20, X, -0.003),
    ]),
    "disgust": _template([
        (6, Y, -0.008), (12, Y, -0.004), (5, Y, -0.002), (1, Y, 0.006), (2, Y, 0.006),
        (3, Y, -0.005), (7, Y, -0.005), (13, Y, -0.005), (16, Y, -0.005),
        (14, Y, 0.005), (20, Y, 0.005), (17, Y, 0.003), (17, Z, -0.003),
    ]),
    "fear": _template([
        (1, Y, -0.006), (2, Y, -0.006), (1, X, 0.006), (2, X, -0.006), (18, Y, -0.003),
        (11, Y, -0.008), (15, Y, -0.008), (13, Y, -0.003), (16, Y, -0.003),
        (14, X, -0.010), (20, X, 0.010), (14, Y, 0.006), (20, Y, 0.006),
        (19, Y, 0.012), (17, Y, 0.005),
    ]),
    "happy": _template([
        (14, X, -0.012), (20, X, 0.012), (14, Y, -0.012), (20, Y, -0.012),
        (3, Y, -0.008), (7, Y, -0.008), (13, Y, -0.006), (16, Y, -0.006), (17, Y, -0.002),
    ]),
    "neutral": _template([]),
    "sad": _template([
        (1, Y, -0.006), (2, Y, -0.006), (1, X, 0.003), (2, X, -0.003), (18, Y, -0.005),
        (11, Y, 0.004), (15, Y, 0.004), (14, Y, 0.010), (20, Y, 0.010),
        (14, X, 0.003), (20, X, -0.003), (17, Y, -0.004),
    ]),
    "surprise": _template([
        (1, Y, -0.015), (2, Y, -0.015), (0, Y, -0.004), (18, Y, -0.006),
        (11, Y, -0.006), (15, Y, -0.006), (13, Y, 0.003), (16, Y, 0.003),
        (19, Y, 0.030), (17, Y, 0.012), (14, X, 0.004), (20, X, -0.004),
    ]),
    "contempt": _template([
        (20, Z, 0.010), (20, X, 0.004), (20, Y, -0.004), (7, Y, -0.002), (17, X, 0.003),
    ]),
}  # fmt: skip
assert tuple(EMOTION_TEMPLATES) == EMOTIONS

# Flat exp dims (k * 3 + axis) that speech drives: jaw open and lower lip (LIP_OPEN, along y).
SPEECH_DIMS: tuple[int, ...] = (19 * 3 + Y, 17 * 3 + Y)
# What speech moves besides the jaw: every exp dim of the lip keypoints (models.motion_space.LIPS:
# mouth width and rounding, upper lip) and the brows' lift (emphasis). A speaking take's typical
# value there is its own baseline (remove_speech).
SPEECH_MOVED_DIMS: tuple[int, ...] = tuple(k * 3 + a for k in LIPS for a in (X, Y, Z))
_JAW = 19 * 3 + Y


def template_matrix() -> np.ndarray:
    """The templates as ``[8, 63]`` (EMOTIONS order, keypoint-major like the exp channels)."""
    return np.stack([EMOTION_TEMPLATES[e].reshape(-1) for e in EMOTIONS])


def _as_labels(labels: int | str | Sequence[int | str] | np.ndarray, n: int) -> np.ndarray:
    def one(x: int | str) -> int:
        if isinstance(x, str):
            if x not in EMOTIONS:
                raise ValueError(f"unknown emotion {x!r}; choose from {', '.join(EMOTIONS)}")
            return EMOTIONS.index(x)
        i = int(x)
        if not 0 <= i < len(EMOTIONS):
            raise ValueError(f"emotion index {i} out of range 0..{len(EMOTIONS) - 1}")
        return i

    if isinstance(labels, (str, int, np.integer)):
        return np.full(n, one(labels), dtype=np.int64)
    out = np.array([one(x) for x in labels], dtype=np.int64)
    if out.shape != (n,):
        raise ValueError(f"need one label per vector ({n}), got {out.shape[0]}")
    return out


class EmotionDatabase:
    """Labelled expression vectors: ``vectors [N, 63]`` (exp minus neutral), ``labels [N]``
    (indices into EMOTIONS).

    :meth:`default` holds the 7 non-neutral templates (neutral is the zero vector, which has no
    direction; it is scored from the expression's magnitude instead, see :func:`emotion_scores`).
    Extend it with user-labelled takes (:meth:`add`, :meth:`add_take`); save/load as JSON.
    """

    def __init__(self, vectors: np.ndarray | None = None, labels: np.ndarray | None = None):
        self.vectors = np.zeros((0, 63)) if vectors is None else np.asarray(vectors, np.float64)
        self.labels = np.zeros(0, np.int64) if labels is None else np.asarray(labels, np.int64)
        if self.vectors.ndim != 2 or self.vectors.shape[1] != 63:
            raise ValueError(f"vectors must be [N, 63], got {self.vectors.shape}")
        if self.labels.shape != (self.vectors.shape[0],):
            raise ValueError("labels must be [N], one per vector")

    @classmethod
    def default(cls) -> EmotionDatabase:
        """The project's templates (every emotion but neutral)."""
        m = template_matrix()
        keep = [i for i, e in enumerate(EMOTIONS) if e != "neutral"]
        return cls(m[keep], np.array(keep))

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def add(
        self,
        exp: np.ndarray,
        label: int | str | Sequence[int | str],
        min_norm: float = 1e-4,
    ) -> int:
        """Add ``exp [63]``, ``[21, 3]`` or ``[n, 63]`` with a label (or one per row). Rows with
        norm below ``min_norm`` (no direction) and neutral rows are skipped, since neutral is
        scored by magnitude. Returns the number of rows added. Raises ValueError on bad shapes
        or unknown labels."""
        v = np.asarray(exp, dtype=np.float64)
        v = v.reshape(1, 63) if v.shape in ((63,), (21, 3)) else v.reshape(v.shape[0], -1)
        if v.shape[1] != 63 or not np.all(np.isfinite(v)):
            raise ValueError(f"expression vectors must be finite [n, 63], got {np.shape(exp)}")
        lab = _as_labels(label, v.shape[0])
        keep = (np.linalg.norm(v, axis=1) >= min_norm) & (lab != EMOTIONS.index("neutral"))
        self.vectors = np.concatenate([self.vectors, v[keep]])
        self.labels = np.concatenate([self.labels, lab[keep]])
        return int(keep.sum())

    def add_take(
        self,
        take_values: np.ndarray,
        label: int | str,
        neutral_exp: np.ndarray | None = None,
        stride: int = 5,
        min_norm: float = 0.004,
    ) -> int:
        """Add every ``stride``-th frame of a user-labelled take ``[F, C]`` whose expression
        (minus ``neutral_exp [63]``) is at least ``min_norm`` (weak frames carry little of the
        emotion). Returns the number of rows added."""
        exp = _take_exp(take_values, neutral_exp)[::stride]
        return self.add(exp, label, min_norm=min_norm)

    def to_json(self) -> dict:
        return {
            "version": 1,
            "emotions": list(EMOTIONS),
            "vectors": self.vectors.round(7).tolist(),
            "labels": [EMOTIONS[i] for i in self.labels],
        }

    @classmethod
    def from_json(cls, data: dict) -> EmotionDatabase:
        """Inverse of :meth:`to_json`. Raises ValueError for another version or bad data."""
        if data.get("version") != 1:
            raise ValueError(f"emotion database: unsupported version {data.get('version')!r}")
        vec = np.asarray(data["vectors"], dtype=np.float64).reshape(-1, 63)
        return cls(vec, _as_labels(list(data["labels"]), vec.shape[0]))

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EmotionDatabase:
        return cls.from_json(json.loads(Path(path).read_text()))


def _take_exp(take_values: np.ndarray, neutral_exp: np.ndarray | None) -> np.ndarray:
    v = np.asarray(take_values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(CHANNELS):
        raise ValueError(f"take values must be [F, {len(CHANNELS)}], got {v.shape}")
    exp = v[:, _EXP0 : _EXP0 + 63]
    if neutral_exp is not None:
        exp = exp - np.asarray(neutral_exp, dtype=np.float64).reshape(1, 63)
    return exp


def _cosine_scores(
    e: np.ndarray, db: EmotionDatabase, neutral_radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best cosine per emotion ``[F, 8]`` (-1 without entries), scaled by the confidence
    ``min(|e| / neutral_radius, 1)``, and the frame norms ``[F]``."""
    vec = db.vectors
    en = np.linalg.norm(e, axis=1)  # [F]
    vn = np.linalg.norm(vec, axis=1)  # [N]
    cos = (e @ vec.T) / (np.maximum(en, 1e-12)[:, None] * np.maximum(vn, 1e-12)[None, :])
    cos[:, vn < 1e-12] = -1.0
    scores = np.full((e.shape[0], len(EMOTIONS)), -1.0)
    for c in range(len(EMOTIONS)):
        sel = db.labels == c
        if sel.any():
            scores[:, c] = cos[:, sel].max(axis=1)
    return scores * np.minimum(en / neutral_radius, 1.0)[:, None], en


def emotion_scores(
    exp: np.ndarray,
    database: EmotionDatabase | None = None,
    ignore: Sequence[int] = SPEECH_DIMS,
    neutral_radius: float = 0.01,
    relative_dims: Sequence[int] = (),
) -> np.ndarray:
    """Per-frame similarity to each emotion: ``exp [F, 63]`` (minus neutral) -> ``[F, 8]``.

    Emotion c scores the best cosine similarity between the frame and c's database entries
    (ConsistentAvatar's nearest entry), -1 when c has none, times the confidence
    ``min(|exp| / neutral_radius, 1)`` (a near-rest frame points nowhere in particular). Neutral
    scores ``1 - 2 * min(|exp| / neutral_radius, 1)``: 1 at rest, -1 from ``neutral_radius`` on
    (the zero vector has no direction). Dims in ``ignore`` (flat exp indices) are left out of
    all of it.

    ``relative_dims``: dims measured from the take's own typical value rather than from rest
    (:func:`remove_speech`), so an offset that lasts the whole take is gone there; each emotion
    then also scores the cosine without those dims, and keeps the better of the two.
    """
    db = database or EmotionDatabase.default()
    e = np.asarray(exp, dtype=np.float64).reshape(-1, 63).copy()
    vec = db.vectors.copy()
    if len(ignore):
        e[:, list(ignore)] = 0.0
        vec[:, list(ignore)] = 0.0
    scores, en = _cosine_scores(e, EmotionDatabase(vec, db.labels), neutral_radius)
    rel = sorted(set(relative_dims) - set(ignore))
    if rel and len(db):
        e[:, rel] = 0.0
        vec[:, rel] = 0.0
        # Entries that live mostly in the relative dims (contempt: one mouth corner) would
        # match any faint rest of them; they keep only their full score.
        full = np.linalg.norm(db.vectors, axis=1)
        keep = np.linalg.norm(vec, axis=1) >= 0.5 * np.maximum(full, 1e-12)
        vec[~keep] = 0.0
        scores = np.maximum(scores, _cosine_scores(e, EmotionDatabase(vec, db.labels),
                                                   neutral_radius)[0])  # fmt: skip
    scores[:, EMOTIONS.index("neutral")] = 1.0 - 2.0 * np.minimum(en / neutral_radius, 1.0)
    return scores


def smooth_weights(weights: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing of ``weights [F, K]`` over frames (edge-held), rows
    renormalised to sum 1. ``sigma`` in frames; 0 returns a copy."""
    w = np.asarray(weights, dtype=np.float64)
    if sigma <= 0 or w.shape[0] < 2:
        return w.copy()
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(w, ((r, r), (0, 0)), mode="edge")
    out = np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(w.shape[1])], axis=1)
    return out / out.sum(axis=1, keepdims=True)


def _running_median(x: np.ndarray, frames: int) -> np.ndarray:
    """Centred running median of ``x [F, D]`` over ``frames`` (odd) frames, edge-held."""
    if frames < 2 or x.shape[0] < 2:
        return x.copy()
    r = frames // 2
    pad = np.pad(x, ((r, r), (0, 0)), mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * r + 1, axis=0)  # [F, D, 2r+1]
    return np.median(win, axis=2)


def speech_activity(exp: np.ndarray) -> float:
    """How much a take ``exp [F, 63]`` speaks, 0..1: the 10-90 % range of its jaw opening over
    0.01 (a fifth of the procedural jaw's full opening), capped at 1."""
    e = np.asarray(exp, dtype=np.float64).reshape(-1, 63)
    if e.shape[0] == 0:
        return 0.0
    lo, hi = np.percentile(e[:, _JAW], [10, 90])
    return float(min(max((hi - lo) / 0.01, 0.0), 1.0))


def remove_speech(
    exp: np.ndarray,
    speech_dims: Sequence[int] = SPEECH_MOVED_DIMS,
    median_frames: int = 9,
    baseline: np.ndarray | None = None,
) -> np.ndarray:
    """What speech drives, taken out of a take's expression ``exp [F, 63]`` -> ``[F, 63]``.

    Two steps: a centred running median over ``median_frames`` frames (9 = 0.36 s at 25 fps)
    removes what is faster than an expression (syllable-rate mouth movement, blinks); then the
    take's own median over time (or ``baseline [63]``) is subtracted on ``speech_dims`` only, so
    the typical speaking mouth (open, a little wide, upper lip lifted, brows lifting with
    emphasis) becomes the reference there. Elsewhere (eyes, cheeks, glabella) the expression
    stays a delta from the head's rest, so a take that is happy from start to end still reads
    happy from its cheeks and lower lids. The take's median is subtracted in proportion to how
    much the jaw moves (its 10-90 % range over 0.01, capped at 1): a take that does not speak
    keeps its mouth as it is.
    """
    e = np.asarray(exp, dtype=np.float64).reshape(-1, 63)
    out = _running_median(e, int(median_frames) | 1)
    dims = list(speech_dims)
    if dims and out.shape[0]:
        if baseline is None:
            ref = np.median(out, axis=0) * speech_activity(e)
        else:
            ref = np.asarray(baseline, dtype=np.float64).reshape(63)
        out[:, dims] -= ref[dims]
    return out


def auto_emotion(
    take_values: np.ndarray,
    database: EmotionDatabase | None = None,
    temperature: float = 0.1,
    smooth_frames: float = 6.0,
    neutral_exp: np.ndarray | None = None,
    ignore: Sequence[int] = SPEECH_DIMS,
    neutral_radius: float = 0.01,
    speech_dims: Sequence[int] = SPEECH_MOVED_DIMS,
    median_frames: int = 9,
) -> np.ndarray:
    """Emotion weights per frame of a take: ``take_values [F, C]`` -> ``[F, 8]`` (rows sum to 1,
    EMOTIONS order).

    The take's exp (minus ``neutral_exp [63]``, default zeros: motion-space exp is already a delta
    from the head's rest) has what speech drives removed (:func:`remove_speech` with
    ``speech_dims`` and ``median_frames``; pass ``()`` and 1 to score the raw expression), is
    scored by :func:`emotion_scores`, turned into weights by ``softmax(scores / temperature)``
    and smoothed over ``smooth_frames`` (Gaussian sigma). Without the speech removal a neutral
    speaking take reads as fear/disgust/happy (its open, wide mouth), never neutral.
    Raises ValueError on a wrong shape or a non-positive temperature.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    raw = _take_exp(take_values, neutral_exp)
    exp = remove_speech(raw, speech_dims, median_frames)
    # The speech dims became relative to the take only if it speaks (remove_speech).
    relative = speech_dims if speech_activity(raw) >= 0.5 else ()
    s = emotion_scores(exp, database, ignore, neutral_radius, relative) / temperature
    s -= s.max(axis=1, keepdims=True)
    w = np.exp(s)
    w /= w.sum(axis=1, keepdims=True)
    return smooth_weights(w, smooth_frames)


def emotion_keys(weights: np.ndarray, tolerance: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a per-frame emotion curve ``[F, 8]`` to keys ``(frames [K] int, values [K, 8])``.

    Linear interpolation between consecutive keys stays within ``tolerance`` (max abs weight
    error) of the curve at every frame (Ramer-Douglas-Peucker on the 8-D curve); the first and
    last frames are always keys.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] == 0:
        raise ValueError(f"weights must be [F > 0, K], got {w.shape}")
    F = w.shape[0]
    keep = np.zeros(F, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, F - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        t = (np.arange(a + 1, b) - a) / (b - a)
        interp = w[a] + t[:, None] * (w[b] - w[a])
        err = np.abs(interp - w[a + 1 : b]).max(axis=1)
        j = int(np.argmax(err))
        if err[j] > tolerance:
            m = a + 1 + j
            keep[m] = True
            stack += [(a, m), (m, b)]
    frames = np.flatnonzero(keep)
    return frames, w[frames].copy()


def apply_emotion_template(
    values: np.ndarray,
    weights: np.ndarray | None = None,
    strength: float = 1.0,
    templates: np.ndarray | None = None,
) -> np.ndarray:
    """Add the emotion templates, weighted by the emotion curve, to a take's expression.

    values: ``[F, C]`` motion channels. weights: ``[F, 8]`` or ``[8]`` (EMOTIONS order); default:
    the take's own ``emotion_*`` channels. When given, they are also written into the emotion
    channels. templates: ``[8, 63]`` (default :func:`template_matrix`). Returns a new ``[F, C]``
    array: ``exp += strength * weights @ templates``. Raises ValueError on wrong shapes.
    """
    v = np.array(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(CHANNELS):
        raise ValueError(f"values must be [F, {len(CHANNELS)}], got {v.shape}")
    emo = slice(_EMO0, _EMO0 + len(EMOTIONS))
    if weights is None:
        w = v[:, emo]
    else:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (v.shape[0], len(EMOTIONS)))
        v[:, emo] = w
    m = template_matrix() if templates is None else np.asarray(templates, dtype=np.float64)
    if m.shape != (len(EMOTIONS), 63):
        raise ValueError(f"templates must be [8, 63], got {m.shape}")
    v[:, _EXP0 : _EXP0 + 63] += strength * (w @ m)
    return v
