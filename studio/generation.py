"""Motion generation from audio for the studio and the CLI (Qt-free).

One request (:class:`GenerateRequest`) turns a project's audio into new take(s) in the motion
space the timeline edits. :func:`iter_generate` is a generator job: it yields
:class:`GenerationProgress` after every denoising step (a cancellation point; the studio runs it
in a child process, studio.generation_child) with a preview of the motion so far now and then,
and the last event carries the :class:`GenerationResult` (one Take per variation).
:func:`generation_edit` turns a result into one undoable CompoundEdit (AddAudioClip when the
audio came from a file, AddTake..., SetActiveTake, SetSettings when the project must grow).

Pipeline:

1. Audio: a project clip (by id; default the first clip) or a WAV/FLAC/OGG file (placed at
   ``audio_offset``), mixed to mono over the generation *domain* (project frames; silence where
   no audio plays). Any sample rate and channel count (models.audio_features resamples).
2. Domain: the whole clip, or for a range ``A:B`` the range plus ``context`` frames on each side
   (the sampler re-imposes the active take there so the new frames join the old ones).
3. Conditions from the active take's curves, per frame: emotion (``emotion_*`` channels, or a
   fixed emotion), eye state (``eye_open_*`` scaled to Ditto's eye aspect ratio,
   ``eye_ball_*``), intensity (the ``intensity`` channel, or predicted from audio by the A2I
   student, then also written as keys). Canonical keypoints: ``request.canonical_keypoints``,
   else the ones the model was trained with (its motion_stats.json), else zeros.
4. Generator: a MotionDiT (models.motion_sampling, 25 fps windows, DDIM/LCM, guidance, seed,
   variations, regions) or the procedural baseline (models.procedural; emotion templates and
   intensity applied on top). ``model="default"`` uses models.pretrained's shipped model and
   falls back to the procedural one, with a notice, while there is none.
5. Result: the packed output unpacked into channels; only the channels of the chosen regions
   (plus emotion when fixed, intensity when predicted) are written, only inside the range, as
   reduced linear keys (studio.project_ops.take_from_dense). Every other channel and every
   frame outside the range evaluates bit-exactly as in the active take (:func:`splice_curve`).

Device: ``"auto"`` uses CUDA when available, ``"cpu"`` forces the CPU, ``"cuda"``/``"gpu"``
asks for CUDA (CPU with a notice when there is none). CUDA out-of-memory restarts the job on the
CPU with a notice. Bad input: silent audio gives idle motion (procedural blinks and sway, jaw
closed) with a notice; clipped audio (>= 0.1 % of samples at full scale) gives a notice that
lips may look exaggerated; audio shorter than one model window is padded by the sampler; long
audio runs window by window with progress, each window's preview costing O(window) (the
preview is the changed tail, see GenerationProgress); a missing model folder or a checkpoint
that does not match raises :class:`ModelLoadError` (missing / unexpected keys listed); a model
that outputs NaN/inf raises :class:`GenerationError`.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.motion_space import (
    BROWS,
    CHANNEL_DEFAULTS,
    CHANNEL_INDEX,
    CHANNELS,
    EMOTION_CHANNELS,
    EMOTIONS,
    EXP_CHANNELS,
    EYES,
    JAW_OPEN_CHANNEL,
    LIPS,
    POSE_CHANNELS,
    channel_name,
)
from models.smoothing import DEFAULT_POSE_SMOOTHING, smooth_pose
from studio.document import (
    AddAudioClip,
    AddTake,
    AudioClip,
    CompoundEdit,
    Curve,
    FrameRate,
    HandleMode,
    Interpolation,
    Project,
    SetActiveTake,
    SetSettings,
    Take,
)

__all__ = [
    "CLIPPED_FRACTION",
    "DITTO_EYE_OPEN",
    "FPS",
    "LIMIT_REGIONS",
    "LIMIT_REGION_CHANNELS",
    "MAX_REGION_SCALE",
    "REGIONS",
    "GenerateRequest",
    "GenerationCancelled",
    "GenerationError",
    "GenerationProgress",
    "GenerationResult",
    "LoadedModel",
    "ModelLoadError",
    "MotionLimits",
    "PreviewBuffer",
    "clipped_fraction",
    "default_model_available",
    "generate",
    "generation_edit",
    "intensity_model_available",
    "iter_generate",
    "load_motion_model",
    "region_channels",
    "resolve_device",
    "splice_curve",
]

FPS = 25  # the motion models' frame rate
REGIONS = ("lips", "eyes", "brows", "pose", "expression")
# Ditto's eye condition is the eye aspect ratio (lid gap / eye width), about 0.3 for a relaxed
# open eye; the document's eye_open is 1 for relaxed open, 0 closed.
DITTO_EYE_OPEN = 0.3
# Peak level below which the audio counts as silence (about -60 dBFS).
SILENCE_PEAK = 1e-3
# A sample at or above this magnitude sits at full scale (16-bit full scale is 32767/32768);
# the audio counts as clipped when at least CLIPPED_FRACTION of its samples do.
FULL_SCALE = 0.999
CLIPPED_FRACTION = 1e-3
_SAMPLE_RATE = 16000  # the domain's audio is mixed at this rate (what the features use anyway)
_EMO = slice(CHANNEL_INDEX[EMOTION_CHANNELS[0]], CHANNEL_INDEX[EMOTION_CHANNELS[-1]] + 1)


class GenerationError(ValueError):
    """The generation cannot run or produced unusable motion (the message says why)."""


class ModelLoadError(GenerationError):
    """A model folder or checkpoint is missing or does not match the architecture."""


class GenerationCancelled(Exception):
    """Raised by :func:`iter_generate` / :func:`generate` when ``cancel()`` returned True."""


# ------------------------------------------------------------------------------ request
@dataclass
class GenerateRequest:
    """What to generate.

    audio: a project clip id, a path to an audio file (placed at ``audio_offset``), or None for
    the project's first clip. frame_range: ``(A, B)`` project frames, B exclusive: regenerate
    only those frames; None: the whole clip. regions: names from REGIONS (None: all).
    emotion: None = the project's ``emotion_*`` curves per frame, or a fixed name from EMOTIONS.
    intensity: ``"curve"`` (the ``intensity`` channel) or ``"audio"`` (predicted by the A2I
    student ``intensity_model``: a folder or "default"; written into the take as keys).
    steps, sampler ("ddim" | "lcm"), guidance, seed, variations: sampling settings (the
    procedural model uses seed + i for variation i). model: "default", "procedural", or a model
    folder (config.json + safetensors) / Ditto ``.pth`` file. device: "auto" | "cpu" | "cuda"
    (or "gpu"). hubert_dir: a local HuBERT folder for models with HuBERT-width audio input.
    canonical_keypoints: ``[21, 3]`` of the head (see the module docstring). overlap / context:
    window overlap and context frames around a range (model frames). ic_init: choose each
    window's initial noise by ConsistTalk's IC-Init search (models.motion_sampling's
    ``ICInitSettings.paper()``: beams over all windows, B=2, K=4 candidates, T'=3 of 30 DDIM
    steps with eta 0 instead of ``steps``, tau=20; ddim only; neural models only; several
    times slower). pose_smoothing: sigma in model frames (25 fps) of the
    zero-phase Gaussian smoothing applied to the head-pose channels (pitch, yaw, roll, tx, ty,
    tz, scale) of neural generations after sampling (models.smoothing.smooth_pose; the small
    shipped model's pose jitters about 9x its targets otherwise); 0 disables. For a range, only
    the regenerated frames are smoothed (its first and last frames kept), so every frame outside
    stays bit-exact. The procedural model is never smoothed.
    max_angle / region_scale: magnitude limits on the decoded motion (:class:`MotionLimits`):
    degrees bounding |pitch|, |yaw|, |roll| (one value for all three, or three), and a factor
    0..2 per region of LIMIT_REGIONS on its expression deltas relative to the motion before
    the generated frames; None / 1 change nothing (bit-identical). For a range, frames
    outside it stay the take's, and the short crossfade at its edges blends toward them.
    """

    audio: str | Path | None = None
    audio_offset: int = 0
    frame_range: tuple[int, int] | None = None
    regions: Sequence[str] | None = None
    emotion: str | None = None
    intensity: str = "curve"
    intensity_model: str | Path | None = "default"
    steps: int = 10
    sampler: str = "ddim"
    guidance: float = 2.0
    seed: int = 0
    variations: int = 1
    model: str | Path = "default"
    device: str = "auto"
    hubert_dir: str | Path | None = None
    canonical_keypoints: np.ndarray | None = None
    overlap: int = 10
    context: int = 10
    name: str | None = None
    ic_init: bool = False
    pose_smoothing: float = DEFAULT_POSE_SMOOTHING
    max_angle: float | Sequence[float] | None = None
    region_scale: dict[str, float] | None = None

    def limits(self) -> MotionLimits | None:
        """The magnitude limits of ``max_angle`` / ``region_scale`` (see :class:`MotionLimits`),
        or None when they change nothing (no angle limit, every scale 1)."""
        angles = None
        if self.max_angle is not None:
            v = np.atleast_1d(np.asarray(self.max_angle, dtype=np.float64))
            angles = tuple(float(a) for a in np.broadcast_to(v, (3,)))
        scales = {r: float(v) for r, v in (self.region_scale or {}).items() if float(v) != 1.0}
        if angles is None and not scales:
            return None
        return MotionLimits(angles, scales)

    def validated(self) -> GenerateRequest:
        """Check the settings; returns self. Raises GenerationError naming the bad one."""
        if self.regions is not None:
            bad = [r for r in self.regions if r not in REGIONS]
            if bad or not self.regions:
                raise GenerationError(
                    f"unknown or no regions {bad or list(self.regions)}; choose from "
                    f"{', '.join(REGIONS)}"
                )
        if self.emotion is not None and self.emotion not in EMOTIONS:
            raise GenerationError(
                f"unknown emotion {self.emotion!r}; choose from {', '.join(EMOTIONS)}"
            )
        if self.intensity not in ("curve", "audio"):
            raise GenerationError(f"intensity must be 'curve' or 'audio', got {self.intensity!r}")
        if not 1 <= int(self.steps) <= 1000:
            raise GenerationError(f"steps must be in 1..1000, got {self.steps}")
        if self.sampler not in ("ddim", "lcm"):
            raise GenerationError(f"sampler must be 'ddim' or 'lcm', got {self.sampler!r}")
        if self.ic_init and self.sampler != "ddim":
            raise GenerationError(f"IC-Init needs the ddim sampler, got {self.sampler!r}")
        if not 1 <= int(self.variations) <= 16:
            raise GenerationError(f"variations must be in 1..16, got {self.variations}")
        if not math.isfinite(float(self.guidance)) or self.guidance < 0:
            raise GenerationError(f"guidance must be >= 0, got {self.guidance}")
        if self.device not in ("auto", "cpu", "cuda", "gpu"):
            raise GenerationError(f"device must be auto, cpu or cuda, got {self.device!r}")
        ps = float(self.pose_smoothing)
        if not math.isfinite(ps) or not 0 <= ps <= 100:
            raise GenerationError(f"pose smoothing must be in 0..100 frames, got {ps}")
        if self.frame_range is not None:
            a, b = (int(v) for v in self.frame_range)
            if not 0 <= a < b:
                raise GenerationError(f"range must satisfy 0 <= A < B, got {a}:{b}")
        if self.max_angle is not None:
            try:
                v = np.atleast_1d(np.asarray(self.max_angle, dtype=np.float64))
            except (TypeError, ValueError):
                v = np.array([np.nan])
            if v.shape not in ((1,), (3,)) or not np.all(np.isfinite(v)) or np.any(v < 0):
                raise GenerationError(
                    "max angle must be degrees >= 0 (one for pitch, yaw and roll, or three), "
                    f"got {self.max_angle!r}"
                )
        for r, v in (self.region_scale or {}).items():
            if r not in LIMIT_REGIONS:
                raise GenerationError(
                    f"unknown region {r!r} to scale; choose from {', '.join(LIMIT_REGIONS)}"
                )
            try:
                ok = math.isfinite(float(v)) and 0.0 <= float(v) <= MAX_REGION_SCALE
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise GenerationError(f"scale of {r} must be in 0..{MAX_REGION_SCALE:g}, got {v!r}")
        return self


# Face regions whose expression a generation can scale (MotionLimits): the keypoint groups of
# models.motion_space, with the jaw (its keypoints plus the jaw-open channel, which the lips
# group carries) apart from the lips so that mouth opening and lip shape scale separately.
LIMIT_REGIONS = ("lips", "jaw", "brows", "eyes")
MAX_REGION_SCALE = 2.0


def _limit_region_channels() -> dict[str, list[int]]:
    from models.motion_space import KEYPOINTS, NUM_KEYPOINTS

    jaw_kps = [k.index for k in KEYPOINTS if k.region == "jaw"]
    groups = {"lips": LIPS, "jaw": jaw_kps, "brows": BROWS, "eyes": EYES}
    out = {}
    for r, kps in groups.items():
        names = [channel_name(k, a) for k in kps for a in range(3)]
        names = [n for n in names if n != JAW_OPEN_CHANNEL]
        if r == "jaw":
            names.append(JAW_OPEN_CHANNEL)
        out[r] = [CHANNEL_INDEX[n] for n in names]
    assert all(0 <= k < NUM_KEYPOINTS for kps in groups.values() for k in kps)
    return out


LIMIT_REGION_CHANNELS: dict[str, list[int]] = _limit_region_channels()


@dataclass(frozen=True)
class MotionLimits:
    """Magnitude limits on *decoded* motion (document units), as the Generate dialog and
    ``generate --max-angle / --region-scale`` set them.

    ``max_angles``: (pitch, yaw, roll) bounds in degrees, each angle clamped to [-max, max]
    (None: no bound). ``scales``: region (LIMIT_REGIONS) -> factor 0..2 on the expression
    deltas of that region's channels (LIMIT_REGION_CHANNELS) relative to the reference motion,
    ``ref + s * (exp - ref)``: 0 holds the reference, 1 leaves them, 2 doubles them. Applied
    after decoding, so angles are bounded (clamping pose-bin logits would not bound them)."""

    max_angles: tuple[float, float, float] | None = None
    scales: dict[str, float] = field(default_factory=dict)

    def apply(self, values: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """``values [..., 90]`` with the limits applied (a new array); ``reference [90]``: the
        motion the expression deltas are measured from."""
        out = np.array(values, dtype=np.float64)
        ref = np.asarray(reference, dtype=np.float64)
        for r, s in self.scales.items():
            cols = LIMIT_REGION_CHANNELS[r]
            out[..., cols] = ref[cols] + float(s) * (out[..., cols] - ref[cols])
        if self.max_angles is not None:
            for name, m in zip(("pitch", "yaw", "roll"), self.max_angles, strict=True):
                c = CHANNEL_INDEX[name]
                np.clip(out[..., c], -float(m), float(m), out=out[..., c])
        return out

    def describe(self) -> dict:
        """For a take's metadata."""
        return {
            "max_angles": None if self.max_angles is None else list(self.max_angles),
            "scales": dict(self.scales),
        }


@dataclass
class GenerationResult:
    """What a generation made: ``takes`` (one per variation, the first is the one to activate),
    the project ``frame_range`` written, ``notices`` to show the user, the ``audio_clip`` to add
    (with its ``audio_data``) when the audio came from a file not yet in the project, and the
    project ``duration`` the takes need."""

    takes: list[Take]
    frame_range: tuple[int, int]
    notices: list[str] = field(default_factory=list)
    audio_clip: AudioClip | None = None
    audio_data: bytes | None = None
    duration: int = 0
    model: str = ""
    device: str = "cpu"


@dataclass
class GenerationProgress:
    """One report: ``step`` of ``total`` steps done, a status ``text``, new ``notices`` (lines
    for the log), now and then a ``preview [F, 90]`` of channel values for project frames
    ``preview_start .. preview_start + F - 1`` (first variation), and on the last event
    ``result``.

    A preview is a *tail*: the frames a model window changed, from the first frame its
    crossfade touched to the end of the motion so far; frames before ``preview_start`` are as
    in the earlier previews. Keep them in a :class:`PreviewBuffer`: O(window) per window
    however long the audio (an hour is 90k frames). The last event's preview is the whole
    domain."""

    step: int
    total: int
    text: str = ""
    notices: tuple[str, ...] = ()
    preview: np.ndarray | None = None
    preview_start: int = 0
    result: GenerationResult | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / max(1, self.total))


