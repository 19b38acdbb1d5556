"""``talking-head-studio import-head INPUT --out HEAD.thead``: a portrait image (.png, .jpg, ...)
or a 3DGS .ply/.splat head becomes a rigged head file. Progress lines on stdout; the file is
written atomically at the end; problems print one line and exit with status 2."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-head",
        help="turn a portrait image or a 3DGS .ply head into a rigged head file",
        description=(
            "INPUT is an image with a face (.png, .jpg, .jpeg, .bmp, .tif, .webp) or a Gaussian "
            "splat head (.ply, .splat). The head's keypoints are placed from face landmarks; "
            "they can be corrected later in the viewport."
        ),
    )
    p.add_argument("input", type=Path, help="portrait image or .ply/.splat file")
    p.add_argument("--out", type=Path, required=True, help="head file to write (.thead)")
    p.add_argument("--force", action="store_true", help="overwrite an existing head file")


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
