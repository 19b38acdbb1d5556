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
``ref_tau`` / ``prev_tau`` are the reference and the parent beam's previous segment noised with
``tau`` steps of noise (``scheduler.add_noise`` at ``timesteps[T - tau]``, i.e. ``tau`` of the ``T``
steps away from clean; the reference once per search, Algorithm 1 line 1, the parents once per
level, line 6), and ``z`` is the candidate's lookahead latent ``z_{T-T'}`` (line 8). Whole segments
are compared (the candidate's frames with the previous segment's frames; the reference is one
frame repeated over the segment), not only the frames at the join.

What the paper says and what it leaves open (checked against the text, ConsistTalk section
"Intensity Guided Diffusion Noise Search"):

- ``<.,.>`` "represents the dot product operation": ``similarity="dot"`` (default) is the raw dot
  product of the filtered spectra, divided by the number of elements squared (by Parseval, the
  mean elementwise product of the filtered signals; a constant factor, so it ranks candidates as
  the raw dot product does). A dot product grows with the candidate's magnitude along the
  reference, not with closeness to it; ``similarity="cosine"`` (our option) uses the normalised
  correlation ``<a, b> / (|a| |b|)`` instead, the usual reading of "similarity".
- The weights: the formula says ``lambda_low = sigmoid(z-norm(y))``, the next sentence says
  "higher intensity emphasizes high-frequency motion, while lower intensity prioritizes
  low-frequency stability", i.e. the opposite sign. ``lambda_rule="text"`` (default, as before)
  uses ``lambda_low = sigmoid(-z)``, ``"formula"`` uses ``sigmoid(z)``; ``lambda_high = 1 -
  lambda_low`` either way. ``z`` is the segment's mean intensity z-normalised over the sequence
  (0 without intensity: both weights 1/2).
- The sign of the high term is a penalty on high-frequency similarity with the previous segment
  (the text calls it a "dissimilarity term"); kept as written.
- ``G`` is "the Gaussian low-pass filter parameterized by the acquired intensity sequence",
  nothing more. Here ``D0 = cutoff * 2 ** (-z)`` (clipped to ``[cutoff / 4, 4 * cutoff]``): more
  intensity, a lower cutoff, so more of the spectrum counts as motion. Frequencies are normalised
  per axis to ``[-1, 1)`` (FreeInit's convention) and ``d = |(w_i f_i)_i|`` with optional axis
  weights (for motion: time only, the motion dims have no order).
- Selection: top-``B`` of the ``B * K`` (candidate, parent) pairs by the segment's reward
  (line 11; ``select_by="cumulative"`` ranks by path reward instead), the kept candidates are
  denoised on from their lookahead latents for the remaining ``T - T'`` steps (line 12: the chosen
  noise's own path is the result), and the path with the highest summed reward wins (line 15).

Two places to score (``reward_on``): ``"latent"`` is the paper's (above); ``"x0"`` scores the
denoiser's clean estimate at the lookahead step against the clean reference and previous segment
(for an x0-predicting motion model, where the latent is still mostly noise after 3 of 30 steps).

Our variant, not in the paper (``continuity > 0``, :func:`junction_penalty`): minus ``continuity``
times the low-band squared distance between the candidate's first frames (x0 at the lookahead
step) and the previous segment's frames they join (with ``overlap`` frames shared, the ``overlap``
frames both claim; without, the frame before the candidate), relative to the previous segment's
mean squared frame step. It targets the seam itself, which eq. 2 does not.

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
    "junction_penalty",
    "lowpass_cutoff",
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


def lowpass_cutoff(z_score: float, cutoff: float = 0.25) -> float:
    """The Gaussian low-pass width ``D0`` for a segment of z-normalised intensity ``z_score``:
    ``cutoff * 2 ** (-z)`` clipped to ``[cutoff / 4, 4 * cutoff]``."""
    return float(np.clip(cutoff * 2.0 ** (-z_score), cutoff / 4, 4 * cutoff))


