"""The shipped default models: loading them (local files only) and using the motion model.

The project ships only weights it trained itself on data it generated (models.training on
models.speech_data clips); each folder under ``resources/models`` has a MODEL_CARD.md saying what
it was trained on and how it scores:

- ``resources/models/motion_default/``: a small MotionDiT (log mel audio, 80-D) with
  ``motion_stats.json``, the normalisation of its motion space (models.training.MotionStats).
- ``resources/models/intensity_default/``: the A2I student (audio -> per-frame intensity); its
  teacher is in ``teacher/``.

:class:`PretrainedMotionModel` wraps a MotionDiT and its normalisation: it turns audio into
features, the document's channels into conditions (emotion, eye state, canonical keypoints),
normalises the reference motion and returns motion in Ditto's packed space ``[T, 265]``
(``models.motion_space.unpack_ditto`` gives channels). Loading never downloads anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS, EMOTIONS, pack_ditto

__all__ = [
    "DEFAULT_INTENSITY_DIR",
    "DEFAULT_MOTION_DIR",
    "PretrainedModelMissing",
    "PretrainedMotionModel",
    "load_default_intensity_model",
    "load_default_motion_model",
    "load_intensity_model",
    "load_motion_model",
    "models_dir",
]

_WEIGHTS = ("diffusion_pytorch_model.safetensors",)


def models_dir() -> Path:
    """``resources/models`` of this install (it may not exist)."""
    import resources

    return Path(resources.__file__).resolve().parent / "models"


DEFAULT_MOTION_DIR = "motion_default"
DEFAULT_INTENSITY_DIR = "intensity_default"


class PretrainedModelMissing(FileNotFoundError):
    """A model folder (or a file in it) is missing; the message names it and how to make one."""


def _check_folder(folder: Path, extra: tuple[str, ...] = ()) -> None:
    remedy = (
        "train one with `talking-head-studio train motion|intensity --generate-data N "
        "--data DIR --out MODEL_DIR`"
    )
    if not folder.is_dir():
        raise PretrainedModelMissing(f"model folder {folder} is missing; {remedy}")
    for name in ("config.json", *_WEIGHTS, *extra):
        if not (folder / name).is_file():
            raise PretrainedModelMissing(f"{folder / name} is missing; {remedy}")


@dataclass
class PretrainedMotionModel:
    """A MotionDiT with the normalisation it was trained with (models.training.MotionStats)."""

    model: object  # models.motion_dit.MotionDiT
    stats: object  # models.training.MotionStats
    folder: Path

    @property
    def device(self):
        return next(self.model.parameters()).device

    def features(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Audio ``[S]`` or ``[S, ch]`` -> the model's features ``[T, A]`` (25 fps).
        Raises models.audio_features.AudioInputError."""
        from models.audio_features import features_for_model

        return features_for_model(self.model)(audio, sample_rate)

    def conditions(self, channels: np.ndarray | None = None):
        """MotionConditions from motion channels ``[T, 90]`` (emotion weights, eye openness,
        pupil offsets per frame) or, with None, the resting defaults (neutral, eyes open);
        canonical keypoints are the ones the model was trained with."""
        from models.motion_sampling import MotionConditions

        ch = np.asarray(CHANNEL_DEFAULTS if channels is None else channels, dtype=np.float64)
        if ch.shape[-1] != len(CHANNELS) or ch.ndim not in (1, 2):
            raise ValueError(f"channels must be [{len(CHANNELS)}] or [T, {len(CHANNELS)}]")
        pick = lambda names: ch[..., [CHANNEL_INDEX[n] for n in names]]  # noqa: E731
        return MotionConditions(
            x_c=self.stats.x_c,
            eye_open=pick(["eye_open_r", "eye_open_l"]),
            eye_ball=pick([f"eye_ball_{k}" for k in range(6)]),
            emotion=pick([f"emotion_{e}" for e in EMOTIONS]),
        )

    def iter_generate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        channels: np.ndarray | None = None,
        ref_channels: np.ndarray | None = None,
        init_motion: np.ndarray | None = None,
        **kwargs,
    ) -> Iterator:
        """:func:`models.motion_sampling.iter_generate_motion` on this model, in Ditto's packed
        space: previews and the result are denormalised ``[T, 265]`` (float64); a preview is a
        read-only view, valid until the generator is resumed, whose frames before
        ``preview_from`` are as in the previous preview (only the changed ones are converted).

        channels [T, 90]: conditions (see :meth:`conditions`); ref_channels [90]: the motion
        before frame 0 (default: the resting face); init_motion [T, 265] packed (for
        frame_range/regions constraints). Other keyword arguments as iter_generate_motion
        (steps, guidance_scale, seed, intensity, ...; ``limits`` are in the model's normalised
        space)."""
        from models.motion_sampling import iter_generate_motion

        feats = self.features(audio, sample_rate)
        ref_ch = CHANNEL_DEFAULTS if ref_channels is None else np.asarray(ref_channels)
        # The model only ever saw the training values on dims that never varied (the mean),
        # and a reference far outside the training range is clipped rather than extrapolated.
        ref = np.clip(self.stats.normalize(pack_ditto(ref_ch)), -6.0, 6.0)
        ref[self.stats.constant] = 0.0
        if init_motion is not None:
            kwargs["init_motion"] = self.stats.normalize(init_motion)
        shown = None  # [T, 265] the denormalised preview so far
        for p in iter_generate_motion(
            self.model, feats, self.conditions(channels), ref.astype(np.float32), **kwargs
        ):
            if p.preview is not None:
                # Only the frames the window changed (from preview_from on): O(window) per
                # window, not O(frames so far).
                if shown is None:
                    shown = np.zeros((feats.shape[0], p.preview.shape[1]), dtype=np.float64)
                n, f = p.preview.shape[0], p.preview_from
                shown[f:n] = self.stats.denormalize(p.preview[f:])
                p.preview = shown[:n].view()
                p.preview.flags.writeable = False
            if p.result is not None:
                p.result = self.stats.denormalize(p.result)
            yield p

    def generate(self, audio: np.ndarray, sample_rate: int, **kwargs) -> np.ndarray:
        """Packed motion ``[T, 265]`` (float64) for ``audio``; arguments as :meth:`iter_generate`.
        Default 10 DDIM steps, guidance 2, seed 0 (deterministic)."""
        result = None
        for p in self.iter_generate(audio, sample_rate, **kwargs):
            if p.result is not None:
                result = p.result
        return result


