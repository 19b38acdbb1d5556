"""Helpers for the export tests: tiny projects (10 frames, embedded audio) and tiny synthetic
Gaussian scenes, so that each export renders a handful of 64x64 frames in well under a second."""

from __future__ import annotations

import io

import numpy as np

from studio.document import AudioClip, Curve, Interpolation, Project, Take


def wav_bytes(seconds: float, rate: int = 16000, freq: float = 440.0, channels: int = 1) -> bytes:
    """A sine tone as 16-bit PCM WAV bytes."""
    import soundfile as sf

    t = np.arange(round(seconds * rate)) / rate
    tone = 0.25 * np.sin(2 * np.pi * freq * t)
    data = np.repeat(tone[:, None], channels, axis=1)
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def tiny_project(frames: int = 10, fps: int = 25, audio: bool = True) -> Project:
    """``frames`` frames with a yaw/jaw/blink take and (optionally) a 16 kHz mono tone clip
    embedded at frame 0 that lasts longer than the project."""
    project = Project.new(fps=fps, duration_frames=frames)
    keys = np.array([0, frames // 2, frames - 1])
    n = 3 if frames >= 3 else 1  # keys must be distinct frames

    def curve(channel: str, values: list[float], interp: Interpolation) -> Curve:
        return Curve(keys[:n], values[:n], interp, channel=channel)

    curves = {
        "yaw": curve("yaw", [0.0, 12.0, -5.0], Interpolation.BEZIER),
        "exp_19_y": curve("exp_19_y", [0.0, 0.02, 0.005], Interpolation.LINEAR),
        "eye_open_l": curve("eye_open_l", [1.0, 0.1, 1.0], Interpolation.LINEAR),
        "emotion_happy": Curve([0], [0.5], Interpolation.CONSTANT, channel="emotion_happy"),
    }
    take = Take.new("Take A", curves)
    project.takes = [take]
    project.active_take_id = take.id
    if audio:
        project.assets["audio/tone.wav"] = wav_bytes(frames / fps + 0.5)
        project.audio_clips.append(AudioClip.new("tone", "audio/tone.wav", offset=0))
    project.validate()
    return project


def blob_cloud(points: list[tuple[float, float, float]], size: float = 0.01):
    """Nearly opaque white isotropic Gaussians at ``points`` (metres, RUB)."""
    from renderers import GaussianCloud

    n = len(points)
    return GaussianCloud(
        means=np.array(points, dtype=np.float32),
        quats=np.tile(np.array([1.0, 0, 0, 0], np.float32), (n, 1)),
        scales=np.full((n, 3), size, np.float32),
        opacities=np.full(n, 0.95, np.float32),
        sh=np.full((n, 1, 3), (1.0 - 0.5) / 0.28209479177387814, np.float32),
    )
