from __future__ import annotations

import numpy as np
import pytest

from models.emotion import (
    EMOTION_TEMPLATES,
    SPEECH_DIMS,
    EmotionDatabase,
    apply_emotion_template,
    auto_emotion,
    emotion_keys,
    emotion_scores,
    template_matrix,
)
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, EMOTIONS

EXP0 = CHANNEL_INDEX["exp_0_x"]


def take_with_exp(exp: np.ndarray) -> np.ndarray:
    """A take [F, C] whose exp channels are ``exp [F, 63]``."""
    v = np.tile(CHANNEL_DEFAULTS, (exp.shape[0], 1))
    v[:, EXP0 : EXP0 + 63] = exp
    return v


@pytest.mark.parametrize("name", EMOTIONS)
def test_each_template_is_classified_as_itself(name: str) -> None:
    exp = np.tile(EMOTION_TEMPLATES[name].reshape(1, 63), (10, 1))
    w = auto_emotion(take_with_exp(exp))
    assert w.shape == (10, 8)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert np.all(w.argmax(axis=1) == EMOTIONS.index(name))
    assert w[:, EMOTIONS.index(name)].min() > 0.5


def test_templates_are_mutually_distinct() -> None:
    m = template_matrix()
    nz = [i for i, e in enumerate(EMOTIONS) if e != "neutral"]
    u = m[nz] / np.linalg.norm(m[nz], axis=1, keepdims=True)
    cos = u @ u.T
    assert np.all(cos[~np.eye(len(nz), dtype=bool)] < 0.6)


@pytest.mark.parametrize("a, b", [("happy", "surprise"), ("angry", "disgust"), ("sad", "fear")])
def test_blend_is_classified_as_a_blend(a: str, b: str) -> None:
    # Equal parts of each direction (cosine similarity sees directions, not magnitudes) outside
    # the speech dims, which auto_emotion ignores.
    ta, tb = (EMOTION_TEMPLATES[e].reshape(-1).copy() for e in (a, b))
    ta[list(SPEECH_DIMS)] = tb[list(SPEECH_DIMS)] = 0.0
    exp = 0.015 * (ta / np.linalg.norm(ta) + tb / np.linalg.norm(tb))
    w = auto_emotion(take_with_exp(np.tile(exp.reshape(1, 63), (5, 1))))[0]
    top2 = set(np.argsort(w)[-2:])
    assert top2 == {EMOTIONS.index(a), EMOTIONS.index(b)}
    wa, wb = w[EMOTIONS.index(a)], w[EMOTIONS.index(b)]
    assert min(wa, wb) > 0.25 and max(wa, wb) / min(wa, wb) < 2.0
    # A pure template is not a blend.
    pure = auto_emotion(take_with_exp(np.tile(ta.reshape(1, 63), (5, 1))))[0]
    assert pure.max() > 0.8


def test_transition_gives_a_smooth_curve_and_few_keys() -> None:
    F = 100
    a = np.linspace(0, 1, F)[:, None]
    exp = (1 - a) * EMOTION_TEMPLATES["sad"].reshape(1, 63) + a * EMOTION_TEMPLATES[
        "angry"
    ].reshape(1, 63)
    w = auto_emotion(take_with_exp(exp))
    assert w[0].argmax() == EMOTIONS.index("sad") and w[-1].argmax() == EMOTIONS.index("angry")
    assert np.abs(np.diff(w, axis=0)).max() < 0.2
    frames, values = emotion_keys(w, tolerance=0.05)
    assert frames[0] == 0 and frames[-1] == F - 1 and len(frames) < F // 4
    interp = np.stack([np.interp(np.arange(F), frames, values[:, j]) for j in range(8)], axis=1)
    assert np.abs(interp - w).max() <= 0.05 + 1e-12


def test_neutral_and_speech_dims() -> None:
    rest = np.zeros((3, 63))
    assert np.all(auto_emotion(take_with_exp(rest)).argmax(axis=1) == EMOTIONS.index("neutral"))
    # An open jaw alone (speech) is not read as surprise.
    jaw = np.zeros((3, 63))
    jaw[:, 19 * 3 + 1] = 0.05
    assert np.all(auto_emotion(take_with_exp(jaw)).argmax(axis=1) == EMOTIONS.index("neutral"))


