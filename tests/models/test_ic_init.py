from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from models.ic_init import (
    frequency_reward,
    gaussian_lowpass,
    ic_init_search,
    junction_penalty,
    segment_intensity_z,
)
from models.motion_sampling import make_scheduler

S = (4, 3)  # a segment: 4 frames x 3 dims


def toy_denoise(x: torch.Tensor, i: int, seg: int, prev: torch.Tensor | None) -> torch.Tensor:
    """Deterministic x0 estimate: squashes the latent and drifts towards the parent's mean."""
    base = 0.5 * torch.tanh(x)
    if prev is not None:
        base = base + 0.3 * prev.mean(dim=(1, 2), keepdim=True)
    return base


def hand_reward(z, ref, prev, seg):
    """Prefers segment means near a per-segment target, and continuity with the parent."""
    target = [0.2, -0.1, 0.15][seg]
    r = -((z.mean(dim=(1, 2)) - target) ** 2)
    if prev is not None:
        r = r - 0.5 * (z[:, 0] - prev[:, -1]).pow(2).mean(dim=1)
    return r


def pools(L: int, K: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(K, *S, generator=g) for _ in range(L)]


def sequential(noises, steps=30, lookahead=3):
    """Denoise one path segment by segment; returns (segments, rewards at the lookahead x0)."""
    sch = make_scheduler("ddim")
    sch.set_timesteps(steps)
    segs, rewards, prev = [], [], None
    for seg, n in enumerate(noises):
        x = n[None].clone()
        x0_look = None
        for i, t in enumerate(sch.timesteps):
            x0 = toy_denoise(x, i, seg, prev)
            if i == lookahead - 1:
                x0_look = x0
            x = sch.step(x0, t, x, eta=0.0).prev_sample
        rewards.append(float(hand_reward(x0_look, None, prev, seg)[0]))
        segs.append(x[0])
        prev = x
    return segs, rewards


def run(L, K, B, pool, **kw):
    return ic_init_search(
        toy_denoise, make_scheduler("ddim"), S, L, torch.zeros(S),
        beams=B, candidates=K, noise_fn=lambda seg, beam, n: pool[seg][:n],
        reward_fn=hand_reward, **kw,
    )  # fmt: skip


def test_returns_the_exhaustive_optimum_when_the_beam_holds_everything() -> None:
    L, K = 3, 3
    pool = pools(L, K)
    best_noise, rewards, trace = run(L, K, K**L, pool, select_by="cumulative")
    totals = {}
    for path in itertools.product(range(K), repeat=L):
        _, r = sequential([pool[s][k] for s, k in enumerate(path)])
        totals[path] = sum(r)
    best_path = max(totals, key=totals.get)
    expect = torch.stack([pool[s][k] for s, k in enumerate(best_path)])
    assert torch.equal(best_noise, expect)
    assert float(rewards.sum()) == pytest.approx(totals[best_path], abs=1e-6)
    # The returned segments are what sequential denoising of the best noise gives.
    segs, r = sequential(list(best_noise))
    torch.testing.assert_close(trace.segments, torch.stack(segs), atol=1e-6, rtol=0)
    np.testing.assert_allclose(rewards.numpy(), r, atol=1e-6)


def test_paper_settings_match_a_reference_beam_search() -> None:
    """B=2, K=4, T'=3, T=30: the top-2 pairs by reward are kept at every level; the result is
    the best of the final beams by path reward. (Selecting by the segment's reward, as the paper
    does, can prune the greedy path, so it is not guaranteed to beat greedy.)"""
    L, K, B = 3, 4, 2
    pool = pools(L, K, seed=5)
    best_noise, rewards, trace = run(L, K, B, pool)
    # Reference beam search by brute force over the same candidate pools.
    beams = [([], 0.0, [])]
    for _ in range(L):
        budget = []
        for b, (ks, total, _rs) in enumerate(beams):
            for k in range(K):
                _, r = sequential([pool[s][kk] for s, kk in enumerate([*ks, k])])
                budget.append((r[-1], b * K + k, [*ks, k], total + r[-1], r))
        budget.sort(key=lambda e: (-e[0], e[1]))
        beams = [(ks, tot, rs) for _, _, ks, tot, rs in budget[:B]]
    ks, total, _ = max(beams, key=lambda e: e[1])
    assert torch.equal(best_noise, torch.stack([pool[s][k] for s, k in enumerate(ks)]))
    assert float(rewards.sum()) == pytest.approx(total, abs=1e-6)
    assert len(trace.levels) == L and trace.levels[1]["rewards"].shape == (B * K,)
    assert trace.calls == K * 3 + B * 27 + (L - 1) * (B * K * 3 + B * 27)


