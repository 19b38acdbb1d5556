from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.motion_space import CHANNEL_INDEX, CHANNELS, pack_ditto
from models.pretrained import (
    PretrainedModelMissing,
    load_default_intensity_model,
    load_default_motion_model,
    load_motion_model,
    models_dir,
)
from models.speech_data import espeak_available
from models.training import (
    STATE_FILE,
    DatasetError,
    IntensityTrainConfig,
    MotionDataset,
    MotionStats,
    MotionTrainConfig,
    default_canonical_keypoints,
    fold_input_normalization,
    iter_train_motion,
    load_clips,
    motion_loss_weights,
    train_intensity,
    train_motion,
)

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng library not available")

TINY = dict(
    latent_dim=16, ff_dim=32, num_layers=1, num_heads=2, num_encoder_layers=1, seq_len=40,
    batch=4, num_threads=1, save_every=1000, log_every=1, warmup=2, val_fraction=0.0,
    dropout=0.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from models.speech_data import generate_dataset

    if not espeak_available():
        pytest.skip("espeak-ng library not available")
    d = tmp_path_factory.mktemp("speech")
    generate_dataset(d, 2, seed=5)
    return d


@pytest.fixture(scope="module")
def clips(data_dir):
    return load_clips(data_dir)


def test_load_clips_rejects_a_folder_without_manifest(tmp_path) -> None:
    with pytest.raises(DatasetError, match="manifest"):
        load_clips(tmp_path)


def test_dataset_windows_have_the_right_shapes(clips) -> None:
    x_c = default_canonical_keypoints()
    stats = MotionStats.from_clips(clips, x_c)
    cm, cs = MotionDataset.condition_stats(clips, x_c)
    ds = MotionDataset(clips, stats, cm, cs, seq_len=80)
    assert clips[0].features.shape[1] == 80 and clips[0].channels.shape[1] == len(CHANNELS)
    batch = ds.sample(3, torch.Generator().manual_seed(0))
    assert batch["x0"].shape == (3, 80, 265) and batch["ref"].shape == (3, 265)
    assert batch["cond"].shape == (3, 80, 80 + 79) and batch["mask"].shape == (3, 80)
    for t in batch.values():
        assert torch.isfinite(t).all()
    # A window past a clip's end is padded (mask 0) holding the last frame; the reference of a
    # window at frame s is the frame before it.
    n = int(ds.lengths[0])
    x0, ref, _cond, mask = ds.window(0, 5)
    assert mask[: n - 5].all() and not mask[n - 5 :].any()
    np.testing.assert_array_equal(ref, ds.x0[0][4])
    np.testing.assert_array_equal(x0[-1], ds.x0[0][-1])
    # Normalisation round trip; constant dims (translation) are flagged.
    packed = pack_ditto(clips[0].channels)
    np.testing.assert_allclose(stats.denormalize(stats.normalize(packed)), packed, atol=1e-9)
    from models.training import CONSTANT_STD

    assert stats.constant[199] and stats.std[199] == CONSTANT_STD
    assert not stats.constant[202 + 3 * 19 + 1]  # the jaw varies
    w = motion_loss_weights(stats)
    assert w.shape == (265,) and abs(w.mean() - 1) < 1e-9
    jaw = 202 + 3 * 19 + 1
    assert w[jaw] > w[202]  # lips weigh more than the forehead


def test_fold_input_normalization_matches_standardised_inputs() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 3)
    mean, std = np.arange(5.0), np.array([1.0, 2.0, 0.5, 4.0, 1.0])
    x = torch.randn(7, 5, dtype=torch.float64).float()
    want = lin((x - torch.tensor(mean).float()) / torch.tensor(std).float())
    fold_input_normalization(lin, mean, std)
    torch.testing.assert_close(lin(x), want, rtol=1e-5, atol=1e-5)


