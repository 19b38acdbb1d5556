"""The studio's main window: dockable panels, menus and shortcuts, transport bar, file
operations, autosave and crash recovery, background jobs with progress and Cancel.

Panels written elsewhere (timeline, graph editor, viewport) are created by name; a panel that
cannot be imported or created shows an inline message in its dock ("Viewport unavailable:
<reason>") and the rest of the studio works. Questions to the user go through
studio.ui.dialogs functions so tests can answer them.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from studio.document import (
    AddAudioClip,
    AudioClip,
    CompoundEdit,
    HeadRef,
    Project,
    SetHead,
    SetSettings,
)
from studio.document.fileformat import ProjectFileError, load_project, save_project
from studio.document.recovery import AutosavePolicy, RecoveryManager
from studio.ui import dialogs, livelink_io
from studio.ui.actions import build_actions
from studio.ui.controller import StudioController
from studio.ui.dialogs import Preferences
from studio.ui.panels import HistoryPanel, LogHandler, LogPanel, TakesPanel
from studio.ui.playback import AudioOutput, PlaybackEngine
from studio.ui.style import COLORS, icon
from studio.workers import Progress, Worker, WorkerStatus, active_workers

__all__ = ["PANELS", "MainWindow", "read_audio_job", "read_head_job"]

log = logging.getLogger(__name__)

APP_NAME = "Talking Head Studio"
_STATE_VERSION = 5  # bump when the dock layout changes, so old saved layouts are ignored

# Dock id -> (title, "module:Class" or None for built-in, area).
PANELS: dict[str, tuple[str, str | None]] = {
    "viewport": ("Viewport", "studio.viewport.widget:ViewportWidget"),
    "inspector": ("Inspector", "studio.ui.inspector:InspectorWidget"),
    "takes": ("Takes", None),
    "history": ("Undo History", None),
    "timeline": ("Timeline", "studio.ui.timeline:TimelineWidget"),
    "graph": ("Graph Editor", "studio.ui.graph_editor:GraphEditorWidget"),
    "log": ("Log", None),
    "live": ("Live", "studio.ui.live_panel:LivePanel"),
}


# ----------------------------------------------------------------------------- jobs
def read_audio_job(path: Path):
    """Qt-free job: read and decode an audio file. Returns (bytes, duration_s).

    Raises AudioError (one line naming the file) for missing or unreadable audio."""
    from studio.document.audio import AudioError, read_audio

    yield Progress(0.0, f"reading {path.name}")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise AudioError(f"{path}: no such audio file") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    yield Progress(0.4, "decoding")
    audio = read_audio(data, name=str(path))
    yield Progress(1.0, "done")
    return data, audio.duration


def read_head_job(path: Path):
    """Qt-free job: make a rigged head file from ``path`` (a .thead as is; a 3DGS .ply / .splat
    with keypoints placed by the face landmarker; a portrait image lifted to a head: see
    studio.head_import). Returns (.thead bytes, one-line description).

    Lifting and placing keypoints render with a headless EGL context, which must not share a
    process with Qt's GLX one (docs/architecture.md): they run in a child process
    (``talking-head-studio import-head``); closing the job (Cancel) stops it.
    Raises HeadImportError / HeadFileError naming the file."""
    import subprocess
    import sys
    import tempfile

    from models.heads import RiggedMPIHead, load_head
    from studio.head_import import HeadImportError

    path = Path(path)
    yield Progress(0.0, f"reading {path.name}")
    notes: list[str] = []
    if path.suffix.lower() == ".thead":
        head = load_head(path)  # a damaged file fails here, not in the viewport
        data = path.read_bytes()
    else:
        with tempfile.TemporaryDirectory(prefix="ths-head-") as tmp:
            out = Path(tmp) / "head.thead"
            cmd = [sys.executable, "-m", "studio", "import-head", str(path), "--out", str(out)]
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                assert proc.stdout is not None and proc.stderr is not None
                for line in proc.stdout:
                    line = line.strip()
                    if line.startswith("note: "):
                        notes.append(line[len("note: ") :])
                    if line:
                        yield Progress(None, line)
                errors = proc.stderr.read().strip().splitlines()
                code = proc.wait()
            finally:
                if proc.poll() is None:  # cancelled: the generator was closed mid-import
                    proc.terminate()
                    proc.wait()
            if code != 0:
                message = errors[-1] if errors else f"the import stopped (status {code})"
                raise HeadImportError(message.split(" error: ", 1)[-1])
            data = out.read_bytes()
            head = load_head(out)
    yield Progress(1.0, "done")
    if isinstance(head, RiggedMPIHead):
        text = f"rigged MPI head, {head.num_planes} planes"
    else:
        text = f"{len(head):,} Gaussians, rigged"
    return data, "; ".join([text, *notes])


def read_mpi_job(folder: Path):
    """Qt-free job: read and check an MPI head folder (plane PNGs + mpi.json). Returns a one-line
    description ("24 planes 512x512, 0.45-0.65 m").

    Raises HeadImportError with one line naming the folder and the problem (missing planes,
    mismatched sizes, bad metadata)."""
    from studio.head_import import check_mpi_folder, describe_mpi

    yield Progress(None, f"reading {Path(folder).name}")
    mpi = check_mpi_folder(folder)
    yield Progress(1.0, "done")
    return describe_mpi(mpi)


def ask_mpi_folder(parent: QWidget | None, start: Path | None = None) -> Path | None:
    """Ask for an MPI head folder; None if cancelled (a monkeypatch point for tests)."""
    from PySide6.QtWidgets import QFileDialog

    folder = QFileDialog.getExistingDirectory(parent, "Import MPI Head Folder", str(start or ""))
    return Path(folder) if folder else None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Message(QWidget):
    """What a dock shows when its panel is unavailable: the reason, centred."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(text)
        self.label.setObjectName("dockMessage")
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)

    def text(self) -> str:
        return self.label.text()


