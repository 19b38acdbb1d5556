"""Synthetic paired (speech, motion) clips for training the motion models, from espeak-ng.

Speech: random English sentences from a built-in word list (generated, nothing downloaded),
spoken by espeak-ng with a random voice, variant, speed, pitch and pitch range. espeak-ng's C
library reports phoneme events with sample positions (``espeakINITIALIZE_PHONEME_EVENTS``); we read
them through ctypes. ``espeak-ng --pho`` (mbrola format, durations without ctypes) needs an mbrola
voice, which Debian does not install, so it prints nothing here.

The library carries synthesis state from one utterance to the next (the same text synthesised
twice in one process gives different waveforms), so every clip is synthesised in a fresh
subprocess (``python -I -S``, ctypes only, ~0.1 s). Even a fresh process occasionally gives a
slightly different waveform (same phonemes and length), so two run side by side and must agree
(more run on a disagreement): the audio is then a function of the request alone and a dataset is
deterministic for its seed.

Motion: phoneme timings -> visemes (:data:`PHONEME_VISEMES`, Oculus/ARKit-style set) -> mouth
motion on our rig with coarticulation (Cohen-Massaro dominance functions: each phoneme pulls the
mouth towards its viseme's target with a dominance that decays exponentially with distance from
the phoneme's centre, faster after it than before it, so the mouth anticipates the next sound;
lip closure for p/b/m and the lip-teeth contact of f/v dominate strongly, rounding spreads across
consonants). The rest of the face comes from models.procedural (blinks, head sway and nods, brow
raises on emphasis) and the emotion templates of models.emotion (a random emotion per clip, some
clips changing emotion half-way).

Viseme targets (:data:`VISEME_TARGETS`, keypoint units, scaled per clip by an articulation factor
in [0.75, 1.25]): ``jaw`` = exp_19_y (opens +), ``lower`` = exp_17_y (lower lip; negative presses
it up against the upper lip), ``upper`` = exp_6_y (negative lifts the upper lip), ``wide`` = mouth
corners outward (exp_14_x = -wide, exp_20_x = +wide; negative rounds), ``protrude`` = exp_6_z and
exp_17_z (negative pushes the lips towards the camera), ``tuck`` = exp_17_z (f/v: lower lip drawn
in under the upper teeth). Lip gap = exp_17_y - exp_6_y: positive open, <= 0 closed.

Dataset layout written by :func:`generate_dataset` (all clips 16 kHz, 25 fps, F = ceil(S / 640)):

    out_dir/
      manifest.json            {"version": 1, "seed", "fps": 25, "sample_rate": 16000,
                                "channels": [90 names], "clips": [{"id", "text", "num_frames",
                                "num_samples", "voice", "emotion"}, ...]}
      clips/<id>.wav           mono int16 PCM, 16 kHz
      clips/<id>.motion.npy    float32 [F, 90] dense motion channels (models.motion_space.CHANNELS)
      clips/<id>.json          text, voice, rate, pitch, pitch_range, articulation, emotion
                               (per-frame weights are in the motion's emotion channels), pad_start,
                               phonemes [{"symbol", "viseme", "start", "end"}] in seconds

``<id>`` is ``clip_000000``, ``clip_000001``, ...; clip i depends only on (seed, i).
"""

from __future__ import annotations

import functools
import json
import os
import struct
import subprocess
import sys
import wave
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from models.emotion import apply_emotion_template
from models.motion_space import CHANNEL_INDEX, CHANNELS, EMOTIONS, channel_name
from models.procedural import ProceduralStyle, audio_envelope, procedural_motion

__all__ = [
    "FPS",
    "HEAD_MOTIONS",
    "PHONEME_VISEMES",
    "SAMPLE_RATE",
    "VISEMES",
    "VISEME_TARGETS",
    "EspeakError",
    "Phoneme",
    "SpeechClip",
    "espeak_available",
    "generate_clip",
    "generate_dataset",
    "iter_generate_dataset",
    "lip_gap",
    "phoneme_visemes",
    "pitch_track",
    "prosodic_head_motion",
    "random_sentence",
    "syllable_accents",
    "synthesize",
    "viseme_motion",
]

FPS = 25
SAMPLE_RATE = 16000
HOP = SAMPLE_RATE // FPS


class EspeakError(RuntimeError):
    """espeak-ng is missing or failed (the message says which)."""


@functools.cache
def espeak_available() -> bool:
    """Whether espeak-ng can synthesise here (tried once per process on a one-letter text)."""
    try:
        synthesize("a")
    except EspeakError:
        return False
    return True


