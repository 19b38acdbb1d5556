from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from models.motion_space import CHANNEL_INDEX, CHANNELS, EMOTIONS, JAW_OPEN_CHANNEL
from models.speech_data import (
    FPS,
    SAMPLE_RATE,
    EspeakError,
    Phoneme,
    generate_clip,
    generate_dataset,
    lip_gap,
    phoneme_visemes,
    random_sentence,
    synthesize,
    viseme_motion,
)


def _espeak_ok() -> bool:
    try:
        synthesize("a")
    except EspeakError:
        return False
    return True


needs_espeak = pytest.mark.skipif(not _espeak_ok(), reason="espeak-ng library not available")


@pytest.fixture(scope="module")
def clips():
    return [generate_clip(seed=3, index=k) for k in range(3)]


@needs_espeak
def test_mouth_opens_on_vowels_and_closes_on_bilabials(clips) -> None:
    n_closures = n_vowels = 0
    for clip in clips:
        gap, jaw = lip_gap(clip.motion), clip.motion[:, CHANNEL_INDEX[JAW_OPEN_CHANNEL]]
        F = clip.motion.shape[0]
        for p in clip.phonemes:
            f = min(int((p.start + p.end) / 2 * FPS), F - 1)
            if p.viseme == "PP":  # p, b, m: lips closed on the frame of the closure
                assert gap[f] < 0.0, (clip.text, p)
                n_closures += 1
            if p.viseme in ("aa", "oh") and p.end - p.start >= 0.06:
                assert gap[f] > 0.008 and jaw[f] > 0.015, (clip.text, p)
                n_vowels += 1
        speech = [p for p in clip.phonemes if p.viseme != "sil"]
        # Before the speech starts the mouth rests.
        f0 = int(speech[0].start * FPS) - 4
        if f0 >= 0:
            assert abs(jaw[f0]) < 0.004
    assert n_closures >= 3 and n_vowels >= 3


@needs_espeak
def test_lengths_and_determinism(clips) -> None:
    for clip in clips:
        F = clip.motion.shape[0]
        assert clip.motion.shape == (F, len(CHANNELS))
        assert F == int(np.ceil(clip.audio.size / (SAMPLE_RATE // FPS)))
        assert np.all(np.isfinite(clip.motion)) and np.all(np.isfinite(clip.audio))
        assert clip.phonemes[-1].end <= clip.audio.size / SAMPLE_RATE + 1e-9
        np.testing.assert_allclose(clip.motion[:, CHANNEL_INDEX["emotion_angry"] :].sum(1), 1.0)
    again = generate_clip(seed=3, index=1)
    np.testing.assert_array_equal(again.audio, clips[1].audio)
    np.testing.assert_array_equal(again.motion, clips[1].motion)
    assert again.phonemes == clips[1].phonemes
    other = generate_clip(seed=4, index=1)
    assert other.text != clips[1].text or other.audio.size != clips[1].audio.size


@needs_espeak
def test_dataset_layout(tmp_path) -> None:
    manifest = json.loads(generate_dataset(tmp_path / "ds", 2, seed=7).read_text())
    assert manifest["fps"] == FPS and manifest["channels"] == list(CHANNELS)
    assert [c["id"] for c in manifest["clips"]] == ["clip_000000", "clip_000001"]
    for c in manifest["clips"]:
        base = tmp_path / "ds" / "clips" / c["id"]
        motion = np.load(f"{base}.motion.npy")
        with wave.open(f"{base}.wav") as w:
            assert w.getframerate() == SAMPLE_RATE and w.getnframes() == c["num_samples"]
        meta = json.loads(base.with_suffix(".json").read_text())
        assert motion.shape == (c["num_frames"], len(CHANNELS)) and motion.dtype == np.float32
        assert meta["phonemes"] and {"symbol", "viseme", "start", "end"} <= set(meta["phonemes"][0])
    assert manifest["clips"][0]["emotion"]["start"] in EMOTIONS


def test_viseme_table_and_coarticulation() -> None:
    assert phoneme_visemes("m") == ("PP",) and phoneme_visemes("_:") == ("sil",)
    assert phoneme_visemes("aI") == ("aa", "ih") and phoneme_visemes("aI2") == ("aa", "ih")
    assert phoneme_visemes("Q") == ("nn",)  # unknown consonant: neutral shape
    # "a m a": open, closed, open; rounding anticipates an "u" ahead of it.
    ph = [
        Phoneme("_", "sil", 0.0, 0.10),
        Phoneme("a", "aa", 0.10, 0.30),
        Phoneme("m", "PP", 0.30, 0.36),
        Phoneme("a", "aa", 0.36, 0.56),
        Phoneme("t", "DD", 0.56, 0.62),
        Phoneme("u:", "ou", 0.62, 0.82),
    ]
    m = viseme_motion(ph, 25)
    gap = m[:, 1] - m[:, 2]
    assert gap[5] > 0.01 and gap[8] < 0 and gap[11] > 0.01
    assert m[8, 6] > 0.5  # closure share on the "m"
    assert m[15, 3] < 0  # corners already pulled in (rounding) during the "t" before "u:"
    assert m[0, 0] < 0.2 * m[5, 0]  # rest in the silence before the speech


def test_random_sentence_is_deterministic() -> None:
    a = [random_sentence(np.random.default_rng(1)) for _ in range(2)]
    assert a[0] == a[1] and a[0][-1] in ".!?"
