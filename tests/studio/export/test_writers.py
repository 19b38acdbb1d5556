"""VideoWriter on its own (no rendering, no GL): the colours of the encoded picture are BT.709
limited range, and the AAC track decodes to the audio it was given, with every thread setting
the writer may pick (ENCODER_THREADS / CONVERT_THREADS depend on the machine's CPUs)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from export_helpers import tiny_project

from studio.export import ExportSettings, plan_export, writers
from studio.export.writers import VideoWriter

# Flat patches (16x16 pixels, so chroma subsampling and x264's blocks see no edge inside them):
# black, white, greys, primaries, secondaries, a skin tone.
PATCHES = np.array(
    [
        [0, 0, 0], [255, 255, 255], [128, 128, 128], [64, 64, 64],
        [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
        [0, 255, 255], [255, 0, 255], [224, 172, 140], [30, 90, 200],
    ],
    np.uint8,
)  # fmt: skip
PATCH = 16


def bt709_limited(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] RGB 0..255 -> [..., 3] Y'CbCr BT.709 limited range (float, 8-bit levels)."""
    x = rgb.astype(np.float64) / 255.0
    y = x @ np.array([0.2126, 0.7152, 0.0722])
    cb = (x[..., 2] - y) / 1.8556
    cr = (x[..., 0] - y) / 1.5748
    return np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr], axis=-1)


def chart(width: int, height: int) -> np.ndarray:
    """[H, W, 3] uint8: PATCHES tiled in 16x16 squares."""
    rows, cols = height // PATCH, width // PATCH
    idx = np.arange(rows * cols).reshape(rows, cols) % len(PATCHES)
    return np.ascontiguousarray(np.repeat(np.repeat(PATCHES[idx], PATCH, 0), PATCH, 1)), idx


def plan_for(tmp_path, frames: int = 10):
    settings = ExportSettings(tmp_path / "clip.mp4", eye_size=(64, 64), frame_range=(0, frames))
    return plan_export(tiny_project(frames), settings)


@pytest.fixture(params=[(1, 1), (0, 0)], ids=["single-threaded", "libraries-choice"])
def threads(request, monkeypatch):
    monkeypatch.setattr(writers, "ENCODER_THREADS", request.param[0])
    monkeypatch.setattr(writers, "CONVERT_THREADS", request.param[1])
    return request.param


def test_colours_are_bt709_limited_range(tmp_path, threads):
    plan = plan_for(tmp_path)
    w, h = plan.frame_size
    picture, idx = chart(w, h)
    writer = VideoWriter(tmp_path / "clip.mp4", plan, None)
    for _ in range(plan.num_frames):
        writer.write(picture.copy())
    writer.close()

    with av.open(str(tmp_path / "clip.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_range) == (1, 1)  # BT.709, limited ("MPEG")
        frames = list(c.decode(video=0))
    assert len(frames) == plan.num_frames
    f = frames[-1]
    assert f.format.name == "yuv420p"
    y = np.frombuffer(f.planes[0], np.uint8).reshape(h, -1)[:, :w].astype(float)
    u = np.frombuffer(f.planes[1], np.uint8).reshape(h // 2, -1)[:, : w // 2].astype(float)
    v = np.frombuffer(f.planes[2], np.uint8).reshape(h // 2, -1)[:, : w // 2].astype(float)
    want = bt709_limited(PATCHES)[idx]  # [rows, cols, 3]
    # Each patch's centre (4x4 luma / 2x2 chroma samples, away from its edges).
    c0, c1 = PATCH // 2 - 2, PATCH // 2 + 2
    got_y = y.reshape(idx.shape[0], PATCH, idx.shape[1], PATCH)[:, c0:c1, :, c0:c1].mean((1, 3))
    half = PATCH // 2
    got_u = u.reshape(idx.shape[0], half, idx.shape[1], half)[:, 3:5, :, 3:5].mean((1, 3))
    got_v = v.reshape(idx.shape[0], half, idx.shape[1], half)[:, 3:5, :, 3:5].mean((1, 3))
    got = np.stack([got_y, got_u, got_v], axis=-1)
    np.testing.assert_allclose(got, want, atol=1.5)  # crf 18: within 1-2 levels


def test_audio_decodes_to_its_input(tmp_path, threads):
    plan = plan_for(tmp_path, frames=25)
    w, h = plan.frame_size
    seconds = plan.num_frames / plan.fps.fps
    t = np.arange(round(seconds * 48_000)) / 48_000
    chirp = np.sin(2 * np.pi * (200 * t + 1900 * t**2 / seconds))  # 200 -> 4000 Hz: no lag aliases
    audio = np.stack([0.3 * chirp, 0.2 * np.sin(2 * np.pi * 1000 * t + 0.5)], axis=1)
    audio = audio.astype(np.float32)  # [S, 2]
    writer = VideoWriter(tmp_path / "clip.mp4", plan, audio)
    for _ in range(plan.num_frames):
        writer.write(np.full((h, w, 3), 100, np.uint8))
    writer.close()

    with av.open(str(tmp_path / "clip.mp4")) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac" and a.sample_rate == 48_000
        assert a.codec_context.channels == 2
        decoded = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)  # [2, S]
    # The duration: the input's, give or take the last AAC frame (1024 samples).
    assert abs(decoded.shape[1] - len(t)) <= 1024
    # The waveform (the MP4 edit list trims the encoder delay; allow a shift anyway).
    n = len(t) - 2048
    ref = audio.T[:, :n]
    shifts = range(0, 1025)
    lag = max(shifts, key=lambda k: float(np.dot(decoded[0, k : k + n], ref[0])))
    err = decoded[:, lag : lag + n] - ref
    snr = 10 * np.log10(np.sum(ref**2) / np.sum(err**2))
    assert snr > 30.0, f"AAC round trip SNR {snr:.1f} dB"


def test_thread_defaults_follow_the_cpus():
    expected = 1 if writers.default_threads() <= 2 else 0
    assert writers.ENCODER_THREADS == expected
    assert writers.CONVERT_THREADS == expected
