"""What IC-Init buys: seam discontinuity and jitter with and without the noise search.

Default mode (``--mode model``): the shipped trained model (resources/models/motion_default,
models.pretrained.load_default_motion_model) generates motion through the real generation path
(models.motion_sampling.generate_motion: windows of 80 frames, each window's reference the
generated frame before it) for held-out synthetic speech: ``--clips`` clips of
models.speech_data.generate_clip(seed, i) with seeds 10000+ (training used seed 0), concatenated
into one sequence per seed so it spans several windows; conditioned on the clips' own emotion and
eye channels, reference = the first frame. The same seeds (data and sampling) for every variant:

- ``ditto``: plain sampling, Ditto's recipe (10 DDIM steps, eta 1);
- ``ddim30``: plain sampling with IC-Init's sampler (30 DDIM steps, eta 0), random noise;
- ``ic_init``: IC-Init, the paper's settings (B=2, K=4, T'=3, T=30, tau=20), eta 0;
- ``ic_fast``: IC-Init with 10 steps (B=1, K=4, T'=2).

Each runs with window overlap 0 (windows simply abut: the seam is the raw jump between them) and
with the default overlap 10 (crossfaded). Metrics on the keypoint view of the denormalised motion
(21 expression keypoints, translation, head angles times the nose tip's lever arm; keypoint
units):

- seam: overlap 0: mean absolute jump between the last frame of a window and the first of the
  next, divided by the mean absolute frame-to-frame step elsewhere (1 = a seam looks like any
  other frame step); overlap 10: mean absolute step inside the crossfade zones (from the frame
  before a window to the end of its overlap) divided by the mean step elsewhere;
- jitter: mean absolute second difference over the whole sequence (x1000).

Medians over seeds. ``--mode tiny`` keeps the earlier experiment: ic_init_search driven directly
on a tiny random MotionDiT (segments without overlap), which says what the search does to the
sampler, not to a trained model's quality.

    .venv/bin/python benchmarks/ic_init.py [--seeds 6] [--clips 4] [--mode model|tiny]
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
    window_starts,
)
from models.motion_space import CHANNEL_DEFAULTS, pack_ditto

HELD_OUT_SEED = 10_000  # models/speech_data seeds from here on were never used in training
VARIANTS: dict[str, dict] = {
    "ditto": dict(steps=10, eta=1.0),
    "ddim30": dict(steps=30, eta=0.0),
    "ic_init": dict(ic_init=ICInitSettings()),
    "ic_fast": dict(ic_init=ICInitSettings(steps=10, lookahead=2, beams=1)),
}


def keypoint_view(z: torch.Tensor) -> torch.Tensor:
    """Packed Ditto motion ``[N, L, 265]`` -> ``[N, L, 23, 3]``: exp keypoints, translation and
    head angles (radians times the nose tip's lever arm 0.6, i.e. keypoint units)."""
    bins = torch.arange(66, dtype=z.dtype, device=z.device)
    ang = [
        3.0 * (torch.softmax(z[..., a : a + 66], -1) * bins).sum(-1) - 97.5 for a in (1, 67, 133)
    ]
    ang = torch.stack(ang, -1) * (np.pi / 180 * 0.6)
    exp = z[..., 202:265].unflatten(-1, (21, 3))
    return torch.cat([exp, z[..., None, 199:202], ang[..., None, :]], dim=-2)


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
    from models.pretrained import PretrainedModelMissing, load_default_motion_model

    try:
        pm = load_default_motion_model()
    except PretrainedModelMissing as exc:
        print(f"no shipped model, nothing measured: {exc}")
        return
    L = pm.model.config.seq_len
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    times: dict[tuple[str, int], float] = {}
    frames = 0
    for seed in range(args.seeds):
        audio, channels = held_out_sequence(seed, args.clips)
        frames += channels.shape[0]
        for overlap in (0, 10):
            for name, kw in VARIANTS.items():
                t0 = time.perf_counter()
                out = pm.generate(
                    audio, 16000, channels=channels, ref_channels=channels[0], seed=seed,
                    overlap=overlap, **kw,
                )  # fmt: skip
                times[name, overlap] = times.get((name, overlap), 0.0) + time.perf_counter() - t0
                rows.setdefault((name, overlap), []).append(sequence_metrics(out, L, overlap))
    secs = frames / 25
    print(
        f"shipped model {pm.folder.name}; {args.seeds} seeds x {args.clips} held-out clips "
        f"(speech_data seeds {HELD_OUT_SEED}..{HELD_OUT_SEED + args.seeds - 1}), "
        f"{secs / args.seeds:.1f} s of audio per sequence on average; "
        f"{torch.get_num_threads()} torch thread(s); medians over seeds [min..max]"
    )
    for overlap in (0, 10):
        print(f"overlap {overlap}:")
        for name in VARIANTS:
            a = np.array(rows[name, overlap])
            print(
                f"  {name:8s} seam {np.median(a[:, 0]):.3f} "
                f"[{a[:, 0].min():.3f}..{a[:, 0].max():.3f}]"
                f"   jitter x1000 {1000 * np.median(a[:, 1]):.3f} "
                f"[{1000 * a[:, 1].min():.3f}..{1000 * a[:, 1].max():.3f}]"
                f"   real-time factor {times[name, overlap] / secs:.3f}"
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
    ap.add_argument("--mode", default="model", choices=["model", "tiny"])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--clips", type=int, default=4, help="held-out clips per sequence (model)")
    ap.add_argument("--segments", type=int, default=5, help="segments per sequence (tiny)")
    ap.add_argument("--reward-on", default="x0", choices=["x0", "latent"], help="(tiny)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    (run_model if args.mode == "model" else run_tiny)(args)


if __name__ == "__main__":
    main()
