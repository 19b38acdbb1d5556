"""Dialogs and preferences: preferences (stored with QSettings), keyboard shortcuts, crash
recovery, unsaved changes, errors and file choosers.

Every question the main window asks goes through a module-level function here
(``ask_recovery``, ``ask_unsaved_changes``, ``show_error``, ``ask_open_path``...). Tests
monkeypatch these functions to answer without a modal dialog blocking the event loop.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.document.recovery import RecoveryItem
from studio.ui.actions import shortcut_table

__all__ = [
    "DEVICES",
    "Preferences",
    "PreferencesDialog",
    "RecoveryDialog",
    "ShortcutsDialog",
    "add_recent_file",
    "ask_audio_path",
    "ask_head_path",
    "ask_open_path",
    "ask_recovery",
    "ask_save_path",
    "ask_unsaved_changes",
    "edit_preferences",
    "load_preferences",
    "open_settings",
    "recent_files",
    "save_preferences",
    "settings_path",
    "show_error",
    "show_info",
]

DEVICES = ("auto", "cpu", "gpu")
PROJECT_FILTER = "Talking Head Studio projects (*.ths);;All files (*)"
AUDIO_FILTER = "Audio (*.wav *.flac *.ogg *.aiff *.aif);;All files (*)"
HEAD_FILTER = (
    "Heads and portraits (*.thead *.ply *.splat *.png *.jpg *.jpeg *.bmp *.webp);;All files (*)"
)
MAX_RECENT = 10


# ------------------------------------------------------------------------------ settings
def settings_path() -> Path:
    """``$XDG_CONFIG_HOME/talking-head-studio/studio.ini`` (else ``~/.config/...``), read at
    call time so tests can point it at a temporary folder."""
    cfg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(cfg) if cfg and os.path.isabs(cfg) else Path.home() / ".config"
    return base / "talking-head-studio" / "studio.ini"


def open_settings(path: Path | None = None) -> QSettings:
    """The studio's settings as an INI file (same format on every OS, easy to inspect)."""
    return QSettings(str(path or settings_path()), QSettings.Format.IniFormat)


@dataclass
class Preferences:
    """User preferences. ``device``: compute device for models (auto | cpu | gpu);
    ``autosave_minutes`` > 0; ``audio_device``: output device name ("" = system default);
    ``ipd_mm``: stereo interpupillary distance for new projects and previews."""

    device: str = "auto"
    autosave_minutes: float = 2.0
    audio_device: str = ""
    ipd_mm: float = 63.0
    extra: dict[str, str] = field(default_factory=dict)

    def validated(self) -> Preferences:
        """A copy with out-of-range values replaced by defaults (settings files get edited)."""
        d = Preferences()
        return Preferences(
            device=self.device if self.device in DEVICES else d.device,
            autosave_minutes=(
                float(self.autosave_minutes)
                if 0.1 <= float(self.autosave_minutes) <= 120
                else d.autosave_minutes
            ),
            audio_device=str(self.audio_device or ""),
            ipd_mm=float(self.ipd_mm) if 40.0 <= float(self.ipd_mm) <= 90.0 else d.ipd_mm,
        )


def _float(v: object, default: float) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def load_preferences(settings: QSettings) -> Preferences:
    """Preferences from ``settings`` (defaults for missing or invalid values)."""
    d = Preferences()
    return Preferences(
        device=str(settings.value("preferences/device", d.device)),
        autosave_minutes=_float(
            settings.value("preferences/autosave_minutes", d.autosave_minutes), d.autosave_minutes
        ),
        audio_device=str(settings.value("preferences/audio_device", d.audio_device) or ""),
        ipd_mm=_float(settings.value("preferences/ipd_mm", d.ipd_mm), d.ipd_mm),
    ).validated()


def save_preferences(settings: QSettings, prefs: Preferences) -> None:
    for key, value in asdict(prefs.validated()).items():
        if key != "extra":
            settings.setValue(f"preferences/{key}", value)
    settings.sync()


