"""Test-wide setup.

- Qt runs headless (``QT_QPA_PLATFORM=offscreen``) unless the environment chose a platform;
  GL widget tests run under Xvfb with ``QT_QPA_PLATFORM=xcb`` set by the caller.
- Tests never touch the user's files: XDG_CONFIG_HOME and XDG_STATE_HOME (settings, recovery
  folder) point at a temporary folder for the session and at ``tmp_path`` for each test.
- Qt tests (those using qtbot or qapp) fail when they leak top-level widgets or leave worker
  threads running, and a modal dialog fails the test instead of blocking it forever.
- Shared fixtures: ``ctx`` (a headless EGL context per module), ``torch_one_thread``,
  ``tiny_dir`` (a tiny MotionDiT folder per module, see tiny_models.py), ``face_models`` (skip
  without the face models) and ``landmarker``.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_SESSION_DIR = tempfile.mkdtemp(prefix="ths-tests-")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_SESSION_DIR, "config")
os.environ["XDG_STATE_HOME"] = os.path.join(_SESSION_DIR, "state")


def pytest_addoption(parser):
    parser.addoption(
        "--runslow", action="store_true", default=False,
        help="also run tests marked slow (RUN_SLOW=1 does the same)",
    )  # fmt: skip


def pytest_collection_modifyitems(config, items):
    """Skip slow tests unless asked for, and GPU tests without CUDA (torch imported only if a
    GPU test was collected)."""
    run_slow = config.getoption("--runslow") or os.environ.get("RUN_SLOW") == "1"
    if not run_slow:
        skip_slow = pytest.mark.skip(reason="slow: run with --runslow or RUN_SLOW=1")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items:
        import torch

        if not torch.cuda.is_available():
            skip_gpu = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
            for item in gpu_items:
                item.add_marker(skip_gpu)


@pytest.fixture(scope="module")
def ctx():
    """A headless EGL moderngl context for the test module, released after it; skips the tests
    when none can be made."""
    from renderers.gl_context import GLUnavailableError, create_offscreen_context

    try:
        context = create_offscreen_context()
    except GLUnavailableError as exc:
        pytest.skip(f"no headless EGL OpenGL context: {exc}")
    yield context
    context.release()


@pytest.fixture
def torch_one_thread():
    """Torch on one thread for the test: two OpenMP threads on a shared 2-core machine spin
    against other processes (10x slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random MotionDiT (log-mel input) saved as a model folder, once per module."""
    from tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def face_models() -> None:
    """Skip unless setup has fetched the face models."""
    from models.face.fetch_models import DEFAULT_DEST, SETUP_COMMAND, models_present

    if not models_present(DEFAULT_DEST):
        pytest.skip(f"face models not installed in {DEFAULT_DEST}: run `{SETUP_COMMAND}`")


@pytest.fixture(scope="session")
def landmarker(face_models):
    """One FaceLandmarker for the session; skips without the face models or ai-edge-litert."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    from models.face.landmarks import FaceLandmarker

    return FaceLandmarker(num_threads=1)


# Qt's own tooltip and similar process-wide singletons are created on first use and live on.
_IGNORED_TOP_LEVELS = {"QTipLabel", "QWhatsThat", "QMenuBar"}
_TOLERATED_MENU_TREES: set[str] = set()


def _tolerated(w) -> bool:
    from PySide6.QtWidgets import QMenu

    root = w
    while isinstance(root.parent(), QMenu):
        root = root.parent()
    return (
        isinstance(root, QMenu)
        and root.parent() is None
        and root.title() in (_TOLERATED_MENU_TREES)
    )


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Per-test settings and state folders (QSettings ini, recovery folder)."""
    base = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    yield


def _uses_qt(request) -> bool:
    names = request.fixturenames
    return "qtbot" in names or "qapp" in names


def _live_top_levels() -> dict[int, str]:
    from PySide6.QtWidgets import QApplication
    from shiboken6 import Shiboken

    out = {}
    for w in QApplication.topLevelWidgets():
        if not Shiboken.isValid(w):
            continue
        name = type(w).__name__
        if w.metaObject().className() in _IGNORED_TOP_LEVELS or _tolerated(w):
            continue
        out[Shiboken.getCppPointer(w)[0]] = f"{name}({w.objectName() or w.windowTitle()!r})"
    return out


def _flush_deletes() -> None:
    from PySide6.QtCore import QCoreApplication, QEvent

    for _ in range(3):
        gc.collect()
        QCoreApplication.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture(autouse=True)
def _qt_leak_check(request, monkeypatch):
    """For Qt tests: fail on leaked top-level widgets, running workers or new threads, and
    make modal dialogs fail instead of blocking."""
    if not _uses_qt(request):
        yield
        return
    qapp = request.getfixturevalue("qapp")
    from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QMessageBox

    def no_modal(self_or_cls, *args, **kwargs):
        raise AssertionError(
            "a modal dialog was opened in a test (it would block): monkeypatch the "
            "studio.ui.dialogs function that asks instead"
        )

    for cls in (QDialog, QMessageBox):
        monkeypatch.setattr(cls, "exec", no_modal)
    for name in ("getOpenFileName", "getSaveFileName", "getExistingDirectory"):
        monkeypatch.setattr(QFileDialog, name, staticmethod(no_modal))
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(no_modal))

    _flush_deletes()
    before = _live_top_levels()
    threads_before = set(threading.enumerate())
    yield
    # pytest-qt has closed the widgets given to qtbot.addWidget by now (and deleteLater'd
    # them); anything else still alive was leaked by the test or the code under test.
    problems = []
    runner = sys.modules.get("studio.workers.runner")
    if runner is not None:
        for w in runner.active_workers():
            w.cancel()
            if not w.wait(3000):
                problems.append(f"worker {w.name!r} still running")
        qapp.processEvents()
        left = runner.active_workers()
        if left:
            problems.append(f"workers not finished: {left}")
    _flush_deletes()
    leaked = {k: v for k, v in _live_top_levels().items() if k not in before}
    if leaked:
        problems.append(f"leaked top-level widgets: {sorted(leaked.values())}")
        from PySide6.QtWidgets import QApplication

        for w in QApplication.topLevelWidgets():  # clean up so the next test starts clean
            w.close()
            w.deleteLater()
        _flush_deletes()
    for t in set(threading.enumerate()) - threads_before:
        if t.daemon:  # includes QThreads seen by Python (dummy threads): workers checked above
            continue
        t.join(timeout=2.0)
        if t.is_alive():
            problems.append(f"thread {t.name!r} still running")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """Collect Qt wrappers while the QApplication still exists: left to interpreter
    finalization, PySide6 6.12 can abort in the final garbage collection ("bool_dealloc")."""
    if "PySide6.QtWidgets" in sys.modules:
        from PySide6.QtWidgets import QApplication

        if QApplication.instance() is not None:
            _flush_deletes()
