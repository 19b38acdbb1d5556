"""What IC-Init buys: seam discontinuity and jitter with and without the noise search.

Default mode (``--mode model``): the shipped trained model (resources/models/motion_default,
models.pretrained.load_default_motion_model) generates motion through the real generation path
(models.motion_sampling.generate_motion: windows of 80 frames, each window's reference the
generated frame before it) for held-out synthetic speech: ``--clips`` clips of
models.speech_data.generate_clip(seed, i) with seeds 10000+ (training used seed 0), concatenated
into one sequence per seed so it spans several windows; conditioned on the clips' own emotion and
eye channels, reference = the first frame. The same seeds (data and sampling) for every variant:

- ``ditto``: plain sampling, Ditto's recipe (10 DDIM steps, eta 1);
- ``ddim30`` / ``ddim10``: plain sampling with IC-Init's sampler (30 / 10 DDIM steps, eta 0),
  random noise: the baselines the searches are compared with;
- ``ic_window``: the earlier adaptation (``ICInitSettings()``: one search per window, x0 reward
  against the frame before the window, dot product), B=2, K=4, T'=3, T=30, tau=20;
- ``ic_paper``: ConsistTalk as written (``ICInitSettings.paper()``: beams over the whole
  sequence, the lookahead latent against the tau-noised source reference and previous window,
  dot product);
- ``ic_paper_cos``: the same with the cosine similarity;
- ``ic_seamless``: our variant (``ICInitSettings.seamless()``, what ``ic_init=True`` runs): the
  paper's search on the lookahead x0 with the cosine reward plus the junction term;
- ``ic_seamless_kp``: the same, the reward on the denormalised keypoint view the metrics use;
- ``ic_seamless10``: the variant at 10 steps (B=2, K=4, T'=2), against ``ddim10``.

Each runs with window overlap 0 (windows simply abut: the seam is the raw jump between them) and
with the default overlap 10 (crossfaded). Metrics on the keypoint view of the denormalised motion
(21 expression keypoints, translation, head angles times the nose tip's lever arm; keypoint
units):

- seam: overlap 0: mean absolute jump between the last frame of a window and the first of the
  next, divided by the mean absolute frame-to-frame step elsewhere (1 = a seam looks like any
  other frame step); overlap 10: mean absolute step inside the crossfade zones (from the frame
  before a window to the end of its overlap) divided by the mean step elsewhere;
- jitter: mean absolute second difference over the whole sequence (x1000).

Medians over seeds [min..max], and paired against the variant's plain baseline (same steps, eta
0, random noise; ``ditto`` has none): the median per-seed change of the seam and how many seeds
improved. ``--mode oracle`` measures how much of the raw seam the initial noise can change at
all (:func:`run_oracle`), the ceiling for any noise search on this model. ``--mode tiny`` keeps
the earlier experiment: ic_init_search driven directly on a tiny
random MotionDiT (segments without overlap), which says what the search does to the sampler, not
to a trained model's quality.

    .venv/bin/python benchmarks/ic_init.py [--seeds 8] [--clips 4] [--variants a,b]
        [--overlaps 0,10] [--mode model|tiny|oracle] [--candidates 8] [--model DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from models.ic_init import ic_init_search
from models.motion_dit import MotionDiT
from models.motion_sampling import (
    ICInitSettings,
    MotionConditions,
    make_scheduler,
    packed_keypoint_view,
    window_starts,
)
from models.motion_space import CHANNEL_DEFAULTS, pack_ditto

_VIEW = packed_keypoint_view()
HELD_OUT_SEED = 10_000  # models/speech_data seeds from here on were never used in training
VARIANTS: dict[str, dict] = {
    "ditto": dict(steps=10, eta=1.0),
    "ddim30": dict(steps=30, eta=0.0),
    "ddim10": dict(steps=10, eta=0.0),
    "ic_window": dict(ic_init=ICInitSettings(tau=20)),
    "ic_paper": dict(ic_init=ICInitSettings.paper()),
    "ic_paper_cos": dict(ic_init=ICInitSettings.paper(similarity="cosine")),
    "ic_seamless": dict(ic_init=ICInitSettings.seamless()),
    "ic_seamless_kp": dict(ic_init="seamless_kp"),  # needs the model's stats: built in run_model
    "ic_seamless10": dict(ic_init=ICInitSettings.seamless(steps=10, lookahead=2)),
}
# The plain sampler each variant is paired with (same steps, eta 0, random noise).
BASELINE = {"ic_seamless10": "ddim10", "ddim10": None, "ditto": None, "ddim30": None}


def keypoint_view(z: torch.Tensor) -> torch.Tensor:
    """Packed Ditto motion ``[N, L, 265]`` -> ``[N, L, 23, 3]``: exp keypoints, translation and
    head angles (radians times the nose tip's lever arm 0.6, i.e. keypoint units), as
    models.motion_sampling.packed_keypoint_view."""
    return _VIEW(z).unflatten(-1, (23, 3))


def metrics(segments: torch.Tensor) -> tuple[float, float]:
    """(seam ratio, jitter) of abutting segments ``[L, W, 265]`` (tiny mode)."""
    v = keypoint_view(segments).flatten(-2)  # [L, W, 69]
    steps = (v[:, 1:] - v[:, :-1]).abs().mean()
    seams = (v[1:, 0] - v[:-1, -1]).abs().mean()
    seq = v.flatten(0, 1)
    jitter = (seq[2:] - 2 * seq[1:-1] + seq[:-2]).abs().mean()
    return float(seams / steps), float(jitter)


def sequence_metrics(packed: np.ndarray, seq_len: int, overlap: int) -> tuple[float, float]:
    """(seam ratio, jitter) of a generated sequence ``[T, 265]`` (raw packed Ditto units) made of
    windows of ``seq_len`` overlapping by ``overlap`` (see the module docstring)."""
    v = keypoint_view(torch.from_numpy(np.asarray(packed, dtype=np.float64))).flatten(-2).numpy()
    step = np.abs(np.diff(v, axis=0)).mean(axis=1)  # [T - 1], step t -> t + 1
    seam = np.zeros(step.size, dtype=bool)
    for s in window_starts(v.shape[0], seq_len, overlap)[1:]:
        seam[s - 1 : min(step.size, s + max(overlap, 1) - 1 + (overlap > 0))] = True
    jitter = np.abs(np.diff(v, 2, axis=0)).mean()
    return float(step[seam].mean() / step[~seam].mean()), float(jitter)


def held_out_sequence(seed: int, clips: int):
    """Audio [S] (16 kHz) and motion channels [F, 90] of ``clips`` held-out clips in a row."""
    from models.speech_data import generate_clip

    parts = [generate_clip(HELD_OUT_SEED + seed, i) for i in range(clips)]
    return np.concatenate([p.audio for p in parts]), np.concatenate([p.motion for p in parts])


def run_model(args: argparse.Namespace) -> None:
    from models.pretrained import (
        PretrainedModelMissing,
        load_default_motion_model,
        load_motion_model,
    )

    try:
        pm = load_default_motion_model() if args.model is None else load_motion_model(args.model)
    except PretrainedModelMissing as exc:
        print(f"no shipped model, nothing measured: {exc}")
        return
    L = pm.model.config.seq_len
    names = [v for v in args.variants.split(",") if v] if args.variants else list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    kp_view = packed_keypoint_view(pm.stats.mean, pm.stats.std)
    overlaps = [int(o) for o in args.overlaps.split(",")]
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    times: dict[tuple[str, int], float] = {}
    frames = 0
    for seed in range(args.seeds):
        audio, channels = held_out_sequence(seed, args.clips)
        frames += channels.shape[0]
        for overlap in overlaps:
            for name in names:
                kw = dict(VARIANTS[name])
                if kw.get("ic_init") == "seamless_kp":
                    kw["ic_init"] = ICInitSettings.seamless(view=kp_view)
                t0 = time.perf_counter()
                out = pm.generate(
                    audio, 16000, channels=channels, ref_channels=channels[0], seed=seed,
                    overlap=overlap, **kw,
                )  # fmt: skip
                times[name, overlap] = times.get((name, overlap), 0.0) + time.perf_counter() - t0
                rows.setdefault((name, overlap), []).append(sequence_metrics(out, L, overlap))
            print(f"  seed {seed} overlap {overlap}: " + "  ".join(
                f"{n} {rows[n, overlap][-1][0]:.3f}" for n in names), flush=True)  # fmt: skip
    secs = frames / 25
    print(
        f"model {pm.folder}; {args.seeds} seeds x {args.clips} held-out clips "
        f"(speech_data seeds {HELD_OUT_SEED}..{HELD_OUT_SEED + args.seeds - 1}), "
        f"{secs / args.seeds:.1f} s of audio per sequence on average; "
        f"{torch.get_num_threads()} torch thread(s); medians over seeds [min..max]; "
        f"paired: median per-seed seam change vs the plain sampler, seeds improved"
    )
    for overlap in overlaps:
        print(f"overlap {overlap}:")
        for name in names:
            a = np.array(rows[name, overlap])
            base = BASELINE.get(name, "ddim30")
            paired = ""
            if base is not None and (base, overlap) in rows:
                b = np.array(rows[base, overlap])
                change = a[:, 0] / b[:, 0] - 1.0
                jchange = a[:, 1] / b[:, 1] - 1.0
                paired = (
                    f"   vs {base}: seam {100 * np.median(change):+.1f} % "
                    f"({int(np.sum(change < 0))}/{change.size} better), "
                    f"jitter {100 * np.median(jchange):+.1f} %"
                )
            print(
                f"  {name:14s} seam {np.median(a[:, 0]):.3f} "
                f"[{a[:, 0].min():.3f}..{a[:, 0].max():.3f}]"
                f"   jitter x1000 {1000 * np.median(a[:, 1]):.3f} "
                f"[{1000 * a[:, 1].min():.3f}..{1000 * a[:, 1].max():.3f}]"
                f"   real-time factor {times[name, overlap] / secs:.3f}{paired}"
            )


def run_oracle(args: argparse.Namespace) -> None:
    """How much of the raw seam any choice of initial noise can change: for each window after
    the first (overlap 0, the previous window fixed as plain 30-step DDIM eta 0 sampled it),
    ``--candidates`` noises are sampled to the end. Per window: the seam (jump at the join /
    mean step inside the window, keypoint view) of every candidate; its median, the best one
    (an oracle that knows the final result), the one the lookahead x0 (T'=3) ranks best by the
    junction term (what a greedy search can see), and the systematic share of the jump
    ``|mean_k jump_k| / mean_k |jump_k|`` (1: every noise jumps the same way)."""
    from models.motion_sampling import _cond_rows
    from models.motion_space import pack_ditto
    from models.pretrained import (
        PretrainedModelMissing,
        load_default_motion_model,
        load_motion_model,
    )

    try:
        pm = load_default_motion_model() if args.model is None else load_motion_model(args.model)
    except PretrainedModelMissing as exc:
        print(f"no shipped model, nothing measured: {exc}")
        return
    model, K = pm.model, args.candidates
    L, M = model.config.seq_len, model.config.motion_dim
    view = packed_keypoint_view(pm.stats.mean, pm.stats.std)
    sched = make_scheduler("ddim")
    sched.set_timesteps(30)
    rows = []
    with torch.inference_mode():
        uncond = model.encode_condition(None, False)
        for seed in range(args.seeds):
            audio, channels = held_out_sequence(seed, args.clips)
            feats = pm.features(audio, 16000)
            conds = pm.conditions(channels)
            ref = np.clip(pm.stats.normalize(pack_ditto(channels[0])), -6.0, 6.0)
            ref[pm.stats.constant] = 0.0
            prev_last = torch.from_numpy(ref.astype(np.float32))
            g = torch.Generator().manual_seed(seed)
            for k, s in enumerate(window_starts(feats.shape[0], L, 0)):
                cond = model.encode_condition(
                    torch.from_numpy(_cond_rows(feats, conds, s, s + L))[None]
                ).repeat(K)
                x = torch.randn((K, L, M), generator=g)
                r = prev_last[None].expand(K, M)
                look = None
                for i, t in enumerate(sched.timesteps):
                    x0 = model.guided_denoise(x, r, t, cond, uncond, 2.0).float()
                    look = x0 if i == 2 else look
                    x = sched.step(x0, t, x, eta=0.0).prev_sample
                if k > 0:
                    v, vl, p = view(x), view(look), view(prev_last[None, None])[:, 0]
                    jump = v[:, 0] - p  # [K, 69]
                    step = (v[:, 1:] - v[:, :-1]).abs().mean(dim=(1, 2))
                    seam = (jump.abs().mean(-1) / step).numpy()
                    picked = int(torch.argmin((vl[:, 0] - p).pow(2).mean(-1)))
                    share = float(jump.mean(0).abs().mean() / jump.abs().mean())
                    rows.append((np.median(seam), seam.min(), seam[picked], share))
                prev_last = x[0, -1]  # the plain path: the first candidate
    a = np.array(rows)
    print(f"shipped model {pm.folder.name}; {args.seeds} seeds x {args.clips} held-out clips, "
          f"{len(rows)} windows after the first, {K} noises each, overlap 0, 30 DDIM steps eta 0; "
          f"medians over windows [quartiles]")  # fmt: skip
    for j, name in enumerate(("seam, median noise", "seam, best noise (oracle)",
                              "seam, lookahead pick", "systematic share of the jump")):  # fmt: skip
        q = np.percentile(a[:, j], [25, 50, 75])
        print(f"  {name:30s} {q[1]:.3f} [{q[0]:.3f}..{q[2]:.3f}]")
    gain = 1 - a[:, 1] / a[:, 0]
    pick = 1 - a[:, 2] / a[:, 0]
    print(
        f"  oracle vs median noise: seam {-100 * np.median(gain):+.1f} % (median over windows); "
        f"lookahead pick: {-100 * np.median(pick):+.1f} %"
    )


def run_tiny(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = MotionDiT(seq_len=20, audio_dim=80, latent_dim=32, ff_dim=64, num_layers=2,
                      num_heads=2, num_encoder_layers=1).eval()  # fmt: skip
    cfg = model.config
    W, L = cfg.seq_len, args.segments
    ref = torch.from_numpy(pack_ditto(CHANNEL_DEFAULTS[None])[0].astype(np.float32))
    reference = ref[None].expand(W, -1).clone()
    conds = MotionConditions(x_c=np.zeros(63), eye_open=np.array([0.3, 0.3]), eye_ball=np.zeros(6))
    rows: dict[str, list[tuple[float, float]]] = {"plain": [], "ic_init": []}
    times = {"plain": 0.0, "ic_init": 0.0}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        feats = rng.standard_normal((L * W, cfg.audio_dim)).astype(np.float32)
        intensity = np.abs(rng.standard_normal(L)) + 0.5
        with torch.inference_mode():
            enc = [
                model.encode_condition(
                    torch.from_numpy(
                        np.concatenate([feats[s * W : (s + 1) * W], conds.frames(0, W)], 1)
                    )[None]
                )
                for s in range(L)
            ]

            sch = make_scheduler("ddim")
            sch.set_timesteps(30)

            def denoise(x, i, seg, prev, enc=enc, sch=sch):
                r = ref[None].expand(x.shape[0], -1) if prev is None else prev[:, -1]
                return model.denoise(x, r, sch.timesteps[i], enc[seg].repeat(x.shape[0]))

            for name, (b, k) in (("plain", (1, 1)), ("ic_init", (2, 4))):
                t0 = time.perf_counter()
                _, _, trace = ic_init_search(
                    denoise, make_scheduler("ddim"), (W, cfg.motion_dim), L, reference,
                    intensity, beams=b, candidates=k, reward_on=args.reward_on,
                    view_fn=keypoint_view, generator=torch.Generator().manual_seed(seed),
                )  # fmt: skip
                times[name] += time.perf_counter() - t0
                rows[name].append(metrics(trace.segments))
    print(f"model: tiny random MotionDiT; {L} segments of {W} frames, {args.seeds} seeds, "
          f"reward on {args.reward_on}")  # fmt: skip
    for name, vals in rows.items():
        a = np.array(vals)
        print(f"{name:8s} seam ratio {a[:, 0].mean():.3f} +- {a[:, 0].std():.3f}   "
              f"jitter {a[:, 1].mean():.5f} +- {a[:, 1].std():.5f}   "
              f"time {times[name] / args.seeds:.2f} s/sequence")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", default="model", choices=["model", "tiny", "oracle"])
    ap.add_argument("--candidates", type=int, default=8, help="noises per window (oracle)")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--clips", type=int, default=4, help="held-out clips per sequence (model)")
    ap.add_argument("--segments", type=int, default=5, help="segments per sequence (tiny)")
    ap.add_argument("--reward-on", default="x0", choices=["x0", "latent"], help="(tiny)")
    ap.add_argument("--variants", default="", help="comma-separated (model; default: all)")
    ap.add_argument("--overlaps", default="0,10", help="comma-separated window overlaps (model)")
    ap.add_argument("--model", default=None, help="motion model folder (default: the shipped one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    {"model": run_model, "tiny": run_tiny, "oracle": run_oracle}[args.mode](args)


if __name__ == "__main__":
    main()
