from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from models.motion_space import CHANNEL_INDEX, CHANNELS, EMOTIONS, JAW_OPEN_CHANNEL
from models.speech_data import (
    FPS,
    SAMPLE_RATE,
    Phoneme,
    espeak_available,
    generate_clip,
    generate_dataset,
    lip_gap,
    phoneme_visemes,
    pitch_track,
    prosodic_head_motion,
    random_sentence,
    syllable_accents,
    viseme_motion,
)

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng library not available")


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


# --- head motion that follows the speech ---------------------------------------------------------
def _tone(f0: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return amp * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))


def test_pitch_track_finds_a_tone_and_not_silence() -> None:
    audio = np.concatenate([np.zeros(SAMPLE_RATE // 2), _tone(150.0, 1.0), np.zeros(SAMPLE_RATE)])
    F = int(np.ceil(audio.size / (SAMPLE_RATE // FPS)))
    f0 = pitch_track(audio, SAMPLE_RATE, FPS, F)
    voiced = f0[16:35]  # well inside the tone (frames 12.5..37.5)
    np.testing.assert_allclose(voiced, 150.0, rtol=0.03)
    assert np.all(f0[:10] == 0) and np.all(f0[-20:] == 0)


def _toy_utterance():
    """Three vowels, the middle one louder and higher, a pause, then one more vowel."""
    parts = [np.zeros(4000), _tone(120, 0.15, 0.1), np.zeros(1600), _tone(180, 0.2, 0.4),
             np.zeros(1600), _tone(120, 0.15, 0.1), np.zeros(8000), _tone(130, 0.15, 0.15),
             np.zeros(4000)]  # fmt: skip
    audio = np.concatenate(parts)
    edges = np.cumsum([0] + [p.size for p in parts]) / SAMPLE_RATE
    syms = ["_", "a", "t", "a", "t", "a", "_", "E", "_"]
    phon = [Phoneme(s, phoneme_visemes(s)[0], edges[k], edges[k + 1]) for k, s in enumerate(syms)]
    return audio, phon


def test_accents_follow_loudness_pitch_and_phrases() -> None:
    audio, phon = _toy_utterance()
    F = int(np.ceil(audio.size / (SAMPLE_RATE // FPS)))
    acc = syllable_accents(phon, audio, SAMPLE_RATE, FPS, F)
    assert len(acc) == 4
    s = [a["strength"] for a in acc]
    assert s[1] > s[2] and acc[1]["pitch_accent"] > acc[2]["pitch_accent"]
    # Phrase starts: the first vowel, and the first after the 0.5 s pause.
    assert [a["phrase_start"] for a in acc] == [True, False, False, True]
    assert s[0] >= 0.6 and s[3] >= 0.6


def test_prosodic_head_moves_on_accents_and_changes_only_head_brows_lids() -> None:
    from models.procedural import ProceduralStyle

    audio, phon = _toy_utterance()
    F = int(np.ceil(audio.size / (SAMPLE_RATE // FPS)))
    base = np.tile(np.asarray(CHANNELS, dtype=object) == CHANNELS[0], (F, 1)).astype(float)
    style = ProceduralStyle(sway_deg=2.0, nod_deg=3.0)
    out, info = prosodic_head_motion(base, phon, audio, np.random.default_rng(0), style)
    again, _ = prosodic_head_motion(base, phon, audio, np.random.default_rng(0), style)
    np.testing.assert_array_equal(out, again)
    assert info["accents"] >= 3
    head = out[:, [CHANNEL_INDEX[c] for c in ("pitch", "yaw", "roll")]]
    speed = np.abs(np.diff(head, axis=0)).sum(axis=1)
    # Faster around the accented vowels than in the leading silence (only idle sway there).
    first = int(phon[1].start * FPS)
    assert speed[first - 3 : first + 12].mean() > 3 * speed[: first - 4].mean()
    # Only head, brows and eyelids change; the mouth is left alone.
    changed = np.flatnonzero(np.any(out != base, axis=0))
    allowed = {"pitch", "yaw", "roll", "eye_open_r", "eye_open_l"} | {
        f"exp_{k}_y" for k in (1, 2, 11, 13, 15, 16)
    }
    assert {CHANNELS[c] for c in changed} <= allowed


@needs_espeak
def test_prosody_head_keeps_everything_else(clips) -> None:
    clip = generate_clip(seed=3, index=0, head="prosody")
    ref = clips[0]
    np.testing.assert_array_equal(clip.audio, ref.audio)
    assert clip.meta["head"] == "prosody" and ref.meta["head"] == "random"
    mouth = [CHANNEL_INDEX[c] for c in (JAW_OPEN_CHANNEL, "exp_17_y", "exp_6_y", "exp_14_x")]
    np.testing.assert_array_equal(clip.motion[:, mouth], ref.motion[:, mouth])
    assert not np.allclose(
        clip.motion[:, CHANNEL_INDEX["yaw"]], ref.motion[:, CHANNEL_INDEX["yaw"]]
    )
    with pytest.raises(ValueError, match="head"):
        generate_clip(seed=3, index=0, head="nodding")