def load_motion_model(
    folder: str | os.PathLike[str], device: str = "cpu", dtype=None
) -> PretrainedMotionModel:
    """Load a trained motion model folder (config.json, safetensors weights, motion_stats.json)
    from disk. Raises PretrainedModelMissing for a missing folder or file, ValueError for a
    malformed stats file."""
    import torch

    from models.motion_dit import MotionDiT
    from models.training import STATS_FILE, MotionStats

    path = Path(folder)
    _check_folder(path, (STATS_FILE,))
    model = MotionDiT.from_pretrained(
        path, local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False
    )
    model = model.to(device=device, dtype=dtype or torch.float32).eval()
    return PretrainedMotionModel(model, MotionStats.load(path), path)


def load_default_motion_model(device: str = "cpu", dtype=None) -> PretrainedMotionModel:
    """The shipped motion model (resources/models/motion_default). Raises
    PretrainedModelMissing when it is not installed."""
    return load_motion_model(models_dir() / DEFAULT_MOTION_DIR, device, dtype)


def load_intensity_model(folder: str | os.PathLike[str], device: str = "cpu", teacher=False):
    """The A2I student (or with ``teacher`` its teacher, in ``teacher/``) from a folder written
    by models.training.train_intensity. It takes raw LogMelFeatures; ``.predict(features)`` ->
    intensity [T]. Raises PretrainedModelMissing."""
    from models.intensity import IntensityStudent, IntensityTeacher

    path = Path(folder) / ("teacher" if teacher else "")
    _check_folder(path)
    cls = IntensityTeacher if teacher else IntensityStudent
    return (
        cls.from_pretrained(
            path, local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False
        )
        .to(device)
        .eval()
    )


def load_default_intensity_model(device: str = "cpu"):
    """The shipped A2I student (resources/models/intensity_default). Raises
    PretrainedModelMissing when it is not installed."""
    return load_intensity_model(models_dir() / DEFAULT_INTENSITY_DIR, device)
