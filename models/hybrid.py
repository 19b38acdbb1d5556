"""Hybrid reenactment: tracked motion for head, eyes and brows, lips from the audio generator.

A face tracker (models.face.tracker) gives one frame of motion channels ``[90]`` per camera
frame; a lip generator turns audio, as it arrives, into lip motion at 25 fps. The
:class:`HybridMixer` replaces the lip channels of each tracked frame with the generated lips at
the same moment of the audio and keeps every other channel from the tracker.

Lips are the expression channels of ``models.motion_space.LIPS`` (keypoints 6, 12, 14, 17, 19,
20; x, y and z each: :data:`LIP_CHANNELS`, 18 channels). Everything else (pose, translation,
scale, eyes, brows, cheeks, chin and jaw angles, forehead, nose) comes from the tracker. Both
sources are deltas from the neutral face, so the lips simply replace the tracker's.

Generators (:class:`LipGenerator`: ``push(audio at 16 kHz) -> new lip frames [k, 18]``,
``flush()``):

- :class:`NeuralLipGenerator`: the shipped motion model (models.pretrained) through
  models.motion_sampling's streaming mode (:class:`models.motion_sampling.MotionStream`); log
  mel features are computed incrementally, each frame once all the audio under its window has
  arrived. A lip frame is emitted after ``hop`` frames of audio (0.24 s by default,
  :data:`LIVE_LIP_HOP`) and one denoising window.
- :class:`ProceduralLipGenerator`: the procedural baseline's mouth (models.procedural: speech
  energy opens the jaw, brightness widens the lips), made causal: loudness is measured against a
  running peak instead of the whole clip's. No weights; a lip frame per 40 ms of audio.

:func:`make_lip_generator` picks the model and falls back to the procedural one (with the reason)
when no model loads.

Time: lip frame ``f`` is audio time ``f / 25`` s after the first pushed sample. The mixer's
``mix(values, t)`` reads the lips at audio time ``t`` (linear between frames); before a frame
exists (streaming audio not generated yet) it holds the newest generated frame; after the audio
has ended (``finish()``) lips past its end are neutral.

The mixer is thread-safe: audio may be pushed from one thread (a microphone callback) while
another mixes. With ``background=True`` generation runs in the mixer's own thread, so neither
the audio callback nor the tracking thread waits for the model.
"""

from __future__ import annotations

import threading
from collections import deque
from fractions import Fraction
from typing import Protocol

import numpy as np

from models.motion_space import CHANNEL_INDEX, CHANNELS, DITTO_EXP, LIPS, channel_name

__all__ = [
    "GEN_FPS",
    "GEN_RATE",
    "LIP_CHANNELS",
    "LIP_COLUMNS",
    "LIVE_LIP_HOP",
    "HybridMixer",
    "LipGenerator",
    "NeuralLipGenerator",
    "ProceduralLipGenerator",
    "make_lip_generator",
    "mix_lips",
]

GEN_RATE = 16_000  # generators take 16 kHz mono
GEN_FPS = 25.0  # and give lip frames at 25 fps
_HOP = 640  # samples per lip frame at 16 kHz

LIP_CHANNELS: tuple[str, ...] = tuple(channel_name(k, a) for k in LIPS for a in range(3))
LIP_COLUMNS = np.array([CHANNEL_INDEX[c] for c in LIP_CHANNELS])  # [18] into CHANNELS
# The same channels in Ditto's packed vector (exp keypoint-major, models.motion_space).
_PACKED_LIP = np.array([DITTO_EXP.start + 3 * k + a for k in LIPS for a in range(3)])