# --- espeak-ng through ctypes, one fresh process per utterance -----------------------------------
# espeak_EVENT (speak_lib.h): type, unique_identifier, text_position, length, audio_position (ms),
# sample, user_data, id (union; phoneme events carry the phoneme mnemonic in id.string[8]).
_WORKER = r"""
import ctypes, ctypes.util, json, struct, sys
name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
try:
    lib = ctypes.CDLL(name)
except OSError as e:
    sys.stderr.write("cannot load libespeak-ng: %s" % e); sys.exit(3)
class ID(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]
class EV(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ID)]
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                      ctypes.POINTER(EV))
req = json.loads(sys.stdin.buffer.read())
chunks, events = [], []
def cb(wav, n, ev):
    if n > 0:
        chunks.append(ctypes.string_at(wav, n * 2))
    i = 0
    while ev[i].type != 0:
        e = ev[i]
        if e.type == 7:
            events.append([e.id.string.decode("utf-8", "replace"), e.audio_position, e.sample])
        i += 1
    return 0
cbf = CB(cb)
sr = lib.espeak_Initialize(2, 0, None, 0x0001 | 0x8000)  # SYNCHRONOUS, PHONEME_EVENTS|DONT_EXIT
if sr <= 0:
    sys.stderr.write("espeak_Initialize failed"); sys.exit(4)
lib.espeak_SetSynthCallback(cbf)
if lib.espeak_SetVoiceByName(req["voice"].encode()) != 0:
    sys.stderr.write("unknown voice %s" % req["voice"]); sys.exit(5)
for par, key in ((1, "rate"), (3, "pitch"), (4, "pitch_range")):
    lib.espeak_SetParameter(par, int(req[key]), 0)
text = req["text"].encode("utf-8")
if lib.espeak_Synth(text, len(text) + 1, 0, 1, 0, 1, None, None) != 0:
    sys.stderr.write("espeak_Synth failed"); sys.exit(6)
lib.espeak_Synchronize()
pcm = b"".join(chunks)
head = json.dumps({"sample_rate": sr, "events": events}).encode()
sys.stdout.buffer.write(struct.pack("<II", len(head), len(pcm)) + head + pcm)
"""


@dataclass(frozen=True)
class Phoneme:
    """One phoneme: espeak-ng's mnemonic, its viseme and its interval in seconds."""

    symbol: str
    viseme: str
    start: float
    end: float


def synthesize(
    text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, pitch_range: int = 50
) -> tuple[np.ndarray, int, list[tuple[str, float]]]:
    """Speak ``text`` with espeak-ng: ``(audio int16 [S], sample_rate, [(phoneme, start_s)])``.

    voice: an espeak-ng voice name with an optional variant (``"en-gb+f3"``); rate in words per
    minute; pitch and pitch_range 0..100. Runs in fresh subprocesses that must agree
    (deterministic output).
    Raises EspeakError when the library is missing, the voice is unknown or synthesis fails.
    """
    req = json.dumps(
        {"text": text, "voice": voice, "rate": rate, "pitch": pitch, "pitch_range": pitch_range}
    ).encode()
    # Rarely a fresh process still synthesises a slightly different waveform (same phonemes and
    # length; seen on the first worker a pytest session starts). Two workers run side by side and
    # must agree; on a disagreement more run until one waveform has been seen twice.
    seen: list[bytes] = []
    procs = [_start_worker() for _ in range(2)]
    try:
        outputs = [_finish_worker(p, req, text) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for _ in range(6):
        for out in outputs:
            if out in seen:
                return _parse_worker(out)
            seen.append(out)
        outputs = [_finish_worker(_start_worker(), req, text)]
    raise EspeakError("espeak-ng gave a different waveform on every run; cannot be deterministic")


def _start_worker() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish_worker(p: subprocess.Popen, req: bytes, text: str) -> bytes:
    try:
        out, err = p.communicate(req, timeout=60)
    except subprocess.TimeoutExpired as e:
        p.kill()
        p.communicate()
        raise EspeakError(f"espeak-ng timed out on {text[:40]!r}") from e
    if p.returncode != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise EspeakError(f"espeak-ng failed ({p.returncode}): {msg[-1] if msg else 'no message'}")
    return out


def _parse_worker(out: bytes) -> tuple[np.ndarray, int, list[tuple[str, float]]]:
    n_head, n_pcm = struct.unpack("<II", out[:8])
    head = json.loads(out[8 : 8 + n_head])
    pcm = np.frombuffer(out[8 + n_head : 8 + n_head + n_pcm], dtype="<i2").copy()
    sr = int(head["sample_rate"])
    # The event's sample position is exact; audio_position is the same in whole ms.
    events = [(str(sym), float(sample) / sr) for sym, _ms, sample in head["events"]]
    return pcm, sr, events


# --- phonemes -> visemes -------------------------------------------------------------------------
VISEMES = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)  # fmt: skip

# Viseme -> (jaw, lower, upper, wide, protrude, tuck), keypoint units (module docstring).
VISEME_TARGETS: dict[str, tuple[float, float, float, float, float, float]] = {
    "sil": (0.000, 0.000, 0.000, 0.000, 0.000, 0.000),
    "PP": (0.004, -0.006, 0.003, -0.002, 0.000, 0.000),  # lips pressed together
    "FF": (0.008, -0.004, -0.003, 0.000, 0.000, 0.005),  # lower lip to upper teeth
    "TH": (0.012, 0.004, -0.002, 0.002, 0.000, 0.000),  # tongue between the teeth
    "DD": (0.014, 0.005, -0.002, 0.003, 0.000, 0.000),
    "kk": (0.018, 0.006, -0.002, 0.002, 0.000, 0.000),
    "CH": (0.010, 0.003, -0.004, -0.006, -0.006, 0.000),  # rounded and protruded
    "SS": (0.006, 0.002, -0.002, 0.006, 0.000, 0.000),  # teeth nearly together, spread
    "nn": (0.012, 0.004, -0.001, 0.002, 0.000, 0.000),
    "RR": (0.012, 0.004, -0.002, -0.006, -0.004, 0.000),
    "aa": (0.045, 0.016, -0.004, 0.002, 0.000, 0.000),  # open
    "E": (0.028, 0.010, -0.003, 0.008, 0.000, 0.000),
    "ih": (0.016, 0.006, -0.002, 0.010, 0.000, 0.000),  # spread
    "oh": (0.032, 0.011, -0.003, -0.010, -0.008, 0.000),  # round
    "ou": (0.014, 0.005, -0.002, -0.014, -0.012, 0.000),  # round, small
}

