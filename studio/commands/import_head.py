"""``talking-head-studio import-head INPUT --out HEAD.thead``: a portrait image (.png, .jpg, ...)
or a 3DGS .ply/.splat head becomes a rigged head file; an MPI head folder (per-plane RGBA PNGs
+ mpi.json) is checked and, with ``--out FOLDER``, copied (an MPI head stays a folder: a .thead
holds Gaussian heads). Progress lines on stdout; the output is written atomically at the end;
problems print one line and exit with status 2."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-head",
        help="turn a portrait image or a 3DGS .ply head into a rigged head file; check an MPI",
        description=(
            "INPUT is an image with a face (.png, .jpg, .jpeg, .bmp, .tif, .webp) or a Gaussian "
            "splat head (.ply, .splat): the head's keypoints are placed from face landmarks "
            "(they can be corrected later in the viewport) and a .thead file is written. INPUT "
            "may also be an MPI head folder (plane_NN.png + mpi.json): it is checked (missing "
            "planes, mismatched sizes, bad metadata) and, with --out FOLDER, copied there. "
            "An MPI head stays a folder; a project uses it as its head."
        ),
    )
    p.add_argument("input", type=Path, help="portrait image, .ply/.splat file or MPI folder")
    p.add_argument(
        "--out", type=Path, required=True,
        help="head file to write (.thead); for an MPI folder input, the folder to write",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an existing output")


def run(args: argparse.Namespace) -> int:
    from models.face import FaceModelsMissingError
    from studio.cli import CliError
    from studio.head_import import HeadImportError, import_head

    try:
        for line in import_head(args.input, args.out, overwrite=args.force):
            print(line, flush=True)
    except (HeadImportError, FaceModelsMissingError) as exc:
        raise CliError(str(exc)) from None
    return 0