def test_database_extension_and_round_trip(tmp_path) -> None:
    db = EmotionDatabase.default()
    n0 = len(db)
    custom = np.zeros(63)
    custom[0 * 3 + 2] = 0.01  # an odd expression, labelled happy by a user
    take = take_with_exp(np.tile(custom, (20, 1)))
    assert db.add_take(take, "happy", stride=5) == 4
    assert len(db) == n0 + 4
    s = emotion_scores(custom[None], db)
    assert s[0].argmax() == EMOTIONS.index("happy")
    db.save(tmp_path / "db.json")
    db2 = EmotionDatabase.load(tmp_path / "db.json")
    np.testing.assert_allclose(db2.vectors, db.vectors, atol=1e-7)
    np.testing.assert_array_equal(db2.labels, db.labels)
    with pytest.raises(ValueError, match="unknown emotion"):
        db.add(custom, "bored")


def test_apply_emotion_template() -> None:
    F = 4
    v = np.tile(CHANNEL_DEFAULTS, (F, 1))
    w = np.zeros((F, 8))
    w[:, EMOTIONS.index("happy")] = np.linspace(0, 1, F)
    w[:, EMOTIONS.index("neutral")] = 1 - np.linspace(0, 1, F)
    out = apply_emotion_template(v, w)
    np.testing.assert_allclose(
        out[-1, EXP0 : EXP0 + 63], EMOTION_TEMPLATES["happy"].reshape(-1), atol=1e-12
    )
    np.testing.assert_allclose(out[0, EXP0 : EXP0 + 63], 0.0)
    np.testing.assert_allclose(out[:, CHANNEL_INDEX["emotion_happy"]], w[:, 3])
    # Default weights: the take's own emotion channels; the template round-trips through
    # auto_emotion.
    again = apply_emotion_template(out)
    assert auto_emotion(again)[-1].argmax() == EMOTIONS.index("happy")
    with pytest.raises(ValueError):
        apply_emotion_template(v[:, :10])


def _speaking_take(seconds: float = 8.0, seed: int = 1) -> np.ndarray:
    """A procedural take [F, C] over speech-like audio: syllable bursts of random loudness."""
    from models.procedural import procedural_motion

    sr, fps = 16000, 25.0
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    loud = np.repeat(rng.uniform(0.2, 1.0, int(seconds * 4) + 1), sr // 4)[: t.size]
    audio = 0.3 * loud * np.sign(np.sin(2 * np.pi * 150 * t)) * (np.sin(2 * np.pi * 4 * t) > 0)
    return procedural_motion(audio, sr, fps, int(seconds * fps), seed=seed)


def test_a_neutral_speaking_take_reads_neutral() -> None:
    take = _speaking_take()
    w = auto_emotion(take)
    mean = w.mean(axis=0)
    assert mean.argmax() == EMOTIONS.index("neutral") and mean[EMOTIONS.index("neutral")] > 0.7
    for other in ("surprise", "fear", "disgust"):
        assert mean[EMOTIONS.index(other)] < 0.1, other
    # Without the speech removal the open, wide mouth reads as anything but neutral.
    raw = auto_emotion(take, speech_dims=(), median_frames=1).mean(axis=0)
    assert raw[EMOTIONS.index("neutral")] < 0.2


@pytest.mark.parametrize("name", [e for e in EMOTIONS if e not in ("neutral", "contempt")])
def test_a_speaking_take_with_an_emotion_reads_that_emotion(name: str) -> None:
    take = _speaking_take()
    F = take.shape[0]
    whole = np.zeros(8)
    whole[EMOTIONS.index(name)] = 1.0
    mean = auto_emotion(apply_emotion_template(take, whole)).mean(axis=0)
    assert mean.argmax() == EMOTIONS.index(name) and mean.max() > 0.6
    # A range of it inside a neutral take: that range reads the emotion, the rest neutral.
    w = np.zeros((F, 8))
    w[:, EMOTIONS.index("neutral")] = 1.0
    w[80:140] = whole
    got = auto_emotion(apply_emotion_template(take, w))
    assert got[90:130].mean(axis=0).argmax() == EMOTIONS.index(name)
    assert got[90:130, EMOTIONS.index(name)].mean() > 0.6
    assert got[:60].mean(axis=0).argmax() == EMOTIONS.index("neutral")
    assert got[165:].mean(axis=0).argmax() == EMOTIONS.index("neutral")
