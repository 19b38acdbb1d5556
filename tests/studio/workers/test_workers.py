"""Workers: generator jobs in a QThread report progress, return results, fail with a message,
and stop within one step of Cancel."""

from __future__ import annotations

import threading

import pytest

from studio.workers import Cancelled, Progress, Worker, WorkerStatus, active_workers, as_progress


def _run(qtbot, worker, timeout=5000):
    with qtbot.waitSignal(worker.done, timeout=timeout):
        worker.start()
    return worker


def test_as_progress_normalises_what_jobs_yield():
    assert as_progress(0.25) == Progress(0.25)
    assert as_progress((3, 4)) == Progress(0.75, "3/4")
    assert as_progress("loading").text == "loading" and as_progress("x").fraction is None
    assert as_progress(None) == Progress()
    assert as_progress(Progress(2.0, "over")).fraction == 1.0
    assert as_progress(float("nan")).fraction is None
    with pytest.raises(TypeError):
        as_progress(object())


def test_progress_in_order_and_result(qtbot):
    def job(n):
        for i in range(n):
            yield Progress((i + 1) / n, f"step {i + 1}")
        return "done", threading.current_thread() is not threading.main_thread()

    seen = []
    w = Worker(job, 4, name="count")
    w.progress.connect(lambda p: seen.append(p.fraction))
    results = []
    w.finished_ok.connect(results.append)
    _run(qtbot, w)
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert results == [("done", True)]
    assert w.result() == ("done", True)
    assert active_workers() == []


def test_cancel_stops_within_one_step_and_runs_finally(qtbot):
    gate = threading.Semaphore(0)
    ran, cleaned = [], []

    def job():
        try:
            for i in range(100):
                gate.acquire()
                ran.append(i)
                yield (i + 1, 100)
        finally:
            cleaned.append(True)

    w = Worker(job, name="long")
    seen = []
    w.progress.connect(lambda p: seen.append(p))
    w.start()
    for _ in range(3):
        gate.release()
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=3000)
    with qtbot.waitSignal(w.cancelled, timeout=3000):
        w.cancel()
        gate.release()  # the step already under way finishes; none after it
        gate.release()
        gate.release()
    qtbot.waitUntil(lambda: w not in active_workers(), timeout=3000)
    assert ran == [0, 1, 2, 3]
    assert cleaned == [True]
    with pytest.raises(Cancelled):
        w.result()


def test_cancel_before_start_runs_nothing(qtbot):
    ran = []

    def job():
        ran.append(1)
        yield 1.0

    w = Worker(job)
    w.cancel()
    with qtbot.waitSignal(w.cancelled, timeout=3000):
        _run(qtbot, w)
    assert ran == []


def test_a_failing_job_reports_one_line_and_the_traceback(qtbot):
    def job():
        yield 0.5
        raise RuntimeError("the model exploded\nwith details")

    w = Worker(job, name="boom")
    failures = []
    w.failed.connect(lambda msg, tb: failures.append((msg, tb)))
    _run(qtbot, w)
    ((msg, tb),) = failures
    assert msg == "RuntimeError: the model exploded"
    assert "Traceback" in tb and "the model exploded" in tb


def test_bad_input_errors_are_just_their_message(qtbot):
    def job(path):
        yield 0.0
        raise FileNotFoundError(f"{path}: no such file")

    w = Worker(job, "x.wav")
    failures = []
    w.failed.connect(lambda msg, tb: failures.append((msg, tb)))
    _run(qtbot, w)
    assert failures == [("x.wav: no such file", "")]


def test_plain_functions_run_too_and_workers_run_once(qtbot):
    w = _run(qtbot, Worker(lambda a, b: a + b, 2, 3))
    assert w.result() == 5
    with pytest.raises(RuntimeError):
        w.start()


def test_status_widget_shows_progress_and_cancels(qtbot):
    status = WorkerStatus()
    qtbot.addWidget(status)
    gate = threading.Event()

    def job():
        yield Progress(0.5, "half")
        gate.wait(5)
        yield Progress(0.9, "almost")

    w = Worker(job, name="Render")
    status.track(w)
    assert not status.isHidden()
    w.start()
    qtbot.waitUntil(lambda: "half" in status.label.text(), timeout=3000)
    assert status.bar.value() == 500
    with qtbot.waitSignal(w.done, timeout=3000):
        status.cancel_button.click()
        gate.set()
    assert status.isHidden() and status.current() is None
    with pytest.raises(Cancelled):
        w.result()


def test_status_label_keeps_its_size_whatever_the_text(qtbot):
    """Progress text must not change the status widget's size hint: a growing label re-lays out
    the main window (and re-renders the viewport) on every report."""
    status = WorkerStatus()
    qtbot.addWidget(status)
    gate = threading.Event()

    def job():
        yield Progress(None, "x")
        yield Progress(0.2, "step 1/40 " + "long text " * 30)
        gate.wait(5)

    w = Worker(job, name="Generate")
    status.track(w)
    hint = status.sizeHint()
    w.start()
    qtbot.waitUntil(lambda: "1/40" in status.label.full_text(), timeout=3000)
    assert status.sizeHint() == hint
    assert status.label.text() != status.label.full_text()  # elided
    assert "1/40" in status.label.toolTip()
    assert status.bar.maximum() == 1000  # no animated busy indicator
    gate.set()
    qtbot.waitUntil(lambda: status.current() is None, timeout=3000)
