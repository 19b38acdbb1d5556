"""``talking-head-studio import-head INPUT --out HEAD.thead [--kind gaussian|mpi]``: a portrait
image (.png, .jpg, ...) or a 3DGS .ply/.splat head becomes a rigged head file (a Gaussian head,
or with ``--kind mpi`` its rest pose baked into a rigged MPI head); an MPI head folder (per-plane
RGBA PNGs + mpi.json) is checked and becomes a rigged MPI head file (keypoints from the face
landmarker on its front view), or with ``--out FOLDER`` a checked copy of the folder. Progress
lines on stdout; the output is written atomically at the end; problems print one line and exit
with status 2."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-head",
        help="turn a portrait image, a 3DGS .ply head or an MPI folder into a rigged head file",
        description=(
            "INPUT is an image with a face (.png, .jpg, .jpeg, .bmp, .tif, .webp) or a Gaussian "
            "splat head (.ply, .splat): the head's keypoints are placed from face landmarks "
            "(they can be corrected later in the viewport) and a .thead file is written "
            "(--kind mpi bakes the head into a rigged 24-plane MPI head; a .thead INPUT is "
            "checked and copied, or baked with --kind mpi). INPUT may also be an "
            "MPI head folder (plane_NN.png + mpi.json): it is checked (missing planes, "
            "mismatched sizes, bad metadata) and written as a rigged MPI head file (--out "
            "HEAD.thead; keypoints from face landmarks on its front view) or copied (--out "
            "FOLDER)."
        ),
    )
    p.add_argument("input", type=Path, help="portrait image, .ply/.splat file or MPI folder")
    p.add_argument(
        "--out", type=Path, required=True,
        help="head file to write (.thead); for an MPI folder input also a folder (a copy)",
    )  # fmt: skip
    p.add_argument(
        "--kind", choices=("gaussian", "mpi"), default="gaussian",
        help="for images and .ply: write a Gaussian head (default) or bake an MPI head; "
        "an MPI folder always gives an MPI head",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an existing output")


def run(args: argparse.Namespace) -> int:
    from models.face import FaceModelsMissingError
    from models.heads import HeadFileError
    from studio.cli import CliError
    from studio.head_import import HeadImportError, import_head

    try:
        kind = getattr(args, "kind", "gaussian")
        for line in import_head(args.input, args.out, overwrite=args.force, kind=kind):
            print(line, flush=True)
    except (HeadImportError, HeadFileError, FaceModelsMissingError) as exc:
        raise CliError(str(exc)) from None
    return 0
