"""File > Export: the studio's export dialog (stereo VR clips, mono video, PNG sequences and
motion data) and the worker jobs behind it.

The dialog edits :class:`studio.export.ExportSettings` with presets (Quest side-by-side, YouTube
3D, mono 1080p, custom) and checks them inline with :func:`studio.export.plan_export` on every
change: adjustments (odd sizes rounded to even) show as warnings, problems (a range outside the
project, an existing file) disable Export and say why. The last choices are kept in QSettings.

A video or PNG export runs in a child process (:class:`ExportProcess`, ``python -m
studio.export.child``) on a snapshot of the project saved to a temporary .ths, so unsaved edits
are what is exported. Not a thread: on a software GL (llvmpipe) moderngl's draw and readback
calls hold the Python GIL for hundreds of ms, and the GUI thread's own GL work (composing the
main window, which holds the GL viewport) was seen waiting inside llvmpipe behind the export's
frames: an export thread stalled the GUI for up to seconds. The child has its own GIL and its
own headless EGL context (no GLX/EGL mix), and a GL crash there leaves the studio running.
The dialog shows frame i/N, fps, ETA and a thumbnail of the latest frame (written by the
child, scaled down there, so the GUI thread only loads and paints it); Cancel sends SIGINT: the
child stops before its next frame and removes its partial file. Motion exports are quick and
Qt-free numpy: they run in a :class:`studio.workers.Worker`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QSettings,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.document import FrameRate, Project
from studio.document.errors import DocumentError
from studio.export import (
    LAYOUT_TAGS,
    ExportError,
    ExportPlan,
    ExportProgress,
    ExportSettings,
    export_motion,
    plan_export,
)
from studio.export.child import settings_to_json
from studio.export.progress import format_eta
from studio.project_ops import snapshot_project
from studio.ui import dialogs
from studio.ui.controller import StudioController
from studio.ui.style import COLORS
from studio.workers import Progress, Worker, WorkerStatus
from studio.workers.process import ChildProcess

__all__ = [
    "KINDS",
    "PRESETS",
    "ExportDialog",
    "ExportProcess",
    "ExportUpdate",
    "export_command",
    "motion_job",
]

log = logging.getLogger(__name__)

# Output kinds: id -> (label, suffix of the output path; "" = a folder).
KINDS: dict[str, tuple[str, str]] = {
    "mp4": ("Video (MP4)", ".mp4"),
    "mkv": ("Video (Matroska)", ".mkv"),
    "png": ("PNG sequence per eye + camera rig", ""),
    "csv": ("Motion data (CSV)", ".csv"),
    "json": ("Motion data (JSON)", ".json"),
    "npy": ("Motion data (Ditto .npy)", ".npy"),
}
VIDEO_KINDS = ("mp4", "mkv")
MOTION_KINDS = ("csv", "json", "npy")

LAYOUT_LABELS = {
    "sbs": "Side-by-side, full (_LR)",
    "hsbs": "Side-by-side, half (_3dh)",
    "tb": "Top-bottom (_TB)",
    "mono": "Mono",
}
HEAD_LABELS = {"gaussian": "Gaussian splats", "mpi": "MPI (layered planes)"}
CODEC_LABELS = {"h264": "H.264", "h265": "H.265 (HEVC)"}
RANGE_LABELS = {"work": "Work range", "whole": "Whole project", "custom": "Custom"}
PROJECT_FPS = "project"
FPS_CHOICES = ("24", "25", "30", "50", "60", "72", "90")


@dataclass(frozen=True)
class Preset:
    """A named set of choices; the fields the preset leaves alone stay as they are."""

    label: str
    tip: str  # the combo box tooltip
    note: str  # one short line under the combo box
    kind: str = "mp4"
    layout: str = "sbs"
    eye_size: tuple[int, int] = (1440, 1440)
    codec: str = "h264"
    crf: int = 18


PRESETS: dict[str, Preset] = {
    "quest": Preset(
        "Quest side-by-side (2×1440)",
        "Meta Quest: full side-by-side, 1440×1440 per eye (2880×1440 frame), H.265 CRF 20, "
        "_LR in the name so the player picks the layout",
        "2880×1440 side-by-side H.265: the Quest's player reads the _LR tag",
        layout="sbs", eye_size=(1440, 1440), codec="h265", crf=20,
    ),
    "youtube3d": Preset(
        "YouTube 3D (side-by-side 1080p)",
        "YouTube 3D: full side-by-side 1920×1080 per eye (3840×1080), left eye on the left, "
        "H.264 with Spherical Video st3d metadata (what YouTube reads for 3D)",
        "3840×1080 side-by-side H.264 with st3d stereo metadata",
        layout="sbs", eye_size=(1920, 1080), codec="h264", crf=18,
    ),
    "mono1080": Preset(
        "Mono 1080p",
        "A flat 1920×1080 H.264 video from the centre camera",
        "A flat 1920×1080 H.264 video from the centre camera",
        layout="mono", eye_size=(1920, 1080), codec="h264", crf=18,
    ),
    "custom": Preset("Custom", "Your own choices", "Every field below is yours to set"),
}  # fmt: skip

SETTINGS_KEY = "export/last"
THUMB_WIDTH = 480
CHILD_NICE = 5  # the export child yields the CPU to the studio (2-core machines)
_KNOWN_TAGS = tuple(t for t in LAYOUT_TAGS.values() if t)


# ----------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class ExportUpdate:
    """What the export job hands the GUI per frame: the report (without its full-size picture)
    and a thumbnail ``[h, w, 3]`` uint8 at most THUMB_WIDTH wide, or None."""

    report: ExportProgress
    thumbnail: np.ndarray | None


def export_command(
    snapshot: Path,
    settings_file: Path,
    preview_dir: Path,
    project_path: Path | None,
    thumb_width: int = THUMB_WIDTH,
) -> tuple[str, list[str]]:
    """(program, arguments) of the export child process (studio.export.child); a function so
    tests can substitute a failing or crashing child."""
    args = ["-m", "studio.export.child", str(snapshot), str(settings_file),
            "--preview-dir", str(preview_dir), "--thumb-width", str(thumb_width),
            "--nice", str(CHILD_NICE)]  # fmt: skip
    if project_path is not None:
        args += ["--project-path", str(project_path)]
    return sys.executable, args


class ExportProcess(ChildProcess):
    """One video/PNG export in a child process (``python -m studio.export.child``), with the
    interface of :class:`studio.workers.Worker` that the dialog and the status bar use (see
    :class:`studio.workers.process.ChildProcess`).

    ``start`` saves ``project`` (a snapshot: the user's unsaved state is what is exported) and
    the settings to a temporary folder in a Python thread (a big head asset takes a while to
    write), then starts the child. Its JSON lines (see studio.export.child) become ``progress``
    reports whose preview is an :class:`ExportUpdate` with the thumbnail the child wrote
    (reports that arrive together are coalesced: only the newest is shown). ``cancel`` sends
    SIGINT (the child stops before its next frame and removes its temporary file); a child that
    is killed or crashes has its ``.part`` file removed here. ``failed`` carries the child's
    one-line error, or "the export process stopped unexpectedly" with the last line it printed
    on stderr (the whole tail goes to the log).
    """

    what = "export"
    temp_prefix = "ths-export-"

    def __init__(
        self,
        project: Project,
        settings: ExportSettings,
        out: Path,
        project_path: Path | None = None,
        *,
        name: str = "Export",
        thumb_width: int = THUMB_WIDTH,
    ) -> None:
        super().__init__(name=name)
        self.out = out  # the final output (plan.out): its temporary twin is cleaned on a crash
        self._project = project
        self._settings = settings
        self._project_path = project_path
        self._thumb_width = thumb_width

    def write_inputs(self, folder: Path) -> None:  # the saver thread
        self.save_snapshot_and_json(
            folder, self._project, "settings.json", settings_to_json(self._settings)
        )

    def command(self, folder: Path) -> tuple[str, list[str]]:
        return export_command(
            folder / "snapshot.ths", folder / "settings.json", folder, self._project_path,
            self._thumb_width,
        )  # fmt: skip

    def handle_lines(self, messages: list[dict[str, Any]]) -> Progress | None:
        latest: dict[str, Any] | None = None
        preview: str | None = None
        for msg in messages:
            if "error" in msg:
                self.error = str(msg["error"])
            elif msg.get("done"):
                self.result = _report(msg, done=True)
            elif "frame" in msg:
                latest = msg
                preview = msg.get("preview") or preview
        if latest is None or self.is_cancel_requested:
            return None
        thumb = None
        if preview and self.folder is not None:
            try:
                thumb = np.load(self.folder / Path(preview).name, allow_pickle=False)
            except (OSError, ValueError):
                thumb = None  # replaced under us: the next one comes soon
        if thumb is None and self.pending is not None:  # keep a thumbnail not shown yet
            thumb = self.pending.preview.thumbnail
        report = _report(latest)
        fraction = report.frame / report.total if report.total else None
        # No text: the status bar shows "<name>: <text>", and a label whose text changes
        # re-lays out the main window, which (right dock column creeping) resizes the GL
        # viewport and re-renders the head in the GUI thread: 0.4-1 s on a software GL.
        # The bar shows the fraction; the dialog shows frame, fps and ETA from the report.
        return Progress(fraction, "", ExportUpdate(report, thumb))

    def cleanup(self, outcome: str) -> None:
        if self.pid:
            _remove_partial(self.out, self.pid)  # a killed or crashed child leaves its .part


def _report(msg: dict[str, Any], done: bool = False) -> ExportProgress:
    path = msg.get("path")
    return ExportProgress(
        frame=int(msg.get("frame", 0)),
        total=int(msg.get("total", 0)),
        elapsed_s=float(msg.get("elapsed_s", 0.0)),
        fps=float(msg.get("fps", 0.0)),
        eta_s=None if msg.get("eta_s") is None else float(msg["eta_s"]),
        done=done,
        path=Path(path) if path else None,
        timings=dict(msg.get("timings") or {}),
        warnings=tuple(msg.get("warnings") or ()),
    )


def _remove_partial(out: Path, pid: int) -> None:
    """Remove what studio.export.job writes before it is complete (``.<name>.part-<pid>``,
    with the output's suffix for files; a folder for PNG sequences)."""
    for tmp in (out.with_name(f".{out.name}.part-{pid}{out.suffix}"),
                out.with_name(f".{out.name}.part-{pid}")):  # fmt: skip
        with contextlib.suppress(OSError):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            elif tmp.exists():
                tmp.unlink()


def motion_job(
    project: Project, out: Path, frame_range: tuple[int, int] | None, overwrite: bool
) -> Iterator[Progress]:
    """Worker job: :func:`export_motion` (CSV/JSON/NPY by suffix). Returns the written path.
    Raises ExportError (bad suffix, existing file, bad range, unwritable folder)."""
    yield Progress(None, f"writing {out.name}")
    path = export_motion(project, out, frame_range, overwrite=overwrite)
    yield Progress(1.0, "done")
    return path


# ---------------------------------------------------------------------------- helpers
def _strip_tag(stem: str) -> str:
    for tag in _KNOWN_TAGS:
        if stem.lower().endswith(tag.lower()) and len(stem) > len(tag):
            return stem[: -len(tag)]
    return stem


def output_path_for(text: str, kind: str, layout: str) -> str:
    """``text`` with the suffix of ``kind`` and, for stereo video, the layout's name tag (the
    old tag replaced): ``clip.mp4`` + sbs -> ``clip_LR.mp4``; ``clip_LR.mp4`` + mono ->
    ``clip.mp4``; png -> the folder ``clip``."""
    text = text.strip()
    if not text:
        return text
    p = Path(text)
    stem = p.stem if p.suffix.lower() in {s for _l, s in KINDS.values() if s} | {".m4v", ".mov"} \
        else p.name  # fmt: skip
    stem = _strip_tag(stem)
    if kind in VIDEO_KINDS:
        stem += LAYOUT_TAGS[layout]
    return str(p.with_name(stem + KINDS[kind][1]))


def _one_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    # The plan's messages speak CLI; the dialog has a checkbox instead of --force.
    return (lines[0] if lines else "").replace("pass --force to overwrite it", "tick Overwrite")


def _motion_problem(project: Project, out: Path, frame_range: tuple[int, int], overwrite: bool):
    """Why export_motion would refuse (one line), or None."""
    if out.suffix.lower() not in (".csv", ".json", ".npy"):
        return f"{out.name}: motion files end in .csv, .json or .npy"
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return f"cannot write {out}: the folder {parent} does not exist"
    if out.exists() and not overwrite:
        return f"{out} exists; tick Overwrite to replace it"
    start, end = frame_range
    if not 0 <= start < end <= project.duration:
        return (
            f"range {start}:{end} is outside the project (frames 0:{project.duration}, "
            "end exclusive, start < end)"
        )
    return None


# ----------------------------------------------------------------------------- dialog
class ExportDialog(QDialog):
    """The export dialog for ``controller``'s project (see the module docstring).

    ``settings``: where the last choices are kept (default: studio.ui.dialogs.open_settings()).
    ``worker_status``: the main window's status-bar indicator, which also shows the export so
    the dialog can be closed while it runs. ``kind``: the output kind to start with (a KINDS id).

    Signals: ``exported(Path)`` after a successful export; ``failed(str)`` with the one-line
    reason of a failed one.
    """

    exported = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        controller: StudioController,
        parent: QWidget | None = None,
        *,
        settings: QSettings | None = None,
        worker_status: WorkerStatus | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.settings = settings if settings is not None else dialogs.open_settings()
        self.worker_status = worker_status
        self.worker: Worker | ExportProcess | None = None
        self.result_path: Path | None = None
        self.last_report: ExportProgress | None = None
        self.plan: ExportPlan | None = None
        self.problem: str | None = None
        self.warnings: list[str] = []
        self._applying = False  # filling fields from a preset or the saved settings
        self._tracked = False  # the running job is shown in worker_status
        self.setObjectName("ExportDialog")
        self.setWindowTitle("Export")
        self.setMinimumWidth(760)

        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(0)  # once per burst of changes, after they land
        self._validate_timer.timeout.connect(self.validate)

        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_settings_page())
        self.pages.addWidget(self._build_progress_page())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        # Never squeeze the form: the dialog grows when a warning line appears.
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        layout.addWidget(self.pages)

        self.refresh(kind)

    # ------------------------------------------------------------------------ building
    def _build_settings_page(self) -> QWidget:
        page = QWidget()
        self.preset = QComboBox()
        self.preset.setObjectName("export_preset")
        for key, p in PRESETS.items():
            self.preset.addItem(p.label, key)
            self.preset.setItemData(self.preset.count() - 1, p.tip, Qt.ItemDataRole.ToolTipRole)
        self.preset.activated.connect(lambda _i: self.apply_preset(self.preset.currentData()))

        # Output
        self.kind = QComboBox()
        for key, (label, _suffix) in KINDS.items():
            self.kind.addItem(label, key)
        self.kind.currentIndexChanged.connect(self._on_kind_changed)
        self.path = QLineEdit()
        self.path.setObjectName("export_path")
        self.path.setPlaceholderText("Where to write the clip")
        self.path.setToolTip("The layout's tag (_LR, _3dh, _TB) is added so VR players detect it")
        self.path.textChanged.connect(self._changed)
        self.path.editingFinished.connect(self._retag)
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip("Choose the output file or folder")
        self.browse.clicked.connect(self.choose_path)
        path_row = QHBoxLayout()
        path_row.setSpacing(4)
        path_row.addWidget(self.path, 1)
        path_row.addWidget(self.browse)
        self.resolved = QLabel()
        self.resolved.setObjectName("export_resolved")
        self.resolved.setStyleSheet(f"color: {COLORS['text_dim']}")
        self.overwrite = QCheckBox("Overwrite an existing file")
        self.overwrite.toggled.connect(self._changed)
        out_form = QFormLayout()
        out_form.addRow("Kind", self.kind)
        out_form.addRow("File", path_row)
        out_form.addRow("", self.resolved)
        out_form.addRow("", self.overwrite)
        self.output_group = QGroupBox("Output")
        self.output_group.setLayout(out_form)

        # Picture
        self.layout_box = QComboBox()
        self.layout_box.setObjectName("export_layout")
        for key, label in LAYOUT_LABELS.items():
            self.layout_box.addItem(label, key)
        self.layout_box.currentIndexChanged.connect(self._on_layout_changed)
        self.eye_w, self.eye_h = QSpinBox(), QSpinBox()
        for spin, tip in ((self.eye_w, "Width of one eye's picture"),
                          (self.eye_h, "Height of one eye's picture")):  # fmt: skip
            spin.setRange(2, 8192)
            spin.setSuffix(" px")
            spin.setToolTip(tip)
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self._changed)
        size_row = QHBoxLayout()
        size_row.setSpacing(4)
        size_row.addWidget(self.eye_w, 1)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.eye_h, 1)
        self.frame_label = QLabel()
        self.frame_label.setObjectName("export_frame_size")
        self.frame_label.setStyleSheet(f"color: {COLORS['text_dim']}")
        self.fps = QComboBox()
        self.fps.setEditable(True)
        self.fps.setToolTip("Output frame rate (e.g. 30, 29.97, 30000/1001)")
        self.fps.currentTextChanged.connect(self._changed)
        self.head = QComboBox()
        for key, label in HEAD_LABELS.items():
            self.head.addItem(label, key)
        self.head.setToolTip("How the head is drawn")
        self.head.currentIndexChanged.connect(self._changed)
        pic_form = QFormLayout()
        pic_form.addRow("Layout", self.layout_box)
        pic_form.addRow("Per eye", size_row)
        pic_form.addRow("", self.frame_label)
        pic_form.addRow("Frame rate", self.fps)
        pic_form.addRow("Head", self.head)
        self.picture_group = QGroupBox("Picture")
        self.picture_group.setLayout(pic_form)

        # Camera
        self.fov = QDoubleSpinBox()
        self.fov.setRange(1.5, 178.5)
        self.fov.setDecimals(1)
        self.fov.setSuffix("°")
        self.fov.setToolTip("Vertical field of view of each eye")
        self.ipd = QDoubleSpinBox()
        self.ipd.setRange(0.0, 200.0)
        self.ipd.setDecimals(1)
        self.ipd.setSuffix(" mm")
        self.ipd.setToolTip("Distance between the two cameras (the viewer's eyes)")
        self.convergence = QDoubleSpinBox()
        self.convergence.setRange(0.01, 100.0)
        self.convergence.setDecimals(2)
        self.convergence.setSingleStep(0.05)
        self.convergence.setSuffix(" m")
        self.convergence.setToolTip("Distance at which the eyes' views meet (screen depth)")
        for spin in (self.fov, self.ipd, self.convergence):
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self._changed)
        cam_form = QFormLayout()
        cam_form.addRow("Field of view", self.fov)
        cam_form.addRow("IPD", self.ipd)
        cam_form.addRow("Convergence", self.convergence)
        self.camera_group = QGroupBox("Stereo camera")
        self.camera_group.setLayout(cam_form)

        # Range
        self.range_mode = QComboBox()
        self.range_mode.setObjectName("export_range")
        for key, label in RANGE_LABELS.items():
            self.range_mode.addItem(label, key)
        self.range_mode.currentIndexChanged.connect(self._on_range_mode)
        self.range_a, self.range_b = QSpinBox(), QSpinBox()
        for spin in (self.range_a, self.range_b):
            spin.setRange(-999_999, 999_999)  # out-of-project values are reported, not clamped
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self._changed)
        self.range_a.setToolTip("First frame")
        self.range_b.setToolTip("End frame (exclusive): A:B exports frames A … B−1")
        range_row = QHBoxLayout()
        range_row.setSpacing(4)
        range_row.addWidget(self.range_a, 1)
        range_row.addWidget(QLabel(":"))
        range_row.addWidget(self.range_b, 1)
        self.range_label = QLabel()
        self.range_label.setStyleSheet(f"color: {COLORS['text_dim']}")
        range_form = QFormLayout()
        range_form.addRow("Frames", self.range_mode)
        range_form.addRow("A : B", range_row)
        range_form.addRow("", self.range_label)
        self.range_group = QGroupBox("Range")
        self.range_group.setLayout(range_form)

        # Encoding
        self.codec = QComboBox()
        for key, label in CODEC_LABELS.items():
            self.codec.addItem(label, key)
        self.codec.currentIndexChanged.connect(self._changed)
        self.crf = QSpinBox()
        self.crf.setRange(0, 51)
        self.crf.setToolTip("Constant rate factor: lower is better and bigger (18 ≈ lossless)")
        self.crf.setKeyboardTracking(False)
        self.crf.valueChanged.connect(self._changed)
        self.audio = QCheckBox("Include the project's audio")
        self.audio.toggled.connect(self._changed)
        enc_form = QFormLayout()
        enc_form.addRow("Codec", self.codec)
        enc_form.addRow("Quality (CRF)", self.crf)
        enc_form.addRow("Audio", self.audio)
        self.encoding_group = QGroupBox("Encoding")
        self.encoding_group.setLayout(enc_form)

        # Status and buttons
        self.message = QLabel()
        self.message.setObjectName("export_message")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.RichText)
        self.summary = QLabel()
        self.summary.setObjectName("export_summary")
        self.summary.setWordWrap(True)
        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("export_button")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)

        self.preset_note = QLabel()
        self.preset_note.setObjectName("export_preset_note")
        self.preset_note.setStyleSheet(f"color: {COLORS['text_dim']}")
        self.preset.currentIndexChanged.connect(
            lambda _i: self.preset_note.setText(PRESETS[self.preset.currentData()].note)
        )
        top = QFormLayout()
        top.addRow("Preset", self.preset)
        top.addRow("", self.preset_note)
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.addWidget(self.output_group, 0, 0, 1, 2)
        grid.addWidget(self.picture_group, 1, 0)
        grid.addWidget(self.camera_group, 1, 1)
        grid.addWidget(self.range_group, 2, 0)
        grid.addWidget(self.encoding_group, 2, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.close_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(grid)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        return page

    def _build_progress_page(self) -> QWidget:
        page = QWidget()
        self.progress_title = QLabel()
        self.progress_title.setWordWrap(True)
        self.progress_title.setObjectName("export_progress_title")
        self.preview = QLabel()
        self.preview.setObjectName("export_preview")
        self.preview.setFixedSize(THUMB_WIDTH, 270)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet(
            f"background: {COLORS['base']}; border: 1px solid {COLORS['border']};"
        )
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("export_progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_text = QLabel()
        self.progress_text.setObjectName("export_progress_text")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("export_cancel")
        self.cancel_button.setToolTip("Stop after the frame being rendered; nothing is written")
        self.cancel_button.clicked.connect(self.cancel_export)
        self.reveal_button = QPushButton("Show in Folder")
        self.reveal_button.setObjectName("export_reveal")
        self.reveal_button.clicked.connect(self.show_in_folder)
        self.done_button = QPushButton("Close")
        self.done_button.clicked.connect(self.accept)
        self.again_button = QPushButton("Back to Settings")
        self.again_button.clicked.connect(lambda: self.pages.setCurrentIndex(0))
        row = QHBoxLayout()
        row.addWidget(self.again_button)
        row.addStretch(1)
        row.addWidget(self.reveal_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.done_button)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.progress_title)
        layout.addWidget(self.preview, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_text)
        layout.addStretch(1)
        layout.addLayout(row)
        return page

    # ------------------------------------------------------------------ field access
    @staticmethod
    def _select(box: QComboBox, data: object) -> None:
        i = box.findData(data)
        if i >= 0:
            box.setCurrentIndex(i)

    @property
    def project(self) -> Project:
        return self.controller.project

    @property
    def current_kind(self) -> str:
        return str(self.kind.currentData())

    @property
    def current_layout(self) -> str:
        return str(self.layout_box.currentData())

    def frame_range(self) -> tuple[int, int]:
        """The chosen [start, end) in project frames."""
        mode = self.range_mode.currentData()
        if mode == "work":
            return tuple(self.project.work_range)  # type: ignore[return-value]
        if mode == "whole":
            return (0, self.project.duration)
        return (self.range_a.value(), self.range_b.value())

    def _fps_value(self) -> str | None:
        i = self.fps.currentIndex()
        if i >= 0 and self.fps.itemText(i) == self.fps.currentText():
            data = self.fps.itemData(i)
            if data == PROJECT_FPS:
                return None
        return self.fps.currentText().strip() or None

    def export_settings(self) -> ExportSettings:
        """The video/PNG settings the fields describe (not yet checked)."""
        kind = self.current_kind
        total_guess = max(1, self.frame_range()[1] - self.frame_range()[0])
        return ExportSettings(
            out=Path(os.path.expanduser(self.path.text().strip() or ".")),
            layout=self.current_layout,
            format=kind if kind in ("png", *VIDEO_KINDS) else None,
            codec=str(self.codec.currentData()),
            eye_size=(self.eye_w.value(), self.eye_h.value()),
            fps=self._fps_value(),
            fov_deg=self.fov.value(),
            ipd=self.ipd.value() / 1000.0,
            convergence=self.convergence.value(),
            head=str(self.head.currentData()),
            frame_range=self.frame_range(),
            audio=self.audio.isChecked(),
            crf=self.crf.value(),
            overwrite=self.overwrite.isChecked(),
            tag_name=True,
            # Up to ~200 thumbnails per export: live without flooding the GUI thread.
            preview_every=max(1, total_guess // 200),
        )

    # ---------------------------------------------------------------- filling fields
    def refresh(self, kind: str | None = None) -> None:
        """Fill the fields from the project and the last settings (``kind`` overrides the
        remembered output kind) and show the settings page."""
        self._applying = True
        try:
            p = self.project
            cam = p.camera
            self.fov.setValue(cam.fov_deg)
            self.ipd.setValue(cam.ipd * 1000.0)
            self.convergence.setValue(cam.convergence)
            self.fps.blockSignals(True)
            self.fps.clear()
            self.fps.addItem(f"Project ({p.frame_rate.fps:g})", PROJECT_FPS)
            for f in FPS_CHOICES:
                self.fps.addItem(f, f)
            self.fps.blockSignals(False)
            start, end = p.work_range
            self.range_a.setValue(start)
            self.range_b.setValue(end)
            head_mpi = p.head is not None and p.head.kind == "mpi"
            self._select(self.head, "mpi" if head_mpi else "gaussian")
            has_audio = any(not c.muted for c in p.audio_clips)
            self.audio.setChecked(has_audio)
            self.apply_preset("quest", validate=False)
            self._restore(self._saved())
            if kind is not None:
                self._select(self.kind, kind)
            if not self.path.text().strip():
                self.path.setText(str(self._default_folder() / self._default_name()))
            self._retag()
        finally:
            self._applying = False
        self._on_kind_changed()
        self._on_range_mode()
        self.preset_note.setText(PRESETS[self.preset.currentData()].note)
        self.pages.setCurrentIndex(0)
        self.validate()

    def _default_name(self) -> str:
        path = self.controller.path
        return f"{path.stem if path else 'untitled'}.mp4"

    def _default_folder(self) -> Path:
        path = self.controller.path
        return path.parent if path is not None else Path.home()

    def apply_preset(self, key: str, validate: bool = True) -> None:
        """Fill the fields that preset ``key`` sets ("custom" changes nothing)."""
        self._select(self.preset, key)
        if key == "custom" or key not in PRESETS:
            return
        p = PRESETS[key]
        was = self._applying
        self._applying = True
        try:
            if self.current_kind not in VIDEO_KINDS:
                self._select(self.kind, p.kind)
            self._select(self.layout_box, p.layout)
            self.eye_w.setValue(p.eye_size[0])
            self.eye_h.setValue(p.eye_size[1])
            self._select(self.codec, p.codec)
            self.crf.setValue(p.crf)
            self._select(self.fps, PROJECT_FPS)
            self._retag()
        finally:
            self._applying = was
        self._on_kind_changed()
        self._select(self.preset, key)
        if validate:
            self.validate()

    def _saved(self) -> dict[str, Any]:
        raw = self.settings.value(SETTINGS_KEY, "")
        try:
            data = json.loads(str(raw)) if raw else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def _restore(self, d: dict[str, Any]) -> None:
        """Apply remembered choices; unknown or bad values are skipped (files get edited)."""
        if not d:
            return
        try:
            if d.get("preset") in PRESETS:
                self._select(self.preset, d["preset"])
            for box, key in ((self.kind, "kind"), (self.layout_box, "layout"),
                             (self.codec, "codec"), (self.range_mode, "range")):  # fmt: skip
                if key in d:
                    self._select(box, d[key])
            if "eye_size" in d:
                w, h = (int(v) for v in d["eye_size"])
                self.eye_w.setValue(w)
                self.eye_h.setValue(h)
            if "crf" in d:
                self.crf.setValue(int(d["crf"]))
            fps = d.get("fps")
            if fps and fps != PROJECT_FPS:
                self.fps.setEditText(str(fps))
            if "overwrite" in d:
                self.overwrite.setChecked(bool(d["overwrite"]))
            if d.get("audio") is False:
                self.audio.setChecked(False)
            folder = Path(str(d.get("folder", "")))
            if folder.is_absolute() and folder.is_dir():
                self.path.setText(str(folder / self._default_name()))
        except (TypeError, ValueError) as exc:
            log.info("ignoring remembered export settings: %s", exc)

    def save_settings(self) -> None:
        """Remember the current choices (camera values and custom ranges are per project)."""
        out = Path(self.path.text().strip())
        d = {
            "preset": self.preset.currentData(),
            "kind": self.current_kind,
            "layout": self.current_layout,
            "eye_size": [self.eye_w.value(), self.eye_h.value()],
            "fps": self._fps_value() or PROJECT_FPS,
            "codec": self.codec.currentData(),
            "crf": self.crf.value(),
            "audio": self.audio.isChecked(),
            "overwrite": self.overwrite.isChecked(),
            "range": self.range_mode.currentData(),
            "folder": str(out.parent) if out.is_absolute() else "",
        }
        self.settings.setValue(SETTINGS_KEY, json.dumps(d))
        self.settings.sync()

    # -------------------------------------------------------------------- reactions
    def _changed(self, *_args: object) -> None:
        if self._applying:
            return
        sender = self.sender()
        preset_fields = (self.layout_box, self.eye_w, self.eye_h, self.codec, self.crf, self.fps)
        if sender in preset_fields and self.preset.currentData() != "custom":
            self._select(self.preset, "custom")
        self._validate_timer.start()

    def _retag(self) -> None:
        text = self.path.text()
        new = output_path_for(text, self.current_kind, self.current_layout)
        if new != text:
            self.path.setText(new)

    def _on_layout_changed(self) -> None:
        self._retag()
        self._changed()

    def _on_kind_changed(self) -> None:
        kind = self.current_kind
        video, motion = kind in VIDEO_KINDS, kind in MOTION_KINDS
        self.picture_group.setEnabled(not motion)
        self.camera_group.setEnabled(not motion)
        self.encoding_group.setEnabled(not motion)
        self.codec.setEnabled(video)
        self.crf.setEnabled(video)
        self.preset.setEnabled(not motion)
        self._retag()
        self._changed()

    def _on_range_mode(self) -> None:
        custom = self.range_mode.currentData() == "custom"
        self.range_a.setEnabled(custom)
        self.range_b.setEnabled(custom)
        if not custom:
            start, end = self.frame_range()
            self._applying, was = True, self._applying
            self.range_a.setValue(start)
            self.range_b.setValue(end)
            self._applying = was
        self._changed()

    def choose_path(self) -> None:
        """Ask for the output file (or folder for PNG) and take its kind from the suffix."""
        path = ask_export_path(self, self.current_kind, Path(self.path.text().strip()))
        if path is None:
            return
        suffix = path.suffix.lower()
        for key, (_label, s) in KINDS.items():
            if s and s == suffix:
                self._select(self.kind, key)
        self.path.setText(str(path))
        self._retag()

    # -------------------------------------------------------------------- validation
    def validate(self) -> bool:
        """Check the fields (plan_export for video/PNG); show warnings and problems inline.
        True when Export can run. Sets ``plan``, ``problem`` and ``warnings``."""
        self._validate_timer.stop()
        self.plan, self.problem, self.warnings = None, None, []
        kind = self.current_kind
        start, end = self.frame_range()
        self.range_label.setText(
            f"{max(0, end - start)} frames of 0:{self.project.duration} (end exclusive)"
        )
        if not self.path.text().strip():
            self.problem = "choose where to write the export"
        elif kind in MOTION_KINDS:
            out = Path(os.path.expanduser(self.path.text().strip()))
            self.problem = _motion_problem(
                self.project, out, (start, end), self.overwrite.isChecked()
            )
        else:
            try:
                if kind in VIDEO_KINDS and self._fps_value() is not None:
                    FrameRate.parse(self._fps_value())  # type: ignore[arg-type]
                self.plan = plan_export(self.project, self.export_settings())
            except ExportError as exc:
                self.problem = _one_line(str(exc))
            except DocumentError as exc:
                self.problem = f"bad frame rate: {_one_line(str(exc))}"
            else:
                self.warnings = list(self.plan.warnings)
                self.problem = self._head_problem(self.plan)
        self._show_validation()
        ok = self.problem is None
        self.export_button.setEnabled(ok and not self.is_running)
        return ok

    def _head_problem(self, plan: ExportPlan) -> str | None:
        if plan.head != "mpi":
            return None
        head = self.project.head
        if head is not None and head.kind == "mpi":
            return None
        import models.heads as heads_pkg

        if getattr(heads_pkg, "bake_mpi", None) is None:
            return "MPI export of a Gaussian head needs MPI baking, which is not available yet"
        return None

    def _show_validation(self) -> None:
        lines = []
        for w in self.warnings:
            lines.append(f"<span style='color:{COLORS['warning']}'>⚠ {_html(w)}</span>")
        if self.problem:
            lines.append(f"<span style='color:{COLORS['error']}'>✖ {_html(self.problem)}</span>")
        self.message.setText("<br>".join(lines))
        self.message.setVisible(bool(lines))
        kind = self.current_kind
        plan = self.plan
        if plan is not None:
            fw, fh = plan.frame_size
            size = f"{'PNG per eye' if kind == 'png' else 'Frame'} {fw} × {fh}"
            if plan.layout == "hsbs" and kind != "png":
                size += f"  (each eye drawn {plan.render_size[0]} wide)"
            self.frame_label.setText(size)
            tag = LAYOUT_TAGS[plan.layout] if kind in VIDEO_KINDS else ""
            where = plan.out.name if str(plan.out) == self.path.text().strip() else str(plan.out)
            self.resolved.setText(
                f"Writes {where}" + (f": the {tag} tag tells VR players the layout" if tag else "")
            )
            bits = [f"{plan.num_frames} frames ({plan.duration_s:.2f} s) at {plan.fps.fps:g} fps"]
            if kind in VIDEO_KINDS:
                bits.append(f"{CODEC_LABELS[plan.codec]} CRF {plan.crf}")
            bits.append("audio" if plan.audio else "no audio")
            self.summary.setText(" · ".join(bits))
        else:
            if kind in MOTION_KINDS:
                self.resolved.setText(f"Writes {self.path.text().strip()}")
                start, end = self.frame_range()
                self.summary.setText(f"{max(0, end - start)} frames of motion, one row per frame")
            else:
                self.resolved.setText("")
                self.summary.setText("")
            self.frame_label.setText("")

    # ------------------------------------------------------------------------ running
    @property
    def is_running(self) -> bool:
        return self.worker is not None

    def start_export(self) -> Worker | ExportProcess | None:
        """Validate and start the export in a worker; None (and a message) if it cannot."""
        if self.is_running or not self.validate():
            return None
        self.save_settings()
        project = snapshot_project(self.project)
        kind = self.current_kind
        if kind in MOTION_KINDS:
            out = Path(os.path.expanduser(self.path.text().strip()))
            worker = Worker(
                motion_job, project, out, self.frame_range(), self.overwrite.isChecked(),
                name=f"Export {out.name}",
            )  # fmt: skip
            title = f"Writing the motion of frames {self.frame_range()[0]}:{self.frame_range()[1]}"
            target = out
        else:
            assert self.plan is not None
            plan = self.plan
            worker = ExportProcess(
                project, self.export_settings(), plan.out, self.controller.path,
                name=f"Export {plan.out.name}",
            )  # fmt: skip
            fw, fh = plan.frame_size
            title = f"Exporting {plan.num_frames} frames, {fw} × {fh}"
            target = plan.out
        self.result_path = None
        self.last_report = None
        self.progress_title.setText(f"{title}\n→ {target}")
        # Not a busy indicator: its animation repaints ~12 times a second, and every repaint of
        # the main window (whose GL viewport makes Qt compose it with OpenGL) costs tens of ms
        # on a software GL, taken from the export starting up.
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_text.setText("Preparing…")
        self.preview.clear()
        self.preview.setText("Preview")
        self._set_running_buttons(True)
        self.pages.setCurrentIndex(1)
        worker.progress.connect(self._on_progress)
        worker.finished_ok.connect(self._on_finished)
        worker.failed.connect(lambda message, _tb: self._report_failure(message))
        worker.cancelled.connect(self._on_cancelled)
        worker.done.connect(self._on_done)
        self.worker = worker
        self.export_button.setEnabled(False)
        self._tracked = False
        if self.worker_status is not None and (not isinstance(worker, ExportProcess)
                                               or not self.isVisible()):  # fmt: skip
            self._track(worker)
        worker.start()
        return worker

    def _track(self, worker: Worker | ExportProcess) -> None:
        # A video export shows in the status bar only once the dialog is hidden: the status
        # bar appearing re-lays out the main window, which resizes and re-renders its GL
        # viewport (up to a second on a software GL), so not while the dialog shows progress.
        if self.worker_status is not None and not self._tracked:
            self._tracked = True
            self.worker_status.track(worker)

    def hideEvent(self, event) -> None:
        if self.worker is not None and self.worker.is_running:
            self._track(self.worker)
        super().hideEvent(event)

    def _set_running_buttons(self, running: bool) -> None:
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.reveal_button.setVisible(not running and self.result_path is not None)
        self.done_button.setVisible(not running)
        self.again_button.setVisible(not running)

    def cancel_export(self) -> None:
        """Stop the running export after the current frame; the partial file is removed."""
        if self.worker is None:
            return
        self.worker.cancel()
        self.cancel_button.setEnabled(False)
        self.progress_text.setText("Cancelling…")

    def _on_progress(self, progress: Progress) -> None:
        update = progress.preview
        if self.worker is None or self.worker.is_cancel_requested:
            return
        if progress.fraction is not None:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(round(progress.fraction * 1000))
        if isinstance(update, ExportUpdate):
            r = update.report
            self.last_report = r
            text = f"Frame {r.frame} / {r.total}"
            if r.frame:
                text += f"    {r.fps:.1f} fps    ETA {format_eta(r.eta_s)}"
            self.progress_text.setText(text)
            if update.thumbnail is not None:
                self._show_thumbnail(update.thumbnail)
        elif progress.text:
            self.progress_text.setText(progress.text)

    def _show_thumbnail(self, thumb: np.ndarray) -> None:
        h, w, _ = thumb.shape
        image = QImage(thumb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        box = self.preview.size() - QSize(2, 2)  # inside the border
        # At most THUMB_WIDTH wide already: scaling (up for small exports) costs microseconds.
        self.preview.setPixmap(
            QPixmap.fromImage(image).scaled(box, Qt.AspectRatioMode.KeepAspectRatio)
        )

    def _on_finished(self, result: object) -> None:
        path = result.path if isinstance(result, ExportProgress) else result
        self.result_path = Path(path) if path is not None else None
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(1000)
        if isinstance(result, ExportProgress):
            self.last_report = result
            self.progress_text.setText(
                f"Done: {result.total} frames in {result.elapsed_s:.1f} s ({result.fps:.1f} fps)"
            )
        else:
            self.progress_text.setText("Done")
        self.progress_title.setText(f"Exported to {self.result_path}")
        self.controller.notify(f"Exported {self.result_path}")
        self.exported.emit(self.result_path)

    def _report_failure(self, message: str) -> None:
        line = _one_line(message) or "unknown error"
        log.warning("export failed: %s", line)
        self.controller.notify(f"Export failed: {line}", "error")
        self.pages.setCurrentIndex(0)  # back to the settings: nothing the user chose is lost
        self.failed.emit(line)
        dialogs.show_error(self, "Export failed", line)

    def _on_cancelled(self) -> None:
        self.controller.notify("Export cancelled; nothing was written", "warning")
        self.pages.setCurrentIndex(0)

    def _on_done(self) -> None:
        self.worker = None
        self._set_running_buttons(False)
        self.validate()

    def show_in_folder(self) -> bool:
        """Open the folder of the exported file in the file manager (False if none opened)."""
        if self.result_path is None:
            return False
        folder = self.result_path if self.result_path.is_dir() else self.result_path.parent
        return open_folder(folder)

    # ------------------------------------------------------------------------ closing
    def reject(self) -> None:
        # Closing during an export hides the dialog; the status bar keeps progress and Cancel.
        if self.is_running and self.worker_status is None:
            self.cancel_export()
        super().reject()

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel a running export and wait for it (closing the studio)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(wait_ms)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------- questions (monkeypatch points)
def ask_export_path(parent: QWidget | None, kind: str, start: Path) -> Path | None:
    """Ask where to export (a file for video/motion, a folder for PNG); None if cancelled."""
    if kind == "png":
        folder = QFileDialog.getExistingDirectory(parent, "Export PNG Sequence To", str(start))
        return Path(folder) if folder else None
    label, suffix = KINDS[kind]
    path, _ = QFileDialog.getSaveFileName(
        parent, "Export To", str(start), f"{label} (*{suffix});;All files (*)"
    )
    if not path:
        return None
    p = Path(path)
    return p if p.suffix else p.with_suffix(suffix)


def open_folder(folder: Path) -> bool:
    """Show ``folder`` in the system file manager; False when there is none (harmless)."""
    return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))))


def make_export_dialog(
    controller: StudioController, parent: QWidget | None = None, **kwargs: Any
) -> ExportDialog:
    """An ExportDialog (a factory so the main window can be tested with a fake)."""
    return ExportDialog(controller, parent, **kwargs)
