"""Audio features for the motion generators: one interface, frames at 25 fps.

Every extractor takes mono or multi-channel audio at any sample rate and returns ``[T, D]``
float32 features with ``T = ceil(duration * 25)``: frame ``i`` describes the audio of video frame
``i``, the interval ``[i / 25, (i + 1) / 25)`` seconds (centred on its middle). Audio is
mixed to mono (mean over channels) and resampled to 16 kHz with a polyphase filter
(``scipy.signal.resample_poly``) first.

- :class:`LogMelFeatures` (default, no weights): log mel spectrogram, one 640-sample hop at
  16 kHz per frame, optionally with first and second deltas. numpy only.
- :class:`HubertFeatures`: transformers ``HubertModel`` loaded from a LOCAL folder (Ditto uses
  HuBERT-large, 1024-D); its 50 Hz hidden states are linearly interpolated to 25 fps.
- :func:`features_for_model`: the extractor whose width matches a model's ``audio_dim``.

Bad input: NaN/inf samples, empty audio, a non-positive or fractional sample rate, more than 2
dimensions raise :class:`AudioInputError`. Silence gives finite features (the log floor);
clipped audio is processed as is; audio shorter than one frame gives one frame; long audio is
processed in bounded chunks (memory does not grow with the STFT of the whole file).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "FPS",
    "SAMPLE_RATE",
    "AudioFeatureExtractor",
    "AudioInputError",
    "HubertFeatures",
    "LogMelFeatures",
    "features_for_model",
    "num_frames",
    "prepare_audio",
]

FPS = 25
SAMPLE_RATE = 16000
HOP = SAMPLE_RATE // FPS  # 640 samples per video frame


class AudioInputError(ValueError):
    """The audio cannot be turned into features (the message says why)."""


@runtime_checkable
class AudioFeatureExtractor(Protocol):
    """Audio -> per-frame features ``[T, dim]`` at ``fps`` frames per second."""

    @property
    def dim(self) -> int: ...

    @property
    def fps(self) -> int: ...

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray: ...


def num_frames(num_samples: int, sample_rate: int) -> int:
    """Video frames at 25 fps covering ``num_samples`` samples: ``ceil(duration * 25)``."""
    return max(1, math.ceil(Fraction(num_samples * FPS, sample_rate)))


def prepare_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validate, mix to mono and resample to 16 kHz: ``[S]`` or ``[S, ch]`` -> float64 ``[S']``.

    Integer PCM is scaled to [-1, 1) (int16 by 32768, int32 by 2**31). Raises AudioInputError.
    """
    from scipy.signal import resample_poly

    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioInputError(f"sample rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    a = np.asarray(audio)
    if a.dtype.kind in "iu":
        a = a.astype(np.float64) / float(2 ** (8 * a.dtype.itemsize - 1))
    elif a.dtype.kind == "f":
        a = a.astype(np.float64, copy=False)
    else:
        raise AudioInputError(f"audio must be float or integer PCM, got dtype {a.dtype}")
    if a.ndim == 2:
        if a.shape[1] > 16 and a.shape[0] <= 16:
            raise AudioInputError(
                f"audio of shape {a.shape} looks channel-first; pass [samples, channels]"
            )
        a = a.mean(axis=1)
    elif a.ndim != 1:
        raise AudioInputError(f"audio must be [samples] or [samples, channels], got {a.shape}")
    if a.size == 0:
        raise AudioInputError("audio is empty")
    bad = np.count_nonzero(~np.isfinite(a))
    if bad:
        raise AudioInputError(f"audio has {bad} NaN/inf samples")
    if sample_rate != SAMPLE_RATE:
        r = Fraction(SAMPLE_RATE, sample_rate)
        out_len = math.ceil(a.size * r)
        a = resample_poly(a, r.numerator, r.denominator)[:out_len]
    return a


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, fmin: float, fmax: float) -> np.ndarray:
    """HTK-scale triangular filters ``[n_mels, n_fft // 2 + 1]``, each of unit area in Hz
    (slaney-style normalisation, so loudness does not depend on a band's width)."""
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(up, down))
    return fb * (2.0 / (hi - lo))