# ------------------------------------------------------------------------------ regions
def region_channels(regions: Sequence[str] | None) -> list[str]:
    """Motion channels a generation over ``regions`` (None: all) writes, in CHANNELS order."""
    regions = REGIONS if regions is None else regions
    names: set[str] = set()
    for r in regions:
        if r == "pose":
            names.update(POSE_CHANNELS)
        elif r == "expression":
            names.update(EXP_CHANNELS)
        elif r in ("lips", "eyes", "brows"):
            kps = {"lips": LIPS, "eyes": EYES, "brows": BROWS}[r]
            names.update(channel_name(k, a) for k in kps for a in range(3))
        else:
            raise GenerationError(f"unknown region {r!r}; choose from {', '.join(REGIONS)}")
    return [c for c in CHANNELS if c in names]


# ------------------------------------------------------------------------------ devices
def resolve_device(device: str) -> tuple[str, list[str]]:
    """``"auto" | "cpu" | "cuda" | "gpu"`` -> ("cuda" | "cpu", notices)."""
    if device == "cpu":
        return "cpu", []
    import torch

    if torch.cuda.is_available():
        return "cuda", []
    if device in ("cuda", "gpu"):
        return "cpu", ["CUDA is not available: generating on the CPU"]
    return "cpu", []


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(exc, oom) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


