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

Reports, from ``--warmup`` seconds after the first frame was shown, over ``--seconds``:
- presented FPS: frames presented by the viewport (frameSwapped) that show a new live pose;
- latency: frame captured (the source delivered it) -> the viewport presented the head posed
  by it, median and 90th percentile, in ms; with its tracking part (captured -> tracked);
- tracked FPS (capture thread), frames shown by the panel, viewport render ms, splats, the
  resolution scale, and the load average before and after (a shared machine's noise);
- due -> drawn: from when a camera would have delivered the frame (the video's own clock)
  to presented: a capture thread that falls behind reads frames late, and that wait is
  latency too (the "captured" latency starts at the read);
- the latency broken into stages (medians over presented frames): due -> captured (waiting
  for the capture thread) -> tracked (tracking, hybrid lips) -> deformed (``prepare``, capture
  thread) -> handed over (preview, LiveFrame) -> picked up by the GUI thread (queued signal)
  -> viewport asked to draw (``set_live_values``) -> render start (the window's update
  request) -> rendered (draw + GL finish) -> presented (present, overlay, swap); the feed
  preview's cost; how many tracked frames were never presented; and CPU per thread name
  (GUI = "python", "live-capture", "llvmpipe") as a share of one core. Threads inherit their
  creator's name: "live-capture" includes TFLite's worker threads and the video's decoder.
``--threads`` sets the tracker's TFLite threads (default: the Live panel's). ``--tracking``
runs the tracker in a child process ("process", ``studio.tracking_child``) or in the capture
thread ("thread"); default: the studio's (``studio.ui.live_session.LIVE_TRACKING``). Tracking
per frame is reported as ``FaceTracker.process`` time (in the child or the thread) and as the
capture thread's wait for it (captured -> tracked, hand-over included); the child's CPU is
listed as "tracking child".
Target (issue 8): >= 30 FPS presented and <= 50 ms captured -> drawn on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def make_tracker(settings, profile, threads: int = 2):
    """The Live panel's tracker with ``threads`` TFLite threads (module level: picklable, so
    it can run in the tracking process)."""
    from models.face.tracker import FaceTracker

    return FaceTracker(settings=settings, profile=profile, num_threads=threads)


def thread_cpu(pid: int | str = "self") -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of a process's threads (default this one): tid -> (name,
    seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    task = Path(f"/proc/{pid}/task")
    if not task.is_dir():
        return out
    for d in task.iterdir():
        try:
            stat = (d / "stat").read_text()
            name = (d / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(d.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


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
    ap.add_argument("--threads", type=int, default=None,
                    help="TFLite threads of the tracker (default: the Live panel's)")  # fmt: skip
    ap.add_argument("--tracking", choices=("process", "thread"), default=None,
                    help="face tracking in a child process or in the capture thread "
                         "(default: the studio's)")  # fmt: skip
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
    if args.threads is not None:
        import functools

        panel.tracker_factory = functools.partial(make_tracker, threads=args.threads)
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

    # Instrumentation: which live frame each rendered scene shows, and when it is presented;
    # per frame (keyed by its capture time) the time it reached each stage.
    import threading

    from studio.ui import live_session as ls_mod

    if args.tracking is not None:
        ls_mod.LIVE_TRACKING = args.tracking
    pending: dict[str, float | None] = {"set": None, "rendered": None}
    samples: list[tuple[float, float, float]] = []  # (presented, latency s, tracking s)
    renders: list[tuple[float, float, float]] = []  # (t, render ms, scale)
    orig_set, orig_render = vp.set_live_values, vp._render_scene
    track_of: dict[float, float] = {}
    stages: dict[float, dict[str, float]] = {}  # t_captured -> stage -> perf_counter
    local = threading.local()
    preview_ms: list[float] = []  # the feed picture (capture thread)
    process_ms: list[tuple[float, float]] = []  # (t, FaceTracker.process ms) per tracked frame
    orig_prepare, orig_preview = vp.prepare_live, ls_mod._preview
    orig_take = ls_mod.LiveSession.take_latest

    def prepare_live(values):  # capture thread
        out = orig_prepare(values)
        local.prepared = time.perf_counter()
        return out

    def preview(frame, res, *a, **k):  # capture thread, after prepare, before the hand-over
        t = time.perf_counter()
        process_ms.append((t, res.process_ms))
        out = orig_preview(frame, res, *a, **k)
        preview_ms.append((time.perf_counter() - t) * 1e3)
        res._bench = (getattr(local, "prepared", float("nan")), time.perf_counter())
        local.prepared = float("nan")
        return out

    first: list[tuple[float, float]] = []  # (timestamp, t_captured) of the first frame
    marks: dict[str, Any] = {}  # measurement marks ("first": when the first frame was shown)

    def take_latest(self):  # GUI thread
        f = orig_take(self)
        if f is not None:
            prep, handed = getattr(f.tracked, "_bench", (float("nan"), float("nan")))
            if not first:
                first.append((f.timestamp, f.t_captured))
                marks["first"] = time.perf_counter()
            # When a webcam would have delivered the frame: the video is paced from its
            # first frame; a capture thread that falls behind reads frames late, and that
            # wait is latency too (a camera's buffer holds them meanwhile).
            due = first[0][1] + (f.timestamp - first[0][0])
            stages[f.t_captured] = {
                "due": min(due, f.t_captured), "captured": f.t_captured,
                "tracked": f.t_processed, "deformed": prep, "handed": handed,
                "picked": time.perf_counter(),
            }  # fmt: skip
        return f

    def set_live_values(values, prepared=None):
        f = panel.last_frame
        if values is not None and f is not None:
            pending["set"] = f.t_captured
            track_of[f.t_captured] = f.t_processed - f.t_captured
            st = stages.get(f.t_captured)
            if st is not None:
                st["set"] = time.perf_counter()
        orig_set(values) if prepared is None else orig_set(values, prepared)

    def render_scene(view, ww, hh):
        t0 = time.perf_counter()
        orig_render(view, ww, hh)
        t1 = time.perf_counter()
        pending["rendered"] = pending["set"]
        st = stages.get(pending["set"])
        if st is not None and "render0" not in st:
            st["render0"], st["rendered"] = t0, t1
        renders.append((t1, vp.stats["render_ms"], vp.stats["scale"]))

    seen: set[float] = set()

    def presented():
        stamp = pending["rendered"]
        if stamp is None or stamp in seen:
            return
        seen.add(stamp)
        now = time.perf_counter()
        st = stages.get(stamp)
        if st is not None:
            st["presented"] = now
        samples.append((now, now - stamp, track_of.get(stamp, float("nan"))))

    vp.set_live_values = set_live_values
    vp._render_scene = render_scene
    vp.prepare_live = None if args.no_prepare else prepare_live
    ls_mod._preview = preview
    ls_mod.LiveSession.take_latest = take_latest
    vp.framePresented.connect(presented)

    panel.set_source(video)
    if not panel.start():
        print("live panel did not start", file=sys.stderr)
        return 1
    from PySide6.QtCore import QTimer

    t0 = time.perf_counter()
    t_measure = t0 + args.warmup
    prof = None

    def begin() -> None:
        marks["shown0"] = panel.frames_shown
        marks["gui_cpu0"] = time.thread_time()
        marks["threads0"] = thread_cpu()
        marks["child"] = panel.session.tracking_pid if panel.session else None
        marks["tracking"] = panel.session.tracking if panel.session else "?"
        if marks["child"]:
            marks["child0"] = thread_cpu(marks["child"])
        marks["t"] = time.perf_counter()
        if args.profile:
            import cProfile

            nonlocal prof
            prof = cProfile.Profile()
            prof.enable()

    def end() -> None:
        marks["gui_cpu1"] = time.thread_time()
        marks["threads1"] = thread_cpu()
        if marks.get("child"):
            marks["child1"] = thread_cpu(marks["child"])
        if prof is not None:
            prof.disable()
        app.quit()

    def watch() -> None:
        # The warm-up starts at the first frame shown: starting the tracker (models, and in
        # "process" mode the child process) takes 0.5 to several seconds on a busy machine.
        now = time.perf_counter()
        if not panel.running or (now > t0 + 60 and "first" not in marks):
            end()
        elif "t" not in marks and "first" in marks and now >= marks["first"] + args.warmup:
            begin()
            QTimer.singleShot(round(args.seconds * 1000), end)

    watchdog = QTimer()
    watchdog.timeout.connect(watch)
    watchdog.start(20)
    app.exec()
    watchdog.stop()
    t_measure = marks.get("t", t_measure)
    elapsed = time.perf_counter() - t_measure
    shown0 = marks.get("shown0")
    if prof is not None:
        import pstats

        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    shown = panel.frames_shown - (shown0 or 0)
    tracked_fps = panel.last_frame.processed_fps if panel.last_frame else 0.0
    panel.shutdown()
    load_after = os.getloadavg()

    meas = [s for s in samples if s[0] >= t_measure]
    rmeas = [r for r in renders if r[0] >= t_measure]
    lat = [s[1] * 1e3 for s in meas]
    late = [(st["presented"] - st["due"]) * 1e3 for st in stages.values()
            if st.get("presented", 0) >= t_measure]  # fmt: skip
    trk = [s[2] * 1e3 for s in meas]
    print(f"live viewport: {Path(video).name} at {args.fps} fps -> default head, viewport "
          f"{w}x{h} {args.mode}, {os.cpu_count()} CPUs, feed {'off' if args.no_feed else 'on'}, "
          f"{'two windows' if args.windows else 'one window'}, "
          f"deform in {'GUI' if args.no_prepare else 'capture'} thread, "
          f"tracking in the {marks.get('tracking', '?')}, "
          f"GL software={vp._gl.software if vp._gl else None}")  # fmt: skip
    print(f"  presented FPS     {len(meas) / elapsed:6.1f}   (new live poses presented)")
    if "first" in marks:
        print(f"  first frame       {marks['first'] - t0:6.2f} s after Start (tracker start-up)")
    print(f"  panel shown FPS   {shown / elapsed:6.1f}   tracked FPS {tracked_fps:5.1f}")
    if lat:
        print(f"  latency ms        median {statistics.median(lat):6.1f}  p90 {pct(lat, 90):6.1f}"
              f"   (tracking part median {statistics.median(trk):5.1f})")  # fmt: skip
    if late:
        print(f"  due -> drawn ms   median {statistics.median(late):6.1f}  p90 {pct(late, 90):6.1f}"
              "   (from when a camera would have delivered the frame)")  # fmt: skip
    if rmeas:
        ms = [r[1] for r in rmeas]
        sc = [r[2] for r in rmeas]
        print(f"  render ms         median {statistics.median(ms):6.1f}  p90 {pct(ms, 90):6.1f}"
              f"   scale median {statistics.median(sc):.2f}   renders {len(rmeas)}"
              f"   splats {vp.stats['splats']}   deformed off the GUI thread "
              f"{vp.stats.get('live_prepared', 0)}")  # fmt: skip
    order = ("due", "captured", "tracked", "deformed", "handed", "picked", "set", "render0",
             "rendered", "presented")  # fmt: skip
    done = [st for st in stages.values()
            if "presented" in st and st["presented"] >= t_measure]  # fmt: skip
    if done:
        parts = []
        for a, b in itertools.pairwise(order):
            d = [(st[b] - st[a]) * 1e3 for st in done if a in st and b in st]
            d = [x for x in d if x == x]  # no NaN (a stage that did not run)
            if d:
                parts.append(f"{a[:4]}->{b[:4]} {statistics.median(d):5.1f}")
        print("  stages ms (median) " + "  ".join(parts))
    pms = [m for t, m in process_ms if t >= t_measure]
    if pms:
        print(f"  tracker ms        median {statistics.median(pms):6.1f}  p90 {pct(pms, 90):6.1f}"
              f"   (FaceTracker.process, {len(pms)} frames)")  # fmt: skip
    if preview_ms:
        print(f"  feed preview ms   median {statistics.median(preview_ms):5.2f} (capture thread)")
    picked = [st for st in stages.values() if st["picked"] >= t_measure]
    lost = sum("presented" not in st for st in picked)
    print(f"  frames picked up  {len(picked)}   never presented {lost}")
    if "threads1" in marks:
        t0c, t1c = marks["threads0"], marks["threads1"]
        use: dict[str, float] = {}
        for tid, (name, cpu) in t1c.items():
            base = t0c.get(tid, (name, 0.0))[1]
            key = name.rstrip("0123456789-") or name
            use[key] = use.get(key, 0.0) + (cpu - base)
        if "child1" in marks:
            c0 = marks["child0"]
            use["tracking child"] = sum(cpu - c0.get(tid, (n, 0.0))[1]
                                        for tid, (n, cpu) in marks["child1"].items())  # fmt: skip
        gui = marks["gui_cpu1"] - marks["gui_cpu0"]
        txt = "  ".join(
            f"{k} {100 * v / elapsed:.0f}%"
            for k, v in sorted(use.items(), key=lambda kv: -kv[1])
            if v / elapsed >= 0.01
        )
        print(f"  CPU (1 core=100%) GUI thread {100 * gui / elapsed:.0f}%; by thread name: {txt}")
    print(f"  load average      before {load_before[0]:.2f}  after {load_after[0]:.2f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
