"""Export benchmark: stereo 2 x 512 x 512 side-by-side H.264 of the demo project with the default
head, 25 fps, through the real export pipeline (studio.export).

    .venv/bin/python -m benchmarks.export                 # ~1-3 min on 2 shared cores
    .venv/bin/python -m benchmarks.export --frames 10     # quicker
    .venv/bin/python -m benchmarks.export --lod 20000 8000

Reports, per configuration (all Gaussians, then each --lod budget), medians over the frames of:
  evaluate+deform  document evaluation at the frame and the rig's deformation (CPU, numpy)
  upload           renderer.update() of the changed attributes
  render           both eyes drawn into one framebuffer + one readback (llvmpipe without a GPU)
  encode           RGB -> yuv420p (BT.709) + libx264 of the 1024x512 picture, timed alone
and the end-to-end export rate (export_project to a temporary MP4 with AAC, encoder thread
overlapping the renderer), frames per second of wall time, excluding start-up (context, shader
compile, head load). The target is >= 25 frames/s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_ms(xs: list[float]) -> float:
    return 1000.0 * statistics.median(xs) if xs else float("nan")


def stage_times(project, plan, source, frames: int) -> dict[str, float]:
    """Median ms per stage, each stage timed on its own (no overlap)."""
    import av

    from studio.export.renderer import OfflineRenderer, layout_frame

    r = OfflineRenderer(plan, source)
    ev, up, rd, enc = [], [], [], []
    pictures = []
    try:
        r.render(project.evaluate_frame(0))  # warm-up: shader compile, first upload
        for f in range(frames):
            t0 = time.perf_counter()
            values = project.evaluate(np.array([plan.positions[f]]))[0]
            data = source.frame(values)
            t1 = time.perf_counter()
            r.renderer.update(
                means=data.means, opacities=data.opacities, quats=data.quats, scales=data.scales
            )
            t2 = time.perf_counter()
            r._last = {  # keep the renderer's change tracking in step with the manual update
                "means": data.means, "opacities": data.opacities,
                "quats": data.quats, "scales": data.scales, "sh": data.sh,
            }  # fmt: skip
            strip = r.render(values)  # nothing left to upload: this is draw + readback
            t3 = time.perf_counter()
            ev.append(t1 - t0)
            up.append(t2 - t1)
            rd.append(t3 - t2)
            pictures.append(layout_frame(strip, plan.layout).copy())
    finally:
        r.release()
    with tempfile.TemporaryDirectory() as d:
        with av.open(str(Path(d) / "x.mp4"), "w") as c:
            vs = c.add_stream("libx264", rate=25)
            vs.width, vs.height = plan.frame_size
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": str(plan.crf), "preset": plan.preset}
            for i, pic in enumerate(pictures):
                t0 = time.perf_counter()
                fr = av.VideoFrame.from_ndarray(pic, format="rgb24").reformat(
                    format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG"
                )
                fr.pts = i
                for p in vs.encode(fr):
                    c.mux(p)
                enc.append(time.perf_counter() - t0)
            for p in vs.encode():
                c.mux(p)
    return {
        "evaluate+deform": _median_ms(ev),
        "upload": _median_ms(up),
        "render": _median_ms(rd),
        "encode": _median_ms(enc),
    }


def end_to_end(project, settings, source) -> tuple[float, dict[str, float]]:
    """(frames/s of wall time after the first frame, the export's own stage totals)."""
    from studio.export import export_project

    t_first = None
    n_first = 0
    last = None
    for report in export_project(project, settings, head_source=source):
        if report.frame == 1 and t_first is None:
            t_first, n_first = time.perf_counter(), 1
        last = report
    t_end = time.perf_counter()
    fps = (last.total - n_first) / (t_end - t_first) if t_first else float("nan")
    return fps, last.timings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=25, help="frames per configuration")
    ap.add_argument("--eye-size", type=int, default=512)
    ap.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    ap.add_argument("--lod", type=int, nargs="*", default=[20000, 8000], help="LOD budgets")
    args = ap.parse_args(argv)

    from models.heads import load_builtin_head
    from renderers.gl_context import create_offscreen_context
    from studio.demo import build_demo_project
    from studio.export import ExportSettings, plan_export
    from studio.export.heads import RiggedHeadSource

    ctx = create_offscreen_context()
    print(f"GL: {ctx.info['GL_RENDERER']}")
    ctx.release()
    project = build_demo_project()
    head = load_builtin_head("default")
    n = min(args.frames, project.duration)
    print(
        f"demo project, default head ({len(head)} Gaussians), stereo 2x{args.eye_size}x"
        f"{args.eye_size} sbs, H.264 {args.preset}, {n} frames, medians in ms"
    )
    print(f"{'gaussians':>10} {'eval+deform':>12} {'upload':>8} {'render':>8} {'encode':>8}"
          f" {'export fps':>11}")  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        for budget in [None, *args.lod]:
            source = RiggedHeadSource(head, budget)
            settings = ExportSettings(
                Path(d) / f"b{budget}.mp4", eye_size=(args.eye_size, args.eye_size),
                frame_range=(0, n), preset=args.preset, overwrite=True,
            )  # fmt: skip
            plan = plan_export(project, settings)
            st = stage_times(project, plan, source, n)
            fps, _ = end_to_end(project, plan, source)
            label = str(len(source.head))
            print(
                f"{label:>10} {st['evaluate+deform']:12.1f} {st['upload']:8.1f} "
                f"{st['render']:8.1f} {st['encode']:8.1f} {fps:11.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
