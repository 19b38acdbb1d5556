"""ConsistTalk's audio-to-intensity (A2I) model: a multimodal teacher and an audio-only student.

Intensity is "an aggregate representation of the overall magnitude of head pose dynamics and
facial expression movements" per frame. There is no ground truth for it, so (ConsistTalk,
"Motion Intensity Sequence Modeling"):

- The **teacher** sees audio features and two motion-velocity features, the head-motion velocity
  ``v_h`` and the facial-landmark motion ``v_f`` (:func:`intensity_targets`), each brought to the
  token width by a 1D convolution and a linear layer. Audio tokens (each frame's features over a
  0.2 s window, i.e. 5 frames at 25 fps, through linear layers) attend to the motion tokens by
  cross-attention, followed by a gated linear unit (a SwiGLU feed-forward, the "variant of the
  gated linear unit"); the output is ``y = Swish(h)`` per frame. It is trained with the intensity
  loss of eq. (1): ``alpha * sum_c L_shape(y, v_c) + (1 - alpha) * sum_c L_temporal(y, v_c)``,
  c in {h, f}, the shape and temporal terms of DILATE (Le Guen and Thome 2019: soft-DTW and the
  time-distortion index of the soft alignment path), :func:`intensity_loss`.
- The **student** sees audio only. Its cross-attention attends from the same audio tokens to
  motion tokens it predicts from audio (a 1D convolution stack), so its attention logits have the
  teacher's shape. It is distilled with ``L = L_MSE + weight * L_intensity`` (the paper uses one
  alpha for both): MSE between the cross-attention logits of the last ``l`` layers of teacher
  and student, plus the intensity loss of the student's output against the velocity features,
  :func:`distillation_loss`.

Our design choices where the paper is silent: the attention is local (frame i sees motion tokens
within ``attn_radius`` frames) with a learned relative-position bias per head, so the model
works on any length and the logits of teacher and student line up; the two velocity features
form one 2-channel token stream; velocity features are normalised by their clip mean so that
``~1 = typical`` (the intensity the studio writes into the ``intensity`` channel, which MotionDiT's
intensity hook multiplies into its audio-conditioned hidden states).

Shapes: B batch, T frames (25 fps), A audio feature width (models.audio_features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from models.motion_space import CHANNELS, MotionFrames, rotation_matrix

__all__ = [
    "NOMINAL_NOSE_TIP",
    "UPPER_FACE",
    "IntensityOutput",
    "IntensityStudent",
    "IntensityTeacher",
    "dilate_loss",
    "distillation_loss",
    "intensity_loss",
    "intensity_targets",
    "motion_intensity",
    "motion_intensity_norm",
    "motion_velocity_features",
    "soft_dtw",
]

# Nose tip of the default head's canonical keypoints (resources/heads/default.thead), used for
# the head velocity when the head's own x_c is not given.
NOMINAL_NOSE_TIP = (0.0, 0.044, -0.614)
# "The velocity of the displacement of the upper half of the facial keypoints is used as the
# expression feature" (ConsistTalk, after Loopy): forehead, brows, cheeks, nose bridge, eyelids,
# glabella. The lower face moves with speech, which the audio already explains.
UPPER_FACE = (0, 1, 2, 3, 4, 7, 11, 13, 15, 16, 18)


def _gauss_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0 or x.size < 2:
        return x
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(x, r, mode="edge"), k, mode="valid")


def _frames_and_nose_speed(
    motion: np.ndarray, x_c: np.ndarray | None
) -> tuple[MotionFrames, np.ndarray]:
    """``motion [T, C]`` checked and unpacked, and the nose tip's speed ``[T - 1]`` (pose and
    expression applied to the canonical nose tip, ``x_c[5]`` or :data:`NOMINAL_NOSE_TIP`).
    Raises ValueError on a wrong shape or non-finite values."""
    v = np.asarray(motion, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(CHANNELS) or v.shape[0] < 2:
        raise ValueError(f"motion must be [T >= 2, {len(CHANNELS)}], got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("motion contains NaN/inf")
    m = MotionFrames.from_channels(v)
    nose_c = np.asarray(NOMINAL_NOSE_TIP if x_c is None else np.asarray(x_c)[5], dtype=np.float64)
    r = rotation_matrix(m.pitch, m.yaw, m.roll)  # [T, 3, 3]
    nose = m.scale[:, None] * (nose_c @ r + m.exp[:, 5]) + m.t  # [T, 3]
    return m, np.linalg.norm(np.diff(nose, axis=0), axis=1)


def intensity_targets(
    motion: np.ndarray,
    x_c: np.ndarray | None = None,
    smooth: float = 1.0,
    normalize: bool = True,
    floor: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """Velocity features of a take, ConsistTalk's ``v_h`` and ``v_f``: ``motion [T, C]`` ->
    ``(v_h [T], v_f [T])`` float32.

    v_h: speed of the nose tip's absolute position (pose and expression applied to the canonical
    nose tip, ``x_c [21, 3]`` or :data:`NOMINAL_NOSE_TIP`) in keypoint units per frame.
    v_f: landmark motion of the upper face: the root mean square over :data:`UPPER_FACE` of the
    per-frame displacement of each keypoint's expression delta (the variance of landmark motion
    about standing still, as a speed). Frame 0 repeats frame 1's value. Both are smoothed with a
    Gaussian of ``smooth`` frames and, when ``normalize``, divided by their mean over the take
    (at least ``floor``), so 1 = this take's typical motion.
    Raises ValueError on a wrong shape or non-finite values.
    """
    m, v_h = _frames_and_nose_speed(motion, x_c)
    d_exp = np.diff(m.exp[:, list(UPPER_FACE)], axis=0)  # [T-1, K, 3]
    v_f = np.sqrt((d_exp**2).sum(axis=2).mean(axis=1))
    out = []
    for x in (v_h, v_f):
        x = _gauss_smooth(np.concatenate([x[:1], x]), smooth)
        if normalize:
            x = x / max(float(x.mean()), floor)
        out.append(x.astype(np.float32))
    return out[0], out[1]


# --- intensity of a take on an absolute scale (MotionDiT training) -------------------------------
def motion_velocity_features(
    motion: np.ndarray, x_c: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Raw (unsmoothed, unnormalised) per-frame velocities ``(v_h [T], v_e [T])`` float64:
    the nose tip's speed as in :func:`intensity_targets` (head pose dynamics) and the root mean
    square over all 21 keypoints of the per-frame change of their expression deltas (facial
    expression movement of the whole face, lips included). Frame 0 repeats frame 1.
    Raises ValueError like :func:`intensity_targets`."""
    m, v_h = _frames_and_nose_speed(motion, x_c)
    v_e = np.sqrt((np.diff(m.exp, axis=0) ** 2).sum(axis=2).mean(axis=1))
    return np.concatenate([v_h[:1], v_h]), np.concatenate([v_e[:1], v_e])