def _deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over frames (edge-padded): ``[T, D] -> [T, D]``."""
    n = np.arange(1, width + 1)
    pad = np.pad(x, ((width, width), (0, 0)), mode="edge")
    T = x.shape[0]
    num = sum(k * (pad[width + k : width + k + T] - pad[width - k : width - k + T]) for k in n)
    return num / (2.0 * float((n**2).sum()))


class LogMelFeatures:
    """Log mel spectrogram at 25 fps, no weights needed.

    One frame per 640-sample hop at 16 kHz; the ``n_fft``-sample Hann window is centred on the
    middle of its video frame's interval (zero padding at the ends). Features are
    ``log(mel_power + floor)`` (natural log), plus first and second deltas when ``deltas`` is
    True, so ``dim = n_mels * (3 if deltas else 1)``. ``chunk_frames`` bounds the frames
    transformed at once (memory for long audio).
    """

    fps = FPS

    def __init__(
        self,
        n_mels: int = 80,
        n_fft: int = 1024,
        fmin: float = 0.0,
        fmax: float = 8000.0,
        deltas: bool = False,
        floor: float = 1e-6,
        chunk_frames: int = 2048,
    ) -> None:
        if n_mels <= 0 or n_fft < HOP or not 0.0 <= fmin < fmax <= SAMPLE_RATE / 2:
            raise ValueError(
                f"LogMelFeatures: need n_mels > 0, n_fft >= {HOP}, 0 <= fmin < fmax <= 8000; "
                f"got n_mels={n_mels}, n_fft={n_fft}, fmin={fmin}, fmax={fmax}"
            )
        self.n_mels, self.n_fft, self.deltas, self.floor = n_mels, n_fft, deltas, floor
        self.chunk_frames = max(1, int(chunk_frames))
        self._fb = mel_filterbank(n_mels, n_fft, fmin, fmax).T.astype(np.float32)  # [F, n_mels]
        self._window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann

    @property
    def dim(self) -> int:
        return self.n_mels * (3 if self.deltas else 1)

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``[S]`` or ``[S, ch]`` audio -> ``[T, dim]`` float32. Raises AudioInputError."""
        x = prepare_audio(audio, sample_rate).astype(np.float32)
        T = num_frames(x.size, SAMPLE_RATE)
        left = self.n_fft // 2 - HOP // 2  # window start of frame 0 relative to sample 0
        padded = np.zeros(left + T * HOP + self.n_fft, dtype=np.float32)
        padded[left : left + x.size] = x
        out = np.empty((T, self.n_mels), dtype=np.float32)
        for start in range(0, T, self.chunk_frames):
            stop = min(T, start + self.chunk_frames)
            seg = padded[start * HOP : (stop - 1) * HOP + self.n_fft]
            frames = np.lib.stride_tricks.sliding_window_view(seg, self.n_fft)[::HOP]
            spec = np.fft.rfft(frames * self._window, axis=-1)
            power = (spec.real**2 + spec.imag**2).astype(np.float32)
            out[start:stop] = np.log(power @ self._fb + self.floor)
        if self.deltas:
            d1 = _deltas(out)
            out = np.concatenate([out, d1, _deltas(d1)], axis=1).astype(np.float32)
        return out


