"""IC-Init: ConsistTalk's intensity-guided beam search over the initial noise of each segment.

Long sequences are generated segment by segment (windows). Instead of drawing one noise per
segment, IC-Init (ConsistTalk, Algorithm 1) keeps ``B`` beams (paths of segments); for every beam
it draws ``K`` candidate noises for the next segment, denoises each for only ``T'`` lookahead steps
(of ``T`` DDIM steps), scores the ``B * K`` (candidate, parent) pairs with a reward, keeps the top
``B`` and denoises those to the end (the remaining ``T - T'`` steps). After the last segment the
path with the highest cumulative reward wins. Cost ``L * B * (K * T' + T - T')`` denoiser calls
against ``L * T`` without the search. Paper settings (defaults here): DDIM, ``T = 30``,
``T' = 3``, ``tau = 20``, ``K = 4``, ``B = 2``.

Reward (eq. 2, 3):
``R = lambda_low * <z^low, ref_tau^low> - lambda_high * <z^high, prev_tau^high>``, where
``^low`` / ``^high`` are the 3D FFT of the signal times a Gaussian low-pass ``G`` or ``1 - G``,
``<.,.>`` is the (real) dot product of the spectra divided by the number of elements squared
(by Parseval, the mean elementwise product of the filtered signals),
``ref_tau`` / ``prev_tau`` are the reference and the parent beam's previous segment noised with
``tau`` steps of noise (``scheduler.add_noise`` at ``timesteps[T - tau]``, i.e. ``tau`` of the ``T``
steps away from clean), and ``lambda_low = sigmoid(z-norm(y))``, ``lambda_high = 1 - lambda_low``
with ``y`` the segment's intensity z-normalised over the sequence: intense segments favour motion
that differs from the previous segment at high frequencies, calm ones favour the reference's
coarse structure. The paper leaves G's cutoff unspecified beyond "parameterised by the intensity";
here ``D0 = cutoff * 2 ** (-z)`` (clipped to ``[cutoff / 4, 4 * cutoff]``): more intensity, a lower
cutoff, so more of the spectrum counts as motion. Frequencies are normalised per axis to
``[-1, 1)`` (FreeInit's convention) and ``d = |(w_i f_i)_i|`` with optional axis weights.

Two places to score (``reward_on``): ``"latent"`` is the paper's (the lookahead latent
``z_{T-T'}`` against the tau-noised reference and previous segment); ``"x0"`` scores the
denoiser's clean estimate at the lookahead step against the clean reference and previous segment
(our default for motion, where x0 is what the model predicts and noise dominates the latent after
3 of 30 steps).

Generic over the denoiser: ``denoise_fn(x_t [N, *S], step_index, segment, prev [N, *S] | None)
-> x0 [N, *S]``; ``step_index`` indexes ``scheduler.timesteps``; ``prev`` is each candidate's
parent segment (clean, e.g. for Ditto's reference motion, the frame before the window), None for
the first segment. The scheduler must predict x0 (``prediction_type="sample"``, e.g.
models.motion_sampling.make_scheduler("ddim")); sampling is deterministic (DDIM, eta 0), so a
segment is a function of its noise and its parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ICInitTrace",
    "frequency_reward",
    "gaussian_lowpass",
    "ic_init_search",
    "segment_intensity_z",
]

DenoiseFn = Callable[[Tensor, int, int, "Tensor | None"], Tensor]
# reward_fn(z [N, *S], reference [*S], prev [N, *S] | None, segment) -> [N]
RewardFn = Callable[[Tensor, Tensor, "Tensor | None", int], Tensor]


def segment_intensity_z(intensity: np.ndarray | Tensor, num_segments: int) -> np.ndarray:
    """z-normalised intensity per segment: ``[L]`` (one value per segment) or ``[L, f]`` (per
    frame, averaged) -> ``[L]``; a constant sequence gives zeros."""
    y = np.asarray(intensity, dtype=np.float64)
    if y.ndim == 2:
        y = y.mean(axis=1)
    if y.shape != (num_segments,) or not np.all(np.isfinite(y)):
        raise ValueError(f"intensity must be finite [{num_segments}] or [{num_segments}, f]")
    sd = y.std()
    return (y - y.mean()) / sd if sd > 1e-8 else np.zeros_like(y)


def gaussian_lowpass(
    shape: tuple[int, ...], d0: float, axes_weight: tuple[float, ...] | None = None
) -> Tensor:
    """Gaussian low-pass ``exp(-d^2 / (2 d0^2))`` on the FFT grid of ``shape`` (unshifted, as
    ``torch.fft.fftn`` lays it out); per-axis frequencies in ``[-1, 1)``; ``axes_weight`` scales
    each axis (0 = no filtering along it)."""
    w = axes_weight or (1.0,) * len(shape)
    if len(w) != len(shape):
        raise ValueError(f"axes_weight needs {len(shape)} values, got {len(w)}")
    d2 = torch.zeros(shape, dtype=torch.float64)
    for ax, (n, wa) in enumerate(zip(shape, w, strict=True)):
        f = torch.fft.fftfreq(n, dtype=torch.float64) * 2.0 * wa
        view = [1] * len(shape)
        view[ax] = n
        d2 = d2 + (f**2).reshape(view)
    return torch.exp(-d2 / (2.0 * d0**2))


def frequency_reward(
    z: Tensor,
    reference: Tensor,
    prev: Tensor | None,
    z_score: float,
    cutoff: float = 0.25,
    axes_weight: tuple[float, ...] | None = None,
) -> Tensor:
    """ConsistTalk's reward (eq. 2) of candidates ``z [N, *F]`` against ``reference [*F]`` and
    their parents' previous segments ``prev [N, *F]`` (None: no high-frequency term), for a segment
    whose z-normalised intensity is ``z_score``. FFT over all ``*F`` axes. Returns ``[N]``."""
    dims = tuple(range(1, z.dim()))
    shape = tuple(z.shape[1:])
    lam_low = 1.0 / (1.0 + np.exp(z_score))  # sigmoid(-z): see the module docstring
    d0 = float(np.clip(cutoff * 2.0 ** (-z_score), cutoff / 4, 4 * cutoff))
    g = gaussian_lowpass(shape, d0, axes_weight).to(z.device)
    n = float(np.prod(shape))
    spec = torch.fft.fftn(z.double(), dim=dims)
    ref = torch.fft.fftn(reference.double()[None], dim=dims)
    low = (spec * g * torch.conj(ref * g)).real.sum(dim=dims) / n**2
    reward = lam_low * low
    if prev is not None:
        pspec = torch.fft.fftn(prev.double(), dim=dims)
        high = (spec * (1 - g) * torch.conj(pspec * (1 - g))).real.sum(dim=dims) / n**2
        reward = reward - (1.0 - lam_low) * high
    return reward.to(z.dtype)


@dataclass
class ICInitTrace:
    """What the search did. segments: ``[L, *S]`` clean segments of the best path (reuse them:
    they are the result); levels: per segment, a dict with ``rewards [n]`` (every candidate of
    the budget), ``parents [n]`` (beam index in the previous level), ``kept [<=B]`` (indices into
    the budget) and ``cumulative [<=B]`` (path rewards of the kept beams); best_beam: index of the
    winning beam in the last level; calls: denoiser calls (summed over the batch)."""

    segments: Tensor
    levels: list[dict] = field(default_factory=list)
    best_beam: int = 0
    calls: int = 0


@dataclass
class _Beam:
    noises: list[Tensor]
    segments: list[Tensor]
    rewards: list[float]
    total: float


def ic_init_search(
    denoise_fn: DenoiseFn,
    scheduler,
    shape: tuple[int, ...],
    num_segments: int,
    reference: Tensor,
    intensity: np.ndarray | Tensor | None = None,
    *,
    beams: int = 2,
    candidates: int = 4,
    lookahead: int = 3,
    num_steps: int = 30,
    tau: int = 20,
    generator: torch.Generator | None = None,
    noise_fn: Callable[[int, int, int], Tensor] | None = None,
    reward_fn: RewardFn | None = None,
    view_fn: Callable[[Tensor], Tensor] | None = None,
    reward_on: str = "x0",
    select_by: str = "reward",
    cutoff: float = 0.25,
    axes_weight: tuple[float, ...] | None = None,
) -> tuple[Tensor, Tensor, ICInitTrace]:
    """Beam search over the initial noise of ``num_segments`` segments of shape ``shape``.

    Returns ``(best_noise [L, *S], best_path_rewards [L], trace)``; ``trace.segments`` holds the
    clean segments of that path (regenerating from ``best_noise`` with the same denoiser and
    DDIM steps gives them again).

    reference: ``[*S]`` (e.g. the source motion repeated over the window). intensity: ``[L]`` or
    ``[L, f]`` (None: constant). noise_fn(segment, beam, n) -> ``[n, *S]`` replaces the Gaussian
    draws (tests use fixed pools). reward_fn(z, reference, prev, segment) -> ``[N]`` replaces the
    frequency reward; view_fn maps ``[N, *S]`` to the signal the reward sees (e.g. Ditto's packed
    vector to keypoints, see benchmarks/ic_init.py). reward_on: "x0" or "latent" (module
    docstring); select_by: "reward" (the paper: top-B by the segment's reward) or "cumulative"
    (classic beam search: top-B by path reward).
    Raises ValueError for inconsistent settings or a scheduler that does not predict x0.
    """
    if getattr(scheduler.config, "prediction_type", "sample") != "sample":
        raise ValueError(
            "ic_init_search needs an x0-predicting scheduler (prediction_type='sample')"
        )
    if not (
        beams >= 1 and candidates >= 1 and 1 <= lookahead <= num_steps and 1 <= tau <= num_steps
    ):
        raise ValueError(
            f"need beams, candidates >= 1 and 1 <= lookahead, tau <= num_steps; got B={beams}, "
            f"K={candidates}, T'={lookahead}, tau={tau}, T={num_steps}"
        )  # fmt: skip
    if reward_on not in ("x0", "latent") or select_by not in ("reward", "cumulative"):
        raise ValueError(f"bad reward_on {reward_on!r} or select_by {select_by!r}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    shape = tuple(int(s) for s in shape)
    reference = torch.as_tensor(reference, dtype=torch.float32)
    if tuple(reference.shape) != shape:
        raise ValueError(f"reference must have shape {shape}, got {tuple(reference.shape)}")
    z_scores = (
        np.zeros(num_segments) if intensity is None else segment_intensity_z(
            torch.as_tensor(intensity).cpu().numpy(), num_segments
        )
    )  # fmt: skip
    view = view_fn or (lambda x: x)
    gen = generator or torch.Generator().manual_seed(0)

    scheduler.set_timesteps(num_steps)
    ts = scheduler.timesteps
    t_tau = ts[num_steps - tau]
    sigma = float(getattr(scheduler, "init_noise_sigma", 1.0))

    def draw(segment: int, beam: int, n: int) -> Tensor:
        if noise_fn is not None:
            x = torch.as_tensor(noise_fn(segment, beam, n), dtype=torch.float32)
            if tuple(x.shape) != (n, *shape):
                raise ValueError(f"noise_fn must return [{n}, *{shape}], got {tuple(x.shape)}")
            return x
        return torch.randn((n, *shape), generator=gen)

    calls = 0

    def run(x: Tensor, steps: range, segment: int, prev: Tensor | None) -> tuple[Tensor, Tensor]:
        nonlocal calls
        x0 = x
        for i in steps:
            x0 = denoise_fn(x, i, segment, prev).float()
            calls += x.shape[0]
            x = scheduler.step(x0, ts[i], x, eta=0.0).prev_sample
        return x, x0

    def noised(x: Tensor) -> Tensor:
        return scheduler.add_noise(x, torch.randn(x.shape, generator=gen), t_tau.reshape(1))

    ref_tau = noised(reference[None])[0]
    level: list[_Beam] = [_Beam([], [], [], 0.0)]
    trace = ICInitTrace(segments=torch.empty(0))
    for seg in range(num_segments):
        noises, parents = [], []
        for b in range(len(level)):
            noises.append(draw(seg, b, candidates))
            parents += [b] * candidates
        noise = torch.cat(noises)  # [N, *S]
        par = torch.tensor(parents)
        prev = None if seg == 0 else torch.stack([level[p].segments[-1] for p in parents])
        z, x0 = run(noise * sigma, range(lookahead), seg, prev)
        if reward_fn is not None:
            target, ref_r, prev_r = (x0 if reward_on == "x0" else z), reference, prev
            rewards = reward_fn(view(target), view(ref_r[None])[0], None if prev_r is None
                                else view(prev_r), seg)  # fmt: skip
        elif reward_on == "x0":
            rewards = frequency_reward(
                view(x0), view(reference[None])[0], None if prev is None else view(prev),
                float(z_scores[seg]), cutoff, axes_weight,
            )  # fmt: skip
        else:
            prev_tau = None
            if prev is not None:
                parent_tau = noised(torch.stack([beam.segments[-1] for beam in level]))
                prev_tau = view(parent_tau[par])
            rewards = frequency_reward(
                view(z), view(ref_tau[None])[0], prev_tau, float(z_scores[seg]), cutoff,
                axes_weight,
            )  # fmt: skip
        rewards = rewards.detach().double().cpu()
        score = rewards + torch.tensor([level[p].total for p in parents], dtype=torch.float64) * (
            select_by == "cumulative"
        )
        # Top-B, ties to the lower index (stable), so results are reproducible.
        order = sorted(range(len(parents)), key=lambda i: (-float(score[i]), i))[:beams]
        keep = torch.tensor(order)
        kp = None if prev is None else prev[keep]
        final, _ = run(z[keep], range(lookahead, num_steps), seg, kp)
        new_level = []
        for j, i in enumerate(order):
            parent = level[parents[i]]
            r = float(rewards[i])
            new_level.append(
                _Beam([*parent.noises, noise[i]], [*parent.segments, final[j]],
                      [*parent.rewards, r], parent.total + r)
            )  # fmt: skip
        trace.levels.append(
            {
                "rewards": rewards,
                "parents": par,
                "kept": keep,
                "cumulative": torch.tensor([b.total for b in new_level], dtype=torch.float64),
            }
        )
        level = new_level
    best = max(range(len(level)), key=lambda b: (level[b].total, -b))
    trace.best_beam = best
    trace.segments = torch.stack(level[best].segments)
    trace.calls = calls
    return (
        torch.stack(level[best].noises),
        torch.tensor(level[best].rewards, dtype=torch.float64),
        trace,
    )
