"""The demo project in a viewport, shared by the viewport benchmarks (scrub.py, playback.py):
either a bare ViewportWidget of a given size or the one docked in the real studio window.

Run as a script it is itself a benchmark: the plain viewport frame rate while orbiting the
default head (issue target: >= 30 FPS at 512x512 mono with ~50k Gaussians on llvmpipe).
``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/demo_viewport.py``
orbits the camera by a small step per presented frame for ``--seconds`` and reports presented
frames per second and the viewport's own frame time, for two policies: "full" (every frame the
whole head at full resolution: level of detail switched off) and "default" (the viewport's
interactive policy: adaptive resolution and Gaussian budget). ``--backend cpu|gl`` picks the
splat renderer where the viewport has more than one (the CPU rasteriser on a software GL).

Needs an X display and a QApplication.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def open_demo_viewport(
    app: Any, in_window: bool, size: str, mode: str, tag: str, backend: str | None = None
):
    """(controller, main window or None, viewport) on the demo project, the head loaded.

    in_window: the viewport docked in a MainWindow (temporary settings and recovery folders
    named after ``tag``), else a bare ViewportWidget of ``size`` ("WxH", logical pixels).
    backend: "cpu" or "gl" splats (ViewportWidget.set_splat_backend), None: the viewport's
    choice. Raises RuntimeError when the viewport has no GL or the head did not load within 60 s.
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
    if backend is not None and hasattr(vp, "set_splat_backend"):
        vp.set_splat_backend(backend)
    return ctrl, window, vp


def backend_name(vp: Any) -> str:
    """The viewport's splat renderer for the reports ("gl" for viewports older than the CPU
    one)."""
    return getattr(vp, "splat_backend", "gl")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Plain viewport frame rate while orbiting the head")
    ap.add_argument("--size", default="512x512", help="viewport size WxH in logical pixels")
    ap.add_argument("--mode", default="mono", choices=("mono", "sbs", "anaglyph"))
    ap.add_argument("--seconds", type=float, default=4.0, help="per policy and run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--backend", choices=("cpu", "gl"), default=None)
    ap.add_argument("--policy", choices=("full", "default", "both"), default="both")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("demo_viewport.py needs a display: run it under xvfb-run", file=sys.stderr)
        return 2

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    try:
        ctrl, _window, vp = open_demo_viewport(
            app, False, args.size, args.mode, "fps", backend=args.backend
        )
    except RuntimeError as exc:
        print(exc)
        return 1
    gl = vp._gl
    assert gl is not None
    gl.sync_timing = True  # honest frame times on the GL path (the CPU path has nothing queued)
    presented: list[float] = []
    vp.framePresented.connect(lambda: presented.append(time.perf_counter()))
    cc = vp.camera_control
    h = vp.height()

    def run(policy: str) -> dict[str, float]:
        if policy == "full":
            vp.set_lod_budget(None, force=False)  # never degraded: the whole head, full size
        else:
            vp.set_lod_budget(25_000)
        pump(0.5)
        cc.begin("orbit", 0.0, 0.0, h)
        ms: list[float] = []
        step = [0]

        def next_frame() -> None:
            if vp.stats["renders"]:
                ms.append(vp.stats["render_ms"])
            step[0] += 1
            x = 40.0 * math.sin(step[0] * 0.05)  # swing left and right
            cc.move(x, 0.0)
            vp._mark_interaction()
            vp._redraw(scene=True)

        vp.framePresented.connect(next_frame)
        n0 = len(presented)
        t0 = time.perf_counter()
        next_frame()
        pump(args.seconds)
        vp.framePresented.disconnect(next_frame)
        t1 = time.perf_counter()
        cc.end()
        frames = len([t for t in presented[n0:] if t <= t1])
        stats = dict(vp.stats)
        pump(0.5)
        return {
            "fps": frames / (t1 - t0),
            "ms": statistics.median(ms[2:] or ms or [0.0]),
            "scale": stats["scale"] if stats["degraded"] else 1.0,
            "splats": stats["splats"],
        }

    def pump(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    policies = ("full", "default") if args.policy == "both" else (args.policy,)
    print(
        f"viewport {vp.width()}x{vp.height()} {args.mode}, head {len(vp.head)} Gaussians, "
        f"splats: {backend_name(vp)}, GL software={gl.software}, {os.cpu_count()} CPUs"
    )
    results: dict[str, list[dict[str, float]]] = {p: [] for p in policies}
    for i in range(args.runs):
        for policy in policies:
            load = os.getloadavg()[0]
            r = run(policy)
            results[policy].append(r)
            print(
                f"  run {i + 1} {policy:<7} {r['fps']:5.1f} FPS  frame {r['ms']:6.1f} ms  "
                f"scale {r['scale']:.2f}  {r['splats']} splats  (load {load:.2f})"
            )
    for policy, rs in results.items():
        fps = statistics.median(r["fps"] for r in rs)
        ms = statistics.median(r["ms"] for r in rs)
        verdict = "meets" if fps >= 30 else "misses"
        print(f"  {policy:<7} median {fps:5.1f} FPS, frame {ms:6.1f} ms ({verdict} 30 FPS)")
    print(f"  load after: {os.getloadavg()[0]:.2f}")
    vp.close()
    del ctrl
    return 0


if __name__ == "__main__":
    sys.exit(main())