# ------------------------------------------------------------------------------ models
_MODEL_CACHE: dict[tuple, Any] = {}
_CACHE_LOCK = threading.Lock()


def _load_folder(path: Path):
    """A MotionDiT from a diffusers-style folder (config.json + safetensors), checked strictly."""
    from models.ditto_checkpoint import copy_state, state_dict_problems
    from models.motion_dit import MotionDiT

    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ModelLoadError(f"model folder {path} has no config.json")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{cfg_path}: not readable JSON ({exc})") from None
    cls_name = config.get("_class_name", "MotionDiT")
    if cls_name != "MotionDiT":
        raise ModelLoadError(f"{path}: a {cls_name} model, not a MotionDiT")
    weights = [path / n for n in ("diffusion_pytorch_model.safetensors", "model.safetensors")]
    weights = [w for w in weights if w.is_file()]
    if not weights:
        raise ModelLoadError(
            f"model folder {path} has no weights (diffusion_pytorch_model.safetensors)"
        )
    try:
        model = MotionDiT.from_config(config)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{cfg_path}: bad MotionDiT config ({exc})") from None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights[0]))
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{weights[0]}: not a readable safetensors file ({exc})") from None
    problems = state_dict_problems(model, state, limit=6)
    if problems:
        raise ModelLoadError(f"{weights[0]} does not match its config: " + "; ".join(problems))
    copy_state(model, state)
    return model.eval()


