"""The project's sound for export: every unmuted clip at its offset and gain, mixed to stereo at
48 kHz and trimmed to the exported range. Qt-free; the mixing is :mod:`studio.audio_mix`."""

from __future__ import annotations

from typing import NoReturn

import numpy as np

from studio.audio_mix import mix_clips, read_clips
from studio.document import AudioClip, Project
from studio.document.audio import AudioError
from studio.export.errors import ExportError

__all__ = ["EXPORT_SAMPLE_RATE", "mix_project_audio"]

EXPORT_SAMPLE_RATE = 48_000


def _unreadable(clip: AudioClip, exc: AudioError) -> NoReturn:
    raise ExportError(
        f"audio clip {clip.name!r}: {exc}; pass --no-audio to export without sound"
    ) from None


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
    clips = read_clips(project, _unreadable)
    return mix_clips(clips, project.frame_rate, rate, channels=2, start=start, end=end)
