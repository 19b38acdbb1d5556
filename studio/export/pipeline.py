"""Frame preparation ahead of rendering: a worker thread that runs the per-frame CPU work
(the rig's deformation and, for the CPU splat renderer, the attribute update) of frame N+1 while
the caller renders frame N. Qt-free.

The export loop is then bound by the slowest stage (the render of a stereo pair on a CPU-only
machine) rather than by the sum of the stages: the native kernel and numpy's large array
operations release the GIL, so the worker runs on the other core meanwhile. Frames come out in
order, every one of them; an error in the worker is raised in the consumer's thread on the frame
it happened at.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

__all__ = ["Prefetcher"]

T = TypeVar("T")


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetcher(Generic[T]):
    """Iterates ``prepare(i, slot)`` for ``i`` in ``range(count)``, in order, computed ahead on
    one worker thread named ``name``.

    slots: the buffers (any tokens) results are prepared into; a result holds its slot until the
    consumer asks for the next result, so at most ``len(slots)`` results exist at once (2: the
    one being consumed and the next). threaded=False: ``prepare`` runs in the consumer's thread
    when asked (sources that must stay on the GL thread), same results.

    ``wait_s``: seconds the consumer spent waiting for a result (the worker was the slower
    stage). Raises, from ``__next__``, whatever ``prepare`` raised. ``close()`` (also at the end
    of a ``with`` block) stops the worker after the item it is on and joins it: call it before
    freeing what ``prepare`` uses.
    """

    def __init__(
        self,
        prepare: Callable[[int, object], T],
        count: int,
        slots: Sequence[object],
        threaded: bool = True,
        name: str = "export-prepare",
    ) -> None:
        if not slots:
            raise ValueError("Prefetcher needs at least one slot")
        self._prepare = prepare
        self._count = count
        self._slots = list(slots)
        self._threaded = threaded
        self._name = name
        self._free: queue.Queue[object] = queue.Queue()
        self._ready: queue.Queue[tuple[object, T] | _Failure] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.wait_s = 0.0

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        if not self._threaded:
            for i in range(self._count):
                yield self._prepare(i, self._slots[0])
            return
        if self._thread is not None:
            raise RuntimeError("Prefetcher can be iterated once")
        for slot in self._slots:
            self._free.put(slot)
        self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
        self._thread.start()
        held = None
        for _ in range(self._count):
            if held is not None:
                self._free.put(held)  # the consumer is done with the previous result
                held = None
            t0 = time.perf_counter()
            item = self._ready.get()
            self.wait_s += time.perf_counter() - t0
            if isinstance(item, _Failure):
                raise item.exc
            held, result = item
            yield result

    def _work(self) -> None:
        for i in range(self._count):
            slot = self._free.get()
            if slot is None or self._stop.is_set():
                return
            try:
                result = self._prepare(i, slot)
            except BaseException as exc:  # raised again in the consumer's thread
                self._ready.put(_Failure(exc))
                return
            self._ready.put((slot, result))

    def close(self) -> None:
        """Stop the worker (after the item it is preparing) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._free.put(None)  # wakes a worker waiting for a slot
            self._thread.join()
