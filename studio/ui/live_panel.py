"""The Live panel: webcam (or video / image folder) driven reenactment of the project's head.

Choose a source and press Start: a :class:`~studio.ui.live_session.LiveSession` reads it and
tracks the face in its own thread; the panel shows the newest frame with the tracked landmarks,
the frame rates and latency, how many faces are in view and what the tracker is doing, and the
viewport's head follows the performer (``ViewportWidget.set_live_values``; the viewport's view
mode, mono or stereo, applies). Calibrate captures the performer's neutral face after a
countdown and saves it as a PerformerProfile (JSON, in the config folder's ``performers``),
selectable later. Per-region switches and gains, smoothing, relative/absolute pose and mirror
apply from the next frame. Record records the tracked motion (every frame, in the capture
thread) into a new take at the project's frame rate, starting at the current frame, with the
microphone when there is one, as one undoable edit. Virtual camera sends the viewport's frames
to pyvirtualcam.

"Lips from audio" (hybrid mode, models.hybrid): the camera drives head, eyes and brows while the
speech generator (the shipped motion model in streaming mode; the procedural one when no model
loads) drives the lips, from the microphone when one exists, else from the project's audio,
played (when there is an output device) from the playhead in sync with the live head. A
recording in hybrid mode gets the combined motion: tracked channels plus the lips generated
from the take's own audio (the microphone's recording, or the project's audio from the take's
first frame).

Questions to the user go through module-level functions (``ask_video_path``...) that tests
monkeypatch.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.ui.controller import StudioController
from studio.ui.live_session import (
    FEED_CONTOURS,
    FEED_IRIS_COLOR,
    LIVE_TRACKING,
    VIRTUALCAM_HELP,
    AudioInputUnavailable,
    LiveFrame,
    LiveSession,
    MicRecorder,
    Recording,
    VirtualCamera,
    VirtualCameraUnavailable,
    build_take_job,
    fps_of,
    safe_name,
)
from studio.ui.style import COLORS

if TYPE_CHECKING:
    from models.face.sources import FrameSource
    from models.face.tracker import FaceTracker, PerformerProfile, TrackerSettings
    from studio.document import Take

__all__ = [
    "CALIBRATION_FRAMES",
    "HYBRID_TIP",
    "REGIONS",
    "FeedView",
    "LivePanel",
    "ask_profile_path",
    "ask_video_folder",
    "ask_video_path",
    "profiles_dir",
    "virtualcam_missing",
]

log = logging.getLogger(__name__)

# Delay before a shown panel starts its spare tracking process (a panel shown only briefly, or
# started at once, spawns nothing extra).
PREWARM_DELAY_MS = 1500

REGIONS = ("head", "eyes", "brows", "mouth")
CALIBRATION_FRAMES = 30
COUNTDOWN_S = 3
RESOLUTIONS = ((0, 0), (640, 480), (1280, 720), (1920, 1080))
CAMERA_FPS = (0, 15, 24, 30, 60)
HYBRID_TIP = (
    "Hybrid mode: the camera drives head, eyes and brows while the speech generator drives the "
    "lips, from the microphone when there is one, else from the project's audio played from "
    "the playhead. Recorded takes get the combined motion."
)
READOUT_S = 0.25  # fps / latency readouts refresh this often while live
HYBRID_HOP = 20  # live lip frames per model window: 0.8 s behind the microphone
VIDEO_FILTER = "Videos (*.mp4 *.mov *.mkv *.avi *.webm *.m4v);;All files (*)"

_CONTOURS = FEED_CONTOURS  # drawn over the feed (see live_session.draw_landmarks)


# ----------------------------------------------------------------------------- questions
def ask_video_path(parent: QWidget | None) -> Path | None:
    """Ask for a video file to drive the head (None when cancelled)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Drive the head with a video", "", VIDEO_FILTER)
    return Path(path) if path else None


def ask_video_folder(parent: QWidget | None) -> Path | None:
    """Ask for a folder of images (a frame sequence) to drive the head."""
    path = QFileDialog.getExistingDirectory(parent, "Drive the head with an image folder")
    return Path(path) if path else None


def ask_profile_path(parent: QWidget | None, start: Path | None = None) -> Path | None:
    """Ask for a performer profile (.json) to load."""
    path, _ = QFileDialog.getOpenFileName(
        parent, "Load a performer profile", str(start or ""), "Performer profiles (*.json)"
    )
    return Path(path) if path else None


def profiles_dir() -> Path:
    """Where calibrated performer profiles are saved: ``<config folder>/performers``."""
    from studio.ui.dialogs import settings_path

    return settings_path().parent / "performers"


def virtualcam_missing() -> str | None:
    """Why the virtual camera cannot work (pyvirtualcam not installed), or None."""
    if importlib.util.find_spec("pyvirtualcam") is None:
        return f"{VIRTUALCAM_HELP}: pyvirtualcam is not installed"
    return None


def _default_tracker(settings: TrackerSettings, profile: PerformerProfile | None) -> FaceTracker:
    from models.face.tracker import FaceTracker

    return FaceTracker(settings=settings, profile=profile, num_threads=2)


def _smoothing_cutoff(strength: int) -> float:
    """Slider 1..100 -> One-Euro min_cutoff in Hz (8 Hz: light, 0.05 Hz: very smooth)."""
    return float(8.0 * (0.05 / 8.0) ** (strength / 100.0))


