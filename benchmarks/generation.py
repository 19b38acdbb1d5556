"""Benchmark: motion generation speed (real-time factor) and streaming first-frame delay.

Three configs: the shipped trained model (resources/models/motion_default), and two with random
weights (timing only):
- small: latent 256, 4 decoder layers, 4 heads, feed-forward 512, log-mel audio (80-D), the size
  of a model we could ship (fp16 <= 20 MB);
- ditto: Ditto's LMDM size (47.79M parameters, HuBERT 1024-D audio).

RTF = generation time / audio duration, 10 DDIM steps, guidance 2 (Ditto's), overlapping windows
of 80 frames (overlap 10), on ``--threads`` torch threads. First-frame delay: a MotionStream with a
``--hop``-frame hop; the compute time of the first push that returns frames (add the hop's audio,
hop / 25 s, for the end-to-end delay).

Times are wall-clock and, beside them, this process's CPU time per thread (on a loaded machine
the CPU time of a 1-thread run approximates the wall time on an idle core).

Same-process baselines, because the machine is shared and absolute numbers swing with its load:
- naive: the straightforward sampler (``model(...)`` per step: condition encoder recomputed at
  every step, guidance as two separate forwards, no_grad instead of inference_mode), one window;
- matmul: a [80, 512] x [512, 512] matmul loop, to put the machine's current speed in GFLOP/s.

    .venv/bin/python benchmarks/generation.py [--threads 1 2] [--seconds 8.8] [--hop 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from models.motion_dit import MotionDiT
from models.motion_sampling import MotionConditions, MotionStream, generate_motion, make_scheduler

CONFIGS = {
    "shipped": None,  # the trained default model in resources/models/motion_default
    "small": dict(latent_dim=256, num_layers=4, num_heads=4, ff_dim=512, audio_dim=80),
    "ditto": dict(),
}


def make_model(name: str) -> MotionDiT:
    if CONFIGS[name] is None:
        from models.pretrained import load_default_motion_model

        return load_default_motion_model().model.eval()
    return MotionDiT(**CONFIGS[name]).eval()


COND = MotionConditions(x_c=np.zeros(63), eye_open=np.full(2, 0.3), eye_ball=np.zeros(6))


def matmul_gflops(seconds: float = 0.5) -> float:
    a, w = torch.randn(80, 512), torch.randn(512, 512)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ w
        n += 1
    return n * 2 * 80 * 512 * 512 / (time.perf_counter() - t0) / 1e9


def naive_window(model: MotionDiT, feats: np.ndarray, steps: int, guidance: float) -> float:
    """One window the straightforward way; returns seconds."""
    cfg = model.config
    sched = make_scheduler("ddim")
    sched.set_timesteps(steps)
    rows = np.concatenate([feats[: cfg.seq_len], COND.frames(0, cfg.seq_len)], 1)
    cond = torch.from_numpy(rows)[None]
    ref = torch.zeros(1, cfg.motion_dim)
    x = torch.randn(1, cfg.seq_len, cfg.motion_dim)
    t0 = time.perf_counter()
    with torch.no_grad():
        for t in sched.timesteps:
            c = model(x, t, ref, cond, keep_cond=True)
            u = model(x, t, ref, cond, keep_cond=False)
            x = sched.step(u + guidance * (c - u), t, x, eta=1.0).prev_sample
    return time.perf_counter() - t0


def optimised_seconds(
    model: MotionDiT, feats: np.ndarray, steps: int, guidance: float
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for generate_motion."""
    t0, c0 = time.perf_counter(), time.process_time()
    generate_motion(model, feats, COND, np.zeros(265), steps=steps, guidance_scale=guidance)
    return time.perf_counter() - t0, time.process_time() - c0


def first_frame_delay(model: MotionDiT, feats: np.ndarray, hop: int, steps: int) -> float:
    stream = MotionStream(model, COND, np.zeros(265), hop=hop, steps=steps)
    t0 = time.perf_counter()
    out = stream.push(feats[:hop])
    assert out.shape[0] == hop
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=8.8, help="audio length (8.8 s = 3 windows)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--hop", type=int, default=10)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    args = ap.parse_args()
    T = round(args.seconds * 25)
    print(f"audio {args.seconds:.1f} s = {T} frames, {args.steps} DDIM steps, g={args.guidance}")
    for name in args.configs:
        torch.manual_seed(0)
        model = make_model(name)
        n = sum(p.numel() for p in model.parameters())
        feats = np.random.default_rng(0).normal(size=(T, model.config.audio_dim))
        feats = feats.astype(np.float32)
        mb = n * 4 / 1e6
        print(f"\n[{name}] {n / 1e6:.2f}M params, fp32 {mb:.1f} MB, fp16 {mb / 2:.1f} MB")
        for threads in args.threads:
            torch.set_num_threads(threads)
            optimised_seconds(model, feats[:80], 1, args.guidance)  # warm-up
            gf = matmul_gflops()
            opt, cpu = optimised_seconds(model, feats, args.steps, args.guidance)
            one, _ = optimised_seconds(model, feats[:80], args.steps, args.guidance)
            naive = naive_window(model, feats, args.steps, args.guidance)
            ffd = first_frame_delay(model, feats, args.hop, args.steps)
            print(
                f"  threads={threads}: matmul {gf:5.1f} GFLOP/s | RTF {opt / args.seconds:.3f} "
                f"wall ({opt:.2f} s), {cpu / args.seconds / threads:.3f} CPU-time/thread | "
                f"one window {one:.2f} s vs naive {naive:.2f} s (x{naive / one:.2f}) | "
                f"first frame {ffd * 1e3:.0f} ms compute + {args.hop * 40} ms audio hop"
            )


if __name__ == "__main__":
    main()