def _lambda_low(z_score: float, rule: str) -> float:
    if rule == "text":
        return float(1.0 / (1.0 + np.exp(z_score)))  # sigmoid(-z)
    if rule == "formula":
        return float(1.0 / (1.0 + np.exp(-z_score)))  # sigmoid(z)
    raise ValueError(f"lambda_rule must be 'text' or 'formula', got {rule!r}")


def _similarity(a: Tensor, b: Tensor, dims: tuple[int, ...], n: float, kind: str) -> Tensor:
    """Similarity of filtered spectra ``a [N, *F]`` and ``b [N or 1, *F]`` -> ``[N]``."""
    dot = (a * torch.conj(b)).real.sum(dim=dims)
    if kind == "dot":
        return dot / n**2
    if kind == "cosine":
        na = a.abs().pow(2).sum(dim=dims).sqrt()
        nb = b.abs().pow(2).sum(dim=dims).sqrt()
        return dot / (na * nb).clamp_min(1e-30)
    raise ValueError(f"similarity must be 'dot' or 'cosine', got {kind!r}")


def frequency_reward(
    z: Tensor,
    reference: Tensor,
    prev: Tensor | None,
    z_score: float,
    cutoff: float = 0.25,
    axes_weight: tuple[float, ...] | None = None,
    *,
    similarity: str = "dot",
    lambda_rule: str = "text",
) -> Tensor:
    """ConsistTalk's reward (eq. 2) of candidates ``z [N, *F]`` against ``reference [*F]`` and
    their parents' previous segments ``prev [N, *F]`` (None: no high-frequency term), for a segment
    whose z-normalised intensity is ``z_score``. FFT over all ``*F`` axes. ``similarity``: "dot"
    (the paper's) or "cosine"; ``lambda_rule``: "text" (``lambda_low = sigmoid(-z)``) or "formula"
    (``sigmoid(z)``), see the module docstring. Returns ``[N]``. Raises ValueError for an unknown
    similarity or rule."""
    dims = tuple(range(1, z.dim()))
    shape = tuple(z.shape[1:])
    lam_low = _lambda_low(z_score, lambda_rule)
    g = gaussian_lowpass(shape, lowpass_cutoff(z_score, cutoff), axes_weight).to(z.device)
    n = float(np.prod(shape))
    spec = torch.fft.fftn(z.double(), dim=dims)
    ref = torch.fft.fftn(reference.double()[None], dim=dims)
    reward = lam_low * _similarity(spec * g, ref * g, dims, n, similarity)
    if prev is not None:
        pspec = torch.fft.fftn(prev.double(), dim=dims)
        high = _similarity(spec * (1 - g), pspec * (1 - g), dims, n, similarity)
        reward = reward - (1.0 - lam_low) * high
    return reward.to(z.dtype)


