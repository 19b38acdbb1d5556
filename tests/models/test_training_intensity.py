"""MotionDiT trained with intensity (ConsistTalk): the training batch carries the target motion's
per-frame intensity, it reaches the intensity hook, null rows use intensity 1, and models without
intensity settings behave as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.intensity import motion_intensity, motion_intensity_norm
from models.motion_dit import MotionDiT
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS
from models.training import (
    MotionDataset,
    MotionStats,
    MotionTrainConfig,
    TrainingClip,
    default_canonical_keypoints,
    iter_train_motion,
)

TINY_MODEL = dict(
    seq_len=16, motion_dim=265, audio_dim=8, latent_dim=16, ff_dim=32, num_layers=2,
    num_heads=2, num_encoder_layers=1, dropout=0.0, cond_dropout=0.0,
)  # fmt: skip


def _clip(seed: int, frames: int, sway: float) -> TrainingClip:
    """A synthetic clip: head sway of amplitude ``sway`` degrees, a moving jaw."""
    rng = np.random.default_rng(seed)
    ch = np.tile(CHANNEL_DEFAULTS, (frames, 1)).astype(np.float64)
    t = np.arange(frames) / 25.0
    ch[:, CHANNEL_INDEX["yaw"]] = sway * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    ch[:, CHANNEL_INDEX["pitch"]] = 0.5 * sway * np.sin(2 * np.pi * 1.1 * t + rng.uniform(0, 6))
    ch[:, CHANNEL_INDEX["exp_19_y"]] += 0.01 * np.abs(np.sin(2 * np.pi * 3 * t))
    feats = rng.normal(size=(frames, 8)).astype(np.float32)
    return TrainingClip(f"c{seed}", feats, ch)


@pytest.fixture(scope="module")
def clips() -> list[TrainingClip]:
    return [_clip(k, 60 + 7 * k, sway) for k, sway in enumerate((0.5, 1.0, 2.0, 4.0))]


def test_motion_intensity_is_normalised_and_follows_motion_magnitude(clips) -> None:
    norm = motion_intensity_norm([c.channels for c in clips])
    ys = [motion_intensity(c.channels, norm) for c in clips]
    allv = np.concatenate(ys)
    assert abs(allv.mean() - 1.0) < 1e-6 and np.all(allv >= 0) and np.all(allv <= norm["cap"])
    means = [y.mean() for y in ys]
    assert means == sorted(means)  # more sway, more intensity
    still = np.tile(CHANNEL_DEFAULTS, (30, 1))
    assert np.allclose(motion_intensity(still, norm), 0.0)
    json.dumps(norm)  # goes into config.json


def test_training_batch_carries_per_frame_intensity_that_reaches_the_hook(clips) -> None:
    x_c = default_canonical_keypoints()
    stats = MotionStats.from_clips(clips, x_c)
    cm, cs = MotionDataset.condition_stats(clips, x_c)
    norm = motion_intensity_norm([c.channels for c in clips], x_c.reshape(21, 3))
    ds = MotionDataset(clips, stats, cm, cs, seq_len=16, intensity_norm=norm)
    batch = ds.sample(6, torch.Generator().manual_seed(0))
    inten = batch["intensity"]
    assert inten.shape == (6, 16) and torch.isfinite(inten).all()
    assert not torch.allclose(inten, torch.ones_like(inten))  # not all ones
    assert (inten.std(dim=1) > 0).any()  # varies per frame, not only per window
    # Without a norm the batch has no intensity (old behaviour).
    assert "intensity" not in MotionDataset(clips, stats, cm, cs, seq_len=16).sample(
        2, torch.Generator().manual_seed(0)
    )

    from models.motion_sampling import make_scheduler
    from models.training import _motion_losses, motion_loss_weights

    torch.manual_seed(0)
    model = MotionDiT(**TINY_MODEL, intensity_norm=norm, null_intensity=1.0)
    seen: list[torch.Tensor] = []
    for layer in model.decoder_layers:
        layer.register_forward_hook(lambda mod, args, out: seen.append(args[5]))
    cfg = MotionTrainConfig(seq_len=16, cond_dropout=0.5)
    alphas = make_scheduler("ddim").alphas_cumprod.float()
    weights = torch.from_numpy(motion_loss_weights(stats)).float()
    keep = torch.tensor([True, False, True, True, False, True])
    gen = torch.Generator().manual_seed(1)
    _motion_losses(model, batch, alphas, weights, cfg, gen, keep=keep)
    assert len(seen) == 2
    for got in seen:  # [B, L, 1]: kept rows the target intensity, dropped rows 1
        torch.testing.assert_close(got[keep, :, 0], inten[keep])
        torch.testing.assert_close(got[~keep, :, 0], torch.ones(2, 16))


def test_null_intensity_only_with_the_config_setting() -> None:
    torch.manual_seed(0)
    old = MotionDiT(**TINY_MODEL).eval()
    new = MotionDiT(**TINY_MODEL, null_intensity=1.0).eval()
    half = torch.full((2, 16), 0.5)
    # Old configs: the given intensity reaches every row, null rows included (as before).
    assert torch.equal(old.encode_condition(None, False, half).intensity[..., 0], half)
    assert torch.all(new.encode_condition(None, False, half).intensity == 1.0)
    cond = torch.randn(2, 16, 8 + 79)
    enc = new.encode_condition(cond, torch.tensor([True, False]), half)
    assert torch.all(enc.intensity[0] == 0.5) and torch.all(enc.intensity[1] == 1.0)


def test_tiny_training_run_records_the_normalisation(tmp_path) -> None:
    from models.speech_data import EspeakError, generate_dataset, synthesize

    try:
        synthesize("a")
    except EspeakError:
        pytest.skip("espeak-ng library not available")
    data = tmp_path / "data"
    generate_dataset(data, 2, seed=5)
    tiny = dict(
        latent_dim=16, ff_dim=32, num_layers=1, num_heads=2, num_encoder_layers=1, seq_len=40,
        batch=4, num_threads=1, save_every=1000, log_every=1, warmup=2, val_fraction=0.0,
        dropout=0.0,
    )  # fmt: skip
    for _ in iter_train_motion(data, tmp_path / "m", MotionTrainConfig(steps=2, **tiny)):
        pass
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["null_intensity"] == 1.0 and cfg["intensity_norm"]["head_mean"] > 0
    for _ in iter_train_motion(
        data, tmp_path / "n", MotionTrainConfig(steps=2, intensity=False, **tiny)
    ):
        pass
    cfg = json.loads((tmp_path / "n" / "config.json").read_text())
    assert cfg.get("intensity_norm") is None and cfg.get("null_intensity") is None
    assert len(CHANNELS) == 90