def motion_intensity_norm(
    motions: list[np.ndarray],
    x_c: np.ndarray | None = None,
    smooth: float = 5.0,
    head_weight: float = 0.5,
    cap: float = 3.0,
) -> dict:
    """Fit the normalisation of :func:`motion_intensity` on a training set (``motions``: takes
    ``[T, 90]``): ``head_mean`` / ``face_mean``, the mean smoothed head / expression velocity over
    all frames, and ``scale``, chosen so that the capped intensity averages exactly 1 over the
    set (intensity 1 = the set's typical motion). Returns the JSON-able dict MotionDiT stores
    in its config (``intensity_norm``)."""
    if not motions:
        raise ValueError("motion_intensity_norm: no takes")
    if not 0.0 <= head_weight <= 1.0 or cap <= 1.0:
        raise ValueError("motion_intensity_norm: head_weight must be in [0, 1] and cap > 1")
    feats = [motion_velocity_features(m, x_c) for m in motions]
    hs = np.concatenate([_gauss_smooth(h, smooth) for h, _ in feats])
    es = np.concatenate([_gauss_smooth(e, smooth) for _, e in feats])
    head_mean, face_mean = max(float(hs.mean()), 1e-12), max(float(es.mean()), 1e-12)
    raw = head_weight * hs / head_mean + (1.0 - head_weight) * es / face_mean
    scale = 1.0
    for _ in range(50):  # mean(min(scale * raw, cap)) = 1 (raw has mean 1, so scale >= 1)
        scale /= float(np.minimum(scale * raw, cap).mean())
    return {
        "source": "motion velocity (models.intensity.motion_intensity)",
        "smooth": float(smooth),
        "head_weight": float(head_weight),
        "head_mean": head_mean,
        "face_mean": face_mean,
        "scale": float(scale),
        "cap": float(cap),
        "null": 1.0,
    }


