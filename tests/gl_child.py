"""Running Qt OpenGL tests in a child pytest process under the X display.

QOpenGLWidget needs a real platform (not "offscreen"), and Qt's GLX context cannot be made in a
process that already made an EGL context (renderer tests do). A test module marks its GL tests,
runs them once in a fresh child (``QT_QPA_PLATFORM=xcb``, ``<env_var>=1``) with
:func:`run_child`, and each parent test reports its twin's outcome with :func:`child_outcome`.
Importable as ``gl_child`` (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

Outcomes = tuple[dict[str, tuple[str, str]], str]


def run_child(ids: list[str], env_var: str, tmp_dir: Path, what: str) -> Outcomes:
    """Run the test ``ids`` in a child pytest with ``env_var=1`` on the X display; returns
    ({test name: (outcome, message)}, the end of its log). Skips without DISPLAY (``what``
    names the tests in the message); fails when the child produced no JUnit XML."""
    if not os.environ.get("DISPLAY"):
        pytest.skip(f"GL {what} tests need an X display: run the suite under xvfb-run")
    xml = tmp_dir / "junit.xml"
    # tests/conftest.py defaults to offscreen: the child needs xcb for GLX.
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", **{env_var: "1"})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *ids, "-q", "-p", "no:cacheprovider",
         f"--junitxml={xml}", "-o", "addopts="],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    full = proc.stdout + proc.stderr
    log = full[-4000:]
    if not xml.exists():
        # A crash: faulthandler's report starts at "Fatal Python error" with the crashing
        # thread's innermost frames first, which a plain tail of the log would cut off.
        crash = full.find("Fatal Python error")
        if crash >= 0:
            log = full[max(0, crash - 1500) : crash + 6000]
        (tmp_dir / "child.log").write_text(full)
        pytest.fail(
            f"the GL child process produced no results (rc {proc.returncode}; whole log: "
            f"{tmp_dir / 'child.log'}):\n{log}"
        )
    outcomes = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = tag
                message = (node.get("message") or "") + "\n" + (node.text or "")
                break
        outcomes[case.get("name")] = (outcome, message)
    return outcomes, log


def child_outcome(request: pytest.FixtureRequest, child: bool, outcomes: Outcomes | None) -> bool:
    """True in the child (run the test body); in the parent, report the child's outcome for
    this test (skip or fail here, else False: the body is not run again)."""
    if child:
        return True
    assert outcomes is not None
    results, log = outcomes
    outcome, message = results.get(request.node.name, ("missing", log))
    if outcome == "skipped":
        pytest.skip(message.strip().splitlines()[0] if message.strip() else "skipped in child")
    if outcome != "passed":
        pytest.fail(f"in the GL child process: {outcome}\n{message[-3000:]}")
    return False
