"""Shared by the generation tests: the tiny MotionDiT config and a speech-like WAV."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

# The colleague's tiny MotionDiT config (tests/models/test_motion_dit.py) with log-mel audio.
TINY = dict(seq_len=16, audio_dim=80, latent_dim=32, ff_dim=64, num_layers=2, num_heads=4)


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    """A tiny random MotionDiT saved with save_pretrained at ``path``."""
    import torch

    from models.motion_dit import MotionDiT

    torch.manual_seed(seed)
    MotionDiT(**TINY, dropout=0.0).save_pretrained(path)
    return path


def wav_bytes(seconds: float, rate: int = 16000, channels: int = 1, silent: bool = False) -> bytes:
    """A WAV of syllable-like bursts (a 150 Hz buzz gated at 4 Hz), or silence."""
    import soundfile as sf

    t = np.arange(round(seconds * rate)) / rate
    x = 0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * (np.sin(2 * np.pi * 4 * t) > 0)
    x = np.zeros_like(t) if silent else x
    data = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
