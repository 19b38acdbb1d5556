"""Motion generation as a child process of the studio: ``python -m studio.generation_child
PROJECT.ths REQUEST.json --out-dir DIR [--threads N] [--nice N]``. Qt-free.

Why a process: generation in a studio thread holds the Python GIL for hundreds of
milliseconds at a time (importing torch, loading the model, Python-heavy sampling steps), and
the GUI thread cannot run meanwhile (0.3 s stalls on a 2-core machine). A child has its own GIL;
the studio only reads short lines and small files. The same protocol style as
studio.export.child.

Protocol: one JSON object per line on stdout, flushed per line:

- ``{"step", "total", "text"}`` per progress event of :func:`studio.generation.iter_generate`
  (every denoising step), plus ``"notices": [...]`` when it has new notices (model fallback,
  clipped or silent audio, CPU retry after CUDA ran out of memory) and ``"preview": "<file>",
  "preview_start": frame`` when a preview was written: an ``.npy`` array ``[F, 90]`` float32
  of channel values for project frames ``preview_start .. preview_start + F - 1``, the *tail*
  that the latest model window changed (frames before it are as in the earlier previews; the
  reader assembles the tails in order, e.g. in a studio.generation.PreviewBuffer), so each
  window costs O(window) however long the audio. Each tail has its own name
  (``preview-<n>.npy``, written to a temporary name and renamed into place, so the reader never
  sees a half file nor loses a tail it has not read yet); the reader deletes a tail once read;
- ``{"done": true, "result": "<file>", "frame_range", "notices", "model", "device"}`` at the
  end (exit 0): the takes, and the audio clip with its data when the audio came from a file,
  saved as a small project file (:func:`save_result`, read back by :func:`load_result`);
- ``{"error": "<one line>"}`` for bad input (GenerationError, ModelLoadError, AudioError, an
  unreadable snapshot or request; exit 2);
- ``{"cancelled": true}`` after SIGINT/SIGTERM (exit 3): the job stops at its next step (one
  denoising step at most) and removes its previews; no result file is written.
Anything else (a crash) is a non-zero exit or a signal with no such line, with the traceback on
stderr; the caller then removes ``--out-dir``.

Requests travel as JSON (:func:`request_to_json` / :func:`request_from_json`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
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
from studio.document import FrameRate, Project
from studio.generation import (
    GenerateRequest,
    GenerationCancelled,
    GenerationError,
    GenerationResult,
)

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_ERROR",
    "RESULT_NAME",
    "load_result",
    "main",
    "request_from_json",
    "request_to_json",
    "run",
    "save_result",
]

RESULT_NAME = "result.ths"
_PATH_FIELDS = ("audio", "model", "intensity_model", "hubert_dir")


def request_to_json(request: GenerateRequest) -> str:
    """A GenerateRequest as JSON (paths as strings, tuples as lists, keypoints as a list)."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        elif f.name == "regions" and value is not None:
            value = list(value)
        data[f.name] = value
    return json.dumps(data)


def request_from_json(text: str) -> GenerateRequest:
    """The GenerateRequest of :func:`request_to_json` (validated). Raises GenerationError for a
    bad request."""
    try:
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(GenerateRequest)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        if data.get("frame_range") is not None:
            data["frame_range"] = tuple(int(v) for v in data["frame_range"])
        if data.get("canonical_keypoints") is not None:
            data["canonical_keypoints"] = np.asarray(data["canonical_keypoints"], np.float64)
        request = GenerateRequest(**data)
    except (ValueError, TypeError) as exc:
        raise GenerationError(f"bad generation request: {exc}") from None
    return request.validated()


def save_result(result: GenerationResult, frame_rate: FrameRate, path: Path) -> None:
    """Write ``result``'s takes (in order) and audio clip (with its data) as a project file at
    ``path`` (atomic). Raises ProjectFileError / OSError."""
    from studio.document.fileformat import save_project

    clips = [] if result.audio_clip is None else [result.audio_clip]
    assets = {}
    if result.audio_clip is not None and result.audio_data is not None:
        assets[result.audio_clip.asset] = bytes(result.audio_data)
    carrier = Project.new(fps=frame_rate, duration_frames=max(1, result.duration))
    carrier = dataclasses.replace(
        carrier,
        takes=list(result.takes),
        active_take_id=result.takes[0].id,
        audio_clips=clips,
        assets=assets,
    )
    save_project(carrier, path, backups=0)


