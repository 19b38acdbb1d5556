"""Writers for exported frames: an H.264/H.265 MP4/MKV writer (PyAV) that encodes in its own
thread so rendering and encoding overlap, and a per-eye PNG sequence writer. Qt-free.

Video: yuv420p, BT.709 matrix, limited ("MPEG") range, tagged as such in the stream; libx264
``crf``/``preset`` (libx265 with the ``hvc1`` tag, which Apple players and the Quest need);
AAC-LC stereo 48 kHz 192 kb/s (FFmpeg's native encoder, "fast" coder), interleaved with the
video (audio up to the end of each video frame is encoded right after it). MP4 is written with
``+faststart`` (moov before mdat). Matroska gets the StereoMode element through the stream's
``stereo_mode`` metadata (FFmpeg's matroska muxer maps "left_right"/"top_bottom"/"mono" to it).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from renderers.cpu_splats import default_threads
from studio.export.settings import MKV_STEREO_MODES, ExportPlan

__all__ = [
    "AAC_CODER",
    "AUDIO_BITRATE",
    "CONVERT_THREADS",
    "ENCODER_THREADS",
    "PngSequenceWriter",
    "VideoWriter",
]

AUDIO_BITRATE = 192_000
_AAC_FRAME = 1024
_QUEUE_FRAMES = 4  # frames buffered between renderer and encoder
# FFmpeg's AAC coder (same bitrate either way). The bundled FFmpeg's default, "twoloop", costs
# ~3.4 ms of CPU per 25 fps video frame of stereo audio, more than the RGB -> yuv420p
# conversion; "fast" ~1.6 ms. At 192 kb/s it loses nothing we could measure: the demo audio
# decodes with 57 dB waveform SNR against twoloop's 31 dB.
AAC_CODER = "fast"


# Threads of the encoder thread's helpers. On <= 2 CPUs the export is CPU-bound (the renderer and
# the encoder share the cores), so what counts is CPU per frame, not the encoder's latency (the
# queue hides it): x264's frame threads (its own choice, 3 on 2 cores) and swscale's slice
# threads (one per CPU) only add CPU there. Demo export, 2 CPUs, process CPU per frame: x264
# 1 thread -4.8 ms, swscale 1 thread -2.2 ms. More CPUs: the libraries' own choice, so that
# large frames do not wait on one thread.
_FEW_CPUS = default_threads() <= 2  # the CPUs the native renderer uses
# libx264/libx265 threads; 0: the codec's own choice (x264: 1.5 per core, frame threads)
ENCODER_THREADS = 1 if _FEW_CPUS else 0
# swscale threads of the RGB -> yuv420p conversion; 0: one per CPU
CONVERT_THREADS = 1 if _FEW_CPUS else 0


class VideoWriter:
    """Encodes frames ``[H, W, 3]`` uint8 RGB into ``path`` in a background thread.

    ``write`` blocks when the encoder is ``_QUEUE_FRAMES`` behind and re-raises (in the caller's
    thread) any error the encoder hit, e.g. OSError(ENOSPC). ``close`` finishes the file;
    ``abort`` stops without finishing (the caller deletes the file). ``timings`` (seconds, in
    the encoder thread): "encode" (all its work), "convert" (RGB -> yuv420p), "audio" (AAC);
    "wait" (the caller blocked in ``write`` on a full queue: the encoder was the slower stage).

    The encoder thread does the RGB -> yuv420p conversion (swscale, one reused context, reading
    the caller's array in place) with ``CONVERT_THREADS`` threads and libx264 with
    ``ENCODER_THREADS``; both release the GIL. AAC uses FFmpeg's ``AAC_CODER``.
    """

    def __init__(self, path: Path, plan: ExportPlan, audio: np.ndarray | None) -> None:
        import av

        self.plan = plan
        self.timings = {"encode": 0.0, "convert": 0.0, "audio": 0.0, "wait": 0.0}
        fmt = "mp4" if plan.format == "mp4" else "matroska"
        options = {"movflags": "+faststart"} if fmt == "mp4" else {}
        self._container = av.open(str(path), "w", format=fmt, options=options)
        try:
            self._setup_streams(av, audio)
        except BaseException:
            self._container.close()
            raise
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(_QUEUE_FRAMES)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="export-encoder", daemon=True)
        self._thread.start()

    def _setup_streams(self, av: Any, audio: np.ndarray | None) -> None:
        plan = self.plan
        rate = Fraction(plan.fps.numerator, plan.fps.denominator)
        codec = "libx264" if plan.codec == "h264" else "libx265"
        vs = self._container.add_stream(codec, rate=rate)
        vs.width, vs.height = plan.frame_size
        vs.pix_fmt = "yuv420p"
        vs.time_base = Fraction(plan.fps.denominator, plan.fps.numerator)
        cc = vs.codec_context
        cc.colorspace, cc.color_range = 1, 1  # AVCOL_SPC_BT709, AVCOL_RANGE_MPEG
        cc.color_primaries, cc.color_trc = 1, 1  # BT.709
        if ENCODER_THREADS:
            cc.thread_count = ENCODER_THREADS
        opts = {"crf": str(plan.crf), "preset": plan.preset}
        if plan.codec == "h265":
            vs.codec_tag = "hvc1"
            opts["x265-params"] = "log-level=error"
        vs.options = opts
        if plan.format == "mkv":
            vs.metadata["stereo_mode"] = MKV_STEREO_MODES[plan.layout]
        self._video = vs
        self._audio_stream = None
        self._audio = None
        if audio is not None and audio.size:
            a = self._container.add_stream("aac", rate=48_000)
            a.layout = "stereo"
            a.bit_rate = AUDIO_BITRATE
            a.time_base = Fraction(1, 48_000)
            a.options = {"aac_coder": AAC_CODER}
            self._audio_stream = a
            # planar float [2, S] for the fltp AAC encoder
            self._audio = np.ascontiguousarray(audio.T, dtype=np.float32)
        self._audio_pos = 0

    # --------------------------------------------------------------------------- producer side
    def write(self, frame: np.ndarray) -> None:
        """Queue one picture. The encoder reads it in place later: the caller gives it up (must
        not change it; a fresh array per frame). Raises the encoder thread's error, if any."""
        self._raise_pending()
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"VideoWriter.write(): uint8 [H, W, 3] expected, got {frame.shape}")
        if frame.strides[1:] != (3, 1) or frame.strides[0] < frame.shape[1] * 3:
            frame = np.ascontiguousarray(frame)  # e.g. a GL readback flipped by a view
        t0 = time.perf_counter()
        try:
            while True:
                try:
                    self._queue.put(frame, timeout=0.1)
                    return
                except queue.Full:
                    self._raise_pending()
        finally:
            self.timings["wait"] += time.perf_counter() - t0

    def close(self) -> None:
        """Encode what is queued, flush the encoders, write the trailer. Raises encoder errors."""
        self._queue.put(None)
        self._thread.join()
        self._raise_pending()
        self._container.close()

    def abort(self) -> None:
        """Stop the encoder thread and close the container without finishing it."""
        self._stop.set()
        with contextlib.suppress(Exception):
            while True:
                self._queue.get_nowait()
        with contextlib.suppress(Exception):
            self._queue.put_nowait(None)
        self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self._container.close()

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            self._stop.set()
            raise err

    # --------------------------------------------------------------------------- encoder thread
    def _run(self) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        # One reformatter for the whole export: frame.reformat() makes a new swscale context
        # every call (~1.4 ms a 1024x512 frame).
        reformatter = VideoReformatter()
        index = 0
        try:
            while not self._stop.is_set():
                item = self._queue.get()
                if item is None:
                    break
                t0 = time.perf_counter()
                frame = reformatter.reformat(
                    av.VideoFrame.from_numpy_buffer(item, format="rgb24"),  # no copy
                    format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG",
                    threads=CONVERT_THREADS,
                )  # fmt: skip
                del item
                t1 = time.perf_counter()
                frame.pts = index
                index += 1
                self._mux(self._video.encode(frame))
                t2 = time.perf_counter()
                self._encode_audio_until(index)
                t3 = time.perf_counter()
                self.timings["convert"] += t1 - t0
                self.timings["audio"] += t3 - t2
                self.timings["encode"] += t3 - t0
            if self._stop.is_set():
                return
            t0 = time.perf_counter()
            self._mux(self._video.encode(None))
            t1 = time.perf_counter()
            self._encode_audio_until(None)
            if self._audio_stream is not None:
                self._mux(self._audio_stream.encode(None))
            t2 = time.perf_counter()
            self.timings["audio"] += t2 - t1
            self.timings["encode"] += t2 - t0
        except BaseException as exc:  # handed to the producer thread
            self._error = exc

    def _mux(self, packets: Any) -> None:
        for p in packets:
            self._container.mux(p)

    def _encode_audio_until(self, frames: int | None) -> None:
        """Encode audio up to the end of video frame ``frames`` (None: all of it)."""
        import av

        if self._audio is None:
            return
        total = self._audio.shape[1]
        if frames is None:
            stop = total
        else:
            stop = min(total, round(frames * 48_000 / self.plan.fps.fps))
            stop -= (stop - self._audio_pos) % _AAC_FRAME  # whole AAC frames until the end
        while self._audio_pos < stop:
            n = min(_AAC_FRAME, stop - self._audio_pos)
            chunk = self._audio[:, self._audio_pos : self._audio_pos + n]
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout="stereo"
            )
            af.sample_rate = 48_000
            af.pts = self._audio_pos
            af.time_base = Fraction(1, 48_000)
            self._mux(self._audio_stream.encode(af))
            self._audio_pos += n