def motion_intensity(motion: np.ndarray, norm: dict, x_c: np.ndarray | None = None) -> np.ndarray:
    """Per-frame intensity ``[T]`` float32 of a take on the absolute scale of ``norm`` (from
    :func:`motion_intensity_norm`): ``min(scale * (w * v_h / head_mean + (1 - w) * v_e /
    face_mean), cap)`` of the Gaussian-smoothed velocities. This is what a MotionDiT trained
    with intensity saw for its target motion: 1 = the training set's typical motion, 0 = still.
    """
    h, e = motion_velocity_features(motion, x_c)
    w = float(norm["head_weight"])
    h = _gauss_smooth(h, float(norm["smooth"])) / float(norm["head_mean"])
    e = _gauss_smooth(e, float(norm["smooth"])) / float(norm["face_mean"])
    y = np.minimum(float(norm["scale"]) * (w * h + (1.0 - w) * e), float(norm["cap"]))
    return y.astype(np.float32)


# --- losses ------------------------------------------------------------------------------------
def soft_dtw(cost: Tensor, gamma: float) -> Tensor:
    """Soft-DTW value of pairwise costs ``cost [B, N, M]`` -> ``[B]`` (Cuturi and Blondel 2017),
    computed one anti-diagonal at a time (vectorised over the diagonal) so autograd, including
    the double backward of the temporal loss, works."""
    B, N, M = cost.shape
    big = 1e8  # "infinity" that keeps logsumexp's gradient finite
    dev, dt = cost.device, cost.dtype
    i = torch.arange(1, N + 1, device=dev)  # rows 1..N of the (N+1) x (M+1) table
    # diag[d][i] = r[i, d - i] for i = 0..N; r[0, 0] = 0 and the rest of the border is "inf".
    d_prev2 = torch.full((B, N + 1), big, dtype=dt, device=dev)
    d_prev2[:, 0] = 0.0  # d = 0
    d_prev = torch.full((B, N + 1), big, dtype=dt, device=dev)  # d = 1: only border cells
    for d in range(2, N + M + 1):
        j = d - i  # [N]
        valid = (j >= 1) & (j <= M)
        a = d_prev2[:, :-1]  # r[i-1, j-1]
        b = d_prev[:, :-1]  # r[i-1, j]
        c = d_prev[:, 1:]  # r[i, j-1]
        z = torch.stack([a, b, c], dim=-1) / -gamma
        softmin = -gamma * torch.logsumexp(z, dim=-1)  # [B, N]
        c_ij = cost[:, i - 1, (j - 1).clamp(0, M - 1)]  # [B, N]
        val = torch.where(valid[None], c_ij + softmin, torch.full_like(softmin, big))
        d_new = torch.cat([torch.full((B, 1), big, dtype=dt, device=dev), val], dim=1)
        d_prev2, d_prev = d_prev, d_new
    return d_prev[:, N]


