"""Projects for the file-format tests and the crash test's child process (not a test module)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from models.motion_space import CHANNELS
from studio.document.curve import Curve, HandleMode, Interpolation
from studio.document.project import AudioClip, CameraSettings, HeadRef, Marker, Project
from studio.document.take import Take
from studio.document.timebase import FrameRate


def wav_bytes(seconds: float = 0.2, rate: int = 16000, seed: int = 0) -> bytes:
    """A small mono 16-bit PCM WAV."""
    rng = np.random.default_rng(seed)
    samples = (rng.normal(0, 0.1, int(seconds * rate)) * 32767).clip(-32768, 32767)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def random_curve(rng: np.random.Generator, frames: np.ndarray, channel: str) -> Curve:
    """Keys at ``frames`` with every interpolation and handle mode, FREE handles random."""
    k = frames.shape[0]
    interp = rng.integers(0, len(Interpolation), k).astype(np.int8)
    mode = rng.integers(0, len(HandleMode), k).astype(np.int8)
    gap = np.diff(frames, prepend=frames[0] - 1, append=frames[-1] + 1).astype(np.float64)
    left = np.stack([-rng.uniform(0, 1, k) * gap[:-1] / 2, rng.normal(0, 1, k)], axis=1)
    right = np.stack([rng.uniform(0, 1, k) * gap[1:] / 2, rng.normal(0, 1, k)], axis=1)
    values = rng.normal(0, 3, k)
    values[:1] = -0.0  # signed zero must survive bit-exactly
    return Curve(frames, values, interp, mode, left, right, channel=channel)


def make_project(
    *,
    duration: int = 600,
    key_every: int = 5,
    seed: int = 0,
    external_head: Path | None = None,
    n_takes: int = 2,
    channels: tuple[str, ...] = CHANNELS,
) -> Project:
    """A project using every feature the file format stores.

    Take 0 keys ``channels`` (default: all) every ``key_every`` frames; later takes key a random
    subset with irregular frames (including negative ones and keys beyond the duration).
    """
    rng = np.random.default_rng(seed)
    takes = []
    for t in range(n_takes):
        curves = {}
        if t == 0:
            for ch in channels:
                curves[ch] = random_curve(rng, np.arange(0, duration, key_every), ch)
        else:
            for ch in rng.choice(CHANNELS, size=7, replace=False):
                k = int(rng.integers(1, 40))
                frames = np.sort(rng.choice(np.arange(-50, duration + 50), k, replace=False))
                curves[str(ch)] = random_curve(rng, frames, str(ch))
        takes.append(Take(f"take-{t}-{seed}", f"Take {t + 1} é✓", curves,
                          ("generated", "keyed", "recorded")[t % 3],
                          {"seed": seed, "model": {"name": "ditto", "steps": [1, 2.5, None]},
                           "notes": "multi\nline"}))  # fmt: skip
    assets = {"voice.wav": wav_bytes(seed=seed), "other/odd name?.bin": bytes(range(256)) * 40}
    head = (
        HeadRef(str(external_head), "gaussian")
        if external_head is not None
        else HeadRef("other/odd name?.bin", "mpi")
    )
    return Project(
        frame_rate=FrameRate(30000, 1001),
        duration=duration,
        work_range=(10, duration - 1),
        takes=takes,
        active_take_id=takes[-1].id,
        audio_clips=[
            AudioClip("clip-a", "Voice", "voice.wav", offset=-12, gain=0.75, muted=False),
            AudioClip("clip-b", "Voice again", "voice.wav", offset=40, gain=1.0, muted=True),
        ],
        head=head,
        camera=CameraSettings(
            yaw=12.5,
            pitch=-3.25,
            distance=0.7,
            fov_deg=27.0,
            target=(0.0, 0.01, -0.02),
            ipd=0.05,
            convergence=1.1,
        ),
        markers=[Marker(0, "start"), Marker(123, "beat"), Marker(123, "same frame")],
        assets=assets,
        metadata={"author": "test", "tags": ["a", "b"], "nested": {"x": 1.5e-300, "y": True}},
    )


def read_members(path: Path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_members(path: Path, members: dict[str, bytes]) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def edit_json(path: Path, out: Path, fn) -> None:
    """Copy the project at ``path`` to ``out`` with project.json replaced by ``fn(doc)``."""
    import json

    members = read_members(path)
    doc = json.loads(members["project.json"])
    new = fn(doc)
    members["project.json"] = json.dumps(doc if new is None else new).encode()
    write_members(out, members)


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()
