"""``talking-head-studio export-motion PROJECT --out FILE.csv|.json|.npy [--range A:B]``: the
active take's motion per project frame as CSV/JSON (named channels plus mouth_open, blink_l,
blink_r) or Ditto's packed 265-D layout (.npy)."""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.commands._common import add_range_argument, load_project_or_fail, resolve_range


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-motion",
        help="write the active take's motion as CSV, JSON or Ditto .npy",
        description="Columns are documented in docs/formats.md (studio.export.motion).",
    )
    p.add_argument("project", type=Path, help="project file (.ths)")
    p.add_argument("--out", type=Path, required=True, help="output file: .csv, .json or .npy")
    add_range_argument(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    from studio.export import export_motion

    # "keep": the export itself reports a missing audio file or head, with a remedy.
    project = load_project_or_fail(args.project)
    frame_range = resolve_range(project, args.range)
    out = export_motion(project, args.out, frame_range, overwrite=args.force)
    start, end = frame_range or project.work_range
    print(f"wrote {out}: frames {start}:{end} of take {project.active_take.name!r}")
    return 0
