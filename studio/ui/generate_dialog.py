"""Animation > Generate from Audio (Ctrl+G) and Regenerate Range: the generation dialog.

The dialog builds a :class:`studio.generation.GenerateRequest` (audio clip or file, whole clip
or the play range, regions, emotion, intensity, limits: the largest head angle and a movement
scale for lips / jaw / brows / eyes, steps, sampler, seed with a dice button, variations,
model, device) and runs it in a child process (:class:`GenerationProcess`,
``python -m studio.generation_child``) on a snapshot of the project saved to a temporary .ths
(takes are immutable, so the snapshot is cheap and the GUI can keep editing). Not a thread:
importing torch, loading the model and the Python-heavy sampling steps hold the GIL for up to
~0.3 s at a time, and the GUI thread stalled behind them (issue 5: no stall over 100 ms during
generation). Every denoising step reports progress (shown at most PROGRESS_INTERVAL_S apart);
Cancel sends SIGINT and the child stops at its next step. Previews of the motion so far (one
per model window: an .npy the child writes holding only the frames that window changed, put
together here in a studio.generation.PreviewBuffer, so a window costs the same at the end of
an hour of audio as at its start) are drawn as a jaw-open curve in the dialog and,
when the viewport has ``set_live_values``, shown on the head at the current frame. The result
(a small project file with the new takes) arrives as new take(s) through one undoable
CompoundEdit (studio.generation.generation_edit), with a line in the log.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
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
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from models.motion_space import CHANNEL_INDEX, EMOTIONS, JAW_OPEN_CHANNEL
from studio.document import Project
from studio.generation import (
    LIMIT_REGIONS,
    MAX_REGION_SCALE,
    REGIONS,
    GenerateRequest,
    GenerationResult,
    PreviewBuffer,
    default_model_available,
    generation_edit,
    intensity_model_available,
    iter_generate,
)
from studio.generation_child import load_result, request_to_json
from studio.project_ops import snapshot_project
from studio.ui import dialogs
from studio.ui.controller import StudioController
from studio.ui.style import COLORS
from studio.workers import Progress, WorkerStatus
from studio.workers.process import ChildProcess, first_line

__all__ = [
    "GenerateDialog",
    "GenerationProcess",
    "JawPreview",
    "ask_model_folder",
    "generation_command",
    "generation_job",
]

_REGION_TEXT = {
    "lips": "Lips",
    "eyes": "Eyes",
    "brows": "Brows",
    "pose": "Head pose",
    "expression": "Whole expression",
}
_FILE = "__file__"
_FOLDER = "__folder__"
CHILD_NICE = 5  # the generation child yields the CPU to the studio (2-core machines)
# Torch threads in the child; 0: one core fewer than the machine has (at least one). Torch's
# own choice (every core, OpenMP threads that spin while they wait) left a 2-core machine no
# core for the GUI thread and the software GL that draws the previews on the head.
CHILD_TORCH_THREADS = 0


def generation_job(project: Project, request: GenerateRequest):
    """Worker job (Qt-free): yields studio.workers Progress (``preview``: ``(values [F, 90],
    start frame, notices)`` or None; the values are a tail, see
    studio.generation.GenerationProgress) and returns the GenerationResult."""
    result = None
    for ev in iter_generate(project, request):
        if ev.result is not None:
            result = ev.result
            break
        preview = None if ev.preview is None else (ev.preview, ev.preview_start, ev.notices)
        if preview is None and ev.notices:
            preview = (None, 0, ev.notices)
        yield Progress(ev.fraction, ev.text, preview)
    return result


def merge_tails(
    old: tuple[np.ndarray, int] | None, new: tuple[np.ndarray, int] | None
) -> tuple[np.ndarray, int] | None:
    """Two preview tails ``(values [F, C], start frame)`` as one, ``new`` over ``old`` (frames
    that neither covers, never the case for consecutive tails, are NaN)."""
    if old is None or new is None:
        return new if old is None else old
    (va, sa), (vb, sb) = old, new
    if sb <= sa and sb + vb.shape[0] >= sa + va.shape[0]:
        return new
    start = min(sa, sb)
    end = max(sa + va.shape[0], sb + vb.shape[0])
    out = np.full((end - start, vb.shape[1]), np.nan, dtype=np.result_type(va, vb))
    out[sa - start : sa - start + va.shape[0]] = va
    out[sb - start : sb - start + vb.shape[0]] = vb
    return out, start


def generation_command(snapshot: Path, request_file: Path, out_dir: Path) -> tuple[str, list[str]]:
    """(program, arguments) of the generation child process (studio.generation_child); a
    function so tests can substitute a failing or crashing child."""
    args = ["-m", "studio.generation_child", str(snapshot), str(request_file),
            "--out-dir", str(out_dir), "--nice", str(CHILD_NICE),
            "--threads", str(CHILD_TORCH_THREADS or max(1, (os.cpu_count() or 2) - 1))]  # fmt: skip
    return sys.executable, args


class GenerationProcess(ChildProcess):
    """One generation in a child process (``python -m studio.generation_child``), with the
    interface of :class:`studio.workers.Worker` that the dialog and the status bar use (see
    :class:`studio.workers.process.ChildProcess`).

    ``start`` saves ``project`` (a snapshot) and the request to a temporary folder in a Python
    thread, then starts the child. Its JSON lines become ``progress`` reports shaped as
    :func:`generation_job`'s: ``Progress(fraction, text, (values [F, 90] | None, start frame,
    notices))``, the values a preview tail; reports that arrive together or within the rate
    limit are coalesced (the newest text; their tails merged, newer over older, see
    :func:`merge_tails`; no notice is dropped). Each tail file is deleted once read.
    ``finished_ok`` carries the GenerationResult read from the child's result file.
    ``cancel`` sends SIGINT (the child stops at its next step); ``failed`` carries the child's
    one-line error, or "the generation process stopped unexpectedly" with the last line of its
    stderr (the whole tail goes to the log). The temporary folder (snapshot, previews, result)
    is removed at the end.
    """

    what = "generation"
    temp_prefix = "ths-generate-"

    def __init__(
        self, project: Project, request: GenerateRequest, *, name: str = "Generate motion"
    ) -> None:
        super().__init__(name=name)
        self._project = project
        self._request = request

    def write_inputs(self, folder: Path) -> None:  # the saver thread
        self.save_snapshot_and_json(
            folder, self._project, "request.json", request_to_json(self._request)
        )

    def command(self, folder: Path) -> tuple[str, list[str]]:
        return generation_command(folder / "snapshot.ths", folder / "request.json", folder)

    def handle_lines(self, messages: list[dict[str, Any]]) -> Progress | None:
        latest: dict[str, Any] | None = None
        tail: tuple[np.ndarray, int] | None = None
        notices: list[str] = []
        for msg in messages:
            if "error" in msg:
                self.error = str(msg["error"])
            elif msg.get("done"):
                self._read_result(msg)
            elif "step" in msg:
                latest = msg
                notices += [str(n) for n in msg.get("notices") or ()]
                if msg.get("preview"):  # every tail, in order: each holds frames the next lacks
                    tail = merge_tails(tail, self._read_tail(msg))
        if latest is None or self.is_cancel_requested:
            return None
        held = self.pending.preview if self.pending is not None else None
        if held is not None:  # a report not shown yet: keep its preview and notices
            old = None if held[0] is None else (held[0], held[1])
            tail = merge_tails(old, tail)
            notices = [*held[2], *notices]
        values, start = (None, 0) if tail is None else tail
        step, total = int(latest.get("step", 0)), int(latest.get("total", 1))
        fraction = min(1.0, step / max(1, total))
        extra = None if values is None and not notices else (values, start, tuple(notices))
        return Progress(fraction, str(latest.get("text", "")), extra)

    def _read_tail(self, msg: dict[str, Any]) -> tuple[np.ndarray, int] | None:
        """The preview tail a step line names (deleted once read), or None."""
        if self.folder is None:
            return None
        path = self.folder / Path(str(msg["preview"])).name
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # removed at the end of the job: the result follows
        with contextlib.suppress(OSError):
            path.unlink()
        return values, int(msg.get("preview_start", 0))

    def _read_result(self, msg: dict[str, Any]) -> None:
        assert self.folder is not None
        try:
            self.result = load_result(self.folder / Path(str(msg["result"])).name, msg)
        except Exception as exc:  # ProjectFileError, OSError, KeyError: one line for the user
            self.error = f"cannot read the generated motion: {first_line(str(exc)) or exc!r}"


def ask_model_folder(parent: QWidget | None) -> Path | None:
    """Ask for a motion model folder (config.json + safetensors); None if cancelled."""
    path = QFileDialog.getExistingDirectory(parent, "Motion model folder")
    return Path(path) if path else None


def _dice_icon(size: int = 32) -> QIcon:
    """A die showing five, painted (no emoji font needed)."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = QColor(COLORS["icon"])
    p.setPen(QPen(color, size / 16))
    m = size * 0.12
    p.drawRoundedRect(QRectF(m, m, size - 2 * m, size - 2 * m), size * 0.18, size * 0.18)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(color)
    r = size * 0.075
    for fx, fy in ((0.32, 0.32), (0.68, 0.32), (0.5, 0.5), (0.32, 0.68), (0.68, 0.68)):
        p.drawEllipse(QPointF(fx * size, fy * size), r, r)
    p.end()
    return QIcon(pix)


