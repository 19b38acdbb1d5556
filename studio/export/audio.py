"""The project's sound for export: every unmuted clip at its offset and gain, mixed to stereo at
48 kHz and trimmed to the exported range. Qt-free."""

from __future__ import annotations

import numpy as np

from studio.document import Project
from studio.document.audio import AudioError, resample
from studio.export.errors import ExportError

__all__ = ["EXPORT_SAMPLE_RATE", "mix_project_audio"]

EXPORT_SAMPLE_RATE = 48_000


def _stereo(samples: np.ndarray) -> np.ndarray:
    """[S, ch] -> [S, 2]: mono is duplicated, more than two channels are averaged to mono."""
    if samples.shape[1] == 2:
        return samples
    mono = samples.mean(axis=1, keepdims=True) if samples.shape[1] > 2 else samples
    return np.repeat(mono, 2, axis=1)


def mix_project_audio(
    project: Project, start: int, end: int, rate: int = EXPORT_SAMPLE_RATE
) -> np.ndarray:
    """Mix of the project's unmuted audio clips over project frames ``[start, end)``:
    float32 ``[S, 2]`` at ``rate`` Hz with ``S = round((end - start) / fps * rate)``, silence
    where no clip plays, clipped to [-1, 1].

    A clip's sample ``i`` (at its own rate, after resampling to ``rate``) plays at
    ``offset / fps + i / rate`` seconds. Raises ExportError naming the clip when its audio is
    missing or unreadable (the CLI suggests --no-audio).
    """
    from studio.project_ops import project_audio

    fps = project.frame_rate.fps
    t0 = start / fps
    n = round((end - start) / fps * rate)
    mix = np.zeros((n, 2), dtype=np.float32)
    for clip in project.audio_clips:
        if clip.muted or clip.gain == 0.0:
            continue
        try:
            audio = project_audio(project, clip)
        except AudioError as exc:
            raise ExportError(
                f"audio clip {clip.name!r}: {exc}; pass --no-audio to export without sound"
            ) from None
        samples = _stereo(resample(audio.samples, audio.sample_rate, rate))
        # Position of the clip's first sample in the mix (may be negative: starts before t0).
        first = round((clip.offset / fps - t0) * rate)
        lo, hi = max(first, 0), min(first + samples.shape[0], n)
        if hi > lo:
            mix[lo:hi] += clip.gain * samples[lo - first : hi - first]
    np.clip(mix, -1.0, 1.0, out=mix)
    return mix