def recent_files(settings: QSettings) -> list[Path]:
    """Recently opened or saved projects, newest first, existing files only."""
    raw = settings.value("recent/files", [])
    if isinstance(raw, str):
        raw = [raw]
    out = []
    for p in raw or []:
        path = Path(str(p))
        if path.is_file() and path not in out:
            out.append(path)
    return out[:MAX_RECENT]


def add_recent_file(settings: QSettings, path: Path) -> None:
    path = Path(os.path.abspath(path))
    files = [path, *[p for p in recent_files(settings) if p != path]][:MAX_RECENT]
    settings.setValue("recent/files", [str(p) for p in files])
    settings.sync()


# ------------------------------------------------------------------------------ dialogs
class PreferencesDialog(QDialog):
    """Edits a copy of the preferences; :meth:`preferences` returns the result."""

    def __init__(
        self, prefs: Preferences, audio_devices: list[str], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setMinimumWidth(420)
        form = QFormLayout()
        self.device = QComboBox()
        for value, text in (
            ("auto", "Automatic (GPU when available)"),
            ("cpu", "CPU"),
            ("gpu", "GPU (CUDA)"),
        ):
            self.device.addItem(text, value)
        self.device.setCurrentIndex(max(0, self.device.findData(prefs.device)))
        self.device.setToolTip("Where motion generation and neural rendering run")
        self.autosave = QDoubleSpinBox()
        self.autosave.setRange(0.5, 120.0)
        self.autosave.setDecimals(1)
        self.autosave.setSuffix(" min")
        self.autosave.setValue(prefs.autosave_minutes)
        self.autosave.setToolTip("Unsaved changes are written to the recovery folder this often")
        self.audio = QComboBox()
        self.audio.addItem("System default", "")
        for name in audio_devices:
            self.audio.addItem(name, name)
        if prefs.audio_device and self.audio.findData(prefs.audio_device) < 0:
            self.audio.addItem(f"{prefs.audio_device} (not connected)", prefs.audio_device)
        self.audio.setCurrentIndex(max(0, self.audio.findData(prefs.audio_device)))
        if not audio_devices:
            self.audio.setToolTip("No audio output device found: playback is silent")
        self.ipd = QDoubleSpinBox()
        self.ipd.setRange(40.0, 90.0)
        self.ipd.setDecimals(1)
        self.ipd.setSuffix(" mm")
        self.ipd.setValue(prefs.ipd_mm)
        self.ipd.setToolTip("Distance between the stereo cameras (the viewer's eyes)")
        form.addRow("Compute device", self.device)
        form.addRow("Autosave every", self.autosave)
        form.addRow("Audio output", self.audio)
        form.addRow("Stereo IPD", self.ipd)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def preferences(self) -> Preferences:
        return Preferences(
            device=self.device.currentData(),
            autosave_minutes=self.autosave.value(),
            audio_device=self.audio.currentData() or "",
            ipd_mm=self.ipd.value(),
        ).validated()


class ShortcutsDialog(QDialog):
    """Every shortcut, grouped by section (built from studio.ui.actions.ACTIONS)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.resize(520, 640)
        rows = shortcut_table()
        self.table = QTableWidget(len(rows), 3)
        self.table.setObjectName("shortcuts_table")
        self.table.setHorizontalHeaderLabels(["Section", "Command", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        for r, (section, command, keys) in enumerate(rows):
            for c, text in enumerate((section, command, keys)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        note = QLabel(
            "J / K / L shuttle like a video editor: press J or L again to play faster. "
            "Shortcuts act on the whole window; while typing in a field, keys go to the field. "
            "Export (Ctrl+E), Export Motion (Ctrl+Shift+E), Generate from Audio (Ctrl+G) and "
            "Regenerate Range (Ctrl+Shift+G) run in the background: the status bar keeps their "
            "progress and Cancel."
        )
        note.setWordWrap(True)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(note)
        layout.addWidget(close)


def _describe(item: RecoveryItem) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(item.saved_at))
    name = item.original_path.name if item.original_path else "Untitled project"
    where = str(item.original_path.parent) if item.original_path else "never saved"
    return f"{name}  —  autosaved {when}\n{where}"


class RecoveryDialog(QDialog):
    """Lists autosaves left by a crashed session. ``choice`` after exec: ("recover", item),
    ("discard", None) to delete them all, or ("later", None) to keep them for next time."""

    def __init__(self, items: list[RecoveryItem], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Recover unsaved work")
        self.setMinimumWidth(520)
        self.items = items
        self.choice: tuple[str, RecoveryItem | None] = ("later", None)
        text = QLabel(
            "Talking Head Studio did not close normally last time. These autosaves hold "
            "changes that were never saved. Recover one to continue where you left off."
        )
        text.setWordWrap(True)
        self.list = QListWidget()
        for it in items:
            row = QListWidgetItem(_describe(it))
            row.setData(Qt.ItemDataRole.UserRole, it)
            self.list.addItem(row)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _i: self._choose("recover"))
        buttons = QDialogButtonBox()
        recover = QPushButton("Recover")
        recover.setDefault(True)
        discard = QPushButton("Discard All")
        later = QPushButton("Decide Later")
        buttons.addButton(recover, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(discard, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(later, QDialogButtonBox.ButtonRole.RejectRole)
        recover.clicked.connect(lambda: self._choose("recover"))
        discard.clicked.connect(lambda: self._choose("discard"))
        later.clicked.connect(lambda: self._choose("later"))
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.list)
        layout.addWidget(buttons)

    def _choose(self, action: str) -> None:
        item = self.list.currentItem()
        chosen = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self.choice = (action, chosen if action == "recover" else None)
        self.accept() if action == "recover" else self.reject()


# ---------------------------------------------------------- questions (monkeypatch points)
def ask_recovery(
    parent: QWidget | None, items: list[RecoveryItem]
) -> tuple[str, RecoveryItem | None]:
    """Ask what to do with crashed sessions' autosaves: ("recover", item), ("discard", None)
    or ("later", None)."""
    dlg = RecoveryDialog(items, parent)
    try:
        dlg.exec()
        return dlg.choice
    finally:
        dlg.deleteLater()


def ask_unsaved_changes(parent: QWidget | None, name: str) -> str:
    """ "save", "discard" or "cancel" for a project with unsaved changes."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Unsaved changes")
    box.setText(f"Save the changes to {name}?")
    box.setInformativeText("Your changes will be lost if you don't save them.")
    box.setStandardButtons(
        QMessageBox.StandardButton.Save
        | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel
    )
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    try:
        answer = box.exec()
    finally:
        box.deleteLater()
    return {
        QMessageBox.StandardButton.Save: "save",
        QMessageBox.StandardButton.Discard: "discard",
    }.get(QMessageBox.StandardButton(answer), "cancel")


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    """A short error message (one or two lines; details go to the log panel)."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText("Nothing was lost. Details are in the Log panel.")
    try:
        box.exec()
    finally:
        box.deleteLater()


def show_info(parent: QWidget | None, title: str, text: str) -> None:
    box = QMessageBox(
        QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, parent
    )
    try:
        box.exec()
    finally:
        box.deleteLater()


def ask_open_path(parent: QWidget | None, start: Path | None = None) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open Project", str(start or ""), PROJECT_FILTER)
    return Path(path) if path else None


def ask_save_path(parent: QWidget | None, suggested: Path | None = None) -> Path | None:
    path, _ = QFileDialog.getSaveFileName(
        parent, "Save Project As", str(suggested or "untitled.ths"), PROJECT_FILTER
    )
    if not path:
        return None
    p = Path(path)
    return p if p.suffix else p.with_suffix(".ths")


def ask_audio_path(parent: QWidget | None, start: Path | None = None) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Import Audio", str(start or ""), AUDIO_FILTER)
    return Path(path) if path else None


def ask_head_path(parent: QWidget | None, start: Path | None = None) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Import Head", str(start or ""), HEAD_FILTER)
    return Path(path) if path else None


def edit_preferences(
    parent: QWidget | None, prefs: Preferences, audio_devices: list[str]
) -> Preferences | None:
    """The preferences dialog; the new preferences, or None if cancelled."""
    dlg = PreferencesDialog(prefs, audio_devices, parent)
    try:
        return dlg.preferences() if dlg.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dlg.deleteLater()
