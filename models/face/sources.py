"""Frame sources for performance capture: a webcam, a video file or an image sequence.

``open_source(spec)`` returns a FrameSource: iterate it for ``(timestamp_s, frame)`` pairs, frame
an RGB uint8 array ``[H, W, 3]``; ``fps`` and ``size`` (width, height) describe the stream and
``close()`` releases it (sources are also context managers).

- webcam: ``"0"``, ``"1"``... (or an int). cv2.VideoCapture; requested resolution and fps are
  asked for, the camera decides. Timestamps are the monotonic clock since the first frame, taken
  when the frame arrived. A grabber thread reads the camera continuously and the iterator yields
  the newest frame (``frames_dropped`` counts the ones it skipped): VideoCapture queues frames,
  so a consumer slower than the camera (tracking on a busy CPU) would otherwise get ever older
  ones. No camera: CameraUnavailableError at open. A read failing mid-session (unplugged):
  CameraDisconnectedError from the iterator, after the newest frame read so far was yielded.
- video file: decoded with PyAV in a decoder thread (a frame or two ahead, as a camera delivers
  frames ready to use); timestamps are the frames' presentation times from 0.
- image sequence: a folder (its .png/.jpg/.jpeg/.bmp/.tif/.tiff/.webp files in name order,
  numbers compared as numbers) or a glob pattern; timestamps ``i / fps`` (default 25).

cv2 and av are imported when a source is opened.
"""

from __future__ import annotations

import glob as _glob
import os
import queue
import re
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "CameraDisconnectedError",
    "CameraInfo",
    "CameraSource",
    "CameraUnavailableError",
    "FrameSource",
    "ImageSequenceSource",
    "SourceError",
    "VideoFileSource",
    "list_cameras",
    "open_source",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(OSError):
    """A frame source cannot be opened or read (the message names it)."""


class CameraUnavailableError(SourceError):
    """No camera at that index (none connected, busy, or no permission)."""


class CameraDisconnectedError(SourceError):
    """The camera stopped delivering frames mid-session (unplugged)."""


