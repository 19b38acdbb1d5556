"""File > Import / Export Live Link CSV for the main window (Live Link Face, ARKit blendshapes).

Import reads and retargets the CSV in a worker (``studio.livelink``) and adds the take at the
current frame, active, as one undoable edit (the project grows to cover it). Export writes the
active take over the play range. The file choosers are module-level functions so tests can
answer them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QDockWidget, QFileDialog, QWidget

from studio.workers import Progress

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow
    from studio.workers import Worker

__all__ = [
    "CSV_FILTER",
    "ask_livelink_open_path",
    "ask_livelink_save_path",
    "export_livelink_csv",
    "import_livelink_csv",
    "read_livelink_job",
    "show_dock",
]

CSV_FILTER = "Live Link Face CSV (*.csv);;All files (*)"


def ask_livelink_open_path(parent: QWidget | None) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Import a Live Link Face CSV", "", CSV_FILTER)
    return Path(path) if path else None


def ask_livelink_save_path(parent: QWidget | None, suggested: Path) -> Path | None:
    path, _ = QFileDialog.getSaveFileName(
        parent, "Export the take as Live Link Face CSV", str(suggested), CSV_FILTER
    )
    if not path:
        return None
    p = Path(path)
    return p if p.suffix else p.with_suffix(".csv")


def read_livelink_job(path: Path, fps: float, start_frame: int):
    """Qt-free job: a take from a Live Link Face CSV at ``fps`` starting at ``start_frame``.
    Raises LiveLinkError (a ValueError) / OSError naming the file."""
    from studio.livelink import read_livelink, take_from_livelink

    yield Progress(0.0, f"reading {Path(path).name}")
    data = read_livelink(path)
    yield Progress(0.5, f"retargeting {len(data)} rows")
    take = take_from_livelink(data, fps, Path(path).stem, start_frame=start_frame)
    yield Progress(1.0, "done")
    return take


def import_livelink_csv(window: MainWindow, path: Path | str | None = None) -> Worker | None:
    """File > Import Live Link CSV…: the CSV as a new active take at the current frame."""
    if path is None:
        path = ask_livelink_open_path(window)
        if path is None:
            return None
    path = Path(path)
    c = window.controller
    frame = c.frame

    def add(take: Any) -> None:
        from studio.document import AddTake, CompoundEdit, SetSettings

        project = c.project
        n = int(take.metadata["capture"]["length_frames"])
        edits: list[Any] = [AddTake(take, activate=True)]
        end = frame + n
        if end > project.duration:
            whole = project.work_range == (0, project.duration)
            edits.append(SetSettings(duration=end, work_range=(0, end) if whole else None))
        if c.push(CompoundEdit(edits, label=f"Import Live Link {path.name}")):
            c.notify(f"Imported {path.name}: take {take.name!r}, {n} frames at frame {frame}")

    return window.run_job(
        read_livelink_job, path, c.project.frame_rate.fps, frame,
        name=f"Import {path.name}", on_result=add, error_title="Cannot import the Live Link CSV",
    )  # fmt: skip


def export_livelink_csv(window: MainWindow, path: Path | str | None = None) -> bool:
    """File > Export Live Link CSV…: the active take over the play range."""
    from studio.livelink import export_livelink

    c = window.controller
    if path is None:
        base = c.path.parent if c.path is not None else Path.home()
        path = ask_livelink_save_path(window, base / f"{c.project.active_take.name}.csv")
        if path is None:
            return False
    path = Path(path)
    try:
        start, end = export_livelink(c.project, path, c.play_range)
    except (OSError, ValueError) as exc:
        window._error("Cannot export the Live Link CSV", f"{path}: {exc}")
        return False
    c.notify(f"Exported frames {start}–{end - 1} of {c.project.active_take.name!r} to {path}")
    return True


def show_dock(window: MainWindow, key: str) -> None:
    """Show and raise a dock of the window (View > Live)."""
    dock: QDockWidget | None = window.docks.get(key)
    if dock is None:
        return
    dock.show()
    dock.raise_()
    widget = dock.widget()
    if widget is not None:
        widget.setFocus()
