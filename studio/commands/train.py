"""``talking-head-studio train motion|intensity --data DIR --out MODEL_DIR [--steps N]
[--batch B] [--seed S] [--generate-data N_CLIPS]``: train a motion model (MotionDiT) or the
audio-to-intensity models (A2I teacher + student) on paired speech and motion.

``--data`` is one of:
- a training data folder (``manifest.json`` + ``clips/``, models.speech_data's layout);
  with ``--generate-data N`` N synthetic espeak-ng clips are written there first;
- a ``.ths`` project, or a folder of them: every take with keys becomes a clip, paired with the
  project's audio mix over the take's keyed frames (resampled to 25 fps and 16 kHz); the pairs
  are written to ``MODEL_DIR/project_data`` and trained on from there.

Training resumes from ``MODEL_DIR/training_state.pt`` when one is there (``--restart`` ignores
it). Progress is printed every ``--log-every`` steps.

Numeric options are checked before anything is written. The run works in a temporary folder
beside ``MODEL_DIR`` (a copy of it when it already holds a model) that replaces ``MODEL_DIR``
only when training finished; on an error or Ctrl-C it is removed and ``MODEL_DIR`` is left as
it was (progress since the start of that run is lost; a finished run can be continued with a
larger ``--steps``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a motion (MotionDiT) or intensity (A2I) model on speech + motion pairs",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=("motion", "intensity"), help="which model to train")
    p.add_argument("--data", type=Path, required=True,
                   help="training data folder, a .ths project or a folder of projects")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--steps", type=int, default=None,
                   help="optimisation steps (intensity: per phase)")  # fmt: skip
    p.add_argument("--batch", type=int, default=None, help="batch size (default 32 / 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and generated data")
    p.add_argument("--generate-data", type=int, default=0, metavar="N_CLIPS",
                   help="first write N synthetic espeak-ng clips into --data")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--log-every", type=int, default=25, help="print progress every N steps")
    p.add_argument("--restart", action="store_true",
                   help="ignore a saved training state in --out and start over")  # fmt: skip


def _project_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix == ".ths":
        return [path]
    if path.is_dir():
        return sorted(path.glob("*.ths"))
    return []


def projects_to_dataset(projects: list[Path], out_dir: Path) -> int:
    """Write the keyed takes of ``projects`` with their audio as a training data folder
    (models.speech_data layout, 25 fps, 16 kHz mono). Returns the number of clips.

    Takes without keys, or whose frames have no audible sound, are skipped. Raises
    ProjectFileError for an unreadable project, ExportError for missing audio."""
    import json
    import os
    import wave

    import numpy as np

    from models.motion_space import CHANNELS
    from studio.document.fileformat import load_project
    from studio.export.audio import mix_project_audio

    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    entries = []
    for path in projects:
        project = load_project(path)
        fps = project.frame_rate.fps
        for take in project.takes:
            rng = take.key_range()
            if rng is None:
                continue
            a, b = max(rng[0], 0), min(rng[1] + 1, project.duration)
            if b - a < 2:
                continue
            audio = mix_project_audio(project, a, b, rate=16000).mean(axis=1)
            if np.abs(audio).max(initial=0.0) < 1e-4:
                continue
            n = int(np.ceil(audio.size / 640))
            frames = a + np.arange(n) / 25.0 * fps  # 25 fps samples in project frames
            motion = take.evaluate(frames).astype(np.float32)
            cid = f"clip_{len(entries):06d}"
            pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
            with wave.open(str(out_dir / "clips" / f"{cid}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(pcm.tobytes())
            np.save(out_dir / "clips" / f"{cid}.motion.npy", motion)
            entries.append({"id": cid, "text": "", "num_frames": n, "num_samples": int(audio.size),
                            "voice": "recorded", "project": str(path), "take": take.name,
                            "frames": [a, b]})  # fmt: skip
    manifest = {"version": 1, "seed": None, "fps": 25, "sample_rate": 16000,
                "channels": list(CHANNELS), "clips": entries}  # fmt: skip
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out_dir / "manifest.json")
    return len(entries)


# Files that mark a folder as a model folder this command may replace.
_MODEL_MARKERS = ("training_state.pt", "training_log.json", "config.json")


def check_args(args: argparse.Namespace) -> None:
    """Raise CliError (one line) for a numeric option that is not finite or out of range."""
    import math

    from studio.cli import CliError

    for flag, value, low in (
        ("--steps", args.steps, 1),
        ("--batch", args.batch, 1),
        ("--threads", args.threads, 1),
        ("--log-every", args.log_every, 1),
        ("--generate-data", args.generate_data, 0),
    ):
        if value is not None and value < low:
            need = "a positive integer" if low == 1 else "0 or more"
            raise CliError(f"{flag} must be {need}, got {value}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise CliError(f"--lr must be a finite number > 0, got {args.lr}")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in _MODEL_MARKERS):
        raise CliError(f"--out {out} is a folder that holds no model; choose a new or empty one")


def _staging_folder(out: Path) -> Path:
    """A new empty folder beside ``out`` (same file system, so the final rename is atomic),
    holding a copy of ``out``'s files when ``out`` exists (for resuming)."""
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.training-", dir=out.parent))
    if out.is_dir():
        shutil.copytree(out, work, dirs_exist_ok=True)
    return work