def dilate_loss(
    pred: Tensor, target: Tensor, alpha: float = 0.5, gamma: float = 0.1
) -> tuple[Tensor, Tensor, Tensor]:
    """DILATE (Le Guen and Thome 2019) of ``pred, target [B, T]``: ``(loss, shape, temporal)``.

    shape = soft-DTW of the squared-difference costs (mean over the batch); temporal = the
    time-distortion index, ``sum(A * Omega) / T^2`` with A the soft alignment path (the gradient
    of soft-DTW w.r.t. the costs) and ``Omega_ij = (i - j)^2 / T^2``; loss = alpha * shape +
    (1 - alpha) * temporal."""
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"pred and target must both be [B, T], got {pred.shape}, {target.shape}")
    T = pred.shape[1]
    cost = (pred[:, :, None] - target[:, None, :]) ** 2  # [B, T, T]
    train = cost.requires_grad
    with torch.enable_grad():
        if not train:  # evaluation: the alignment path still needs d(soft-DTW)/d(cost)
            cost = cost.detach().requires_grad_(True)
        value = soft_dtw(cost, gamma)  # [B]
        (path,) = torch.autograd.grad(value.sum(), cost, create_graph=train)  # [B, T, T]
    shape = value.mean() if train else value.mean().detach()
    idx = torch.arange(T, dtype=pred.dtype, device=pred.device)
    omega = (idx[:, None] - idx[None, :]) ** 2 / T**2
    temporal = (path * omega).sum(dim=(1, 2)).mean() / T**2
    if not train:
        temporal = temporal.detach()
    return alpha * shape + (1 - alpha) * temporal, shape, temporal


def intensity_loss(
    y: Tensor, v_h: Tensor, v_f: Tensor, alpha: float = 0.5, gamma: float = 0.1
) -> Tensor:
    """ConsistTalk eq. (1): ``alpha * sum_c L_shape(y, v_c) + (1 - alpha) * sum_c L_temporal``,
    c in {h, f}; all ``[B, T]``."""
    total = y.new_zeros(())
    for v in (v_h, v_f):
        total = total + dilate_loss(y, v.to(y.dtype), alpha, gamma)[0]
    return total


@dataclass
class IntensityOutput:
    """intensity: [B, T] (Swish output); logits: per layer, cross-attention logits
    [B, heads, T, 2 * attn_radius + 1] (band layout: column r is the motion token at i + r - R)."""

    intensity: Tensor
    logits: list[Tensor]


def distillation_loss(
    student: IntensityOutput,
    teacher: IntensityOutput,
    v_h: Tensor,
    v_f: Tensor,
    last_layers: int = 1,
    weight: float = 0.5,
    alpha: float = 0.5,
    gamma: float = 0.1,
) -> tuple[Tensor, Tensor, Tensor]:
    """The student's loss ``L_MSE + weight * L_intensity``: ``(loss, mse, intensity)``.

    mse: mean squared error between the cross-attention logits of the last ``last_layers``
    layers (the teacher's are detached; band cells outside the sequence are left out)."""
    if not 1 <= last_layers <= min(len(student.logits), len(teacher.logits)):
        raise ValueError(f"last_layers must be in 1..{len(student.logits)}, got {last_layers}")
    mse = student.intensity.new_zeros(())
    for s, t in zip(student.logits[-last_layers:], teacher.logits[-last_layers:], strict=True):
        if s.shape != t.shape:
            raise ValueError(f"student/teacher logits differ in shape: {s.shape} vs {t.shape}")
        valid = torch.isfinite(t)
        mse = mse + ((s - t.detach())[valid] ** 2).mean()
    mse = mse / last_layers
    inten = intensity_loss(student.intensity, v_h, v_f, alpha, gamma)
    return mse + weight * inten, mse, inten