def load_result(path: Path, info: dict[str, Any]) -> GenerationResult:
    """The GenerationResult of a ``done`` line ``info`` and its result file. Raises
    ProjectFileError / OSError for an unreadable file."""
    from studio.document.fileformat import load_project

    carrier = load_project(path)
    clip = carrier.audio_clips[0] if carrier.audio_clips else None
    return GenerationResult(
        takes=list(carrier.takes),
        frame_range=tuple(int(v) for v in info["frame_range"]),
        notices=[str(n) for n in info.get("notices") or ()],
        audio_clip=clip,
        audio_data=None if clip is None else carrier.assets.get(clip.asset),
        duration=carrier.duration,
        model=str(info.get("model", "")),
        device=str(info.get("device", "cpu")),
    )


def _write_preview(folder: Path, index: int, values: np.ndarray) -> str:
    name = f"preview-{index}.npy"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(values, dtype=np.float32))
    os.replace(tmp, folder / name)
    return name


def _remove_previews(folder: Path) -> None:
    for pattern in ("preview-*.npy", ".preview-*.npy.tmp"):
        for path in folder.glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()


def run(
    project_file: Path,
    request: GenerateRequest,
    out_dir: Path,
    cancel: threading.Event | None = None,
) -> int:
    """Generate ``request`` on ``project_file``, speaking the protocol of the module docstring
    on stdout; returns the exit status (0 done, EXIT_ERROR, EXIT_CANCELLED)."""
    from studio.document.fileformat import ProjectFileError
    from studio.generation import iter_generate

    project = load_snapshot(project_file)
    if project is None:
        return EXIT_ERROR
    is_cancelled = None if cancel is None else cancel.is_set
    n_previews = 0
    try:
        gen = iter_generate(project, request, is_cancelled)
        try:
            for ev in gen:
                if ev.result is not None:
                    result = ev.result
                    path = out_dir / RESULT_NAME
                    save_result(result, project.frame_rate, path)
                    _remove_previews(out_dir)
                    emit({
                        "done": True,
                        "result": path.name,
                        "frame_range": list(result.frame_range),
                        "notices": list(result.notices),
                        "model": result.model,
                        "device": result.device,
                    })  # fmt: skip
                    return 0
                msg: dict[str, Any] = {"step": ev.step, "total": ev.total, "text": ev.text}
                if ev.notices:
                    msg["notices"] = list(ev.notices)
                if ev.preview is not None:
                    msg["preview"] = _write_preview(out_dir, n_previews, ev.preview)
                    msg["preview_start"] = int(ev.preview_start)
                    n_previews += 1
                emit(msg)
        finally:
            gen.close()
    except GenerationCancelled:
        _remove_previews(out_dir)
        emit({"cancelled": True})
        return EXIT_CANCELLED
    except (ValueError, OSError, ProjectFileError) as exc:  # bad input: its message says it
        _remove_previews(out_dir)
        emit({"error": one_line(exc)})
        return EXIT_ERROR
    emit({"error": "the generation ended without a result"})  # pragma: no cover
    return EXIT_ERROR  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m studio.generation_child",
        description="Run one motion generation for the studio (see the module docstring).",
    )
    ap.add_argument("project", type=Path, help="project snapshot (.ths)")
    ap.add_argument("request", type=Path, help="GenerateRequest as JSON")
    ap.add_argument("--out-dir", type=Path, required=True, help="previews and the result")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority")
    args = ap.parse_args(argv)
    lower_priority(args.nice)

    # Cancel at the next step: a flag the job polls, never an exception inside torch.
    with cancel_on_signals() as cancel:
        try:
            request = request_from_json(args.request.read_text(encoding="utf-8"))
        except (OSError, GenerationError) as exc:
            emit({"error": one_line(exc)})
            return EXIT_ERROR
        if args.threads > 0 and str(request.model) != "procedural":
            import torch

            torch.set_num_threads(args.threads)
        return run(args.project, request, args.out_dir, cancel)


if __name__ == "__main__":
    sys.exit(main())
