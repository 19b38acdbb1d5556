"""``talking-head-studio generate PROJECT --audio WAV --out PROJECT2``: generate motion from speech
as new take(s) of a project (headless; the studio's Animation > Generate from Audio).

Magnitude limits: ``--max-angle DEG`` bounds head pitch, yaw and roll; ``--region-scale
lips=0.8`` (repeatable; lips, jaw, brows, eyes) scales a region's expression movement (0..2).
Notices (fallback model, silent or clipped audio) are printed as ``note:`` lines.

The audio is embedded in the project when it is not there yet (at frame 0). The generated takes
are added after the existing ones, the first becomes active, and the result is saved to ``--out``
atomically. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.commands._common import (
    check_out_project,
    load_project_or_fail,
    progress,
    progress_line,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate talking-head motion from speech as new take(s)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("project", type=Path, help="project file (.ths) to add the takes to")
    p.add_argument(
        "--audio",
        type=Path,
        default=None,
        help="speech (WAV, FLAC, OGG); default: the project's first audio clip",
    )
    p.add_argument("--out", type=Path, required=True, help="project file to write (.ths)")
    p.add_argument(
        "--model",
        default="default",
        help="'default' (the shipped model), 'procedural', or a model folder (default: default)",
    )
    p.add_argument("--steps", type=int, default=10, help="denoising steps (default 10)")
    p.add_argument("--sampler", choices=("ddim", "lcm"), default="ddim")
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance (2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--emotion", default=None, help="a fixed emotion (default: the project's curve)")
    p.add_argument(
        "--range",
        dest="frame_range",
        default=None,
        metavar="A:B",
        help="regenerate only frames A..B-1, keeping the rest",
    )
    p.add_argument("--variations", type=int, default=1, help="number of takes (default 1)")
    p.add_argument(
        "--regions",
        default=None,
        help="comma-separated regions to generate: lips,eyes,brows,pose,expression (default all)",
    )
    p.add_argument(
        "--intensity",
        choices=("curve", "audio"),
        default="curve",
        help="intensity from the project's curve or predicted from the audio",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--hubert", type=Path, default=None, help="local HuBERT folder, if needed")
    p.add_argument(
        "--ic-init",
        action="store_true",
        help="consistent segments: IC-Init, ConsistTalk's beam search over the initial noise of "
        "all windows (B=2, K=4, T'=3 of 30 DDIM steps; slower; ddim only)",
    )
    p.add_argument(
        "--pose-smoothing",
        type=float,
        default=None,
        metavar="F",
        help="sigma in frames (25 fps) of the zero-phase Gaussian smoothing of the generated "
        "head pose, neural models only (default 2.5; 0 disables)",
    )
    p.add_argument(
        "--max-angle",
        default=None,
        metavar="DEG",
        help="largest head pitch, yaw and roll in degrees either way (one value, or P,Y,R); "
        "default: no limit",
    )
    p.add_argument(
        "--region-scale",
        action="append",
        default=[],
        metavar="REGION=S",
        help="scale a region's expression movement, 0..2 (1: as generated); regions lips, jaw, "
        "brows, eyes; repeatable, e.g. --region-scale lips=0.8 --region-scale brows=1.2",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def _parse_range(text: str | None):
    from studio.cli import CliError

    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise CliError(f"--range must be A:B (frames), got {text!r}") from None
    if not 0 <= a < b:
        raise CliError(f"--range needs 0 <= A < B, got {text}")
    return a, b


def _parse_max_angle(text: str | None):
    """``DEG`` or ``P,Y,R`` -> a float or a (pitch, yaw, roll) tuple; None: no limit."""
    import math

    from studio.cli import CliError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or not all(math.isfinite(v) and v >= 0 for v in values):
        raise CliError(f"--max-angle must be degrees >= 0 (DEG or P,Y,R), got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def _parse_region_scales(items: list[str]) -> dict[str, float] | None:
    """``["lips=0.8", ...]`` -> ``{"lips": 0.8, ...}``; None when empty."""
    import math

    from studio.cli import CliError
    from studio.generation import LIMIT_REGIONS, MAX_REGION_SCALE

    scales: dict[str, float] = {}
    for item in items:
        region, sep, value = item.partition("=")
        region = region.strip()
        if not sep or region not in LIMIT_REGIONS:
            raise CliError(
                f"--region-scale must be REGION=S with REGION one of {', '.join(LIMIT_REGIONS)}, "
                f"got {item!r}"
            )
        try:
            s = float(value)
        except ValueError:
            s = math.nan
        if not (math.isfinite(s) and 0.0 <= s <= MAX_REGION_SCALE):
            raise CliError(
                f"--region-scale {region}: the scale must be in 0..{MAX_REGION_SCALE:g}, "
                f"got {value!r}"
            )
        scales[region] = s
    return scales or None


def run(args: argparse.Namespace) -> int:
    from studio.cli import CliError
    from studio.document.fileformat import save_project

    out: Path = args.out
    check_out_project(out, args.force)
    if args.audio is not None and not args.audio.is_file():
        raise CliError(f"{args.audio}: no such audio file")
    regions = None
    if args.regions:
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    max_angle = _parse_max_angle(args.max_angle)
    region_scale = _parse_region_scales(args.region_scale)
    project = load_project_or_fail(args.project)

    from studio.generation import GenerateRequest, generation_edit, iter_generate

    request = GenerateRequest(
        audio=args.audio,
        frame_range=_parse_range(args.frame_range),
        regions=regions,
        emotion=args.emotion,
        intensity=args.intensity,
        steps=args.steps,
        sampler=args.sampler,
        guidance=args.guidance,
        seed=args.seed,
        variations=args.variations,
        model=args.model,
        device=args.device,
        hubert_dir=args.hubert,
        ic_init=args.ic_init,
        max_angle=max_angle,
        region_scale=region_scale,
        **({} if args.pose_smoothing is None else {"pose_smoothing": args.pose_smoothing}),
    ).validated()
    result = None
    with progress_line():
        for ev in iter_generate(project, request):
            if ev.result is not None:
                result = ev.result
            else:
                progress(f"generating: {ev.text} {100 * ev.fraction:3.0f}%")
    assert result is not None
    for note in result.notices:
        print(f"note: {note}", file=sys.stderr)
    generation_edit(project, result).apply(project)  # the CLI has no history
    save_project(project, out)
    a, b = result.frame_range
    names = ", ".join(repr(t.name) for t in result.takes)
    print(f"wrote {out}: {names}, frames {a}..{b - 1} ({result.model} on {result.device})")
    return 0
