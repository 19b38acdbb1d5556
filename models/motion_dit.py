"""MotionDiT: the audio-to-motion diffusion transformer of Ditto (its "LMDM"), diffusers style.

The network follows Ditto's public ``MotionDecoder`` (itself EDGE's FiLM transformer decoder),
module for module, so Ditto's checkpoint ``lmdm_v0.4_hubert.pth`` loads through a one-line key
mapping (models/ditto_checkpoint.py):

- input: a window of ``seq_len`` noisy motion frames ``[B, L, M]`` (M = 265, Ditto's packed
  vector); the reference motion of the frame before the window ``[B, M]`` is concatenated to every
  frame (``input_projection``: Linear(2M -> D)).
- condition ``[B, L, C]``: audio features | emotion (8) | eye_open (2) | eye_ball (6) | canonical
  keypoints (63), C = audio_dim + 79 (1103 with HuBERT-large). ``cond_projection`` (C -> D), then
  ``cond_encoder``: 2 pre-norm transformer encoder layers with rotary position embedding.
- timestep: sinusoidal embedding -> ``time_mlp`` (Linear D -> 4D, Mish) -> ``to_time_cond``
  (4D -> D, the FiLM vector) and ``to_time_tokens`` (4D -> 2D, reshaped into 2 tokens appended to
  the cross-attention memory). ``non_attn_cond_projection`` (LayerNorm, Linear, SiLU, Linear) of
  the mean-pooled condition tokens is added to the FiLM vector. ``norm_cond`` normalises the memory.
- ``decoder_layers``: ``num_layers`` pre-norm blocks, each self-attention (rotary), cross-attention
  over [condition tokens | time tokens] (rotary on queries and keys, over the memory's own
  positions), feed-forward (GELU); after each of the three sub-blocks a FiLM ``(1 + scale) * h +
  shift`` from the time vector (``film{1,2,3}.block`` = Mish, Linear D -> 2D).
- ``final_layer`` (D -> M): the prediction is x0 (the clean motion), not the noise.
- classifier-free guidance with learned null embeddings: ``null_cond_embed [1, L, D]`` replaces the
  encoded condition sequence, ``null_cond_hidden [1, D]`` the pooled condition vector.

Rotary embedding as in Ditto (lucidrains' rotary-embedding-torch 0.1): applied to the whole D-wide
token *before* the q/k projections, interleaved pairs, ``theta = 10000``; its frequencies are
recomputed here (a non-persistent buffer), not stored.

Intensity hook (ConsistTalk multiplies "the hidden states of the audio-conditioned layer" by a
per-frame intensity): ``intensity [B, L]`` scales each frame's cross-attention output (the only path
through which the per-frame condition reaches a frame) in every decoder layer; 1 = unchanged,
0 = no per-frame condition. Scaling the condition tokens themselves would do nothing here: the
memory goes through a per-token LayerNorm (``norm_cond``) that cancels a per-token scale.
A model trained with intensity (models/training.py, as ConsistTalk does) saw, for each training
window, the per-frame intensity of its target motion (``models.intensity.motion_intensity``, 1 =
the training set's typical motion); its config records that normalisation (``intensity_norm``)
and ``null_intensity`` (1.0): the intensity the null (unconditional) rows were trained with, so
they use it whatever intensity is passed. Configs without them (older models) pass the given
intensity to every row, as before.

For sampling, the parts that depend on neither the noise nor the timestep (the encoded condition,
its pooled vector, the normalised memory and the cross-attention keys/values of the condition
tokens) are computed once per window by :meth:`MotionDiT.encode_condition` and reused at every
denoising step (models/motion_sampling.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

__all__ = [
    "EXTRA_COND_DIM",
    "EncodedCondition",
    "MotionDiT",
    "rotary_tables",
    "sinusoidal_embedding",
]

# emotion 8 | eye_open 2 | eye_ball 6 | canonical keypoints 63 (see models/motion_space.py)
EXTRA_COND_DIM = 8 + 2 + 6 + 63


def sinusoidal_embedding(timesteps: Tensor, dim: int) -> Tensor:
    """EDGE/Ditto timestep embedding: ``[B] -> [B, dim]``, ``cat(sin, cos)`` over ``dim // 2``
    log-spaced frequencies from 1 down to 1/10000 (``exp(-log(1e4) * i / (dim/2 - 1))``)."""
    half = dim // 2
    scale = math.log(10000.0) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=timesteps.device, dtype=torch.float32) * -scale)
    args = timesteps.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat((args.sin(), args.cos()), dim=-1)


def rotary_tables(length: int, dim: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos and sin tables ``[length, dim]`` of the interleaved rotary embedding (float32).

    Pair ``(2i, 2i+1)`` rotates by ``pos * theta ** (-2i / dim)``."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32)[: dim // 2] / dim))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None, :]  # [L, dim/2]
    angles = angles.repeat_interleave(2, dim=-1)  # [L, dim]
    return angles.cos(), angles.sin()


def _signed(sin: Tensor) -> Tensor:
    """``sin`` with even columns negated: rotating pair (a, b) to (-b, a) becomes
    ``swap(x) * signed_sin`` (one multiply, no negation per call)."""
    out = sin.clone()
    out[..., 0::2] *= -1
    return out


# Rotary tables for positions [0, N): (cos [N, D], signed sin [N, D], cis [N, D/2] complex64).
Rotary = tuple[Tensor, Tensor, Tensor]


def _rotate(x: Tensor, rot: Rotary) -> Tensor:
    """Apply the rotary embedding to ``x [B, N, D]`` at positions ``0..N-1`` of ``rot``.

    float32 goes through one complex multiply (5x faster on CPU than the real form); other
    dtypes use ``x * cos + swap(x) * signed_sin`` (see _signed)."""
    cos, signed_sin, cis = rot
    if x.dtype == torch.float32:
        pairs = torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous())
        return torch.view_as_real(pairs * cis).flatten(-2)
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (a, b) -> (b, a)
    return x * cos + swapped * signed_sin


def _rows(rot: Rotary, start: int, stop: int) -> Rotary:
    return rot[0][start:stop], rot[1][start:stop], rot[2][start:stop]


def _project(x: Tensor, attn: nn.MultiheadAttention, first: int, count: int = 1) -> Tensor:
    """Input projections ``first .. first + count - 1`` (0 = q, 1 = k, 2 = v) of a packed
    ``nn.MultiheadAttention``, as one matmul: ``[..., count * D]``."""
    d = attn.embed_dim
    w = attn.in_proj_weight[first * d : (first + count) * d]
    b = attn.in_proj_bias[first * d : (first + count) * d]
    return F.linear(x, w, b)


def _attend(q: Tensor, k: Tensor, v: Tensor, attn: nn.MultiheadAttention) -> Tensor:
    """Multi-head attention on already projected ``q [B, N, D]``, ``k, v [B, S, D]``; returns the
    output projection ``[B, N, D]`` (same maths as ``nn.MultiheadAttention``)."""
    h = attn.num_heads
    q, k, v = (t.unflatten(-1, (h, -1)).transpose(1, 2) for t in (q, k, v))  # [B, h, *, D/h]
    p = attn.dropout if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
    return attn.out_proj(out.transpose(1, 2).flatten(-2))


class DenseFiLM(nn.Module):
    """FiLM generator: time vector ``[B, D]`` -> (scale, shift), each ``[B, 1, D]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Mish(), nn.Linear(dim, dim * 2))

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor]:
        scale, shift = self.block(t)[:, None, :].chunk(2, dim=-1)
        return scale, shift


class ConditionEncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer with rotary self-attention (Ditto's cond_encoder)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, rot: Rotary) -> Tensor:
        h = self.norm1(x)
        a = self.self_attn
        q, k = _project(_rotate(h, rot), a, 0, 2).chunk(2, dim=-1)
        x = x + self.dropout(_attend(q, k, _project(h, a, 2), a))
        h = self.norm2(x)
        return x + self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(h)))))


class DecoderLayer(nn.Module):
    """FiLM transformer decoder layer: self-attention, cross-attention, feed-forward, each
    followed by FiLM from the time vector, pre-norm residuals (Ditto's FiLMTransformerDecoderLayer).
    """

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.film1 = DenseFiLM(dim)
        self.film2 = DenseFiLM(dim)
        self.film3 = DenseFiLM(dim)
        self.dropout = nn.Dropout(dropout)

    def memory_kv(self, memory: Tensor, rot: Rotary) -> tuple[Tensor, Tensor]:
        """Cross-attention keys and values ``[B, S, D]`` of memory tokens at the positions of
        ``rot``."""
        a = self.multihead_attn
        return _project(_rotate(memory, rot), a, 1), _project(memory, a, 2)

    def forward(
        self,
        x: Tensor,  # [B, L, D]
        mem_k: Tensor,  # [B, S, D]
        mem_v: Tensor,  # [B, S, D]
        t: Tensor,  # [B, D]
        rot: Rotary,  # positions 0..L-1
        intensity: Tensor | None,  # [B, L, 1]
    ) -> Tensor:
        a = self.self_attn
        h = self.norm1(x)
        q, k = _project(_rotate(h, rot), a, 0, 2).chunk(2, dim=-1)
        h = self.dropout(_attend(q, k, _project(h, a, 2), a))
        scale, shift = self.film1(t)
        x = x + (scale + 1) * h + shift

        a = self.multihead_attn
        h = self.norm2(x)
        h = self.dropout(_attend(_project(_rotate(h, rot), a, 0), mem_k, mem_v, a))
        if intensity is not None:
            h = h * intensity
        scale, shift = self.film2(t)
        x = x + (scale + 1) * h + shift

        h = self.norm3(x)
        h = self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(h)))))
        scale, shift = self.film3(t)
        return x + (scale + 1) * h + shift


