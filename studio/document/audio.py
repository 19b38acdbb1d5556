"""Reading audio for the document: clips embedded in projects, imported WAV/FLAC/OGG files.

Qt-free. Decodes with soundfile (libsndfile); resamples with a polyphase filter. Audio in the
studio is float32 ``[S, channels]`` at its own sample rate; consumers (waveform lane, playback,
generators) convert to what they need with :func:`to_mono` and :func:`resample`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["AudioData", "AudioError", "read_audio", "resample", "to_mono"]

# An hour of 48 kHz stereo float32 is ~1.4 GB; refuse anything longer than this before decoding.
MAX_AUDIO_SECONDS = 3 * 3600


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, too long, or with NaN samples."""


@dataclass(frozen=True)
class AudioData:
    samples: np.ndarray  # [S, channels] float32 in [-1, 1]
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / self.sample_rate

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])


def read_audio(source: str | Path | bytes, name: str | None = None) -> AudioData:
    """Decode an audio file (path or the file's bytes).

    Raises AudioError naming the file for unreadable, empty, over-long or non-finite audio.
    """
    import soundfile as sf

    label = name or (str(source) if not isinstance(source, bytes) else "audio data")
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{label}: no such audio file")
        if path.is_dir():
            raise AudioError(f"{label}: is a folder, not an audio file")
    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with sf.SoundFile(handle) as f:
            if f.frames > MAX_AUDIO_SECONDS * f.samplerate:
                hours = f.frames / f.samplerate / 3600
                raise AudioError(f"{label}: {hours:.1f} h of audio is longer than the 3 h limit")
            samples = f.read(dtype="float32", always_2d=True)
            rate = int(f.samplerate)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown format"
        # libsndfile says "Error opening <_io.BytesIO object at 0x...>: why" (or the path): the
        # label already names the file, keep only the why.
        detail = re.sub(r"^Error opening (<[^>]*>|'[^']*'|\S+): ", "", detail)
        raise AudioError(f"{label}: not a readable audio file ({detail})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{label}: the audio is empty")
    if not np.isfinite(samples).all():
        raise AudioError(f"{label}: the audio contains NaN or infinite samples")
    return AudioData(np.ascontiguousarray(samples), rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """``[S, channels]`` or ``[S]`` -> ``[S]`` float32 by averaging channels."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (anti-aliased); returns float32."""
    if rate_in == rate_out:
        return np.asarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(rate_out, rate_in)
    out = resample_poly(samples, ratio.numerator, ratio.denominator, axis=0)
    return out.astype(np.float32)
