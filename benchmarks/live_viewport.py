"""Live reenactment end to end: a video file -> LiveSession (tracking thread) -> Live panel ->
the real ViewportWidget presenting the default head.

Needs an X display (run under Xvfb)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/live_viewport.py

The source is a 640x480 video at ``--fps`` (default 30) of a drawn face that rolls, drifts and
opens its mouth (written to a temporary MP4 first; ``--video`` uses another file), paced at its
own frame rate as a webcam would deliver it. The studio pieces are the real ones: the Live panel
(with its camera feed and landmark overlay) and a ViewportWidget of ``--size`` (default 512x512)
showing the demo project's default head, with the viewport's live quality path (level of detail
on a software GL).

Reports, after ``--warmup`` seconds, over ``--seconds``:
- presented FPS: frames presented by the viewport (frameSwapped) that show a new live pose;
- latency: frame captured (the source delivered it) -> the viewport presented the head posed
  by it, median and 90th percentile, in ms; with its tracking part (captured -> tracked);
- tracked FPS (capture thread), frames shown by the panel, viewport render ms, splats, the
  resolution scale, and the load average before and after (a shared machine's noise).
Target (issue 8): >= 30 FPS presented and <= 50 ms captured -> drawn on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_video(path: Path, seconds: float, fps: int) -> Path:
    """A 640x480 H.264 video of a drawn face rolling, drifting and talking."""
    import av
    import numpy as np

    from models.face.testface import draw_face

    n = round(seconds * fps)
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = 640, 480, "yuv420p"
        st.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(n):
            t = i / fps
            img = draw_face(
                640, 480, centre=(320 + 25 * np.sin(0.7 * t), 240 + 10 * np.sin(1.1 * t)),
                roll=12 * np.sin(0.9 * t), mouth_open=0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t),
                seed=i,
            ).image  # fmt: skip
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))] if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="measured time")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    ap.add_argument("--size", default="512x512", help="viewport size WxH in logical pixels")
    ap.add_argument("--fps", type=int, default=30, help="frame rate of the generated video")
    ap.add_argument("--video", type=Path, default=None, help="use this video instead")
    ap.add_argument("--mode", default="mono", choices=("mono", "sbs", "anaglyph"))
    ap.add_argument("--no-feed", action="store_true", help="hide the Live panel (viewport only)")
    ap.add_argument("--windows", action="store_true",
                    help="viewport and panel in separate windows (default: one window, as in "
                         "the studio)")  # fmt: skip
    ap.add_argument("--profile", action="store_true", help="cProfile the GUI thread")
    ap.add_argument("--no-prepare", action="store_true", help="deform the head in the GUI thread")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("live_viewport.py needs a display: run it under xvfb-run", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    tmp = tempfile.TemporaryDirectory()
    video = args.video or write_video(
        Path(tmp.name) / "face.mp4", args.seconds + args.warmup + 3.0, args.fps
    )

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from studio.demo import build_demo_project
    from studio.ui.controller import StudioController
    from studio.ui.live_panel import LivePanel
    from studio.ui.live_session import AudioInputUnavailable
    from studio.viewport.widget import ViewportWidget

    class NoMic:
        def start(self):
            raise AudioInputUnavailable("benchmark")

        def stop(self):
            return None

    from PySide6.QtWidgets import QHBoxLayout, QWidget

    w, h = (int(v) for v in args.size.lower().split("x"))
    ctrl = StudioController(build_demo_project())
    window = None if args.windows else QWidget()
    vp = ViewportWidget(ctrl, window)
    vp.setFixedSize(w, h)
    vp.set_view_mode(args.mode)
    panel = LivePanel(ctrl, window)
    panel.mic_factory = NoMic
    panel._cameras_probed = True
    panel.setFixedSize(420, max(h, 640))
    panel.set_viewport(vp)
    if window is not None:
        lay = QHBoxLayout(window)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(vp)
        lay.addWidget(panel)
        panel.setVisible(not args.no_feed)
        window.show()
    else:
        vp.move(0, 0)
        vp.show()
        panel.move(w + 10, 0)
        if not args.no_feed:
            panel.show()
    t_end = time.perf_counter() + 60
    while not vp.head_ready and time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.005)
    if not vp.gl_available or not vp.head_ready:
        print(f"viewport not ready: {vp.gl_error or vp.head_error}", file=sys.stderr)
        return 1

    # Instrumentation: which live frame each rendered scene shows, and when it is presented.
    pending: dict[str, float | None] = {"set": None, "rendered": None}
    samples: list[tuple[float, float, float]] = []  # (presented, latency s, tracking s)
    renders: list[tuple[float, float, float]] = []  # (t, render ms, scale)
    orig_set, orig_render = vp.set_live_values, vp._render_scene
    track_of: dict[float, float] = {}

    def set_live_values(values, prepared=None):
        f = panel.last_frame
        if values is not None and f is not None:
            pending["set"] = f.t_captured
            track_of[f.t_captured] = f.t_processed - f.t_captured
        orig_set(values) if prepared is None else orig_set(values, prepared)

    def render_scene(view, ww, hh):
        orig_render(view, ww, hh)
        pending["rendered"] = pending["set"]
        renders.append((time.perf_counter(), vp.stats["render_ms"], vp.stats["scale"]))

    seen: set[float] = set()

    def presented():
        stamp = pending["rendered"]
        if stamp is None or stamp in seen:
            return
        seen.add(stamp)
        now = time.perf_counter()
        samples.append((now, now - stamp, track_of.get(stamp, float("nan"))))

    vp.set_live_values = set_live_values
    vp._render_scene = render_scene
    if args.no_prepare:
        vp.prepare_live = None
    vp.framePresented.connect(presented)

    panel.set_source(video)
    if not panel.start():
        print("live panel did not start", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    t_measure = t0 + args.warmup
    t_stop = t_measure + args.seconds
    shown0 = None
    prof = None
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    while time.perf_counter() < t_stop and panel.running:
        app.processEvents()
        if shown0 is None and time.perf_counter() >= t_measure:
            shown0 = panel.frames_shown
        time.sleep(0.001)
    elapsed = time.perf_counter() - t_measure
    if prof is not None:
        import pstats

        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    shown = panel.frames_shown - (shown0 or 0)
    tracked_fps = panel.last_frame.processed_fps if panel.last_frame else 0.0
    panel.shutdown()
    load_after = os.getloadavg()

    meas = [s for s in samples if s[0] >= t_measure]
    rmeas = [r for r in renders if r[0] >= t_measure]
    lat = [s[1] * 1e3 for s in meas]
    trk = [s[2] * 1e3 for s in meas]
    print(f"live viewport: {Path(video).name} at {args.fps} fps -> default head, viewport "
          f"{w}x{h} {args.mode}, {os.cpu_count()} CPUs, feed {'off' if args.no_feed else 'on'}, "
          f"{'two windows' if args.windows else 'one window'}, "
          f"deform in {'GUI' if args.no_prepare else 'capture'} thread, "
          f"GL software={vp._gl.software if vp._gl else None}")  # fmt: skip
    print(f"  presented FPS     {len(meas) / elapsed:6.1f}   (new live poses presented)")
    print(f"  panel shown FPS   {shown / elapsed:6.1f}   tracked FPS {tracked_fps:5.1f}")
    if lat:
        print(f"  latency ms        median {statistics.median(lat):6.1f}  p90 {pct(lat, 90):6.1f}"
              f"   (tracking part median {statistics.median(trk):5.1f})")  # fmt: skip
    if rmeas:
        ms = [r[1] for r in rmeas]
        sc = [r[2] for r in rmeas]
        print(f"  render ms         median {statistics.median(ms):6.1f}  p90 {pct(ms, 90):6.1f}"
              f"   scale median {statistics.median(sc):.2f}   renders {len(rmeas)}"
              f"   splats {vp.stats['splats']}   deformed off the GUI thread "
              f"{vp.stats.get('live_prepared', 0)}")  # fmt: skip
    print(f"  load average      before {load_before[0]:.2f}  after {load_after[0]:.2f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
