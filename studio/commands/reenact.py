"""``talking-head-studio reenact --source VIDEO_OR_CAMERA --project P --out P2``: record a take
from a video, an image sequence or a webcam with the face tracker (headless performance capture).

The first ``--calibrate-frames`` frames are the performer's neutral face. The take is added to
the project (and made active), the project's duration grows to cover it, and the result is saved
to ``--out`` atomically. Progress goes to stderr.

Hybrid mode (``--hybrid-audio WAV``): the video drives head, eyes and brows while the audio
generator (``--lips-model``: the shipped motion model, falling back to the procedural one) drives
the lips from the WAV, which starts with the first recorded frame and is added to the project as
an audio clip at the take's start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.commands._common import (
    check_out_project,
    load_project_or_fail,
    progress,
    progress_line,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reenact",
        help="record a take from a video or webcam with the face tracker",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--source",
        required=True,
        help="video file, image folder or glob, or a camera index (0, 1, ...)",
    )
    p.add_argument("--project", type=Path, required=True, help="project file to add the take to")
    p.add_argument("--out", type=Path, required=True, help="project file to write (.ths)")
    p.add_argument(
        "--calibrate-frames",
        type=int,
        default=10,
        help="first N frames are the neutral face (default 10; 0: the first frame "
        "with a face is the neutral)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this many seconds (needed for a camera; default: to the end)",
    )
    p.add_argument("--name", default="Capture", help="take name (default Capture)")
    p.add_argument("--pose", choices=("relative", "absolute"), default="relative")
    p.add_argument(
        "--smoothing",
        type=float,
        default=1.5,
        metavar="HZ",
        help="One-Euro min cutoff in Hz (lower is smoother; default 1.5)",
    )
    p.add_argument("--beta", type=float, default=0.5, help="One-Euro speed coefficient")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="performer profile JSON to use instead of calibrating",
    )
    p.add_argument("--save-profile", type=Path, default=None, help="write the calibration here")
    p.add_argument(
        "--hybrid-audio",
        type=Path,
        default=None,
        metavar="AUDIO",
        help="hybrid mode: lips from this audio file (WAV/FLAC/OGG) through the speech "
        "generator, head, eyes and brows from the video",
    )
    p.add_argument(
        "--lips-model",
        default="default",
        help="hybrid mode's lip generator: default (the shipped motion model), procedural, "
        "or a model folder (default: default)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def run(args: argparse.Namespace) -> int:
    from studio.cli import CliError
    from studio.document.fileformat import save_project

    out: Path = args.out
    check_out_project(out, args.force)
    if args.calibrate_frames < 0:
        raise CliError(f"--calibrate-frames must be >= 0, got {args.calibrate_frames}")
    if args.seconds is not None and args.seconds <= 0:
        raise CliError(f"--seconds must be positive, got {args.seconds}")
    project = load_project_or_fail(args.project)
    mixer = clip = None
    if args.hybrid_audio is not None:
        mixer, clip = _hybrid_mixer(project, args.hybrid_audio, args.lips_model)

    from models.face.sources import open_source
    from models.face.tracker import FaceTracker, PerformerProfile, TrackerSettings
    from studio.capture import add_take_to_project, iter_record_take

    settings = TrackerSettings(min_cutoff=args.smoothing, beta=args.beta, pose=args.pose)
    profile = PerformerProfile.load(args.profile) if args.profile else None
    tracker = FaceTracker(settings=settings, profile=profile)
    calib = 0 if profile is not None else args.calibrate_frames
    source = open_source(args.source)
    if source.is_live and args.seconds is None:
        source.close()
        raise CliError("recording from a camera needs --seconds")
    take = None
    with progress_line():
        try:
            for p in iter_record_take(source, tracker, project, calibrate_frames=calib,
                                      name=args.name, max_seconds=args.seconds,
                                      hybrid=mixer):  # fmt: skip
                if p.take is not None:
                    take = p.take
                    if p.phase == "disconnected":
                        print(
                            f"\nwarning: {p.message}; keeping {p.recorded} frames",
                            file=sys.stderr,
                        )
                elif p.frames % 10 == 0:
                    progress(
                        f"{p.phase}: frame {p.frames}, {p.seconds:6.2f} s, "
                        f"no face in {p.lost}, faces {p.num_faces}"
                    )
        finally:
            source.close()
    assert take is not None
    if args.save_profile and tracker.profile is not None:
        tracker.profile.save(args.save_profile)
    add_take_to_project(project, take)
    if clip is not None:
        from studio.document import AddAudioClip

        AddAudioClip(clip).apply(project)
    save_project(project, out)
    cap = take.metadata["capture"]
    print(
        f"wrote {out}: take {take.name!r}, {cap['length_frames']} frames at "
        f"{project.frame_rate.fps:g} fps from {cap['frames']} tracked "
        f"({cap['frames_without_face']} without a face)"
        + (f"; lips from {args.hybrid_audio.name} ({cap['lips']})" if mixer is not None else "")
    )
    return 0


def _hybrid_mixer(project, path: Path, model: str):
    """(HybridMixer with the whole file generated, the AudioClip to add at frame 0).
    Raises CliError for unreadable audio."""
    from models.hybrid import HybridMixer, make_lip_generator
    from studio.cli import CliError
    from studio.document.audio import AudioError, read_audio
    from studio.project_ops import embed_audio

    try:
        audio = read_audio(path)
        clip = embed_audio(project, path, offset=0)
    except AudioError as exc:
        raise CliError(str(exc)) from None
    progress(f"generating lips from {path.name} ({audio.duration:.1f} s)")
    # Offline: the whole file is known, so long hops (fewer windows) cost no delay.
    generator, notice = make_lip_generator(model, hop=40)
    if notice:
        print(f"\nnotice: {notice}", file=sys.stderr)
    return HybridMixer.from_audio(generator, audio.samples, audio.sample_rate), clip