def test_determinism_with_gaussian_draws() -> None:
    args = (toy_denoise, make_scheduler("ddim"), S, 3, torch.zeros(S), np.array([0.5, 1.0, 2.0]))
    a = ic_init_search(*args, generator=torch.Generator().manual_seed(1))
    b = ic_init_search(*args, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3, *S) and a[1].shape == (3,)
    c = ic_init_search(*args, generator=torch.Generator().manual_seed(1), reward_on="latent")
    assert c[0].shape == (3, *S) and torch.isfinite(c[1]).all()


def test_frequency_reward_by_hand() -> None:
    # A constant signal lives at frequency 0, where G = 1: the low-frequency term is the mean of
    # the elementwise product; the high-frequency term vanishes.
    z = torch.full((1, 4, 3), 2.0, dtype=torch.float64)
    ref = torch.full((4, 3), 0.5, dtype=torch.float64)
    r = frequency_reward(z, ref, z.clone(), z_score=0.0)
    assert float(r[0]) == pytest.approx(0.5 * 2.0 * 0.5)  # lambda_low = sigmoid(0) = 1/2
    # An alternating signal along time sits at the Nyquist frequency (f = -1 on that axis):
    # G = exp(-1 / (2 d0^2)).
    alt = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)[None, :, None].expand(1, 4, 3)
    d0 = 0.25
    g = np.exp(-1.0 / (2 * d0**2))
    r = frequency_reward(alt, alt[0], alt.clone(), z_score=0.0, cutoff=d0)
    assert float(r[0]) == pytest.approx(0.5 * g**2 - 0.5 * (1 - g) ** 2)
    # More intensity: lambda_low falls, so the same candidate scores lower against the reference.
    assert frequency_reward(z, ref, None, 1.0)[0] < frequency_reward(z, ref, None, -1.0)[0]
    lp = gaussian_lowpass((4, 3), 0.25)
    assert lp[0, 0] == 1.0 and lp.shape == (4, 3)


def test_intensity_z_and_errors() -> None:
    np.testing.assert_allclose(segment_intensity_z(np.ones((3, 5)), 3), 0.0)
    z = segment_intensity_z(np.array([1.0, 2.0, 3.0]), 3)
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        segment_intensity_z(np.ones(4), 3)
    with pytest.raises(ValueError, match="lookahead"):
        ic_init_search(toy_denoise, make_scheduler("ddim"), S, 2, torch.zeros(S), lookahead=0)
    with pytest.raises(ValueError, match="reference"):
        ic_init_search(toy_denoise, make_scheduler("ddim"), S, 2, torch.zeros(5))


# --- the reward's options and our continuity variant ---------------------------------------------
def test_cosine_similarity_rewards_closeness_not_magnitude() -> None:
    ref = torch.tensor([[1.0, 0.5, -0.2]] * 4, dtype=torch.float64)  # a frame repeated: DC only
    close, big = ref[None].clone(), 5.0 * ref[None]
    # The paper's dot product prefers the larger candidate along the reference ...
    assert frequency_reward(big, ref, None, 0.0)[0] > frequency_reward(close, ref, None, 0.0)[0]
    # ... the cosine does not care about scale; equal shapes score lambda_low * 1.
    cos = frequency_reward(torch.cat([close, big]), ref, None, 0.0, similarity="cosine")
    torch.testing.assert_close(cos, torch.full((2,), 0.5, dtype=torch.float64))
    other = torch.tensor([[0.2, -1.0, 0.3]] * 4, dtype=torch.float64)[None]
    assert frequency_reward(other, ref, None, 0.0, similarity="cosine")[0] < 0.5
    with pytest.raises(ValueError, match="similarity"):
        frequency_reward(close, ref, None, 0.0, similarity="l2")


def test_lambda_rules_are_mirror_images() -> None:
    z = torch.full((1, 4, 3), 2.0, dtype=torch.float64)
    ref = torch.full((4, 3), 0.5, dtype=torch.float64)
    text = frequency_reward(z, ref, None, 1.0, lambda_rule="text")  # sigmoid(-1) * 1.0
    formula = frequency_reward(z, ref, None, 1.0, lambda_rule="formula")  # sigmoid(1) * 1.0
    assert float(text[0]) == pytest.approx(1.0 / (1.0 + np.exp(1.0)))
    assert float(formula[0]) == pytest.approx(1.0 / (1.0 + np.exp(-1.0)))
    with pytest.raises(ValueError, match="lambda_rule"):
        frequency_reward(z, ref, None, 1.0, lambda_rule="other")