def mix_lips(values: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """``values [..., 90]`` with the lip channels replaced by ``lips [..., 18]`` (a copy)."""
    out = np.array(values, dtype=np.float64, copy=True)
    if out.shape[-1] != len(CHANNELS) or np.shape(lips)[-1] != len(LIP_CHANNELS):
        raise ValueError(f"mix_lips: need values [..., {len(CHANNELS)}] and lips [..., 18]")
    out[..., LIP_COLUMNS] = lips
    return out


def to_gen_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 ``[S']`` at 16 kHz from ``samples [S]`` or ``[S, ch]`` at ``rate``."""
    a = np.asarray(samples)
    if a.dtype.kind in "iu":
        a = a.astype(np.float64) / float(2 ** (8 * a.dtype.itemsize - 1))
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        a = a.mean(axis=1)
    if a.ndim != 1:
        raise ValueError(f"audio must be [samples] or [samples, channels], got {a.shape}")
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    if int(rate) != GEN_RATE and a.size:
        from scipy.signal import resample_poly

        r = Fraction(GEN_RATE, int(rate))
        a = resample_poly(a, r.numerator, r.denominator)
    return a.astype(np.float32)


# ------------------------------------------------------------------------------ generators
class LipGenerator(Protocol):
    """Streaming audio -> lip motion. ``push(audio [S] float32 at 16 kHz) -> [k, 18]`` new lip
    frames (k may be 0), ``flush() -> [k, 18]`` the frames still owed for the audio so far.
    ``name`` says which generator it is."""

    name: str

    def push(self, audio: np.ndarray) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...


class _AudioBuffer:
    """Growing 16 kHz mono buffer (amortised appends)."""

    def __init__(self) -> None:
        self.data = np.zeros(16 * _HOP, dtype=np.float32)
        self.size = 0

    def append(self, a: np.ndarray) -> None:
        need = self.size + a.size
        if need > self.data.size:
            grown = np.zeros(max(need, 2 * self.data.size), dtype=np.float32)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : need] = a
        self.size = need

    def view(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``[lo, hi)`` with zeros outside the buffer."""
        out = np.zeros(max(hi - lo, 0), dtype=np.float32)
        a, b = max(lo, 0), min(hi, self.size)
        if b > a:
            out[a - lo : b - lo] = self.data[a:b]
        return out


# Frames of audio per streamed denoising window in live use. 6: the first lips come 0.24 s of
# audio plus one window (~0.1 s for the shipped model on 2 cores) after speech starts, inside
# the 0.4 s streaming target (10 frames gave ~0.5 s). Each hop costs one window, so
# ~4 windows a second: ~0.4 s of one core, left beside tracking and drawing.
LIVE_LIP_HOP = 6


class NeuralLipGenerator:
    """Lips from the motion model in streaming mode (see the module docstring).

    ``model``: a models.pretrained.PretrainedMotionModel whose features are log mel (80-D, or
    240-D with deltas); HuBERT models are not streamable here and raise ValueError. ``hop``: new
    frames per denoising window (delay ``hop / 25`` s; cost one window per hop). ``steps``,
    ``guidance_scale``, ``seed``: as MotionStream.
    """

    name = "motion model"

    def __init__(
        self,
        model,
        *,
        hop: int = LIVE_LIP_HOP,
        steps: int = 10,
        guidance_scale: float = 2.0,
        seed: int = 0,
    ) -> None:
        from models.audio_features import LogMelFeatures, features_for_model
        from models.motion_sampling import MotionStream
        from models.motion_space import CHANNEL_DEFAULTS, pack_ditto

        self.model = model
        ext = features_for_model(model.model)
        if not isinstance(ext, LogMelFeatures):
            raise ValueError("only log mel motion models can stream lips (HuBERT cannot)")
        self._ext = ext
        self._left = ext.n_fft // 2 - _HOP // 2  # window start of frame k: k * HOP - left
        # The resting face as the reference, as the studio's generator does.
        ref = np.clip(model.stats.normalize(pack_ditto(CHANNEL_DEFAULTS)), -6.0, 6.0)
        ref[np.asarray(model.stats.constant, dtype=bool)] = 0.0
        self.stream = MotionStream(model.model, model.conditions(None), ref.astype(np.float32),
                                   hop=hop, steps=steps, guidance_scale=guidance_scale,
                                   seed=seed)  # fmt: skip
        self._audio = _AudioBuffer()
        self._feat_done = 0

    def _features(self, lo: int, hi: int) -> np.ndarray:
        """Feature frames ``[lo, hi)`` of the whole buffer, computed from a slice: the slice
        starts one frame early so the wanted frames never see the extractor's zero padding."""
        if hi <= lo:
            return np.zeros((0, self._ext.dim), dtype=np.float32)
        first = max(lo - 1, 0)
        start = first * _HOP
        end = (hi - 1) * _HOP - self._left + self._ext.n_fft
        feats = self._ext(self._audio.view(start, max(end, start + _HOP)), GEN_RATE)
        if self._ext.deltas:  # deltas need context on both sides: recompute from the start
            feats = self._ext(self._audio.view(0, max(end, _HOP)), GEN_RATE)
            first = 0
        return feats[lo - first : hi - first]

    def _lips(self, packed_norm: np.ndarray) -> np.ndarray:
        if packed_norm.shape[0] == 0:
            return np.zeros((0, len(LIP_CHANNELS)))
        return self.model.stats.denormalize(packed_norm)[:, _PACKED_LIP]

    def push(self, audio: np.ndarray) -> np.ndarray:
        self._audio.append(np.asarray(audio, dtype=np.float32).reshape(-1))
        # Frame k is complete once its window [k*HOP - left, k*HOP - left + n_fft) has arrived.
        ready = (self._audio.size + self._left - self._ext.n_fft) // _HOP + 1
        feats = self._features(self._feat_done, ready)
        self._feat_done = max(self._feat_done, ready)
        if feats.shape[0] == 0:
            return np.zeros((0, len(LIP_CHANNELS)))
        return self._lips(self.stream.push(feats))

    def flush(self) -> np.ndarray:
        total = -(-self._audio.size // _HOP)  # frames covering the audio (zero padded)
        out = []
        feats = self._features(self._feat_done, total)
        self._feat_done = max(self._feat_done, total)
        if feats.shape[0]:
            out.append(self._lips(self.stream.push(feats)))
        out.append(self._lips(self.stream.flush()))
        return np.concatenate(out)


class ProceduralLipGenerator:
    """The procedural generator's mouth, causal (see the module docstring).

    Per 40 ms frame: RMS loudness in dB against a running peak (decaying 1 dB/s, never below
    -40 dBFS so silence stays closed) over a 30 dB range, squared; spectral centroid for
    brightness; the jaw follows a short attack/release smoother. Magnitudes from
    models.procedural.ProceduralStyle.
    """

    name = "procedural"

    def __init__(self, style=None) -> None:
        from models.procedural import ProceduralStyle

        self.style = style or ProceduralStyle()
        self._audio = _AudioBuffer()
        self._done = 0
        self._peak = -40.0
        self._jaw = 0.0
        self._shape = 0.0
        self._window = np.hanning(2 * _HOP)
        self._freqs = np.fft.rfftfreq(2 * _HOP, 1.0 / GEN_RATE)

    def _frame(self, k: int) -> np.ndarray:
        seg = self._audio.view(k * _HOP - _HOP // 2, k * _HOP + _HOP + _HOP // 2)
        rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))
        db = 20 * np.log10(rms + 1e-6)
        self._peak = max(self._peak - 1.0 / GEN_FPS, db, -40.0)
        energy = float(np.clip((db - (self._peak - 30.0)) / 30.0, 0.0, 1.0) ** 2)
        spec = np.abs(np.fft.rfft(seg * self._window))
        total = spec.sum()
        bright = float((spec * self._freqs).sum() / total) if total > 1e-9 else 0.0
        bright01 = float(np.clip((bright - 500.0) / 2500.0, 0.0, 1.0)) * (energy > 0.05)
        # Coarticulation: fast attack, slower release (about the procedural 0.8-frame blur).
        a = 0.7 if energy > self._jaw else 0.45
        self._jaw += a * (energy - self._jaw)
        self._shape += 0.5 * (bright01 - 0.35 * self._jaw - self._shape)
        st = self.style
        width = st.lip_wide * self._shape if self._shape > 0 else st.lip_round * self._shape
        lips = np.zeros((len(LIPS), 3))
        row = {k: i for i, k in enumerate(LIPS)}
        lips[row[19], 1] = st.jaw_open * self._jaw
        lips[row[17], 1] = 0.35 * st.jaw_open * self._jaw  # the lower lip rides the jaw
        lips[row[6], 1] = -0.08 * st.jaw_open * self._jaw  # the upper lip lifts a little
        lips[row[14], 0] = -width  # the subject's right corner sits at -x
        lips[row[20], 0] = width
        return lips.reshape(-1)

    def _emit(self, upto: int) -> np.ndarray:
        rows = [self._frame(k) for k in range(self._done, upto)]
        self._done = max(self._done, upto)
        return np.array(rows).reshape(-1, len(LIP_CHANNELS))

    def push(self, audio: np.ndarray) -> np.ndarray:
        self._audio.append(np.asarray(audio, dtype=np.float32).reshape(-1))
        # Frame k's window reaches k*HOP + 1.5 HOP.
        return self._emit(max(0, (self._audio.size - _HOP - _HOP // 2) // _HOP + 1))

    def flush(self) -> np.ndarray:
        return self._emit(-(-self._audio.size // _HOP))


def make_lip_generator(
    model: str | None = "default", *, hop: int = LIVE_LIP_HOP, device: str = "cpu"
) -> tuple[LipGenerator, str]:
    """The lip generator to use and a notice ("" when the model loaded).

    ``model``: "default" (the shipped motion model), a model folder, or "procedural" / None.
    A model that does not load (missing files, HuBERT features) gives the procedural generator
    and the reason as the notice.
    """
    if model in (None, "", "procedural"):
        return ProceduralLipGenerator(), ""
    try:
        from models.pretrained import load_default_motion_model, load_motion_model

        m = (
            load_default_motion_model(device)
            if model == "default"
            else load_motion_model(model, device)
        )
        return NeuralLipGenerator(m, hop=hop), ""
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        return ProceduralLipGenerator(), f"lips from the procedural generator: {exc}"


# ------------------------------------------------------------------------------ the mixer
class HybridMixer:
    """Tracked frames + generated lips (see the module docstring).

    ``generator``: a LipGenerator, or a callable returning one or ``(generator, notice)`` (such
    as :func:`make_lip_generator`), called in the background thread when there is one, so a
    model loads without blocking the caller (torch and a model take seconds on a CPU); until
    its frames cover a moment, the procedural generator's lips bridge it (in the mixer's thread,
    while a second thread loads the model; the model then catches up on the audio). ``rate``: the
    sample rate of the audio pushed. ``gain``: lip motion is multiplied by it (the live panel's
    mouth gain; 0 keeps the lips neutral).
    ``background``: generate in a thread of the mixer's own (call :meth:`close` at the end).
    """

    def __init__(
        self,
        generator: LipGenerator,
        rate: int = GEN_RATE,
        *,
        gain: float = 1.0,
        background: bool = False,
    ) -> None:
        if int(rate) <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.generator: LipGenerator | None = None
        self.notice = ""
        self._factory = None
        if hasattr(generator, "push"):
            self.generator = generator
        elif background:
            self._factory = generator
        else:
            self._set_generator(generator())
        self.rate = int(rate)
        self.gain = float(gain)
        self._lips = np.zeros((0, len(LIP_CHANNELS)))
        self._cap = 0
        self._n = 0
        self._finished = False
        self._lock = threading.Lock()  # guards _lips/_n/_finished
        self._gen_lock = threading.Lock()  # one generator call at a time
        self._queue: deque[np.ndarray | None] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = False
        # Bridge while the factory loads: procedural lips [F, 18], generated as audio arrives.
        self._bridge: ProceduralLipGenerator | None = (
            ProceduralLipGenerator() if self._factory is not None else None
        )
        self._bridge_rows: list[np.ndarray] = []
        self._bridge_done = False
        self._backlog: deque[np.ndarray | None] = deque()
        self.error: str = ""
        if background:
            self._thread = threading.Thread(target=self._work, name="hybrid-lips", daemon=True)
            self._thread.start()

    def _set_generator(self, made) -> None:
        gen, notice = made if isinstance(made, tuple) else (made, "")
        self.generator, self.notice = gen, notice

    @property
    def generator_name(self) -> str:
        gen = self.generator
        return gen.name if gen is not None else "loading"

    @classmethod
    def from_audio(
        cls, generator: LipGenerator, samples: np.ndarray, rate: int, *, gain: float = 1.0
    ) -> HybridMixer:
        """A mixer with all of ``samples`` generated now (files: a WAV, the project's audio)."""
        mixer = cls(generator, rate, gain=gain)
        mixer.push_audio(samples)
        mixer.finish()
        return mixer

    def push_audio_chunked(self, samples: np.ndarray, seconds: float = 1.0) -> None:
        """push_audio in pieces of ``seconds`` (a background mixer then generates a long file
        progressively, so the first lips come after one piece)."""
        a = np.asarray(samples)
        step = max(1, round(seconds * self.rate))
        for i in range(0, a.shape[0], step):
            self.push_audio(a[i : i + step])

    # -------------------------------------------------------------------- audio in
    def push_audio(self, samples: np.ndarray, rate: int | None = None) -> None:
        """Append audio ``[S]`` or ``[S, ch]`` at ``rate`` (default ``self.rate``), from any
        thread."""
        a = to_gen_rate(samples, self.rate if rate is None else int(rate))
        if self._thread is None:
            self._generate(a)
            return
        with self._wake:
            self._queue.append(a)
            self._wake.notify()

    def _feed_bridge(self, audio: np.ndarray | None, end: bool) -> None:
        bridge = self._bridge
        if bridge is None:
            return
        new = [] if audio is None else list(bridge.push(audio))
        if end:
            new.extend(bridge.flush())
        with self._lock:
            self._bridge_rows.extend(new)
            self._bridge_done = self._bridge_done or end

    def finish(self) -> None:
        """The audio has ended: generate what is owed; lips after the end are neutral."""
        if self._thread is None:
            self._generate(None)
            return
        with self._wake:
            self._queue.append(None)
            self._wake.notify()

    def wait(self, timeout: float | None = None, model: bool = True) -> bool:
        """Wait until everything pushed so far has been generated by the generator (with
        ``model`` False: by it or the bridge while it loads). True when it has."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._wake:
                idle = not self._queue and not self._busy
                if model:
                    idle = idle and self.generator is not None and not self._backlog
            if idle or self._thread is None:
                return True
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(0.005)

    def _load(self) -> None:  # loader thread: the factory may take seconds (torch)
        try:
            made = self._factory()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            made = ProceduralLipGenerator()
        with self._wake:
            self._set_generator(made)
            self._wake.notify_all()

    def _work(self) -> None:
        if self._factory is not None:
            threading.Thread(target=self._load, name="hybrid-lips-load", daemon=True).start()
        backlog = self._backlog  # audio the model has not had (it was loading)
        while True:
            with self._wake:
                while (
                    not self._closed
                    and not self._queue
                    and not (backlog and self.generator is not None)
                ):
                    self._wake.wait()
                if self._closed:
                    return
                loading = self.generator is None
                if not loading and backlog:
                    # The model has loaded: it catches up on the audio the bridge covered,
                    # a second at a time so its frames come out progressively.
                    self._queue.extendleft(reversed(backlog))
                    backlog.clear()
                # Merge queued chunks up to a second of audio: a slow model catches up in
                # bigger steps, and long audio (a file) still comes out progressively.
                chunks, end, size = [], False, 0
                while self._queue and size < GEN_RATE:
                    item = self._queue.popleft()
                    if item is None:
                        end = True
                        break
                    chunks.append(item)
                    size += item.size
                self._busy = True
            try:
                if loading:  # procedural lips bridge the wait; the model gets the audio later
                    backlog.extend(chunks)
                    if end:
                        backlog.append(None)
                    self._feed_bridge(np.concatenate(chunks) if chunks else None, end)
                else:
                    if chunks:
                        self._generate(np.concatenate(chunks))
                    if end:
                        self._generate(None)
            except Exception as exc:  # keep the live session going: lips stay where they are
                self.error = f"{type(exc).__name__}: {exc}"
            finally:
                with self._wake:
                    self._busy = False

    def _generate(self, audio: np.ndarray | None) -> None:
        assert self.generator is not None
        with self._gen_lock:
            if audio is None:
                new = self.generator.flush()
            else:
                new = self.generator.push(audio)
        with self._lock:
            if new.shape[0]:
                need = self._n + new.shape[0]
                if need > self._cap:
                    self._cap = max(need, 2 * self._cap, 256)
                    grown = np.zeros((self._cap, len(LIP_CHANNELS)))
                    grown[: self._n] = self._lips[: self._n]
                    self._lips = grown
                self._lips[self._n : need] = new
                self._n = need
            if audio is None:
                self._finished = True

    def close(self) -> None:
        """Stop the background thread (queued audio is dropped)."""
        with self._wake:
            self._closed = True
            self._queue.clear()
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    # -------------------------------------------------------------------- lips out
    @property
    def frames(self) -> int:
        """Lip frames generated so far (25 fps)."""
        with self._lock:
            return self._n

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finished

    def lips(self) -> np.ndarray:
        """All lip frames generated so far ``[F, 18]`` (a copy, before the gain)."""
        with self._lock:
            return self._lips[: self._n].copy()

    def lips_at(self, t: float) -> np.ndarray:
        """Lip channels ``[18]`` at audio time ``t`` seconds (times the gain): linear between
        frames; neutral before the audio and after its end; the newest frame while the frame
        for ``t`` is still being generated; neutral while nothing is."""
        with self._lock:
            lips, n, done = self._lips, self._n, self._finished
            x = t * GEN_FPS
            if len(self._bridge_rows) > n and x > n - 1:  # the model is not there yet
                lips, n, done = self._bridge_rows, len(self._bridge_rows), self._bridge_done
            if n == 0 or x < 0 or (done and x > n - 1 + 1.0):
                return np.zeros(len(LIP_CHANNELS))
            if x >= n - 1:
                row = np.array(lips[n - 1], dtype=np.float64)
            else:
                i = int(x)
                w = x - i
                row = (1.0 - w) * lips[i] + w * lips[i + 1]
        return self.gain * row

    def mix(self, values: np.ndarray, t: float) -> np.ndarray:
        """Tracked ``values [90]`` (or ``[N, 90]`` with ``t [N]``) with the lips at audio time
        ``t``; a copy."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1:
            return mix_lips(v, self.lips_at(float(t)))
        ts = np.asarray(t, dtype=np.float64).reshape(-1)
        return mix_lips(v, np.array([self.lips_at(x) for x in ts]))
