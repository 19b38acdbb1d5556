"""Shared by the generation tests: a speech-like WAV (the tiny model is tests/tiny_models.py)."""

from __future__ import annotations

import io

import numpy as np


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