def test_junction_penalty_by_hand() -> None:
    prev = torch.arange(5, dtype=torch.float64)[None, :, None].expand(1, 5, 2).clone()  # step 1
    # Overlap 0: the first frame against the frame before it (4), relative to the step (1).
    x0 = torch.full((2, 5, 2), 4.0, dtype=torch.float64)
    x0[1, 0] = 7.0
    prev2 = prev.expand(2, 5, 2)
    np.testing.assert_allclose(junction_penalty(x0, prev2, 0).numpy(), [0.0, 9.0])
    # Overlap 2: the two shared frames (3, 4); a constant offset of 2 survives the low-pass.
    x0 = torch.tensor([5.0, 6.0, 0.0, 0.0, 0.0], dtype=torch.float64)[None, :, None].expand(1, 5, 2)
    assert float(junction_penalty(x0, prev, 2)[0]) == pytest.approx(4.0)
    # An alternating difference sits at the Nyquist frequency and is damped by G there.
    x0 = torch.tensor([4.0, 3.0, 0.0, 0.0, 0.0], dtype=torch.float64)[None, :, None].expand(1, 5, 2)
    g = np.exp(-1.0 / (2 * 0.25**2))
    assert float(junction_penalty(x0, prev, 2, d0=0.25)[0]) == pytest.approx(g**2)
    with pytest.raises(ValueError, match="overlap"):
        junction_penalty(x0, prev, 6)


def test_continuity_picks_the_candidate_that_joins_best() -> None:
    """With only the junction term (reference 0, dot product, no high-frequency term), the
    search keeps, per segment, the candidate whose lookahead x0 joins its parent best; with one
    beam that is greedy, checked against the lookahead x0 computed by hand."""
    L, K = 3, 4
    pool = pools(L, K, seed=3)
    best_noise, rewards, trace = ic_init_search(
        toy_denoise, make_scheduler("ddim"), S, L, torch.zeros(S), beams=1, candidates=K,
        noise_fn=lambda seg, beam, n: pool[seg][:n], continuity=1.0, use_previous=False,
        overlap=1,
    )  # fmt: skip
    sch = make_scheduler("ddim")
    sch.set_timesteps(30)
    prev = None
    for seg in range(L):
        cand = pool[seg]
        x, x0 = cand.clone(), None
        for i in range(3):  # the lookahead, all candidates at once
            x0 = toy_denoise(x, i, seg, None if prev is None else prev.expand(K, *S))
            x = sch.step(x0, sch.timesteps[i], x, eta=0.0).prev_sample
        if prev is None:
            k = 0  # nothing to join: every reward 0, ties to the first
        else:
            pen = junction_penalty(x0.double(), prev.expand(K, *S).double(), 1)
            k = int(torch.argmin(pen))
            assert float(rewards[seg]) == pytest.approx(-float(pen[k]), rel=1e-6)
        assert torch.equal(best_noise[seg], cand[k])
        prev = trace.segments[seg][None]
    with pytest.raises(ValueError, match="continuity"):
        ic_init_search(toy_denoise, make_scheduler("ddim"), S, 1, torch.zeros(S), continuity=-1)


def test_latent_reward_sees_noised_targets_and_the_parent() -> None:
    seen = []

    def spy(z, ref, prev, seg):
        seen.append((ref.clone(), None if prev is None else prev.clone()))
        return torch.zeros(z.shape[0])

    parent = torch.full(S, 3.0)
    calls = []

    def denoise(x, i, seg, prev):
        calls.append(prev)
        return toy_denoise(x, i, seg, prev)

    ic_init_search(
        denoise, make_scheduler("ddim"), S, 2, torch.ones(S), beams=1, candidates=2,
        reward_fn=spy, reward_on="latent", parent=parent,
    )  # fmt: skip
    ref0, prev0 = seen[0]
    assert not torch.equal(ref0, torch.ones(S))  # tau-noised (line 1) ...
    assert torch.equal(ref0, seen[1][0])  # ... once for the whole search
    assert prev0.shape == (2, *S) and not torch.equal(prev0[0], parent)  # the noised parent
    assert torch.equal(calls[0][0], parent)  # the denoiser gets the clean parent


# --- IC-Init inside the generation (models.motion_sampling) -------------------------------------
@pytest.fixture(scope="module")
def tiny():
    from tiny_models import tiny_dit

    torch.manual_seed(0)
    return tiny_dit(0)


def _gen_inputs():
    from models.motion_sampling import MotionConditions

    feats = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    cond = MotionConditions(x_c=np.zeros((21, 3)), eye_open=np.full(2, 0.3), eye_ball=np.zeros(6))
    return feats, cond, np.zeros(265)


