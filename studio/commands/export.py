"""``talking-head-studio export PROJECT --out FILE [--layout sbs|hsbs|tb|mono] [--eye-size N]
[--fps N] [--ipd M] [--convergence M] [--head gaussian|mpi] [--range A:B] [--codec h264|h265]
[--format mp4|mkv|png]``: render a project headless to a stereo VR clip, mono video or PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path

from studio.commands._common import (
    add_range_argument,
    load_project_or_fail,
    resolve_range,
)


def parse_size(text: str) -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"640x480"`` -> (640, 480)."""
    try:
        if "x" in text.lower():
            w, h = text.lower().split("x", 1)
            return int(w), int(h)
        return int(text), int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"eye size must be N or WxH pixels, got {text!r}"
        ) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="render a project to a stereo VR clip, mono video or per-eye PNGs (headless)",
        description=(
            "Render every frame of the project headless and encode it. Video files get the "
            "layout's tag (_LR, _3dh, _TB) added to their name unless it is there already."
        ),
    )
    p.add_argument("project", type=Path, help="project file (.ths)")
    p.add_argument(
        "--out", type=Path, required=True, help="output .mp4/.mkv file, or a folder (png)"
    )
    p.add_argument(
        "--layout", choices=("sbs", "hsbs", "tb", "mono"), default="sbs",
        help="sbs: full side-by-side (default); hsbs: half side-by-side; tb: top-bottom; mono",
    )  # fmt: skip
    p.add_argument(
        "--eye-size", type=parse_size, default=(1024, 1024), metavar="N|WxH",
        help="pixels per eye (default 1024; odd video sizes are rounded to even)",
    )  # fmt: skip
    p.add_argument("--fps", default=None, help="output frame rate (default: the project's)")
    p.add_argument("--fov", type=float, default=None, help="vertical field of view, degrees")
    p.add_argument("--ipd", type=float, default=None, help="eye distance in metres (e.g. 0.063)")
    p.add_argument(
        "--convergence", type=float, default=None,
        help="distance in metres with zero disparity (the screen plane)",
    )  # fmt: skip
    p.add_argument("--head", choices=("gaussian", "mpi"), default=None, help="head representation")
    add_range_argument(p)
    p.add_argument("--codec", choices=("h264", "h265"), default="h264", help="video codec")
    p.add_argument("--format", choices=("mp4", "mkv", "png"), default=None, help="container")
    p.add_argument("--crf", type=int, default=None, help="quality (lower is better)")
    p.add_argument("--preset", default=None, help="x264/x265 speed preset")
    p.add_argument("--no-audio", action="store_true", help="export without the project's sound")
    p.add_argument("--lod", type=int, default=None, metavar="N", help="draw at most N Gaussians")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def run(args: argparse.Namespace) -> int:
    from studio.export import ExportSettings, export_project, plan_export
    from studio.export.progress import ProgressLine

    # "keep": the export itself reports a missing audio file or head, with a remedy.
    project = load_project_or_fail(args.project)
    frame_range = resolve_range(project, args.range)
    settings = ExportSettings(
        out=args.out,
        layout=args.layout,
        format=args.format,
        codec=args.codec,
        eye_size=args.eye_size,
        fps=args.fps,
        fov_deg=args.fov,
        ipd=args.ipd,
        convergence=args.convergence,
        head=args.head,
        frame_range=frame_range,
        audio=not args.no_audio,
        crf=args.crf,
        preset=args.preset,
        overwrite=args.force,
        lod_budget=args.lod,
    )
    plan = plan_export(project, settings)
    import sys

    for warning in plan.warnings:
        print(f"talking-head-studio export: note: {warning}", file=sys.stderr)
    line = None if args.quiet else ProgressLine("export")
    last = None
    gen = export_project(project, plan, project_path=args.project)
    try:
        for report in gen:
            last = report
            if line is not None:
                line.update(report.frame, report.total, report.fps, report.eta_s)
    finally:
        gen.close()  # on Ctrl-C: the generator removes its temporary file
        if line is not None:
            line.finish()
    assert last is not None and last.path is not None
    w, h = plan.frame_size
    audio = " + AAC" if plan.audio and plan.format != "png" else ""
    what = "PNG per eye" if plan.format == "png" else f"{plan.codec.upper()}{audio}"
    seconds = plan.num_frames / plan.fps.fps
    print(
        f"wrote {last.path}: {plan.num_frames} frames {w}x{h} {plan.layout} {what}, "
        f"{plan.fps} fps ({seconds:.2f} s), {last.elapsed_s:.1f} s to render"
    )
    return 0