class MainWindow(QMainWindow):
    """The studio window around a :class:`StudioController`.

    ``settings``: a QSettings (default: studio.ui.dialogs.open_settings()); ``recovery``: the
    session's RecoveryManager (default: the XDG state folder); ``audio``: the AudioOutput for
    playback (tests pass one with a fake device). Call :meth:`start_session` once shown:
    it offers crash recovery and starts autosaving.
    """

    def __init__(
        self,
        controller: StudioController | None = None,
        *,
        settings: QSettings | None = None,
        recovery: RecoveryManager | None = None,
        audio: AudioOutput | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.controller = controller if controller is not None else StudioController()
        self.settings = settings if settings is not None else dialogs.open_settings()
        self.recovery = recovery if recovery is not None else RecoveryManager()
        self.preferences: Preferences = dialogs.load_preferences(self.settings)
        engine_kw: dict[str, Any] = {"audio": audio or AudioOutput(self.preferences.audio_device)}
        if clock is not None:
            engine_kw["clock"] = clock
        self.playback = PlaybackEngine(self.controller, parent=self, **engine_kw)
        self._jobs: list[Worker] = []
        self._last_change: float | None = None
        self._last_write: float | None = time.time()
        self._autosave_error = ""
        self._autosaved_at: float | None = None
        self._closing = False

        self.setWindowTitle(APP_NAME)
        self.setObjectName("MainWindow")
        self.setDockNestingEnabled(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
        )
        self.resize(1600, 960)

        self.log_panel = LogPanel(self.controller)
        self._log_handler = LogHandler(logging.WARNING)
        self._log_handler.bridge.record.connect(self.log_panel.add)
        logging.getLogger().addHandler(self._log_handler)

        self.actions_by_id = build_actions(self, self._handlers())
        for act in self.actions_by_id.values():
            self.addAction(act)  # shortcuts work even when a menu or toolbar is hidden
        self._setup_docks()
        self._setup_menus()
        self._setup_toolbar()
        self._setup_status_bar()
        self._default_state = self.saveState(_STATE_VERSION)
        self._restore_layout()

        c = self.controller
        c.message.connect(self._on_message)
        c.historyChanged.connect(self._on_history)
        c.pathChanged.connect(self._update_title)
        c.projectReplaced.connect(self._on_project_replaced)
        c.frameChanged.connect(self._on_frame)
        c.playingChanged.connect(self._on_playing)
        c.playSpeedChanged.connect(lambda _s: self._on_playing(c.playing))
        c.loopChanged.connect(self.actions_by_id["loop"].setChecked)
        c.documentChanged.connect(self._on_document)
        self.actions_by_id["loop"].setChecked(c.loop)
        self.playback.audioStatusChanged.connect(self._on_audio_status)

        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(5000)
        self._autosave_timer.timeout.connect(self.autosave_if_due)
        self._on_project_replaced()

    # ----------------------------------------------------------------------- building
    def _handlers(self) -> dict[str, Callable[..., object]]:
        c = self.controller
        return {
            "new": self.new_project,
            "open": self.open_project,
            "save": self.save,
            "save_as": self.save_as,
            "import_head": self.import_head,
            "import_audio": self.import_audio,
            "export": self.show_export_dialog,
            "export_motion": lambda: self.show_export_dialog("csv"),
            "import_livelink": lambda: livelink_io.import_livelink_csv(self),
            "export_livelink": lambda: livelink_io.export_livelink_csv(self),
            "show_live": lambda: livelink_io.show_dock(self, "live"),
            "preferences": self.edit_preferences,
            "quit": self.close,
            "undo": c.undo,
            "redo": c.redo,
            "insert_key": self.insert_key,
            "delete_keys": c.delete_selected_keys,
            "clear_keys_frame": c.delete_keys_at_frame,
            "select_all_keys": c.select_all_keys,
            "deselect_keys": lambda: c.select_keys(set()),
            "generate": self.show_generate_dialog,
            "regenerate_range": lambda: self.show_generate_dialog(regenerate=True),
            "auto_emotion": self.auto_emotion_from_take,
            "play": self.toggle_play,
            "stop": self.stop_and_return,
            "shuttle_reverse": lambda: self.shuttle(-1),
            "shuttle_pause": lambda: c.set_playing(False),
            "shuttle_forward": lambda: self.shuttle(1),
            "loop": c.set_loop,
            "prev_frame": lambda: c.step(-1),
            "next_frame": lambda: c.step(1),
            "back_10": lambda: c.step(-10),
            "forward_10": lambda: c.step(10),
            "first_frame": c.go_to_start,
            "last_frame": c.go_to_end,
            "prev_key": lambda: c.jump_to_key(-1),
            "next_key": lambda: c.jump_to_key(1),
            "range_start": self.set_range_start,
            "range_end": self.set_range_end,
            "range_clear": lambda: c.set_play_range(0, c.project.duration),
            "mute": self.playback.set_muted,
            "view_all": c.request_view_all,
            "reset_layout": self.reset_layout,
            "shortcuts": self.show_shortcuts,
            "about": self.show_about,
        }

    def _make_panel(self, key: str) -> QWidget:
        title, target = PANELS[key]
        c = self.controller
        if target is None:
            return {
                "takes": lambda: TakesPanel(c),
                "history": lambda: HistoryPanel(c),
                "log": lambda: self.log_panel,
            }[key]()
        module_name, cls_name = target.split(":")
        if key == "viewport" and QGuiApplication.platformName() in ("offscreen", "minimal"):
            return _Message(
                f"{title} unavailable: OpenGL is not supported on the "
                f"'{QGuiApplication.platformName()}' display platform."
            )
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except ImportError as exc:
            log.info("%s unavailable: %s", title, exc)
            return _Message(f"{title} unavailable: {_one_line(exc)}")
        except AttributeError:
            return _Message(f"{title} unavailable: {module_name} has no {cls_name}")
        try:
            return cls(c)
        except Exception as exc:  # a broken panel must not take the studio down
            log.error("%s failed to start: %s\n%s", title, exc, traceback.format_exc())
            return _Message(f"{title} unavailable: {_one_line(exc)}")

    def _setup_docks(self) -> None:
        self.docks: dict[str, QDockWidget] = {}
        self.panels: dict[str, QWidget] = {}
        for key, (title, _target) in PANELS.items():
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                | QDockWidget.DockWidgetFeature.DockWidgetClosable
            )
            panel = self._make_panel(key)
            dock.setWidget(panel)
            self.docks[key] = dock
            self.panels[key] = panel
        d = self.docks
        # Viewport large at the top left, inspector on the right with takes/history below it,
        # timeline + graph editor + log as tabs under the viewport (Blender/Maya habits).
        #
        # Every panel docks, but QMainWindow needs a central widget ("not supported" without
        # one): with none, each relayout of the window (a toolbar action changing its icon, a
        # status text) moved the separator between the columns by 3 px, so the viewport crept
        # narrower. The central widget is a fixed 0x0 widget at the right edge, and all
        # panels share the left dock area (nested splits), so they get all the room and a
        # relayout keeps their sizes.
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        self.addDockWidget(left, d["viewport"])
        self.splitDockWidget(d["viewport"], d["inspector"], Qt.Orientation.Horizontal)
        self.splitDockWidget(d["inspector"], d["takes"], Qt.Orientation.Vertical)
        self.tabifyDockWidget(d["takes"], d["history"])
        self.tabifyDockWidget(d["inspector"], d["live"])  # View > Live (Ctrl+Shift+L) raises it
        d["inspector"].raise_()
        if hasattr(self.panels["live"], "set_viewport"):
            self.panels["live"].set_viewport(self.panels["viewport"])  # the head follows live
        self.splitDockWidget(d["viewport"], d["timeline"], Qt.Orientation.Vertical)
        self.tabifyDockWidget(d["timeline"], d["graph"])
        self.tabifyDockWidget(d["graph"], d["log"])
        d["takes"].raise_()
        d["timeline"].raise_()
        centre = QWidget()
        centre.setObjectName("empty_centre")
        centre.setFixedSize(0, 0)
        self.setCentralWidget(centre)
        self._apply_default_sizes()

    def _apply_default_sizes(self) -> None:
        """The default panel sizes (again once the window is shown: before that Qt splits the
        room by size hints)."""
        d = self.docks
        self.resizeDocks([d["inspector"]], [360], Qt.Orientation.Horizontal)
        self.resizeDocks([d["viewport"], d["timeline"]], [600, 300], Qt.Orientation.Vertical)
        self.resizeDocks([d["inspector"], d["takes"]], [640, 220], Qt.Orientation.Vertical)

    def _setup_menus(self) -> None:
        a = self.actions_by_id
        bar = self.menuBar()
        file = bar.addMenu("&File")
        file.addActions([a["new"], a["open"]])
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file.addMenu(self.recent_menu)
        file.addSeparator()
        file.addActions([a["save"], a["save_as"]])
        file.addSeparator()
        # MPI heads are folders: their own entry, with a folder chooser.
        self.import_mpi_action = QAction("Import &MPI Head Folder…", self)
        self.import_mpi_action.setObjectName("import_mpi_head")
        self.import_mpi_action.setToolTip(
            "Use an MPI head folder (plane_NN.png + mpi.json) as the project's head"
        )
        self.import_mpi_action.triggered.connect(lambda: self.import_mpi_head())
        file.addActions([a["import_head"], self.import_mpi_action, a["import_audio"]])
        file.addActions([a["export"], a["export_motion"]])
        file.addActions([a["import_livelink"], a["export_livelink"]])
        file.addSeparator()
        file.addAction(a["preferences"])
        file.addSeparator()
        file.addAction(a["quit"])
        self._fill_recent_menu()

        edit = bar.addMenu("&Edit")
        edit.addActions([a["undo"], a["redo"]])
        edit.addSeparator()
        edit.addAction(self.docks["history"].toggleViewAction())

        anim = bar.addMenu("&Animation")
        anim.addActions([a["insert_key"], a["delete_keys"], a["clear_keys_frame"]])
        anim.addSeparator()
        anim.addActions([a["select_all_keys"], a["deselect_keys"]])
        anim.addSeparator()
        anim.addActions([a["generate"], a["regenerate_range"], a["auto_emotion"]])

        play = bar.addMenu("&Playback")
        play.addActions([a["play"], a["stop"]])
        play.addSeparator()
        play.addActions([a["shuttle_reverse"], a["shuttle_pause"], a["shuttle_forward"]])
        play.addSeparator()
        play.addActions([a["loop"], a["mute"]])
        play.addSeparator()
        for name in ("prev_frame", "next_frame", "back_10", "forward_10", "first_frame",
                     "last_frame", "prev_key", "next_key"):  # fmt: skip
            play.addAction(a[name])
        play.addSeparator()
        play.addActions([a["range_start"], a["range_end"], a["range_clear"]])

        view = bar.addMenu("&View")
        view.addAction(a["view_all"])
        view.addAction(a["show_live"])
        view.addSeparator()
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        view.addAction(a["reset_layout"])

        help_menu = bar.addMenu("&Help")
        help_menu.addActions([a["shortcuts"], a["about"]])

    def _setup_toolbar(self) -> None:
        a = self.actions_by_id
        tb = QToolBar("Transport", self)
        tb.setObjectName("toolbar_transport")
        tb.setMovable(False)
        tb.setIconSize(tb.iconSize().scaled(18, 18, Qt.AspectRatioMode.KeepAspectRatio))
        tb.addActions([a["new"], a["open"], a["save"]])
        tb.addSeparator()
        tb.addActions([a["undo"], a["redo"]])
        tb.addSeparator()
        tb.addActions([a["first_frame"], a["prev_key"], a["shuttle_reverse"], a["play"],
                       a["next_key"], a["last_frame"]])  # fmt: skip
        tb.addSeparator()
        self.frame_spin = QSpinBox()
        self.frame_spin.setObjectName("frame_spin")
        self.frame_spin.setToolTip("Current frame")
        self.frame_spin.setKeyboardTracking(False)
        self.frame_spin.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.frame_spin.setMinimumWidth(72)
        self.frame_spin.valueChanged.connect(self.controller.set_frame)
        self.frame_spin.editingFinished.connect(self.setFocus)
        self.time_label = QLabel()
        self.time_label.setObjectName("timeDisplay")
        self.time_label.setToolTip("Time of the current frame / project length")
        tb.addWidget(QLabel(" Frame "))
        tb.addWidget(self.frame_spin)
        tb.addWidget(self.time_label)
        tb.addSeparator()
        self.range_start = QSpinBox()
        self.range_end = QSpinBox()
        for spin, tip in ((self.range_start, "First frame of the play range"),
                          (self.range_end, "Last frame of the play range")):  # fmt: skip
            spin.setToolTip(tip)
            spin.setKeyboardTracking(False)
            spin.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
            spin.setMinimumWidth(64)
            spin.editingFinished.connect(self.setFocus)
        self.range_start.valueChanged.connect(self._on_range_edited)
        self.range_end.valueChanged.connect(self._on_range_edited)
        tb.addWidget(QLabel(" Range "))
        tb.addWidget(self.range_start)
        tb.addWidget(QLabel(" – "))
        tb.addWidget(self.range_end)
        tb.addActions([a["loop"], a["mute"]])
        tb.addSeparator()
        tb.addActions([a["insert_key"], a["delete_keys"]])
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        self.speed_label = QLabel()
        self.speed_label.setObjectName("timeDisplay")
        self.fps_label = QLabel()
        self.fps_label.setObjectName("timeDisplay")
        tb.addWidget(self.speed_label)
        tb.addWidget(self.fps_label)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        self.transport = tb
        self._toolbar_spacer = spacer

    def _fix_toolbar_sizes(self) -> None:
        """Fixed sizes for everything in the transport toolbar whose text or icon changes (once
        the window is shown: the style sheet's fonts decide the widths). A widget whose size can
        change re-lays out the toolbar and then the whole main window on every new text (the
        time display changes on every frame of playback and scrubbing), which repaints the 3D
        viewport each time."""
        tb, spacer = self.transport, self._toolbar_spacer
        for lbl, longest in (
            (self.time_label, "00:00+00 / 00:00+00"),
            (self.speed_label, "+0.25×"),
            (self.fps_label, "119.88 fps"),
        ):
            _fix_size(lbl, longest)
        for spin in (self.frame_spin, self.range_start, self.range_end):
            _fix_size(spin)
        for action in tb.actions():  # Play <-> Pause, mute and loop swap their icons
            button = tb.widgetForAction(action)
            if button is not None and not action.isSeparator() and button is not spacer:
                button.setFixedSize(button.sizeHint())

    def _setup_status_bar(self) -> None:
        sb = self.statusBar()
        self.worker_status = WorkerStatus()
        self.audio_label = QLabel()
        self.audio_label.setObjectName("audioStatus")
        self.autosave_label = QLabel()
        self.autosave_label.setObjectName("autosaveStatus")
        # Fixed sizes: a status-bar label whose size hint follows its text re-lays out the main
        # window on every change (every edit flips "Saved"), which re-renders the 3D viewport.
        for lbl, longest in (
            (self.audio_label, "🔇 silent"),
            (self.autosave_label, "● Autosave failed 00:00"),
        ):
            fm = lbl.fontMetrics()
            lbl.setFixedSize(fm.horizontalAdvance(longest) + 12, fm.height() + 4)
        sb.addPermanentWidget(self.worker_status)
        sb.addPermanentWidget(self.audio_label)
        sb.addPermanentWidget(self.autosave_label)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        self._layout_restored = isinstance(state, QByteArray) and bool(
            self.restoreState(state, _STATE_VERSION)
        )

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_shown_once", False):
            self._shown_once = True
            self._fix_toolbar_sizes()
            if not self._layout_restored:
                QTimer.singleShot(0, self._apply_default_sizes)

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, _STATE_VERSION)
        for dock in self.docks.values():
            dock.setVisible(True)
        self.docks["timeline"].raise_()
        self.docks["takes"].raise_()
        self._apply_default_sizes()

    # -------------------------------------------------------------------- session
    def start_session(self, *, offer_recovery: bool = True) -> bool:
        """Offer crash recovery (if any autosaves are pending), mark this session as running
        and start autosaving. Returns True if a project was recovered."""
        recovered = self.check_recovery() if offer_recovery else False
        try:
            self.recovery.session_started()
        except OSError as exc:
            self.controller.notify(f"Autosave is off: cannot write {exc.filename} ({exc})", "error")
        self._autosave_timer.start()
        return recovered

    def check_recovery(self) -> bool:
        """Ask about autosaves of crashed sessions; recover one, discard them, or keep them."""
        items = self.recovery.pending_recoveries()
        if not items:
            return False
        action, item = dialogs.ask_recovery(self, items)
        if action == "discard":
            for it in items:
                self.recovery.discard(it)
            self.controller.notify(f"Discarded {len(items)} autosave(s)")
            return False
        if action != "recover" or item is None:
            self.controller.notify("Autosaves kept: you will be asked again next time")
            return False
        try:
            project = self.recovery.recover(item)
        except ProjectFileError as exc:
            self._error("Cannot recover the project", str(exc))
            return False
        self.controller.set_project(project, item.original_path, modified=True)
        self._last_change, self._last_write = time.time(), None
        # Protect the recovered work under this session before the old autosave goes.
        self.autosave_now()
        self.recovery.discard(item)
        name = item.original_path.name if item.original_path else "an untitled project"
        self.controller.notify(f"Recovered {name} from its autosave: save it to keep it")
        return True

    def autosave_interval_minutes(self) -> float:
        return self.preferences.autosave_minutes

    def autosave_if_due(self) -> bool:
        """Write an autosave when the policy says one is due. True if one was written."""
        if not self.controller.is_modified:
            return False
        policy = AutosavePolicy(self.preferences.autosave_minutes)
        if not policy.due(time.time(), self._last_change, self._last_write):
            return False
        return self.autosave_now()

    def autosave_now(self) -> bool:
        """Write the project to this session's recovery file now."""
        try:
            self.recovery.autosave(self.controller.project, self.controller.path)
        except (ProjectFileError, OSError) as exc:
            if not self._autosave_error:
                self.controller.notify(f"Autosave failed: {_one_line(exc)}", "error")
            self._autosave_error = _one_line(exc)
            self._update_autosave_label()
            return False
        self._autosave_error = ""
        self._last_write = self._autosaved_at = time.time()
        self._update_autosave_label()
        return True

    @staticmethod
    def _set_status_label(lbl: QLabel, text: str, color: str, tip: str) -> None:
        """Change a status label only where it differs (a style sheet change re-polishes it)."""
        if lbl.text() != text:
            lbl.setText(text)
        style = f"color: {color}"
        if lbl.styleSheet() != style:
            lbl.setStyleSheet(style)
        if lbl.toolTip() != tip:
            lbl.setToolTip(tip)

    def _update_autosave_label(self) -> None:
        lbl = self.autosave_label
        if self._autosave_error:
            self._set_status_label(lbl, "● Autosave failed", COLORS["error"], self._autosave_error)
        elif not self.controller.is_modified:
            self._set_status_label(lbl, "✓ Saved", COLORS["text_dim"], "All changes are saved")
        elif self._autosaved_at is not None and (
            self._last_change is None or self._autosaved_at >= self._last_change
        ):
            stamp = time.strftime("%H:%M", time.localtime(self._autosaved_at))
            self._set_status_label(
                lbl, f"● Autosaved {stamp}", COLORS["ok"],
                "Unsaved changes are safe in the recovery folder; save to keep them",
            )  # fmt: skip
        else:
            minutes = self.preferences.autosave_minutes
            self._set_status_label(
                lbl, "● Unsaved changes", COLORS["warning"], f"Autosave within {minutes:g} min"
            )

    # ------------------------------------------------------------------------ files
    def project_name(self) -> str:
        p = self.controller.path
        if p is not None:
            return p.name
        return str(self.controller.project.metadata.get("title") or "Untitled")

    def maybe_save(self) -> bool:
        """Before the project goes away: True to go on (saved or discarded), False to stop."""
        if not self.controller.is_modified:
            return True
        answer = dialogs.ask_unsaved_changes(self, self.project_name())
        if answer == "save":
            return self.save()
        return answer == "discard"

    def _replace_project(self, project: Project, path: Path | None) -> None:
        old = self.controller.path
        self.controller.set_playing(False)
        self.controller.set_project(project, path)
        self.recovery.remove_autosave(old)
        self._last_change, self._last_write = None, time.time()
        self._autosaved_at = None
        self._update_autosave_label()

    def new_project(self) -> bool:
        if not self.maybe_save():
            return False
        project = Project.new(fps=25, duration_frames=250)
        from dataclasses import replace

        project.camera = replace(project.camera, ipd=self.preferences.ipd_mm / 1000.0)
        self._replace_project(project, None)
        self.controller.notify("New project")
        return True

    def open_project(self, path: Path | str | None = None, *, ask_to_save: bool = True) -> bool:
        """Open a project file (asks for one if ``path`` is None). A bad file gives a message
        and changes nothing; a project whose external audio is missing opens with a warning."""
        if ask_to_save and not self.maybe_save():
            return False
        if path is None:
            start = self.controller.path.parent if self.controller.path else None
            path = dialogs.ask_open_path(self, start)
            if path is None:
                return False
        path = Path(path)
        missing_note = ""
        try:
            try:
                project = load_project(path)
            except ProjectFileError as first:
                # Maybe only an external asset is missing: open it anyway and say so, rather
                # than refusing a project that is otherwise fine.
                try:
                    project = load_project(path, missing_assets="keep")
                except ProjectFileError:
                    raise first from None
                missing_note = first.problem if hasattr(first, "problem") else str(first)
        except ProjectFileError as exc:
            self._error("Cannot open the project", str(exc))
            return False
        except Exception as exc:  # unexpected: report it, keep the current project
            log.error("opening %s failed:\n%s", path, traceback.format_exc())
            self._error("Cannot open the project", f"{path}: {_one_line(exc)}")
            return False
        self._replace_project(project, Path(os.path.abspath(path)))
        dialogs.add_recent_file(self.settings, path)
        self.controller.notify(f"Opened {path}")
        if missing_note:
            self._error(
                "Some files of the project are missing",
                f"{path.name} opened, but {missing_note}. Those clips stay silent until the "
                "files are back.",
            )
        return True

    def save(self) -> bool:
        if self.controller.path is None:
            return self.save_as()
        return self._save_to(self.controller.path)

    def save_as(self, path: Path | str | None = None) -> bool:
        if path is None:
            suggested = self.controller.path or Path.home() / f"{self.project_name()}.ths"
            path = dialogs.ask_save_path(self, suggested)
            if path is None:
                return False
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        old = self.controller.path
        try:
            save_project(self.controller.project, path)
        except ProjectFileError as exc:
            self._error("Cannot save the project", str(exc))
            return False
        except Exception as exc:
            log.error("saving %s failed:\n%s", path, traceback.format_exc())
            self._error("Cannot save the project", f"{path}: {_one_line(exc)}")
            return False
        path = Path(os.path.abspath(path))
        self.controller.mark_saved(path)
        self.recovery.remove_autosave(path)
        if old != path:
            self.recovery.remove_autosave(old)
        self._last_change, self._last_write = None, time.time()
        self._update_autosave_label()
        dialogs.add_recent_file(self.settings, path)
        self.controller.notify(f"Saved {path}")
        return True

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = dialogs.recent_files(self.settings)
        for p in files:
            act = self.recent_menu.addAction(p.name)
            act.setToolTip(str(p))
            act.triggered.connect(lambda _c=False, p=p: self.open_project(p))
        if not files:
            none = self.recent_menu.addAction("No recent projects")
            none.setEnabled(False)

    # ----------------------------------------------------------------------- import
    def run_job(
        self,
        job: Callable[..., Any],
        *args: Any,
        name: str,
        on_result: Callable[[Any], None],
        error_title: str = "The job failed",
    ) -> Worker:
        """Run a Qt-free generator job in a worker, with progress and Cancel in the status
        bar. ``on_result`` runs in the GUI thread; failures give a message (no traceback)."""
        worker = Worker(job, *args, name=name)
        worker.finished_ok.connect(on_result)
        worker.failed.connect(lambda msg, _tb: self._error(error_title, msg))
        worker.cancelled.connect(lambda: self.controller.notify(f"{name}: cancelled", "warning"))
        worker.done.connect(lambda: self._jobs.remove(worker) if worker in self._jobs else None)
        self._jobs.append(worker)
        self.worker_status.track(worker)
        worker.start()
        return worker

    def import_audio(self, path: Path | str | None = None) -> Worker | None:
        """Add an audio file as a clip at the current frame (embedded in the project). The
        file is read and checked in a worker; the clip is added as one undo step."""
        if path is None:
            path = dialogs.ask_audio_path(self)
            if path is None:
                return None
        path = Path(path)
        frame = self.controller.frame
        return self.run_job(
            read_audio_job,
            path,
            name=f"Import {path.name}",
            on_result=lambda r: self._add_audio(path, frame, *r),
            error_title="Cannot import the audio",
        )

    def _add_audio(self, path: Path, frame: int, data: bytes, duration_s: float) -> None:
        from studio.project_ops import audio_asset_key

        c = self.controller
        project = c.project
        key = base = audio_asset_key(path.name)
        n = 1
        while key in project.assets and project.assets[key] != data:
            n += 1
            key = f"{Path(base).with_suffix('')}_{n}{Path(base).suffix}"
        clip = AudioClip.new(path.stem, key, offset=frame)
        edits: list = [AddAudioClip(clip, asset_data=data)]
        end = frame + round(duration_s * project.frame_rate.fps)
        if end > project.duration:
            edits.append(SetSettings(duration=end, work_range=(project.work_range[0], end)))
        if c.push(CompoundEdit(edits, label=f"Import audio {path.name}")):
            c.notify(f"Imported {path.name} ({duration_s:.2f} s) at frame {frame}")

    def import_head(self, path: Path | str | None = None) -> Worker | None:
        """Use a head, embedded in the project as a rigged .thead (undoable): a head file, a
        3DGS .ply / .splat (keypoints placed automatically; fix them by dragging in the
        viewport) or a portrait image (lifted to a 2.5D head). A folder is taken as an MPI head
        (:meth:`import_mpi_head`). Runs in a worker; a failure changes nothing."""
        from studio.head_import import IMAGE_SUFFIXES, PLY_SUFFIXES

        if path is None:
            path = dialogs.ask_head_path(self)
            if path is None:
                return None
        path = Path(path)
        if path.is_dir():
            return self.import_mpi_head(path)
        known = (".thead", *PLY_SUFFIXES, *IMAGE_SUFFIXES)
        if path.suffix.lower() not in known:
            self._error(
                "Cannot import the head",
                f"{path.name}: not a head ({', '.join(known)}); MPI heads are folders: "
                "use File > Import MPI Head Folder",
            )
            return None

        def done(result: tuple[bytes, str]) -> None:
            data, description = result
            head = HeadRef(asset=f"head/{path.stem}.thead", kind="gaussian")
            if self.controller.push(SetHead(head, data, label=f"Import head {path.name}")):
                self.controller.notify(f"Head {path.name}: {description}")

        return self.run_job(
            read_head_job, path, name=f"Import {path.name}", on_result=done,
            error_title="Cannot import the head",
        )  # fmt: skip

    def import_mpi_head(self, folder: Path | str | None = None) -> Worker | None:
        """Use an MPI head folder (per-plane RGBA PNGs + mpi.json) as the head (undoable). The
        folder is checked in a worker first; a bad one (missing planes, mismatched sizes) gives
        one message and changes nothing. The project refers to the folder (an MPI head is not
        embedded): its absolute path."""
        if folder is None:
            start = self.controller.path.parent if self.controller.path is not None else None
            folder = ask_mpi_folder(self, start)
            if folder is None:
                return None
        folder = Path(folder).expanduser().absolute()

        def done(description: str) -> None:
            head = HeadRef(asset=str(folder), kind="mpi")
            if self.controller.push(SetHead(head, label=f"Import MPI head {folder.name}")):
                self.controller.notify(f"MPI head {folder.name}: {description}")

        return self.run_job(
            read_mpi_job, folder, name=f"Import {folder.name}", on_result=done,
            error_title="Cannot import the head",
        )  # fmt: skip

    # ---------------------------------------------------------------------- editing
    def insert_key(self) -> None:
        c = self.controller
        chans = c.keying_channels()
        if c.insert_key(chans):
            which = "selected" if c.selected_channels else f"{len(chans)}"
            c.notify(f"Keyed {which} channels at frame {c.frame}")

    def set_range_start(self) -> None:
        c = self.controller
        _start, end = c.play_range
        c.set_play_range(min(c.frame, end - 1), end)

    def set_range_end(self) -> None:
        c = self.controller
        start, _end = c.play_range
        c.set_play_range(start, max(c.frame + 1, start + 1))

    def _on_range_edited(self) -> None:
        start, end = self.range_start.value(), self.range_end.value() + 1
        if (start, end) != self.controller.play_range and start < end:
            self.controller.set_play_range(start, end)

    # --------------------------------------------------------------------- playback
    def toggle_play(self) -> None:
        c = self.controller
        if not c.playing:
            c.set_play_speed(1.0)
        c.toggle_playing()

    def stop_and_return(self) -> None:
        self.playback.stop_and_return()

    def shuttle(self, direction: int) -> None:
        """J/L: play backwards/forwards; pressing again doubles the speed (up to 8x)."""
        c = self.controller
        if c.playing and (c.play_speed > 0) == (direction > 0):
            c.set_play_speed(max(-8.0, min(8.0, c.play_speed * 2)))
        else:
            c.set_play_speed(float(direction))
            c.set_playing(True)

    # ------------------------------------------------------------------------ dialogs
    def edit_preferences(self) -> None:
        new = dialogs.edit_preferences(self, self.preferences, AudioOutput.output_devices())
        if new is None:
            return
        self.apply_preferences(new)

    def apply_preferences(self, prefs: Preferences) -> None:
        """Use and store ``prefs``."""
        old, self.preferences = self.preferences, prefs.validated()
        dialogs.save_preferences(self.settings, self.preferences)
        if old.audio_device != self.preferences.audio_device:
            self.playback.set_device(self.preferences.audio_device or None)
        self._update_autosave_label()
        self.controller.notify("Preferences saved")

    def show_export_dialog(self, kind: str | None = None) -> QWidget:
        """File > Export (``kind`` None: the last output kind; "csv": Export Motion). One
        dialog, kept: closed during an export, the status bar keeps its progress and Cancel."""
        from studio.ui.export_dialog import ExportDialog

        dlg = getattr(self, "export_dialog", None)
        if dlg is None:
            self.export_dialog = dlg = ExportDialog(
                self.controller, self, settings=self.settings, worker_status=self.worker_status,
                kind=kind,
            )  # fmt: skip
        elif not dlg.is_running:
            dlg.refresh(kind)
        dlg.show()
        dlg.raise_()
        dlg.activateWindow()
        return dlg

    def show_generate_dialog(self, regenerate: bool = False) -> QWidget:
        """Animation > Generate from Audio (Ctrl+G), or Regenerate Range (the play range
        prefilled). One dialog, kept: closed while generating, the status bar keeps the job's
        progress and Cancel."""
        from studio.ui.generate_dialog import GenerateDialog

        dlg = getattr(self, "generate_dialog", None)
        frame_range = self.controller.play_range if regenerate else None
        if dlg is None:
            self.generate_dialog = dlg = GenerateDialog(
                self.controller, self, frame_range=frame_range,
                viewport=self.panels.get("viewport"), device=self.preferences.device,
                worker_status=self.worker_status,
            )  # fmt: skip
        elif not dlg.is_running:
            dlg.refresh(frame_range)
        dlg.show()
        dlg.raise_()
        dlg.activateWindow()
        return dlg

    def auto_emotion_from_take(self) -> bool:
        """Animation > Auto-Emotion from Take: key the active take's emotion curve from its
        expression (studio.project_ops.auto_emotion_keys) over the play range when one is
        set, else the whole project; one undo step. Returns whether keys were set; a state
        with nothing to read (no take, no expression keys, a range too short) is a message."""
        from studio.document import DocumentError
        from studio.project_ops import auto_emotion_keys

        c = self.controller
        project = c.project
        try:
            take = project.active_take
        except DocumentError:
            take = None
        if take is None:
            c.notify("Auto-emotion: there is no active take to read an emotion from", "warning")
            return False
        a, b = c.play_range
        frame_range = None if (a, b) == (0, project.duration) else (a, b)
        try:
            found = auto_emotion_keys(project, take.id, frame_range)
        except (ValueError, DocumentError) as exc:
            c.notify(f"Auto-emotion: {exc}", "warning")
            return False
        if not c.push(found.edit):
            return False
        fa, fb = found.frame_range
        c.notify(
            f"Auto-emotion: set {len(found.frames)} emotion keys on {take.name!r} "
            f"(frames {fa}–{fb - 1})"
        )
        return True

    def show_shortcuts(self) -> None:
        dlg = dialogs.ShortcutsDialog(self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.show()

    def show_about(self) -> None:
        from studio import __version__

        dialogs.show_info(
            self,
            f"About {APP_NAME}",
            f"{APP_NAME} {__version__}\n\nAnimate neural talking heads, see them live in 3D and "
            "export stereo VR clips.",
        )

    def _error(self, title: str, text: str) -> None:
        """A one-line problem: in the log, the status bar and a dialog (never a traceback)."""
        self.controller.notify(f"{title}: {text}", "error")
        dialogs.show_error(self, title, text)

    # ---------------------------------------------------------------------- updates
    def _on_message(self, text: str, level: str) -> None:
        self.statusBar().showMessage(text, 8000 if level == "info" else 15000)
        if level == "error":
            log.debug("error shown: %s", text)

    def _on_history(self) -> None:
        c = self.controller
        a = self.actions_by_id
        a["undo"].setEnabled(c.history.can_undo)
        a["redo"].setEnabled(c.history.can_redo)
        a["undo"].setText(f"&Undo {c.history.undo_label}".rstrip())
        a["redo"].setText(f"&Redo {c.history.redo_label}".rstrip())
        if c.is_modified:
            self._last_change = time.time()
        self._update_title()
        self._update_autosave_label()

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.project_name()}[*] — {APP_NAME}")
        self.setWindowModified(self.controller.is_modified)

    def _on_project_replaced(self) -> None:
        self._update_ranges()
        self._on_frame(self.controller.frame)
        self._on_history()
        self._on_playing(self.controller.playing)
        fr = self.controller.project.frame_rate
        self.fps_label.setText(f"{fr.fps:g} fps")

    def _on_document(self, kind: str, _detail: dict) -> None:
        if kind == "settings":
            self._update_ranges()
            fr = self.controller.project.frame_rate
            self.fps_label.setText(f"{fr.fps:g} fps")
            self._on_frame(self.controller.frame)

    def _update_ranges(self) -> None:
        c = self.controller
        d = c.project.duration
        start, end = c.play_range
        for spin, lo, hi, v in (
            (self.frame_spin, 0, d - 1, c.frame),
            (self.range_start, 0, d - 1, start),
            (self.range_end, 0, d - 1, end - 1),
        ):
            spin.blockSignals(True)
            spin.setRange(lo, hi)
            spin.setValue(v)
            spin.blockSignals(False)

    def _on_frame(self, frame: int) -> None:
        c = self.controller
        self.frame_spin.blockSignals(True)
        self.frame_spin.setValue(frame)
        self.frame_spin.blockSignals(False)
        fr = c.project.frame_rate
        self.time_label.setText(
            f"{_timecode(frame, fr.fps)} / {_timecode(c.project.duration, fr.fps)}"
        )

    def _on_playing(self, playing: bool) -> None:
        a = self.actions_by_id["play"]
        a.setIcon(icon("pause" if playing else "play"))
        a.setText("&Pause" if playing else "&Play")
        speed = self.controller.play_speed
        self.speed_label.setText(f"{speed:+g}×" if playing and speed != 1 else "")

    def _on_audio_status(self, text: str) -> None:
        lbl = self.audio_label
        if text and text != "muted":
            self._set_status_label(lbl, "🔇 silent", COLORS["warning"], f"No sound: {text}")
        elif text == "muted":
            self._set_status_label(lbl, "🔇 muted", COLORS["text_dim"], "Audio muted (Ctrl+M)")
        else:
            self._set_status_label(lbl, "", COLORS["text_dim"], "")

    # ------------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing and not self.maybe_save():
            event.ignore()
            return
        self._closing = True
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop playback and jobs, end the session cleanly (its autosaves go), store the
        layout. Safe to call twice."""
        self.controller.set_playing(False)
        self.playback.shutdown()
        self._autosave_timer.stop()
        for panel in self.panels.values():
            # Panels may free what they hold outside Qt's parent tree (GL contexts, menus).
            fn = getattr(panel, "shutdown", None)
            if callable(fn):
                try:
                    fn()
                except Exception:
                    log.exception("shutting down a panel failed")
        export = getattr(self, "export_dialog", None)
        if export is not None:
            export.shutdown()
        generate = getattr(self, "generate_dialog", None)
        if generate is not None:
            generate.shutdown()
        for w in list(self._jobs) + [w for w in active_workers() if w not in self._jobs]:
            w.cancel()
        for w in list(self._jobs):
            w.wait(5000)
        try:
            self.recovery.session_ended_cleanly()
        except OSError as exc:
            log.warning("could not clean the recovery folder: %s", exc)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(_STATE_VERSION))
        self.settings.sync()
        logging.getLogger().removeHandler(self._log_handler)


def _fix_size(widget: QWidget, longest: str | None = None) -> None:
    """Give ``widget`` a fixed size: room for ``longest`` (a label's widest text) or, for a spin
    box, for six-digit values (an hour at 25 fps is 90,000 frames). A fixed-size widget does
    not ask its layout to re-lay out when its text changes (QWidget::updateGeometry skips
    widgets whose minimum and maximum sizes are equal)."""
    widget.ensurePolished()  # the style sheet's font decides the width
    if isinstance(widget, QSpinBox):
        lo, hi, value = widget.minimum(), widget.maximum(), widget.value()
        widget.blockSignals(True)
        widget.setRange(0, 999_999)
        hint = widget.sizeHint()
        widget.setRange(lo, hi)
        widget.setValue(value)
        widget.blockSignals(False)
        widget.setFixedSize(max(hint.width(), widget.minimumWidth()), hint.height())
        return
    fm = widget.fontMetrics()
    widget.setFixedSize(fm.horizontalAdvance(longest or widget.text()) + 12, fm.height() + 4)


def _timecode(frame: int, fps: float) -> str:
    """mm:ss+ff (frames within the second), as animators read time."""
    fps_i = max(1, round(fps))
    seconds = int(frame // fps_i)
    return f"{seconds // 60:02d}:{seconds % 60:02d}+{int(frame % fps_i):02d}"
