"""``talking-head-studio auto-emotion PROJECT --out PROJECT2 [--take NAME] [--range A:B]``: key
a take's emotion curve from its own expression (auto-emotion: the expression compared with the
emotion templates by cosine similarity, with what speech drives taken out first).

The keys replace the take's emotion keys inside the range (default: the whole project) and keep
those outside it; the result is saved to ``--out`` atomically. The studio does the same as one
undoable edit (studio.project_ops.auto_emotion_keys).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.commands._common import add_range_argument, check_out_project, load_project_or_fail


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "auto-emotion",
        help="key a take's emotion curve from its expression",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("project", type=Path, help="project file (.ths)")
    p.add_argument("--out", type=Path, required=True, help="project file to write (.ths)")
    p.add_argument("--take", default=None, metavar="NAME", help="take to read (default: active)")
    add_range_argument(p)
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="largest weight error of the keys against the per-frame curve (default 0.05)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def run(args: argparse.Namespace) -> int:
    import math

    from studio.cli import CliError
    from studio.commands._common import resolve_range
    from studio.document.fileformat import save_project
    from studio.project_ops import auto_emotion_keys

    check_out_project(args.out, args.force)
    if not (math.isfinite(args.tolerance) and 0 < args.tolerance < 1):
        raise CliError(f"--tolerance must be between 0 and 1, got {args.tolerance}")
    project = load_project_or_fail(args.project)
    take_id = None
    if args.take is not None:
        matches = [t for t in project.takes if t.name == args.take]
        if not matches:
            names = ", ".join(repr(t.name) for t in project.takes)
            raise CliError(f"no take named {args.take!r}; the project has {names}")
        take_id = matches[0].id
    frame_range = resolve_range(project, args.range)
    try:
        result = auto_emotion_keys(project, take_id, frame_range, tolerance=args.tolerance)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    result.edit.apply(project)  # the CLI has no history
    save_project(project, args.out)
    from models.motion_space import EMOTIONS

    take = project.take(result.take_id)
    a, b = result.frame_range
    share = result.weights.mean(axis=0)
    top = ", ".join(f"{EMOTIONS[i]} {share[i]:.2f}" for i in share.argsort()[::-1][:3])
    print(f"wrote {args.out}: {len(result.frames)} emotion keys on take {take.name!r}, "
          f"frames {a}..{b - 1} (mostly {top})")  # fmt: skip
    return 0