def test_a_few_steps_reduce_the_loss_and_the_folder_round_trips(data_dir, tmp_path) -> None:
    out = tmp_path / "m"
    cfg = MotionTrainConfig(steps=30, lr=3e-3, cond_dropout=0.0, **TINY)
    losses = []
    for p in iter_train_motion(data_dir, out, cfg):
        if p.phase == "motion":
            losses.append(p.losses["x0"])
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    for name in ("config.json", "diffusion_pytorch_model.safetensors", "motion_stats.json",
                 "training_log.json", STATE_FILE):  # fmt: skip
        assert (out / name).is_file(), name
    log = json.loads((out / "training_log.json").read_text())
    assert log["step"] == 30 and log["finished"] and len(log["log"]) == 30
    pm = load_motion_model(out)
    assert pm.model.config.latent_dim == 16 and pm.model.config.seq_len == 40
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    motion = pm.generate(audio, 16000, steps=2)
    assert motion.shape == (25, 265) and np.all(np.isfinite(motion))


def test_training_is_deterministic_for_a_seed(data_dir, tmp_path) -> None:
    cfg = MotionTrainConfig(steps=3, lr=1e-3, **TINY)
    sa = load_motion_model(train_motion(data_dir, tmp_path / "a", cfg)).model.state_dict()
    sb = load_motion_model(train_motion(data_dir, tmp_path / "b", cfg)).model.state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


def test_resume_continues_from_the_saved_state(data_dir, tmp_path) -> None:
    cfg = MotionTrainConfig(steps=4, lr=1e-3, **TINY)
    train_motion(data_dir, tmp_path / "a", cfg)
    # Stop after 2 steps with the 4-step schedule, then resume.
    it = iter_train_motion(data_dir, tmp_path / "b", MotionTrainConfig(
        steps=4, lr=1e-3, **{**TINY, "save_every": 2}))  # fmt: skip
    for p in it:
        if p.phase == "motion" and p.step == 2:
            break
    it.close()
    assert torch.load(tmp_path / "b" / STATE_FILE, weights_only=True)["step"] == 2
    train_motion(data_dir, tmp_path / "b", cfg)
    sa = load_motion_model(tmp_path / "a").model.state_dict()
    sb = load_motion_model(tmp_path / "b").model.state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


def test_intensity_training_writes_student_and_teacher(data_dir, tmp_path) -> None:
    from models.pretrained import load_intensity_model

    cfg = IntensityTrainConfig(teacher_steps=2, student_steps=2, batch=2, seq_len=40,
                               hidden_dim=16, num_layers=1, num_threads=1, warmup=1)  # fmt: skip
    out = train_intensity(data_dir, tmp_path / "a2i", cfg)
    student = load_intensity_model(out)
    teacher = load_intensity_model(out, teacher=True)
    feats = load_clips(data_dir)[0].features
    y = student.predict(feats)
    assert y.shape == (feats.shape[0],) and np.all(np.isfinite(y))
    assert type(teacher).__name__ == "IntensityTeacher"
    log = json.loads((out / "training_log.json").read_text())
    assert log["finished"] and {"teacher", "student"} <= set(log["final_losses"])


def test_missing_model_folder_raises_a_clear_error(tmp_path) -> None:
    with pytest.raises(PretrainedModelMissing, match="missing"):
        load_motion_model(tmp_path / "nope")


def test_shipped_motion_model_generates_finite_motion() -> None:
    if not (models_dir() / "motion_default" / "config.json").is_file():
        pytest.skip("resources/models/motion_default is not shipped yet")
    pm = load_default_motion_model()
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    motion = pm.generate(audio, 16000, steps=4)
    assert motion.shape == (25, 265) and np.all(np.isfinite(motion))
    from models.motion_space import unpack_ditto

    ch = unpack_ditto(motion)
    assert np.abs(ch[:, CHANNEL_INDEX["exp_19_y"]]).max() < 0.5  # within a face's range


def test_shipped_intensity_model_predicts() -> None:
    if not (models_dir() / "intensity_default" / "config.json").is_file():
        pytest.skip("resources/models/intensity_default is not shipped yet")
    student = load_default_intensity_model()
    from models.audio_features import LogMelFeatures

    audio = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    y = student.predict(LogMelFeatures()(audio, 16000))
    assert y.shape == (25,) and np.all(np.isfinite(y)) and np.all(y >= 0)
