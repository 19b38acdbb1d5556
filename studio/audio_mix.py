"""Project audio mixing shared by export, playback and generation (Qt-free).

Every audible clip (unmuted, non-zero gain) is decoded, resampled to one rate, converted to one
channel count and added at its offset and gain; the sum is clipped to [-1, 1]. A clip's sample
``i`` (after resampling to ``rate``) plays at ``offset / fps + i / rate`` seconds. Sample
positions are computed exactly from the rational frame rate, so callers that mix the same
project agree to the sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from studio.document import AudioClip, FrameRate, Project
from studio.document.audio import AudioError, resample

__all__ = [
    "ClipAudio",
    "mix_clips",
    "overlay",
    "read_clips",
    "sample_offset",
    "to_channels",
]


@dataclass(frozen=True)
class ClipAudio:
    """A clip with its decoded audio: ``samples`` ``[S, channels]`` float32 at ``sample_rate``."""

    clip: AudioClip
    samples: np.ndarray
    sample_rate: int


def read_clips(
    project: Project, on_error: Callable[[AudioClip, AudioError], None]
) -> list[ClipAudio]:
    """The project's audible clips (not muted, gain not 0) decoded, in project order.

    A clip whose audio is missing or unreadable is handed to ``on_error`` and left out;
    ``on_error`` may raise to abort instead.
    """
    from studio.project_ops import project_audio

    decoded: list[ClipAudio] = []
    for clip in project.audio_clips:
        if clip.muted or clip.gain == 0.0:
            continue
        try:
            audio = project_audio(project, clip)
        except AudioError as exc:
            on_error(clip, exc)
            continue
        decoded.append(ClipAudio(clip, audio.samples, audio.sample_rate))
    return decoded


def to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """``[S, ch]`` -> ``[S, channels]``: unchanged when ``ch == channels``, otherwise the
    channels are averaged to mono and that is repeated."""
    if samples.shape[1] == channels:
        return samples
    mono = samples if samples.shape[1] == 1 else samples.mean(axis=1, keepdims=True)
    return np.repeat(mono, channels, axis=1)


def sample_offset(frames: int, frame_rate: FrameRate, rate: int) -> int:
    """Number of samples at ``rate`` Hz in ``frames`` project frames, rounded to nearest (exact
    rational arithmetic; halves round to even like ``round``)."""
    return round(Fraction(frames) * rate / frame_rate.fraction)


def overlay(out: np.ndarray, samples: np.ndarray, first: int, gain: float = 1.0) -> None:
    """Add ``gain * samples`` into ``out`` in place with ``samples[0]`` at ``out[first]``; the
    parts falling outside ``out`` (``first`` may be negative) are dropped. Shapes ``[S, ...]``."""
    lo, hi = max(first, 0), min(first + samples.shape[0], out.shape[0])
    if hi > lo:
        out[lo:hi] += gain * samples[lo - first : hi - first]


def mix_clips(
    clips: Sequence[ClipAudio],
    frame_rate: FrameRate,
    rate: int,
    channels: int = 2,
    start: int = 0,
    end: int | None = None,
) -> np.ndarray:
    """Mix of ``clips`` over project frames ``[start, end)``: float32 ``[S, channels]`` at
    ``rate`` Hz, silence where no clip plays, clipped to [-1, 1].

    ``S = round((end - start) / fps * rate)``; with ``end=None`` the mix runs to the end of the
    last clip (empty when none plays after ``start``).
    """
    placed = []
    for c in clips:
        samples = to_channels(resample(c.samples, c.sample_rate, rate), channels)
        placed.append((sample_offset(c.clip.offset - start, frame_rate, rate), samples, c))
    if end is None:
        n = max((first + s.shape[0] for first, s, _ in placed), default=0)
    else:
        n = sample_offset(end - start, frame_rate, rate)
    mix = np.zeros((max(n, 0), channels), dtype=np.float32)
    for first, samples, c in placed:
        overlay(mix, samples, first, np.float32(c.clip.gain))
    np.clip(mix, -1.0, 1.0, out=mix)
    return mix
