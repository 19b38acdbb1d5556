"""The export job: a Qt-free generator that renders, encodes and finishes an export, reporting
progress after every frame, so that the CLI prints a progress line and the studio runs it in a
worker with a progress bar, a preview and Cancel.

Files: everything is written to a temporary name in the destination folder
(``.<name>.part-<pid>[.mp4]``; a folder for png) and moved onto the final name with
``os.replace`` only when complete (after the ``st3d`` box is added to MP4s). Cancelling (the
cancel flag, ``close()`` on the generator, Ctrl-C) or any error removes the temporary file: no
partial or corrupt output is ever left under the final name.

Threads: three stages overlap. A worker prepares frame i+1 (the rig's deformation and, for the
CPU splat renderer, its attribute update: studio.export.pipeline) while the generator's thread
renders frame i (the GL thread; the native CPU kernel releases the GIL) and the writer's thread
converts and encodes frame i-1 and earlier (studio.export.writers). Frames stay in order, every
one is rendered; the worker is stopped and joined before anything it uses is freed, and its
errors are raised here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from studio.document import Project
from studio.export.audio import mix_project_audio
from studio.export.errors import ExportCancelled, ExportError
from studio.export.heads import HeadSource, resolve_head_source
from studio.export.pipeline import Prefetcher
from studio.export.settings import ST3D_MODES, ExportPlan, ExportSettings, plan_export

if TYPE_CHECKING:
    import moderngl

__all__ = ["CancelFlag", "ExportProgress", "export_project", "run_export"]


class CancelFlag(Protocol):
    """Anything with ``is_set()`` (e.g. threading.Event)."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class ExportProgress:
    """One progress report. frame: frames finished; total: frames to do; fps: frames finished
    per second of wall time so far; eta_s: seconds left (None before the first frame);
    preview: the last encoded picture ``[H, W, 3]`` uint8 when a preview was due, else None;
    done: True on the last report, which also carries ``path`` (the final output) and
    ``timings`` (seconds: evaluate; deform and upload on the prepare thread; render in the
    generator's thread; encode, of it convert and audio, on the encoder thread; prepare_wait
    and encode_wait: the generator's thread waiting for the prepare thread or the encoder;
    finish)."""

    frame: int
    total: int
    elapsed_s: float
    fps: float
    eta_s: float | None
    preview: np.ndarray | None = None
    done: bool = False
    path: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _temp_path(out: Path, fmt: str) -> Path:
    suffix = "" if fmt == "png" else out.suffix
    return out.with_name(f".{out.name}.part-{os.getpid()}{suffix}")


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _os_error(exc: OSError, out: Path) -> ExportError:
    if exc.errno == errno.ENOSPC or "No space left" in str(exc):
        return ExportError(f"the disk is full while writing {out}; nothing was written")
    if exc.errno == errno.EDQUOT:
        return ExportError(f"disk quota exceeded while writing {out}; nothing was written")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ExportError(f"cannot write {out}: {exc.strerror or 'permission denied'}")
    text = str(exc).strip()
    reason = exc.strerror or (text.splitlines()[0] if text else "I/O error")
    return ExportError(f"cannot write {out}: {reason}")


