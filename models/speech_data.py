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
from models.procedural import ProceduralStyle, procedural_motion

__all__ = [
    "FPS",
    "PHONEME_VISEMES",
    "SAMPLE_RATE",
    "VISEMES",
    "VISEME_TARGETS",
    "EspeakError",
    "Phoneme",
    "SpeechClip",
    "generate_clip",
    "generate_dataset",
    "iter_generate_dataset",
    "lip_gap",
    "phoneme_visemes",
    "random_sentence",
    "synthesize",
    "viseme_motion",
]

FPS = 25
SAMPLE_RATE = 16000
HOP = SAMPLE_RATE // FPS


class EspeakError(RuntimeError):
    """espeak-ng is missing or failed (the message says which)."""


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


def generate_clip(seed: int, index: int = 0) -> SpeechClip:
    """Clip ``index`` of the dataset with ``seed`` (a function of the two alone).

    Raises EspeakError when espeak-ng is unavailable."""
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
    }
    return SpeechClip(audio, motion, text, phonemes, meta)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def iter_generate_dataset(
    out_dir: str | os.PathLike[str], n_clips: int, seed: int = 0
) -> Iterator[tuple[int, int]]:
    """Write ``n_clips`` clips into ``out_dir`` (layout in the module docstring), yielding
    ``(done, total)`` after each clip (a cancellation point); the manifest is written last, so a
    cancelled run leaves no manifest. Raises ValueError for n_clips < 1, EspeakError."""
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    entries = []
    for k in range(n_clips):
        clip = generate_clip(seed, k)
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
) -> Path:
    """Run :func:`iter_generate_dataset` to the end; returns the manifest's path."""
    for done, total in iter_generate_dataset(out_dir, n_clips, seed):
        if progress is not None:
            progress(done, total)
    return Path(out_dir) / "manifest.json"
