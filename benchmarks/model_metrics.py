"""Quality and speed of a trained motion model on held-out generated speech, against the
procedural baseline in the same process.

    .venv/bin/python benchmarks/model_metrics.py --model resources/models/motion_default \
        --data /tmp/heldout [--generate 40 --seed 9001 [--head random|prosody]] [--clips 40] \
        [--threads 1] [--json out]

Held-out data: a models.speech_data folder NOT used in training (another seed: other sentences,
voice/variant combinations, speeds, emotions); ``--generate N`` writes one first. Per clip:

- lip-sync proxy: Pearson correlation between the speech envelope (RMS of each 640-sample frame,
  25 fps) and the mouth opening ``exp_19_y`` of the motion;
- jitter: mean absolute second difference over time of the 63 expression channels (keypoint
  units x 1000) and of pitch/yaw/roll (degrees);
- real-time factor: generation wall time / audio duration (10 DDIM steps, guidance 2, one
  window batch of 2 for guidance; features included).

Rows: the model (conditions = the clip's own emotion and eye channels, reference = its first
frame), the same model output with the head-pose channels smoothed as studio.generation does by
default ("model + pose smoothing": models.smoothing.smooth_pose, Gaussian sigma
``--pose-smoothing`` frames, default 2.5), the procedural baseline (models.procedural on the
same audio) and the generated targets themselves ("data"). Medians over clips are printed as a
Markdown table and written as JSON. Also reports how many held-out clips have a voice+variant
never seen in the training manifest (``--train-data``) and the median lip-sync on those.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rms_envelope(audio: np.ndarray, frames: int) -> np.ndarray:
    a = np.zeros(frames * 640)
    n = min(a.size, audio.size)
    a[:n] = audio[:n]
    return np.sqrt((a.reshape(frames, 640) ** 2).mean(axis=1))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def clip_metrics(channels: np.ndarray, env: np.ndarray) -> dict[str, float]:
    """Lip-sync correlation and jitter of motion channels ``[T, 90]``."""
    from models.motion_space import CHANNEL_INDEX, EXP_CHANNELS, JAW_OPEN_CHANNEL

    exp = channels[:, [CHANNEL_INDEX[c] for c in EXP_CHANNELS]]
    pose = channels[:, [CHANNEL_INDEX[c] for c in ("pitch", "yaw", "roll")]]
    return {
        "lip_corr": _corr(env, channels[:, CHANNEL_INDEX[JAW_OPEN_CHANNEL]]),
        "jitter_exp_x1000": float(np.abs(np.diff(exp, n=2, axis=0)).mean() * 1000),
        "jitter_pose_deg": float(np.abs(np.diff(pose, n=2, axis=0)).mean()),
    }


def intensity_metrics(args: argparse.Namespace, entries: list[dict]) -> int:
    """A2I student (and teacher) against the held-out clips' velocity features: median Pearson
    correlation of the predicted intensity with v_h and v_f, and the student's time per second of
    audio."""
    from models.audio_features import LogMelFeatures
    from models.intensity import intensity_targets
    from models.pretrained import load_intensity_model

    student = load_intensity_model(args.intensity)
    teacher = load_intensity_model(args.intensity, teacher=True)
    feats_of = LogMelFeatures()
    rows: dict[str, list[float]] = {k: [] for k in ("s_vh", "s_vf", "t_vh", "t_vf", "rtf")}
    for entry in entries:
        cid = entry["id"]
        with wave.open(str(args.data / "clips" / f"{cid}.wav"), "rb") as w:
            audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        gt = np.load(args.data / "clips" / f"{cid}.motion.npy").astype(np.float64)
        t0 = time.perf_counter()
        feats = feats_of(audio, 16000)[: gt.shape[0]]
        y = student.predict(feats)
        rows["rtf"].append((time.perf_counter() - t0) / (audio.size / 16000))
        v_h, v_f = intensity_targets(gt[: feats.shape[0]])
        yt = teacher.predict(feats, v_h, v_f)
        rows["s_vh"].append(_corr(y, v_h))
        rows["s_vf"].append(_corr(y, v_f))
        rows["t_vh"].append(_corr(yt, v_h))
        rows["t_vf"].append(_corr(yt, v_f))
    med = {k: float(np.median(v)) for k, v in rows.items()}
    print("| model | corr with v_h (head) | corr with v_f (upper face) | real-time factor |")
    print("|---|---|---|---|")
    print(f"| student (audio only) | {med['s_vh']:.3f} | {med['s_vf']:.3f} | {med['rtf']:.4f} |")
    print(f"| teacher (audio + velocities) | {med['t_vh']:.3f} | {med['t_vf']:.3f} | - |")
    result = {"intensity": str(args.intensity), "clips": len(entries), "medians": med}
    if args.json is not None:
        args.json.write_text(json.dumps({**result, "per_clip": rows}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="motion model folder")
    ap.add_argument("--intensity", type=Path, default=None, help="A2I model folder")
    ap.add_argument("--data", type=Path, required=True, help="held-out data folder")
    ap.add_argument("--generate", type=int, default=0, help="generate N held-out clips first")
    ap.add_argument("--seed", type=int, default=9001, help="seed of generated held-out data")
    ap.add_argument(
        "--head",
        default="random",
        choices=["random", "prosody"],
        help="head motion of generated held-out data (models.speech_data)",
    )
    ap.add_argument("--train-data", type=Path, default=None, help="training folder (voices)")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pose-smoothing", type=float, default=2.5, help="sigma, frames")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from models.motion_space import unpack_ditto
    from models.pretrained import load_motion_model
    from models.procedural import procedural_motion
    from models.smoothing import smooth_pose

    torch.set_num_threads(args.threads)
    if args.generate:
        from models.speech_data import generate_dataset

        generate_dataset(args.data, args.generate, seed=args.seed, head=args.head)
    manifest = json.loads((args.data / "manifest.json").read_text())
    entries = manifest["clips"][: args.clips]
    seen_voices: set[str] = set()
    seen_texts: set[str] = set()
    if args.train_data is not None:
        tm = json.loads((args.train_data / "manifest.json").read_text())
        seen_voices = {c["voice"] for c in tm["clips"]}
        seen_texts = {c["text"] for c in tm["clips"]}
    if args.intensity is not None:
        return intensity_metrics(args, entries)
    if args.model is None:
        ap.error("give --model and/or --intensity")
    pm = load_motion_model(args.model)
    smoothed = "model + pose smoothing"
    rows: dict[str, list[dict]] = {"model": [], smoothed: [], "procedural": [], "data": []}
    unseen: list[int] = []
    total_audio = 0.0
    for k, entry in enumerate(entries):
        cid = entry["id"]
        with wave.open(str(args.data / "clips" / f"{cid}.wav"), "rb") as w:
            audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768
        gt = np.load(args.data / "clips" / f"{cid}.motion.npy").astype(np.float64)
        T = gt.shape[0]
        env = _rms_envelope(audio, T)
        dur = audio.size / 16000
        total_audio += dur

        t0 = time.perf_counter()
        packed = pm.generate(
            audio.astype(np.float32), 16000, channels=gt, ref_channels=gt[0],
            steps=args.steps, guidance_scale=args.guidance, seed=k,
        )  # fmt: skip
        t_model = time.perf_counter() - t0
        ch = unpack_ditto(packed[:T], base=gt)
        assert np.all(np.isfinite(ch))
        rows["model"].append({**clip_metrics(ch, env), "rtf": t_model / dur})
        t0 = time.perf_counter()
        ch_s = smooth_pose(ch, args.pose_smoothing)
        t_smooth = t_model + time.perf_counter() - t0
        rows[smoothed].append({**clip_metrics(ch_s, env), "rtf": t_smooth / dur})

        t0 = time.perf_counter()
        proc = procedural_motion(audio, 16000, 25, T, seed=k)
        t_proc = time.perf_counter() - t0
        rows["procedural"].append({**clip_metrics(proc, env), "rtf": t_proc / dur})
        rows["data"].append({**clip_metrics(gt, env), "rtf": float("nan")})
        if seen_voices and entry["voice"] not in seen_voices:
            unseen.append(k)
        print(f"{cid} {dur:.1f}s model lip {rows['model'][-1]['lip_corr']:.2f} "
              f"rtf {rows['model'][-1]['rtf']:.2f}", file=sys.stderr, flush=True)  # fmt: skip

    keys = ("lip_corr", "jitter_exp_x1000", "jitter_pose_deg", "rtf")
    summary = {
        name: {key: float(np.median([r[key] for r in rs])) for key in keys}
        for name, rs in rows.items()
    }
    result = {
        "model": str(args.model),
        "data": str(args.data),
        "clips": len(entries),
        "audio_seconds": round(total_audio, 1),
        "steps": args.steps,
        "guidance": args.guidance,
        "pose_smoothing": args.pose_smoothing,
        "torch_threads": torch.get_num_threads(),
        "medians": summary,
        "lip_corr_p25_p75": {
            name: [float(np.percentile([r["lip_corr"] for r in rs], q)) for q in (25, 75)]
            for name, rs in rows.items()
        },
        "unseen_voice_clips": len(unseen),
        "unseen_voice_lip_corr_model": (
            float(np.median([rows["model"][k]["lip_corr"] for k in unseen])) if unseen else None
        ),
        "heldout_texts_in_training": sum(e["text"] in seen_texts for e in entries),
    }
    print("| motion | lip-sync corr (median) | jitter exp (x1000) | jitter pose (deg) | RTF |")
    print("|---|---|---|---|---|")
    for name, s in summary.items():
        rtf = "-" if np.isnan(s["rtf"]) else f"{s['rtf']:.3f}"
        print(f"| {name} | {s['lip_corr']:.3f} | {s['jitter_exp_x1000']:.3f} | "
              f"{s['jitter_pose_deg']:.4f} | {rtf} |")  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "medians"}, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps({**result, "per_clip": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