# Dominance (Cohen-Massaro): (alpha for jaw and lip opening, alpha for rounding/spreading).
# Bilabials and labiodentals must reach their target; h, k, t, n take their neighbours' shape;
# rounding of vowels spreads over consonants.
_DOMINANCE: dict[str, tuple[float, float]] = {
    "sil": (0.5, 0.3), "PP": (3.0, 0.3), "FF": (2.0, 0.3), "TH": (0.6, 0.2), "DD": (0.4, 0.2),
    "kk": (0.3, 0.2), "CH": (0.6, 0.8), "SS": (0.6, 0.4), "nn": (0.4, 0.2), "RR": (0.5, 0.7),
    "aa": (0.8, 0.6), "E": (0.7, 0.6), "ih": (0.6, 0.6), "oh": (0.8, 0.9), "ou": (0.8, 1.0),
}  # fmt: skip
# Decay rates (1/s) before the phoneme's centre (anticipation: slow) and after it (carry-over).
_THETA_BEFORE, _THETA_AFTER = 18.0, 30.0
# Phonemes that must show on screen (closures) decay faster, so neighbours do not wash them out.
_SHARP = {"PP": 2.5, "FF": 2.0}
_REST_DOMINANCE = 0.02

# espeak-ng English mnemonics (phsource/ph_english*) -> viseme. Diphthongs are two visemes, each
# over half of the phoneme. Unknown symbols fall back to their first letter (see phoneme_visemes).
PHONEME_VISEMES: dict[str, tuple[str, ...]] = {
    "p": ("PP",), "b": ("PP",), "m": ("PP",),
    "f": ("FF",), "v": ("FF",),
    "T": ("TH",), "D": ("TH",),
    "t": ("DD",), "d": ("DD",), "t#": ("DD",), "d#": ("DD",), "t2": ("DD",), "d2": ("DD",),
    "k": ("kk",), "g": ("kk",), "N": ("kk",), "x": ("kk",), "h": ("kk",), "?": ("kk",),
    "tS": ("CH",), "dZ": ("CH",), "S": ("CH",), "Z": ("CH",),
    "s": ("SS",), "z": ("SS",),
    "n": ("nn",), "l": ("nn",), "n-": ("nn",), "l/": ("nn",), "L": ("nn",), "@L": ("nn",),
    "r": ("RR",), "r-": ("RR",), "R": ("RR",), "3": ("RR",), "3:": ("RR",), "VR": ("RR",),
    "j": ("ih",), "w": ("ou",),
    "a": ("aa",), "a#": ("aa",), "A:": ("aa",), "A@": ("aa",), "aa": ("aa",), "V": ("aa",),
    "A": ("aa",), "@": ("E",), "@2": ("E",), "@5": ("E",), "e": ("E",), "E": ("E",),
    "e@": ("E",), "i": ("ih",), "i:": ("ih",), "I": ("ih",), "I#": ("ih",), "I2": ("ih",),
    "0": ("oh",), "O": ("oh",), "O:": ("oh",), "O@": ("oh",), "o@": ("oh",), "u:": ("ou",),
    "U": ("ou",), "u": ("ou",), "U@": ("ou", "E"),
    "aI": ("aa", "ih"), "aU": ("aa", "ou"), "eI": ("E", "ih"), "OI": ("oh", "ih"),
    "oU": ("oh", "ou"), "i@": ("ih", "E"), "aI@": ("aa", "E"), "aU@": ("aa", "E"),
}  # fmt: skip
_FIRST_LETTER = {
    "a": "aa", "A": "aa", "V": "aa", "e": "E", "E": "E", "@": "E", "i": "ih", "I": "ih",
    "o": "oh", "O": "oh", "0": "oh", "u": "ou", "U": "ou", "3": "RR",
}  # fmt: skip


def phoneme_visemes(symbol: str) -> tuple[str, ...]:
    """Visemes of an espeak-ng phoneme mnemonic (pauses ``_``... are ``sil``)."""
    if not symbol or symbol.startswith("_"):
        return ("sil",)
    if symbol in PHONEME_VISEMES:
        return PHONEME_VISEMES[symbol]
    base = symbol.rstrip("#:;-0123456789")
    if base in PHONEME_VISEMES:
        return PHONEME_VISEMES[base]
    return (_FIRST_LETTER.get(symbol[0], "nn"),)