class FrameSource:
    """Iterator of ``(timestamp_s, frame RGB uint8 [H, W, 3])``; see the module docstring.

    ``fps``: nominal frame rate (0.0 when unknown). ``size``: (width, height). ``frames_read``:
    frames delivered so far. ``description``: what was opened, for messages and take metadata.
    """

    fps: float = 0.0
    size: tuple[int, int] = (0, 0)
    description: str = ""
    is_live: bool = False

    def __init__(self) -> None:
        self.frames_read = 0
        self._closed = False

    def _frames(self) -> Iterator[tuple[float, np.ndarray]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        for item in self._frames():
            self.frames_read += 1
            yield item

    def read(self) -> tuple[float, np.ndarray] | None:
        """The next (timestamp, frame), or None at the end. Raises like the iterator."""
        if not hasattr(self, "_it"):
            self._it = iter(self)
        return next(self._it, None)

    def close(self) -> None:
        """Release the device or file (idempotent)."""
        self._closed = True

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.size
        return f"{type(self).__name__}({self.description!r}, {w}x{h}, {self.fps:g} fps)"


# ------------------------------------------------------------------------------------ webcam
@dataclass(frozen=True)
class CameraInfo:
    index: int
    width: int
    height: int
    fps: float


def _capture(index: int):
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def list_cameras(max_index: int = 4) -> list[CameraInfo]:
    """Cameras at indices 0..max_index-1 that open and deliver a frame (each probe is quick:
    a missing index fails in milliseconds). Empty without cameras."""
    import cv2

    out = []
    for i in range(max_index):
        cap = _capture(i)
        if cap is None:
            continue
        try:
            ok, frame = cap.read()
            if ok and frame is not None:
                out.append(CameraInfo(i, frame.shape[1], frame.shape[0],
                                      float(cap.get(cv2.CAP_PROP_FPS) or 0.0)))  # fmt: skip
        finally:
            cap.release()
    return out


class CameraSource(FrameSource):
    """A webcam through cv2.VideoCapture. Raises CameraUnavailableError when it cannot open."""

    is_live = True

    def __init__(
        self, index: int, width: int | None = None, height: int | None = None,
        fps: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        import cv2

        self.index = int(index)
        self.description = f"camera {self.index}"
        self._cap = _capture(self.index)
        if self._cap is None:
            raise CameraUnavailableError(
                f"camera {self.index} is not available (none connected, in use, or no permission)"
            )
        if width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps:
            self._cap.set(cv2.CAP_PROP_FPS, float(fps))
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))  # fmt: skip
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or fps or 30.0)
        self.frames_dropped = 0  # frames the camera delivered that nobody asked for in time
        # The grabber's slot: (sequence number, arrival time, BGR frame), or the end.
        self._slot: tuple[int, float, np.ndarray] | None = None
        self._failed = False  # the camera stopped delivering (the grabber saw a failed read)
        self._ready = threading.Condition()
        self._grabber: threading.Thread | None = None

    def _grab(self) -> None:
        """Grabber thread: read frames as the camera delivers them, keep only the newest.
        cv2's read releases the GIL while it waits for the device."""
        seq = 0
        try:
            while not self._closed:
                ok, bgr = self._cap.read()
                now = time.monotonic()
                with self._ready:
                    if not ok or bgr is None:
                        self._failed = True
                        self._ready.notify_all()
                        return
                    seq += 1
                    self._slot = (seq, now, bgr)
                    self._ready.notify_all()
        finally:
            if self._closed:  # close() did not wait for a read stuck in the driver
                self._release_capture()

    def _frames(self) -> Iterator[tuple[float, np.ndarray]]:
        import cv2

        if self._grabber is None:
            self._grabber = threading.Thread(
                target=self._grab, name=f"camera-{self.index}-grabber", daemon=True
            )
            self._grabber.start()
        t0 = None
        last = 0
        while not self._closed:
            with self._ready:
                while (
                    not self._closed
                    and not self._failed
                    and (self._slot is None or self._slot[0] == last)
                ):
                    self._ready.wait(0.5)
                slot = self._slot if self._slot is not None and self._slot[0] != last else None
                failed = self._failed
            if self._closed:
                return
            if slot is None:  # failed, and the newest frame was yielded already
                raise CameraDisconnectedError(
                    f"camera {self.index} stopped delivering frames after {self.frames_read} "
                    "(unplugged?)"
                )
            seq, arrived, bgr = slot
            self.frames_dropped += seq - last - 1
            last = seq
            if t0 is None:
                t0 = arrived
            yield arrived - t0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if failed and self._slot is not None and self._slot[0] == last:
                raise CameraDisconnectedError(
                    f"camera {self.index} stopped delivering frames after {self.frames_read} "
                    "(unplugged?)"
                )

    def close(self) -> None:
        super().close()
        with self._ready:
            self._ready.notify_all()
        grabber = self._grabber
        if grabber is not None and grabber is not threading.current_thread():
            grabber.join(timeout=2.0)  # a read in flight ends within a frame interval
            if grabber.is_alive():
                return  # releasing under a read would crash the driver: the grabber does it
        self._release_capture()

    def _release_capture(self) -> None:
        with self._ready:
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


# ------------------------------------------------------------------------------------ video
class VideoFileSource(FrameSource):
    """A video file decoded with PyAV, in a decoder thread up to ``PREFETCH`` frames ahead of
    the reader. Raises SourceError when it is missing or unreadable."""

    PREFETCH = 2

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        import av

        self.path = Path(path)
        self.description = str(self.path)
        if not self.path.is_file():
            raise SourceError(f"no such video file: {self.path}")
        try:
            self._container = av.open(str(self.path))
            streams = self._container.streams.video
            if not streams:
                self._container.close()
                raise SourceError(f"{self.path}: no video stream")
            self._stream = streams[0]
        except av.FFmpegError as exc:
            raise SourceError(f"cannot read video {self.path}: {exc}") from None
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self.size = (int(self._stream.codec_context.width), int(self._stream.codec_context.height))

        self._decoder = _Decoder(self._container, self._stream, self.fps, self.path)
        # An abandoned source (dropped without close()) still stops its decoder thread, which
        # then closes the file: the thread holds the decoder state, never the source itself.
        self._finalizer = weakref.finalize(self, self._decoder.shutdown)

    def _frames(self) -> Iterator[tuple[float, np.ndarray]]:
        # Decoded in a thread of its own, a frame ahead, as a camera delivers frames: decoding
        # and converting in the reader's thread (a live session's capture thread) put ~2.5 ms
        # of work, and on a busy 2-core machine up to ~15 ms of waiting for the GIL after
        # PyAV released it, between a frame falling due and its tracking.
        dec = self._decoder
        dec.start(self.PREFETCH)  # one decoder, however often iterated
        while not self._closed:
            try:
                item = dec.queue.get(timeout=0.1)
            except queue.Empty:
                if not dec.thread.is_alive() and dec.queue.empty():
                    return  # ended, and the end was read already (iterated again)
                continue
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        self._finalizer()  # stops the decoder (it closes the file) or closes the file itself
        thread = self._decoder.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)  # it sees the stop within 0.1 s or one frame


