"""models.pretrained.PretrainedMotionModel.iter_generate: previews are denormalised one window
at a time (only the frames a window changed), and agree with the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import LOGMEL_DIM, tiny_dit

from models.pretrained import PretrainedMotionModel
from models.training import MotionStats

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class CountingStats(MotionStats):
    """MotionStats that records how many frames each denormalize call converts."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls: list[int] = []

    def denormalize(self, normed):
        self.calls.append(int(np.shape(normed)[0]) if np.ndim(normed) == 2 else -1)
        return super().denormalize(normed)


def test_previews_convert_only_the_changed_frames():
    rng = np.random.default_rng(0)
    stats = CountingStats(
        mean=rng.normal(size=265), std=rng.uniform(0.5, 2.0, 265), x_c=np.zeros(63)
    )
    pm = PretrainedMotionModel(tiny_dit(0, audio_dim=LOGMEL_DIM), stats, Path("."))
    t = np.arange(16000 * 4) / 16000  # 4 s: 100 frames, windows of 16 step 12
    audio = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    mine = np.zeros((0, 265))
    previews = 0
    result = None
    for p in pm.iter_generate(audio, 16000, steps=1, overlap=4):
        if p.result is not None:
            result = p.result
            continue
        if p.preview is None:
            continue
        previews += 1
        assert not p.preview.flags.writeable
        mine = np.concatenate([mine[: p.preview_from], p.preview[p.preview_from :]])
        np.testing.assert_array_equal(mine, p.preview)
    assert previews > 5 and result is not None
    np.testing.assert_allclose(mine, result, rtol=0, atol=1e-12)
    window_calls = stats.calls[:-1]  # the last call denormalises the result
    assert len(window_calls) == previews and max(window_calls) <= 16
