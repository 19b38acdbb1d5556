"""Training the motion models on paired (speech, motion) clips: MotionDiT and the A2I models.

Qt-free. Long jobs are generators yielding :class:`TrainProgress` (a cancellation point after
every optimisation step), so the studio can run them in a worker; ``train_*`` drive them to the
end.

Data: a folder written by models.speech_data.generate_dataset (``manifest.json`` plus
``clips/<id>.wav`` and ``clips/<id>.motion.npy [F, 90]`` at 25 fps). Any folder in that layout
works (the CLI converts recorded takes of ``.ths`` projects into it).

**MotionDiT** (Ditto's recipe, models/motion_dit.py, models/motion_sampling.py):

- Audio: :class:`models.audio_features.LogMelFeatures` (80-D log mel, 25 fps).
- Motion: ``pack_ditto`` of the channels, ``[F, 265]``, normalised per dimension with the
  dataset's mean and std (:class:`MotionStats`, written as ``motion_stats.json`` next to the
  weights). Dimensions that never vary (unused pose bins, translation, scale on generated data)
  get std 1, so they stay at their constant value and a reference motion that differs there
  stays finite. The diffusion runs in this normalised space: a caller normalises the reference
  motion and denormalises the result (models.pretrained.PretrainedMotionModel does both).
- Condition per frame: log mel | emotion weights (8, the clip's ``emotion_*`` channels) |
  eye_open (2, the ``eye_open_r/l`` channels: openness, 1 open, 0 closed) | eye_ball (6, the
  ``eye_ball_*`` channels) | canonical keypoints ``x_c`` (63) of the default head
  (resources/heads/default.thead). While training the condition is standardised with its
  dataset mean/std; the saved weights have that standardisation folded into ``cond_projection``
  (``W' = W / std``, ``b' = b - W' mean``), so the shipped model takes raw features.
- Windows of ``seq_len`` (80) frames at a random start; the reference motion is the frame before
  the window (frame 0 itself for a window at the start). Clips shorter than a window are padded
  by holding their last frame and silence features; padded frames carry no loss.
- Loss: x0 prediction (``prediction_type="sample"``) under the DDPM forward process of
  :func:`models.motion_sampling.make_scheduler` (1000 steps, squaredcos_cap_v2), timesteps
  uniform; Ditto's ``L_d + L_t + L_ini``: MSE of x0, of its first and second differences over
  time, and of the first frame against the reference motion, with per-dimension weights
  (Ditto's grouped weights, fixed here: :func:`motion_loss_weights`). Classifier-free dropout of
  the condition with probability ``cond_dropout``. AdamW, linear warm-up then cosine decay, an
  optional EMA of the weights (saved instead of the raw weights when enabled).
- Intensity (ConsistTalk; ``MotionTrainConfig.intensity``, on by default): each window carries
  the per-frame intensity of its TARGET motion, :func:`models.intensity.motion_intensity` (head
  and expression velocity, smoothed, capped, normalised so the training set averages 1), and
  MotionDiT's intensity hook multiplies it into the audio-conditioned hidden states (the
  cross-attention output) while training, so the model learns that intensity means motion
  magnitude. Rows whose condition is dropped (classifier-free guidance) use intensity 1 (the
  model's ``null_intensity``). The normalisation goes into the model's config
  (``intensity_norm``), so a take's intensity can be measured on the same scale.

**A2I** (ConsistTalk, models/intensity.py): the teacher is trained with the intensity loss
against the clip's velocity features (``intensity_targets``), then the student is distilled from
the frozen teacher with ``distillation_loss``. Audio features are standardised and folded into
``audio_proj`` the same way. The student is saved at the output folder's root, the teacher in
``teacher/``.

Output folder (``save_pretrained``): ``config.json``, ``diffusion_pytorch_model.safetensors``,
``motion_stats.json`` (motion only), ``training_log.json`` (settings, data summary, loss curve,
timings) and ``training_state.pt`` (raw weights, optimiser, EMA, RNG: what resuming needs; not
needed to use the model). Training is deterministic for a seed and a thread count, and a resumed
run continues the same random streams.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models.audio_features import LogMelFeatures
from models.motion_space import (
    CHANNEL_INDEX,
    CHANNELS,
    DITTO_EXP,
    DITTO_MOTION_DIM,
    DITTO_POSE_BINS,
    EMOTIONS,
    LIPS,
    pack_ditto,
)

__all__ = [
    "CONSTANT_STD",
    "LOG_FILE",
    "STATE_FILE",
    "STATS_FILE",
    "DatasetError",
    "IntensityTrainConfig",
    "MotionDataset",
    "MotionStats",
    "MotionTrainConfig",
    "TrainCancelled",
    "TrainProgress",
    "TrainingClip",
    "condition_rows",
    "default_canonical_keypoints",
    "fold_input_normalization",
    "iter_train_intensity",
    "iter_train_motion",
    "load_clips",
    "motion_loss_weights",
    "train_intensity",
    "train_motion",
]

STATS_FILE = "motion_stats.json"
LOG_FILE = "training_log.json"
STATE_FILE = "training_state.pt"
FPS = 25
SAMPLE_RATE = 16000
_EYE_OPEN = [CHANNEL_INDEX["eye_open_r"], CHANNEL_INDEX["eye_open_l"]]
_EYE_BALL = [CHANNEL_INDEX[f"eye_ball_{k}"] for k in range(6)]
_EMOTION = [CHANNEL_INDEX[f"emotion_{e}"] for e in EMOTIONS]


class DatasetError(ValueError):
    """A training data folder that cannot be used (the message names the file and problem)."""


class TrainCancelled(Exception):
    """Raised by ``train_*`` when ``cancel()`` returned True (the last checkpoint is kept)."""


# --- data ----------------------------------------------------------------------------------------
@dataclass
class TrainingClip:
    """One clip: ``features [F, A]`` float32 log mel, ``channels [F, 90]`` float64 motion
    channels, and its id."""

    id: str
    features: np.ndarray
    channels: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.channels.shape[0])


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise DatasetError(f"{path}: only 16-bit PCM WAV is supported")
            rate, ch = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except (wave.Error, EOFError) as exc:
        raise DatasetError(f"{path}: unreadable WAV ({exc})") from None
    x = pcm.astype(np.float32) / 32768.0
    return (x.reshape(-1, ch).mean(axis=1) if ch > 1 else x), rate


def load_clips(
    data_dir: str | os.PathLike[str],
    limit: int | None = None,
    features: LogMelFeatures | None = None,
) -> list[TrainingClip]:
    """Read the clips of a dataset folder (models.speech_data layout), computing log mel
    features (``features``, default ``LogMelFeatures()``) from each WAV.

    The feature and motion frame counts may differ by one (rounding); both are cut to the shorter.
    Raises DatasetError for a missing or malformed manifest, missing files, wrong channel
    layout or non-finite motion.
    """
    root = Path(data_dir)
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise DatasetError(f"{root}: no manifest.json (not a training data folder)")
    try:
        manifest = json.loads(mpath.read_text())
        entries = manifest["clips"]
        channels = manifest.get("channels", list(CHANNELS))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{mpath}: malformed manifest ({exc})") from None
    if list(channels) != list(CHANNELS):
        raise DatasetError(f"{mpath}: channel layout differs from models.motion_space.CHANNELS")
    if not entries:
        raise DatasetError(f"{mpath}: no clips")
    extractor = features or LogMelFeatures()
    out = []
    for entry in entries[:limit]:
        cid = str(entry["id"])
        wav, npy = root / "clips" / f"{cid}.wav", root / "clips" / f"{cid}.motion.npy"
        for p in (wav, npy):
            if not p.is_file():
                raise DatasetError(f"{p}: missing")
        motion = np.load(npy).astype(np.float64)
        if motion.ndim != 2 or motion.shape[1] != len(CHANNELS):
            raise DatasetError(f"{npy}: expected [F, {len(CHANNELS)}], got {motion.shape}")
        if not np.all(np.isfinite(motion)):
            raise DatasetError(f"{npy}: NaN/inf values")
        audio, rate = _read_wav(wav)
        feats = extractor(audio, rate)
        n = min(feats.shape[0], motion.shape[0])
        if n < 2:
            raise DatasetError(f"{cid}: shorter than two frames")
        out.append(TrainingClip(cid, feats[:n], motion[:n]))
    return out


def default_canonical_keypoints() -> np.ndarray:
    """Canonical keypoints ``x_c [21, 3]`` of the built-in default head (the identity the
    generated data is animated on)."""
    from models.heads.asset import load_builtin_head

    return np.asarray(load_builtin_head("default").keypoints, dtype=np.float64)


def condition_rows(features: np.ndarray, channels: np.ndarray, x_c: np.ndarray) -> np.ndarray:
    """Per-frame condition ``[F, A + 79]`` float32: features | emotion (8) | eye_open (2) |
    eye_ball (6) | x_c (63), the non-audio parts read from motion ``channels [F, 90]``."""
    n = features.shape[0]
    xc = np.broadcast_to(np.asarray(x_c, dtype=np.float64).reshape(1, 63), (n, 63))
    ch = np.asarray(channels, dtype=np.float64)
    parts = [features, ch[:, _EMOTION], ch[:, _EYE_OPEN], ch[:, _EYE_BALL], xc]
    return np.concatenate(parts, axis=1).astype(np.float32)


# std given to packed dims that never vary in the training data (unused pose bins; translation,
# scale and many expression dims on generated data). Their data are exactly the mean, so the
# value does not change training; it scales the model's (small, noisy) output there to nothing,
# so they come out constant instead of jittering.
CONSTANT_STD = 1e-4


@dataclass
class MotionStats:
    """Normalisation of the motion model: ``mean, std [265]`` of the packed motion (the model's
    space is ``(pack_ditto(channels) - mean) / std``), ``constant [265]`` bool, the dims that
    never varied in training (std :data:`CONSTANT_STD`), and the canonical keypoints
    ``x_c [63]`` the model was trained with."""

    mean: np.ndarray
    std: np.ndarray
    x_c: np.ndarray
    audio_features: dict = field(default_factory=lambda: {"type": "LogMelFeatures", "n_mels": 80})
    constant: np.ndarray | None = None  # None: no constant dims

    def __post_init__(self) -> None:
        if self.constant is None:
            self.constant = np.zeros(np.shape(self.mean)[0], dtype=bool)
        self.constant = np.asarray(self.constant, dtype=bool)

    def normalize(self, packed: np.ndarray) -> np.ndarray:
        return (np.asarray(packed, dtype=np.float64) - self.mean) / self.std

    def denormalize(self, normed: np.ndarray) -> np.ndarray:
        return np.asarray(normed, dtype=np.float64) * self.std + self.mean

    def to_json(self) -> dict:
        return {
            "version": 1,
            "space": "(pack_ditto(channels) - mean) / std",
            "condition": (
                "audio features | emotion weights [8] (EMOTIONS order) | eye_open [2] (openness "
                "channels eye_open_r/l: 1 open, 0 closed) | eye_ball [6] (channels eye_ball_0..5) "
                "| canonical keypoints x_c [63]"
            ),
            "audio_features": self.audio_features,
            "fps": FPS,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "constant_dims": [int(i) for i in np.flatnonzero(self.constant)],
            "x_c": [float(v) for v in np.asarray(self.x_c).reshape(-1)],
        }

    @classmethod
    def from_json(cls, d: dict) -> MotionStats:
        """Raises ValueError when malformed."""
        try:
            mean, std = np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64)
            x_c = np.asarray(d["x_c"], np.float64)
            constant = np.zeros(DITTO_MOTION_DIM, dtype=bool)
            if "constant_dims" in d:
                constant[np.asarray(d["constant_dims"], dtype=np.int64)] = True
            else:  # first format: constant dims had std exactly 1
                constant = std == 1.0
                std = np.where(constant, CONSTANT_STD, std)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"malformed motion stats ({exc})") from None
        shape = (DITTO_MOTION_DIM,)
        if mean.shape != shape or std.shape != shape or x_c.shape != (63,) or np.any(std <= 0):
            raise ValueError("motion stats need mean/std [265] (std > 0) and x_c [63]")
        return cls(mean, std, x_c, d.get("audio_features", {}), constant)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder) / STATS_FILE
        _write_json(path, self.to_json())
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> MotionStats:
        """Raises FileNotFoundError when the folder has no stats, ValueError when malformed."""
        path = Path(folder) / STATS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (the motion model's normalisation)")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def from_clips(
        cls, clips: list[TrainingClip], x_c: np.ndarray, tol: float = 1e-6
    ) -> MotionStats:
        """Per-dimension mean/std of the packed motion over all frames; dimensions whose std is
        below ``tol`` are constant (std :data:`CONSTANT_STD`)."""
        packed = np.concatenate([pack_ditto(c.channels) for c in clips])
        mean, std = packed.mean(axis=0), packed.std(axis=0)
        constant = std < tol
        std = np.where(constant, CONSTANT_STD, std)
        return cls(mean, std, np.asarray(x_c, np.float64).reshape(63), constant=constant)


def motion_loss_weights(stats: MotionStats, lips: float = 2.0) -> np.ndarray:
    """Per-dimension loss weights ``[265]`` (Ditto's grouped weighting, fixed): the pose bins
    (198 dims, most of them constant) together weigh as much as 30 expression dims, expression
    dims of the lip keypoints weigh ``lips``, dims that never vary in the data weigh 0.1 (they
    must still come out constant). Mean weight over the dims is 1."""
    w = np.ones(DITTO_MOTION_DIM)
    varying = ~stats.constant
    pose = np.zeros(DITTO_MOTION_DIM, dtype=bool)
    pose[DITTO_POSE_BINS] = True
    n_pose = max(1, int((pose & varying).sum()))
    w[pose] = 30.0 / n_pose
    exp = w[DITTO_EXP]  # a view: [63], keypoint k at 3k..3k+2
    for k in LIPS:
        exp[3 * k : 3 * k + 3] = lips
    w[~varying] = 0.1
    return w / w.mean()


class MotionDataset:
    """Clips in the model's normalised space, sampled as windows.

    ``sample(batch, generator)`` -> dict of tensors: ``x0 [B, L, 265]``, ``ref [B, 265]``,
    ``cond [B, L, C]`` (standardised), ``mask [B, L]`` (1 = real frame, 0 = padding) and, with
    ``intensity_norm`` (see models.intensity.motion_intensity_norm), ``intensity [B, L]``: the
    per-frame intensity of the target motion (padding holds the last frame's).
    """

    def __init__(
        self,
        clips: list[TrainingClip],
        stats: MotionStats,
        cond_mean: np.ndarray,
        cond_std: np.ndarray,
        seq_len: int = 80,
        intensity_norm: dict | None = None,
    ) -> None:
        if not clips:
            raise DatasetError("no clips to train on")
        self.seq_len = seq_len
        self.stats = stats
        self.cond_mean, self.cond_std = cond_mean, cond_std
        self.x0: list[np.ndarray] = []
        self.cond: list[np.ndarray] = []
        x_c = stats.x_c.reshape(21, 3)
        for c in clips:
            self.x0.append(stats.normalize(pack_ditto(c.channels)).astype(np.float32))
            rows = condition_rows(c.features, c.channels, x_c)
            self.cond.append(((rows - cond_mean) / cond_std).astype(np.float32))
        self.lengths = np.array([x.shape[0] for x in self.x0])
        self.intensity: list[np.ndarray] | None = None
        if intensity_norm is not None:
            from models.intensity import motion_intensity

            self.intensity = [motion_intensity(c.channels, intensity_norm, x_c) for c in clips]
        a = clips[0].features.shape[1]
        self.silence = ((_silence_row(a)[0] - cond_mean[:a]) / cond_std[:a]).astype(np.float32)

    @staticmethod
    def condition_stats(clips: list[TrainingClip], x_c: np.ndarray) -> tuple[np.ndarray, ...]:
        """Mean and std ``[C]`` of the condition rows (std 1 where constant)."""
        rows = np.concatenate([condition_rows(c.features, c.channels, x_c) for c in clips])
        mean, std = rows.mean(axis=0).astype(np.float64), rows.std(axis=0).astype(np.float64)
        std = np.where(std < 1e-6, 1.0, std)
        return mean, std

    def __len__(self) -> int:
        return len(self.x0)

    def window(self, clip: int, start: int) -> tuple[np.ndarray, ...]:
        """Window of ``clip`` from ``start``: ``(x0 [L, M], ref [M], cond [L, C], mask [L])``."""
        L = self.seq_len
        x, c = self.x0[clip], self.cond[clip]
        n = x.shape[0]
        idx = np.arange(start, start + L)
        valid = idx < n
        idx = np.minimum(idx, n - 1)
        xw, cw = x[idx], c[idx].copy()
        # Padding: the last motion frame held, audio silent (conditions held).
        cw[~valid, : self.silence.size] = self.silence
        ref = x[max(start - 1, 0)]
        return xw, ref, cw, valid.astype(np.float32)

    def intensity_window(self, clip: int, start: int) -> np.ndarray:
        """Target intensity ``[L]`` of the window (ones without ``intensity_norm``)."""
        if self.intensity is None:
            return np.ones(self.seq_len, dtype=np.float32)
        y = self.intensity[clip]
        return y[np.minimum(np.arange(start, start + self.seq_len), y.shape[0] - 1)]

    def _batch(self, picks: list[tuple[int, int]]) -> dict[str, Tensor]:
        parts = [self.window(k, s) for k, s in picks]
        x0, ref, cond, mask = (torch.from_numpy(np.stack(p)) for p in zip(*parts, strict=True))
        out = {"x0": x0, "ref": ref, "cond": cond, "mask": mask}
        if self.intensity is not None:
            out["intensity"] = torch.from_numpy(
                np.stack([self.intensity_window(k, s) for k, s in picks])
            )
        return out

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, Tensor]:
        """A random batch: clips uniform, starts uniform over the positions a window fits."""
        clips = torch.randint(len(self.x0), (batch,), generator=generator).numpy()
        u = torch.rand(batch, generator=generator, dtype=torch.float64).numpy()
        picks = []
        for k, uk in zip(clips, u, strict=True):
            span = max(0, int(self.lengths[k]) - self.seq_len)
            picks.append((int(k), int(uk * (span + 1))))
        return self._batch(picks)

    def fixed_windows(self, max_windows: int = 64) -> dict[str, Tensor]:
        """Deterministic windows (start of each clip) for validation losses."""
        return self._batch([(k, 0) for k in range(min(len(self.x0), max_windows))])


def _silence_row(n_mels: int) -> np.ndarray:
    """Log mel of silence (all frames of silent audio are the same)."""
    return LogMelFeatures(n_mels=n_mels)(np.zeros(640, dtype=np.float32), SAMPLE_RATE)[:1]


def fold_input_normalization(linear: nn.Linear, mean: np.ndarray, std: np.ndarray) -> None:
    """Fold ``x -> (x - mean) / std`` into ``linear`` in place, so it takes raw inputs:
    ``W' = W / std``, ``b' = b - W' @ mean``. ``mean, std [in_features]``."""
    with torch.no_grad():
        m = torch.as_tensor(np.asarray(mean), dtype=linear.weight.dtype)
        s = torch.as_tensor(np.asarray(std), dtype=linear.weight.dtype)
        linear.weight.div_(s[None, :])
        linear.bias.sub_(linear.weight @ m)


# --- progress ------------------------------------------------------------------------------------
@dataclass
class TrainProgress:
    """One optimisation step (or a phase event): ``step`` of ``total`` in ``phase`` ("motion",
    "teacher", "student", "data"), the step's losses, the learning rate, seconds since the run
    (re)started, and a message on checkpoints and at the end (``done`` True on the last event,
    with ``out_dir``)."""

    phase: str
    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    elapsed_s: float = 0.0
    message: str = ""
    done: bool = False
    out_dir: Path | None = None

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.total)


def _lr_at(step: int, total: int, base: float, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``base`` to ``floor * base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


class _EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_state(path: Path) -> dict:
    # weights_only: tensors, numbers, strings and containers only (no pickled code).
    return torch.load(path, map_location="cpu", weights_only=True)


def _check_settings(
    cfg: object,
    positive: tuple[str, ...],
    non_negative: tuple[str, ...] = (),
    fraction: tuple[str, ...] = (),
) -> None:
    """Raise ValueError (one line naming the setting) unless every named number is finite and
    ``> 0`` (positive), ``>= 0`` (non_negative) or in ``[0, 1)`` (fraction)."""
    name = type(cfg).__name__
    for group, ok, what in (
        (positive, lambda v: v > 0, "> 0"),
        (non_negative, lambda v: v >= 0, ">= 0"),
        (fraction, lambda v: 0 <= v < 1, "in [0, 1)"),
    ):
        for key in group:
            v = getattr(cfg, key)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"{name}.{key} must be a number, got {v!r}")
            if not math.isfinite(v) or not ok(v):
                raise ValueError(f"{name}.{key} must be finite and {what}, got {v!r}")


# --- MotionDiT -----------------------------------------------------------------------------------
@dataclass
class MotionTrainConfig:
    """Settings of a MotionDiT training run (model sizes go into the model's config)."""

    steps: int = 2000
    batch: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 100
    seed: int = 0
    ema_decay: float = 0.0  # 0 = no EMA
    cond_dropout: float = 0.1
    velocity_weight: float = 1.0
    init_weight: float = 0.1
    lips_weight: float = 2.0
    save_every: int = 500
    log_every: int = 25
    num_threads: int = 2
    val_fraction: float = 0.05
    # model sizes
    seq_len: int = 80
    latent_dim: int = 128
    ff_dim: int = 256
    num_layers: int = 3
    num_heads: int = 4
    num_encoder_layers: int = 1
    dropout: float = 0.1
    # intensity (ConsistTalk): train with the target motion's per-frame intensity through the
    # intensity hook (models.intensity.motion_intensity: Gaussian smoothing in frames, weight of
    # the head velocity against the expression velocity, cap after normalising to mean 1)
    intensity: bool = True
    intensity_smooth: float = 5.0
    intensity_head_weight: float = 0.5
    intensity_cap: float = 3.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (one line) for a count, size or rate that is not finite and > 0, a
        weight below 0, or a probability outside [0, 1)."""
        _check_settings(
            self,
            positive=("steps", "batch", "lr", "save_every", "log_every", "num_threads",
                      "seq_len", "latent_dim", "ff_dim", "num_layers", "num_heads"),
            non_negative=("weight_decay", "warmup", "velocity_weight", "init_weight",
                          "lips_weight", "num_encoder_layers", "intensity_smooth"),
            fraction=("ema_decay", "cond_dropout", "val_fraction", "dropout"),
        )  # fmt: skip
        if not isinstance(self.intensity, bool):
            raise ValueError(f"MotionTrainConfig.intensity must be a bool, got {self.intensity!r}")
        if not 0.0 <= self.intensity_head_weight <= 1.0:
            raise ValueError(
                "MotionTrainConfig.intensity_head_weight must be in [0, 1], got "
                f"{self.intensity_head_weight!r}"
            )
        if not (math.isfinite(self.intensity_cap) and self.intensity_cap > 1.0):
            raise ValueError(
                "MotionTrainConfig.intensity_cap must be finite and > 1, got "
                f"{self.intensity_cap!r}"
            )

    def model_config(self, audio_dim: int) -> dict:
        return dict(
            seq_len=self.seq_len, motion_dim=DITTO_MOTION_DIM, audio_dim=audio_dim,
            latent_dim=self.latent_dim, ff_dim=self.ff_dim, num_layers=self.num_layers,
            num_heads=self.num_heads, num_encoder_layers=self.num_encoder_layers,
            dropout=self.dropout, cond_dropout=self.cond_dropout,
        )  # fmt: skip


def _split(clips: list[TrainingClip], fraction: float) -> tuple[list, list]:
    """Last ``fraction`` of the clips (at least 1 when there are >= 4) for validation."""
    n_val = round(len(clips) * fraction) if len(clips) >= 4 else 0
    n_val = max(n_val, 1) if fraction > 0 and len(clips) >= 4 else n_val
    return clips[: len(clips) - n_val], clips[len(clips) - n_val :]


def _motion_losses(
    model, batch: dict[str, Tensor], alphas: Tensor, weights: Tensor, cfg: MotionTrainConfig,
    gen: torch.Generator, keep: Tensor | bool | None = None, t: Tensor | None = None,
) -> dict[str, Tensor]:  # fmt: skip
    x0, ref, cond, mask = batch["x0"], batch["ref"], batch["cond"], batch["mask"]
    B = x0.shape[0]
    if t is None:
        t = torch.randint(0, alphas.numel(), (B,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    if keep is None:
        keep = torch.rand(B, generator=gen) >= cfg.cond_dropout
    a = alphas[t][:, None, None]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    pred = model(xt, t, ref, cond, keep_cond=keep, intensity=batch.get("intensity"))
    w = weights[None, None, :]
    m = mask[..., None]
    denom = m.sum().clamp_min(1.0)
    l_d = ((pred - x0) ** 2 * w * m).sum() / denom / x0.shape[-1]
    mv = m[:, 1:] * m[:, :-1]
    dv = (pred.diff(dim=1) - x0.diff(dim=1)) ** 2 * w * mv
    l_v = dv.sum() / mv.sum().clamp_min(1.0) / x0.shape[-1]
    ma = mv[:, 1:] * mv[:, :-1]
    da = (pred.diff(n=2, dim=1) - x0.diff(n=2, dim=1)) ** 2 * w * ma
    l_a = da.sum() / ma.sum().clamp_min(1.0) / x0.shape[-1]
    l_ini = ((pred[:, 0] - ref) ** 2 * weights[None]).mean()
    total = l_d + cfg.velocity_weight * (l_v + l_a) + cfg.init_weight * l_ini
    return {"loss": total, "x0": l_d, "vel": l_v, "acc": l_a, "init": l_ini}


def iter_train_motion(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: MotionTrainConfig | None = None,
    *,
    resume: bool = True,
    max_clips: int | None = None,
) -> Iterator[TrainProgress]:
    """Train a MotionDiT on a data folder, checkpointing into ``out_dir``; yields progress after
    every step. With ``resume`` and a ``training_state.pt`` in ``out_dir`` (same model config),
    continues from it up to ``config.steps`` (the data statistics of the first run are kept).

    Raises ValueError for invalid settings (before ``out_dir`` is created) or when a resumed
    state's model config differs; DatasetError for bad data.
    """
    from models.motion_dit import MotionDiT
    from models.motion_sampling import make_scheduler

    cfg = config or MotionTrainConfig()
    cfg.validate()  # before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, int(cfg.num_threads)))
    t_start = time.perf_counter()
    yield TrainProgress("data", 0, 1, message=f"loading clips from {data_dir}")
    clips = load_clips(data_dir, limit=max_clips)
    train_clips, val_clips = _split(clips, cfg.val_fraction)
    audio_dim = clips[0].features.shape[1]
    state_path = out / STATE_FILE
    state = _load_state(state_path) if resume and state_path.is_file() else None
    intensity_norm = None
    if state is not None:
        stats = MotionStats.from_json(state["stats"])
        cond_mean, cond_std = state["cond_mean"].numpy(), state["cond_std"].numpy()
        if cfg.intensity:
            intensity_norm = state["model_config"].get("intensity_norm")
    else:
        x_c = default_canonical_keypoints()
        stats = MotionStats.from_clips(train_clips, x_c)
        cond_mean, cond_std = MotionDataset.condition_stats(train_clips, x_c)
    if cfg.intensity and intensity_norm is None:
        from models.intensity import motion_intensity_norm

        intensity_norm = motion_intensity_norm(
            [c.channels for c in train_clips], stats.x_c.reshape(21, 3), cfg.intensity_smooth,
            cfg.intensity_head_weight, cfg.intensity_cap,
        )  # fmt: skip
    data = MotionDataset(train_clips, stats, cond_mean, cond_std, cfg.seq_len, intensity_norm)
    val = (
        MotionDataset(val_clips, stats, cond_mean, cond_std, cfg.seq_len, intensity_norm)
        if val_clips
        else None
    )
    yield TrainProgress(
        "data", 1, 1, elapsed_s=time.perf_counter() - t_start,
        message=f"{len(train_clips)} training clips, {len(val_clips)} validation clips, "
        f"{int(data.lengths.sum())} frames",
    )  # fmt: skip

    torch.manual_seed(cfg.seed)
    model_cfg = cfg.model_config(audio_dim)
    if intensity_norm is not None:
        model_cfg.update(intensity_norm=intensity_norm, null_intensity=1.0)
    model = MotionDiT(**model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    ema = _EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    step = 0
    log: list[dict] = []
    train_seconds = 0.0
    if state is not None:
        if state["model_config"] != model_cfg:
            raise ValueError(
                f"{state_path}: saved model config {state['model_config']} differs from "
                f"{model_cfg}; use another output folder or the same sizes"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if ema is not None and state.get("ema") is not None:
            ema.shadow = state["ema"]
        step, log, train_seconds = int(state["step"]), list(state["log"]), state["train_seconds"]

    alphas = make_scheduler("ddim").alphas_cumprod.float()
    weights = torch.from_numpy(motion_loss_weights(stats, cfg.lips_weight)).float()
    n_params = sum(p.numel() for p in model.parameters())

    def checkpoint(final: bool) -> dict:
        val_losses = _validate_motion(model, ema, val, alphas, weights, cfg) if val else {}
        export = MotionDiT(**model_cfg)
        export.load_state_dict(ema.shadow if ema is not None else model.state_dict())
        fold_input_normalization(export.cond_projection, cond_mean, cond_std)
        export.save_pretrained(out, safe_serialization=True)
        stats.save(out)
        _save_state(state_path, {
            "model_config": model_cfg, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(), "ema": None if ema is None else ema.shadow,
            "step": step, "log": log, "train_seconds": train_seconds,
            "stats": stats.to_json(), "cond_mean": torch.from_numpy(cond_mean),
            "cond_std": torch.from_numpy(cond_std),
        })  # fmt: skip
        recent = [r for r in log[-max(1, 200 // max(1, cfg.log_every)) :] if "loss" in r]
        _write_json(out / LOG_FILE, {
            "kind": "motion", "data_dir": str(data_dir), "train_config": asdict(cfg),
            "model_config": model_cfg, "parameters": n_params,
            "data": {"train_clips": len(train_clips), "val_clips": len(val_clips),
                     "train_frames": int(data.lengths.sum()),
                     "train_seconds_of_audio": float(data.lengths.sum() / FPS)},
            "step": step, "finished": final, "train_seconds": train_seconds,
            "final_losses": {k: float(np.mean([r[k] for r in recent])) for k in
                             ("loss", "x0", "vel", "acc", "init")} if recent else {},
            "val_losses": val_losses, "torch_threads": torch.get_num_threads(), "log": log,
        })  # fmt: skip
        return val_losses

    model.train()
    run_start = time.perf_counter()
    acc: dict[str, list[float]] = {}
    ran = step < cfg.steps
    while step < cfg.steps:
        t0 = time.perf_counter()
        lr = _lr_at(step, cfg.steps, cfg.lr, cfg.warmup)
        _set_lr(opt, lr)
        batch = data.sample(cfg.batch, gen)
        losses = _motion_losses(model, batch, alphas, weights, cfg, gen)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            ema.update(model, step)
        step += 1
        train_seconds += time.perf_counter() - t0
        vals = {k: float(v.detach()) for k, v in losses.items()}
        for k, v in vals.items():
            acc.setdefault(k, []).append(v)
        if step % cfg.log_every == 0 or step == cfg.steps:
            log.append({"step": step, "lr": lr, "time_s": round(train_seconds, 2),
                        **{k: float(np.mean(v)) for k, v in acc.items()}})  # fmt: skip
            acc = {}
        msg = ""
        final = step == cfg.steps
        if step % cfg.save_every == 0 or final:
            val_losses = checkpoint(final)
            msg = f"checkpoint at step {step}" + (f", val {val_losses}" if val_losses else "")
        yield TrainProgress(
            "motion", step, cfg.steps, vals, lr, time.perf_counter() - run_start, msg,
            done=final, out_dir=out if final else None,
        )  # fmt: skip
    if not ran:  # resumed a finished run: nothing to train, report it done
        if not (out / "config.json").is_file():
            checkpoint(True)
        yield TrainProgress("motion", step, cfg.steps, done=True, out_dir=out,
                            message="already trained")  # fmt: skip


@torch.no_grad()
def _validate_motion(model, ema, val: MotionDataset, alphas, weights, cfg) -> dict[str, float]:
    """x0 loss on fixed validation windows at fixed timesteps (100, 500, 900), conditioned."""
    net = model
    if ema is not None:
        net = copy.deepcopy(model)
        net.load_state_dict(ema.shadow)
    was = net.training
    net.eval()
    batch = val.fixed_windows()
    gen = torch.Generator().manual_seed(1234)
    out = {}
    for tv in (100, 500, 900):
        t = torch.full((batch["x0"].shape[0],), tv, dtype=torch.long)
        losses = _motion_losses(net, batch, alphas, weights, cfg, gen, keep=True, t=t)
        out[f"x0_t{tv}"] = round(float(losses["x0"]), 5)
    net.train(was)
    return out


def train_motion(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: MotionTrainConfig | None = None,
    *,
    callback: Callable[[TrainProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    resume: bool = True,
    max_clips: int | None = None,
) -> Path:
    """Run :func:`iter_train_motion` to the end; returns ``out_dir``. ``cancel()`` is checked
    after every step (TrainCancelled; the last checkpoint stays and a later call resumes)."""
    return _drive(iter_train_motion(data_dir, out_dir, config, resume=resume,
                                    max_clips=max_clips), out_dir, callback, cancel)  # fmt: skip


def _drive(it: Iterator[TrainProgress], out_dir, callback, cancel) -> Path:
    for p in it:
        if callback is not None:
            callback(p)
        if p.done:
            return Path(out_dir)
        if cancel is not None and cancel():
            it.close()
            raise TrainCancelled("training cancelled")
    return Path(out_dir)


# --- A2I: teacher, then distilled student --------------------------------------------------------
@dataclass
class IntensityTrainConfig:
    """Settings of an A2I run: ``teacher_steps`` then ``student_steps`` on windows of
    ``seq_len`` frames."""

    teacher_steps: int = 300
    student_steps: int = 300
    batch: int = 16
    seq_len: int = 48  # frames; clips shorter than this are skipped
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 30
    seed: int = 0
    alpha: float = 0.5
    gamma: float = 0.1
    distill_weight: float = 0.5
    last_layers: int = 1
    log_every: int = 25
    save_every: int = 200
    num_threads: int = 2
    # model sizes (teacher and student alike)
    hidden_dim: int = 64
    num_layers: int = 2
    num_heads: int = 4
    attn_radius: int = 12
    ff_mult: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (one line) for a count, size or rate that is not finite and > 0, or
        a weight below 0 or not finite."""
        _check_settings(
            self,
            positive=("teacher_steps", "student_steps", "batch", "seq_len", "lr", "log_every",
                      "save_every", "num_threads", "hidden_dim", "num_layers", "num_heads",
                      "attn_radius", "ff_mult", "last_layers"),
            non_negative=("weight_decay", "warmup", "alpha", "gamma", "distill_weight"),
        )  # fmt: skip


class _IntensityData:
    def __init__(self, clips: list[TrainingClip], mean: np.ndarray, std: np.ndarray, L: int):
        from models.intensity import intensity_targets

        self.L = L
        self.feats, self.vh, self.vf = [], [], []
        for c in clips:
            if c.num_frames < L:
                continue
            vh, vf = intensity_targets(c.channels)
            self.feats.append(((c.features - mean) / std).astype(np.float32))
            self.vh.append(vh)
            self.vf.append(vf)
        if not self.feats:
            raise DatasetError(f"no clip has {L} frames or more (the A2I training window)")

    def sample(self, batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        ks = torch.randint(len(self.feats), (batch,), generator=gen).numpy()
        us = torch.rand(batch, generator=gen, dtype=torch.float64).numpy()
        a, h, f = [], [], []
        for k, u in zip(ks, us, strict=True):
            s = int(u * (self.feats[k].shape[0] - self.L + 1))
            a.append(self.feats[k][s : s + self.L])
            h.append(self.vh[k][s : s + self.L])
            f.append(self.vf[k][s : s + self.L])
        return tuple(torch.from_numpy(np.stack(x)) for x in (a, h, f))


def iter_train_intensity(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: IntensityTrainConfig | None = None,
    *,
    resume: bool = True,
    max_clips: int | None = None,
) -> Iterator[TrainProgress]:
    """Train the A2I teacher (intensity loss), then distil the student from it; the student is
    saved at ``out_dir``, the teacher in ``out_dir/teacher``. Resumable like
    :func:`iter_train_motion`. Raises ValueError for invalid settings (before ``out_dir`` is
    created), DatasetError for bad data or clips all shorter than ``seq_len``."""
    from models.intensity import (
        IntensityStudent,
        IntensityTeacher,
        distillation_loss,
        intensity_loss,
    )

    cfg = config or IntensityTrainConfig()
    cfg.validate()  # before anything is written
    out = Path(out_dir)
    (out / "teacher").mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, int(cfg.num_threads)))
    yield TrainProgress("data", 0, 1, message=f"loading clips from {data_dir}")
    clips = load_clips(data_dir, limit=max_clips)
    state_path = out / STATE_FILE
    state = _load_state(state_path) if resume and state_path.is_file() else None
    if state is not None:
        mean, std = state["audio_mean"].numpy(), state["audio_std"].numpy()
    else:
        feats = np.concatenate([c.features for c in clips])
        mean, std = feats.mean(axis=0).astype(np.float64), feats.std(axis=0).astype(np.float64)
        std = np.where(std < 1e-6, 1.0, std)
    data = _IntensityData(clips, mean, std, cfg.seq_len)
    sizes = dict(
        audio_dim=clips[0].features.shape[1], hidden_dim=cfg.hidden_dim,
        num_layers=cfg.num_layers, num_heads=cfg.num_heads, attn_radius=cfg.attn_radius,
        ff_mult=cfg.ff_mult,
    )  # fmt: skip
    torch.manual_seed(cfg.seed)
    teacher, student = IntensityTeacher(**sizes), IntensityStudent(**sizes)
    opt_t = torch.optim.AdamW(teacher.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_s = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, log, seconds = 0, [], 0.0
    if state is not None:
        if state["sizes"] != sizes:
            raise ValueError(f"{state_path}: saved sizes {state['sizes']} differ from {sizes}")
        teacher.load_state_dict(state["teacher"])
        student.load_state_dict(state["student"])
        opt_t.load_state_dict(state["opt_teacher"])
        opt_s.load_state_dict(state["opt_student"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step, log, seconds = int(state["step"]), list(state["log"]), state["train_seconds"]
    total = cfg.teacher_steps + cfg.student_steps

    def checkpoint(final: bool) -> None:
        for net, folder in ((teacher, out / "teacher"), (student, out)):
            export = type(net)(**sizes)
            export.load_state_dict(net.state_dict())
            w = np.tile(mean, export.config.audio_window)
            s = np.tile(std, export.config.audio_window)
            fold_input_normalization(export.audio_proj[0], w, s)
            export.save_pretrained(folder, safe_serialization=True)
        _save_state(state_path, {
            "sizes": sizes, "teacher": teacher.state_dict(), "student": student.state_dict(),
            "opt_teacher": opt_t.state_dict(), "opt_student": opt_s.state_dict(),
            "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "step": step,
            "log": log, "train_seconds": seconds, "audio_mean": torch.from_numpy(mean),
            "audio_std": torch.from_numpy(std),
        })  # fmt: skip
        last = {}
        for phase in ("teacher", "student"):
            rows = [r for r in log if r["phase"] == phase][-4:]
            if rows:
                last[phase] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]
                               if k not in ("phase", "step", "lr", "time_s")}  # fmt: skip
        _write_json(out / LOG_FILE, {
            "kind": "intensity", "data_dir": str(data_dir), "train_config": asdict(cfg),
            "sizes": sizes, "clips": len(data.feats), "step": step, "finished": final,
            "train_seconds": seconds, "final_losses": last, "log": log,
            "parameters": {"teacher": sum(p.numel() for p in teacher.parameters()),
                           "student": sum(p.numel() for p in student.parameters())},
        })  # fmt: skip

    run_start = time.perf_counter()
    acc: dict[str, list[float]] = {}
    teacher.train()
    student.train()
    ran = step < total
    while step < total:
        t0 = time.perf_counter()
        audio, v_h, v_f = data.sample(cfg.batch, gen)
        if step < cfg.teacher_steps:
            phase, k, n, opt = "teacher", step, cfg.teacher_steps, opt_t
            y = teacher(audio, v_h, v_f).intensity
            loss = intensity_loss(y, v_h, v_f, cfg.alpha, cfg.gamma)
            losses = {"loss": loss, "intensity": loss}
            params = teacher.parameters()
        else:
            phase, k, n, opt = "student", step - cfg.teacher_steps, cfg.student_steps, opt_s
            teacher.eval()
            with torch.no_grad():
                t_out = teacher(audio, v_h, v_f)
            s_out = student(audio)
            loss, mse, inten = distillation_loss(
                s_out, t_out, v_h, v_f, cfg.last_layers, cfg.distill_weight, cfg.alpha, cfg.gamma
            )
            losses = {"loss": loss, "logit_mse": mse, "intensity": inten}
            params = student.parameters()
        lr = _lr_at(k, n, cfg.lr, cfg.warmup)
        _set_lr(opt, lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        seconds += time.perf_counter() - t0
        vals = {key: float(v.detach()) for key, v in losses.items()}
        for key, v in vals.items():
            acc.setdefault(key, []).append(v)
        phase_end = step in (cfg.teacher_steps, total)
        if step % cfg.log_every == 0 or phase_end:
            log.append({"phase": phase, "step": step, "lr": lr, "time_s": round(seconds, 2),
                        **{key: float(np.mean(v)) for key, v in acc.items()}})  # fmt: skip
            acc = {}
        final = step == total
        msg = ""
        if step % cfg.save_every == 0 or phase_end:
            checkpoint(final)
            msg = f"checkpoint at step {step}"
        yield TrainProgress(phase, k + 1, n, vals, lr, time.perf_counter() - run_start, msg,
                            done=final, out_dir=out if final else None)  # fmt: skip
    if not ran:
        if not (out / "config.json").is_file():
            checkpoint(True)
        yield TrainProgress("student", total, total, done=True, out_dir=out,
                            message="already trained")  # fmt: skip


def train_intensity(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: IntensityTrainConfig | None = None,
    *,
    callback: Callable[[TrainProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    resume: bool = True,
    max_clips: int | None = None,
) -> Path:
    """Run :func:`iter_train_intensity` to the end; returns ``out_dir``."""
    return _drive(iter_train_intensity(data_dir, out_dir, config, resume=resume,
                                       max_clips=max_clips), out_dir, callback, cancel)  # fmt: skip
