"""Motion sampling: window fusion, determinism, constraints (range, regions, limits), guidance,
progress/cancel, streaming — on tiny random MotionDiTs."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import tiny_dit

from models.motion_dit import MotionDiT
from models.motion_sampling import (
    GenerationCancelled,
    ICInitSettings,
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


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def model() -> MotionDiT:
    return tiny_dit(0)


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

    # Incremental previews: the frames from preview_from on are all that changed.
    mine = np.zeros((0, 265))
    for e in iter_generate_motion(model, feats, COND, REF, steps=2, overlap=4):
        if e.preview is None:
            continue
        assert not e.preview.flags.writeable
        assert 0 <= e.preview_from <= mine.shape[0]
        mine = np.concatenate([mine[: e.preview_from], e.preview[e.preview_from :]])
        np.testing.assert_array_equal(mine, e.preview)
    assert [e.preview_from for e in events if e.preview is not None] == [0, 12, 24]

    seen = []
    with pytest.raises(GenerationCancelled):
        gen(model, feats, callback=seen.append, cancel=lambda: len(seen) >= 5)
    assert len(seen) == 5


def test_preview_offset_places_a_range_preview(model, feats):
    # A range with context starts the generated span (and row 0 of the preview) later.
    init = np.zeros((T, 265))
    events = list(
        iter_generate_motion(
            model, feats, COND, REF, steps=1, overlap=4, init_motion=init, frame_range=(20, 30),
            context=4,
        )
    )  # fmt: skip
    previews = [e for e in events if e.preview is not None]
    assert previews and all(e.preview_offset == 16 for e in previews)
    last, result = previews[-1], events[-1].result
    np.testing.assert_array_equal(last.preview[20 - 16 : 30 - 16], result[20:30])
    plain = [
        e for e in iter_generate_motion(model, feats, COND, REF, steps=1) if e.preview is not None
    ]
    assert all(e.preview_offset == 0 for e in plain)


def test_condition_rows_read_only_the_window():
    # Per-frame conditions are indexed before conversion: a window costs O(window), and a
    # NaN in the rows read is still an error.
    emotion = np.zeros((100_000, 8))
    emotion[:, 4] = 1.0
    cond = MotionConditions(x_c=np.zeros(63), eye_open=np.full(2, 0.3), eye_ball=np.zeros(6),
                            emotion=emotion)  # fmt: skip
    rows = cond.frames(99_990, 100_010)
    assert rows.shape == (20, 79) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[:, :8], np.broadcast_to(emotion[0], (20, 8)))
    emotion[5, 0] = np.nan
    with pytest.raises(ValueError, match="emotion has NaN"):
        cond.frames(0, 10)
    cond.frames(10, 20)  # rows without the NaN


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


# --- initial noise and IC-Init -------------------------------------------------------------------
IC = ICInitSettings(steps=5, lookahead=2, candidates=3, beams=2)


def test_init_noise_with_eta_zero_reproduces_exactly(model, feats):
    starts = window_starts(T, 16, 4)
    noise = np.random.default_rng(7).normal(size=(len(starts), 16, 265)).astype(np.float32)
    a = gen(model, feats, eta=0.0, init_noise=noise, seed=1)
    # eta 0: the result depends on the noise only, not on the seed.
    assert np.array_equal(a, gen(model, feats, eta=0.0, init_noise=noise, seed=5))
    assert not np.allclose(a, gen(model, feats, eta=0.0, seed=1))
    # A callable giving the same arrays is the same; None for a window draws as usual.
    b = gen(model, feats, eta=0.0, seed=1, init_noise=lambda k, s: noise[k])
    assert np.array_equal(a, b)
    c = gen(model, feats, eta=0.0, seed=1, init_noise=lambda k, s: None if k == 1 else noise[k])
    assert np.array_equal(c[:12], a[:12]) and not np.allclose(c[12:], a[12:])
    with pytest.raises(ValueError, match="init_noise"):
        gen(model, feats, init_noise=noise[:2])


def test_init_noise_equal_to_the_seeded_draw_changes_nothing(model, feats):
    import torch

    # The generator's first draw of each window, when nothing else draws (eta 0, no constraints).
    g = torch.Generator().manual_seed(1)
    drawn = [torch.randn((1, 16, 265), generator=g)[0].numpy() for _ in window_starts(T, 16, 4)]
    assert np.array_equal(
        gen(model, feats, eta=0.0), gen(model, feats, eta=0.0, init_noise=np.stack(drawn))
    )


def test_ic_init_is_finite_and_deterministic(model, feats):
    a = gen(model, feats, ic_init=IC)
    assert a.shape == (T, 265) and np.all(np.isfinite(a))
    assert np.array_equal(a, gen(model, feats, ic_init=IC))
    assert not np.allclose(a, gen(model, feats, ic_init=IC, seed=2))
    assert not np.allclose(a, gen(model, feats, eta=0.0, steps=IC.steps))  # the search matters
    v = gen(model, feats, ic_init=IC, num_variations=2, intensity=np.linspace(0.5, 1.5, T))
    assert v.shape == (2, T, 265) and np.all(np.isfinite(v))
    with pytest.raises(ValueError, match="ddim"):
        gen(model, feats, ic_init=IC, scheduler="lcm")
    with pytest.raises(ValueError, match="lookahead"):
        gen(model, feats, ic_init=ICInitSettings(steps=4, lookahead=5))


def test_ic_init_samples_each_window_from_the_searched_noise(model, feats, monkeypatch):
    import torch

    import models.ic_init
    import models.motion_sampling as ms

    searched, started = [], []
    real_search, real_sampler = models.ic_init.ic_init_search, ms._window_sampler

    def spy_search(*args, **kw):
        best, rewards, trace = real_search(*args, **kw)
        searched.append((best.clone(), trace.segments.clone()))
        return best, rewards, trace

    def spy_sampler(*args):
        started.append(None if args[-1] is None else args[-1].clone())
        return real_sampler(*args)

    monkeypatch.setattr(models.ic_init, "ic_init_search", spy_search)
    monkeypatch.setattr(ms, "_window_sampler", spy_sampler)
    events = list(iter_generate_motion(model, feats, COND, REF, seed=1, overlap=4, ic_init=IC))
    W = len(window_starts(T, 16, 4))
    assert len(searched) == len(started) == W
    for (best, _segs), init in zip(searched, started, strict=True):
        assert best.shape == (1, 16, 265) and init.shape == (1, 16, 265)
        assert torch.equal(init[0], best[0])
    # eta 0: sampling the chosen noise retraces the search's best path (up to batch rounding).
    starts = window_starts(T, 16, 4)
    out = events[-1].result
    torch.testing.assert_close(
        torch.from_numpy(out[starts[-1] + 4 :]).float(),
        searched[-1][1][0, 4 : T - starts[-1]],
        atol=1e-4,
        rtol=0,
    )
    # Progress: every denoiser call of the search (5 per window) and of the sampling (5).
    steps = [e.step for e in events if e.preview is None and e.result is None]
    assert steps == list(range(1, W * 2 * IC.steps + 1)) and events[-1].total == W * 10


def test_ic_init_cancel_during_the_search_stops_it(model, feats):
    import threading

    seen = []
    with pytest.raises(GenerationCancelled):
        gen(model, feats, ic_init=IC, callback=seen.append, cancel=lambda: len(seen) >= 2)
    assert len(seen) == 2 and seen[-1].step == 2 and seen[-1].window == 0  # inside the search
    assert not [t for t in threading.enumerate() if t.name == "ic-init-search"]
    # Closing the iterator mid-search ends the search thread too.
    it = iter_generate_motion(model, feats, COND, REF, steps=4, overlap=4, ic_init=IC)
    next(it)
    it.close()
    assert not [t for t in threading.enumerate() if t.name == "ic-init-search"]


def test_ic_init_keeps_constraints(model, feats):
    base = gen(model, feats)
    out = gen(model, feats, ic_init=IC, init_motion=base, frame_range=(12, 30))
    assert np.array_equal(out[:12], base[:12]) and np.array_equal(out[30:], base[30:])
    assert not np.allclose(out[12:30], base[12:30])
    lat = gen(model, feats, ic_init=ICInitSettings(steps=4, lookahead=1, reward_on="latent"))
    assert np.all(np.isfinite(lat))