class JawPreview(QWidget):
    """A small plot of the jaw opening (``exp_19_y``) of the preview over the generated frames."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("jaw_preview")
        self.setMinimumHeight(64)
        self.setToolTip("Jaw opening of the motion generated so far")
        self._values: np.ndarray | None = None
        self._frames = 1

    def sizeHint(self) -> QSize:
        return QSize(360, 72)

    def set_range(self, frames: int) -> None:
        self._frames = max(1, int(frames))
        self.update()

    def set_values(self, jaw: np.ndarray | None) -> None:
        self._values = None if jaw is None else np.asarray(jaw, dtype=np.float64)
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.rect().adjusted(1, 1, -1, -1)
        p.fillRect(r, QColor(COLORS["base"]))
        p.setPen(QPen(QColor(COLORS["border"])))
        p.drawRect(r)
        p.setPen(QColor(COLORS["text_dim"]))
        p.drawText(r.adjusted(6, 4, -6, -4), Qt.AlignmentFlag.AlignLeft, "jaw open")
        v = self._values
        if v is None or v.size == 0:
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "preview appears while generating")
            return
        finite = v[np.isfinite(v)]
        top = max(0.05, float(finite.max(initial=0.0)))
        bottom = min(0.0, float(finite.min(initial=0.0)))
        w, h = r.width() - 8, r.height() - 20
        # At most two points per pixel: a long take must not cost a path of 90k points.
        idx = np.arange(v.size)
        if v.size > 2 * max(1, w):
            idx = np.unique(np.linspace(0, v.size - 1, 2 * max(1, w)).astype(int))
        path = QPainterPath()
        pen_down = False
        for i in idx:
            y = float(v[i])
            if not np.isfinite(y):  # frames no preview reached yet
                pen_down = False
                continue
            x = r.left() + 4 + w * int(i) / max(1, self._frames - 1)
            yy = r.bottom() - 4 - h * (y - bottom) / (top - bottom)
            path.lineTo(QPointF(x, yy)) if pen_down else path.moveTo(QPointF(x, yy))
            pen_down = True
        p.setPen(QPen(QColor(COLORS["accent"]), 1.5))
        p.drawPath(path)


class GenerateDialog(QDialog):
    """Generate take(s) from audio. ``frame_range`` prefills the range (Regenerate Range);
    ``viewport``: a widget with ``set_live_values`` to show previews on the head (optional);
    ``device``: the Preferences device ("auto" | "cpu" | "gpu"); ``worker_status``: the status
    bar indicator that also tracks the job.

    Signals: ``generated(list)`` the new take ids after the edit was pushed.
    """

    generated = Signal(list)

    def __init__(
        self,
        controller: StudioController,
        parent: QWidget | None = None,
        *,
        frame_range: tuple[int, int] | None = None,
        viewport: Any = None,
        device: str = "auto",
        worker_status: WorkerStatus | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("GenerateDialog")
        self.setWindowTitle("Generate from Audio")
        self.controller = controller
        self.viewport = viewport if hasattr(viewport, "set_live_values") else None
        self.worker_status = worker_status
        self.worker: GenerationProcess | None = None
        self._tracked = False
        self.result: GenerationResult | None = None
        self._audio_file: Path | None = None
        self._model_folder: Path | None = None
        self._noticed: set[str] = set()
        self._preview_range: tuple[int, int] | None = None
        self._preview_buf = PreviewBuffer()  # the preview tails so far, by project frame
        self._head_shown: np.ndarray | None = None  # the pose last shown on the viewport
        self._build(device)
        self.refresh(frame_range)

    # ----------------------------------------------------------------------------- layout
    def _build(self, device: str) -> None:
        layout = QVBoxLayout(self)
        layout.setSpacing(10)

        src = QGroupBox("Source")
        form = QFormLayout(src)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.audio = QComboBox()
        self.audio.setObjectName("audio_source")
        self.audio.setToolTip("The speech that drives the motion")
        self.audio.activated.connect(self._on_audio_chosen)
        form.addRow("Audio", self.audio)
        range_row = QHBoxLayout()
        self.whole = QRadioButton("Whole clip")
        self.ranged = QRadioButton("Play range")
        self.ranged.setToolTip("Regenerate only these frames; the rest of the take is kept")
        group = QButtonGroup(self)
        group.addButton(self.whole)
        group.addButton(self.ranged)
        self.range_a = QSpinBox()
        self.range_b = QSpinBox()
        for spin in (self.range_a, self.range_b):
            spin.setRange(0, 10_000_000)
            spin.setMinimumWidth(72)
        self.range_b.setToolTip("Last frame (inclusive)")
        range_row.addWidget(self.whole)
        range_row.addSpacing(8)
        range_row.addWidget(self.ranged)
        range_row.addWidget(self.range_a)
        range_row.addWidget(QLabel("–"))
        range_row.addWidget(self.range_b)
        range_row.addStretch(1)
        self.whole.toggled.connect(self._update_enabled)
        form.addRow("Frames", range_row)
        layout.addWidget(src)

        what = QGroupBox("What to generate")
        grid = QGridLayout(what)
        self.regions: dict[str, QCheckBox] = {}
        for i, r in enumerate(REGIONS):
            box = QCheckBox(_REGION_TEXT[r])
            box.setObjectName(f"region_{r}")
            box.setChecked(True)
            box.toggled.connect(self._update_enabled)
            self.regions[r] = box
            grid.addWidget(box, i // 3, i % 3)
        self.regions["expression"].setToolTip(
            "Every expression keypoint (includes lips, eyes and brows)"
        )
        self.emotion = QComboBox()
        self.emotion.setObjectName("emotion")
        self.emotion.addItem("From the emotion curve", None)
        for e in EMOTIONS:
            self.emotion.addItem(e.capitalize(), e)
        self.intensity = QComboBox()
        self.intensity.addItem("From the intensity curve", "curve")
        self.intensity.addItem("From audio (A2I model)", "audio")
        if not intensity_model_available():
            self.intensity.model().item(1).setEnabled(False)
            self.intensity.setToolTip("No A2I intensity model is installed")
        grid.addWidget(QLabel("Emotion"), 2, 0)
        grid.addWidget(self.emotion, 2, 1, 1, 2)
        grid.addWidget(QLabel("Intensity"), 3, 0)
        grid.addWidget(self.intensity, 3, 1, 1, 2)
        layout.addWidget(what)
        layout.addWidget(self._build_limits())

        samp = QGroupBox("Sampling")
        form2 = QFormLayout(samp)
        form2.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.model = QComboBox()
        self.model.setObjectName("model")
        if default_model_available():
            self.model.addItem("Default (shipped model)", "default")
        else:
            self.model.addItem("Default (not installed: procedural)", "default")
        self.model.addItem("Procedural (no neural model)", "procedural")
        self.model.addItem("Model folder…", _FOLDER)
        self.model.activated.connect(self._on_model_chosen)
        form2.addRow("Model", self.model)
        steps_row = QHBoxLayout()
        self.steps = QSpinBox()
        self.steps.setObjectName("steps")
        self.steps.setRange(1, 200)
        self.steps.setValue(10)
        self.steps.setToolTip("Denoising steps: 10 is fast, 50 a little cleaner")
        self.sampler = QComboBox()
        self.sampler.addItem("DDIM", "ddim")
        self.sampler.addItem("LCM", "lcm")
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 10.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setValue(2.0)
        self.guidance.setToolTip("Classifier-free guidance: higher follows the audio more")
        steps_row.addWidget(self.steps)
        steps_row.addWidget(self.sampler)
        steps_row.addWidget(QLabel("Guidance"))
        steps_row.addWidget(self.guidance)
        steps_row.addStretch(1)
        form2.addRow("Steps", steps_row)
        seed_row = QHBoxLayout()
        self.seed = QSpinBox()
        self.seed.setObjectName("seed")
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setMinimumWidth(110)
        self.dice = QToolButton()
        self.dice.setObjectName("dice")
        self.dice.setIcon(_dice_icon())
        self.dice.setToolTip("A random seed")
        self.dice.clicked.connect(lambda: self.seed.setValue(random.randrange(0, 2**31 - 1)))
        self.variations = QSpinBox()
        self.variations.setObjectName("variations")
        self.variations.setRange(1, 8)
        self.variations.setToolTip("How many takes to generate (each a different sample)")
        seed_row.addWidget(self.seed)
        seed_row.addWidget(self.dice)
        seed_row.addSpacing(12)
        seed_row.addWidget(QLabel("Variations"))
        seed_row.addWidget(self.variations)
        seed_row.addStretch(1)
        form2.addRow("Seed", seed_row)
        self.ic_init = QCheckBox("Consistent segments (IC-Init, slower)")
        self.ic_init.setObjectName("ic_init")
        self.ic_init.setToolTip(
            "Search each window's starting noise for one that continues the motion before it "
            "(ConsistTalk's IC-Init): 30 DDIM steps and 4 candidates per window, several times "
            "slower; DDIM only"
        )
        form2.addRow("", self.ic_init)
        self.device = QComboBox()
        self.device.addItem("Automatic (GPU when available)", "auto")
        self.device.addItem("CPU", "cpu")
        self.device.addItem("GPU (CUDA)", "cuda")
        self.device.setCurrentIndex(
            max(0, self.device.findData("cuda" if device == "gpu" else device))
        )
        form2.addRow("Device", self.device)
        layout.addWidget(samp)

        self.preview = JawPreview()
        layout.addWidget(self.preview)
        self.progress = QProgressBar()
        self.progress.setObjectName("generate_progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(12)
        layout.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setObjectName("generate_status")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(f"color: {COLORS['text_dim']}")
        layout.addWidget(self.status)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generate_button")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self.setMinimumWidth(480)

    def _build_limits(self) -> QGroupBox:
        """Magnitude limits on the generated motion (studio.generation.MotionLimits)."""
        box = QGroupBox("Limits")
        box.setObjectName("limits")
        grid = QGridLayout(box)
        self.max_angle = QDoubleSpinBox()
        self.max_angle.setObjectName("max_angle")
        self.max_angle.setRange(0.0, 90.0)
        self.max_angle.setDecimals(1)
        self.max_angle.setSingleStep(1.0)
        self.max_angle.setSuffix("°")
        self.max_angle.setSpecialValueText("No limit")  # shown at 0
        self.max_angle.setToolTip(
            "Largest head pitch, yaw and roll, in degrees either way (No limit: as generated)"
        )
        grid.addWidget(QLabel("Head angle ±"), 0, 0)
        grid.addWidget(self.max_angle, 0, 1, 1, 2)
        self.region_scale: dict[str, QDoubleSpinBox] = {}
        for i, r in enumerate(LIMIT_REGIONS):
            spin = QDoubleSpinBox()
            spin.setObjectName(f"scale_{r}")
            spin.setRange(0.0, MAX_REGION_SCALE)
            spin.setDecimals(2)
            spin.setSingleStep(0.1)
            spin.setValue(1.0)
            spin.setSuffix("×")
            spin.setToolTip(
                f"Scale the {r} movement relative to the face before it: 0 holds it still, "
                "1 as generated, 2 doubles it"
            )
            grid.addWidget(QLabel(r.capitalize()), 1 + i // 2, 2 * (i % 2))
            grid.addWidget(spin, 1 + i // 2, 2 * (i % 2) + 1)
            self.region_scale[r] = spin
        return box

    # ------------------------------------------------------------------------------ state
    @property
    def is_running(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def refresh(self, frame_range: tuple[int, int] | None = None) -> None:
        """Refill from the project: clips, the play range (``frame_range`` selects "Play
        range" with these frames; None selects the whole clip)."""
        project = self.controller.project
        current = self.audio.currentData()
        self.audio.clear()
        for clip in project.audio_clips:
            self.audio.addItem(f"{clip.name} (at frame {clip.offset})", clip.id)
        if self._audio_file is not None:
            self.audio.addItem(self._audio_file.name, str(self._audio_file))
        self.audio.addItem("Audio file…", _FILE)
        i = self.audio.findData(current) if current is not None else -1
        self.audio.setCurrentIndex(i if i >= 0 else 0)
        a, b = frame_range if frame_range is not None else self.controller.play_range
        self.range_a.setValue(int(a))
        self.range_b.setValue(int(b) - 1)
        (self.ranged if frame_range is not None else self.whole).setChecked(True)
        self.setWindowTitle(
            "Regenerate Range" if frame_range is not None else "Generate from Audio"
        )
        self.preview.set_values(None)
        self._update_enabled()

    def _update_enabled(self) -> None:
        running = self.is_running
        any_region = any(b.isChecked() for b in self.regions.values())
        has_audio = self.audio.currentData() not in (None, _FILE)
        for w in (self.range_a, self.range_b):
            w.setEnabled(self.ranged.isChecked() and not running)
        self.generate_button.setEnabled(not running and any_region and has_audio)
        self.cancel_button.setEnabled(running)
        why = ""
        if not has_audio:
            why = "The project has no audio: choose an audio file."
        elif not any_region:
            why = "Choose at least one region to generate."
        if not running and why:
            self.status.setText(why)

    def _on_audio_chosen(self, index: int) -> None:
        if self.audio.itemData(index) != _FILE:
            self._update_enabled()
            return
        path = dialogs.ask_audio_path(self)
        if path:
            self._audio_file = Path(path)
            self.refresh(self.frame_range())
            self.audio.setCurrentIndex(self.audio.findData(str(self._audio_file)))
        else:
            self.audio.setCurrentIndex(0)
        self._update_enabled()

    def _on_model_chosen(self, index: int) -> None:
        if self.model.itemData(index) != _FOLDER:
            return
        path = ask_model_folder(self)
        if path:
            self._model_folder = Path(path)
            self.model.insertItem(index, f"Folder: {self._model_folder.name}", str(path))
            self.model.setCurrentIndex(index)
        else:
            self.model.setCurrentIndex(0)

    def frame_range(self) -> tuple[int, int] | None:
        if not self.ranged.isChecked():
            return None
        a, b = self.range_a.value(), self.range_b.value() + 1
        return (a, max(b, a + 1))

    def request(self) -> GenerateRequest:
        """The request the widgets describe."""
        regions = [r for r, b in self.regions.items() if b.isChecked()]
        return GenerateRequest(
            audio=self.audio.currentData(),
            frame_range=self.frame_range(),
            regions=None if len(regions) == len(REGIONS) else regions,
            emotion=self.emotion.currentData(),
            intensity=self.intensity.currentData(),
            steps=self.steps.value(),
            sampler=self.sampler.currentData(),
            guidance=self.guidance.value(),
            seed=self.seed.value(),
            variations=self.variations.value(),
            model=self.model.currentData(),
            device=self.device.currentData(),
            ic_init=self.ic_init.isChecked(),
            max_angle=self.max_angle.value() or None,
            region_scale={
                r: spin.value() for r, spin in self.region_scale.items() if spin.value() != 1.0
            }
            or None,
        )

    def set_model(self, spec: str | Path) -> None:
        """Select a model: "default", "procedural" or a folder (added to the list)."""
        i = self.model.findData(str(spec))
        if i < 0:
            i = self.model.count() - 1
            self.model.insertItem(i, f"Folder: {Path(spec).name}", str(spec))
        self.model.setCurrentIndex(i)

    # ------------------------------------------------------------------------------- run
    def start(self) -> GenerationProcess | None:
        """Start generating in a child process (no-op while running)."""
        if self.is_running:
            return None
        try:
            request = self.request().validated()
        except ValueError as exc:
            self.status.setText(str(exc))
            return None
        project = self.controller.project
        fr = request.frame_range
        self.preview.set_range((fr[1] - fr[0]) if fr else project.duration)
        self.preview.set_values(None)
        self._preview_range = fr
        self._preview_buf.clear()
        self._head_shown = None
        self.result = None
        self._noticed = set()
        self.progress.setValue(0)
        self.status.setText("Starting…")
        worker = GenerationProcess(snapshot_project(project), request, name="Generate motion")
        worker.progress.connect(self._on_progress)
        worker.finished_ok.connect(self._on_result)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        worker.done.connect(self._on_done)
        self.worker = worker
        self._tracked = False
        if not self.isVisible():
            self._track(worker)
        worker.start()
        self._update_enabled()
        return worker

    def _track(self, worker: GenerationProcess) -> None:
        # The job shows in the status bar only once the dialog is hidden (the dialog has its
        # own progress and Cancel): the status bar appearing re-lays out the main window, which
        # resizes and re-renders its GL viewport in the GUI thread (up to a second on a
        # software GL), as studio.ui.export_dialog found.
        if self.worker_status is not None and not self._tracked:
            self._tracked = True
            self.worker_status.track(worker)

    def hideEvent(self, event) -> None:
        if self.worker is not None and self.worker.is_running:
            self._track(self.worker)
        super().hideEvent(event)

    def cancel(self) -> None:
        """Stop the running job at its next step."""
        if self.worker is not None and self.worker.is_running:
            self.worker.cancel()
            self.status.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def _on_progress(self, report: Progress) -> None:
        if report.fraction is not None:
            self.progress.setValue(round(report.fraction * 1000))
        if report.text:
            self.status.setText(report.text)
        if report.preview is None:
            return
        tail, tail_start, notices = report.preview
        for note in notices:
            self._notice(note)
        if tail is None:
            return
        # The child sends only the frames each window changed (O(window) however long the
        # audio); they are assembled here.
        self._preview_buf.add(tail, tail_start)
        values, start = self._preview_buf.values, self._preview_buf.start
        fr = self._preview_range
        jaw = values[:, CHANNEL_INDEX[JAW_OPEN_CHANNEL]]
        if fr is not None:  # show the range only
            jaw = jaw[max(0, fr[0] - start) : max(0, fr[1] - start)]
        self.preview.set_values(jaw)
        if self.viewport is not None:
            f = self.controller.frame - start
            # Only a changed pose is drawn: each head redraw is 0.1-0.4 s of the GUI thread on
            # a software GL, and a later window's preview leaves the frames before its overlap
            # (the current frame, usually) exactly as they were.
            if (
                0 <= f < values.shape[0]
                and np.isfinite(values[f]).all()
                and not np.array_equal(values[f], self._head_shown)
            ):
                try:
                    self.viewport.set_live_values(values[f])
                    self._head_shown = np.array(values[f])
                except ValueError:
                    pass

    def _on_result(self, result: GenerationResult) -> None:
        self.result = result
        c = self.controller
        edit = generation_edit(c.project, result)
        if not c.push(edit):
            self.status.setText("The takes could not be added (see the log)")
            return
        a, b = result.frame_range
        names = ", ".join(t.name for t in result.takes)
        c.notify(
            f"Generated {names}: frames {a}–{b - 1} with the {result.model} model on "
            f"{result.device}"
        )
        for note in result.notices:
            self._notice(note)
        self.progress.setValue(1000)
        self.status.setText(
            f"Added {names}" + (f" — {result.notices[-1]}" if result.notices else "")
        )
        self.generated.emit([t.id for t in result.takes])

    def _notice(self, note: str) -> None:
        """A notice (model fallback, silent audio, CPU retry) in the log, once per run."""
        if note not in self._noticed:
            self._noticed.add(note)
            self.controller.notify(f"Generate: {note}", "warning")

    def _on_failed(self, message: str, _tb: str) -> None:
        self.status.setText(f"Failed: {message}")
        self.controller.notify(f"Generate from audio: {message}", "error")

    def _on_cancelled(self) -> None:
        self.progress.setValue(0)
        self.status.setText("Cancelled: nothing was added")
        self.controller.notify("Generate from audio: cancelled", "warning")

    def _on_done(self) -> None:
        if self.viewport is not None:
            self.viewport.set_live_values(None)
        self._head_shown = None
        self.worker = None
        self._update_enabled()

    # --------------------------------------------------------------------------- closing
    def shutdown(self) -> None:
        """Cancel a running job and wait for it (window closing)."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(5000)
