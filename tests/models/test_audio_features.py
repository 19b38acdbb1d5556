"""Audio features at 25 fps: framing, resampling, bad audio, chunking, local HuBERT."""

from __future__ import annotations

import numpy as np
import pytest

from models.audio_features import (
    AudioFeatureExtractor,
    AudioInputError,
    HubertFeatures,
    LogMelFeatures,
    features_for_model,
    num_frames,
    prepare_audio,
)


def tone(seconds: float, sr: int, hz: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize(("samples", "sr", "frames"), [
    (16000, 16000, 25), (16001, 16000, 26), (640, 16000, 1), (10, 16000, 1),
    (48000, 48000, 25), (44100 * 2, 44100, 50), (639, 16000, 1), (1281, 16000, 3),
])  # fmt: skip
def test_frame_count(samples, sr, frames):
    assert num_frames(samples, sr) == frames
    out = LogMelFeatures()(np.zeros(samples, np.float32), sr)
    assert out.shape == (frames, 80) and out.dtype == np.float32


def test_protocol_and_dims():
    ext = LogMelFeatures()
    assert isinstance(ext, AudioFeatureExtractor)
    assert ext.dim == 80 and ext.fps == 25
    assert LogMelFeatures(deltas=True).dim == 240
    assert LogMelFeatures(n_mels=40, deltas=True)(tone(1, 16000), 16000).shape == (25, 120)


def test_burst_lands_in_its_frame():
    sr = 16000
    x = np.zeros(sr * 2, np.float32)
    k = 17  # frame 17 = [0.68, 0.72) s
    x[k * 640 : (k + 1) * 640] = tone(0.04, sr, 1000.0)
    energy = LogMelFeatures()(x, sr).max(axis=1)
    assert int(np.argmax(energy)) == k


def test_48k_stereo_matches_16k_mono():
    a16 = tone(1.0, 16000, 300.0)
    a48 = tone(1.0, 48000, 300.0)
    stereo = np.stack([a48, a48], axis=1)
    ext = LogMelFeatures()
    f16, f48, fst = ext(a16, 16000), ext(a48, 48000), ext(stereo, 48000)
    np.testing.assert_allclose(fst, f48, rtol=1e-5, atol=1e-5)
    inner = slice(2, -2)  # the resampler's edge transients stay out
    loud = f16[inner] > f16.max() - 8  # bands holding the tone (within e^8 of the peak)
    assert loud.sum() > 20
    np.testing.assert_allclose(f48[inner][loud], f16[inner][loud], atol=0.05)


def test_int16_is_scaled():
    x = tone(0.5, 16000)
    pcm = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(prepare_audio(pcm, 16000), x, atol=1e-4)


def test_silence_is_finite_and_constant():
    out = LogMelFeatures(floor=1e-6)(np.zeros(8000, np.float32), 16000)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, np.log(1e-6), atol=1e-6)


def test_clipped_audio_is_processed():
    x = np.clip(tone(1.0, 16000, amp=5.0), -1.0, 1.0)
    over = tone(1.0, 16000, amp=5.0)  # beyond [-1, 1]: processed as is
    for a in (x, over):
        assert np.all(np.isfinite(LogMelFeatures(deltas=True)(a, 16000)))


@pytest.mark.parametrize(("audio", "sr", "msg"), [
    (np.array([0.0, np.nan, 0.0]), 16000, "NaN"),
    (np.array([0.0, np.inf]), 16000, "NaN/inf"),
    (np.zeros(0), 16000, "empty"),
    (np.zeros(100), 0, "sample rate"),
    (np.zeros(100), 44100.5, "sample rate"),
    (np.zeros((2, 1000)), 16000, "channel-first"),
    (np.zeros((2, 2, 2)), 16000, "samples"),
    (np.array(["a"]), 16000, "dtype"),
])  # fmt: skip
def test_bad_audio_raises(audio, sr, msg):
    with pytest.raises(AudioInputError, match=msg):
        LogMelFeatures()(audio, sr)


def test_chunked_equals_whole():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=16000 * 7) * 0.1).astype(np.float32)
    whole = LogMelFeatures(chunk_frames=10_000, deltas=True)(x, 16000)
    chunked = LogMelFeatures(chunk_frames=7, deltas=True)(x, 16000)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-4)


def test_long_audio_bounded_chunks():
    x = np.zeros(16000 * 60 * 5, np.float32)  # 5 minutes
    x[::1000] = 0.5
    out = LogMelFeatures(chunk_frames=512)(x, 16000)
    assert out.shape == (7500, 80) and np.all(np.isfinite(out))


@pytest.fixture(scope="module")
def tiny_hubert_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    cfg = HubertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("hubert")
    HubertModel(cfg).save_pretrained(path)
    return path


# Importing transformers' HuBERT costs ~8 s of CPU: these are marked slow.
@pytest.mark.slow
def test_hubert_features_from_local_folder(tiny_hubert_dir):
    ext = HubertFeatures(tiny_hubert_dir)
    assert ext.dim == 32 and isinstance(ext, AudioFeatureExtractor)
    x = tone(2.0, 48000, 200.0)
    out = ext(np.stack([x, x], 1), 48000)
    assert out.shape == (50, 32) and out.dtype == np.float32 and np.all(np.isfinite(out))
    short = ext(np.zeros(100, np.float32), 16000)  # 6 ms: padded, one frame
    assert short.shape == (1, 32)


@pytest.mark.slow
def test_hubert_chunking_covers_every_frame(tiny_hubert_dir):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=16000 * 3) * 0.1).astype(np.float32)
    whole = HubertFeatures(tiny_hubert_dir)(x, 16000)
    chunked = HubertFeatures(tiny_hubert_dir, chunk_seconds=1.0, context_seconds=0.5)(x, 16000)
    assert chunked.shape == whole.shape == (75, 32)
    # Attention context differs at chunk joins; away from them the features agree closely.
    assert np.corrcoef(chunked.ravel(), whole.ravel())[0, 1] > 0.9


def test_hubert_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        HubertFeatures(tmp_path / "nothing")


def test_features_for_model():
    assert isinstance(features_for_model({"audio_dim": 80}), LogMelFeatures)
    assert features_for_model({"audio_dim": 240}).dim == 240
    with pytest.raises(FileNotFoundError, match=r"--hubert DIR; hubert_dir"):
        features_for_model({"audio_dim": 1024})


@pytest.mark.slow
def test_features_for_model_hubert(tiny_hubert_dir):
    assert isinstance(features_for_model({"audio_dim": 32}, tiny_hubert_dir), HubertFeatures)
    with pytest.raises(ValueError, match="32-D"):
        features_for_model({"audio_dim": 1024}, tiny_hubert_dir)
