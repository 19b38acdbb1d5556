"""What IC-Init buys: seam discontinuity and jitter with and without the noise search.

Generates a sequence segment by segment with a MotionDiT (windows without overlap, each window's
reference motion the last frame of the previous one, DDIM with eta 0), once with one random noise
per segment (plain autoregressive sampling) and once with IC-Init's beam search (B=2, K=4, T'=3,
T=30, tau=20), on the same audio features and intensity, over several seeds. Metrics on the
keypoint view (exp [21, 3] plus translation and head angles in keypoint units):

- seam: mean absolute jump between the last frame of a segment and the first of the next,
  divided by the mean absolute frame-to-frame step inside segments (1 = a seam looks like any
  other frame step);
- jitter: mean absolute second difference over the whole sequence.

Without trained weights the model is a tiny random MotionDiT (``--model`` takes a local
save_pretrained folder): the numbers then say what the search does to the sampler, not to a
trained model's quality.

    .venv/bin/python benchmarks/ic_init.py [--model DIR] [--segments 5] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from models.ic_init import ic_init_search
from models.motion_dit import MotionDiT
from models.motion_sampling import MotionConditions, make_scheduler
from models.motion_space import CHANNEL_DEFAULTS, pack_ditto


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
    """(seam ratio, jitter) of segments ``[L, W, 265]``."""
    v = keypoint_view(segments).flatten(-2)  # [L, W, 69]
    steps = (v[:, 1:] - v[:, :-1]).abs().mean()
    seams = (v[1:, 0] - v[:-1, -1]).abs().mean()
    seq = v.flatten(0, 1)
    jitter = (seq[2:] - 2 * seq[1:-1] + seq[:-2]).abs().mean()
    return float(seams / steps), float(jitter)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="local MotionDiT folder (default: tiny random)")
    ap.add_argument("--segments", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reward-on", default="x0", choices=["x0", "latent"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.model:
        model = MotionDiT.from_pretrained(args.model).eval()
    else:
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
    print(f"model: {'tiny random MotionDiT' if not args.model else args.model}; {L} segments of "
          f"{W} frames, {args.seeds} seeds, reward on {args.reward_on}")  # fmt: skip
    for name, vals in rows.items():
        a = np.array(vals)
        print(f"{name:8s} seam ratio {a[:, 0].mean():.3f} +- {a[:, 0].std():.3f}   "
              f"jitter {a[:, 1].mean():.5f} +- {a[:, 1].std():.5f}   "
              f"time {times[name] / args.seeds:.2f} s/sequence")  # fmt: skip


if __name__ == "__main__":
    main()