def test_sequence_search_result_is_the_best_path(tiny, monkeypatch) -> None:
    """The paper's search over all windows: one ic_init_search per variation over W segments,
    the result is its best path's windows joined by the crossfade, and no window is re-sampled
    (eta 0)."""
    import models.motion_sampling as ms
    from models.motion_sampling import ICInitSettings, crossfade_windows, iter_generate_motion

    torch.set_num_threads(1)
    feats, cond, ref = _gen_inputs()
    searched, sampled = [], []
    real_search, real_sampler = ic_init_search, ms._window_sampler

    def spy_search(*args, **kw):
        out = real_search(*args, **kw)
        searched.append((args[3], out[2].segments.clone(), kw))
        return out

    def spy_sampler(*args):
        sampled.append(args)
        return real_sampler(*args)

    import models.ic_init

    monkeypatch.setattr(models.ic_init, "ic_init_search", spy_search)
    monkeypatch.setattr(ms, "_window_sampler", spy_sampler)
    ic = ICInitSettings.paper(steps=5, lookahead=2, candidates=3, tau=3)
    events = list(iter_generate_motion(tiny, feats, cond, ref, seed=1, overlap=4, ic_init=ic))
    starts = ms.window_starts(40, 16, 4)
    assert len(searched) == 1 and searched[0][0] == len(starts) and not sampled
    kw = searched[0][2]
    assert kw["beams"] == 2 and kw["reward_on"] == "latent" and kw["similarity"] == "dot"
    expect = crossfade_windows(list(searched[0][1].double().numpy()), starts, 40)
    np.testing.assert_allclose(events[-1].result, expect, atol=1e-6)
    ticks = [e for e in events if e.preview is None and e.result is None]
    assert [e.step for e in ticks] == list(range(1, len(starts) * ic.steps + 1))
    # Each search event names the window (level) being searched.
    assert [e.window for e in ticks] == [w for w in range(len(starts)) for _ in range(ic.steps)]
    assert events[-1].total == len(starts) * ic.steps
    # Determinism, variations, and eta > 0 re-samples every window from the path's noise.
    gen = lambda **kw: ms.generate_motion(tiny, feats, cond, ref, seed=1, overlap=4, **kw)  # noqa: E731
    assert np.array_equal(events[-1].result, gen(ic_init=ic))
    v = gen(ic_init=ic, num_variations=2, intensity=np.linspace(0.5, 1.5, 40))
    assert v.shape == (2, 40, 265) and np.all(np.isfinite(v))
    gen(ic_init=ICInitSettings.paper(steps=4, lookahead=1, candidates=2, tau=2, eta=0.5))
    assert len(sampled) == len(starts)


def test_presets_and_the_per_window_fallback(tiny) -> None:
    from models.motion_sampling import ICInitSettings, _as_ic_settings, generate_motion

    assert _as_ic_settings(True) == ICInitSettings.paper()
    s = ICInitSettings.seamless()
    assert (s.search, s.reward_on, s.similarity, s.continuity) == ("sequence", "x0", "cosine", 1.0)
    p = ICInitSettings.paper()
    assert (p.beams, p.candidates, p.lookahead, p.steps, p.tau_steps) == (2, 4, 3, 30, 20)
    assert (p.reward_on, p.reference, p.similarity, p.continuity) == ("latent", "source", "dot", 0)
    feats, cond, ref = _gen_inputs()
    gen = lambda **kw: generate_motion(tiny, feats, cond, ref, **{"seed": 1, "overlap": 4, **kw})  # noqa: E731
    base = gen(steps=4)
    small = ICInitSettings.seamless(steps=4, lookahead=1, candidates=2)
    # A range regeneration runs the per-window search (constraints) and keeps the rest exact.
    out = gen(ic_init=small, init_motion=base, frame_range=(12, 30))
    assert np.array_equal(out[:12], base[:12]) and np.array_equal(out[30:], base[30:])
    # An overlap too large for the sequence search (the frame before a window would be
    # crossfaded) runs per window too.
    assert np.all(np.isfinite(gen(ic_init=small, overlap=8)))
    for bad in (
        dict(search="beam"), dict(similarity="l1"), dict(reference="mean"),
        dict(lambda_rule="x"), dict(continuity=-1.0),
    ):  # fmt: skip
        with pytest.raises(ValueError, match="ICInitSettings"):
            ICInitSettings(**bad).validated()
    with pytest.raises(ValueError, match="frame_before"):
        ICInitSettings.paper(reference="frame_before")
