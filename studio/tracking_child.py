"""Live face tracking in a child process (Qt-free): :class:`TrackingProcess` is a FaceTracker
for ``studio.ui.live_session.LiveSession`` whose work runs in another Python process.

Why: in the studio process the capture thread's tracking (TFLite, cv2: C calls that release the
GIL and must get it back afterwards) competed for the GIL with the GUI thread (Qt paint and swap,
GL draws called from Python). On 2 cores ``FaceTracker.process`` took ~14 ms a frame in the live
loop against ~8.5 ms alone. A child has its own GIL; the capture thread only copies the frame
into shared memory and waits for the answer in ``Connection.poll`` (GIL released).

How:
- The child is started with the "spawn" start method (a fresh interpreter: a forked copy of a
  process with Qt and GL initialised is not safe) when live mode starts; it builds the tracker
  with the session's ``tracker_factory(settings, profile)``, which must be picklable (a
  module-level function or a ``functools.partial`` of one; :func:`picklable` tells).
- Frames (uint8 [H, W, C] and other numeric arrays) go through a ring of
  ``multiprocessing.shared_memory`` slots, never pickled; the message on the Pipe names the
  slot, shape and dtype. ``None`` and unusual frames go inline (the tracker reports them as
  bad frames, as in the studio process).
- Results come back on the Pipe as a TrackedFrame (values, status, the FaceLandmarks: ~15 KB).
- Changes from the studio (settings, profile, resets) are queued by this proxy and applied in
  the child before the next frame, in the order they were made.
- The child dies with the studio: it is a daemon process (terminated when the studio exits)
  and it exits when the Pipe closes (the studio was killed). ``close()`` asks it to stop, then
  terminates and kills it if it does not.
- A child that dies, or does not answer a frame within ``frame_timeout`` seconds, raises
  :class:`TrackingProcessError` from ``process``; the live session then tracks in its own
  process (the proxy keeps the settings and the profile to rebuild the tracker there).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import time
import traceback
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.face.tracker import PerformerProfile, TrackedFrame, TrackerSettings

__all__ = [
    "FRAME_TIMEOUT_S",
    "START_TIMEOUT_S",
    "TrackingProcess",
    "TrackingProcessError",
    "TrackingUnavailable",
    "picklable",
]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # spawning, imports and loading the models (slow on a loaded machine)
FRAME_TIMEOUT_S = 3.0  # one frame takes ~10 ms; a child this late is hung
_SLOTS = 2  # frames in flight: 1 (synchronous); a spare after a frame that timed out
_MIN_SLOT = 640 * 480 * 3


class TrackingProcessError(RuntimeError):
    """The tracking process died, hung or could not be started (the message says which)."""


class TrackingUnavailable(RuntimeError):
    """The tracker could not be built in the child (models missing, no TFLite runtime): the
    same errors as building it in the studio (OSError, ImportError, ValueError)."""


def picklable(obj: Any) -> bool:
    """True when ``obj`` can be sent to a spawned process (module-level functions and
    partials of them can; lambdas and nested functions cannot)."""
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


# ------------------------------------------------------------------------------- studio side
class _Landmarker:
    """``tracker.landmarker`` as the live loop uses it: ``reset()`` (queued for the child)."""

    def __init__(self, owner: TrackingProcess) -> None:
        self._owner = owner

    def reset(self) -> None:
        self._owner._ops.append(("call", "landmarker.reset", ()))


class TrackingProcess:
    """A FaceTracker whose work runs in a child process (see the module docstring).

    ``tracker_factory(settings, profile)`` is called in the child and must be picklable.
    ``start()`` spawns the child and returns at once; ``wait_ready()`` waits for the tracker to
    be built there (raises TrackingUnavailable with the factory's error, TrackingProcessError
    when the child died or took longer than ``start_timeout``). Then use it like a FaceTracker:
    ``process``, ``settings`` (assignable), ``profile``, ``calibrated``, ``set_profile``,
    ``reset``, ``landmarker.reset()``, ``profile_from_landmarks`` (computed here: it is numpy
    on landmarks this side has), ``num_faces``. Not thread-safe: one thread uses it.
    """

    def __init__(
        self,
        tracker_factory: Callable[[TrackerSettings, PerformerProfile | None], Any],
        settings: TrackerSettings,
        profile: PerformerProfile | None = None,
        *,
        start_timeout: float = START_TIMEOUT_S,
        frame_timeout: float = FRAME_TIMEOUT_S,
    ) -> None:
        self._factory = tracker_factory
        self._settings = settings
        self._profile = profile
        self._calibrated = profile is not None
        self.start_timeout = float(start_timeout)
        self.frame_timeout = float(frame_timeout)
        self._ops: list[tuple[Any, ...]] = []
        self._proc: Any = None
        self._conn: Any = None
        self._slots: list[shared_memory.SharedMemory] = []
        self._next_slot = 0
        self._reference: np.ndarray | None = None
        self._dead: str | None = None
        self.num_faces = 0
        self.landmarker = _Landmarker(self)

    # ------------------------------------------------------------------ lifetime
    def start(self) -> None:
        """Spawn the child (it builds the tracker while the caller does other work)."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(
            target=_serve, args=(child, self._factory, self._settings, self._profile),
            name="live-tracking", daemon=True,
        )  # fmt: skip
        self._proc.start()
        child.close()  # ours: the child's end lives in the child (EOF here when it dies)
        self._conn = parent

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def factory(self) -> Callable[[TrackerSettings, PerformerProfile | None], Any]:
        """The tracker factory the child builds its tracker with."""
        return self._factory

    @property
    def alive(self) -> bool:
        """Started, not closed, and the child process still running."""
        return self._dead is None and self._proc is not None and self._proc.is_alive()

    def wait_ready(self, stop: Any = None) -> None:
        """Wait until the child has built its tracker. ``stop``: a threading.Event that ends
        the wait early (TrackingProcessError "stopped"). Raises TrackingUnavailable or
        TrackingProcessError."""
        if self._proc is None:
            self.start()
        deadline = time.perf_counter() + self.start_timeout
        while not self._poll(0.1):
            if stop is not None and stop.is_set():
                raise TrackingProcessError("stopped")
            if time.perf_counter() > deadline:
                self._fail(f"the tracking process did not start in {self.start_timeout:g} s")
        msg = self._recv()
        if msg[0] == "unavailable":
            self.close()
            raise TrackingUnavailable(msg[1])
        if msg[0] != "ready":
            self._fail(f"the tracking process failed to start: {msg[1]}")
        self._reference = np.asarray(msg[1], dtype=np.float64)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the child (asked, then terminated, then killed) and free the shared memory.
        Idempotent; never raises."""
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
        if proc is not None:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)
        if conn is not None:
            conn.close()
        for shm in self._slots:
            with contextlib.suppress(OSError):
                shm.close()
            with contextlib.suppress(OSError):
                shm.unlink()
        self._slots = []

    def __del__(self) -> None:  # a session that never got to close() (an exception)
        with contextlib.suppress(Exception):
            self.close(0.2)

    # ------------------------------------------------------------------ FaceTracker interface
    @property
    def settings(self) -> TrackerSettings:
        return self._settings

    @settings.setter
    def settings(self, value: TrackerSettings) -> None:
        self._settings = value
        self._ops.append(("set", "settings", value))

    @property
    def profile(self) -> PerformerProfile | None:
        return self._profile

    @profile.setter
    def profile(self, value: PerformerProfile | None) -> None:
        self._profile = value
        self._ops.append(("set", "profile", value))

    @property
    def calibrated(self) -> bool:
        return self._calibrated

    @calibrated.setter
    def calibrated(self, value: bool) -> None:
        self._calibrated = bool(value)
        self._ops.append(("set", "calibrated", bool(value)))

    def set_profile(self, profile: PerformerProfile) -> None:
        self._profile, self._calibrated = profile, True
        self._ops.append(("call", "set_profile", (profile,)))

    def reset(self) -> None:
        self._ops.append(("call", "reset", ()))

    def profile_from_landmarks(self, landmarks: list[Any], name: str = "") -> PerformerProfile:
        """As FaceTracker's (the child's reference keypoints), computed in this process."""
        from models.face.tracker import FaceTracker

        return FaceTracker.profile_from_landmarks(self, landmarks, name)  # type: ignore[arg-type]

    @property
    def reference_keypoints(self) -> np.ndarray:
        if self._reference is None:
            from models.face.tracker import default_reference_keypoints

            return default_reference_keypoints()
        return self._reference

    def process(self, frame: Any, timestamp: float | None = None) -> TrackedFrame:
        """``FaceTracker.process`` in the child. Raises TrackingProcessError when the child
        is gone or does not answer within ``frame_timeout``; what the tracker raised in the
        child is raised here as RuntimeError with its type and message."""
        from models.face.tracker import TrackedFrame

        if self._dead is not None:
            raise TrackingProcessError(self._dead)
        if self._conn is None:
            raise TrackingProcessError("the tracking process is not running")
        ops, self._ops = self._ops, []
        try:
            self._conn.send(("frame", ops, self._put(frame), timestamp))
        except (OSError, ValueError) as exc:
            self._fail(f"the tracking process stopped ({exc})")
        if not self._poll(self.frame_timeout):
            self._fail(f"the tracking process did not answer in {self.frame_timeout:g} s")
        msg = self._recv()
        if msg[0] == "raised":
            log.error("face tracking failed in the tracking process:\n%s", msg[2])
            raise RuntimeError(msg[1])
        _, ts, values, status, num_faces, lm, raw, ms, tracker_faces, calibrated = msg
        self.num_faces = tracker_faces
        self._calibrated = calibrated
        return TrackedFrame(ts, values, status, num_faces, lm, raw, ms)

    # ------------------------------------------------------------------ internals
    def _put(self, frame: Any) -> tuple[Any, ...]:
        """The frame's reference for the child: ("shm", name, shape, dtype) after copying it
        into the next ring slot, or ("inline", frame) for what does not go through one."""
        a = frame if isinstance(frame, np.ndarray) else None
        if a is None or a.dtype.kind not in "biuf" or a.ndim not in (2, 3) or a.size == 0:
            return ("inline", frame)
        i = self._next_slot
        self._next_slot = (i + 1) % _SLOTS
        if i >= len(self._slots) or self._slots[i].size < a.nbytes:
            shm = shared_memory.SharedMemory(create=True, size=max(a.nbytes, _MIN_SLOT))
            if i < len(self._slots):
                old, self._slots[i] = self._slots[i], shm
                with contextlib.suppress(OSError):
                    old.close()
                    old.unlink()
            else:
                self._slots.append(shm)
        shm = self._slots[i]
        np.copyto(np.ndarray(a.shape, a.dtype, buffer=shm.buf), a)
        return ("shm", shm.name, a.shape, a.dtype.str)

    def _poll(self, timeout: float) -> bool:
        try:
            return bool(self._conn.poll(timeout))  # the GIL is released while waiting
        except (OSError, ValueError, EOFError):
            return True  # recv() reports it

    def _recv(self) -> tuple[Any, ...]:
        try:
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            code = None if self._proc is None else self._proc.exitcode
            if code is None and self._proc is not None:
                self._proc.join(0.5)
                code = self._proc.exitcode
            how = f"exit status {code}" if code is None or code >= 0 else f"signal {-code}"
            self._fail(f"the tracking process stopped unexpectedly ({how})", exc)
        raise AssertionError("unreachable")

    def _fail(self, message: str, cause: BaseException | None = None) -> None:
        self._dead = message
        self.close(0.2)
        raise TrackingProcessError(message) from cause


# ------------------------------------------------------------------------------- child side
def _serve(conn: Any, factory: Callable[..., Any], settings: Any, profile: Any) -> None:
    """The child: build the tracker, then answer frames until "stop" or the Pipe closes."""
    try:
        tracker = factory(settings, profile)
    except (OSError, ImportError, ValueError) as exc:  # models missing, no runtime
        conn.send(("unavailable", str(exc)))
        return
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    ref = getattr(tracker, "reference_keypoints", None)
    conn.send(("ready", None if ref is None else np.asarray(ref), os.getpid()))
    shms: dict[str, shared_memory.SharedMemory] = {}
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the studio is gone
                return
            if msg[0] != "frame":
                return  # "stop"
            _, ops, ref, ts = msg
            try:
                for op in ops:
                    _apply(tracker, op)
                frame = _frame(ref, shms)
                res = tracker.process(frame, ts)
            except Exception as exc:
                conn.send(("raised", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                continue
            conn.send((
                "result", res.timestamp, res.values, res.status, res.num_faces, res.landmarks,
                res.raw, res.process_ms, int(getattr(tracker, "num_faces", 0) or 0),
                bool(getattr(tracker, "calibrated", False)),
            ))  # fmt: skip
    finally:
        for shm in shms.values():
            with contextlib.suppress(Exception):
                shm.close()


def _apply(tracker: Any, op: tuple[Any, ...]) -> None:
    kind, name, arg = op
    *path, last = name.split(".")
    obj = tracker
    for part in path:
        obj = getattr(obj, part)
    if kind == "set":
        setattr(obj, last, arg)
    else:
        getattr(obj, last)(*arg)


def _frame(ref: tuple[Any, ...], shms: dict[str, shared_memory.SharedMemory]) -> Any:
    if ref[0] == "inline":
        return ref[1]
    _, name, shape, dtype = ref
    shm = shms.get(name)
    if shm is None:
        if len(shms) >= 2 * _SLOTS:  # slots the studio replaced (bigger frames)
            for old in list(shms)[:_SLOTS]:
                with contextlib.suppress(Exception):
                    shms.pop(old).close()
        shm = shms[name] = shared_memory.SharedMemory(name=name)
    # A copy (~0.1 ms): tracking read the shared view ~0.8 ms slower (9.3 vs 8.5 ms a frame,
    # same process), most likely the studio's core's cache holding the freshly written frame;
    # and the slot can be written again as soon as this returns.
    return np.array(np.ndarray(shape, np.dtype(dtype), buffer=shm.buf))
