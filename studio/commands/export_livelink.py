"""``talking-head-studio export-livelink PROJECT --out FILE.csv [--range A:B]``: the active
take as a Live Link Face CSV (ARKit blendshapes; the inverse of import-livelink's retargeting
where one is defined, see docs/motion-space.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.commands.export import parse_range


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-livelink",
        help="write the active take as a Live Link Face CSV",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("project", type=Path, help="project file (.ths)")
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument(
        "--range",
        type=parse_range,
        default=None,
        metavar="A:B",
        help="project frames A (inclusive) to B (exclusive); default the work range",
    )
    p.add_argument("--angle-unit", choices=("radians", "degrees", "normalized"), default="radians")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    from studio.cli import CliError
    from studio.document.fileformat import ProjectFileError, load_project
    from studio.livelink import export_livelink

    if args.out.exists() and not args.force:
        raise CliError(f"{args.out} exists; pass --force to overwrite it")
    try:
        project = load_project(args.project, missing_assets="keep")
    except ProjectFileError as exc:
        raise CliError(str(exc)) from None
    frame_range = None
    if args.range is not None:
        start, end = args.range
        w0, w1 = project.work_range
        frame_range = (w0 if start is None else start, w1 if end is None else end)
    start, end = export_livelink(project, args.out, frame_range, args.angle_unit)
    print(f"wrote {args.out}: frames {start}:{end} of take {project.active_take.name!r}")
    return 0
