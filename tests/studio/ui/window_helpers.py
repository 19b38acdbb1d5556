"""A studio main window for UI tests: settings and recovery under ``tmp_path`` and an audio
output without a device (as on CI machines). Importable from tests/studio/ui as
``window_helpers``."""

from __future__ import annotations

from pathlib import Path

from studio.document import Project
from studio.document.recovery import RecoveryManager
from studio.ui import dialogs
from studio.ui.controller import StudioController
from studio.ui.main_window import MainWindow
from studio.ui.playback import AudioOutput


class SilentAudio(AudioOutput):
    """An output with no device, as on CI machines."""

    @staticmethod
    def probe(device=None):
        return "no audio output device found"


def make_window(
    qtbot,
    tmp_path: Path,
    project: Project,
    *,
    recovery_dir: Path | None = None,
    show: bool = True,
    focus: bool = False,
) -> MainWindow:
    """A MainWindow on ``project`` registered with qtbot; ``show``: shown and exposed;
    ``focus``: also activated and focused (keyboard shortcuts)."""
    w = MainWindow(
        StudioController(project),
        settings=dialogs.open_settings(tmp_path / "settings.ini"),
        recovery=RecoveryManager(recovery_dir or tmp_path / "recovery"),
        audio=SilentAudio(),
    )
    qtbot.addWidget(w)
    if show:
        w.show()
        qtbot.waitExposed(w)
    if focus:
        w.activateWindow()
        w.setFocus()
    return w
