"""``talking-head-studio export-livelink PROJECT --out FILE.csv [--range A:B]``: the active
take as a Live Link Face CSV (ARKit blendshapes; the inverse of import-livelink's retargeting
where one is defined, see docs/motion-space.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.commands._common import (
    add_range_argument,
    check_overwrite,
    load_project_or_fail,
    resolve_range,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-livelink",
        help="write the active take as a Live Link Face CSV",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("project", type=Path, help="project file (.ths)")
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    add_range_argument(p)
    p.add_argument("--angle-unit", choices=("radians", "degrees", "normalized"), default="radians")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    from studio.livelink import export_livelink

    check_overwrite(args.out, args.force)
    project = load_project_or_fail(args.project)
    frame_range = resolve_range(project, args.range)
    start, end = export_livelink(project, args.out, frame_range, args.angle_unit)
    print(f"wrote {args.out}: frames {start}:{end} of take {project.active_take.name!r}")
    return 0
