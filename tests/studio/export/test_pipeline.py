"""The export pipeline: frames prepared ahead on a worker thread (studio.export.pipeline) come
out in order and give the same pictures as rendering frame by frame; errors in the worker
surface in the caller; cancelling mid-pipeline stops the worker and leaves no file."""

from __future__ import annotations

import random
import threading
import time

import cv2
import numpy as np
import pytest
from export_helpers import blob_cloud

from studio.export import ExportCancelled, ExportSettings, export_project, plan_export, run_export
from studio.export.heads import HeadSource, StaticCloudSource
from studio.export.pipeline import Prefetcher


def _prepare_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "export-prepare"]


# ---------------------------------------------------------------------------- Prefetcher alone
def test_prefetcher_keeps_order_and_bounds_slots():
    rng = random.Random(0)
    in_use: set[str] = set()
    lock = threading.Lock()
    threads = set()

    def prepare(i, slot):
        threads.add(threading.current_thread().name)
        with lock:
            assert slot not in in_use  # a slot is reused only after its result was consumed
            in_use.add(slot)
        time.sleep(rng.uniform(0, 0.004))
        return i, slot

    got = []
    with Prefetcher(prepare, 30, ["a", "b"]) as pf:
        for i, slot in pf:
            got.append(i)
            time.sleep(rng.uniform(0, 0.004))
            with lock:
                in_use.discard(slot)
    assert got == list(range(30))
    assert threads == {"export-prepare"}
    assert not _prepare_threads()


def test_prefetcher_raises_worker_errors_at_their_frame():
    def prepare(i, slot):
        if i == 4:
            raise ValueError("bad frame 4")
        return i

    got = []
    with Prefetcher(prepare, 10, [0, 1]) as pf, pytest.raises(ValueError, match="bad frame 4"):
        for i in pf:
            got.append(i)
    assert got == [0, 1, 2, 3]
    assert not _prepare_threads()


def test_prefetcher_close_mid_way_stops_the_worker():
    calls = []

    def prepare(i, slot):
        calls.append(i)
        return i

    pf = Prefetcher(prepare, 100, [0, 1])
    for i in pf:
        if i == 5:
            break
    pf.close()
    assert not _prepare_threads()
    assert max(calls) <= 7  # at most the slots' worth ahead of the consumer


def test_prefetcher_inline_when_not_threaded():
    names = []
    pf = Prefetcher(lambda i, s: names.append(threading.current_thread().name) or i, 3, [0], False)
    assert list(pf) == [0, 1, 2]
    assert names == [threading.current_thread().name] * 3


