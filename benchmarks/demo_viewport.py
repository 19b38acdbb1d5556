"""Shared by the viewport benchmarks (scrub.py, playback.py): the demo project in a viewport,
either a bare ViewportWidget of a given size or the one docked in the real studio window.

Needs an X display and a QApplication. Not a benchmark itself.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any


def open_demo_viewport(app: Any, in_window: bool, size: str, mode: str, tag: str):
    """(controller, main window or None, viewport) on the demo project, the head loaded.

    in_window: the viewport docked in a MainWindow (temporary settings and recovery folders
    named after ``tag``), else a bare ViewportWidget of ``size`` ("WxH", logical pixels).
    Raises RuntimeError when the viewport has no GL or the head did not load within 60 s.
    """
    from studio.demo import build_demo_project
    from studio.ui.controller import StudioController
    from studio.viewport.widget import ViewportWidget

    ctrl = StudioController(build_demo_project())
    window = None
    if in_window:
        from PySide6.QtCore import QSettings

        from studio.document.recovery import RecoveryManager
        from studio.ui.main_window import MainWindow

        tmp = Path(tempfile.mkdtemp(prefix=f"ths-{tag}-"))
        window = MainWindow(
            ctrl,
            settings=QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat),
            recovery=RecoveryManager(tmp / "recovery"),
        )
        window.show()
        vp = window.panels["viewport"]
        if not isinstance(vp, ViewportWidget):
            raise RuntimeError(f"no viewport in the main window: {vp}")
    else:
        w, h = (int(v) for v in size.lower().split("x"))
        vp = ViewportWidget(ctrl)
        vp.resize(w, h)
        vp.show()
    vp.set_view_mode(mode)
    t_end = time.perf_counter() + 60
    while not vp.head_ready and time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.005)
    if not vp.gl_available or not vp.head_ready:
        raise RuntimeError(f"viewport not ready: gl_error={vp.gl_error} head_error={vp.head_error}")
    return ctrl, window, vp