@dataclass
class EncodedCondition:
    """What the denoiser needs from the condition, independent of noise and timestep.

    tokens: [B, L, D] normalised condition memory (``norm_cond`` of the encoded or null tokens);
    hidden: [B, D] pooled condition vector added to the FiLM time vector;
    keys/values: per decoder layer, cross-attention k and v of ``tokens`` ([B, L, D] each);
    intensity: [B, L, 1] or None.
    """

    tokens: Tensor
    hidden: Tensor
    keys: list[Tensor]
    values: list[Tensor]
    intensity: Tensor | None

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def repeat(self, n: int) -> EncodedCondition:
        """The same condition for ``n`` times the batch (samples stay grouped: [c0 x n, c1 x n])."""
        rep = lambda t: t.repeat_interleave(n, dim=0)  # noqa: E731
        return EncodedCondition(
            rep(self.tokens),
            rep(self.hidden),
            [rep(k) for k in self.keys],
            [rep(v) for v in self.values],
            None if self.intensity is None else rep(self.intensity),
        )

    @staticmethod
    def cat(parts: list[EncodedCondition]) -> EncodedCondition:
        """Concatenate along the batch."""
        ints = [p.intensity for p in parts]
        if any(i is None for i in ints) and not all(i is None for i in ints):
            ints = [
                torch.ones_like(p.tokens[..., :1]) if i is None else i
                for p, i in zip(parts, ints, strict=True)
            ]
        return EncodedCondition(
            torch.cat([p.tokens for p in parts]),
            torch.cat([p.hidden for p in parts]),
            [torch.cat(k) for k in zip(*[p.keys for p in parts], strict=True)],
            [torch.cat(v) for v in zip(*[p.values for p in parts], strict=True)],
            None if ints[0] is None else torch.cat(ints),
        )


