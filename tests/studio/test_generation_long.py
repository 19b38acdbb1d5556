"""Hour-long audio: the work per model window must not grow with the clip. Two minutes (fast)
and ten minutes (slow: about 30 s on a loaded 2-core machine) of audio through a tiny random
model: every preview is a tail of about one window, each packed frame is converted about once,
and the work done between a window's last denoising step and its preview (joining the window,
converting the changed frames to channels and project frames) is as cheap at the end as at the
start."""

from __future__ import annotations

import time

import numpy as np
import pytest
from generation_helpers import wav_bytes

from studio.document import AudioClip, Project
from studio.generation import GenerateRequest, PreviewBuffer, iter_generate

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize(
    "seconds",
    [120.0, pytest.param(600.0, marks=pytest.mark.slow)],  # 600 s: 15000 frames, 1070 windows
)
def test_per_window_cost_does_not_grow_with_the_clip(seconds, tiny_dir, monkeypatch):
    import models.motion_space as ms

    p = Project.new(fps=25, duration_frames=int(seconds * 25))
    p.assets["audio/long.wav"] = wav_bytes(seconds)
    p.audio_clips.append(AudioClip.new("long", "audio/long.wav"))
    converted: list[int] = []  # packed frames converted to channels per call
    unpack = ms.unpack_ditto

    def counting_unpack(packed, base=None):
        converted.append(int(np.shape(packed)[0]) if np.ndim(packed) == 2 else -1)
        return unpack(packed, base)

    monkeypatch.setattr(ms, "unpack_ditto", counting_unpack)
    # overlap 2: windows of 16 frames step 14 (fewer windows, the same per-window work).
    request = GenerateRequest(model=tiny_dir, steps=1, overlap=2, pose_smoothing=0.0)
    overhead: list[float] = []  # seconds from a window's last step to its preview
    tails: list[int] = []
    buf = PreviewBuffer()
    last = time.perf_counter()
    result = None
    for ev in iter_generate(p, request):
        now = time.perf_counter()
        if ev.result is not None:
            result = ev.result
            final = ev.preview
        elif ev.preview is not None:
            overhead.append(now - last)
            tails.append(ev.preview.shape[0])
            buf.add(ev.preview, ev.preview_start)
        last = time.perf_counter()
    assert result is not None
    T = int(seconds * 25)
    windows = len(tails)
    assert windows >= T // 14
    # Every tail is about one window (16 frames), and each packed frame is converted about
    # once: O(window) per window, not O(frames so far).
    assert max(tails) <= 16 and max(converted[:-1]) <= 16
    assert sum(converted[:-1]) <= 16 * windows
    # The tails assemble into the whole motion.
    np.testing.assert_allclose(buf.values, final[: buf.values.shape[0]], atol=1e-5)
    assert buf.start == 0 and buf.values.shape[0] == T
    # Time: the last windows' overhead is no more than twice the first's (medians of 10,
    # robust to a loaded machine's hiccups; 1 ms of slack for timer noise).
    first = float(np.median(overhead[1:11]))
    late = float(np.median(overhead[-10:]))
    assert late <= 2.0 * first + 1e-3, (first, late)