def _segments(events: list[tuple[str, float]], end_time: float) -> list[Phoneme]:
    """Phoneme events (symbol, start) -> Phonemes with ends, diphthongs split into halves."""
    out = []
    for i, (sym, start) in enumerate(events):
        stop = events[i + 1][1] if i + 1 < len(events) else end_time
        if stop <= start:
            continue
        vis = phoneme_visemes(sym)
        step = (stop - start) / len(vis)
        for j, v in enumerate(vis):
            out.append(Phoneme(sym, v, start + j * step, start + (j + 1) * step))
    return out


def viseme_motion(
    phonemes: list[Phoneme], num_frames: int, fps: float = FPS, articulation: float = 1.0
) -> np.ndarray:
    """Mouth parameters per frame ``[F, 7]`` from phonemes, sampled at frame centres
    ``(f + 0.5) / fps``: (jaw, lower, upper, wide, protrude, tuck) as in VISEME_TARGETS, then
    ``closure`` in [0, 1], the share of the lip-closing visemes (PP, FF) in the mouth's shape
    (used to keep emotions from opening lips that speech closes).

    Coarticulation by dominance functions; the centre of each closure (PP, FF) is moved to the
    nearest frame centre (at most half a frame) so that every closure is seen on a frame, as
    animators key them. Far from any phoneme the mouth relaxes to rest.
    """
    t = (np.arange(num_frames) + 0.5) / fps  # [F]
    out = np.zeros((num_frames, 7))
    if not phonemes:
        return out
    vis = [p.viseme for p in phonemes]
    centres = np.array([(p.start + p.end) / 2 for p in phonemes])  # [P]
    closing = np.array([v in _SHARP for v in vis])
    snapped = (np.floor(centres * fps) + 0.5) / fps
    centres = np.where(closing, snapped, centres)
    targets = np.array([VISEME_TARGETS[v] for v in vis]) * articulation  # [P, 6]
    alpha = np.array([_DOMINANCE[v] for v in vis])  # [P, 2]
    sharp = np.array([_SHARP.get(v, 1.0) for v in vis])  # [P]
    # Sustained phonemes (long vowels, pauses) hold their target over the middle of their
    # interval; closures are instants.
    half = np.where(closing, 0.0, np.array([(p.end - p.start) / 2 for p in phonemes]))
    d = t[:, None] - centres[None, :]  # [F, P]
    dist = np.maximum(np.abs(d) - 0.5 * half[None, :], 0.0)
    theta = np.where(d < 0, _THETA_BEFORE, _THETA_AFTER) * sharp[None, :]
    decay = np.exp(-theta * dist)  # [F, P]
    for group, cols in ((0, [0, 1, 2, 5]), (1, [3, 4])):
        dom = alpha[None, :, group] * decay  # [F, P]
        # A weak constant pull to rest: far from any phoneme the mouth relaxes (the normalised
        # average alone would hold the nearest phoneme's shape forever).
        total = dom.sum(axis=1) + _REST_DOMINANCE
        out[:, cols] = (dom @ targets[:, cols]) / total[:, None]
        if group == 0:
            out[:, 6] = (dom * closing[None, :]).sum(axis=1) / total
    return out


def lip_gap(motion: np.ndarray) -> np.ndarray:
    """Lip opening per frame of motion channels ``[F, C]``: exp_17_y - exp_6_y (<= 0 closed)."""
    m = np.asarray(motion)
    return m[:, CHANNEL_INDEX[channel_name(17, 1)]] - m[:, CHANNEL_INDEX[channel_name(6, 1)]]


# --- sentences ----------------------------------------------------------------------------------
_WORDS = {
    "name": "Peter Mary Bob Emma Paul Maya Tom Anna Ben Molly Sam Lisa Max Ruby Jim Nora",
    "adj": (
        "big small old new bright quiet happy brown purple warm cold heavy soft busy empty "
        "famous simple broken lovely tiny yellow proud calm strange"
    ),
    "noun": (
        "map moon book boat apple garden window piano table river mountain bottle basket "
        "kitchen market bridge pocket letter ribbon pebble mirror blanket puppy bicycle rabbit "
        "umbrella forest morning picture coffee ship harbour feather bubble ball"
    ),
    "verb": (
        "bought found painted moved opened carried brought watched followed dropped borrowed "
        "fixed remembered pushed washed visited chose built measured hid"
    ),
    "prep": "behind beside under over near above by from into",
    "adv": "quickly slowly finally probably quietly happily maybe suddenly",
    "det": "the a my your this that our",
    "pron": "we you they she he I",
}
_LEX = {k: v.split() for k, v in _WORDS.items()}
_TEMPLATES = (
    "name verb det adj noun",
    "det adj noun was prep det noun",
    "pron adv verb det noun prep det noun",
    "why did name hide det adj noun",
    "name and name verb det noun",
    "did pron see det adj noun prep det noun",
    "please bring me det adj noun",
    "pron verb det noun and det adj noun",
    "oh no det noun is adj",
    "maybe det noun will be adj by morning",
)


def random_sentence(rng: np.random.Generator) -> str:
    """A random, roughly grammatical English sentence from the built-in word list."""
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    words = [_LEX[w][int(rng.integers(len(_LEX[w])))] if w in _LEX else w for w in template.split()]
    text = " ".join(words)
    question = template.startswith(("why", "did"))
    return text[0].upper() + text[1:] + ("?" if question else rng.choice([".", ".", "!"]))


