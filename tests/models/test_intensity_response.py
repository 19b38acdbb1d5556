"""The shipped motion model's head moves more when the intensity curve is higher (issue 7: "editing
the curve changes how much the head moves"). benchmarks/intensity_response.py measures the same
on 40 held-out clips."""

from __future__ import annotations

import numpy as np
import pytest

from models.motion_space import CHANNEL_INDEX, unpack_ditto
from models.smoothing import smooth_pose
from models.speech_data import espeak_available

LEVELS = (0.5, 1.0, 1.5)
MARGIN = 0.15  # each step of +0.5 intensity raises the median pose spread by more than 15 %
PER_SAMPLE = 1.2  # and every clip x seed moves at least 1.2x as much at 1.5 as at 0.5
_POSE = [CHANNEL_INDEX[c] for c in ("pitch", "yaw", "roll")]


def pose_spreads(pm, clips, levels=LEVELS, seeds=(0, 1)) -> np.ndarray:
    """Head-pose spread (std over time of pitch/yaw/roll, mean of the three, degrees, after the
    studio's default pose smoothing) ``[levels, clips * seeds]`` of ``clips`` (speech_data
    SpeechClip) generated at constant intensities; sampling seeds fixed."""
    out = np.zeros((len(levels), len(clips) * len(seeds)))
    for i, level in enumerate(levels):
        for j, clip in enumerate(clips):
            T = clip.motion.shape[0]
            for s, seed in enumerate(seeds):
                packed = pm.generate(
                    clip.audio, 16000, channels=clip.motion, ref_channels=clip.motion[0],
                    seed=seed, intensity=np.full(T, level, dtype=np.float32),
                )  # fmt: skip
                ch = smooth_pose(unpack_ditto(packed[:T], base=clip.motion), 2.5)
                out[i, j * len(seeds) + s] = ch[:, _POSE].std(axis=0).mean()
    return out


def response_ok(
    spreads: np.ndarray, margin: float = MARGIN, per_sample: float = PER_SAMPLE
) -> bool:
    """Median pose spread rises by more than ``margin`` at every level step, and on every sample
    the spread at the last level is more than ``per_sample`` times that at the first."""
    med = np.median(spreads, axis=1)
    rises = bool(np.all(med[1:] > med[:-1] * (1.0 + margin)))
    return rises and bool(np.all(spreads[-1] > per_sample * spreads[0]))


@pytest.fixture(scope="module")
def clips():
    if not espeak_available():
        pytest.skip("espeak-ng library not available")
    from models.speech_data import generate_clip

    # Held-out speech (training used seed 0): 6 clips of 1.9-5.4 s; the shipped model before
    # intensity training failed here (on 2 of the 12 samples it moved less at 1.5 than at 0.5).
    return [generate_clip(seed=s, index=k) for s in (9102, 9103) for k in range(3)]


def test_head_pose_spread_rises_with_intensity(clips) -> None:
    import torch

    from models.pretrained import PretrainedModelMissing, load_default_motion_model

    try:
        pm = load_default_motion_model()
    except PretrainedModelMissing as exc:
        pytest.skip(str(exc))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        spreads = pose_spreads(pm, clips)
    finally:
        torch.set_num_threads(threads)
    med = np.median(spreads, axis=1)
    ratio = (spreads[-1] / spreads[0]).min()
    assert response_ok(spreads), (
        f"median pose spread at intensities {LEVELS}: {med.round(3)}; smallest per-sample ratio "
        f"{LEVELS[-1]} / {LEVELS[0]}: {ratio:.2f}"
    )