def _publish(work: Path, out: Path) -> None:
    """Replace ``out`` with the finished ``work`` folder (the old one is removed after)."""
    import os
    import shutil

    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        os.replace(out, old)
    os.replace(work, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    import shutil

    from studio.cli import CliError

    check_args(args)
    from models.training import IntensityTrainConfig, MotionTrainConfig

    overrides: dict = {"seed": args.seed}
    for name in ("batch", "lr"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.threads is not None:
        overrides["num_threads"] = args.threads
    if args.steps is not None:
        if args.kind == "motion":
            overrides["steps"] = args.steps
        else:
            overrides["teacher_steps"] = overrides["student_steps"] = args.steps
    try:
        config = (MotionTrainConfig if args.kind == "motion" else IntensityTrainConfig)(**overrides)
    except ValueError as exc:
        raise CliError(str(exc)) from exc

    work = _staging_folder(args.out)
    try:
        _train(args, config, work)
        _publish(work, args.out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    print(f"model written to {args.out}")
    return 0


def _train(args: argparse.Namespace, config, out: Path) -> None:
    from studio.cli import CliError

    data: Path = args.data
    projects = _project_files(data)
    if args.generate_data:
        if projects:
            raise CliError(f"--generate-data writes a data folder; {data} holds projects")
        from models.speech_data import iter_generate_dataset

        for done, total in iter_generate_dataset(data, args.generate_data, seed=args.seed):
            if done % 25 == 0 or done == total:
                print(f"generated {done}/{total} clips into {data}", flush=True)
    elif projects:
        folder = out / "project_data"
        n = projects_to_dataset(projects, folder)
        if n == 0:
            raise CliError(f"{data}: no take with keys and audible audio in {len(projects)} "
                           "project(s)")  # fmt: skip
        print(f"{n} clip(s) from {len(projects)} project(s) written to {folder}")
        data = folder
    elif not (data / "manifest.json").is_file():
        raise CliError(
            f"{data}: not a training data folder (no manifest.json) and no .ths projects; "
            "use --generate-data N to make one"
        )
    from models.training import iter_train_intensity, iter_train_motion

    if args.kind == "motion":
        it = iter_train_motion(data, out, config, resume=not args.restart)
    else:
        it = iter_train_intensity(data, out, config, resume=not args.restart)
    every = max(1, args.log_every)
    for p in it:
        if p.phase == "data" or p.message or p.step % every == 0 or p.done:
            losses = " ".join(f"{k} {v:.4f}" for k, v in p.losses.items())
            where = f"{p.phase} {p.step}/{p.total}" if p.phase != "data" else "data"
            print(f"{where} {losses} {p.message}".rstrip() + f" [{p.elapsed_s:.0f} s]",
                  flush=True)  # fmt: skip
        if p.done:
            return
    raise CliError("training stopped before it finished")
