"""Playback rate: does the viewport show every frame of the demo at the project fps while playing?

Needs an X display (run under Xvfb): ``xvfb-run -a -s "-screen 0 1600x1000x24" \
.venv/bin/python benchmarks/playback.py``. Opens the demo project (default head, demo speech)
in a ViewportWidget driven by the studio's PlaybackEngine (audio through sounddevice when an
output device exists, else silent playback at the right rate, as in the studio) and plays the
whole range for ``--seconds`` of wall time, several runs. Per run it reports:

- shown/s: distinct project frames presented per wall-clock second (target: the project fps, 25);
- skipped: frames the playhead passed without being presented (the viewport fell behind);
- drift: playhead position minus the ideal ``fps * elapsed`` at the end (audio sync: playback
  is clocked, so this stays ~0 even when frames are skipped);
- interval: median and 90th percentile of the time between presented frames;
- CPU/frame: this process's CPU time (all threads, llvmpipe's rasteriser included) per presented
  frame, which a busy shared machine distorts less than the wall-clock rates; and draw, the
  median time the viewport reports for drawing the head (glFinish included).

A baseline in the same process: the same playback with the viewport presenting a cached scene
(no head re-render per frame: Qt's own presentation floor), so the ratio of the two shows what
the head rendering costs on a shared machine.

``--window``: the viewport as the studio shows it, docked in the main window (1600x960, its
timeline, inspector and status bar updating while playing), instead of a bare top-level
viewport; ``--size`` is then ignored. What Qt spends presenting the viewport inside the window
(composing the window around it) shows in the baseline row.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="wall time per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unmeasured playback first"
    )
    ap.add_argument("--size", default="800x600", help="viewport size WxH in logical pixels")
    ap.add_argument("--mode", default="mono", choices=("mono", "sbs", "anaglyph"))
    ap.add_argument("--window", action="store_true", help="in the studio's main window")
    ap.add_argument(
        "--backend",
        choices=("cpu", "gl"),
        default=None,
        help="splat renderer where the viewport has both (CPU rasteriser on a software GL)",
    )
    ap.add_argument(
        "--playback-ms", type=float, default=None, help="draw-time target of playback frames"
    )
    ap.add_argument(
        "--audio-latency",
        default=None,
        help="the output stream's latency (studio.ui.playback.AUDIO_LATENCY: low, high or seconds)",
    )
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("playback.py needs a display: run it under xvfb-run", file=sys.stderr)
        return 2

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from studio.ui import playback as playback_module
    from studio.ui.playback import PlaybackEngine

    if args.audio_latency is not None:
        lat = args.audio_latency
        playback_module.AUDIO_LATENCY = lat if lat in ("low", "high") else float(lat)
    from studio.viewport import widget as viewport_widget

    if args.playback_ms is not None:
        viewport_widget.PLAYBACK_MS = args.playback_ms

    from benchmarks.demo_viewport import backend_name, open_demo_viewport

    try:
        ctrl, window, vp = open_demo_viewport(
            app, args.window, args.size, args.mode, "playback", backend=args.backend
        )
    except RuntimeError as exc:
        print(exc)
        return 1
    engine = window.playback if window is not None else PlaybackEngine(ctrl)
    fps = ctrl.project.frame_rate.fps
    ctrl.set_loop(True)

    shown: list[tuple[float, int]] = []
    # (resolution scale, Gaussians drawn, draw ms) per presented frame
    quality: list[tuple[float, int, float]] = []

    def on_presented() -> None:
        shown.append((time.perf_counter(), ctrl.frame))
        quality.append((vp.stats["scale"], vp.stats["splats"], vp.stats["render_ms"]))

    vp.framePresented.connect(on_presented)

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)

    def present_cached(_frame: int) -> None:
        vp._redraw(scene=False)

    def play(cached: bool) -> dict[str, float]:
        ctrl.set_playing(False)
        ctrl.set_frame(0)
        pump(0.5)  # the full-quality redraw of the still frame is done
        if cached:
            # Baseline: the head is not re-rendered per frame; each tick only re-presents
            # (through the viewport's own repaint request, as an overlay change asks for one).
            ctrl.frameChanged.disconnect(vp._on_frame_changed)
            ctrl.frameChanged.connect(present_cached)
        shown.clear()
        quality.clear()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        ctrl.set_playing(True)
        pump(args.seconds)
        position = engine.position()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        ctrl.set_playing(False)
        if cached:
            ctrl.frameChanged.disconnect(present_cached)
            ctrl.frameChanged.connect(vp._on_frame_changed)
        frames = [f for _, f in shown]
        distinct = [f for i, f in enumerate(frames) if i == 0 or f != frames[i - 1]]
        # Frames the playhead passed (forward, looping) without being presented.
        skipped = sum(max(0, (b - a) - 1) for a, b in itertools.pairwise(distinct) if b > a)
        times = [t for t, _ in shown]
        gaps = sorted((b - a) * 1000 for a, b in itertools.pairwise(times)) or [0.0]
        duration = ctrl.project.duration
        ideal = (fps * elapsed) % duration
        drift = position - ideal
        if drift > duration / 2:  # looped: compare on the circle
            drift -= duration
        return {
            "shown_per_s": len(distinct) / elapsed,
            "skipped": float(skipped),
            "drift_frames": drift,
            "interval_med": statistics.median(gaps),
            "interval_p90": gaps[min(len(gaps) - 1, int(0.9 * len(gaps)))],
            "scale": statistics.median(q[0] for q in quality) if quality else 1.0,
            "splats": statistics.median(q[1] for q in quality) if quality else 0.0,
            "draw_ms": statistics.median(q[2] for q in quality) if quality else 0.0,
            "cpu_ms": 1000.0 * cpu / max(len(shown), 1),
        }

    w, h = vp.width(), vp.height()
    where = ", in the main window" if window else ""
    # asked directly: the engine's status is cleared once playback stops
    no_sound = engine.audio.probe(engine.audio.device)
    no_sound = no_sound or "output device found"
    print(
        f"viewport {w}x{h} ({args.mode}{where}), head {len(vp.head)} Gaussians, "
        f"project {fps:g} fps, "
        f"audio: {no_sound}, splats: {backend_name(vp)}, GL software={vp._gl.software}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"playback draw target {viewport_widget.PLAYBACK_MS:g} ms"
    )
    # The first seconds of playback build the level-of-detail head and its GL buffers, and in
    # the main window the panels' first updates: not what a user sees after a while.
    if args.warmup > 0:
        seconds, args.seconds = args.seconds, args.warmup
        play(cached=False)
        args.seconds = seconds
    rows: dict[str, list[dict[str, float]]] = {"playback": [], "baseline (cached scene)": []}
    for _ in range(args.runs):  # interleaved, so both see the same machine load
        rows["playback"].append(play(cached=False))
        rows["baseline (cached scene)"].append(play(cached=True))
    for name, runs in rows.items():
        per_run = ", ".join(f"{r['shown_per_s']:.1f}" for r in runs)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"  {name:<24} shown {med['shown_per_s']:5.1f}/s  skipped {med['skipped']:5.0f}  "
            f"drift {med['drift_frames']:+5.2f} frames  interval median "
            f"{med['interval_med']:5.1f} ms  p90 {med['interval_p90']:5.1f} ms  "
            f"resolution {med['scale'] * 100:.0f} %, {med['splats']:.0f} Gaussians  "
            f"CPU/frame {med['cpu_ms']:5.1f} ms  draw {med['draw_ms']:4.1f} ms  (runs: {per_run})"
        )
    shown_med = statistics.median(r["shown_per_s"] for r in rows["playback"])
    verdict = "holds" if shown_med >= 0.97 * fps else "misses"
    print(f"  playback {verdict} the project rate ({shown_med:.1f} of {fps:g} frames/s shown)")
    print(f"  load after: {os.getloadavg()[0]:.2f}")
    if window is not None:
        window.close()
    else:
        engine.shutdown()
        vp.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