# --- modules -------------------------------------------------------------------------------------
class _BandCrossAttention(nn.Module):
    """Cross-attention from query tokens to memory tokens of the same length, each frame seeing
    memory frames within ``radius``, with a learned relative-position bias per head."""

    def __init__(self, dim: int, heads: int, radius: int) -> None:
        super().__init__()
        self.heads, self.radius = heads, radius
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros(heads, 2 * radius + 1))

    def forward(self, x: Tensor, mem: Tensor) -> tuple[Tensor, Tensor]:
        B, T, D = x.shape
        H, R = self.heads, self.radius
        W = 2 * R + 1
        q = self.q(x).view(B, T, H, D // H).transpose(1, 2)  # [B, H, T, d]
        k, v = self.kv(mem).chunk(2, dim=-1)
        # Band view of keys/values: for frame i the memory frames i-R..i+R (zero-padded).
        pad = lambda t: F.pad(t, (0, 0, R, R)).unfold(1, W, 1)  # noqa: E731  [B, T, D, W]
        kb = pad(k).view(B, T, H, D // H, W)  # [B, T, H, d, W]
        vb = pad(v).view(B, T, H, D // H, W)
        logits = torch.einsum("bhtd,bthdw->bhtw", q, kb) / (D // H) ** 0.5
        logits = logits + self.rel_bias[None, :, None, :]
        pos = torch.arange(T, device=x.device)[:, None] + torch.arange(-R, R + 1, device=x.device)
        outside = (pos < 0) | (pos >= T)  # [T, W]
        logits = logits.masked_fill(outside[None, None], float("-inf"))
        attn = logits.softmax(dim=-1)
        h = torch.einsum("bhtw,bthdw->bthd", attn, vb).reshape(B, T, D)
        return self.out(h), logits


class _SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, 2 * hidden)
        self.proj = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.gate(x).chunk(2, dim=-1)
        return self.proj(F.silu(a) * b)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, radius: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_m = nn.LayerNorm(dim)
        self.attn = _BandCrossAttention(dim, heads, radius)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = _SwiGLU(dim, ff_mult * dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mem: Tensor) -> tuple[Tensor, Tensor]:
        h, logits = self.attn(self.norm_q(x), self.norm_m(mem))
        x = x + self.drop(h)
        x = x + self.drop(self.ff(self.norm_ff(x)))
        return x, logits


class _A2IBase(ModelMixin, ConfigMixin):
    """Shared audio front-end, blocks and Swish head of teacher and student."""

    config_name = "config.json"

    def _build(self, audio_dim: int, audio_window: int, hidden_dim: int, num_layers: int,
               num_heads: int, attn_radius: int, ff_mult: int, dropout: float) -> None:  # fmt: skip
        for name, value in (("audio_dim", audio_dim), ("audio_window", audio_window),
                            ("hidden_dim", hidden_dim), ("num_layers", num_layers),
                            ("num_heads", num_heads), ("ff_mult", ff_mult)):  # fmt: skip
            if int(value) <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be positive, got {value}")
        if hidden_dim % num_heads or audio_window % 2 == 0 or attn_radius < 0:
            raise ValueError(
                f"{type(self).__name__}: need hidden_dim divisible by num_heads, an odd "
                f"audio_window and attn_radius >= 0; got {hidden_dim}, {num_heads}, "
                f"{audio_window}, {attn_radius}"
            )
        self.audio_proj = nn.Sequential(
            nn.Linear(audio_dim * audio_window, hidden_dim), nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
        )  # fmt: skip
        self.blocks = nn.ModuleList(
            _Block(hidden_dim, num_heads, attn_radius, ff_mult, dropout) for _ in range(num_layers)
        )
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.head = nn.Linear(hidden_dim, 1)

    def _audio_tokens(self, audio: Tensor) -> Tensor:
        cfg = self.config
        if audio.dim() != 3 or audio.shape[-1] != cfg.audio_dim or audio.shape[1] < 1:
            raise ValueError(
                f"{type(self).__name__}: audio features must be [B, T, {cfg.audio_dim}], "
                f"got {list(audio.shape)}"
            )
        w = cfg.audio_window // 2
        x = audio.to(self.head.weight.dtype)
        # Each frame sees the features of the frames around it (0.2 s at 25 fps for window 5).
        x = F.pad(x.transpose(1, 2), (w, w), mode="replicate").unfold(2, cfg.audio_window, 1)
        x = x.permute(0, 2, 3, 1).flatten(2)  # [B, T, window * A]
        return self.audio_proj(x)

    def _run(self, tokens: Tensor, mem: Tensor) -> IntensityOutput:
        logits = []
        for block in self.blocks:
            tokens, lg = block(tokens, mem)
            logits.append(lg)
        h = self.head(self.norm_out(tokens))[..., 0]
        return IntensityOutput(F.silu(h), logits)  # y = Swish(h)

    @torch.no_grad()
    def predict(self, features: np.ndarray, *extra: np.ndarray, clamp: bool = True) -> np.ndarray:
        """Intensity ``[T]`` (float32) for one clip's features ``[T, A]`` (plus, for the teacher,
        ``v_h [T]`` and ``v_f [T]``); ``clamp`` cuts Swish's small negative dip at 0."""
        dev = self.head.weight.device
        args = [torch.as_tensor(np.asarray(features, np.float32), device=dev)[None]]
        args += [torch.as_tensor(np.asarray(e, np.float32), device=dev)[None] for e in extra]
        was = self.training
        self.eval()
        y = self(*args).intensity[0].float().cpu().numpy()
        self.train(was)
        return np.maximum(y, 0.0) if clamp else y


class IntensityTeacher(_A2IBase):
    """A2I teacher: audio features ``[B, T, A]`` + velocity features ``v_h, v_f [B, T]`` ->
    :class:`IntensityOutput`.

    Config: ``audio_dim`` (80, LogMelFeatures), ``audio_window`` (5 frames = 0.2 s), ``hidden_dim``
    (128), ``num_layers`` (2), ``num_heads`` (4), ``attn_radius`` (12 frames), ``ff_mult`` (2),
    ``velocity_kernel`` (5, the 1D convolution over the velocity features), ``dropout`` (0.0).
    """

    @register_to_config
    def __init__(
        self,
        audio_dim: int = 80,
        audio_window: int = 5,
        hidden_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        attn_radius: int = 12,
        ff_mult: int = 2,
        velocity_kernel: int = 5,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self._build(audio_dim, audio_window, hidden_dim, num_layers, num_heads, attn_radius,
                    ff_mult, dropout)  # fmt: skip
        if velocity_kernel % 2 == 0:
            raise ValueError(
                f"IntensityTeacher: velocity_kernel must be odd, got {velocity_kernel}"
            )
        self.velocity_conv = nn.Conv1d(2, hidden_dim, velocity_kernel, padding=velocity_kernel // 2)
        self.velocity_proj = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))

    def forward(self, audio: Tensor, v_h: Tensor, v_f: Tensor) -> IntensityOutput:
        tokens = self._audio_tokens(audio)
        B, T = tokens.shape[:2]
        for name, v in (("v_h", v_h), ("v_f", v_f)):
            if tuple(v.shape) != (B, T):
                raise ValueError(
                    f"IntensityTeacher: {name} must be [{B}, {T}], got {list(v.shape)}"
                )
        vel = torch.stack([v_h, v_f], dim=1).to(tokens.dtype)  # [B, 2, T]
        mem = self.velocity_proj(self.velocity_conv(vel).transpose(1, 2))  # [B, T, D]
        return self._run(tokens, mem)


class IntensityStudent(_A2IBase):
    """A2I student: audio features ``[B, T, A]`` -> :class:`IntensityOutput`, distilled from
    :class:`IntensityTeacher` (same config keys; ``motion_kernel`` and ``motion_layers`` size the
    1D convolution stack that predicts motion tokens from the audio tokens). Its output is the
    per-frame intensity the studio writes into the ``intensity`` channel.
    """

    @register_to_config
    def __init__(
        self,
        audio_dim: int = 80,
        audio_window: int = 5,
        hidden_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        attn_radius: int = 12,
        ff_mult: int = 2,
        motion_kernel: int = 5,
        motion_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self._build(audio_dim, audio_window, hidden_dim, num_layers, num_heads, attn_radius,
                    ff_mult, dropout)  # fmt: skip
        if motion_kernel % 2 == 0 or motion_layers < 1:
            raise ValueError("IntensityStudent: motion_kernel must be odd and motion_layers >= 1")
        layers: list[nn.Module] = []
        for _ in range(motion_layers):
            layers += [nn.Conv1d(hidden_dim, hidden_dim, motion_kernel, padding=motion_kernel // 2),
                       nn.SiLU()]  # fmt: skip
        self.motion_conv = nn.Sequential(*layers)
        self.motion_proj = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, audio: Tensor) -> IntensityOutput:
        tokens = self._audio_tokens(audio)
        mem = self.motion_proj(self.motion_conv(tokens.transpose(1, 2)).transpose(1, 2))
        return self._run(tokens, mem)
