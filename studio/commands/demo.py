"""``talking-head-studio demo [--out FILE]``: render the shipped demo project headless.

This is the main job on a machine without a display: a stereo side-by-side clip of the demo
(``demo_LR.mp4``, H.264 + AAC with stereo metadata) in the current folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render the demo project headless (stereo MP4)")
    p.add_argument("--out", type=Path, default=None, help="output file (default ./demo_LR.mp4)")
    p.add_argument("--eye-size", type=int, default=512, help="pixels per eye (default 512)")


def demo_project():
    """The shipped demo project, or (if its file is missing from the install) a fresh build."""
    from studio.demo import DEMO_PROJECT, build_demo_project
    from studio.document import load_project

    if DEMO_PROJECT.exists():
        return load_project(DEMO_PROJECT), DEMO_PROJECT
    return build_demo_project(), None


def run(args: argparse.Namespace) -> int:
    from studio.export import ExportSettings, export_project_cli

    project, path = demo_project()
    out = args.out or Path.cwd() / "demo_LR.mp4"
    settings = ExportSettings(layout="sbs", eye_size=getattr(args, "eye_size", 512))
    export_project_cli(project, out, settings, base_dir=path.parent if path else None)
    print(f"demo rendered to {out.resolve()}")
    return 0
