"""Motion sampling: window fusion, determinism, constraints (range, regions, limits), guidance,
progress/cancel, streaming — on tiny random MotionDiTs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.motion_dit import MotionDiT
from models.motion_sampling import (
    GenerationCancelled,
    MotionConditions,
    MotionStream,
    crossfade_windows,
    generate_motion,
    iter_generate_motion,
    make_scheduler,
    region_dims,
    window_starts,
)

T = 40


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model() -> MotionDiT:
    torch.manual_seed(0)
    return MotionDiT(
        seq_len=16, audio_dim=8, latent_dim=32, ff_dim=64, num_layers=2, num_heads=4, dropout=0.0
    ).eval()


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(T, 8)).astype(np.float32)


COND = MotionConditions(x_c=np.zeros((21, 3)), eye_open=np.full(2, 0.3), eye_ball=np.zeros(6))
REF = np.zeros(265)


def gen(model, feats, **kw):
    kw = {"steps": 4, "seed": 1, "overlap": 4, **kw}
    return generate_motion(model, feats, COND, REF, **kw)


# --- fusion --------------------------------------------------------------------------------------
def test_window_starts_cover():
    assert window_starts(80, 80, 10) == [0]
    assert window_starts(81, 80, 10) == [0, 70]
    assert window_starts(300, 80, 10) == [0, 70, 140, 210, 280]
    assert window_starts(290, 80, 10) == [0, 70, 140, 210]
    with pytest.raises(ValueError):
        window_starts(10, 8, 8)


def test_crossfade_equals_each_window_away_from_the_overlap():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(16, 5)), rng.normal(size=(16, 5))
    out = crossfade_windows([a, b], [0, 12], 28)
    assert np.array_equal(out[:12], a[:12])
    assert np.array_equal(out[16:], b[4:])
    w = (np.arange(1, 5) / 5)[:, None]
    np.testing.assert_allclose(out[12:16], (1 - w) * a[12:] + w * b[:4])


def test_crossfade_has_no_seam():
    # Windows of the same smooth motion, each with its own offset and a little frame jitter (as
    # consecutive generated windows differ): the joined signal's second difference at the seams
    # is no larger than inside the windows.
    rng = np.random.default_rng(3)
    t = np.arange(200.0)
    signal = np.stack([np.sin(2 * np.pi * t / 40), np.cos(2 * np.pi * t / 55)], 1)
    starts = window_starts(200, 80, 10)
    wins = [
        signal[s : s + 80] + 0.05 * k + 0.01 * rng.normal(size=signal[s : s + 80].shape)
        for k, s in enumerate(starts)
    ]
    wins[-1] = np.concatenate([wins[-1], np.zeros((80 - len(wins[-1]), 2))])[:80]
    out = crossfade_windows(wins, starts, 200)
    d2 = np.abs(np.diff(out, 2, axis=0))
    inside = max(
        np.abs(np.diff(w[: min(80, 200 - s)], 2, axis=0)).max()
        for w, s in zip(wins, starts, strict=True)
    )
    seams = np.concatenate([np.arange(s - 2, s + 12) for s in starts[1:]])
    assert d2[seams].max() <= inside + 1e-12


def test_generated_seams_are_not_rougher_than_inside(model):
    feats = np.random.default_rng(5).normal(size=(120, 8)).astype(np.float32)
    out = gen(model, feats, overlap=6, guidance_scale=1.0)
    d2 = np.abs(np.diff(out, 2, axis=0)).max(axis=1)  # [T - 2]
    starts = window_starts(120, 16, 6)
    seam = np.zeros(d2.size, bool)
    for s in starts[1:]:
        seam[s - 1 : s + 6] = True
    assert d2[seam].max() <= d2[~seam].max()


# --- generation ----------------------------------------------------------------------------------
def test_shapes_and_seed_determinism(model, feats):
    a = gen(model, feats)
    assert a.shape == (T, 265) and a.dtype == np.float64 and np.all(np.isfinite(a))
    assert np.array_equal(a, gen(model, feats))
    assert not np.allclose(a, gen(model, feats, seed=2))


def test_variations_are_a_batch_of_distinct_samples(model, feats):
    v = gen(model, feats, num_variations=3)
    assert v.shape == (3, T, 265)
    assert not np.allclose(v[0], v[1]) and not np.allclose(v[1], v[2])


def test_ddim_50_steps_and_lcm(model, feats):
    assert gen(model, feats, steps=50).shape == (T, 265)
    lcm = gen(model, feats, scheduler="lcm")
    assert lcm.shape == (T, 265) and np.all(np.isfinite(lcm))
    s = make_scheduler("ddim")
    s.set_timesteps(10)
    assert s.timesteps.tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert s.config.prediction_type == "sample"
    with pytest.raises(ValueError):
        make_scheduler("euler")


def test_range_regeneration_keeps_the_rest_bit_exact(model, feats):
    base = gen(model, feats)
    base[5] += 1e-9  # values the model would never produce itself
    out = gen(model, feats, seed=7, init_motion=base, frame_range=(12, 30))
    assert np.array_equal(out[:12], base[:12]) and np.array_equal(out[30:], base[30:])
    assert not np.allclose(out[12:30], base[12:30])


def test_long_range_spanning_windows(model, feats):
    base = gen(model, feats)
    out = gen(model, feats, seed=3, init_motion=base, frame_range=(2, 38), context=2)
    assert np.array_equal(out[:2], base[:2]) and np.array_equal(out[38:], base[38:])


def test_region_masks_keep_other_dims_bit_exact(model, feats):
    base = gen(model, feats)
    for regions in (["lips"], ["eyes", "brows"], ["pose"]):
        dims = region_dims(*regions)
        out = gen(model, feats, seed=9, init_motion=base, regions=regions)
        assert np.array_equal(out[:, ~dims], base[:, ~dims])
        assert not np.allclose(out[:, dims], base[:, dims])
    both = gen(model, feats, seed=9, init_motion=base, regions=["lips"], frame_range=(10, 20))
    lips = region_dims("lips")
    assert np.array_equal(both[:, ~lips], base[:, ~lips])
    assert np.array_equal(both[:10], base[:10]) and np.array_equal(both[20:], base[20:])


def test_region_dims_sizes():
    assert region_dims("lips").sum() == 18  # 6 keypoints x 3
    assert region_dims("eyes").sum() == 15
    assert region_dims("brows").sum() == 6
    assert region_dims("pose").sum() == 202  # scale, 3 x 66 bin logits, t
    assert (region_dims("pose") | region_dims("expression")).all()
    with pytest.raises(ValueError, match="unknown region"):
        region_dims("ears")


def test_magnitude_limits(model, feats):
    lo, hi = np.full(265, -0.2), np.full(265, 0.3)
    out = gen(model, feats, limits=(lo, hi))
    assert out.min() >= -0.2 - 1e-6 and out.max() <= 0.3 + 1e-6


def test_guidance_one_equals_conditional_branch(model, feats):
    # With g = 1 the unconditional branch is never evaluated: same result as g = 1 computed as
    # u + 1 * (c - u) up to rounding.
    a = gen(model, feats, guidance_scale=1.0)
    b = gen(model, feats, guidance_scale=1.0 + 1e-7)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert not np.allclose(a, gen(model, feats, guidance_scale=3.0))


def test_intensity_changes_the_motion(model, feats):
    a = gen(model, feats)
    assert np.array_equal(a, gen(model, feats, intensity=np.ones(T)))
    assert not np.allclose(a, gen(model, feats, intensity=np.full(T, 0.2)))
    with pytest.raises(ValueError, match="intensity"):
        gen(model, feats, intensity=np.ones(T - 1))


def test_progress_previews_and_cancel(model, feats):
    events = list(iter_generate_motion(model, feats, COND, REF, steps=3, overlap=4))
    steps = [e for e in events if e.preview is None and e.result is None]
    previews = [e.preview for e in events if e.preview is not None]
    assert [e.step for e in steps] == list(range(1, 3 * 3 + 1))  # 3 windows x 3 steps
    assert [p.shape[0] for p in previews] == [16, 28, 40]
    assert events[-1].result.shape == (T, 265) and events[-1].fraction == 1.0
    np.testing.assert_array_equal(previews[-1], events[-1].result)

    seen = []
    with pytest.raises(GenerationCancelled):
        gen(model, feats, callback=seen.append, cancel=lambda: len(seen) >= 5)
    assert len(seen) == 5


def test_bad_inputs(model, feats):
    with pytest.raises(ValueError, match="features"):
        gen(model, feats[:, :5])
    bad = feats.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gen(model, bad)
    with pytest.raises(ValueError, match="init_motion"):
        gen(model, feats, frame_range=(1, 5))
    with pytest.raises(ValueError, match="frame_range"):
        gen(model, feats, init_motion=np.zeros((T, 265)), frame_range=(5, 5))
    with pytest.raises(ValueError, match="ref_motion"):
        generate_motion(model, feats, COND, np.zeros(264))
    with pytest.raises(ValueError, match="eye_open"):
        generate_motion(model, feats, MotionConditions(np.zeros(63), np.zeros(3), np.zeros(6)), REF)


def test_per_frame_conditions(model, feats):
    emo = np.zeros((T, 8))
    emo[:, 3] = 1.0  # happy
    c = MotionConditions(x_c=np.zeros(63), eye_open=np.full((10, 2), 0.3), eye_ball=np.zeros(6),
                         emotion=emo)  # fmt: skip
    assert c.frames(0, 50).shape == (50, 79)
    assert not np.allclose(
        generate_motion(model, feats, c, REF, steps=3), gen(model, feats, steps=3)
    )


# --- streaming -----------------------------------------------------------------------------------
def test_stream_emits_hops_and_never_rewrites(model, feats):
    s = MotionStream(model, COND, REF, hop=4, steps=3)
    assert s.push(feats[:3]).shape == (0, 265)  # not a full hop yet
    got = [s.push(feats[3:10])]
    assert got[0].shape == (8, 265)
    first = got[0].copy()
    for i in range(10, T, 6):
        got.append(s.push(feats[i : i + 6]))
    got.append(s.flush())
    out = np.concatenate(got)
    assert out.shape == (T, 265) and np.all(np.isfinite(out))
    assert np.array_equal(out[:8], first) and np.array_equal(s.motion, out)


def test_stream_is_deterministic_and_handles_lookahead(model, feats):
    def run(**kw):
        s = MotionStream(model, COND, REF, steps=3, seed=4, **kw)
        parts = [s.push(feats[i : i + 5]) for i in range(0, T, 5)]
        return np.concatenate([*parts, s.flush()])

    a = run(hop=5)
    assert np.array_equal(a, run(hop=5))
    la = run(hop=5, lookahead=3)
    assert la.shape == (T, 265) and not np.allclose(a, la)
    with pytest.raises(ValueError):
        MotionStream(model, COND, REF, hop=17)