class _Decoder:
    """A video file's decoding state, shared by its VideoFileSource and decoder thread. Whoever
    runs last closes the container: the thread when it was started (closing under a decode in
    flight would crash), else :meth:`shutdown`."""

    def __init__(self, container: object, stream: object, fps: float, path: Path) -> None:
        self.container, self.stream, self.fps, self.path = container, stream, fps, path
        self.stop = threading.Event()
        self.queue: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, prefetch: int) -> None:
        with self._lock:
            if self.thread is None and not self.stop.is_set():
                self.queue = queue.Queue(maxsize=prefetch)
                self.thread = threading.Thread(target=self._run, name="video-decoder", daemon=True)
                self.thread.start()

    def shutdown(self) -> None:
        with self._lock:
            self.stop.set()
            if self.thread is None:
                self.container.close()

    def _decoded(self) -> Iterator[tuple[float, np.ndarray]]:
        import av

        first = None
        i = 0
        try:
            for frame in self.container.decode(self.stream):
                if self.stop.is_set():
                    return
                t = frame.time
                if t is None:
                    t = i / self.fps if self.fps else float(i)
                if first is None:
                    first = t
                i += 1
                yield float(t - first), frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise SourceError(f"error decoding {self.path} after {i} frames: {exc}") from None

    def _run(self) -> None:
        """Keeps up to the queue's size frames decoded ahead of the reader, then the end (None)
        or the error; closes the file when done or stopped."""
        try:
            for item in self._decoded():
                if not self._hand_over(item):
                    return
            self._hand_over(None)
        except Exception as exc:  # handed to the reader, which raises it
            self._hand_over(exc)
        finally:
            self.container.close()

    def _hand_over(self, item: object) -> bool:
        """Queue ``item`` for the reader, waiting for room; False once stopped."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


# ------------------------------------------------------------------------------------ images
def _natural_key(path: Path) -> list[object]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", path.name)]


class ImageSequenceSource(FrameSource):
    """Still images as frames: a folder or a glob pattern, at ``fps`` (default 25).

    Raises SourceError when nothing matches; an unreadable image raises SourceError naming it
    when reached.
    """

    def __init__(self, spec: str | os.PathLike[str], fps: float | None = None) -> None:
        super().__init__()
        spec = str(spec)
        p = Path(spec)
        if p.is_dir():
            files = [f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES]
        else:
            files = [Path(f) for f in _glob.glob(spec)]
            files = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
        if not files:
            raise SourceError(f"no images found at {spec}")
        self.files = sorted(files, key=_natural_key)
        self.description = spec
        self.fps = float(fps) if fps else 25.0
        if self.fps <= 0:
            raise SourceError(f"image sequence fps must be positive, got {fps}")
        first = self._load(self.files[0])
        self.size = (first.shape[1], first.shape[0])

    @staticmethod
    def _load(path: Path) -> np.ndarray:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"cannot read image {path}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _frames(self) -> Iterator[tuple[float, np.ndarray]]:
        for i, f in enumerate(self.files):
            if self._closed:
                return
            yield i / self.fps, self._load(f)


# ------------------------------------------------------------------------------------ factory
def open_source(
    spec: str | int | os.PathLike[str],
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
) -> FrameSource:
    """Open a webcam index (``"0"`` or 0), a video file, or an image-sequence folder / glob.

    width/height/fps: requested camera mode (webcams); fps also sets an image sequence's rate.
    Raises CameraUnavailableError for a camera that cannot open, SourceError for a path that
    does not exist or cannot be read.
    """
    if isinstance(spec, bool):
        raise SourceError(f"not a frame source: {spec!r}")
    if isinstance(spec, int):
        return CameraSource(spec, width, height, fps)
    text = os.fspath(spec)
    if isinstance(text, bytes):
        text = text.decode()
    if text.strip().isdigit() and not Path(text).exists():
        return CameraSource(int(text), width, height, fps)
    p = Path(text).expanduser()
    if p.is_dir() or any(ch in text for ch in "*?["):
        return ImageSequenceSource(p if p.is_dir() else text, fps)
    if p.is_file():
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return ImageSequenceSource(str(p), fps)
        return VideoFileSource(p)
    raise SourceError(f"no such file, folder or camera: {text}")