def junction_penalty(
    x0: Tensor, prev: Tensor, overlap: int = 0, d0: float = 0.25, eps: float = 1e-12
) -> Tensor:
    """How badly candidates ``x0 [N, L, *F]`` join their previous segments ``prev [N, L, *F]``
    (time is axis 1). Our variant's term, not ConsistTalk's (module docstring).

    With ``o = max(overlap, 1)``: the difference ``x0[:, :o] - prev[:, L - o:]`` (overlap > 0:
    the frames both segments claim, which a crossfade has to reconcile; overlap 0: the candidate's
    first frame against the frame before it), low-passed along time with the Gaussian of width
    ``d0`` (one frame: unfiltered), mean squared over frames and features, divided by the mean
    squared frame-to-frame step of ``prev`` (so ~1 means "a join as large as a typical step").
    Returns ``[N]`` (float64). Raises ValueError when the overlap does not fit the segment."""
    L = x0.shape[1]
    o = max(int(overlap), 1)
    if o > L or tuple(prev.shape) != tuple(x0.shape):
        raise ValueError(f"junction_penalty: overlap {overlap} and shapes {tuple(x0.shape)}, "
                         f"{tuple(prev.shape)} do not fit")  # fmt: skip
    d = (x0[:, :o].double() - prev[:, L - o :].double()).flatten(2)  # [N, o, F]
    g = gaussian_lowpass((o,), d0).to(d.device)
    low = torch.fft.ifft(torch.fft.fft(d, dim=1) * g[None, :, None], dim=1).real
    step = (prev[:, 1:].double() - prev[:, :-1].double()).flatten(2).pow(2).mean(dim=(1, 2))
    return low.pow(2).mean(dim=(1, 2)) / (step + eps)


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
    similarity: str = "dot",
    lambda_rule: str = "text",
    use_previous: bool = True,
    continuity: float = 0.0,
    overlap: int = 0,
    z_scores: np.ndarray | None = None,
    parent: Tensor | None = None,
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
    if similarity not in ("dot", "cosine") or lambda_rule not in ("text", "formula"):
        raise ValueError(f"bad similarity {similarity!r} or lambda_rule {lambda_rule!r}")
    if not (np.isfinite(continuity) and continuity >= 0):
        raise ValueError(f"continuity must be >= 0, got {continuity}")
    shape = tuple(int(s) for s in shape)
    reference = torch.as_tensor(reference, dtype=torch.float32)
    if tuple(reference.shape) != shape:
        raise ValueError(f"reference must have shape {shape}, got {tuple(reference.shape)}")
    if z_scores is not None:
        z_scores = np.asarray(z_scores, dtype=np.float64).reshape(-1)
        if z_scores.shape != (num_segments,) or not np.all(np.isfinite(z_scores)):
            raise ValueError(f"z_scores must be finite [{num_segments}]")
    elif intensity is None:
        z_scores = np.zeros(num_segments)
    else:
        z_scores = segment_intensity_z(torch.as_tensor(intensity).cpu().numpy(), num_segments)
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
    root = []
    if parent is not None:
        parent = torch.as_tensor(parent, dtype=torch.float32).reshape(shape)
        root = [parent]
    level: list[_Beam] = [_Beam([], root, [], 0.0)]
    trace = ICInitTrace(segments=torch.empty(0))
    for seg in range(num_segments):
        noises, parents = [], []
        for b in range(len(level)):
            noises.append(draw(seg, b, candidates))
            parents += [b] * candidates
        noise = torch.cat(noises)  # [N, *S]
        par = torch.tensor(parents)
        prev = None if not level[0].segments else torch.stack(
            [level[p].segments[-1] for p in parents]
        )  # fmt: skip
        z, x0 = run(noise * sigma, range(lookahead), seg, prev)
        # What the reward compares (module docstring): the lookahead x0 with the clean reference
        # and parents, or the lookahead latent with their tau-noised versions (lines 1 and 6).
        target, ref_r, prev_r = x0, reference, prev
        if reward_on == "latent":
            target, ref_r = z, ref_tau
            if prev is not None:
                prev_r = noised(torch.stack([beam.segments[-1] for beam in level]))[par]
        if reward_fn is not None:
            rewards = reward_fn(view(target), view(ref_r[None])[0], None if prev_r is None
                                else view(prev_r), seg)  # fmt: skip
        else:
            rewards = frequency_reward(
                view(target), view(ref_r[None])[0],
                None if prev_r is None or not use_previous else view(prev_r),
                float(z_scores[seg]), cutoff, axes_weight, similarity=similarity,
                lambda_rule=lambda_rule,
            )  # fmt: skip
        if continuity > 0 and prev is not None:
            d0 = lowpass_cutoff(float(z_scores[seg]), cutoff)
            pen = junction_penalty(view(x0), view(prev), overlap, d0)
            rewards = rewards.double() - continuity * pen
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
    trace.segments = torch.stack(level[best].segments[len(root) :])
    trace.calls = calls
    return (
        torch.stack(level[best].noises),
        torch.tensor(level[best].rewards, dtype=torch.float64),
        trace,
    )