class MotionDiT(ModelMixin, ConfigMixin):
    """Ditto's audio-to-motion diffusion transformer (x0 prediction).

    Config (all sizes): ``seq_len`` frames per window (80), ``motion_dim`` (265), ``audio_dim``
    (1024 for HuBERT-large), ``extra_cond_dim`` (79: emotion, eye state, canonical keypoints),
    ``latent_dim`` (512), ``ff_dim`` (1024), ``num_layers`` decoder layers (8), ``num_heads`` (8),
    ``num_encoder_layers`` (2), ``dropout`` (0.1), ``cond_dropout`` (probability of replacing the
    condition by the null embeddings while training, for classifier-free guidance),
    ``rotary_theta`` (10000), ``intensity_norm`` (dict or None: how the training intensities
    were computed from the target motion, see models.intensity.motion_intensity; None = trained
    without intensity), ``null_intensity`` (float or None: the intensity null-condition rows
    were trained with and always use; None = the given intensity, the old behaviour). The
    defaults are Ditto's: 47.79M parameters.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        seq_len: int = 80,
        motion_dim: int = 265,
        audio_dim: int = 1024,
        extra_cond_dim: int = EXTRA_COND_DIM,
        latent_dim: int = 512,
        ff_dim: int = 1024,
        num_layers: int = 8,
        num_heads: int = 8,
        num_encoder_layers: int = 2,
        dropout: float = 0.1,
        cond_dropout: float = 0.1,
        rotary_theta: float = 10000.0,
        intensity_norm: dict | None = None,
        null_intensity: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("seq_len", seq_len), ("motion_dim", motion_dim),
                            ("audio_dim", audio_dim), ("latent_dim", latent_dim),
                            ("ff_dim", ff_dim), ("num_layers", num_layers),
                            ("num_heads", num_heads)):  # fmt: skip
            if int(value) <= 0:
                raise ValueError(f"MotionDiT: {name} must be positive, got {value}")
        if latent_dim % num_heads or latent_dim % 2 or latent_dim < 4:
            raise ValueError(
                f"MotionDiT: latent_dim {latent_dim} must be even, >= 4 and divisible by "
                f"num_heads {num_heads}"
            )
        d = latent_dim
        self.time_mlp = nn.Sequential(_Sinusoidal(d), nn.Linear(d, d * 4), nn.Mish())
        self.to_time_cond = nn.Sequential(nn.Linear(d * 4, d))
        self.to_time_tokens = nn.Sequential(nn.Linear(d * 4, d * 2))  # 2 tokens of D
        self.null_cond_embed = nn.Parameter(torch.randn(1, seq_len, d))
        self.null_cond_hidden = nn.Parameter(torch.randn(1, d))
        self.norm_cond = nn.LayerNorm(d)
        self.input_projection = nn.Linear(motion_dim * 2, d)
        self.cond_projection = nn.Linear(audio_dim + extra_cond_dim, d)
        self.cond_encoder = nn.ModuleList(
            ConditionEncoderLayer(d, num_heads, ff_dim, dropout) for _ in range(num_encoder_layers)
        )
        self.non_attn_cond_projection = nn.Sequential(
            nn.LayerNorm(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(d, num_heads, ff_dim, dropout) for _ in range(num_layers)
        )
        self.final_layer = nn.Linear(d, motion_dim)
        self._set_tables(seq_len + 2)

    # --- helpers ---------------------------------------------------------------------------------
    @property
    def cond_dim(self) -> int:
        """Per-frame condition width: audio_dim + extra_cond_dim (1103 for Ditto)."""
        return self.config.audio_dim + self.config.extra_cond_dim

    def _set_tables(self, length: int) -> None:
        cos, sin = rotary_tables(length, self.config.latent_dim, self.config.rotary_theta)
        old = getattr(self, "rotary_cos", None)
        device = None if old is None else old.device
        self.register_buffer("rotary_cos", cos.to(device), persistent=False)
        self.register_buffer("rotary_sin", _signed(sin).to(device), persistent=False)

    def _tables(self, length: int) -> Rotary:
        if length > self.rotary_cos.shape[0]:
            self._set_tables(length)
        dtype = self.final_layer.weight.dtype
        # Real tables follow the weights' dtype; the complex form (float32 path) is rebuilt here
        # rather than stored, since Module.to(dtype) would drop a complex buffer's imaginary part.
        cos = self.rotary_cos[:length].float()
        sin = self.rotary_sin[:length].float()
        cis = torch.complex(cos[:, 0::2], -sin[:, 0::2])
        return cos.to(dtype), sin.to(dtype), cis

    def _check(self, name: str, t: Tensor, shape: tuple[int | None, ...]) -> None:
        if t.dim() != len(shape) or any(
            s is not None and s != n for s, n in zip(shape, t.shape, strict=True)
        ):
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"MotionDiT: {name} must have shape {want}, got {list(t.shape)}")

    # --- condition (independent of noise and timestep) -------------------------------------------
    def encode_condition(
        self,
        cond: Tensor | None,
        keep: Tensor | bool = True,
        intensity: Tensor | None = None,
    ) -> EncodedCondition:
        """Encode the per-frame condition ``cond [B, L, C]`` once for all denoising steps.

        keep: bool or bool tensor [B]; False rows use the learned null embeddings (the
        unconditional branch of classifier-free guidance; ``cond`` may then be None).
        intensity: optional [B, L] (or [L]) per-frame scale of the cross-attention output; with
        ``config.null_intensity`` set, null rows use that value instead.
        Raises ValueError on wrong shapes.
        """
        cfg = self.config
        L, D = cfg.seq_len, cfg.latent_dim
        null = self.null_cond_embed.to(self.final_layer.weight.dtype)
        if cond is None:
            if keep is not False:
                raise ValueError("MotionDiT: cond is required unless keep=False")
            batch = 1 if intensity is None or intensity.dim() == 1 else intensity.shape[0]
            tokens = null.expand(batch, L, D)
            hidden = self.null_cond_hidden.to(null.dtype).expand(batch, D)
        else:
            self._check("cond", cond, (None, L, self.cond_dim))
            batch = cond.shape[0]
            keep_t = torch.as_tensor(keep, device=cond.device).to(torch.bool).reshape(-1)
            keep_t = keep_t.expand(batch) if keep_t.numel() == 1 else keep_t
            rot = self._tables(L)
            if bool(keep_t.any()):
                tokens = self.cond_projection(cond.to(null.dtype))
                for layer in self.cond_encoder:
                    tokens = layer(tokens, rot)
            else:
                tokens = null.expand(batch, L, D)
            tokens = torch.where(keep_t[:, None, None], tokens, null)
            hidden = self.non_attn_cond_projection(tokens.mean(dim=1))
            hidden = torch.where(keep_t[:, None], hidden, self.null_cond_hidden.to(null.dtype))
        null_int = getattr(cfg, "null_intensity", None)
        if intensity is not None and null_int is not None:
            intensity = torch.as_tensor(intensity)
            if cond is None:  # all rows null
                intensity = torch.full_like(intensity, float(null_int))
            else:
                if intensity.dim() == 1:
                    intensity = intensity[None].expand(batch, -1)
                intensity = torch.where(
                    keep_t.to(intensity.device)[:, None],
                    intensity,
                    torch.full_like(intensity, float(null_int)),
                )
        memory = self.norm_cond(tokens)
        rot = self._tables(L)
        keys, values = [], []
        for layer in self.decoder_layers:
            k, v = layer.memory_kv(memory, rot)
            keys.append(k)
            values.append(v)
        if intensity is not None:
            intensity = intensity.to(null.dtype)
            if intensity.dim() == 1:
                intensity = intensity[None].expand(batch, -1)
            self._check("intensity", intensity, (batch, L))
            intensity = intensity[..., None]
        return EncodedCondition(memory, hidden, keys, values, intensity)

    # --- denoiser --------------------------------------------------------------------------------
    def denoise(
        self, sample: Tensor, ref_motion: Tensor, timestep: Tensor, encoded: EncodedCondition
    ) -> Tensor:
        """x0 prediction ``[B, L, M]`` from the noisy window ``sample [B, L, M]``, the reference
        motion ``ref_motion [B, M]``, ``timestep`` (scalar or [B]) and an encoded condition of
        batch B (see :meth:`encode_condition`)."""
        cfg = self.config
        B, L, M = sample.shape
        self._check("sample", sample, (None, cfg.seq_len, cfg.motion_dim))
        self._check("ref_motion", ref_motion, (B, M))
        if encoded.batch_size != B:
            raise ValueError(f"MotionDiT: condition batch {encoded.batch_size} != sample batch {B}")
        dtype = self.final_layer.weight.dtype
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(B)
        x = torch.cat([sample, ref_motion[:, None, :].expand(B, L, M)], dim=-1).to(dtype)
        x = self.input_projection(x)

        emb = sinusoidal_embedding(timestep, cfg.latent_dim).to(dtype)
        t_hidden = self.time_mlp[2](self.time_mlp[1](emb))  # time_mlp[0] is the embedding
        t = self.to_time_cond(t_hidden) + encoded.hidden
        t_tokens = self.norm_cond(self.to_time_tokens(t_hidden).unflatten(-1, (2, -1)))  # [B,2,D]
        rot = self._tables(L + 2)
        for layer, k_c, v_c in zip(self.decoder_layers, encoded.keys, encoded.values, strict=True):
            k_t, v_t = layer.memory_kv(t_tokens, _rows(rot, L, L + 2))
            x = layer(
                x,
                torch.cat([k_c, k_t], dim=1),
                torch.cat([v_c, v_t], dim=1),
                t,
                _rows(rot, 0, L),
                encoded.intensity,
            )
        return self.final_layer(x)

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | int,
        ref_motion: Tensor,
        cond: Tensor,
        keep_cond: Tensor | bool | None = None,
        intensity: Tensor | None = None,
    ) -> Tensor:
        """One denoising call: x0 prediction ``[B, L, M]``.

        sample [B, L, M] noisy motion; timestep scalar or [B]; ref_motion [B, M] motion of the
        frame before the window; cond [B, L, C]; keep_cond: bool / bool [B] (False = null
        condition); None means: while training drop each row with probability cond_dropout,
        otherwise keep. intensity: optional [B, L] (see module docstring).
        """
        if keep_cond is None:
            keep_cond = True
            if self.training and self.config.cond_dropout > 0:
                keep_cond = torch.rand(sample.shape[0], device=sample.device) >= (
                    self.config.cond_dropout
                )
        encoded = self.encode_condition(cond, keep_cond, intensity)
        return self.denoise(sample, ref_motion, torch.as_tensor(timestep), encoded)

    def guided_denoise(
        self,
        sample: Tensor,
        ref_motion: Tensor,
        timestep: Tensor,
        cond: EncodedCondition,
        uncond: EncodedCondition | None,
        guidance_scale: float,
    ) -> Tensor:
        """Classifier-free guidance ``unc + g * (cond - unc)`` as ONE forward of batch 2B.

        ``cond`` has batch B; ``uncond`` batch B too (or 1, repeated). With ``g == 1`` (or no
        ``uncond``) this is exactly the conditional prediction (the unconditional branch is
        skipped)."""
        if guidance_scale == 1.0 or uncond is None:
            return self.denoise(sample, ref_motion, timestep, cond)
        B = sample.shape[0]
        if uncond.batch_size != B:
            uncond = uncond.repeat(B // uncond.batch_size)
        both = EncodedCondition.cat([cond, uncond])
        out = self.denoise(
            torch.cat([sample, sample]),
            torch.cat([ref_motion, ref_motion]),
            torch.as_tensor(timestep).reshape(-1).expand(B).repeat(2),
            both,
        )
        c, u = out[:B], out[B:]
        return u + guidance_scale * (c - u)


class _Sinusoidal(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        return sinusoidal_embedding(t, self.dim)
