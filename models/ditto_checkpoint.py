"""Load Ditto's public motion-diffusion checkpoint (``lmdm_v0.4_hubert.pth``) into MotionDiT.

The file is ``{"model_state_dict": state_dict}`` of Ditto's ``MotionDecoder``. MotionDiT keeps
Ditto's module names, so the mapping is one rename plus dropped non-weights:

    Ditto key                                   MotionDiT key
    seqTransDecoder.stack.{i}.<rest>            decoder_layers.{i}.<rest>
    every other weight                          the same name
    rotary.freqs, cond_encoder.{i}.rotary.freqs,
    seqTransDecoder.stack.{i}.rotary.freqs      dropped (recomputed; checked against theta)
    alphas_cumprod, sqrt_recipm1_alphas_cumprod,
    sqrt_recip1m_alphas_cumprod, betas, ...     dropped (diffusion schedule, not weights)

A ``module.`` (DistributedDataParallel) or ``model.`` (LMDM wrapper) prefix is stripped from
every key that has one: a file saved from Ditto's ``LMDM`` wrapper holds the network's weights as
``model.<name>`` next to the wrapper's own unprefixed schedule buffers (``alphas_cumprod``,
``sqrt_recipm1_alphas_cumprod``, ``sqrt_recip1m_alphas_cumprod``), which are dropped and logged
at INFO level; any other unknown entry is still reported as unexpected. Sizes come from the
tensors (latent, sequence length, motion, condition, feed-forward widths, number of layers);
the number of heads cannot be read from shapes and is Ditto's 8 unless given.
Weights load from a LOCAL path only; nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from models.motion_dit import EXTRA_COND_DIM, MotionDiT

__all__ = [
    "DittoCheckpointError",
    "copy_state",
    "ditto_state_dict_from_model",
    "load_ditto_checkpoint",
    "load_mapped_state",
    "map_ditto_state_dict",
    "state_dict_problems",
    "strip_wrapper_prefix",
]

_RENAMES = ((re.compile(r"^seqTransDecoder\.stack\.(\d+)\."), r"decoder_layers.\1."),)
_INVERSE = ((re.compile(r"^decoder_layers\.(\d+)\."), r"seqTransDecoder.stack.\1."),)
_log = logging.getLogger(__name__)
_PREFIXES = ("module.", "model.")
_ROTARY = re.compile(r"(^|\.)rotary\.freqs$")
_SCHEDULE = {
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "sqrt_recip1m_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
}


class DittoCheckpointError(ValueError):
    """The file is not a usable Ditto LMDM checkpoint (the message names the problem)."""


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def strip_wrapper_prefix(key: str) -> str:
    """``key`` without its leading ``module.`` / ``model.`` prefixes (DistributedDataParallel and
    Ditto's LMDM wrapper, in any nesting)."""
    while key.startswith(_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def map_ditto_state_dict(
    state: Mapping[str, torch.Tensor], theta: float = 10000.0
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Ditto keys -> MotionDiT keys.

    Each key loses its wrapper prefixes (:func:`strip_wrapper_prefix`) first. Returns (mapped
    state dict, the file's names of the dropped entries: rotary frequencies and schedule buffers).
    Rotary frequencies are checked against ``theta`` (a model trained with other frequencies would
    silently behave differently). Raises DittoCheckpointError on a non-tensor entry, unexpected
    rotary frequencies, or two entries that name the same key once their prefixes are stripped.
    """
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    origin: dict[str, str] = {}
    for raw_key, value in state.items():
        key = strip_wrapper_prefix(raw_key)
        if key in origin:
            raise DittoCheckpointError(
                f"Ditto checkpoint: {raw_key!r} and {origin[key]!r} both name {key!r}"
            )
        origin[key] = raw_key
        if not isinstance(value, torch.Tensor):
            raise DittoCheckpointError(f"Ditto checkpoint: entry {key!r} is not a tensor")
        if _ROTARY.search(key):
            n = value.numel() * 2
            expected = 1.0 / (theta ** (torch.arange(0, n, 2, dtype=torch.float32) / n))
            if value.dim() != 1 or not torch.allclose(
                value.float().cpu(), expected, rtol=2e-3, atol=1e-6
            ):
                raise DittoCheckpointError(
                    f"Ditto checkpoint: {key} does not hold rotary frequencies for theta={theta}"
                )
            dropped.append(raw_key)
            continue
        if key in _SCHEDULE:
            dropped.append(raw_key)
            continue
        for pattern, repl in _RENAMES:
            key = pattern.sub(repl, key)
        mapped[key] = value
    return mapped, dropped


def ditto_state_dict_from_model(
    model: MotionDiT, with_rotary: bool = True
) -> dict[str, torch.Tensor]:
    """The inverse mapping: MotionDiT weights in Ditto's layout (with its per-module rotary
    frequency entries unless ``with_rotary`` is False). Used by tests and for export."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        for pattern, repl in _INVERSE:
            key = pattern.sub(repl, key)
        out[key] = value
    if with_rotary:
        d = model.config.latent_dim
        n = d // 2
        freqs = 1.0 / (model.config.rotary_theta ** (torch.arange(0, d, 2).float()[:n] / d))
        out["rotary.freqs"] = freqs.clone()
        for i in range(len(model.cond_encoder)):
            out[f"cond_encoder.{i}.rotary.freqs"] = freqs.clone()
        for i in range(len(model.decoder_layers)):
            out[f"seqTransDecoder.stack.{i}.rotary.freqs"] = freqs.clone()
    return out


def _config_from_shapes(state: Mapping[str, torch.Tensor], num_heads: int) -> dict[str, int]:
    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise DittoCheckpointError(f"Ditto checkpoint: missing {key} (is this an LMDM file?)")
        return tuple(state[key].shape)

    _, seq_len, latent = shape("null_cond_embed")
    motion_dim = shape("final_layer.weight")[0]
    cond_dim = shape("cond_projection.weight")[1]
    ff_dim = shape("decoder_layers.0.linear1.weight")[0]
    layers = {int(m.group(1)) for k in state if (m := re.match(r"decoder_layers\.(\d+)\.", k))}
    enc = {int(m.group(1)) for k in state if (m := re.match(r"cond_encoder\.(\d+)\.", k))}
    if cond_dim <= EXTRA_COND_DIM:
        raise DittoCheckpointError(
            f"Ditto checkpoint: condition width {cond_dim} leaves no room for audio "
            f"(emotion/eyes/keypoints take {EXTRA_COND_DIM})"
        )
    if latent % num_heads:
        raise DittoCheckpointError(f"latent width {latent} is not divisible by {num_heads} heads")
    return {
        "seq_len": seq_len,
        "motion_dim": motion_dim,
        "audio_dim": cond_dim - EXTRA_COND_DIM,
        "latent_dim": latent,
        "ff_dim": ff_dim,
        "num_layers": max(layers) + 1,
        "num_encoder_layers": max(enc) + 1 if enc else 0,
        "num_heads": num_heads,
    }


def load_ditto_checkpoint(
    path: str | os.PathLike[str],
    *,
    num_heads: int = 8,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MotionDiT:
    """Build a MotionDiT from Ditto's ``lmdm_v0.4_hubert.pth`` at a local ``path``.

    The file is read with ``torch.load(weights_only=True)`` (no code runs) onto the CPU, mapped
    (module docstring), checked and loaded strictly, then moved to ``device`` and ``dtype`` (any
    floating dtype in the file is accepted and converted). Returns the model in eval mode.

    Raises FileNotFoundError when the path is not a file; DittoCheckpointError when the file cannot
    be unpickled safely, has no state dict, or its keys/shapes do not match (the message names the
    missing and unexpected keys and each shape mismatch); ValueError for a non-floating ``dtype``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Ditto checkpoint not found: {path}")
    if not dtype.is_floating_point:
        raise ValueError(f"load_ditto_checkpoint: dtype must be floating point, got {dtype}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types; name the file and the cause
        raise DittoCheckpointError(
            f"cannot read {path} as a weights-only torch file: {exc}"
        ) from exc
    if isinstance(blob, Mapping) and "model_state_dict" in blob:
        state = blob["model_state_dict"]
    elif isinstance(blob, Mapping) and "state_dict" in blob:
        state = blob["state_dict"]
    else:
        state = blob
    if not isinstance(state, Mapping) or not state:
        raise DittoCheckpointError(f"{path}: no state dict (expected a 'model_state_dict' entry)")
    mapped, dropped = map_ditto_state_dict(state)
    schedule = [k for k in dropped if strip_wrapper_prefix(k) in _SCHEDULE]
    if schedule:
        _log.info("%s: ignored the LMDM wrapper's schedule buffers %s", path, _listing(schedule))
    config = _config_from_shapes(mapped, num_heads)
    model = MotionDiT(**config)
    load_mapped_state(model, mapped, source=str(path))
    return model.to(device=device, dtype=dtype).eval()


def state_dict_problems(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], limit: int = 8
) -> list[str]:
    """Why ``state`` does not load strictly into ``model``: one entry each for missing keys,
    unexpected keys, shape mismatches and non-floating tensors (at most ``limit`` names each);
    empty when it loads."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k} {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    bad_dtype = sorted(k for k in set(own) & set(state) if not state[k].is_floating_point())
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing, limit)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected, limit)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listing(mismatched, limit)}")
    if bad_dtype:
        problems.append(f"non-floating tensors: {_listing(bad_dtype, limit)}")
    return problems


def copy_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model``'s tensors in place, cast to their dtypes (check it first
    with :func:`state_dict_problems`)."""
    own = model.state_dict()
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))


def load_mapped_state(model: MotionDiT, mapped: Mapping[str, torch.Tensor], source: str) -> None:
    """Strictly copy ``mapped`` (MotionDiT names) into ``model``.

    Raises DittoCheckpointError naming missing keys, unexpected keys, shape mismatches and
    non-floating tensors, all at once."""
    problems = state_dict_problems(model, mapped)
    if problems:
        raise DittoCheckpointError(f"{source}: " + "; ".join(problems))
    copy_state(model, mapped)