# ---------------------------------------------------------------------------- through export
class MovingSource(HeadSource):
    """A blob cloud shifted sideways by the yaw channel (fresh arrays each frame); records the
    threads ``frame`` ran on; raises at frame ``fail_at``."""

    thread_safe = True

    def __init__(self, fail_at: int | None = None) -> None:
        rng = np.random.default_rng(1)
        d = rng.normal(size=(200, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        self.cloud = blob_cloud([tuple(p) for p in 0.1 * d], size=0.012)
        self.cloud.sh[:, 0, :] = (rng.uniform(0.2, 1.0, (200, 3)) - 0.5) / 0.28209479177387814
        self.fail_at = fail_at
        self.calls = 0
        self.threads: set[str] = set()

    def rest_cloud(self):
        return self.cloud

    def frame(self, values):
        from models.motion_space import CHANNEL_INDEX
        from renderers import GaussianCloud

        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and self.calls == self.fail_at:
            raise ValueError(f"cannot deform frame {self.calls}")
        self.calls += 1
        shift = np.float32(0.004 * values[CHANNEL_INDEX["yaw"]])  # yaw: 0 -> 12 -> -5 degrees
        c = self.cloud
        means = c.means + np.array([shift, 0, 0], np.float32)
        return GaussianCloud(means, c.quats, c.scales, c.opacities, c.sh)


@pytest.mark.gl
@pytest.mark.usefixtures("gl_ok")
@pytest.mark.parametrize("layout", ["sbs", "tb"])
def test_pipelined_export_equals_frame_by_frame_rendering(tmp_path, project, layout):
    """Every frame, in order, exactly the picture OfflineRenderer.render gives on its own."""
    from studio.export.renderer import OfflineRenderer

    source = MovingSource()
    settings = ExportSettings(tmp_path / "p", format="png", eye_size=(64, 48), layout=layout)
    run_export(project, settings, head_source=source)
    assert "export-prepare" in source.threads  # prepared on the worker thread
    plan = plan_export(project, ExportSettings(tmp_path / "q", format="png", eye_size=(64, 48)))
    values = project.evaluate(plan.positions)
    renderer = OfflineRenderer(plan, MovingSource())
    try:
        expected = [renderer.render(v).copy() for v in values]
    finally:
        renderer.release()
    folder = next(p for p in tmp_path.iterdir() if p.name.startswith("p"))
    distinct = set()
    for i, strip in enumerate(expected):
        views = [cv2.imread(str(folder / eye / f"{i:04d}.png"))[..., ::-1] for eye in plan.eyes]
        np.testing.assert_array_equal(np.concatenate(views, axis=1), strip, err_msg=f"frame {i}")
        distinct.add(strip.tobytes())
    assert len(distinct) > len(expected) // 2  # the frames really differ: order is checked


@pytest.mark.gl
@pytest.mark.usefixtures("gl_ok")
def test_both_slots_draw_the_same_pictures(tmp_path, project):
    """A frame prepared into either renderer slot gives the same picture; top-bottom is the
    strip restacked."""
    from studio.export.renderer import OfflineRenderer, layout_frame

    source = MovingSource()
    plan = plan_export(project, ExportSettings(tmp_path / "v.mp4", eye_size=(64, 48), layout="tb"))
    values = project.evaluate(plan.positions)
    renderer = OfflineRenderer(plan, source)
    try:
        for slot, v in zip((0, 1, 0), values[:3], strict=True):
            picture = renderer.draw(renderer.prepare(v, slot), plan.layout)
            strip = renderer.draw(renderer.prepare(v, 1 - slot))
            np.testing.assert_array_equal(picture, layout_frame(strip, "tb"))
    finally:
        renderer.release()


@pytest.mark.gl
@pytest.mark.usefixtures("gl_ok")
def test_worker_error_surfaces_and_leaves_no_file(tmp_path, project):
    source = MovingSource(fail_at=4)
    seen = []
    settings = ExportSettings(tmp_path / "e.mp4", eye_size=(64, 64))
    with pytest.raises(ValueError, match="cannot deform frame 4"):
        run_export(project, settings, head_source=source, on_progress=lambda r: seen.append(r))
    assert [r.frame for r in seen] == [0, 1, 2, 3, 4]
    assert list(tmp_path.iterdir()) == []
    assert not _prepare_threads()


@pytest.mark.gl
@pytest.mark.usefixtures("gl_ok")
def test_cancel_mid_pipeline_stops_the_worker_and_leaves_no_file(tmp_path, project):
    cancel = threading.Event()
    settings = ExportSettings(tmp_path / "c.mp4", eye_size=(64, 64))
    gen = export_project(project, settings, cancel=cancel, head_source=MovingSource())
    with pytest.raises(ExportCancelled):
        for report in gen:
            if report.frame == 2:
                assert _prepare_threads()  # the worker is running ahead
                cancel.set()
    assert list(tmp_path.iterdir()) == []
    assert not _prepare_threads()


@pytest.mark.gl
@pytest.mark.usefixtures("gl_ok")
def test_sources_that_are_not_thread_safe_prepare_inline(tmp_path, project, head_scene):
    class GLThreadSource(StaticCloudSource):
        thread_safe = False

        def frame(self, values):
            self.threads.add(threading.current_thread().name)
            return super().frame(values)

    source = GLThreadSource(head_scene.cloud)
    source.threads = set()
    run_export(project, ExportSettings(tmp_path / "s.mp4", eye_size=(32, 32)), head_source=source)
    assert source.threads == {threading.current_thread().name}
