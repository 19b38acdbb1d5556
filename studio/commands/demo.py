"""``talking-head-studio demo [--out FILE]``: render the shipped demo project headless.

This is the main job on a machine without a display: a stereo side-by-side clip of the demo
(``demo_LR.mp4``: H.264 + AAC with the st3d stereo box) in the current folder. It is the
``export`` command on the demo project with the demo's defaults.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="render the demo project headless (stereo MP4)")
    p.add_argument("--out", type=Path, default=None, help="output file (default ./demo_LR.mp4)")
    p.add_argument("--eye-size", type=int, default=512, help="pixels per eye (default 512)")


def demo_project_path() -> Path:
    """The shipped demo project; rebuilt into the user's cache if the install lacks it."""
    from studio.demo import DEMO_PROJECT, build_demo_project
    from studio.document import save_project

    if DEMO_PROJECT.exists():
        return DEMO_PROJECT
    import os

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "talking-head-studio" / "demo.ths"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_project(build_demo_project(), path)
    return path


def run(args: argparse.Namespace) -> int:
    from studio.commands import export

    out = getattr(args, "out", None) or Path.cwd() / "demo_LR.mp4"
    eye = getattr(args, "eye_size", None) or 512
    parser = argparse.ArgumentParser(prog="talking-head-studio demo")
    export.add_parser(parser.add_subparsers(dest="command"))
    export_args = parser.parse_args(
        ["export", str(demo_project_path()), "--out", str(out), "--layout", "sbs",
         "--eye-size", str(eye), "--force"]
    )  # fmt: skip
    return export.run(export_args)
