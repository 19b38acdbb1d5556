"""The export as a child process of the studio: ``python -m studio.export.child PROJECT.ths
SETTINGS.json --preview-dir DIR [--project-path ORIGINAL.ths]``. Qt-free.

Why a process: rendering on a software GL (llvmpipe) holds the Python GIL inside the draw and
readback calls, and llvmpipe rasterises the scenes of all contexts of one process one after the
other, so an export in a studio thread stalls the GUI thread (its own GL composition of the main
window waits for the export's frame) for up to seconds. A child process has its own GIL and its
own headless EGL context (no GLX/EGL mix in one process), and a GL crash there cannot take the
studio down.

Protocol: one JSON object per line on stdout, flushed per line:

- ``{"frame", "total", "elapsed_s", "fps", "eta_s"}`` per progress report (the first one also
  has ``"warnings"``), plus ``"preview": "<file>"`` when a thumbnail was written: an ``.npy``
  array ``[h, w, 3]`` uint8 at most ``--thumb-width`` wide, replaced atomically (``os.replace``)
  in ``--preview-dir``, alternating between two names so the reader never sees a half file;
- ``{"done": true, "path", "elapsed_s", "fps", "timings", "warnings", ...}`` at the end (exit 0);
- ``{"error": "<one line>"}`` for an ExportError or an unreadable project (exit 2);
- ``{"cancelled": true}`` after SIGINT/SIGTERM (exit 3): the export stops before the next frame
  and removes its temporary output, so no partial file is left.
Anything else (a crash) is a non-zero exit or a signal with no such line; the caller then
removes ``.<name>.part-<pid>`` itself (studio.export.job's temporary name).

Settings travel as JSON (:func:`settings_to_json` / :func:`settings_from_json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from studio.child_protocol import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    cancel_on_signals,
    emit,
    load_snapshot,
    lower_priority,
    one_line,
)
from studio.export.errors import ExportCancelled, ExportError
from studio.export.settings import ExportSettings

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_ERROR",
    "main",
    "settings_from_json",
    "settings_to_json",
    "thumbnail",
]


def settings_to_json(settings: ExportSettings) -> str:
    """ExportSettings as JSON (paths as strings, tuples as lists, a frame rate as its text)."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)  # FrameRate: "30000/1001" parses back
        data[f.name] = value
    return json.dumps(data)


def settings_from_json(text: str) -> ExportSettings:
    """The ExportSettings of :func:`settings_to_json`. Raises ExportError for a bad file."""
    try:
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(ExportSettings)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        data["out"] = Path(data["out"])
        for key in ("eye_size", "frame_range", "background"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return ExportSettings(**data)
    except (ValueError, TypeError, KeyError) as exc:
        raise ExportError(f"bad export settings: {exc}") from None


def thumbnail(picture: np.ndarray, width: int) -> np.ndarray:
    """Nearest-neighbour downscale of ``picture [H, W, C]`` by an integer step to at most
    ``width`` pixels wide: ``[h, w, 3]`` uint8, contiguous."""
    step = max(1, math.ceil(picture.shape[1] / width))
    return np.ascontiguousarray(picture[::step, ::step, :3])


def _write_preview(folder: Path, index: int, picture: np.ndarray, width: int) -> str:
    name = f"preview-{index % 2}.npy"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, thumbnail(picture, width))
    os.replace(tmp, folder / name)
    return name


def run(
    project_file: Path,
    settings: ExportSettings,
    preview_dir: Path | None,
    project_path: Path | None = None,
    cancel: threading.Event | None = None,
    thumb_width: int = 480,
) -> int:
    """Export ``project_file`` with ``settings``, speaking the protocol of the module docstring
    on stdout; returns the exit status (0 done, EXIT_ERROR, EXIT_CANCELLED)."""
    from studio.export.job import export_project

    project = load_snapshot(project_file)
    if project is None:
        return EXIT_ERROR
    n_previews = 0
    try:
        gen = export_project(project, settings, cancel=cancel, project_path=project_path)
        try:
            for report in gen:
                msg: dict[str, Any] = {
                    "frame": report.frame,
                    "total": report.total,
                    "elapsed_s": report.elapsed_s,
                    "fps": report.fps,
                    "eta_s": report.eta_s,
                }
                if report.warnings:
                    msg["warnings"] = list(report.warnings)
                if report.done:
                    msg.update(done=True, path=str(report.path), timings=report.timings)
                elif report.preview is not None and preview_dir is not None:
                    msg["preview"] = _write_preview(
                        preview_dir, n_previews, report.preview, thumb_width
                    )
                    n_previews += 1
                emit(msg)
        finally:
            gen.close()
    except ExportCancelled:
        emit({"cancelled": True})
        return EXIT_CANCELLED
    except ExportError as exc:
        emit({"error": one_line(exc)})
        return EXIT_ERROR
    except (ValueError, OSError) as exc:  # bad input (e.g. an unreadable head file)
        emit({"error": one_line(exc)})
        return EXIT_ERROR
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m studio.export.child",
        description="Run one export for the studio (see the module docstring).",
    )
    ap.add_argument("project", type=Path, help="project snapshot (.ths)")
    ap.add_argument("settings", type=Path, help="ExportSettings as JSON")
    ap.add_argument("--preview-dir", type=Path, default=None, help="where thumbnails go")
    ap.add_argument(
        "--project-path", type=Path, default=None,
        help="the user's project file: relative MPI head folders are found beside it",
    )  # fmt: skip
    ap.add_argument("--thumb-width", type=int, default=480)
    ap.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority")
    args = ap.parse_args(argv)
    lower_priority(args.nice)

    # Cancel between frames (never an exception inside a GL call or the cleanup).
    with cancel_on_signals() as cancel:
        try:
            settings = settings_from_json(args.settings.read_text(encoding="utf-8"))
        except (OSError, ExportError) as exc:
            emit({"error": one_line(exc)})
            return EXIT_ERROR
        return run(args.project, settings, args.preview_dir, args.project_path, cancel,
                   args.thumb_width)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