@dataclass
class LoadedModel:
    """A MotionDiT ready for the studio: ``dit``, the motion normalisation it was trained with
    (``stats``, models.training.MotionStats; None: raw packed motion, as Ditto's checkpoint),
    its canonical keypoints ``x_c [63]`` (None: unknown) and ``eye_scale``, the factor from the
    document's eye openness to the model's eye condition (Ditto: DITTO_EYE_OPEN)."""

    dit: Any
    name: str
    stats: Any = None
    x_c: np.ndarray | None = None
    eye_scale: float = 1.0

    def normalize(self, packed: np.ndarray) -> np.ndarray:
        return packed if self.stats is None else self.stats.normalize(packed)

    def denormalize(self, normed: np.ndarray) -> np.ndarray:
        return normed if self.stats is None else self.stats.denormalize(normed)

    def to(self, device: str) -> LoadedModel:
        self.dit.to(device)
        return self


def _load_default(device: str) -> tuple[LoadedModel | None, str]:
    """The shipped model (models.pretrained), or None and the reason while there is none."""
    try:
        from models.pretrained import load_default_motion_model
    except ImportError:
        return None, "no shipped motion model in this build"
    try:
        pm = load_default_motion_model(device)
    except (FileNotFoundError, OSError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        return None, (text[0].split(";")[0] if text else type(exc).__name__)
    return LoadedModel(pm.model.eval(), "default", pm.stats, np.asarray(pm.stats.x_c)), ""


def _folder_stats(path: Path) -> tuple[Any, np.ndarray | None]:
    """(MotionStats or None, x_c or None) of a model folder."""
    stats = None
    x_c = None
    if (path / "motion_stats.json").is_file():
        from models.training import MotionStats

        try:
            stats = MotionStats.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"{path / 'motion_stats.json'}: {exc}") from None
        x_c = np.asarray(stats.x_c, dtype=np.float64)
    elif (path / "canonical_keypoints.npy").is_file():
        x_c = np.load(path / "canonical_keypoints.npy").reshape(63)
    return stats, x_c


def load_motion_model(
    spec: str | Path, device: str = "cpu"
) -> tuple[LoadedModel | None, list[str]]:
    """Resolve ``spec`` to ``(model or None for procedural, notices)``.

    "procedural" -> None. "default" -> the shipped model (models.pretrained), or None with a
    notice while it is not installed. A folder -> MotionDiT from config.json + safetensors
    (checked strictly: missing / unexpected keys and shape mismatches are listed), with the
    folder's motion_stats.json when there is one; a ``.pth`` file -> Ditto's checkpoint
    (models.ditto_checkpoint). One model stays cached per (path, mtime, device).
    Raises ModelLoadError for a missing folder or file and for weights that do not match.
    """
    if str(spec) == "procedural":
        return None, []
    if str(spec) == "default":
        key: tuple = ("default", device)
        with _CACHE_LOCK:
            if key in _MODEL_CACHE:
                return _MODEL_CACHE[key], []
        model, why = _load_default(device)
        if model is None:
            note = (
                f"No trained motion model ({why}): using the procedural generator (rule-based "
                "lips, blinks and head sway)"
            )
            return None, [note]
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelLoadError(f"model folder {path} does not exist")
        files = [path, *path.iterdir()] if path.is_dir() else [path]
        key = (str(path.resolve()), max(f.stat().st_mtime_ns for f in files), device)
        with _CACHE_LOCK:
            if key in _MODEL_CACHE:
                return _MODEL_CACHE[key], []
        if path.is_file():
            from models.ditto_checkpoint import DittoCheckpointError, load_ditto_checkpoint

            try:
                dit = load_ditto_checkpoint(path)
            except DittoCheckpointError as exc:
                raise ModelLoadError(str(exc)) from None
            model = LoadedModel(dit, path.name, eye_scale=DITTO_EYE_OPEN)
        else:
            stats, x_c = _folder_stats(path)
            model = LoadedModel(_load_folder(path), path.name, stats, x_c)
    model.to(device).dit.eval()
    with _CACHE_LOCK:
        _MODEL_CACHE.clear()  # one model resident at a time
        _MODEL_CACHE[key] = model
    return model, []