class HubertFeatures:
    """HuBERT hidden states at 25 fps from a model folder on disk (never downloaded).

    ``model_dir`` holds a transformers ``HubertModel`` (config.json + weights), e.g. a local copy
    of hubert-large-ls960-ft (1024-D, the features Ditto's checkpoint expects). The waveform is
    normalised to zero mean / unit variance when the folder's ``preprocessor_config.json`` says
    ``do_normalize`` (the default when there is none, as for HuBERT-large). Audio longer than
    ``chunk_seconds`` runs in chunks with ``context_seconds`` of overlap on each side, so memory
    and attention cost stay bounded. Audio shorter than 0.1 s is zero-padded to 0.1 s first.
    ``layer``: which hidden state (-1 = last).
    Raises FileNotFoundError for a missing folder or config, AudioInputError for bad audio.
    """

    fps = FPS

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        device: str = "cpu",
        layer: int = -1,
        chunk_seconds: float = 20.0,
        context_seconds: float = 1.0,
    ) -> None:
        import json

        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"HuBERT model folder {path} has no config.json; put a local copy of the model "
                "there (e.g. hubert-large-ls960-ft saved with save_pretrained)"
            )
        import torch
        from transformers import HubertModel

        self.model = HubertModel.from_pretrained(path, local_files_only=True).to(device).eval()
        self.device = torch.device(device)
        self.layer = layer
        self.chunk = int(chunk_seconds * SAMPLE_RATE)
        self.context = int(context_seconds * SAMPLE_RATE)
        pre = path / "preprocessor_config.json"
        self.normalize = True
        if pre.is_file():
            self.normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _hidden(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inp = torch.from_numpy(x.astype(np.float32))[None].to(self.device)
            out = self.model(inp, output_hidden_states=self.layer != -1)
            h = out.last_hidden_state if self.layer == -1 else out.hidden_states[self.layer]
        return h[0].float().cpu().numpy()  # [N, D] at 50 Hz

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``[S]`` or ``[S, ch]`` audio -> ``[T, dim]`` float32. Raises AudioInputError."""
        x = prepare_audio(audio, sample_rate)
        S = x.size
        T = num_frames(S, SAMPLE_RATE)
        if self.normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        x = np.pad(x, (0, max(0, SAMPLE_RATE // 10 - S)))
        # HuBERT's conv stack: frame j covers samples [320 j, 320 j + 400), centre 320 j + 200.
        pieces = []
        for start in range(0, max(S, 1), self.chunk):
            b = min(x.size, start + self.chunk + self.context)
            a = max(0, min(start - self.context, b - SAMPLE_RATE // 10))  # >= 0.1 s per call
            h = self._hidden(x[a:b])
            centres = a + 320 * np.arange(h.shape[0]) + 200
            keep = (centres >= start) & (centres < start + self.chunk)
            if start == 0:
                keep |= centres < start
            if start + self.chunk >= S:
                keep |= centres >= start + self.chunk
            pieces.append((centres[keep], h[keep]))
        centres = np.concatenate([c for c, _ in pieces]).astype(np.float64)
        hidden = np.concatenate([h for _, h in pieces])
        want = (np.arange(T) + 0.5) * HOP  # centres of the video frames, in samples
        return _interp_rows(centres, hidden, want)


def _interp_rows(src_t: np.ndarray, rows: np.ndarray, dst_t: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``rows [N, D]`` given at ``src_t [N]`` to ``dst_t [T]`` (edges
    held)."""
    if rows.shape[0] == 1:
        return np.repeat(rows, dst_t.size, axis=0).astype(np.float32)
    j = np.clip(np.searchsorted(src_t, dst_t) - 1, 0, src_t.size - 2)
    w = np.clip((dst_t - src_t[j]) / (src_t[j + 1] - src_t[j]), 0.0, 1.0)[:, None]
    return ((1.0 - w) * rows[j] + w * rows[j + 1]).astype(np.float32)


def features_for_model(
    config: Mapping[str, Any] | Any, hubert_dir: str | os.PathLike[str] | None = None
) -> AudioFeatureExtractor:
    """The extractor producing ``config["audio_dim"]``-wide features.

    ``config``: a model config (mapping) or a model with ``.config``. 80 -> LogMelFeatures(),
    240 -> LogMelFeatures(deltas=True), any other width -> HubertFeatures(hubert_dir) whose
    hidden size must match. Raises ValueError when no extractor fits, FileNotFoundError when
    HuBERT features are needed and ``hubert_dir`` is missing.
    """
    if not isinstance(config, Mapping):
        config = getattr(config, "config", config)
    audio_dim = int(config["audio_dim"] if isinstance(config, Mapping) else config.audio_dim)
    if audio_dim == 80:
        return LogMelFeatures()
    if audio_dim == 240:
        return LogMelFeatures(deltas=True)
    if hubert_dir is None:
        raise FileNotFoundError(
            f"the model expects {audio_dim}-D audio features (HuBERT): give a local folder with "
            "the HuBERT model (the command line's --hubert DIR; hubert_dir in Python)"
        )
    ext = HubertFeatures(hubert_dir)
    if ext.dim != audio_dim:
        raise ValueError(
            f"HuBERT at {hubert_dir} gives {ext.dim}-D features, model needs {audio_dim}"
        )
    return ext
