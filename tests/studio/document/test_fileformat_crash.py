"""Required: a process saving a large project in a loop is SIGKILLed at random moments (25
times); afterwards the project file always loads, holding either the previous or the new
version, and the backup too. Uses fork so each child starts saving at once."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
from fileformat_factory import make_project

from studio.document.fileformat import load_project, read_project_info, save_project

KILLS = 25

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs fork and SIGKILL",
)


def _save_forever(project, path: Path, first: int, fd: int) -> None:
    version = first
    while True:
        project.metadata["version"] = version
        save_project(project, path)
        os.write(fd, b"%d\n" % version)  # reported only once the save has returned
        version += 1


def _version(path: Path) -> int:
    project = load_project(path)  # the full load must succeed, not just the JSON
    return project.metadata["version"]


def test_sigkill_during_saves_never_leaves_a_broken_file(tmp_path: Path) -> None:
    # ~50k keys in 12 long curves (~2.5 MB file): long enough saves that kills land in every
    # phase (zip writing, fsync, backup link, rename), cheap enough to load 25 times.
    channels = ("pitch", "yaw", "roll", "tx", "ty", "scale", "exp_19_y", "exp_11_y",
                "exp_15_y", "eye_open_r", "eye_open_l", "intensity")  # fmt: skip
    project = make_project(duration=8_000, key_every=2, channels=channels, n_takes=1)
    path = tmp_path / "big.ths"
    project.metadata["version"] = 0
    t0 = time.perf_counter()
    save_project(project, path)
    save_time = time.perf_counter() - t0

    ctx = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    done = 0  # newest version known to be complete on disk
    outcomes = {"old": 0, "new": 0, "mid_write": 0}
    for _ in range(KILLS):
        r, w = os.pipe()
        child = ctx.Process(target=_save_forever, args=(project, path, done + 1, w), daemon=True)
        child.start()
        os.close(w)
        time.sleep(rng.uniform(0.0, 1.5 * save_time))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        with os.fdopen(r, "rb") as f:
            reported = [int(x) for x in f.read().split()]
        if reported:
            done = reported[-1]
        v = _version(path)
        # Either the last complete save, or the one in flight whose rename had happened.
        assert v in (done, done + 1), (v, done, reported)
        outcomes["new" if v == done + 1 else "old"] += 1
        done = v
        # A temporary file left behind means the kill landed inside a save.
        outcomes["mid_write"] += any(f".tmp-{child.pid}-" in n for n in os.listdir(tmp_path))
        bak = path.with_name(path.name + ".bak")
        if bak.exists():
            assert read_project_info(bak)["metadata"]["version"] in (v - 1, v)
    bak = path.with_name(path.name + ".bak")
    if bak.exists():
        assert _version(bak) in (done - 1, done)
    else:
        # The backup is made before the rename, so a newer version implies a backup: without
        # one, no killed save got that far and the file still holds the first save.
        assert done == 0
    # Killed writers leave temporary files; the next save clears them.
    save_project(project, path)
    assert sorted(os.listdir(tmp_path)) == ["big.ths", "big.ths.bak"]
    print(outcomes, f"save {save_time:.3f} s")
    assert outcomes["mid_write"] >= KILLS // 4, outcomes
