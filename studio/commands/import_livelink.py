"""``talking-head-studio import-livelink CSV --project P --out P2``: a Live Link Face (ARKit
blendshape) recording as a new take, retargeted to the motion space (docs/motion-space.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.commands._common import check_out_project, load_project_or_fail


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-livelink",
        help="import a Live Link Face CSV as a take",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("csv", type=Path, help="Live Link Face CSV file")
    p.add_argument("--project", type=Path, required=True, help="project file to add the take to")
    p.add_argument("--out", type=Path, required=True, help="project file to write (.ths)")
    p.add_argument("--name", default=None, help="take name (default: the CSV's file name)")
    p.add_argument(
        "--timecode-fps",
        type=float,
        default=None,
        help="rate of the timecode's frame field (default: guessed from the file)",
    )
    p.add_argument(
        "--angle-unit",
        choices=("radians", "degrees", "normalized"),
        default="radians",
        help="unit of HeadYaw/Pitch/Roll (default radians)",
    )
    p.add_argument("--start-frame", type=int, default=0, help="project frame of the first row")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def run(args: argparse.Namespace) -> int:
    from studio.capture import add_take_to_project
    from studio.document.fileformat import save_project
    from studio.livelink import read_livelink, take_from_livelink

    out: Path = args.out
    check_out_project(out, args.force)
    project = load_project_or_fail(args.project)
    data = read_livelink(args.csv, args.timecode_fps)
    take = take_from_livelink(
        data, project.frame_rate.fps, args.name or args.csv.stem, args.angle_unit, args.start_frame
    )
    add_take_to_project(project, take)
    save_project(project, out)
    n = take.metadata["capture"]["length_frames"]
    print(
        f"wrote {out}: take {take.name!r}, {n} frames from {len(data)} rows "
        f"(timecode {data.timecode_fps:g} fps)"
    )
    return 0