# ----------------------------------------------------------------------------- the feed
class FeedView(QWidget):
    """The source's newest frame, fitted with its aspect ratio, with the tracked landmarks
    (mesh points, contours, irises), the recording mark and a large centred message
    (countdown, "no camera"...). ``drawn`` is (frame index, perf_counter) of the last paint."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("live_feed")
        self.setMinimumSize(200, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.frame: LiveFrame | None = None
        self._image: QImage | None = None
        self.message = "Choose a source and press Start"
        self.overlay = ""  # large text over the picture (countdown)
        self.rec_text = ""
        self.show_landmarks = True
        self.drawn: tuple[int, float] | None = None

    def set_frame(self, frame: LiveFrame | None) -> None:
        self.frame = frame
        if frame is None:
            self._image = None
        else:
            a = frame.preview
            h, w = a.shape[:2]
            # QImage over the array's memory: the LiveFrame keeps the array alive.
            self._image = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888)
        self.update()

    def image_rect(self) -> QRectF:
        """Where the picture is drawn (widget coordinates); empty without a picture."""
        if self._image is None:
            return QRectF()
        w, h = self._image.width(), self._image.height()
        s = min(self.width() / max(w, 1), self.height() / max(h, 1))
        return QRectF((self.width() - w * s) / 2, (self.height() - h * s) / 2, w * s, h * s)

    def paintEvent(self, event: Any) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#111214"))
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        frame = self.frame
        if self._image is not None and frame is not None:
            r = self.image_rect()
            p.drawImage(r, self._image)
            if not frame.tracked.found:
                p.fillRect(r, QColor(0, 0, 0, 90))
            # Usually drawn into the picture by the capture thread already (frame.overlay).
            if self.show_landmarks and frame.points is not None and not frame.overlay:
                self._paint_landmarks(p, r, frame)
            self.drawn = (frame.index, time.perf_counter())
        elif self.message:
            p.setPen(QColor(COLORS["text_dim"]))
            p.drawText(self.rect().adjusted(16, 16, -16, -16),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.message)  # fmt: skip
        if self.rec_text:
            f = QFont(p.font())
            f.setBold(True)
            p.setFont(f)
            fm = p.fontMetrics()
            box = QRectF(8, 8, fm.horizontalAdvance(self.rec_text) + 30, fm.height() + 8)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 150))
            p.drawRoundedRect(box, 4, 4)
            p.setBrush(QColor(COLORS["error"]))
            p.drawEllipse(QPointF(box.left() + 12, box.center().y()), 5, 5)
            p.setPen(QColor("#f4f4f6"))
            p.drawText(box.adjusted(22, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, self.rec_text)
        if self.overlay:
            f = QFont(p.font())
            f.setPointSizeF(max(f.pointSizeF() * 1.4, 11.0))
            f.setBold(True)
            p.setFont(f)
            fm = p.fontMetrics()
            area = self.rect().adjusted(12, 12, -12, -12)
            br = fm.boundingRect(area, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                                 self.overlay)  # fmt: skip
            box = QRectF(br).adjusted(-12, -8, 12, 8)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 170))
            p.drawRoundedRect(box, 6, 6)
            p.setPen(QColor("#ffffff"))
            p.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.overlay)
        p.end()

    def _paint_landmarks(self, p: QPainter, r: QRectF, frame: LiveFrame) -> None:
        h, w = frame.preview.shape[:2]
        sx, sy = r.width() / w, r.height() / h
        pts = frame.points * (sx, sy) + (r.left(), r.top())  # [468, 2] widget pixels
        qpts = [QPointF(x, y) for x, y in pts]
        # Painted every live frame, so kept cheap (the live viewport needs the time): the 468
        # points in one aliased call, the contours as polygons (not paths).
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        p.setPen(QPen(QColor(255, 255, 255, 110), 2.0 if r.width() < 500 else 3.0))
        p.drawPoints(QPolygonF(qpts))
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setBrush(Qt.BrushStyle.NoBrush)
        for idx, closed, color in _CONTOURS:
            poly = QPolygonF([qpts[i] for i in idx])
            p.setPen(QPen(QColor(color), 1.4))
            if closed:
                p.drawPolygon(poly)
            else:
                p.drawPolyline(poly)
        if frame.iris is not None:
            iris = frame.iris * (sx, sy) + (r.left(), r.top())  # [2, 5, 2]
            p.setPen(QPen(QColor(FEED_IRIS_COLOR), 1.4))
            for eye in iris:
                c = eye[0]
                rr = float(np.mean(np.linalg.norm(eye[1:] - c, axis=1)))
                p.drawEllipse(QPointF(*c), rr, rr)


# ----------------------------------------------------------------------------- the panel
class LivePanel(QWidget):
    """The Live dock (see the module docstring). ``controller``: StudioController.

    Signals: ``takeRecorded(object)`` a take was added (the Take); ``statusChanged(str)`` the
    status line changed. Test hooks: ``pace`` (pace files at their frame rate),
    ``countdown_s``, ``calibration_frames``, ``tracker_factory``, ``mic_factory``,
    ``profiles_path``.
    """

    takeRecorded = Signal(object)
    statusChanged = Signal(str)

    def __init__(self, controller: StudioController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("live_panel")
        self.controller = controller
        self.viewport: Any = None
        self.session: LiveSession | None = None
        self.pace = True
        self.countdown_s = COUNTDOWN_S
        self.calibration_frames = CALIBRATION_FRAMES
        self.tracker_factory: Callable[..., FaceTracker] = _default_tracker
        # A tracking process started while the panel is shown, taken by the next Start (the
        # child's imports and models cost ~1 s, which Start would otherwise wait for).
        self._spare_tracking: Any = None
        self._prewarm_timer = QTimer(self)
        self._prewarm_timer.setSingleShot(True)
        self._prewarm_timer.timeout.connect(self.prewarm_tracking)
        self.mic_factory: Callable[[], Any] = MicRecorder
        self.lips_model = "default"  # hybrid mode's generator (models.hybrid.make_lip_generator)
        self.hybrid_audio = "auto"  # "auto": microphone if any, else the project; "project"
        self.hybrid: _Hybrid | None = None
        self.profiles_path = profiles_dir()
        self.profile: PerformerProfile | None = None
        self.frames_shown = 0
        self.last_frame: LiveFrame | None = None
        self.last_take: Take | None = None
        self._shown_times: deque[float] = deque(maxlen=90)
        self._cameras_probed = False
        self._camera_worker: Any = None
        self._build_worker: Any = None
        self._mic: Any = None
        self._rec_start_frame = 0
        self._countdown = 0
        self._calibrating = False
        self._source_kind = ""
        self._vcam: VirtualCamera | None = None
        self._mic_notice_shown = False
        self._settings_rev = 0
        self._drawn_info: tuple[int, float, float] | None = None  # index, captured, processed
        self._readout_at = 0.0  # perf_counter time of the next fps/latency readout
        self._status_hold_until = 0.0
        self._extra_profiles: list[Path] = []
        self._profile_path: str | None = None
        self._build_ui()
        self._countdown_timer = QTimer(self)
        self._countdown_timer.setInterval(1000)
        self._countdown_timer.timeout.connect(self._tick_countdown)
        self._vcam_timer = QTimer(self)
        self._vcam_timer.setInterval(33)
        self._vcam_timer.timeout.connect(self._send_virtualcam)
        self._fill_profiles()
        self._update_buttons()

    # ------------------------------------------------------------------------- building
    def _build_ui(self) -> None:
        # Source row.
        self.source_combo = QComboBox()
        self.source_combo.setObjectName("live_source")
        self.source_combo.setToolTip("What drives the head: a camera, a video file or a folder "
                                     "of images (frames in name order)")  # fmt: skip
        self.source_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.source_combo.setMinimumContentsLength(12)
        self.source_combo.activated.connect(self._on_source_activated)
        self.refresh_button = QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Look for cameras again")
        self.refresh_button.clicked.connect(self.refresh_cameras)
        self.resolution_combo = QComboBox()
        self.resolution_combo.setToolTip("Resolution to ask the camera for (it may pick another)")
        for w, h in RESOLUTIONS:
            self.resolution_combo.addItem("Default size" if not w else f"{w}×{h}", (w, h))
        self.resolution_combo.setCurrentIndex(1)
        self.fps_combo = QComboBox()
        self.fps_combo.setToolTip("Frame rate to ask the camera for")
        for f in CAMERA_FPS:
            self.fps_combo.addItem("Default fps" if not f else f"{f} fps", f)
        self.fps_combo.setCurrentIndex(3)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("live_start")
        self.start_button.setToolTip("Start or stop live tracking")
        self.start_button.clicked.connect(self.toggle_running)
        self.record_button = QPushButton("● Record")
        self.record_button.setObjectName("live_record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the performance into a new take at the current "
                                      "frame (with the microphone when there is one)")  # fmt: skip
        self.record_button.toggled.connect(self._on_record_toggled)

        src = QHBoxLayout()
        src.addWidget(self.source_combo, 1)
        src.addWidget(self.refresh_button)
        cam = QHBoxLayout()
        cam.addWidget(self.resolution_combo, 1)
        cam.addWidget(self.fps_combo, 1)
        run = QHBoxLayout()
        run.addWidget(self.start_button, 1)
        run.addWidget(self.record_button, 1)

        # Feed and readouts.
        self.feed = FeedView()
        self.fps_label = QLabel("–")
        self.fps_label.setObjectName("live_fps")
        self.fps_label.setToolTip("Frames per second: tracked in the capture thread / shown")
        self.latency_label = QLabel("")
        self.latency_label.setObjectName("live_latency")
        self.latency_label.setToolTip(
            "Latency from the moment the source delivered a frame: tracked, then drawn here "
            "(the camera's own delay before delivery is not included)"
        )
        self.faces_label = QLabel("")
        self.faces_label.setObjectName("live_faces")
        self.status_label = QLabel("Stopped")
        self.status_label.setObjectName("live_status")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        readouts = QGridLayout()
        readouts.setHorizontalSpacing(8)
        readouts.setVerticalSpacing(1)
        readouts.addWidget(self.fps_label, 0, 0)
        readouts.addWidget(self.faces_label, 0, 1, Qt.AlignmentFlag.AlignRight)
        readouts.addWidget(self.latency_label, 1, 0, 1, 2)
        readouts.addWidget(self.status_label, 2, 0, 1, 2)
        readouts.setColumnStretch(0, 1)

        # Performer.
        self.profile_combo = QComboBox()
        self.profile_combo.setObjectName("live_profile")
        self.profile_combo.setToolTip("The performer's neutral face (calibration) to track with")
        self.profile_combo.activated.connect(self._on_profile_activated)
        self.performer_edit = QLineEdit()
        self.performer_edit.setPlaceholderText("performer name")
        self.performer_edit.setToolTip("Name to save the calibration under")
        self.calibrate_button = QPushButton("Calibrate")
        self.calibrate_button.setObjectName("live_calibrate")
        self.calibrate_button.setToolTip(
            "Look at the camera with a neutral face: after a countdown a few frames become the "
            "performer's neutral face, saved as a profile"
        )
        self.calibrate_button.clicked.connect(self.calibrate)
        perf = QGroupBox("Performer")
        pg = QGridLayout(perf)
        pg.addWidget(self.profile_combo, 0, 0, 1, 2)
        pg.addWidget(self.performer_edit, 1, 0)
        pg.addWidget(self.calibrate_button, 1, 1)

        # Tracking settings.
        track = QGroupBox("Tracking")
        tg = QGridLayout(track)
        tg.setColumnStretch(1, 1)
        self.region_checks: dict[str, QCheckBox] = {}
        self.gain_sliders: dict[str, QSlider] = {}
        self._gain_labels: dict[str, QLabel] = {}
        for row, region in enumerate(REGIONS):
            cb = QCheckBox(region.capitalize())
            cb.setChecked(True)
            cb.setToolTip(f"Drive the {region} from the performer (off: it stays neutral)")
            cb.toggled.connect(self._settings_changed)
            sl = QSlider(Qt.Orientation.Horizontal)
            sl.setRange(0, 200)
            sl.setValue(100)
            sl.setToolTip(f"Gain of the {region}: 100 % is the performer's own amplitude")
            lab = QLabel("100 %")
            lab.setMinimumWidth(40)
            lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            sl.valueChanged.connect(lambda v, lab=lab: lab.setText(f"{v} %"))
            sl.valueChanged.connect(self._settings_changed)
            tg.addWidget(cb, row, 0)
            tg.addWidget(sl, row, 1)
            tg.addWidget(lab, row, 2)
            self.region_checks[region] = cb
            self.gain_sliders[region] = sl
            self._gain_labels[region] = lab
        row = len(REGIONS)
        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal)
        self.smoothing_slider.setRange(0, 100)
        self.smoothing_slider.setValue(33)
        self.smoothing_slider.setToolTip(
            "Smoothing (One-Euro filter): left is raw and quick, right is smooth and slower"
        )
        self.smoothing_label = QLabel()
        self.smoothing_label.setMinimumWidth(40)
        self.smoothing_label.setAlignment(
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        )
        self.smoothing_slider.valueChanged.connect(self._settings_changed)
        tg.addWidget(QLabel("Smoothing"), row, 0)
        tg.addWidget(self.smoothing_slider, row, 1)
        tg.addWidget(self.smoothing_label, row, 2)
        self.pose_combo = QComboBox()
        self.pose_combo.addItem("Pose relative to calibration", "relative")
        self.pose_combo.addItem("Absolute pose", "absolute")
        self.pose_combo.setToolTip("Relative: the calibration pose is the head's rest pose. "
                                   "Absolute: the head copies the performer's pose")  # fmt: skip
        self.pose_combo.currentIndexChanged.connect(self._settings_changed)
        self.mirror_check = QCheckBox("Mirror")
        self.mirror_check.setToolTip("Flip the picture left-right first (a mirrored webcam)")
        self.mirror_check.toggled.connect(self._settings_changed)
        opts = QHBoxLayout()
        opts.addWidget(self.pose_combo, 1)
        opts.addWidget(self.mirror_check)
        tg.addLayout(opts, row + 1, 0, 1, 3)

        # Outputs.
        self.virtualcam_check = QCheckBox("Virtual camera")
        self.virtualcam_check.setObjectName("live_virtualcam")
        self.virtualcam_check.setToolTip(
            "Send the viewport's picture to a virtual webcam for video calls and streaming. "
            + VIRTUALCAM_HELP
            + "."
        )
        self.virtualcam_check.toggled.connect(self.set_virtualcam)
        self.hybrid_check = QCheckBox("Lips from audio")
        self.hybrid_check.setObjectName("live_hybrid")
        self.hybrid_check.setToolTip(HYBRID_TIP)
        self.hybrid_check.toggled.connect(self._on_hybrid_toggled)
        outs = QHBoxLayout()
        outs.addWidget(self.virtualcam_check)
        outs.addWidget(self.hybrid_check)
        outs.addStretch(1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        lay.addLayout(src)
        lay.addLayout(cam)
        lay.addLayout(run)
        lay.addWidget(self.feed, 1)
        lay.addLayout(readouts)
        lay.addWidget(perf)
        lay.addWidget(track)
        lay.addLayout(outs)
        self._fill_sources([])
        self._update_smoothing_label()
        self.settings = self._settings_from_ui()

    # ------------------------------------------------------------------------- sources
    def paintEvent(self, event: Any) -> None:
        # Look for cameras the first time the panel is really on screen (a dock tabbed away
        # counts as shown but is never painted): probing wakes cameras up, so not at startup.
        super().paintEvent(event)
        if not self._cameras_probed:
            self._cameras_probed = True
            QTimer.singleShot(0, self.refresh_cameras)

    def refresh_cameras(self) -> None:
        """Look for cameras in a worker thread (opening one can take a moment)."""
        from models.face.sources import list_cameras
        from studio.workers import Worker

        self._cameras_probed = True
        if self._camera_worker is not None:
            return
        worker = Worker(list_cameras, name="Look for cameras")
        worker.finished_ok.connect(self._fill_sources)
        worker.failed.connect(lambda msg, _tb: self._fill_sources([]))
        worker.done.connect(self._camera_probe_done)
        self._camera_worker = worker
        self.refresh_button.setEnabled(False)
        worker.start()

    def _camera_probe_done(self) -> None:
        self._camera_worker = None
        self.refresh_button.setEnabled(True)

    def _fill_sources(self, cameras: list[Any]) -> None:
        current = self.source_combo.currentData()
        files = [
            (self.source_combo.itemText(i), self.source_combo.itemData(i))
            for i in range(self.source_combo.count())
            if self.source_combo.itemData(i)[0] in ("file", "folder", "factory")
        ]
        combo = self.source_combo
        combo.blockSignals(True)
        combo.clear()
        for cam in cameras:
            size = f" ({cam.width}×{cam.height})" if cam.width else ""
            combo.addItem(f"Camera {cam.index}{size}", ("camera", cam.index))
        if not cameras:
            combo.addItem("No camera found", ("none", None))
        for text, data in files:
            combo.addItem(text, data)
        combo.addItem("Video file…", ("pick-file", None))
        combo.addItem("Image folder…", ("pick-folder", None))
        combo.blockSignals(False)
        idx = -1
        if current is not None:
            for i in range(combo.count()):
                if combo.itemData(i) == current:
                    idx = i
        if idx < 0:
            idx = 0
        combo.setCurrentIndex(idx)
        self._update_buttons()

    def set_source(self, spec: str | int | Path | Callable[[], FrameSource]) -> None:
        """Select a source: a camera index, a video file or image folder path, or a function
        that opens a FrameSource (tests). Takes effect at the next Start."""
        if callable(spec) and not isinstance(spec, (str, Path)):
            data: tuple[str, Any] = ("factory", spec)
            text = getattr(spec, "description", "") or "Custom source"
        elif isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
            data, text = ("camera", int(spec)), f"Camera {int(spec)}"
        else:
            p = Path(spec)
            kind = "folder" if p.is_dir() else "file"
            data, text = (kind, str(p)), ("Folder: " if kind == "folder" else "Video: ") + p.name
        combo = self.source_combo
        for i in range(combo.count()):
            if combo.itemData(i) == data:
                combo.setCurrentIndex(i)
                break
        else:
            at = max(combo.count() - 2, 0)  # before "Video file…" / "Image folder…"
            combo.insertItem(at, text, data)
            combo.setItemData(at, str(data[1]), Qt.ItemDataRole.ToolTipRole)
            combo.setCurrentIndex(at)
        self._update_buttons()

    def _on_source_activated(self, index: int) -> None:
        kind, _ = self.source_combo.itemData(index)
        if kind == "pick-file":
            path = ask_video_path(self)
        elif kind == "pick-folder":
            path = ask_video_folder(self)
        else:
            self._update_buttons()
            return
        if path is None:
            self.source_combo.setCurrentIndex(0)
        else:
            self.set_source(path)
        self._update_buttons()

    def _source_factory(self) -> Callable[[], FrameSource] | None:
        kind, value = self.source_combo.currentData() or ("none", None)
        from models.face.sources import open_source

        if kind == "camera":
            w, h = self.resolution_combo.currentData()
            fps = self.fps_combo.currentData()
            return lambda: open_source(int(value), width=w or None, height=h or None,
                                       fps=fps or None)  # fmt: skip
        if kind in ("file", "folder"):
            return lambda: open_source(value)
        if kind == "factory":
            return value
        return None

    # ------------------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        return self.session is not None and self.session.is_running

    def toggle_running(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def start(self) -> bool:
        """Start live tracking from the chosen source. False (with the reason in the status
        line) when there is nothing to start."""
        if self.running:
            return True
        kind, _ = self.source_combo.currentData() or ("none", None)
        factory = self._source_factory()
        if factory is None:
            self._set_status("No camera: none was found. Connect one and press ⟳, or choose a "
                             "video file or image folder.", "error")  # fmt: skip
            self.feed.message = "No camera found"
            self.feed.update()
            return False
        self._source_kind = kind
        self.frames_shown = 0
        self._shown_times.clear()
        self.last_frame = None
        self.feed.set_frame(None)
        self.feed.message = "Opening the source…"
        spare, self._spare_tracking = self._spare_tracking, None
        if spare is not None and spare.factory is not self.tracker_factory:
            spare.close()  # built for another tracker
            spare = None
        session = LiveSession(factory, self.tracker_factory, self.settings, self.profile,
                              pace=self.pace, spare=spare, parent=self)  # fmt: skip
        session.frameReady.connect(self._on_frame_ready)
        session.finished.connect(self._on_session_finished)
        session.calibrated.connect(self._on_calibrated)
        session.calibrationFailed.connect(self._on_calibration_failed)
        session.set_overlay(self.feed.show_landmarks)  # the capture thread draws the landmarks
        prepare = getattr(self.viewport, "prepare_live", None)
        if prepare is not None and getattr(self.viewport, "gl_available", False):
            session.set_prepare(prepare)  # the head deforms in the capture thread
        self.session = session
        session.start()
        self._set_status("Starting…", "info")
        if self.hybrid_check.isChecked() and not self._start_hybrid():
            self._uncheck_hybrid()
        self._update_buttons()
        return True

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._spare_tracking is None and not self.running:
            self._prewarm_timer.start(PREWARM_DELAY_MS)

    def prewarm_tracking(self) -> None:
        """Start a tracking process for the next Start (when tracking runs in a child process
        and the panel is shown; a no-op otherwise)."""
        if self._spare_tracking is not None or self.running or not self.isVisible():
            return
        if LIVE_TRACKING != "process":
            return
        from studio.tracking_child import TrackingProcess, picklable

        if not picklable(self.tracker_factory):
            return
        spare = TrackingProcess(self.tracker_factory, self.settings, None)
        try:
            spare.start()
        except Exception as exc:  # no processes allowed: Start tracks in its own thread
            log.info("no spare tracking process (%s)", exc)
            return
        self._spare_tracking = spare

    def stop(self) -> None:
        """Stop tracking (a running recording is kept as a take); the viewport shows the take
        again."""
        session = self.session
        if session is None:
            return
        if self.record_button.isChecked():
            self.record_button.setChecked(False)  # finishes the recording first
        session.stop()

    def _on_frame_ready(self) -> None:
        session = self.sender()
        if session is not self.session or session is None:
            return
        frame = session.take_latest()
        if frame is None:
            return
        now = time.perf_counter()
        self.last_frame = frame
        self.frames_shown += 1
        self._shown_times.append(now)
        # Latency of the previous frame that reached the screen.
        drawn = self.feed.drawn
        prev = self._drawn_info
        # Readouts change at most READOUT_S apart: every text or style change repaints (and on
        # a software GL re-composes) the window, time the live viewport needs.
        readout = now >= self._readout_at
        if readout:
            self._readout_at = now + READOUT_S
        first = not self.latency_label.text().startswith("Latency")
        if (readout or first) and drawn is not None and prev is not None and drawn[0] == prev[0]:
            track_ms = (prev[2] - prev[1]) * 1e3
            total_ms = (drawn[1] - prev[1]) * 1e3
            self.latency_label.setText(
                f"Latency {total_ms:.0f} ms: tracking {track_ms:.0f} + display "
                f"{total_ms - track_ms:.0f}"
            )
        self._drawn_info = (frame.index, frame.t_captured, frame.t_processed)
        self.feed.set_frame(frame)
        dpr = self.feed.devicePixelRatioF()
        session.set_preview_box(round(self.feed.width() * dpr), round(self.feed.height() * dpr))
        session.set_overlay(self.feed.show_landmarks)
        if self.viewport is not None:
            if frame.prepared is not None:
                self.viewport.set_live_values(frame.tracked.values, frame.prepared)
            else:
                self.viewport.set_live_values(frame.tracked.values)
        # The first frames too: the first one's rate is 0 (nothing to measure it against), and
        # a slow first frame (models warming up) can leave that 0 up for a whole READOUT_S.
        if readout or self.frames_shown <= 10:
            self.fps_label.setText(f"{frame.processed_fps:.1f} fps tracked · "
                                   f"{fps_of(self._shown_times, now):.1f} shown")  # fmt: skip
            src = f"{frame.source_fps:g} fps" if frame.source_fps else "unknown rate"
            w, h = frame.source_size
            self.fps_label.setToolTip(f"Frames per second tracked in the capture thread and "
                                      f"shown here. Source: {w}×{h}, {src}")  # fmt: skip
        n = frame.tracked.num_faces
        if n > 1:
            _set_text(self.faces_label, f"{n} faces: following the largest")
            _set_style(self.faces_label, f"color: {COLORS['warning']}")
        else:
            _set_text(self.faces_label, "1 face" if n == 1 else "no face")
            _set_style(self.faces_label, f"color: {COLORS['text_dim']}")
        if not self._calibrating and now >= self._status_hold_until:
            level = "ok" if frame.tracked.found else "warning"
            text = frame.status_text
            hyb = self.hybrid
            if hyb is not None and hyb.mixer.generator is None:
                # The speech model loads in the mixer's thread (torch: seconds on a CPU).
                text += " · lips: procedural until the speech model has loaded…"
            self._set_status(text, level)
        if frame.recording:
            self.feed.rec_text = (
                f"REC {_clock(frame.recorded_seconds)} · {frame.recorded_frames} frames"
            )
        if self._calibrating and self._countdown <= 0 and frame.calibrating:
            self.feed.overlay = f"Hold still… {frame.calibrating}"

    def _on_session_finished(self, kind: str, message: str) -> None:
        session = self.sender()
        if session is not self.session:
            return
        if self.isVisible():
            self._prewarm_timer.start(PREWARM_DELAY_MS)  # ready for the next Start
        self._countdown_timer.stop()
        self._calibrating = False
        self.feed.overlay = ""
        if self.viewport is not None:
            self.viewport.set_live_values(None)
        recording = self.record_button.isChecked()
        hybrid = self.hybrid  # kept for the take; stopped after it
        if kind == "stopped":
            text, level = "Stopped", "info"
        elif kind == "ended":
            text, level = f"{message}. Press Start to play it again.", "info"
        elif kind == "disconnected":
            text, level = f"Camera disconnected: {message}", "error"
        elif self._source_kind == "camera":
            text, level = f"No camera: {message}", "error"
        else:
            text, level = f"Cannot use the source: {message}", "error"
        if recording:
            kept = "kept what was recorded" if kind != "error" else "nothing was recorded"
            text = f"{text} — recording ended, {kept}."
            self.record_button.blockSignals(True)
            self.record_button.setChecked(False)
            self.record_button.blockSignals(False)
            self._finish_recording(note=message if kind != "stopped" else "")
        if hybrid is not None:
            self._stop_hybrid()
        self._set_status(text, level)
        if kind in ("error", "disconnected"):
            self.controller.notify(f"Live: {text}", "warning" if recording else "error")
        if self.last_frame is None:
            self.feed.message = text
        self.feed.rec_text = ""
        self.feed.update()
        self.session = None
        session.deleteLater()
        self._update_buttons()

    # ------------------------------------------------------------------------- settings
    def _settings_from_ui(self) -> TrackerSettings:
        from models.face.tracker import TrackerSettings

        strength = self.smoothing_slider.value()
        return TrackerSettings(
            min_cutoff=_smoothing_cutoff(max(strength, 1)),
            smoothing=strength > 0,
            gains={r: self.gain_sliders[r].value() / 100.0 for r in REGIONS},
            enabled={r: self.region_checks[r].isChecked() for r in REGIONS},
            pose=self.pose_combo.currentData(),
            mirror=self.mirror_check.isChecked(),
        )

    def _update_smoothing_label(self) -> None:
        v = self.smoothing_slider.value()
        self.smoothing_label.setText("off" if v == 0 else f"{_smoothing_cutoff(v):.2g} Hz")

    def _settings_changed(self, *_args: Any) -> None:
        self._update_smoothing_label()
        self.settings = self._settings_from_ui()
        if self.session is not None:
            self._settings_rev = self.session.set_settings(self.settings)
        if self.hybrid is not None:
            self.hybrid.mixer.gain = self._lip_gain()

    @property
    def settings_revision(self) -> int:
        """Revision of the settings last sent to the session (compare LiveFrame.settings_rev)."""
        return self._settings_rev

    def set_region_enabled(self, region: str, enabled: bool) -> None:
        """Switch a region ("head", "eyes", "brows", "mouth"). Raises KeyError."""
        self.region_checks[region].setChecked(bool(enabled))

    def set_region_gain(self, region: str, gain: float) -> None:
        self.gain_sliders[region].setValue(round(float(gain) * 100))

    # ------------------------------------------------------------------------- performer
    def _fill_profiles(self, select: Path | None = None) -> None:
        combo = self.profile_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("No profile (first face seen is neutral)", None)
        files = sorted(self.profiles_path.glob("*.json")) if self.profiles_path.is_dir() else []
        for p in [*files, *[e for e in self._extra_profiles if e not in files]]:
            combo.addItem(p.stem, str(p))
            combo.setItemData(combo.count() - 1, str(p), Qt.ItemDataRole.ToolTipRole)
        combo.addItem("Load profile…", "load")
        if select is not None:
            i = combo.findData(str(select))
            combo.setCurrentIndex(max(i, 0))
        combo.blockSignals(False)

    def _on_profile_activated(self, index: int) -> None:
        data = self.profile_combo.itemData(index)
        if data == "load":
            path = ask_profile_path(self, self.profiles_path)
            if path is None:
                i = self.profile_combo.findData(self._profile_path)
                self.profile_combo.setCurrentIndex(max(i, 0))
                return
            self._extra_profiles.append(path)
            self._fill_profiles(select=path)
            data = str(path)
        self.select_profile(None if data is None else Path(data))

    def select_profile(self, path: Path | None) -> bool:
        """Track with the profile saved at ``path`` (None: no profile). False (status line
        says why) when it cannot be read."""
        from models.face.tracker import PerformerProfile, ProfileError

        if path is None:
            profile = None
        else:
            try:
                profile = PerformerProfile.load(path)
            except ProfileError as exc:
                self._set_status(str(exc), "error")
                return False
            self.performer_edit.setText(profile.name or Path(path).stem)
        self.profile = profile
        self._profile_path = None if path is None else str(path)
        i = self.profile_combo.findData(self._profile_path)
        if i < 0 and path is not None:
            self._extra_profiles.append(Path(path))
            self._fill_profiles(select=Path(path))
        else:
            self.profile_combo.setCurrentIndex(max(i, 0))
        if self.session is not None:
            self.session.set_profile(profile)
        return True

    def calibrate(self) -> None:
        """Countdown, then the next ``calibration_frames`` frames with a face become the
        performer's neutral face (saved as a profile)."""
        if not self.running or self._calibrating:
            return
        self._calibrating = True
        self._countdown = int(self.countdown_s)
        self._update_buttons()
        if self._countdown > 0:
            self.feed.overlay = f"Look at the camera with a neutral face\n{self._countdown}"
            self._set_status("Calibrating: look at the camera with a neutral face", "info")
            self._countdown_timer.start()
        else:
            self._tick_countdown()

    def _tick_countdown(self) -> None:
        self._countdown -= 1
        if self._countdown > 0:
            self.feed.overlay = f"Look at the camera with a neutral face\n{self._countdown}"
            self.feed.update()
            return
        self._countdown_timer.stop()
        if self.session is None:
            self._calibrating = False
            return
        self.feed.overlay = "Hold still…"
        self.feed.update()
        self._set_status("Calibrating: hold still with a neutral face", "info")
        name = self.performer_edit.text().strip() or "performer"
        self.session.request_calibration(self.calibration_frames, name)

    def _on_calibrated(self, profile: PerformerProfile) -> None:
        self._calibrating = False
        self.feed.overlay = ""
        self.profile = profile
        path = self.profiles_path / f"{safe_name(profile.name)}.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            profile.save(path)
        except OSError as exc:
            self._set_status(
                f"Calibrated, but the profile could not be saved: {exc}", "warning", 6.0
            )
        else:
            self._profile_path = str(path)
            self._fill_profiles(select=path)
            msg = f"Calibrated {profile.name!r} from {profile.frames} frames; saved to {path}"
            self._set_status(msg, "ok", hold_s=5.0)
            self.controller.notify(f"Live: {msg}")
        self._update_buttons()

    def _on_calibration_failed(self, message: str) -> None:
        self._calibrating = False
        self.feed.overlay = ""
        self._set_status(message[:1].upper() + message[1:], "warning", hold_s=5.0)
        self._update_buttons()

    # ------------------------------------------------------------------------- recording
    def _on_record_toggled(self, on: bool) -> None:
        if on:
            self.start_recording()
        else:
            self._finish_recording()

    def start_recording(self) -> bool:
        """Record from the next frame on, into a take starting at the current frame."""
        if self.session is None or not self.running or self._build_worker is not None:
            self.record_button.blockSignals(True)
            self.record_button.setChecked(False)
            self.record_button.blockSignals(False)
            return False
        if not self.record_button.isChecked():
            self.record_button.blockSignals(True)
            self.record_button.setChecked(True)
            self.record_button.blockSignals(False)
        self._rec_start_frame = self.controller.frame
        self._mic = None
        hyb = self.hybrid
        if hyb is not None and hyb.kind == "project":
            # Lips and the played audio restart at the take's first frame, so the live head
            # matches what the take will get.
            self._stop_hybrid()
            if not self._start_hybrid():
                self._uncheck_hybrid()
        try:
            if hyb is not None and hyb.kind == "microphone":
                pass  # the hybrid microphone is already recording: the take's audio comes from it
            else:
                mic = self.mic_factory()
                mic.start()
                self._mic = mic
        except AudioInputUnavailable as exc:
            self._set_status(f"Recording motion only: {exc}", "warning", hold_s=4.0)
            if not self._mic_notice_shown:
                self.controller.notify(f"Live: {exc}: recording motion only", "warning")
                self._mic_notice_shown = True
        self.session.start_recording()
        self.feed.rec_text = "REC 00:00.0"
        self.record_button.setText("■ Stop recording")
        self._update_buttons()
        return True

    def stop_recording(self) -> None:
        if self.record_button.isChecked():
            self.record_button.setChecked(False)

    def _finish_recording(self, note: str = "") -> None:
        """Turn what the session recorded into a take (in a worker: key reduction takes a
        while) and add it as one undoable edit."""
        self.record_button.setText("● Record")
        self.feed.rec_text = ""
        rec: Recording | None = None
        if self.session is not None:
            rec = self.session.stop_recording()
        mic, self._mic = self._mic, None
        audio = mic.stop() if mic is not None else None
        lips = None
        hyb = self.hybrid
        if hyb is not None and rec is not None and len(rec):
            if hyb.kind == "microphone":
                audio = hyb.mic.snapshot()
            lips = self._take_lips(hyb, rec, audio)
        if rec is None or len(rec) == 0:
            self._set_status("Recording ended: no frame was recorded", "warning")
            self._update_buttons()
            return
        from studio.workers import Worker

        project = self.controller.project
        fps = project.frame_rate.fps
        start = self._rec_start_frame
        name = f"Live {time.strftime('%H:%M:%S')}"
        meta = {
            "source": getattr(self.session, "source_description", "") if self.session else "",
            "calibrated": self.profile is not None,
            "pose": self.settings.pose,
            "audio": "microphone" if audio is not None else "none",
        }
        if lips is not None and hyb is not None:
            meta["lips"] = f"audio ({hyb.kind})"
        worker = Worker(build_take_job, rec, fps, start, name, audio, meta, lips,
                        name="Build live take")  # fmt: skip
        worker.finished_ok.connect(lambda result: self._add_take(*result, start, note))
        worker.failed.connect(
            lambda msg, _tb: self._set_status(f"Recording not kept: {msg}", "error")
        )
        worker.done.connect(self._build_done)
        self._build_worker = worker
        self._set_status(f"Saving the take ({len(rec)} frames)…", "info")
        self._update_buttons()
        worker.start()

    def _build_done(self) -> None:
        self._build_worker = None
        self._update_buttons()

    def _add_take(self, take: Take, wav: bytes | None, start: int, note: str) -> None:
        from studio.document import AddAudioClip, AddTake, AudioClip, CompoundEdit, SetSettings

        c = self.controller
        project = c.project
        length = int(take.metadata["capture"]["length_frames"])
        edits: list[Any] = [AddTake(take, activate=True)]
        if wav is not None:
            base = f"audio/{safe_name(take.name)}.wav"
            key, n = base, 1
            while key in project.assets:
                n += 1
                key = base.replace(".wav", f"_{n}.wav")
            edits.append(AddAudioClip(AudioClip.new(f"{take.name} (mic)", key, offset=start),
                                      asset_data=wav))  # fmt: skip
        end = start + length
        if end > project.duration:
            whole = project.work_range == (0, project.duration)
            edits.append(SetSettings(duration=end, work_range=(0, end) if whole else None))
        if not c.push(CompoundEdit(edits, label=f"Record {take.name}")):
            return
        self.last_take = take
        secs = length / project.frame_rate.fps
        audio = " with microphone audio" if wav is not None else ""
        msg = f"Recorded take {take.name!r}: {length} frames ({secs:.1f} s){audio} at frame {start}"
        if note:
            msg += f" — the source stopped ({note}); what was recorded is kept"
        self._set_status(msg, "warning" if note else "ok", hold_s=6.0)
        c.notify(f"Live: {msg}", "warning" if note else "info")
        self.takeRecorded.emit(take)

    # ------------------------------------------------------------------------- hybrid
    def set_hybrid(self, on: bool) -> bool:
        """Lips from audio on or off (applies now when running, else from Start). False, with
        the reason in the status line, when there is no audio to take the lips from."""
        self.hybrid_check.setChecked(bool(on))
        return self.hybrid_check.isChecked() == bool(on)

    def _on_hybrid_toggled(self, on: bool) -> None:
        if not on:
            self._stop_hybrid()
        elif self.running and not self._start_hybrid():
            self._uncheck_hybrid()

    def _uncheck_hybrid(self) -> None:
        self.hybrid_check.blockSignals(True)
        self.hybrid_check.setChecked(False)
        self.hybrid_check.blockSignals(False)

    def _lip_gain(self) -> float:
        s = self.settings
        return float(s.gains.get("mouth", 1.0)) if s.enabled.get("mouth", True) else 0.0

    def _generator_factory(self, hop: int) -> Callable[[], Any]:
        from models.hybrid import make_lip_generator

        model = self.lips_model
        return lambda: make_lip_generator(model, hop=hop)

    def _start_hybrid(self) -> bool:
        """Open the lips' audio (microphone, else the project's audio from the playhead) and
        hand a background HybridMixer to the session."""
        from models.hybrid import HybridMixer

        if self.session is None:
            return False
        hyb: _Hybrid | None = None
        if self.hybrid_audio != "project" and MicRecorder.probe() is None:
            factory = self._generator_factory(HYBRID_HOP)
            mixer = HybridMixer(factory, gain=self._lip_gain(), background=True)
            mic = MicRecorder()
            # The device's rate is known (mic.rate) before the first block arrives.
            mic.on_audio = lambda block: mixer.push_audio(block, mic.rate)
            try:
                mic.start()
            except AudioInputUnavailable as exc:
                log.info("hybrid: microphone unavailable (%s); using the project's audio", exc)
                mixer.close()
            else:
                hyb = _Hybrid("microphone", mixer, lambda: mic.t0, mic=mic)
        if hyb is None:
            # The project's audio is known ahead: long hops generate faster than real time
            # (the same cost per model window, twice the frames), with no delay to pay.
            hyb = self._project_hybrid(self._generator_factory(2 * HYBRID_HOP))
            if hyb is None:
                return False
        self.hybrid = hyb
        self.session.set_hybrid(hyb.mixer, hyb.origin)
        where = "the microphone" if hyb.kind == "microphone" else "the project's audio"
        self._set_status(f"Lips from {where}; head, eyes and brows from the camera", "info",
                         hold_s=3.0)  # fmt: skip
        return True

    def _project_hybrid(self, factory: Callable[[], Any]) -> _Hybrid | None:
        from models.hybrid import HybridMixer
        from studio.audio_mix import sample_offset
        from studio.ui.playback import AudioOutput, AudioUnavailable, mix_project_audio

        project = self.controller.project
        audio, rate, problems = mix_project_audio(project, channels=2)
        start = self.controller.frame
        first = sample_offset(start, project.frame_rate, rate)
        if audio is None or first >= audio.shape[0]:
            why = "; ".join(problems) or (
                "the project has no audio" if audio is None else "no audio after the playhead"
            )
            self._set_status(f"Lips from audio needs a microphone or project audio ({why})",
                             "warning", hold_s=5.0)  # fmt: skip
            return None
        mixer = HybridMixer(factory, rate, gain=self._lip_gain(), background=True)
        mixer.push_audio_chunked(audio[first:])
        mixer.finish()
        out = None
        if AudioOutput.probe() is None:
            out = AudioOutput()
            try:
                out.start(audio, rate, first)
            except AudioUnavailable as exc:
                log.info("hybrid: no audio output (%s)", exc)
                out = None
        t0 = time.perf_counter()
        return _Hybrid("project", mixer, lambda: t0, out=out, audio=(audio, rate, first))

    def _stop_hybrid(self) -> None:
        hyb, self.hybrid = self.hybrid, None
        if hyb is None:
            return
        if self.session is not None:
            self.session.set_hybrid(None)
        hyb.mixer.close()
        if hyb.mic is not None:
            hyb.mic.stop()
        if hyb.out is not None:
            hyb.out.stop()

    def _take_lips(self, hyb: _Hybrid, rec: Recording, audio: Any) -> tuple[Any, float] | None:
        """(mixer factory, audio time of the first recorded frame) for build_take_job: the
        take's lips are generated offline from its own audio (long hops: nothing is live)."""
        from models.hybrid import HybridMixer, make_lip_generator

        model, gain = self.lips_model, self._lip_gain()
        if hyb.kind == "microphone":
            if audio is None or rec.t_start is None:
                return None
            samples, rate, t_audio = audio
            offset = rec.t_start - t_audio
        else:
            assert hyb.audio is not None
            full, rate, first = hyb.audio
            samples, offset = full[first:], 0.0

        def make() -> Any:
            return HybridMixer.from_audio(make_lip_generator(model, hop=40)[0], samples, rate,
                                          gain=gain)  # fmt: skip

        return make, offset

    # ------------------------------------------------------------------------- viewport
    def set_viewport(self, viewport: Any) -> None:
        """The viewport the head is shown in while live (anything with ``set_live_values``;
        its ``grab_frame()`` feeds the virtual camera)."""
        self.viewport = viewport if hasattr(viewport, "set_live_values") else None

    def set_virtualcam(self, on: bool) -> bool:
        """Send the viewport's frames (~30 fps) to a virtual camera. False, with a message,
        when pyvirtualcam or a backend is missing or there is no 3D viewport."""
        if not on:
            self._vcam_timer.stop()
            if self._vcam is not None:
                self._vcam.close()
                self._vcam = None
                self._set_status("Virtual camera off", "info")
            self._check_virtualcam(False)
            return True
        reason = virtualcam_missing()
        if reason is None and not getattr(self.viewport, "gl_available", False):
            reason = "Virtual camera needs the 3D viewport, which is unavailable (no OpenGL)"
        if reason is None:
            img = self.viewport.grab_frame()
            try:
                self._vcam = VirtualCamera(max(img.width(), 2), max(img.height(), 2), 30.0)
            except VirtualCameraUnavailable as exc:
                reason = str(exc)
        if reason is not None:
            self._check_virtualcam(False)
            self._set_status(reason, "warning", hold_s=6.0)
            self.controller.notify(f"Live: {reason}", "warning")
            return False
        self._vcam_timer.start()
        self._set_status(f"Virtual camera on ({self._vcam.device or 'pyvirtualcam'})", "ok", 3.0)
        return True

    def _check_virtualcam(self, on: bool) -> None:
        self.virtualcam_check.blockSignals(True)
        self.virtualcam_check.setChecked(on)
        self.virtualcam_check.blockSignals(False)

    def _send_virtualcam(self) -> None:
        if self._vcam is None or self.viewport is None:
            return
        img = self.viewport.grab_frame()
        if img.isNull():
            return
        img = img.convertToFormat(QImage.Format.Format_RGB888)
        w, h, bpl = img.width(), img.height(), img.bytesPerLine()
        a = np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)
        try:
            self._vcam.send(a[:, : w * 3].reshape(h, w, 3))
        except Exception as exc:  # the backend went away
            self.set_virtualcam(False)
            self._set_status(f"Virtual camera stopped: {exc}", "warning", hold_s=6.0)

    # ------------------------------------------------------------------------- misc
    def _set_status(self, text: str, level: str = "info", hold_s: float = 0.0) -> None:
        """Show a status line; ``hold_s`` keeps it over the per-frame tracking status."""
        self._status_hold_until = time.perf_counter() + hold_s if hold_s else 0.0
        color = {"ok": COLORS["ok"], "warning": COLORS["warning"], "error": COLORS["error"]}.get(
            level, COLORS["text"]
        )
        if text != self.status_label.text():
            self.status_label.setText(text)
            self.statusChanged.emit(text)
        _set_style(self.status_label, f"color: {color}")

    def _update_buttons(self) -> None:
        running = self.running
        kind = (self.source_combo.currentData() or ("none", None))[0]
        self.start_button.setText("Stop" if running else "Start")
        self.source_combo.setEnabled(not running)
        self.refresh_button.setEnabled(not running and self._camera_worker is None)
        # The camera mode request only applies to cameras; hidden for files and folders.
        cam = kind in ("camera", "none")
        self.resolution_combo.setVisible(cam)
        self.fps_combo.setVisible(cam)
        self.resolution_combo.setEnabled(cam and not running)
        self.fps_combo.setEnabled(cam and not running)
        self.record_button.setEnabled(running and self._build_worker is None)
        self.calibrate_button.setEnabled(running and not self._calibrating)

    def shutdown(self) -> None:
        """Stop the session, the recording (kept) and the virtual camera. Safe to call twice."""
        self._countdown_timer.stop()
        self._prewarm_timer.stop()
        spare, self._spare_tracking = self._spare_tracking, None
        if spare is not None:
            spare.close()
        self.set_virtualcam(False)
        session = self.session
        if session is not None:
            self.stop()
            session.stop()
            # Deliver the session's end now (keeps a running recording as a take).
            from PySide6.QtCore import QCoreApplication

            deadline = time.monotonic() + 5.0
            while self.session is session and time.monotonic() < deadline:
                QCoreApplication.processEvents()
                time.sleep(0.005)
        if self._camera_worker is not None:
            self._camera_worker.wait(5000)
        if self._build_worker is not None:
            self._build_worker.wait(30000)
            from PySide6.QtCore import QCoreApplication

            QCoreApplication.processEvents()


class _Hybrid:
    """A running hybrid mode: kind "microphone" or "project", its mixer, ``origin()`` (the
    perf_counter time of the mixer's audio sample 0), the microphone or audio output, and for
    the project the mixed audio ``(samples [S, 2], rate, first sample played)``."""

    def __init__(self, kind: str, mixer: Any, origin: Callable[[], float | None], *,
                 mic: Any = None, out: Any = None, audio: Any = None) -> None:  # fmt: skip
        self.kind, self.mixer, self.origin = kind, mixer, origin
        self.mic, self.out, self.audio = mic, out, audio


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)


def _set_style(widget: QWidget, sheet: str) -> None:
    """setStyleSheet only on a change (each call re-polishes and repaints the widget)."""
    if widget.styleSheet() != sheet:
        widget.setStyleSheet(sheet)


def _clock(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60.0)
    return f"{int(m):02d}:{s:04.1f}"
