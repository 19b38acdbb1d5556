"""What to export and how: :class:`ExportSettings` (the user's choices) and :class:`ExportPlan`
(every choice resolved against a project and checked, before anything is rendered).

Layouts (frame = the encoded picture; W x H = the per-eye size):

    sbs   full side-by-side, frame 2W x H, left eye on the left       file tag ``_LR``
    hsbs  half side-by-side, frame W x H, each eye squeezed to W/2 x H  file tag ``_3dh``
    tb    top-bottom, frame W x 2H, left eye on top                    file tag ``_TB``
    mono  the centre camera only, frame W x H                           no tag

Half side-by-side eyes are rendered directly at W/2 x H with the horizontal focal length halved
(anamorphic pixels), not rendered wide and downscaled. Qt-free.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from studio.document import FrameRate, Project
from studio.document.errors import DocumentError
from studio.export.errors import ExportError

__all__ = [
    "CODECS",
    "FORMATS",
    "HEAD_CHOICES",
    "LAYOUTS",
    "LAYOUT_TAGS",
    "MKV_STEREO_MODES",
    "ST3D_MODES",
    "ExportPlan",
    "ExportSettings",
    "plan_export",
    "tagged_path",
]

LAYOUTS = ("sbs", "hsbs", "tb", "mono")
LAYOUT_TAGS = {"sbs": "_LR", "hsbs": "_3dh", "tb": "_TB", "mono": ""}
FORMATS = ("mp4", "mkv", "png")
CODECS = ("h264", "h265")
HEAD_CHOICES = ("gaussian", "mpi")
# Spherical Video V2 ``st3d`` stereo_mode byte, and Matroska StereoMode names (FFmpeg spelling).
ST3D_MODES = {"mono": 0, "tb": 1, "sbs": 2, "hsbs": 2}
MKV_STEREO_MODES = {"mono": "mono", "sbs": "left_right", "hsbs": "left_right", "tb": "top_bottom"}
# Encoder defaults: visually lossless for talking heads, fast enough to keep up with rendering.
DEFAULT_CRF = {"h264": 18, "h265": 22}
DEFAULT_PRESET = {"h264": "veryfast", "h265": "superfast"}
MAX_EYE_SIZE = 8192
_SUFFIX_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".mkv": "mkv"}


@dataclass(frozen=True)
class ExportSettings:
    """The user's export choices; ``None`` means "from the project" (or the documented default).

    out: output file (mp4/mkv) or folder (png). layout: one of LAYOUTS. format: one of FORMATS,
    None = from the suffix of ``out`` (.mp4/.m4v/.mov -> mp4, .mkv -> mkv, no suffix -> png).
    codec: "h264" (libx264) or "h265" (libx265). eye_size: per-eye (width, height) in pixels.
    fps: output frame rate (None: the project's). fov_deg (vertical), ipd, convergence (metres):
    None = the project camera's. head: "gaussian" or "mpi" (None: the project head's kind).
    frame_range: project frames [start, end) (None: the work range). audio: mux the project's
    audio. crf/preset: encoder quality/speed (None: DEFAULT_CRF/DEFAULT_PRESET). background: RGB
    in [0, 1] behind the head. overwrite: replace an existing output. tag_name: add the layout's
    file-name tag (``_LR`` ...) to a video file name that lacks it, so VR players detect the
    layout. preview_every: attach a preview image to every n-th progress report (0: never).
    lod_budget: draw at most this many Gaussians (CPU machines; None: all).
    """

    out: Path
    layout: str = "sbs"
    format: str | None = None
    codec: str = "h264"
    eye_size: tuple[int, int] = (1024, 1024)
    fps: FrameRate | str | int | float | None = None
    fov_deg: float | None = None
    ipd: float | None = None
    convergence: float | None = None
    head: str | None = None
    frame_range: tuple[int, int] | None = None
    audio: bool = True
    crf: int | None = None
    preset: str | None = None
    background: tuple[float, float, float] = (0.12, 0.12, 0.13)
    overwrite: bool = False
    tag_name: bool = True
    preview_every: int = 0
    lod_budget: int | None = None


@dataclass(frozen=True)
class ExportPlan:
    """Settings resolved against one project: what :func:`studio.export.export_project` does.

    positions [N] float64: the document frame evaluated for each output frame
    (``start + f * project_fps / fps``; integers when the rates match). render_size: the size
    each eye is rendered at (hsbs: half width). frame_size: the encoded picture (width, height).
    warnings: adjustments made to the request (e.g. odd sizes rounded to even), one line each.
    """

    out: Path
    format: str
    layout: str
    codec: str
    eye_size: tuple[int, int]
    render_size: tuple[int, int]
    frame_size: tuple[int, int]
    fps: FrameRate
    start: int
    end: int
    positions: np.ndarray
    yaw: float
    pitch: float
    distance: float
    target: tuple[float, float, float]
    fov_deg: float
    ipd: float
    convergence: float
    head: str
    audio: bool
    crf: int
    preset: str
    background: tuple[float, float, float]
    overwrite: bool
    preview_every: int
    lod_budget: int | None
    project_fps: FrameRate
    warnings: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.positions.size)

    @property
    def duration_s(self) -> float:
        """Length of the exported range in seconds (what the audio is trimmed to)."""
        return (self.end - self.start) / self.project_fps.fps

    @property
    def stereo(self) -> bool:
        return self.layout != "mono"

    @property
    def eyes(self) -> tuple[str, ...]:
        """Names of the rendered views, in render order."""
        return ("left", "right") if self.stereo else ("mono",)


def tagged_path(out: Path, layout: str) -> Path:
    """``out`` with the layout's file-name tag before the suffix, unless it already ends with it
    (case-insensitive): ``clip.mp4`` + sbs -> ``clip_LR.mp4``; mono is never tagged."""
    tag = LAYOUT_TAGS[layout]
    if not tag or out.stem.lower().endswith(tag.lower()):
        return out
    return out.with_name(f"{out.stem}{tag}{out.suffix}")


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ExportError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _positive(name: str, value: object, allow_zero: bool = False) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ExportError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ExportError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def _format_of(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        return _choice("format", fmt, FORMATS)
    suffix = out.suffix.lower()
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    if suffix == "" or out.is_dir():
        return "png"
    raise ExportError(
        f"{out}: cannot tell the format from the suffix {suffix!r}; use .mp4, .mkv or a folder "
        "name (png), or pass the format"
    )


def _check_destination(out: Path, fmt: str, overwrite: bool) -> None:
    """Raise ExportError unless ``out`` can be created (or replaced, with overwrite)."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise ExportError(f"cannot write {out}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {out}: no permission to write in {parent}")
    if fmt == "png":
        if out.exists() and not out.is_dir():
            raise ExportError(f"cannot write {out}: a file has that name (png needs a folder)")
        if out.is_dir() and any(out.iterdir()) and not overwrite:
            raise ExportError(f"{out} exists and is not empty; pass --force to replace it")
    else:
        if out.is_dir():
            raise ExportError(f"cannot write {out}: it is a folder")
        if out.exists() and not overwrite:
            raise ExportError(f"{out} exists; pass --force to overwrite it")


