"""``talking-head-studio info PROJECT``: a summary of a project file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="summarise a project: fps, frames, tracks, audio, head")
    p.add_argument("project", type=Path, help="project file (.ths)")
    p.add_argument("--all-channels", action="store_true", help="list channels without keys too")


def run(args: argparse.Namespace) -> int:
    from studio.document import load_project
    from studio.project_ops import describe_project

    project = load_project(args.project)
    print(describe_project(project, name=str(args.project), all_channels=args.all_channels))
    return 0