class PngSequenceWriter:
    """Writes each view of a frame to ``<folder>/<view>/<frame:04d>.png`` and, on close, the
    camera rig per frame to ``<folder>/cameras.json`` (and the audio to ``audio.wav``)."""

    def __init__(self, folder: Path, plan: ExportPlan, cameras: list, audio: np.ndarray | None):
        self.folder = folder
        self.plan = plan
        self.cameras = cameras
        self.audio = audio
        self.timings = {"encode": 0.0}
        self._count = 0
        for view in plan.eyes:
            (folder / view).mkdir(parents=True, exist_ok=True)

    def write_views(self, views: list[np.ndarray]) -> None:
        """One frame: an image ``[H, w, 3]`` uint8 per view, in ``plan.eyes`` order."""
        import cv2

        t0 = time.perf_counter()
        digits = max(4, len(str(self.plan.num_frames - 1)))
        for name, img in zip(self.plan.eyes, views, strict=True):
            path = self.folder / name / f"{self._count:0{digits}d}.png"
            ok, data = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
            if not ok:
                raise OSError(f"cannot encode {path.name} as PNG")
            path.write_bytes(data.tobytes())
        self._count += 1
        self.timings["encode"] += time.perf_counter() - t0

    def close(self) -> None:
        plan = self.plan
        digits = max(4, len(str(plan.num_frames - 1)))
        rig = {
            "format": "talking-head-studio/stereo-rig",
            "version": 1,
            "conventions": (
                "world RUB metres (+x right, +y up, +z towards the viewer); camera OpenCV RDF "
                "(+x right, +y down, +z forward); world_to_camera maps world points (column "
                "vectors) to camera space; pixel centres at (j + 0.5, i + 0.5)"
            ),
            "layout": plan.layout,
            "views": list(plan.eyes),
            "fps": str(plan.fps),
            "ipd": plan.ipd if plan.stereo else 0.0,
            "convergence": plan.convergence,
            "fov_y_deg": plan.fov_deg,
            "width": plan.render_size[0],
            "height": plan.render_size[1],
            "frames": [
                {
                    "index": i,
                    "time_s": i / plan.fps.fps,
                    "document_frame": float(plan.positions[i]),
                    "files": {v: f"{v}/{i:0{digits}d}.png" for v in plan.eyes},
                    "cameras": {
                        v: {
                            "intrinsics": {"fx": c.fx, "fy": c.fy, "cx": c.cx, "cy": c.cy},
                            "K": c.K.tolist(),
                            "world_to_camera": c.world_to_camera.tolist(),
                        }
                        for v, c in zip(plan.eyes, self.cameras, strict=True)
                    },
                }
                for i in range(self._count)
            ],
        }
        (self.folder / "cameras.json").write_text(json.dumps(rig, indent=1), encoding="utf-8")
        if self.audio is not None and self.audio.size:
            import soundfile as sf

            sf.write(str(self.folder / "audio.wav"), self.audio, 48_000, subtype="PCM_16")

    def abort(self) -> None:
        return None
