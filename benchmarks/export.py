"""Export benchmark: stereo 2 x 512 x 512 side-by-side H.264 of the demo project with the default
head, 25 fps, through the real export pipeline (studio.export).

    .venv/bin/python -m benchmarks.export --frames 8          # the issue's figure
    .venv/bin/python -m benchmarks.export --frames 25 --rounds 3 --threads 1 2
    .venv/bin/python -m benchmarks.export --lod 20000 8000    # also the LOD sub-heads

Two parts, per configuration (all Gaussians, then each --lod budget):

1. Stages timed alone, one after the other in this thread (no overlap), medians per frame:
     deform    the rig's deformation at the frame (the document is evaluated once, vectorised,
               for all frames before the loop: ~0 per frame)
     upload    renderer.update() of the changed attributes (CPU renderer: covariances)
     render    both eyes drawn (native CPU kernel, one call into the side-by-side strip; or GL
               draw + readback)
     convert   RGB -> yuv420p BT.709 (swscale) of the 1024x512 picture
     x264      libx264 of it (frame threads run on after the call returns: see CPU below)
     audio     AAC of one frame's worth of the project's audio (1920 samples at 48 kHz)
   (the encoder settings are the writer's: ENCODER_THREADS, CONVERT_THREADS, AAC_CODER)
2. The export itself (export_project to a temporary MP4 with AAC), rounds interleaved across
   the configurations (--threads: the kernel's OpenMP threads; --encoder-threads: libx264's),
   medians over rounds of:
     fps       frames per second of wall time from the first finished frame to the finished
               file (trailer, st3d box, rename included); start-up (head load, first render)
               excluded
     per-thread time per frame, and what overlaps what:
       prepare thread   deform + upload of frame i+1        } run at the same time
       render thread    render of frame i (GIL released)    }
       encoder thread   convert + x264 + audio of frame i-1 }
       waits            the render thread blocked on the prepare thread / the encoder queue
     cpu       process CPU ms per frame (all threads): on 2 cores the frame rate can be at most
               2000 / cpu frames/s, whatever overlaps
Every number comes with os.getloadavg(): the machine is shared. The target is >= 25 frames/s
on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def _median_ms(xs: list[float]) -> float:
    return 1000.0 * statistics.median(xs) if xs else float("nan")


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def stage_times(project, plan, source, frames: int) -> dict[str, float]:
    """Median ms per stage, each stage timed on its own (no overlap)."""
    import av
    from av.video.reformatter import VideoReformatter

    from studio.export import writers
    from studio.export.audio import mix_project_audio
    from studio.export.renderer import OfflineRenderer

    r = OfflineRenderer(plan, source)
    values = project.evaluate(plan.positions)
    st: dict[str, list[float]] = {k: [] for k in ("deform", "upload", "render")}
    pictures = []
    try:
        for slot in r.slots:  # warm-up: shader compile, first upload, each renderer's scratch
            r.draw(r.prepare(values[0], slot), plan.layout)
        for f in range(frames):
            before = dict(r.timings)
            prepared = r.prepare(values[f], f % len(r.slots))
            pictures.append(r.draw(prepared, plan.layout))
            for k in st:
                st[k].append(r.timings[k] - before[k])
    finally:
        r.release()
    conv, enc, aud = [], [], []
    audio = mix_project_audio(project, plan.start, plan.end)
    audio = np.ascontiguousarray(audio.T, np.float32)  # [2, S]
    per_frame = round(48_000 / plan.fps.fps)
    with tempfile.TemporaryDirectory() as d, av.open(str(Path(d) / "x.mp4"), "w") as c:
        vs = c.add_stream("libx264", rate=25)
        vs.width, vs.height = plan.frame_size
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(plan.crf), "preset": plan.preset}
        if writers.ENCODER_THREADS:
            vs.codec_context.thread_count = writers.ENCODER_THREADS
        a = c.add_stream("aac", rate=48_000)
        a.layout, a.bit_rate, a.time_base = "stereo", 192_000, Fraction(1, 48_000)
        a.options = {"aac_coder": writers.AAC_CODER}
        reformatter = VideoReformatter()
        pos = 0
        for i, pic in enumerate(pictures):
            t0 = time.perf_counter()
            fr = reformatter.reformat(
                av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(pic), format="rgb24"),
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG",
                threads=writers.CONVERT_THREADS,
            )  # fmt: skip
            t1 = time.perf_counter()
            fr.pts = i
            for p in vs.encode(fr):
                c.mux(p)
            t2 = time.perf_counter()
            stop = min(audio.shape[1], pos + per_frame)
            while pos < stop:
                n = min(1024, stop - pos)
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[:, pos : pos + n]), format="fltp", layout="stereo"
                )
                af.sample_rate, af.pts, af.time_base = 48_000, pos, Fraction(1, 48_000)
                for p in a.encode(af):
                    c.mux(p)
                pos += n
            t3 = time.perf_counter()
            conv.append(t1 - t0)
            enc.append(t2 - t1)
            aud.append(t3 - t2)
        for p in vs.encode():
            c.mux(p)
        for p in a.encode():
            c.mux(p)
    out = {k: _median_ms(v) for k, v in st.items()}
    out.update(convert=_median_ms(conv), x264=_median_ms(enc), audio=_median_ms(aud))
    return out


class ThreadCPU:
    """Samples the CPU time of every thread of this process (/proc, 10 ms ticks) while running:
    Python threads by name, the rest (OpenMP workers, x264's threads, Mesa's) as "native"."""

    def __init__(self) -> None:
        import threading

        self._threading = threading
        self._stop = threading.Event()
        self.ticks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _sample(self) -> None:
        for t in self._threading.enumerate():
            if t.native_id is not None:
                self.names[t.native_id] = t.name
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.ticks[int(tid)] = int(fields[11]) + int(fields[12])  # utime + stime

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def __enter__(self) -> ThreadCPU:
        self._sample()
        self.start = dict(self.ticks)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def ms_by_name(self) -> dict[str, float]:
        tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = {}
        for tid, ticks in self.ticks.items():
            name = self.names.get(tid, "native")
            if name == "bench-sampler":
                continue
            out[name] = out.get(name, 0.0) + (ticks - self.start.get(tid, 0)) * tick_ms
        return out


def end_to_end(project, plan, source) -> tuple[float, float, dict[str, float]]:
    """(frames/s of wall time after the first frame, process CPU ms per frame over the same
    span, the export's own stage totals in ms per frame plus "cpu:<thread>" CPU ms per frame
    over the whole export)."""
    from studio.export import export_project

    t_first = c_first = None
    last = None
    with ThreadCPU() as cpu:
        for report in export_project(project, plan, head_source=source):
            if report.frame == 1 and t_first is None:
                t_first, c_first = time.perf_counter(), time.process_time()
            last = report
        t_end, c_end = time.perf_counter(), time.process_time()
    n = last.total - 1
    per_frame = {k: 1000.0 * v / last.total for k, v in last.timings.items()}
    for name, ms in cpu.ms_by_name().items():
        per_frame[f"cpu:{name}"] = ms / last.total
    return n / (t_end - t_first), 1000.0 * (c_end - c_first) / n, per_frame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=25, help="frames per export")
    ap.add_argument("--rounds", type=int, default=1, help="end-to-end runs per configuration")
    ap.add_argument("--eye-size", type=int, default=512)
    ap.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    ap.add_argument("--lod", type=int, nargs="*", default=[], help="LOD budgets (e.g. 20000)")
    ap.add_argument(
        "--threads", type=int, nargs="*", default=[0],
        help="OpenMP threads of the CPU kernel, A/B interleaved (0: THS_THREADS or all CPUs)",
    )  # fmt: skip
    ap.add_argument(
        "--encoder-threads", type=int, nargs="*", default=None,
        help="libx264 threads, A/B interleaved (default: the writer's ENCODER_THREADS)",
    )  # fmt: skip
    ap.add_argument("--no-stages", action="store_true", help="skip the stages timed alone")
    args = ap.parse_args(argv)

    from models.heads import load_builtin_head
    from renderers.gl_context import create_offscreen_context
    from studio.demo import build_demo_project
    from studio.export import ExportSettings, plan_export, writers
    from studio.export.heads import RiggedHeadSource
    from studio.export.renderer import OfflineRenderer

    ctx = create_offscreen_context()
    print(f"GL: {ctx.info['GL_RENDERER']}; CPUs: {len(os.sched_getaffinity(0))}; {_load()}")
    ctx.release()
    project = build_demo_project()
    head = load_builtin_head("default")
    n = min(args.frames, project.duration)
    enc_threads = args.encoder_threads or [writers.ENCODER_THREADS]
    env_threads = os.environ.get("THS_THREADS")
    print(
        f"demo project, default head ({len(head)} Gaussians), stereo 2x{args.eye_size}x"
        f"{args.eye_size} sbs, H.264 {args.preset} + AAC, {n} frames, ms per frame"
    )
    with tempfile.TemporaryDirectory() as d:
        for budget in [None, *args.lod]:
            source = RiggedHeadSource(head, budget)
            settings = ExportSettings(
                Path(d) / f"b{budget}.mp4", eye_size=(args.eye_size, args.eye_size),
                frame_range=(0, n), preset=args.preset, overwrite=True,
            )  # fmt: skip
            plan = plan_export(project, settings)
            probe = OfflineRenderer(plan, source)
            kind = type(probe.renderer).__name__
            cpu_kernel = probe._cpu_splats  # upload (covariances) on the prepare thread
            probe.release()
            print(f"\n{len(source.head)} Gaussians, renderer {kind}")
            if not args.no_stages:
                st = stage_times(project, plan, source, n)
                print(
                    "  stages alone (medians): "
                    + ", ".join(f"{k} {v:.1f}" for k, v in st.items())
                    + f"; sum {sum(st.values()):.1f} ms  ({_load()})",
                    flush=True,
                )
            configs = [(t, e) for t in args.threads for e in enc_threads]
            runs: dict[tuple[int, int], list] = {c: [] for c in configs}
            for r in range(args.rounds):
                for omp, enc in configs:
                    if omp:
                        os.environ["THS_THREADS"] = str(omp)
                    elif env_threads is None:
                        os.environ.pop("THS_THREADS", None)
                    else:
                        os.environ["THS_THREADS"] = env_threads
                    writers.ENCODER_THREADS = enc
                    fps, cpu, t = end_to_end(project, plan, source)
                    runs[(omp, enc)].append((fps, cpu, t, os.getloadavg()[0]))
                    print(
                        f"  round {r} omp={omp or 'default'} x264={enc or 'auto'}: "
                        f"{fps:.2f} frames/s, cpu {cpu:.0f} ms/frame ({_load()})",
                        flush=True,
                    )
            for (omp, enc), rs in runs.items():
                fps = statistics.median(x[0] for x in rs)
                cpu = statistics.median(x[1] for x in rs)
                keys = set().union(*(x[2] for x in rs))
                t = {k: statistics.median(x[2].get(k, 0.0) for x in rs) for k in keys}
                threads_cpu = ", ".join(
                    f"{k[4:]} {v:.0f}" for k, v in sorted(t.items()) if k.startswith("cpu:")
                )
                loads = ", ".join(f"{x[3]:.2f}" for x in rs)
                if cpu_kernel:
                    prepare = f"deform {t['deform']:.1f} + upload {t['upload']:.1f}"
                    render = f"render {t['render']:.1f}"
                else:  # GL: the upload is a GL call, in the render thread
                    prepare = f"deform {t['deform']:.1f}"
                    render = f"upload {t['upload']:.1f} + render {t['render']:.1f}"
                x264 = t["encode"] - t["convert"] - t["audio"]
                print(
                    f"  omp={omp or 'default'} x264={enc or 'auto'}: "
                    f"**{fps:.2f} frames/s** (median of {len(rs)}, 1-min loads {loads}); "
                    f"cpu {cpu:.0f} ms/frame (2 cores: <= {2000 / cpu:.1f} frames/s)\n"
                    f"    prepare thread: {prepare}\n"
                    f"    render thread:  {render}, waiting for prepare "
                    f"{t['prepare_wait']:.1f}, for the encoder {t['encode_wait']:.1f}\n"
                    f"    encoder thread: {t['encode']:.1f} = convert {t['convert']:.1f} + "
                    f"x264 {x264:.1f} + audio {t['audio']:.1f} (x264's own threads not included)\n"
                    f"    CPU per thread (whole export incl. start-up, ms/frame): {threads_cpu}\n"
                    f"    wall {1000 / fps:.1f} ms/frame; finish {t['finish']:.1f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
