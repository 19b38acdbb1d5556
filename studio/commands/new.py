"""``talking-head-studio new OUT.ths [--fps N] [--duration S] [--audio WAV]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.commands._common import check_out_project


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="create an empty project file")
    p.add_argument("out", type=Path, help="project file to write (.ths)")
    p.add_argument("--fps", default="25", help="frame rate: 25, 30, 30000/1001, 29.97 (default 25)")
    p.add_argument(
        "--duration", type=float, default=None,
        help="length in seconds (default: the audio's length, or 10 s)",
    )  # fmt: skip
    p.add_argument("--audio", type=Path, default=None, help="speech to embed (WAV, FLAC, OGG)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    from studio.document import FrameRate, save_project
    from studio.project_ops import new_project

    out: Path = args.out
    check_out_project(out, args.force)
    project = new_project(FrameRate.parse(args.fps), args.duration, args.audio)
    save_project(project, out)
    seconds = project.duration / project.frame_rate.fps
    audio = f", audio {args.audio.name}" if args.audio else ""
    print(f"wrote {out}: {project.duration} frames at {args.fps} fps ({seconds:.2f} s){audio}")
    return 0
