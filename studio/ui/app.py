"""Starting the studio: the QApplication, the theme, the main window, the first project.

With no project the studio opens on the demo (``resources/demo/demo.ths``, or the same project
built on the fly) and plays it, so a newcomer sees the head talk within seconds. Uncaught
exceptions in the GUI become a one-line message (dialog + log with the traceback), never a
crash or a traceback in the user's face.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from studio.ui.controller import StudioController

__all__ = ["create_application", "load_initial_project", "run_studio"]

log = logging.getLogger(__name__)

ORGANIZATION = "Talking Head Studio"
APPLICATION = "talking-head-studio"


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (existing one reused), named and themed."""
    from studio import __version__
    from studio.ui.style import apply_theme

    app = QApplication.instance()
    if app is None:
        # One share group for every Qt GL context: the export worker's context shares it.
        QApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
        app = QApplication(argv if argv is not None else [sys.argv[0]])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Talking Head Studio")
    app.setApplicationVersion(__version__)
    apply_theme(app)
    return app  # type: ignore[return-value]


def load_initial_project(window, path: Path | None) -> bool:
    """Open ``path``, or the demo project when None. Returns True if the demo was opened.

    The demo file is used when it exists and loads; otherwise the demo is built (about a
    second). A bad ``path`` leaves an empty project and a message (dialog + log).
    """
    if path is not None:
        window.open_project(path, ask_to_save=False)
        return False
    from studio.demo import DEMO_PROJECT, build_demo_project
    from studio.document.fileformat import ProjectFileError, load_project

    project = None
    if DEMO_PROJECT.is_file():
        try:
            project = load_project(DEMO_PROJECT)
        except ProjectFileError as exc:
            log.warning("demo project unreadable, building it instead: %s", exc)
    if project is None:
        try:
            project = build_demo_project()
        except Exception as exc:  # a broken install must still open an empty studio
            log.error("building the demo failed:\n%s", traceback.format_exc())
            window.controller.notify(f"The demo project is unavailable: {exc}", "error")
            return False
    window.controller.set_project(project, None)
    window.controller.notify("Demo project: press Space to play or pause, F1 for shortcuts")
    return True


def _install_excepthook(window) -> None:
    """Report exceptions escaping Qt slots as messages; the traceback goes to the log."""
    from studio.ui import dialogs

    def hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("unexpected error:\n%s", details)
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc_type.__name__
        try:
            window.controller.notify(f"Something went wrong: {line}", "error")
            dialogs.show_error(
                window, "Something went wrong", f"{exc_type.__name__}: {line}\n\n"
                "Your project is unchanged; save it under a new name to be safe.",
            )  # fmt: skip
        except Exception:
            sys.__excepthook__(exc_type, exc, tb)

    sys.excepthook = hook


def run_studio(
    path: Path | str | None = None,
    *,
    screenshot: Path | str | None = None,
    screenshot_delay_ms: int = 2500,
) -> int:
    """Open the studio window (on ``path`` or the demo) and run until it closes.

    ``screenshot``: save a PNG of the window after ``screenshot_delay_ms`` and quit (for docs
    and visual checks; the demo plays meanwhile). Returns the exit status.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_application()
    from studio.ui.main_window import MainWindow

    controller = StudioController()
    window = MainWindow(controller)
    _install_excepthook(window)
    window.show()

    def first_project() -> None:
        recovered = window.start_session(offer_recovery=screenshot is None)
        if recovered:
            return
        demo = load_initial_project(window, Path(path) if path is not None else None)
        if demo and screenshot is None:
            controller.set_playing(True)
        elif demo:
            controller.set_frame(min(38, controller.project.duration - 1))

    # After the window is on screen: the studio appears at once, the project follows.
    QTimer.singleShot(0, first_project)
    if screenshot is not None:
        out = Path(screenshot)

        def grab() -> None:
            out.parent.mkdir(parents=True, exist_ok=True)
            ok = window.grab().save(str(out))
            print(f"screenshot {'saved to' if ok else 'FAILED:'} {out}", file=sys.stderr)
            window.close()

        QTimer.singleShot(screenshot_delay_ms, grab)
    status = app.exec()
    sys.excepthook = sys.__excepthook__
    return int(status)