# Voices shipped with Debian's espeak-ng that speak English, and variants (voices/!v).
_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")
_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt")


# --- head motion that follows the speech (prosody) ----------------------------------------------
# Talking heads move most on stressed, louder, higher-pitched syllables and at phrase starts, and
# blink mostly in pauses (e.g. Graf et al. 2002, "Visual prosody: facial movements accompanying
# speech"; Munhall et al. 2004; blinks cluster at pauses and phrase boundaries). ``head="prosody"``
# (generate_clip / generate_dataset) drives the head, brows and blinks from the clip's own audio
# and phoneme timings instead of the procedural generator's random sway and blinks, so that
# audio can predict how much the head moves (what the A2I student learns).
_VOWEL_START = set("aAeEiIoOuUV03@")
_PAUSE_S = 0.15  # silence at least this long ends a phrase


def pitch_track(audio: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """Fundamental frequency per frame ``[F]`` in Hz (0 = unvoiced or silent), by normalised
    autocorrelation of a 40 ms window at each frame centre, lags for 70-400 Hz (the shortest lag
    within 85 % of the best peak, against octave errors); voiced when that peak exceeds 0.5 and
    the frame is no more than 35 dB below the loudest."""
    x = np.asarray(audio, dtype=np.float64)
    win = round(0.04 * sample_rate)
    hop = sample_rate / fps
    lo, hi = int(sample_rate / 400), int(sample_rate / 70)
    centres = np.round((np.arange(num_frames) + 0.5) * hop).astype(int)
    pad = np.pad(x, (win, win))
    frames = np.stack([pad[c + win // 2 : c + win // 2 + win] for c in centres])  # [F, win]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames * np.hanning(win)[None]
    n = 2 * win
    spec = np.fft.rfft(frames, n=n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=n, axis=1)[:, : hi + 1]  # [F, hi + 1]
    # Normalise by the window's own autocorrelation so the taper does not favour short lags.
    w_ac = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(win), n=n)) ** 2, n=n)[: hi + 1]
    r = ac / np.maximum(ac[:, :1], 1e-12) / np.maximum(w_ac / w_ac[0], 1e-3)[None]
    # The shortest lag that comes close to the best one, refined to its local peak (the best
    # alone often lands on twice the period: the taper correction favours long lags a little).
    rr = r[:, lo:]
    best = rr.max(axis=1, keepdims=True)
    first = np.argmax(rr >= 0.85 * best, axis=1)
    lag = np.empty(num_frames, dtype=int)
    for f, j in enumerate(first):
        seg = rr[f, j : j + j // 4 + 3]
        lag[f] = lo + j + int(np.argmax(seg))
    peak = r[np.arange(num_frames), lag]
    db = 10 * np.log10(ac[:, 0] + 1e-12)
    voiced = (peak > 0.5) & (db > db.max() - 35.0)
    return np.where(voiced, sample_rate / lag, 0.0)


def _bump(t: np.ndarray, t0: float, dur: float) -> np.ndarray:
    """Raised cosine from t0 to t0 + dur (a move out and back), peak 1 at its middle."""
    u = (t - t0) / dur
    return np.where((u >= 0) & (u <= 1), 0.5 - 0.5 * np.cos(2 * np.pi * np.clip(u, 0, 1)), 0.0)


def _smoothstep(t: np.ndarray, t0: float, dur: float) -> np.ndarray:
    u = np.clip((t - t0) / dur, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def syllable_accents(
    phonemes: list[Phoneme], audio: np.ndarray, sample_rate: int, fps: float, num_frames: int
) -> list[dict]:
    """Syllable nuclei (vowels) with their prominence: ``[{"start", "end", "strength",
    "pitch_accent", "phrase_start"}]`` (seconds; strength and pitch_accent in [0, 1]).

    Prominence = z(loudness) + 0.7 z(pitch) + 0.5 z(duration) over the clip's vowels (loudness:
    the peak of models.procedural.audio_envelope's energy over the vowel; pitch: its highest
    voiced F0 in semitones; duration: the vowel's), strength = clip((prominence - 0.3) / 1.5,
    0, 1); the first vowel of a phrase (after >= 0.15 s of pause or at the start) gets at least
    0.6. pitch_accent = clip(z(pitch) / 1.5, 0, 1)."""
    energy, _ = audio_envelope(np.asarray(audio, dtype=np.float64), sample_rate, fps, num_frames)
    f0 = pitch_track(audio, sample_rate, fps, num_frames)
    semis = np.where(f0 > 0, 12 * np.log2(np.maximum(f0, 1.0) / 100.0), np.nan)
    nuclei: list[dict] = []
    pause_before = True
    for k, p in enumerate(phonemes):
        if p.symbol.startswith("_"):
            if p.end - p.start >= _PAUSE_S:
                pause_before = True
            continue
        vowel = p.symbol[0] in _VOWEL_START and p.symbol not in ("j", "w")
        if not vowel:
            continue
        if nuclei and k > 0 and phonemes[k - 1].symbol == p.symbol and nuclei[-1]["end"] == p.start:
            nuclei[-1]["end"] = p.end  # the second half of a diphthong
            continue
        nuclei.append({"start": p.start, "end": p.end, "phrase_start": pause_before})
        pause_before = False
    if not nuclei:
        return []
    feats = []
    for nu in nuclei:
        f0_ = min(int(nu["start"] * fps), num_frames - 1)
        f1_ = min(max(f0_ + 1, int(np.ceil(nu["end"] * fps))), num_frames)
        sp = semis[f0_:f1_]
        feats.append((energy[f0_:f1_].max(), np.nanmax(sp) if np.isfinite(sp).any() else np.nan,
                      nu["end"] - nu["start"]))  # fmt: skip
    a = np.array(feats, dtype=np.float64)  # [V, 3]

    def z(col: np.ndarray) -> np.ndarray:
        ok = np.isfinite(col)
        if ok.sum() < 2 or np.nanstd(col) < 1e-9:
            return np.zeros_like(col)
        out = (col - np.nanmean(col)) / np.nanstd(col)
        return np.where(ok, out, 0.0)

    zl, zp, zd = z(a[:, 0]), z(a[:, 1]), z(a[:, 2])
    prom = zl + 0.7 * zp + 0.5 * zd
    for nu, pr, zpi in zip(nuclei, prom, zp, strict=True):
        s = float(np.clip((pr - 0.3) / 1.5, 0.0, 1.0))
        nu["strength"] = max(s, 0.6) if nu["phrase_start"] else s
        nu["pitch_accent"] = float(np.clip(zpi / 1.5, 0.0, 1.0))
    return nuclei


def prosodic_head_motion(
    motion: np.ndarray,
    phonemes: list[Phoneme],
    audio: np.ndarray,
    rng: np.random.Generator,
    style: ProceduralStyle,
    fps: float = FPS,
) -> tuple[np.ndarray, dict]:
    """Replace the procedural head pose, brows and blinks of ``motion [F, 90]`` by motion that
    follows the speech; returns ``(motion, info)`` (a copy; info counts accents and blinks).

    Head: a slow idle sway at 0.3 of the procedural amplitude, plus on every accented vowel
    (:func:`syllable_accents`, strength a > 0) a nod (pitch, raised cosine over 0.4 s starting
    60 ms before the vowel, ``nod_deg * a``) and a turn (yaw and roll shift by a random amount
    ``~ sway_deg * a`` over 0.3 s, pulled back towards 0 so the head does not wander); phrase
    starts lift the head first. Brows rise (``brow_raise * pitch_accent``) on pitch accents.
    Blinks (the procedural blink profile): with the head lift at a phrase start (probability
    0.6), in pauses after speech (0.3), plus rare random ones (0.08 Hz)."""
    out = np.array(motion, dtype=np.float64, copy=True)
    F = out.shape[0]
    i = CHANNEL_INDEX
    t = (np.arange(F) + 0.5) / fps
    accents = syllable_accents(phonemes, audio, SAMPLE_RATE, fps, F)
    phases = rng.uniform(0, 2 * np.pi, size=(3, 3))
    freqs = np.array([0.11, 0.23, 0.37])
    sway = np.sin(2 * np.pi * freqs[None, :, None] * t[None, None, :] + phases[:, :, None])
    sway = 0.3 * sway.sum(axis=1) / 2.0  # [3, F]
    pitch = style.sway_deg * 0.6 * sway[0]
    yaw = style.sway_deg * sway[1]
    roll = style.sway_deg * 0.4 * sway[2]
    brow = np.zeros(F)
    turn_yaw, turn_roll = np.zeros(F), np.zeros(F)
    off_yaw = off_roll = 0.0
    n_acc = 0
    for nu in accents:
        a = nu["strength"]
        if a <= 0:
            continue
        n_acc += 1
        t0 = nu["start"] - 0.06
        if nu["phrase_start"]:
            pitch -= 0.5 * style.nod_deg * a * _bump(t, t0 - 0.2, 0.5)  # lift, then speak
        pitch += style.nod_deg * a * _bump(t, t0, 0.4)
        # A turn to a new offset, half-way back towards centre plus a random part.
        new_yaw = 0.5 * off_yaw + rng.normal() * style.sway_deg * a
        new_roll = 0.5 * off_roll + rng.normal() * 0.4 * style.sway_deg * a
        step = _smoothstep(t, t0, 0.3)
        turn_yaw += (new_yaw - off_yaw) * step
        turn_roll += (new_roll - off_roll) * step
        off_yaw, off_roll = new_yaw, new_roll
        brow += style.brow_raise * nu["pitch_accent"] * _bump(t, t0, 0.5)
    # The turns drift back to centre slowly (time constant 2 s), as heads do.
    out[:, i["pitch"]] = pitch
    out[:, i["yaw"]] = yaw + turn_yaw - _lowpass_drift(turn_yaw, fps)
    out[:, i["roll"]] = roll + turn_roll - _lowpass_drift(turn_roll, fps)
    out[:, i[channel_name(1, 1)]] = -np.minimum(brow, style.brow_raise * 1.2)
    out[:, i[channel_name(2, 1)]] = -np.minimum(brow, style.brow_raise * 1.2)

    # Blinks at phrase starts, with the head movement that opens the phrase (blinks go with
    # gaze shifts and head movements), in some pauses after speech, and rarely anywhere.
    blink = np.zeros(F)
    profile = np.array([0.5, 1.0, 0.8, 0.45, 0.15])[: style.blink_frames]
    times = [nu["start"] - 0.21 for nu in accents if nu["phrase_start"] and rng.random() < 0.6]
    spoke = False
    for p in phonemes:
        if p.symbol.startswith("_"):
            if spoke and p.end - p.start >= _PAUSE_S and rng.random() < 0.3:
                times.append(p.start + rng.uniform(0.0, min(0.15, p.end - p.start)))
            continue
        spoke = True
    tr = 0.0
    while True:
        tr += 1.0 + rng.exponential(1.0 / 0.08)
        if tr >= F / fps:
            break
        times.append(tr)
    for tb in times:
        f0 = int(tb * fps)
        f1 = min(f0 + profile.size, F)
        if 0 <= f0 < F:
            blink[f0:f1] = np.maximum(blink[f0:f1], profile[: f1 - f0])
    out[:, i["eye_open_r"]] = 1.0 - blink
    out[:, i["eye_open_l"]] = 1.0 - blink
    for upper in (11, 15):
        out[:, i[channel_name(upper, 1)]] = 0.03 * blink
    for lower in (13, 16):
        out[:, i[channel_name(lower, 1)]] = -0.006 * blink
    return out, {"accents": n_acc, "blinks": len(times)}


def _lowpass_drift(x: np.ndarray, fps: float, tau_s: float = 2.0) -> np.ndarray:
    """The slow part of ``x`` (one-pole low-pass, time constant ``tau_s``), what a head lets go of
    as it drifts back to centre."""
    alpha = 1.0 / (tau_s * fps)
    y = np.zeros_like(x)
    acc = 0.0
    for k, v in enumerate(x):
        acc += alpha * (v - acc)
        y[k] = acc
    return y


# --- clips ---------------------------------------------------------------------------------------
@dataclass
class SpeechClip:
    """One training pair: ``audio [S]`` float32 at 16 kHz, ``motion [F, 90]`` float64 at 25 fps
    (F = ceil(S / 640)), the text and phoneme timings (seconds), and generation parameters."""

    audio: np.ndarray
    motion: np.ndarray
    text: str
    phonemes: list[Phoneme]
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "text": self.text,
            **self.meta,
            "sample_rate": SAMPLE_RATE,
            "fps": FPS,
            "num_samples": int(self.audio.size),
            "num_frames": int(self.motion.shape[0]),
            "phonemes": [asdict(p) for p in self.phonemes],
        }


def _emotion_curve(rng: np.random.Generator, F: int) -> tuple[np.ndarray, dict]:
    """Per-frame emotion weights [F, 8]: neutral (40 %) or one emotion at a random strength,
    changing to another one half-way in a third of the clips."""
    w = np.zeros((F, len(EMOTIONS)))
    neutral = EMOTIONS.index("neutral")
    others = [i for i in range(len(EMOTIONS)) if i != neutral]

    def pick() -> tuple[int, float]:
        if rng.random() < 0.4:
            return neutral, 0.0
        return int(rng.choice(others)), float(rng.uniform(0.3, 1.0))

    (e0, s0), (e1, s1) = pick(), pick()
    change = F > 20 and rng.random() < 1 / 3
    a = np.zeros(F)
    if change:
        mid = int(rng.integers(F // 3, 2 * F // 3))
        a = np.clip((np.arange(F) - mid) / 10.0 + 0.5, 0.0, 1.0)  # 10-frame blend
    w[:, e0] += (1 - a) * s0
    w[:, e1] += a * s1 if change else 0.0
    w[:, neutral] += 1.0 - w.sum(axis=1)
    info = {"start": EMOTIONS[e0], "start_weight": s0}
    if change:
        info |= {"end": EMOTIONS[e1], "end_weight": s1}
    return w, info


HEAD_MOTIONS = ("random", "prosody")


def generate_clip(seed: int, index: int = 0, head: str = "random") -> SpeechClip:
    """Clip ``index`` of the dataset with ``seed`` (a function of the two and ``head`` alone).

    head: "random" (the procedural generator's random sway, onset nods and blinks; the data the
    shipped motion model was trained on) or "prosody" (:func:`prosodic_head_motion`: head,
    brows and blinks follow the speech; audio, text, mouth and emotion are the same as with
    "random"). Raises EspeakError when espeak-ng is unavailable, ValueError for another head."""
    if head not in HEAD_MOTIONS:
        raise ValueError(f"head must be one of {HEAD_MOTIONS}, got {head!r}")
    from scipy.signal import resample_poly

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    n_sent = 1 + int(rng.random() < 0.35)
    text = " ".join(random_sentence(rng) for _ in range(n_sent))
    variant = _VARIANTS[int(rng.integers(len(_VARIANTS)))]
    voice = _VOICES[int(rng.integers(len(_VOICES)))] + (f"+{variant}" if variant else "")
    rate = int(rng.integers(140, 201))
    pitch = int(rng.integers(35, 71))
    prange = int(rng.integers(30, 81))
    pcm, sr, events = synthesize(text, voice, rate, pitch, prange)

    # To 16 kHz float, with random silence before and after the speech.
    x = pcm.astype(np.float64) / 32768.0
    x = resample_poly(x, SAMPLE_RATE, sr) if sr != SAMPLE_RATE else x
    pad0 = float(rng.uniform(0.1, 0.4))
    pad1 = float(rng.uniform(0.1, 0.4))
    n0, n1 = round(pad0 * SAMPLE_RATE), round(pad1 * SAMPLE_RATE)
    audio = np.concatenate([np.zeros(n0), x, np.zeros(n1)]).astype(np.float32)
    pad0 = n0 / SAMPLE_RATE
    speech_end = pad0 + pcm.size / sr
    phonemes = _segments([(s, t + pad0) for s, t in events], speech_end)
    # The padding is silence too: the mouth rests there (with anticipation of the first sound).
    phonemes = [
        Phoneme("_", "sil", 0.0, pad0),
        *phonemes,
        Phoneme("_", "sil", speech_end, audio.size / SAMPLE_RATE),
    ]
    F = int(np.ceil(audio.size / HOP))

    # Face and head from the procedural generator (blinks, sway, nods, brows), mouth from visemes.
    style = ProceduralStyle(
        blink_rate_hz=float(rng.uniform(0.2, 0.4)),
        sway_deg=float(rng.uniform(1.0, 4.0)),
        nod_deg=float(rng.uniform(1.0, 4.0)),
        brow_raise=float(rng.uniform(0.005, 0.02)),
    )
    motion = procedural_motion(
        audio.astype(np.float64), SAMPLE_RATE, FPS, F, seed=int(rng.integers(2**31)), style=style
    )
    head_info: dict = {}
    if head == "prosody":
        # Its own random stream, so everything else is as with head="random".
        head_rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 1]))
        motion, head_info = prosodic_head_motion(motion, phonemes, audio, head_rng, style)
    articulation = float(rng.uniform(0.75, 1.25))
    mouth = viseme_motion(phonemes, F, FPS, articulation)  # [F, 7]
    i = CHANNEL_INDEX
    motion[:, i[channel_name(19, 1)]] = mouth[:, 0]
    motion[:, i[channel_name(17, 1)]] = mouth[:, 1]
    motion[:, i[channel_name(6, 1)]] = mouth[:, 2]
    motion[:, i[channel_name(14, 0)]] = -mouth[:, 3]
    motion[:, i[channel_name(20, 0)]] = mouth[:, 3]
    motion[:, i[channel_name(6, 2)]] = mouth[:, 4]
    motion[:, i[channel_name(17, 2)]] = mouth[:, 4] + mouth[:, 5]
    weights, emo = _emotion_curve(rng, F)
    emotional = apply_emotion_template(motion, weights)
    # Emotions do not open lips that speech closes (surprise's open jaw on a "p").
    lips = [i[channel_name(k, 1)] for k in (6, 17, 19)]
    emotional[:, lips] -= mouth[:, 6:7] * (emotional[:, lips] - motion[:, lips])
    motion = emotional
    meta = {
        "voice": voice,
        "rate": rate,
        "pitch": pitch,
        "pitch_range": prange,
        "articulation": articulation,
        "pad_start": pad0,
        "emotion": emo,
        "head": head,
    }
    if head_info:
        meta["head_info"] = head_info
    return SpeechClip(audio, motion, text, phonemes, meta)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def iter_generate_dataset(
    out_dir: str | os.PathLike[str], n_clips: int, seed: int = 0, head: str = "random"
) -> Iterator[tuple[int, int]]:
    """Write ``n_clips`` clips into ``out_dir`` (layout in the module docstring), yielding
    ``(done, total)`` after each clip (a cancellation point); the manifest is written last, so a
    cancelled run leaves no manifest. ``head``: see :func:`generate_clip`. Raises ValueError for
    n_clips < 1 or another head, EspeakError."""
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    if head not in HEAD_MOTIONS:
        raise ValueError(f"head must be one of {HEAD_MOTIONS}, got {head!r}")
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    entries = []
    for k in range(n_clips):
        clip = generate_clip(seed, k, head)
        cid = f"clip_{k:06d}"
        _write_wav(out / "clips" / f"{cid}.wav", clip.audio)
        np.save(out / "clips" / f"{cid}.motion.npy", clip.motion.astype(np.float32))
        meta = clip.to_json()
        (out / "clips" / f"{cid}.json").write_text(json.dumps(meta, indent=1))
        entries.append(
            {
                "id": cid,
                "text": clip.text,
                "num_frames": meta["num_frames"],
                "num_samples": meta["num_samples"],
                "voice": meta["voice"],
                "emotion": meta["emotion"],
            }
        )
        yield k + 1, n_clips
    manifest = {
        "version": 1,
        "seed": int(seed),
        "head": head,
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "channels": list(CHANNELS),
        "clips": entries,
    }
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")


def generate_dataset(
    out_dir: str | os.PathLike[str],
    n_clips: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    head: str = "random",
) -> Path:
    """Run :func:`iter_generate_dataset` to the end; returns the manifest's path."""
    for done, total in iter_generate_dataset(out_dir, n_clips, seed, head):
        if progress is not None:
            progress(done, total)
    return Path(out_dir) / "manifest.json"
