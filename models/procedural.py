"""A procedural talking-head motion generator: the non-neural baseline.

Speech energy opens the jaw, spectral shape rounds or widens the lips, blinks come at natural
intervals, and the head sways and nods with the speech. Deterministic for a seed. numpy only.

It produces dense per-frame motion channels ``[F, len(CHANNELS)]`` in the motion space
(models.motion_space); the document turns them into keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS, channel_name

__all__ = ["ProceduralStyle", "audio_envelope", "procedural_motion"]


@dataclass(frozen=True)
class ProceduralStyle:
    """Magnitudes in motion-space units (keypoint deltas) and degrees."""

    jaw_open: float = 0.11  # exp_19_y at full speech energy (about 10 degrees of jaw on our rig)
    lip_round: float = 0.012  # mouth corners pulled in on dark (low-centroid) vowels
    lip_wide: float = 0.010  # mouth corners pushed out on bright sounds
    blink_rate_hz: float = 0.28  # people blink ~15-20 times a minute
    blink_frames: int = 5  # close + open, about 200 ms at 25 fps
    sway_deg: float = 2.5  # slow head sway amplitude
    nod_deg: float = 3.0  # nods on speech onsets
    brow_raise: float = 0.012  # brows lift with emphasis


def audio_envelope(
    audio: np.ndarray, sample_rate: int, fps: float, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame loudness and spectral brightness of mono ``audio [S]``.

    Returns (energy [F] in 0..1, brightness [F] in 0..1). Frames past the audio are silent.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono [S], got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    hop = sample_rate / fps
    win = round(2 * hop)
    energy = np.zeros(num_frames)
    bright = np.zeros(num_frames)
    window = np.hanning(win)
    freqs = np.fft.rfftfreq(win, 1.0 / sample_rate)
    for f in range(num_frames):
        start = round(f * hop - win / 2 + hop / 2)
        lo, hi = max(start, 0), min(start + win, audio.size)
        if hi - lo < win // 4:
            continue
        seg = np.zeros(win)
        seg[lo - start : hi - start] = audio[lo:hi]
        energy[f] = np.sqrt(np.mean(seg**2))
        spec = np.abs(np.fft.rfft(seg * window))
        total = spec.sum()
        if total > 1e-9:
            bright[f] = float((spec * freqs).sum() / total)
    # Loudness in dB over a 30 dB range below the (robust) peak: perceptual, so quiet syllables
    # still move the mouth, and independent of the recording level. Squared to open the jaw
    # mostly on stressed syllables, as speakers do.
    db = 20 * np.log10(energy + 1e-6)
    peak = np.percentile(db, 98)
    energy01 = np.clip((db - (peak - 30.0)) / 30.0, 0.0, 1.0) ** 2
    bright01 = np.clip((bright - 500.0) / 2500.0, 0.0, 1.0) * (energy01 > 0.05)
    return energy01, bright01


def _smooth(x: np.ndarray, frames: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing over ``frames`` (sigma) along axis 0."""
    if frames <= 0:
        return x
    r = int(np.ceil(3 * frames))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / frames) ** 2)
    k /= k.sum()
    pad = np.pad(x, (r, r), mode="edge")
    return np.convolve(pad, k, mode="valid")


def procedural_motion(
    audio: np.ndarray | None,
    sample_rate: int,
    fps: float,
    num_frames: int,
    seed: int = 0,
    style: ProceduralStyle | None = None,
) -> np.ndarray:
    """Dense motion for ``num_frames`` frames: ``[F, len(CHANNELS)]`` float64.

    ``audio`` is mono [S] at ``sample_rate`` starting at frame 0, or None for idle motion
    (blinks and sway only).
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    style = style or ProceduralStyle()
    rng = np.random.default_rng(seed)
    out = np.tile(CHANNEL_DEFAULTS, (num_frames, 1))
    i = CHANNEL_INDEX

    if audio is not None:
        energy, bright = audio_envelope(audio, sample_rate, fps, num_frames)
    else:
        energy = bright = np.zeros(num_frames)

    # Mouth: jaw follows a lightly smoothed envelope (coarticulation), lips follow brightness.
    jaw = _smooth(energy, 0.8)
    out[:, i[channel_name(19, 1)]] = style.jaw_open * jaw
    out[:, i[channel_name(17, 1)]] = 0.35 * style.jaw_open * jaw  # lower lip rides the jaw
    out[:, i[channel_name(6, 1)]] = -0.08 * style.jaw_open * jaw  # upper lip lifts a little
    shape = _smooth(bright, 1.0) - 0.35 * jaw
    width = np.where(shape > 0, style.lip_wide * shape, style.lip_round * shape)
    # Mouth corners: the subject's right corner (14) sits at -x, the left (20) at +x.
    out[:, i[channel_name(14, 0)]] = -width
    out[:, i[channel_name(20, 0)]] = width

    # Blinks: a renewal process with a refractory period, each a fast close and slower open.
    t = 0.0
    duration_s = num_frames / fps
    blink = np.zeros(num_frames)
    while True:
        t += 0.8 + rng.exponential(1.0 / style.blink_rate_hz)
        if t >= duration_s:
            break
        f0 = int(t * fps)
        profile = np.array([0.5, 1.0, 0.8, 0.45, 0.15])[: style.blink_frames]
        f1 = min(f0 + profile.size, num_frames)
        blink[f0:f1] = np.maximum(blink[f0:f1], profile[: f1 - f0])
    out[:, i["eye_open_r"]] = 1.0 - blink
    out[:, i["eye_open_l"]] = 1.0 - blink
    for upper in (11, 15):
        out[:, i[channel_name(upper, 1)]] = 0.03 * blink  # upper lids come down (+y)
    for lower in (13, 16):
        out[:, i[channel_name(lower, 1)]] = -0.006 * blink

    # Head: slow sway (sum of incommensurate sines with random phases) plus nods on onsets.
    time = np.arange(num_frames) / fps
    phases = rng.uniform(0, 2 * np.pi, size=(3, 3))
    freqs = np.array([0.11, 0.23, 0.37])
    sway = np.sin(2 * np.pi * freqs[None, :, None] * time[None, None, :] + phases[:, :, None])
    sway = sway.sum(axis=1) / 2.0  # [3, F] roughly in -1..1
    onset = np.clip(np.diff(_smooth(energy, 2.0), prepend=0.0), 0.0, None)
    nod = _smooth(onset / (onset.max() + 1e-9), 3.0)
    out[:, i["pitch"]] = style.sway_deg * 0.6 * sway[0] + style.nod_deg * nod
    out[:, i["yaw"]] = style.sway_deg * sway[1]
    out[:, i["roll"]] = style.sway_deg * 0.4 * sway[2]
    out[:, i[channel_name(1, 1)]] = -style.brow_raise * nod  # brows lift (-y) with emphasis
    out[:, i[channel_name(2, 1)]] = -style.brow_raise * nod
    assert out.shape == (num_frames, len(CHANNELS))
    return out