def plan_export(project: Project, settings: ExportSettings) -> ExportPlan:
    """Resolve ``settings`` against ``project`` and check everything that can be checked before
    rendering: choices, sizes, frame rate, range, camera, destination folder.

    Raises ExportError (one line) for anything that would fail; adjustments that still give a
    valid export (odd sizes for yuv420p) are made and described in ``plan.warnings``.
    """
    s = settings
    warnings: list[str] = []
    layout = _choice("layout", s.layout, LAYOUTS)
    codec = _choice("codec", s.codec, CODECS)
    out = Path(s.out)
    fmt = _format_of(out, s.format)
    if fmt != "png" and not out.suffix:
        out = out.with_name(f"{out.name}.{fmt}")
    if fmt != "png" and s.tag_name:
        out = tagged_path(out, layout)

    # Sizes. yuv420p needs even frame dimensions: round up what the layout needs even.
    try:
        w, h = (int(v) for v in s.eye_size)
    except (TypeError, ValueError):
        raise ExportError(
            f"eye size must be two integers (width, height), got {s.eye_size!r}"
        ) from None
    if not (2 <= w <= MAX_EYE_SIZE and 2 <= h <= MAX_EYE_SIZE):
        raise ExportError(f"eye size must be between 2 and {MAX_EYE_SIZE} pixels, got {w}x{h}")
    if fmt != "png":
        need_w = layout in ("hsbs", "tb", "mono")
        need_h = layout in ("sbs", "hsbs", "mono")
        nw = w + (w % 2 if need_w else 0)
        nh = h + (h % 2 if need_h else 0)
        if (nw, nh) != (w, h):
            warnings.append(
                f"eye size {w}x{h} rounded to {nw}x{nh}: yuv420p video needs even frame sizes"
            )
            w, h = nw, nh
    render_size = (w // 2, h) if layout == "hsbs" and fmt != "png" else (w, h)
    frame_size = {
        "sbs": (2 * w, h),
        "hsbs": (w, h),
        "tb": (w, 2 * h),
        "mono": (w, h),
    }[layout]
    if fmt == "png":
        frame_size = (w, h)

    # Time.
    try:
        fps = project.frame_rate if s.fps is None else FrameRate.parse(s.fps)  # type: ignore[arg-type]
    except DocumentError as exc:
        raise ExportError(f"bad output frame rate: {exc}") from None
    if fps.fps > 1000:
        raise ExportError(f"output frame rate {fps} is above 1000 fps")
    start, end = s.frame_range if s.frame_range is not None else project.work_range
    if isinstance(start, bool) or int(start) != start or int(end) != end:
        raise ExportError(f"range must be whole frames, got {start}:{end}")
    start, end = int(start), int(end)
    if not 0 <= start < end <= project.duration:
        raise ExportError(
            f"range {start}:{end} is outside the project (frames 0:{project.duration}, "
            "end exclusive, start < end)"
        )
    ratio = project.frame_rate.fraction / fps.fraction  # document frames per output frame
    n = math.ceil(Fraction(end - start) / ratio)
    positions = np.array(
        [float(start + f * ratio) for f in range(n)], dtype=np.float64
    )  # exact: a Fraction rounded once

    # Camera and rig.
    cam = project.camera
    fov = cam.fov_deg if s.fov_deg is None else _positive("fov", s.fov_deg)
    if not 1.0 < fov < 179.0:
        raise ExportError(f"fov must be between 1 and 179 degrees, got {fov}")
    ipd = cam.ipd if s.ipd is None else _positive("ipd", s.ipd, allow_zero=True)
    convergence = cam.convergence if s.convergence is None else _positive(
        "convergence", s.convergence
    )  # fmt: skip
    if layout != "mono" and ipd <= 0:
        raise ExportError("ipd must be > 0 for a stereo layout (use --layout mono for ipd 0)")
    if ipd > 1.0:
        raise ExportError(f"ipd {ipd} m is over a metre; give it in metres (e.g. 0.063)")

    # Head.
    if s.head is not None:
        head = _choice("head", s.head, HEAD_CHOICES)
    else:
        head = "mpi" if project.head is not None and project.head.kind == "mpi" else "gaussian"

    codec_crf = DEFAULT_CRF[codec] if s.crf is None else int(s.crf)
    if not 0 <= codec_crf <= 51:
        raise ExportError(f"crf must be between 0 and 51, got {s.crf}")
    preset = DEFAULT_PRESET[codec] if s.preset is None else str(s.preset)
    bg = tuple(float(c) for c in s.background)
    if len(bg) != 3 or not all(0.0 <= c <= 1.0 for c in bg):
        raise ExportError(f"background must be three numbers in [0, 1], got {s.background!r}")
    if s.lod_budget is not None and int(s.lod_budget) < 1:
        raise ExportError(f"LOD budget must be a positive number of Gaussians, got {s.lod_budget}")

    _check_destination(out, fmt, s.overwrite)
    audio = bool(s.audio) and bool([c for c in project.audio_clips if not c.muted])
    return ExportPlan(
        out=out,
        format=fmt,
        layout=layout,
        codec=codec,
        eye_size=(w, h),
        render_size=render_size,
        frame_size=frame_size,
        fps=fps,
        start=start,
        end=end,
        positions=positions,
        yaw=cam.yaw,
        pitch=cam.pitch,
        distance=cam.distance,
        target=cam.target,
        fov_deg=fov,
        ipd=ipd,
        convergence=convergence,
        head=head,
        audio=audio,
        crf=codec_crf,
        preset=preset,
        background=bg,  # type: ignore[arg-type]
        overwrite=bool(s.overwrite),
        preview_every=max(0, int(s.preview_every)),
        lod_budget=None if s.lod_budget is None else int(s.lod_budget),
        project_fps=project.frame_rate,
        warnings=warnings,
    )