def export_project(
    project: Project,
    settings: ExportSettings | ExportPlan,
    cancel: CancelFlag | None = None,
    head_source: HeadSource | None = None,
    context_factory: Callable[[], moderngl.Context] | None = None,
    project_path: str | os.PathLike[str] | None = None,
) -> Iterator[ExportProgress]:
    """Export ``project``; a generator of :class:`ExportProgress` (one report before the first
    frame, one per frame, a last one with ``done=True``).

    cancel: checked before every frame; when set, the temporary output is removed and
    ExportCancelled is raised. head_source: render this instead of the project's head (tests,
    synthetic scenes). context_factory: makes the GL context in the generator's thread (default
    headless EGL; pass a Qt-shared one inside the studio). project_path: the .ths file, where
    relative MPI head folders are looked up.
    Raises ExportError for bad settings, missing audio or head, unwritable/full disks;
    ExportCancelled when cancelled. In every failure the temporary output is removed.
    """
    from studio.export.renderer import OfflineRenderer, eye_cameras, split_eyes
    from studio.export.writers import PngSequenceWriter, VideoWriter

    plan = settings if isinstance(settings, ExportPlan) else plan_export(project, settings)
    timings = {"evaluate": 0.0, "deform": 0.0, "render": 0.0, "encode": 0.0, "finish": 0.0}
    audio = mix_project_audio(project, plan.start, plan.end) if plan.audio else None
    source = head_source or resolve_head_source(project, plan.head, plan.lod_budget, project_path)
    t0 = time.perf_counter()
    values = project.evaluate(plan.positions)  # [N, len(CHANNELS)], exact at integer frames
    timings["evaluate"] = time.perf_counter() - t0

    out, total = plan.out, plan.num_frames
    tmp = _temp_path(out, plan.format)
    _remove(tmp)  # a leftover of a crashed export by a process with our pid
    renderer: OfflineRenderer | None = None
    prefetch: Prefetcher | None = None
    writer: Any = None
    try:
        renderer = OfflineRenderer(plan, source, context_factory)
        try:
            if plan.format == "png":
                tmp.mkdir()
                writer = PngSequenceWriter(tmp, plan, eye_cameras(plan), audio)
            else:
                writer = VideoWriter(tmp, plan, audio)
        except OSError as exc:
            raise _os_error(exc, out) from None
        yield ExportProgress(0, total, 0.0, 0.0, None, warnings=tuple(plan.warnings))
        # Frame i+1's deformation (and CPU attribute update) runs on a worker thread while
        # frame i renders here and frame i-1 encodes in the writer's thread.
        prefetch = Prefetcher(
            lambda i, slot: renderer.prepare(values[i], slot),
            total, renderer.slots, threaded=renderer.threaded_prepare,
        )  # fmt: skip
        t_loop = time.perf_counter()
        layout = None if plan.format == "png" else plan.layout
        for i, prepared in enumerate(prefetch):
            if cancel is not None and cancel.is_set():
                raise ExportCancelled(f"export of {out} cancelled")
            picture = renderer.draw(prepared, layout)
            if plan.format == "png":
                writer.write_views(split_eyes(picture, len(plan.eyes)))
            else:
                writer.write(picture)  # the encoder reads it in place: not touched again
            elapsed = time.perf_counter() - t_loop
            fps = (i + 1) / elapsed if elapsed > 0 else 0.0
            eta = (total - i - 1) / fps if fps > 0 else None
            preview = None
            if plan.preview_every and (i % plan.preview_every == 0 or i == total - 1):
                preview = picture
            yield ExportProgress(i + 1, total, elapsed, fps, eta, preview)
        prefetch.close()
        if cancel is not None and cancel.is_set():
            raise ExportCancelled(f"export of {out} cancelled")
        t0 = time.perf_counter()
        writer.close()
        if plan.format == "mp4" and plan.layout != "mono":
            from studio.export.isobmff import insert_st3d

            insert_st3d(tmp, ST3D_MODES[plan.layout])
        if plan.format == "png" and out.exists():
            _remove(out)  # overwrite was checked by plan_export
        os.replace(tmp, out)
        timings["finish"] = time.perf_counter() - t0
        for key in ("deform", "upload", "render"):
            timings[key] = renderer.timings[key]
        for key, value in writer.timings.items():
            timings["encode_wait" if key == "wait" else key] = value
        timings["prepare_wait"] = prefetch.wait_s
        elapsed = time.perf_counter() - t_loop
        writer = None  # finished: nothing to abort from here on
        yield ExportProgress(
            total, total, elapsed, total / elapsed if elapsed > 0 else 0.0, 0.0,
            done=True, path=out, timings=timings, warnings=tuple(plan.warnings),
        )  # fmt: skip
    except OSError as exc:
        raise _os_error(exc, out) from None
    finally:
        if writer is not None:  # not finished: cancelled, failed, or the generator was closed
            writer.abort()
        if prefetch is not None:
            prefetch.close()  # the worker may be updating a renderer: stop it first
        _remove(tmp)  # gone already after a successful os.replace
        if renderer is not None:
            renderer.release()


def run_export(
    project: Project,
    settings: ExportSettings | ExportPlan,
    cancel: CancelFlag | None = None,
    head_source: HeadSource | None = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
) -> ExportProgress:
    """Run :func:`export_project` to the end; returns the last (``done``) report."""
    last = None
    with contextlib.closing(export_project(project, settings, cancel, head_source)) as gen:
        for report in gen:
            if on_progress is not None:
                on_progress(report)
            last = report
    assert last is not None and last.done
    return last
