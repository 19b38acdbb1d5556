"""Tiny random MotionDiTs shared by the model, generation and dialog tests.

Importable from any test as ``tiny_models`` (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.motion_dit import MotionDiT

# Small enough to run a forward pass in milliseconds on one CPU thread.
TINY_DIT = dict(seq_len=16, audio_dim=8, latent_dim=32, ff_dim=64, num_layers=2, num_heads=4)
LOGMEL_DIM = 80  # audio_dim of a model fed log-mel features (what studio.generation computes)


def tiny_dit(seed: int = 0, **kw) -> MotionDiT:
    """A tiny MotionDiT (TINY_DIT, no dropout, ``kw`` overriding) with weights from ``seed``,
    in eval mode."""
    import torch

    from models.motion_dit import MotionDiT

    torch.manual_seed(seed)
    return MotionDiT(**{**TINY_DIT, "dropout": 0.0, **kw}).eval()


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    """A tiny random MotionDiT with log-mel audio input saved with save_pretrained at ``path``."""
    tiny_dit(seed, audio_dim=LOGMEL_DIM).save_pretrained(path)
    return path
