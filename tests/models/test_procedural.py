import numpy as np
import pytest

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS
from models.procedural import audio_envelope, procedural_motion

FPS = 25
SR = 16000


def _syllables(seconds=4.0, rate_hz=4.0):
    """Amplitude-modulated noise: bursts of 'speech' at a syllable rate, with pauses."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(0)
    envelope = np.clip(np.sin(2 * np.pi * rate_hz * t), 0, None) ** 2
    envelope[(t > 1.5) & (t < 2.2)] = 0.0  # a pause
    return (0.3 * envelope * rng.normal(size=t.size)).astype(np.float32), envelope


def test_envelope_follows_the_audio():
    audio, envelope = _syllables()
    frames = int(4.0 * FPS)
    energy, bright = audio_envelope(audio, SR, FPS, frames)
    assert energy.shape == bright.shape == (frames,)
    frame_env = envelope[(np.arange(frames) * SR // FPS)]
    assert np.corrcoef(energy, frame_env)[0, 1] > 0.6
    assert energy[int(1.7 * FPS) : int(2.1 * FPS)].max() < 0.05  # the pause is quiet


def test_mouth_opens_with_speech_and_blinks_happen():
    audio, _ = _syllables()
    motion = procedural_motion(audio, SR, FPS, int(4.0 * FPS), seed=3)
    assert motion.shape == (100, len(CHANNELS)) and np.isfinite(motion).all()
    jaw = motion[:, CHANNEL_INDEX["exp_19_y"]]
    assert jaw.max() > 0.03 and jaw[int(1.8 * FPS) : int(2.0 * FPS)].max() < 0.01
    eye = motion[:, CHANNEL_INDEX["eye_open_r"]]
    assert eye.min() < 0.2 and np.median(eye) == 1.0
    assert np.abs(motion[:, CHANNEL_INDEX["yaw"]]).max() > 0.2


def test_deterministic_for_a_seed_and_idle_without_audio():
    a = procedural_motion(None, SR, FPS, 60, seed=5)
    b = procedural_motion(None, SR, FPS, 60, seed=5)
    np.testing.assert_array_equal(a, b)
    assert np.all(a[:, CHANNEL_INDEX["exp_19_y"]] == 0.0)
    emotion = slice(CHANNEL_INDEX["emotion_angry"], CHANNEL_INDEX["emotion_contempt"] + 1)
    np.testing.assert_array_equal(a[:, emotion], np.tile(CHANNEL_DEFAULTS[emotion], (60, 1)))


def test_bad_audio_is_rejected():
    with pytest.raises(ValueError, match="mono"):
        procedural_motion(np.zeros((10, 2)), SR, FPS, 10)
    with pytest.raises(ValueError, match="NaN"):
        procedural_motion(np.full(1000, np.nan), SR, FPS, 10)
    with pytest.raises(ValueError, match="positive"):
        procedural_motion(None, SR, FPS, 0)