def _load_intensity_model(spec: str | Path | None, device: str = "cpu"):
    """The A2I student for "intensity from audio" (a folder or "default"), or None when the
    default is not installed. Raises ModelLoadError for a folder that does not load."""
    if spec is None:
        return None
    try:
        from models.pretrained import load_default_intensity_model, load_intensity_model
    except ImportError:
        return None
    if str(spec) == "default":
        try:
            return load_default_intensity_model(device)
        except (FileNotFoundError, OSError, ValueError):
            return None
    try:
        return load_intensity_model(Path(spec).expanduser(), device)
    except (FileNotFoundError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load the A2I student from {spec}: {exc}") from None


def default_model_available() -> bool:
    """Whether the shipped motion model's files are installed (cheap: does not load it)."""
    try:
        from models.pretrained import DEFAULT_MOTION_DIR, models_dir
    except ImportError:
        return False
    folder = models_dir() / DEFAULT_MOTION_DIR
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def intensity_model_available(spec: str | Path | None = "default") -> bool:
    """Whether "intensity from audio" can run: the A2I student's files are there (cheap: does
    not load the model)."""
    if spec is None:
        return False
    if str(spec) == "default":
        try:
            from models.pretrained import DEFAULT_INTENSITY_DIR, models_dir
        except ImportError:
            return False
        spec = models_dir() / DEFAULT_INTENSITY_DIR
    folder = Path(spec)
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


# ------------------------------------------------------------------------------ audio
@dataclass
class _Audio:
    samples: np.ndarray  # [S] mono float32 at _SAMPLE_RATE, project frame `start` at sample 0
    clip: AudioClip | None  # a new clip to add (audio from a file not in the project)
    data: bytes | None
    span: tuple[int, int]  # project frames the audio covers
    clipped: float = 0.0  # fraction of the clip's samples (all channels) at full scale


def clipped_fraction(samples: np.ndarray) -> float:
    """Fraction of ``samples`` (any shape, float in [-1, 1]) at full scale (>= FULL_SCALE):
    measured on the file's own samples, before mixing and resampling smooth the plateaus."""
    x = np.asarray(samples)
    if x.size == 0:
        return 0.0
    return float(np.count_nonzero(np.abs(x) >= FULL_SCALE)) / x.size


def _clip_audio(
    project: Project, request: GenerateRequest
) -> tuple[Any, int, AudioClip | None, bytes | None]:
    """(AudioData, offset frame, new clip or None, its bytes)."""
    from studio.document.audio import read_audio
    from studio.project_ops import audio_asset_key, project_audio

    src = request.audio
    if src is None or (isinstance(src, str) and any(c.id == src for c in project.audio_clips)):
        if not project.audio_clips:
            raise GenerationError("the project has no audio: import speech or pass an audio file")
        clip = project.audio_clips[0] if src is None else project.audio_clip(str(src))
        return project_audio(project, clip), clip.offset, None, None
    path = Path(src)
    if not path.is_file():
        raise GenerationError(f"{path}: no such audio file")
    data = path.read_bytes()
    audio = read_audio(data, name=str(path))
    for clip in project.audio_clips:  # already embedded: use that clip
        if project.assets.get(clip.asset) == data and clip.offset == request.audio_offset:
            return audio, clip.offset, None, None
    key = base = audio_asset_key(path.name)
    n = 1
    while key in project.assets and project.assets[key] != data:
        n += 1
        key = f"{Path(base).with_suffix('')}_{n}{Path(base).suffix}"
    clip = AudioClip.new(path.stem, key, offset=int(request.audio_offset))
    return audio, clip.offset, clip, data


def _domain_audio(audio, offset: int, frame_rate: FrameRate, d0: int, d1: int) -> np.ndarray:
    """Mono float32 ``[S]`` at 16 kHz for project frames ``[d0, d1)``; silence where the clip
    does not play."""
    from studio.audio_mix import overlay, sample_offset
    from studio.document.audio import resample, to_mono

    mono = resample(to_mono(audio.samples), audio.sample_rate, _SAMPLE_RATE)
    out = np.zeros(max(1, sample_offset(d1 - d0, frame_rate, _SAMPLE_RATE)), dtype=np.float32)
    overlay(out, mono, sample_offset(offset - d0, frame_rate, _SAMPLE_RATE))
    return out


# ------------------------------------------------------------------------------ takes
def _freeze(hm: np.ndarray, i: int) -> None:
    """Keep key i's current (computed) handles when its neighbours change: FREE mode."""
    if hm[i] in (HandleMode.AUTO_CLAMPED, HandleMode.VECTOR):
        hm[i] = HandleMode.FREE


def splice_curve(old: Curve | None, new: Curve | None, channel: str, start: int, end: int) -> Curve:
    """``old`` outside ``[start, end)`` and ``new`` inside, evaluating bit-exactly as ``old`` at
    every integer frame outside the range.

    Old keys before ``start`` and from ``end`` on are kept (the two next to the range with their
    handles frozen, FREE, so their segments do not change); the old curve's values at the
    frames between the last kept key and the range (and between the range and the first kept
    key) become linear keys ("pins"), since the segment that crossed the range is cut. ``new``
    (keys inside the range; None: the channel's default) supplies the range.
    """
    default = float(CHANNEL_DEFAULTS[CHANNEL_INDEX[channel]])
    if new is None or new.is_empty:
        new = Curve(
            [start, end - 1] if end - 1 > start else [start],
            default,
            Interpolation.LINEAR,
            channel=channel,
        )
    inside = (new.frames >= start) & (new.frames < end)
    nf, nv = new.frames[inside], new.values[inside]
    parts_f = []
    parts = []  # (frames, values, interp, handle_mode, left, right)

    def add(f, v, it, hm, lh, rh) -> None:
        parts.append(
            (
                np.asarray(f, np.int64),
                np.asarray(v, np.float64),
                np.asarray(it, np.int8),
                np.asarray(hm, np.int8),
                np.asarray(lh, np.float64),
                np.asarray(rh, np.float64),
            )
        )
        parts_f.append(len(f))

    def add_linear(f: np.ndarray, v: np.ndarray) -> None:
        """Linear keys with FREE (unused) handles."""
        k = f.size
        add(
            f,
            v,
            np.full(k, Interpolation.LINEAR),
            np.full(k, HandleMode.FREE),
            np.zeros((k, 2)),
            np.zeros((k, 2)),
        )

    def pins(frames: np.ndarray) -> None:
        if frames.size:
            vals = (
                old.evaluate(frames, default) if old is not None else np.full(frames.size, default)
            )
            add_linear(frames, vals)

    if old is None or old.is_empty:
        pins(np.arange(start - 1, start) if start > 0 else np.zeros(0, np.int64))
        add_linear(nf, nv)
        pins(np.array([end]))
    else:
        of = old.frames
        pre = of < start
        post = of >= end
        hm = old.handle_mode.copy()
        ip, iq = np.flatnonzero(pre), np.flatnonzero(post)
        if ip.size:
            _freeze(hm, int(ip[-1]))
        if iq.size:
            _freeze(hm, int(iq[0]))
        if ip.size:
            add(of[pre], old.values[pre], old.interp[pre], hm[pre], old.left[pre], old.right[pre])
            pins(np.arange(int(of[ip[-1]]) + 1, start))
        elif start > 0:
            pins(np.array([start - 1]))
        add_linear(nf, nv)
        if iq.size:
            pins(np.arange(end, int(of[iq[0]])))
            add(
                of[post],
                old.values[post],
                old.interp[post],
                hm[post],
                old.left[post],
                old.right[post],
            )
        else:
            pins(np.array([end]))
    cat = [np.concatenate([p[j] for p in parts]) for j in range(6)]
    return Curve(*cat, channel=channel)


def _spliced_take(
    old: Take,
    dense: np.ndarray,  # [B - A, 90]
    channels: Sequence[str],
    start: int,
    name: str,
    metadata: dict,
) -> Take:
    from studio.project_ops import take_from_dense

    end = start + dense.shape[0]
    fresh = take_from_dense(dense, name=name, source="generated", start_frame=start)
    curves = dict(old.curves)
    for ch in channels:
        new = fresh.curves.get(ch)
        if new is None and ch not in old.curves:
            continue  # at its default inside the range and everywhere else
        curves[ch] = splice_curve(old.curves.get(ch), new, ch, start, end)
    return Take.new(name=name, curves=curves, source="generated", metadata=metadata)


# ------------------------------------------------------------------------------ helpers
def _to_project_frames(values: np.ndarray, fps: float, count: int, first: int = 0) -> np.ndarray:
    """Dense values at 25 fps ``[..., T, C]`` -> project frames ``first .. count - 1``
    ``[..., count - first, C]`` (linear in time). Reads only the model frames those need, so a
    preview tail costs O(tail), not O(T)."""
    first = min(max(0, int(first)), max(0, int(count)))
    if abs(fps - FPS) < 1e-9:
        return values[..., first:count, :]
    t = np.arange(first, count) * (FPS / fps)
    n = values.shape[-2]
    j = np.clip(np.floor(t).astype(int), 0, n - 1)
    j1 = np.minimum(j + 1, n - 1)
    w = np.clip(t - j, 0.0, 1.0)[:, None]
    return (1.0 - w) * values[..., j, :] + w * values[..., j1, :]


def _first_changed_frame(model_frame: int, fps: float) -> int:
    """The first project frame whose value reads model frame ``model_frame`` or a later one
    (:func:`_to_project_frames` interpolates between frames j and j + 1); conservative."""
    if abs(fps - FPS) < 1e-9:
        return max(0, int(model_frame))
    return max(0, math.floor((model_frame - 1) * fps / FPS))


class PreviewBuffer:
    """The preview so far, assembled from the tails that :func:`iter_generate` yields (and
    the generation child writes): :meth:`add` ``(values [F, C], start)`` writes project frames
    ``start .. start + F - 1`` in O(F) amortised; :attr:`values` ``[N, C]`` (float64, a view)
    holds project frames :attr:`start` .. ``start + N - 1``, NaN where no tail reached yet."""

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None
        self.start = 0
        self._end = 0  # one past the last frame written, project frames

    def clear(self) -> None:
        self._buf = None
        self.start = self._end = 0

    @property
    def values(self) -> np.ndarray | None:
        if self._buf is None:
            return None
        return self._buf[: self._end - self.start]

    def add(self, values: np.ndarray, start: int) -> None:
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape[0] == 0:
            return
        start, end = int(start), int(start) + v.shape[0]
        buf = self._buf
        if buf is not None and buf.shape[1] != v.shape[1]:
            self.clear()
            buf = None
        if buf is None:
            self.start = self._end = start
        lo, hi = min(start, self.start), max(end, self._end)
        if buf is None or lo < self.start or hi - lo > buf.shape[0]:
            # Grow geometrically: O(1) amortised per frame.
            new = np.full((max(64, 2 * (hi - lo)), v.shape[1]), np.nan)
            if buf is not None:
                new[self.start - lo : self._end - lo] = buf[: self._end - self.start]
            self._buf = buf = new
            self.start = lo
        buf[start - lo : end - lo] = v
        self._end = hi


def _fixed_emotion(name: str) -> np.ndarray:
    w = np.zeros(len(EMOTIONS))
    w[EMOTIONS.index(name)] = 1.0
    return w


@dataclass
class _Plan:
    fps: float
    a: int  # range, project frames
    b: int
    d0: int  # domain, project frames
    d1: int
    T: int  # model frames of the domain
    ra: int  # range in model frames
    rb: int
    base: np.ndarray  # [T, 90] the active take at the model frames
    before: np.ndarray  # [90] the motion just before the domain
    audio: _Audio


def _plan(project: Project, request: GenerateRequest) -> _Plan:
    fps = float(project.frame_rate.fps)
    audio, offset, clip, data = _clip_audio(project, request)
    n_clip = max(1, math.ceil(audio.duration * fps - 1e-9))
    span = (offset, offset + n_clip)
    if request.frame_range is None:
        a, b = max(0, span[0]), span[1]
        if b <= a:
            raise GenerationError("the audio clip lies before frame 0")
        d0, d1 = a, b
    else:
        a, b = (int(v) for v in request.frame_range)
        ctx = math.ceil((request.context + 1) * fps / FPS)
        d0, d1 = max(0, a - ctx), b + ctx
    T = max(1, math.ceil((d1 - d0) * FPS / fps - 1e-9))
    ra = math.floor((a - d0) * FPS / fps)
    rb = min(T, math.ceil((b - d0) * FPS / fps - 1e-9))
    times = d0 + np.arange(T) * (fps / FPS)
    base = project.active_take.evaluate(times)
    whole = request.frame_range is None and request.regions is None
    before = (
        np.asarray(CHANNEL_DEFAULTS, dtype=np.float64)
        if whole or d0 == 0
        else project.active_take.evaluate_frame(d0 - 1)
    )
    samples = _domain_audio(audio, offset, project.frame_rate, d0, d1)
    clipped = clipped_fraction(audio.samples)
    return _Plan(
        fps, a, b, d0, d1, T, ra, rb, base, before, _Audio(samples, clip, data, span, clipped)
    )


# ------------------------------------------------------------------------------ generation
def iter_generate(
    project: Project,
    request: GenerateRequest,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[GenerationProgress]:
    """Generate take(s) for ``request`` on ``project`` (not modified), yielding progress.

    Every event is a cancellation point: when ``cancel()`` returns True the job raises
    GenerationCancelled there (closing the generator works too). The last event has ``result``
    (a GenerationResult). Raises GenerationError / ModelLoadError (ValueErrors, one line) and
    AudioError for bad input.
    """
    request.validated()
    notices: list[str] = []

    def report(ev: GenerationProgress) -> GenerationProgress:
        if cancel is not None and ev.result is None and cancel():
            raise GenerationCancelled("motion generation cancelled")
        return ev

    yield report(GenerationProgress(0, 1, "reading the audio"))
    plan = _plan(project, request)
    # The procedural model runs on the CPU: no torch import (seconds) to ask about CUDA.
    procedural = str(request.model) == "procedural"
    device, dev_notes = ("cpu", []) if procedural else resolve_device(request.device)
    if not procedural:
        yield report(GenerationProgress(0, 1, "loading the model"))
    model, model_notes = load_motion_model(request.model, device)
    model_name = "procedural" if model is None else model.name
    if model is None:
        device, dev_notes = "cpu", []
    new_notes = dev_notes + model_notes
    notices += new_notes
    silent = float(np.max(np.abs(plan.audio.samples), initial=0.0)) < SILENCE_PEAK
    if silent:
        notices.append(
            "The audio is silent: generated idle motion (blinks and head sway, mouth closed)"
        )
    elif plan.audio.clipped >= CLIPPED_FRACTION:
        notices.append(
            f"The audio is clipped ({100 * plan.audio.clipped:.1f} % of samples at full "
            "scale); lips may look exaggerated"
        )
    yield report(GenerationProgress(0, 1, "preparing", tuple(notices)))

    # Conditions per model frame, from the active take's curves.
    base = plan.base
    if request.emotion is None:
        emotion_w = base[:, _EMO]
    else:
        emotion_w = np.broadcast_to(_fixed_emotion(request.emotion), (plan.T, len(EMOTIONS)))
    intensity = base[:, CHANNEL_INDEX["intensity"]].astype(np.float32)
    written = region_channels(request.regions)
    if request.emotion is not None:
        written += list(EMOTION_CHANNELS)
    if request.intensity == "audio":
        a2i = _load_intensity_model(request.intensity_model)
        if a2i is None:
            raise GenerationError(
                "intensity from audio needs the A2I student model, and none is available"
            )
        from models.audio_features import features_for_model

        feats = features_for_model(a2i.config)(plan.audio.samples, _SAMPLE_RATE)[: plan.T]
        feats = np.concatenate([feats, np.repeat(feats[-1:], plan.T - feats.shape[0], 0)])
        intensity = a2i.predict(feats).astype(np.float32)
        written.append("intensity")
        notices.append(f"Intensity from audio: mean {float(intensity.mean()):.2f}")

    n = int(request.variations)
    if model is None or silent:
        packed = None
        motions = []
        for i in range(n):
            m = _procedural(plan, request, emotion_w, intensity, silent, seed=request.seed + i)
            motions.append(m)
            yield report(GenerationProgress(i + 1, n, f"variation {i + 1}/{n}"))
        dense = np.stack(motions)  # [n, T, 90]
        device = "cpu"
    else:
        packed = None
        for ev in _neural(model, plan, request, emotion_w, intensity, device, notices):
            if ev.result is not None:
                packed = ev.result
                device = ev.text
                continue
            yield report(ev)
        assert packed is not None
        packed = packed.reshape(n, plan.T, -1)
        if not np.isfinite(packed).all():
            raise GenerationError(
                f"the model {model_name} produced NaN/inf motion (broken weights or inputs)"
            )
        from models.motion_space import unpack_ditto

        dense = unpack_ditto(packed, base=base)  # eye/emotion/intensity from the take's curves
        if request.emotion is not None:
            dense[..., _EMO] = emotion_w
        if request.intensity == "audio":
            dense[..., CHANNEL_INDEX["intensity"]] = intensity
        if request.pose_smoothing > 0:
            # Zero-phase smoothing of the decoded head pose, inside the range only.
            dense = smooth_pose(dense, float(request.pose_smoothing), plan.ra, plan.rb)
    limits = request.limits()
    if limits is not None:  # last, so nothing after them can exceed them
        dense = limits.apply(dense, plan.before)
    if not np.isfinite(dense).all():
        raise GenerationError("generation produced NaN/inf motion")

    # Into project frames, the range only; the rest stays the active take's.
    proj = _to_project_frames(dense, plan.fps, plan.d1 - plan.d0)  # [n, D, 90]
    inner = proj[:, plan.a - plan.d0 : plan.b - plan.d0]
    inner = _blend_edges(
        inner, project.active_take, plan, written, request, model is None or silent
    )
    takes = []
    for i in range(n):
        name = request.name or f"Generated (seed {request.seed})"
        if n > 1:
            name += f" {i + 1}/{n}"
        meta = {
            "generation": {
                "model": model_name,
                "steps": int(request.steps),
                "sampler": request.sampler,
                "guidance": float(request.guidance),
                "seed": int(request.seed),
                "variation": i,
                "range": [plan.a, plan.b],
                "regions": list(request.regions or REGIONS),
                "emotion": request.emotion or "curve",
                "intensity": request.intensity,
                "ic_init": bool(request.ic_init),
                "pose_smoothing": 0.0 if packed is None else float(request.pose_smoothing),
            }
        }
        if limits is not None:
            meta["generation"]["limits"] = limits.describe()
        takes.append(_spliced_take(project.active_take, inner[i], written, plan.a, name, meta))
    result = GenerationResult(
        takes=takes,
        frame_range=(plan.a, plan.b),
        notices=notices,
        audio_clip=plan.audio.clip,
        audio_data=plan.audio.data,
        duration=max(project.duration, plan.b),
        model=model_name,
        device=device,
    )
    preview = proj[0]
    yield GenerationProgress(1, 1, "done", (), preview, plan.d0, result)


def _blend_edges(
    inner: np.ndarray,
    take: Take,
    plan: _Plan,
    written: Sequence[str],
    request: GenerateRequest,
    procedural: bool,
) -> np.ndarray:
    """Range regeneration: crossfade from the active take at each edge of the range, over
    ``context`` frames for the procedural model (which knows nothing of the motion around the
    range) and over a quarter of that for a neural model (its windows already continue the
    re-imposed context, but a model that disagrees with the take would still pop)."""
    if request.frame_range is None:
        return inner
    ramp = int(request.context) if procedural else int(request.context) // 4
    k = min(ramp, inner.shape[1] // 2)
    if k <= 0:
        return inner
    old = take.evaluate(np.arange(plan.a, plan.b))
    cols = [CHANNEL_INDEX[c] for c in written]
    out = inner.copy()
    w = (np.arange(1, k + 1) / (k + 1))[:, None]
    if plan.a > 0:
        out[:, :k, cols] = (1 - w) * old[:k, cols] + w * inner[:, :k, cols]
    w = w[::-1]
    out[:, -k:, cols] = (1 - w) * old[-k:, cols] + w * inner[:, -k:, cols]
    return out


def _procedural(
    plan: _Plan,
    request: GenerateRequest,
    emotion_w: np.ndarray,
    intensity: np.ndarray,
    silent: bool,
    seed: int,
) -> np.ndarray:
    """Procedural motion ``[T, 90]`` at 25 fps with the emotion templates and intensity."""
    from models.emotion import apply_emotion_template
    from models.procedural import procedural_motion

    audio = None if silent else plan.audio.samples
    m = procedural_motion(audio, _SAMPLE_RATE, FPS, plan.T, seed=seed)
    # Intensity scales the motion about the rest pose (ConsistTalk's magnitude control).
    cols = [CHANNEL_INDEX[c] for c in (*POSE_CHANNELS, *EXP_CHANNELS)]
    m[:, cols] = CHANNEL_DEFAULTS[cols] + intensity[:, None] * (m[:, cols] - CHANNEL_DEFAULTS[cols])
    m = apply_emotion_template(m, np.asarray(emotion_w, dtype=np.float64))
    # Eye state and intensity stay the take's (the procedural blinks live in the lid channels).
    keep = [CHANNEL_INDEX[c] for c in CHANNELS if c.startswith(("eye_", "intensity"))]
    m[:, keep] = plan.base[:, keep]
    return m


def _neural(
    model: LoadedModel,
    plan: _Plan,
    request: GenerateRequest,
    emotion_w: np.ndarray,
    intensity: np.ndarray,
    device: str,
    notices: list[str],
) -> Iterator[GenerationProgress]:
    """Run the MotionDiT; yields progress, then one event with ``result`` = packed
    ``[n, T, 265]`` (or [T, 265]) and ``text`` = the device used. CUDA OOM -> CPU retry."""
    import torch

    from models.audio_features import features_for_model
    from models.motion_sampling import MotionConditions, iter_generate_motion
    from models.motion_space import pack_ditto

    dit = model.dit
    cfg = dit.config
    extractor = features_for_model(cfg, request.hubert_dir)
    feats = extractor(plan.audio.samples, _SAMPLE_RATE)
    T = plan.T
    if feats.shape[0] < T:
        feats = np.concatenate([feats, np.repeat(feats[-1:], T - feats.shape[0], axis=0)])
    feats = feats[:T]
    base = plan.base
    i = CHANNEL_INDEX
    x_c = request.canonical_keypoints
    if x_c is None:
        x_c = model.x_c
    x_c = np.zeros((21, 3)) if x_c is None else np.asarray(x_c, dtype=np.float64).reshape(21, 3)
    cond = MotionConditions(
        x_c=x_c,
        eye_open=model.eye_scale * base[:, i["eye_open_r"] : i["eye_open_l"] + 1],
        eye_ball=base[:, i["eye_ball_0"] : i["eye_ball_5"] + 1],
        emotion=np.asarray(emotion_w, dtype=np.float64),
    )
    whole = request.frame_range is None and request.regions is None
    limits = request.limits()
    kwargs: dict[str, Any] = dict(
        steps=int(request.steps),
        guidance_scale=float(request.guidance),
        seed=int(request.seed),
        scheduler=request.sampler,
        overlap=min(int(request.overlap), cfg.seq_len - 1),
        num_variations=int(request.variations),
        intensity=None if np.all(intensity == 1.0) else intensity,
    )
    if request.ic_init:
        kwargs["ic_init"] = True  # models.motion_sampling.ICInitSettings.paper()
    # In the model's (normalised) space.
    packed_base = model.normalize(pack_ditto(base))
    # The motion before the domain: the source's rest pose for a fresh generation (as Ditto),
    # the active take's frame before the domain otherwise. A reference outside the training
    # range is clipped rather than extrapolated (as models.pretrained does).
    ref = model.normalize(pack_ditto(plan.before))
    if model.stats is not None:
        ref = np.clip(ref, -6.0, 6.0)
        # Dims that never varied in training only ever saw the mean (0 once normalised).
        ref[np.asarray(model.stats.constant, dtype=bool)] = 0.0
    if not whole:
        kwargs["init_motion"] = packed_base
        if request.frame_range is not None:
            kwargs["frame_range"] = (plan.ra, max(plan.ra + 1, plan.rb))
            kwargs["context"] = int(request.context)
        if request.regions is not None:
            kwargs["regions"] = list(request.regions)
    from models.motion_space import unpack_ditto

    dev = device
    while True:
        try:
            model.to(dev)
            shown = None  # [T, 90] the preview's channels at model frames (the take elsewhere)
            for ev in iter_generate_motion(dit, feats, cond, ref, **kwargs):
                if ev.result is not None:
                    yield GenerationProgress(0, 0, dev, result=model.denormalize(ev.result))
                    return
                preview, first = None, 0
                if ev.preview is not None:
                    # Convert only the frames this window changed (O(window), not O(frames so
                    # far)) into a buffer, and send those project frames as the preview tail.
                    if shown is None:
                        shown = np.array(base, dtype=np.float64)
                    m0 = ev.preview_offset + ev.preview_from
                    m1 = ev.preview_offset + ev.preview.shape[0]
                    packed = model.denormalize(ev.preview[ev.preview_from :])
                    shown[m0:m1] = unpack_ditto(packed, base=base[m0:m1])
                    if limits is not None:
                        shown[m0:m1] = limits.apply(shown[m0:m1], plan.before)
                    count = min(plan.d1 - plan.d0, int(m1 * plan.fps / FPS))
                    first = min(_first_changed_frame(m0, plan.fps), count)
                    preview = _to_project_frames(shown[:m1], plan.fps, count, first)
                text = f"step {ev.step}/{ev.total} (window {ev.window + 1}/{ev.num_windows})"
                yield GenerationProgress(
                    ev.step, ev.total, text, preview=preview, preview_start=plan.d0 + first
                )
            return
        except Exception as exc:
            if dev != "cuda" or not _is_oom(exc):
                raise
            model.to("cpu")
            torch.cuda.empty_cache()
            dev = "cpu"
            note = "CUDA ran out of memory: generating on the CPU instead (slower)"
            notices.append(note)
            yield GenerationProgress(0, 1, "retrying on the CPU", (note,))


def generate(
    project: Project,
    request: GenerateRequest,
    callback: Callable[[GenerationProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> GenerationResult:
    """Run :func:`iter_generate` to the end; ``callback`` sees every event. Raises as
    iter_generate does."""
    for ev in iter_generate(project, request, cancel):
        if callback is not None:
            callback(ev)
        if ev.result is not None:
            return ev.result
    raise GenerationError("generation ended without a result")  # pragma: no cover


def generation_edit(project: Project, result: GenerationResult, label: str = "") -> CompoundEdit:
    """One undo step adding ``result``: the audio clip (when it came from a file), every take
    (the first becomes active) and a longer duration when the takes need one."""
    edits: list = []
    if result.audio_clip is not None:
        edits.append(AddAudioClip(result.audio_clip, asset_data=result.audio_data))
    for take in result.takes:
        edits.append(AddTake(take))
    if result.takes:
        edits.append(SetActiveTake(result.takes[0].id))
    if result.duration > project.duration:
        whole = tuple(project.work_range) == (0, project.duration)
        edits.append(
            SetSettings(
                duration=result.duration, work_range=(0, result.duration) if whole else None
            )
        )
    n = len(result.takes)
    label = label or (f"Generate {n} takes" if n > 1 else f"Generate {result.takes[0].name}")
    return CompoundEdit(edits, label=label)
