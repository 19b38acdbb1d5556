"""``talking-head-studio open [PROJECT]`` and the default main job.

The main job (no command): with a display, the studio window on the demo project (or the project
given); without one, a headless render of the demo, saying where the file is.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("open", help="open the studio window (on PROJECT, or the demo)")
    p.add_argument("project", type=Path, nargs="?", default=None, help="project file (.ths)")
    # Hidden: save a PNG of the window once it has settled, then quit (docs, visual checks).
    p.add_argument("--screenshot", type=Path, default=None, help=argparse.SUPPRESS)


def display_available() -> bool:
    """True when a Qt window can be shown: an X or Wayland display, or an explicit Qt platform
    such as offscreen (used by tests), or a desktop OS."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM")
    )


def run(args: argparse.Namespace) -> int:
    from studio.cli import CliError

    if not display_available():
        raise CliError("no display to open the studio on (set DISPLAY, or use `demo` / `render`)")
    from studio.ui.app import run_studio

    return run_studio(args.project, screenshot=getattr(args, "screenshot", None))


def run_default(args: argparse.Namespace) -> int:
    if display_available():
        from studio.ui.app import run_studio

        return run_studio(None)
    print(
        "talking-head-studio: no display found; rendering the demo project headless instead",
        file=sys.stderr,
    )
    from studio.commands import demo

    return demo.run(argparse.Namespace(out=None))
