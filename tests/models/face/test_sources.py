"""Frame sources: image sequences, video files, cameras (faked: the test machine has none)."""

from __future__ import annotations

import numpy as np
import pytest

from models.face import sources
from models.face.sources import (
    CameraDisconnectedError,
    CameraUnavailableError,
    ImageSequenceSource,
    SourceError,
    VideoFileSource,
    open_source,
)


def _frames(n=5, w=64, h=48):
    return [np.full((h, w, 3), (40 * i, 255 - 40 * i, 100), np.uint8) for i in range(n)]


def test_image_folder_and_glob(tmp_path):
    import cv2

    for i, f in enumerate(_frames()):
        cv2.imwrite(str(tmp_path / f"frame{i + 8}.png"), f[..., ::-1])  # 8, 9, 10, 11, 12
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(tmp_path, fps=10) as src:
        assert isinstance(src, ImageSequenceSource) and src.size == (64, 48) and src.fps == 10
        items = list(src)
    assert [t for t, _ in items] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert [int(f[0, 0, 0]) for _, f in items] == [0, 40, 80, 120, 160]  # numeric order, RGB
    assert len(list(open_source(str(tmp_path / "frame1*.png")))) == 3


def _write_clip(path, n: int) -> None:
    """An MPEG-4 clip of ``n`` 64x48 frames at 20 fps."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=20)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for f in _frames(n):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_video_file(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_clip(path, 6)
    with open_source(str(path)) as src:
        assert isinstance(src, VideoFileSource) and src.size == (64, 48) and src.fps == 20
        items = list(src)
    assert len(items) == 6 and items[0][1].shape == (48, 64, 3) and items[0][1].dtype == np.uint8
    assert [t for t, _ in items] == pytest.approx(np.arange(6) / 20)


def test_video_file_decodes_ahead_in_its_own_thread(tmp_path):
    """Frames are decoded a frame or two ahead in a decoder thread (as a camera delivers them
    ready), in order; iterating again after the end ends at once; closing mid-stream stops the
    decoder; a source dropped without closing is collected and its decoder stops too."""
    import gc
    import time
    import weakref

    path = tmp_path / "clip.mp4"
    _write_clip(path, 12)
    with open_source(str(path)) as src:
        it = iter(src)
        next(it)
        queued = src._decoder.queue
        deadline = time.monotonic() + 5.0
        while queued.qsize() < VideoFileSource.PREFETCH and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queued.qsize() == VideoFileSource.PREFETCH  # decoded ahead, no further
        times = [t for t, _ in it]
        assert times == pytest.approx(np.arange(1, 12) / 20)
        assert list(src) == []  # read to the end already
    src = open_source(str(path))
    next(iter(src))
    decoder = src._decoder.thread
    src.close()
    assert not decoder.is_alive()
    src = open_source(str(path))
    next(iter(src))
    decoder, gone = src._decoder.thread, weakref.ref(src)
    del src  # abandoned mid-stream, never closed
    gc.collect()
    assert gone() is None
    decoder.join(timeout=5.0)
    assert not decoder.is_alive()


def test_missing_paths_and_bad_files(tmp_path):
    with pytest.raises(SourceError, match="no such"):
        open_source(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path / "*.png"))
    (tmp_path / "bad.mp4").write_bytes(b"garbage")
    with pytest.raises(SourceError):
        list(open_source(tmp_path / "bad.mp4"))


class _FakeCapture:
    """cv2.VideoCapture stand-in delivering ``frames`` one every ``interval`` seconds (a real
    camera's read blocks until its next frame), then failing (unplugged)."""

    def __init__(self, frames, opened=True, interval=0.01):
        self.frames, self.opened, self.released = list(frames), opened, False
        self.interval = interval

    def isOpened(self):
        return self.opened

    def read(self):
        import time

        time.sleep(self.interval)
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def set(self, *a):
        return True

    def get(self, prop):
        import cv2

        return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48,
                cv2.CAP_PROP_FPS: 30}.get(prop, 0)  # fmt: skip

    def release(self):
        self.released = True


def test_no_camera_is_a_clear_error(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", lambda i: _FakeCapture([], opened=False))
    with pytest.raises(CameraUnavailableError, match="camera 0 is not available"):
        open_source("0")
    assert sources.list_cameras(3) == []


def test_camera_unplugged_mid_session(monkeypatch):
    import cv2

    cap = _FakeCapture(_frames(3))
    monkeypatch.setattr(cv2, "VideoCapture", lambda i: cap)
    src = open_source(0, width=64, height=48, fps=30)
    assert src.is_live and src.size == (64, 48)
    got = []
    with pytest.raises(CameraDisconnectedError, match="after 3"):
        for _t, f in src:
            got.append(f)
    assert len(got) == 3 and got[0][0, 0, 0] == 100  # BGR -> RGB
    src.close()
    assert cap.released


def test_a_slow_reader_gets_the_newest_camera_frame(monkeypatch):
    import time

    import cv2

    n = 40
    frames = [np.full((48, 64, 3), i, np.uint8) for i in range(1, n + 1)]  # pixel = frame number
    cap = _FakeCapture(frames, interval=0.005)  # a 200 fps camera
    monkeypatch.setattr(cv2, "VideoCapture", lambda i: cap)
    src = open_source(0)
    got = []
    with pytest.raises(CameraDisconnectedError):
        for _t, f in src:
            got.append(int(f[0, 0, 0]))
            time.sleep(0.03)  # tracking slower than the camera
    src.close()
    # Newest frames, not a growing backlog: the camera's last frame arrives well before a reader
    # that took every frame in turn would reach it, and every frame is delivered once at most.
    assert got == sorted(set(got)) and got[-1] == n
    assert len(got) < n // 2 and src.frames_dropped == n - len(got)
    assert cap.released


def test_closing_a_camera_stops_its_grabber(monkeypatch):
    import threading

    import cv2

    cap = _FakeCapture([np.zeros((48, 64, 3), np.uint8)] * 1000, interval=0.005)
    monkeypatch.setattr(cv2, "VideoCapture", lambda i: cap)
    src = open_source(0)
    assert src.read() is not None
    src.close()
    assert cap.released
    assert not any(t.name.startswith("camera-0-grabber") for t in threading.enumerate())


def test_real_camera_probe_is_quick():
    import time

    t = time.perf_counter()
    sources.list_cameras(2)  # none on CI: must fail fast, not hang
    assert time.perf_counter() - t < 5.0
