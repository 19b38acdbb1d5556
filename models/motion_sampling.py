"""Sampling motion from a MotionDiT with diffusers schedulers: offline, streaming, constrained.

Ditto's recipe: 1000 training steps with the cosine ("squaredcos_cap_v2") schedule, x0
prediction (``prediction_type="sample"``), DDIM on the "trailing" timesteps 999, 899, ..., 99
(10 steps) with eta = 1, classifier-free guidance 2. Long audio is cut into windows of
``seq_len`` (80) frames overlapping by ``overlap`` (10); each window's reference motion is the
already generated frame just before it (the model was trained with the frame preceding the
segment), and overlaps are joined by a linear crossfade.

Constraints re-impose known values at every denoising step (inpainting): after each scheduler
step the kept entries are replaced by the known motion noised to the next timestep, and after the
last step by the known motion itself; the returned array copies kept entries from the input, so
they are bit-exact. This serves range regeneration (keep frames outside ``[start, end)``) and
region masks (generate only lips / eyes / brows / pose dims, keep the others).

Entry points:
- :func:`iter_generate_motion`: a generator yielding :class:`GenerationProgress` after every
  denoising step (a cancellation point) with a preview after every window; the last event holds
  the result.
- :func:`generate_motion`: the same, driven to the end, with ``callback`` and ``cancel``.
- :class:`MotionStream`: consumes audio features in chunks and returns frames as soon as a hop
  of new frames can be generated (earlier frames are re-imposed as context).

Shapes: T frames, A audio features, M = 265 (Ditto's packed motion, models/motion_space.py's
pack_ditto/unpack_ditto convert), 79 extra condition values per frame.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from models import ic_init as ic_init_mod
from models.motion_dit import EXTRA_COND_DIM, EncodedCondition, MotionDiT
from models.motion_space import (
    BROWS,
    CHANNEL_DEFAULTS,
    CHANNEL_INDEX,
    EMOTIONS,
    EYES,
    LIPS,
    channel_name,
    pack_ditto,
)

__all__ = [
    "REGIONS",
    "GenerationCancelled",
    "GenerationProgress",
    "ICInitSettings",
    "MotionConditions",
    "MotionStream",
    "crossfade_windows",
    "generate_motion",
    "iter_generate_motion",
    "make_scheduler",
    "packed_keypoint_view",
    "region_dims",
    "window_starts",
]


class GenerationCancelled(Exception):
    """Raised by :func:`generate_motion` when ``cancel()`` returned True."""


# --- conditions ----------------------------------------------------------------------------------
@dataclass
class MotionConditions:
    """The non-audio per-frame condition, in Ditto's units and order.

    x_c: [63] or [21, 3] canonical keypoints of the head; emotion: [8] or [T, 8] weights in
    EMOTIONS order (default: neutral); eye_open: [2] or [T, 2] and eye_ball: [6] or [T, 6],
    Ditto's eye aspect ratios and pupil offsets. Per-frame arrays shorter than the audio hold
    their last row.
    """

    x_c: np.ndarray
    eye_open: np.ndarray
    eye_ball: np.ndarray
    emotion: np.ndarray = field(
        default_factory=lambda: np.eye(len(EMOTIONS))[EMOTIONS.index("neutral")]
    )

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[stop - start, 79]`` (float32) for frames ``start..stop-1``."""
        parts = []
        idx = np.arange(start, stop)
        for name, width in (("emotion", 8), ("eye_open", 2), ("eye_ball", 6), ("x_c", 63)):
            a = np.asarray(getattr(self, name))
            if name == "x_c":
                a = a.reshape(-1)
            if a.shape[-1] != width or a.ndim not in (1, 2):
                raise ValueError(f"MotionConditions.{name}: expected [{width}] or [T, {width}]")
            # Pick the rows first: converting / checking a whole [T, width] array per window
            # would cost O(T) per window (an hour of audio is 90k frames).
            rows = a if a.ndim == 1 else a[np.minimum(idx, a.shape[0] - 1)]
            rows = np.asarray(rows, dtype=np.float32)
            if not np.all(np.isfinite(rows)):
                raise ValueError(f"MotionConditions.{name} has NaN/inf values")
            parts.append(np.broadcast_to(rows, (idx.size, width)) if a.ndim == 1 else rows)
        return np.concatenate(parts, axis=1)


# --- regions -------------------------------------------------------------------------------------
def _channels_for(region: str) -> list[str]:
    kps = {"lips": LIPS, "eyes": EYES, "brows": BROWS, "expression": range(21)}
    if region == "pose":
        return ["pitch", "yaw", "roll", "tx", "ty", "tz", "scale"]
    if region in kps:
        return [channel_name(k, a) for k in kps[region] for a in range(3)]
    raise ValueError(f"unknown region {region!r}; choose from {', '.join(REGIONS)}")


REGIONS = ("lips", "eyes", "brows", "pose", "expression")


def region_dims(*regions: str) -> np.ndarray:
    """Bool mask ``[265]`` of the packed dims that carry the named regions.

    Found through pack_ditto (the one place that knows the packed layout): a dim belongs to a
    region when changing the region's channels changes it. Raises ValueError for unknown names.
    """
    base = pack_ditto(CHANNEL_DEFAULTS[None])[0]
    # Sweep each channel over a wide range: an angle's 66 bin logits each respond to some angle.
    sweep = np.linspace(-100.0, 100.0, 201)
    mask = np.zeros(base.shape[0], dtype=bool)
    for region in regions:
        v = np.repeat(np.array(CHANNEL_DEFAULTS, dtype=np.float64)[None], sweep.size, axis=0)
        for name in _channels_for(region):
            v[:, CHANNEL_INDEX[name]] += sweep
        mask |= np.any(pack_ditto(v) != base, axis=0)
    return mask


# --- schedulers and windows ----------------------------------------------------------------------
def make_scheduler(kind: str = "ddim", num_train_timesteps: int = 1000):
    """A diffusers scheduler set up for Ditto's x0-predicting model ("ddim" or "lcm").

    Raises ValueError for another kind."""
    from diffusers import DDIMScheduler, LCMScheduler

    common = dict(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="sample",
        clip_sample=False,
        timestep_spacing="trailing",
    )
    if kind == "ddim":
        return DDIMScheduler(**common, set_alpha_to_one=True)
    if kind == "lcm":
        return LCMScheduler(**common)
    raise ValueError(f"unknown scheduler {kind!r} (use 'ddim' or 'lcm')")


def window_starts(num: int, seq_len: int, overlap: int) -> list[int]:
    """Start frames of windows of ``seq_len`` overlapping by ``overlap`` that cover ``num``
    frames (the last window may run past the end)."""
    if not 0 <= overlap < seq_len:
        raise ValueError(f"overlap must be in [0, {seq_len}), got {overlap}")
    stride = seq_len - overlap
    starts = [0]
    while starts[-1] + seq_len < num:
        starts.append(starts[-1] + stride)
    return starts


def _fuse_into(out: np.ndarray, win: np.ndarray, start: int, end: int) -> int:
    """Write ``win [..., L, M]`` into ``out [..., N, M]`` at ``start``; the first ``end - start``
    frames (those already written) are crossfaded linearly. Returns the new written end."""
    L = win.shape[-2]
    o = max(0, end - start)
    if o:
        w = (np.arange(1, o + 1) / (o + 1))[:, None]
        out[..., start : start + o, :] = (1.0 - w) * out[..., start : start + o, :] + w * win[
            ..., :o, :
        ]
    out[..., start + o : start + L, :] = win[..., o:, :]
    return start + L


def crossfade_windows(windows: Sequence[np.ndarray], starts: Sequence[int], num: int) -> np.ndarray:
    """Join windows ``[L, M]`` starting at ``starts`` into ``[num, M]`` (float64).

    Where window k overlaps the frames already written (``O = prev_end - start`` frames), the
    result is ``(1 - w) * previous + w * window`` with ``w`` rising linearly from
    ``1 / (O + 1)`` to ``O / (O + 1)``; elsewhere each frame comes from one window unchanged.
    """
    L, M = np.shape(windows[0])
    out = np.zeros((max(s + L for s in starts), M), dtype=np.float64)
    end = 0
    for win, s in zip(windows, starts, strict=True):
        end = _fuse_into(out, np.asarray(win, dtype=np.float64), s, end)
    return out[:num]


# --- progress ------------------------------------------------------------------------------------
@dataclass
class GenerationProgress:
    """One step of a generation: ``step`` of ``total`` denoising steps done (over all windows),
    the window being generated, a ``preview [frames, 265]`` of the motion joined so far (first
    variation; set after each window) and on the final event the ``result``.

    ``preview`` is a read-only view into the generator's buffer, valid until the generator is
    resumed (later windows crossfade into its last frames): copy it to keep it. Frames before
    ``preview_from`` are unchanged since the previous preview, so a consumer that keeps its own
    converted copy only needs ``preview[preview_from:]`` (O(window) per window; converting the
    whole preview every window is O(frames^2) over a long generation). Row 0 of the preview is
    frame ``preview_offset`` of the features (the start of the generated span: 0 unless a
    ``frame_range`` with context starts later)."""

    step: int
    total: int
    window: int
    num_windows: int
    preview: np.ndarray | None = None
    result: np.ndarray | None = None
    preview_from: int = 0
    preview_offset: int = 0

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.total)


# --- IC-Init -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ICInitSettings:
    """IC-Init (ConsistTalk's noise search, models.ic_init) for a generation.

    ``search``:

    - ``"sequence"`` (the paper's Algorithm 1): one beam search over all windows. ``beams`` (B)
      paths are kept; for each, ``candidates`` (K) initial noises of the next window are denoised
      for ``lookahead`` (T') of ``steps`` (T) DDIM steps (eta 0), the top B of the B * K pairs by
      reward are denoised on to the end, and after the last window the path with the highest
      summed reward is the result (its windows joined by the usual crossfade; with ``eta > 0``
      each window is re-sampled from the path's noise). A window's model reference is the frame
      before it on its own path. Needs ``seq_len - overlap - 1 >= overlap`` (the frame before a
      window is not itself crossfaded) and no constraints; otherwise the per-window search runs.
    - ``"window"`` (the field's default, the earlier adaptation; ``ic_init=True`` and
      :meth:`paper` use "sequence"): one search per window, its parent the window before as
      generated, so beams > 1 only finish runners-up; the window is then sampled from the chosen
      noise with ``steps`` DDIM steps and ``eta`` (0: the searched path).

    Reward (models.ic_init, module docstring): ``similarity`` ("dot", the paper's, or "cosine")
    of the candidate's low band with the reference's, weighted by ``lambda_low``, minus
    (``use_previous``) its high-band similarity with the previous window, weighted by ``1 -
    lambda_low``; ``lambda_rule`` "text" (``sigmoid(-z)``) or "formula" (``sigmoid(z)``), ``z``
    the window's mean intensity z-normalised over the windows (0 without intensity).
    ``reference``: "source" (the paper's: the motion before frame 0, i.e. the portrait's, fixed)
    or "frame_before" (the frame before the window; "window" search only). ``reward_on``: "x0"
    (the clean estimate at the lookahead step against the clean targets) or "latent" (the
    paper's: the lookahead latent against targets noised with ``tau`` steps; ``tau`` None = 2/3
    of ``steps``). ``continuity`` > 0 (our variant, not the paper's): minus ``continuity`` times
    the low-band distance between the candidate's first frames and the previous window's frames
    they join, relative to that window's typical frame step (models.ic_init.junction_penalty).
    ``cutoff`` / ``axes_weight``: the Gaussian low-pass (default: along time only, the motion
    dims have no order). ``view``: optional map ``[N, L, M] -> [N, L, ...]`` of what the reward
    sees (e.g. denormalised keypoints).

    Presets: :meth:`paper` (ConsistTalk as written: sequence search, latent reward against the
    source, dot product, B=2, K=4, T'=3, T=30, tau=20) and :meth:`seamless` (our variant: the
    same search scored on x0 with the cosine reward plus the junction term). ``ic_init=True``
    means :meth:`paper`, see :func:`_as_ic_settings`.
    """

    beams: int = 2
    candidates: int = 4
    lookahead: int = 3
    steps: int = 30
    tau: int | None = None
    eta: float = 0.0
    reward_on: str = "x0"
    use_previous: bool = True
    cutoff: float = 0.25
    axes_weight: tuple[float, ...] | None = (1.0, 0.0)
    view: Callable[[torch.Tensor], torch.Tensor] | None = None
    search: str = "window"
    reference: str = "frame_before"
    similarity: str = "dot"
    lambda_rule: str = "text"
    continuity: float = 0.0

    @classmethod
    def paper(cls, **changes) -> ICInitSettings:
        """ConsistTalk's IC-Init as written (B=2, K=4, T'=3, T=30, tau=20, latent reward against
        the source, dot product, beams over the whole sequence); ``changes`` override fields."""
        base = dict(search="sequence", reward_on="latent", reference="source", tau=20)
        return cls(**{**base, **changes}).validated()

    @classmethod
    def seamless(cls, **changes) -> ICInitSettings:
        """Our variant: the paper's search, scored on the lookahead x0 with the cosine reward
        plus the junction term (continuity 1); ``changes`` override fields."""
        base = dict(search="sequence", reward_on="x0", reference="source", similarity="cosine",
                    continuity=1.0)  # fmt: skip
        return cls(**{**base, **changes}).validated()

    @property
    def tau_steps(self) -> int:
        return max(1, round(2 * self.steps / 3)) if self.tau is None else int(self.tau)

    def validated(self) -> ICInitSettings:
        """Returns self; raises ValueError naming the first bad setting."""
        if not (self.beams >= 1 and self.candidates >= 1 and self.steps >= 1):
            raise ValueError("ICInitSettings: beams, candidates and steps must be >= 1")
        if not 1 <= self.lookahead <= self.steps or not 1 <= self.tau_steps <= self.steps:
            raise ValueError(
                f"ICInitSettings: need 1 <= lookahead, tau <= steps, got T'={self.lookahead}, "
                f"tau={self.tau_steps}, T={self.steps}"
            )
        if self.reward_on not in ("x0", "latent"):
            raise ValueError(
                f"ICInitSettings: reward_on must be x0 or latent, not {self.reward_on!r}"
            )
        if not (np.isfinite(self.eta) and self.eta >= 0):
            raise ValueError(f"ICInitSettings: eta must be >= 0, got {self.eta}")
        choices = {
            "search": ("window", "sequence"),
            "reference": ("source", "frame_before"),
            "similarity": ("dot", "cosine"),
            "lambda_rule": ("text", "formula"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"ICInitSettings: {name} must be one of {allowed}, not {getattr(self, name)!r}"
                )
        if self.search == "sequence" and self.reference == "frame_before":
            raise ValueError("ICInitSettings: reference 'frame_before' needs search 'window'")
        if not (np.isfinite(self.continuity) and self.continuity >= 0):
            raise ValueError(f"ICInitSettings: continuity must be >= 0, got {self.continuity}")
        return self


def packed_keypoint_view(
    mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A view for :class:`ICInitSettings` (``view=``): packed Ditto motion ``[N, L, 265]`` (in the
    model's normalised space ``(packed - mean) / std`` when ``mean`` / ``std [265]`` are given,
    e.g. models.training.MotionStats) -> ``[N, L, 69]``: the 21 expression keypoints, the
    translation and the head angles (radians times the nose tip's lever arm 0.6), all in keypoint
    units, so every part weighs what it moves on the face (benchmarks/ic_init.py measures seams
    in the same view)."""
    m = None if mean is None else torch.as_tensor(np.asarray(mean), dtype=torch.float32)
    sd = None if std is None else torch.as_tensor(np.asarray(std), dtype=torch.float32)
    from models.motion_space import DITTO_ANGLES, DITTO_EXP, DITTO_NUM_BINS, DITTO_T

    bins = torch.arange(DITTO_NUM_BINS, dtype=torch.float32)

    def view(z: torch.Tensor) -> torch.Tensor:
        if sd is not None:
            z = z * sd.to(z)
        if m is not None:
            z = z + m.to(z)
        b = bins.to(z)
        # Degrees as models.motion_space.angles_from_bin_logits, in torch (differentiable).
        ang = [3.0 * (torch.softmax(z[..., sl], -1) * b).sum(-1) - 97.5 for sl in DITTO_ANGLES]
        ang = torch.stack(ang, -1) * (np.pi / 180 * 0.6)
        return torch.cat([z[..., DITTO_EXP], z[..., DITTO_T], ang], dim=-1)

    return view


def _as_ic_settings(ic_init: bool | ICInitSettings | None) -> ICInitSettings | None:
    """None/False: off; True: :meth:`ICInitSettings.paper` (on the shipped model no variant
    lowers seams beyond the spread over seeds, benchmarks/ic_init.py; the paper's is the best
    at the default overlap and the cheapest search); settings: validated."""
    if ic_init is None or ic_init is False:
        return None
    if ic_init is True:
        return ICInitSettings.paper()
    if isinstance(ic_init, ICInitSettings):
        return ic_init.validated()
    raise ValueError(f"ic_init must be a bool or ICInitSettings, got {type(ic_init).__name__}")


class _SearchAborted(BaseException):
    """Unwinds the search thread when its generator is closed (BaseException: not caught by
    ``except Exception`` in the search)."""


_R = TypeVar("_R")


def _lockstep(fn: Callable[[Callable[..., None]], _R]) -> Generator[object, None, _R]:
    """Run ``fn(tick)`` in a thread in lockstep with this generator: every ``tick(value=None)``
    inside ``fn`` yields ``value`` here and blocks ``fn`` until the generator is resumed, so a
    blocking call (ic_init_search) reports progress per denoiser call and can be abandoned
    between two calls.
    Returns fn's result; fn's exceptions are re-raised here. Closing the generator makes the
    next ``tick()`` raise and waits for the thread to end."""
    events: queue.Queue = queue.Queue()
    go: queue.Queue = queue.Queue()

    def tick(value=None) -> None:
        events.put(("tick", value))
        if not go.get():
            raise _SearchAborted

    def work() -> None:
        try:
            events.put(("done", fn(tick)))
        except _SearchAborted:
            events.put(("aborted", None))
        except BaseException as exc:  # handed to the consumer
            events.put(("error", exc))

    thread = threading.Thread(target=work, name="ic-init-search", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = events.get()
            if kind == "tick":
                yield value
                go.put(True)
            elif kind == "done":
                return value
            else:
                raise value
    finally:
        if thread.is_alive():
            go.put(False)
            thread.join()


def _search_kwargs(ic: ICInitSettings, overlap: int) -> dict:
    """ic_init_search's reward and search settings from ICInitSettings."""
    return dict(
        beams=ic.beams, candidates=ic.candidates, lookahead=ic.lookahead, num_steps=ic.steps,
        tau=ic.tau_steps, reward_on=ic.reward_on, cutoff=ic.cutoff, axes_weight=ic.axes_weight,
        view_fn=ic.view, similarity=ic.similarity, lambda_rule=ic.lambda_rule,
        use_previous=ic.use_previous, continuity=ic.continuity, overlap=overlap,
    )  # fmt: skip


def _model_x0(
    model: MotionDiT,
    x: torch.Tensor,
    ref: torch.Tensor,  # [N, M]
    t: torch.Tensor,
    cond: EncodedCondition,  # batch N
    uncond: EncodedCondition | None,
    guidance_scale: float,
    limits: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    x0 = model.guided_denoise(x, ref, t, cond, uncond, guidance_scale).float()
    return x0 if limits is None else torch.clamp(x0, limits[0], limits[1])


def _search_window(
    model: MotionDiT,
    settings: ICInitSettings,
    cond1: EncodedCondition,  # batch 1
    uncond: EncodedCondition | None,
    ref: torch.Tensor,  # [M] the frame before the window (the model's reference)
    source: torch.Tensor,  # [M] the motion before the generated span (the paper's reference)
    prev_window: torch.Tensor | None,  # [L, M] the previous window as generated (CPU)
    z_score: float,
    known: torch.Tensor | None,
    keep: torch.Tensor | None,  # [L, M]
    guidance_scale: float,
    generator: torch.Generator,
    limits: tuple[torch.Tensor, torch.Tensor] | None,
    overlap: int,
) -> Generator[None, None, torch.Tensor]:
    """IC-Init for one window and variation ("window" search): yields None after every denoiser
    call of the search, returns the chosen initial noise ``[L, M]`` (CPU)."""
    cfg = model.config
    L, M = cfg.seq_len, cfg.motion_dim
    device = ref.device
    ic = settings
    sched = make_scheduler("ddim")
    target = ref if ic.reference == "frame_before" else source
    reference = target.float().cpu()[None].expand(L, M).clone()
    known_noise = None
    if known is not None:
        known_noise = torch.randn((L, M), generator=generator).to(device)
    threads = torch.get_num_threads()
    conds: dict[int, EncodedCondition] = {}

    def search(tick: Callable[[], None]) -> torch.Tensor:
        torch.set_num_threads(threads)  # OpenMP's thread count is per thread
        with torch.inference_mode():

            def denoise_fn(x: torch.Tensor, i: int, _seg: int, _prev) -> torch.Tensor:
                N = x.shape[0]
                t = sched.timesteps[i]
                xd = x.to(device)
                if known is not None:
                    noisy = sched.add_noise(known, known_noise, t.reshape(1).to(device))
                    xd = torch.where(keep, noisy, xd)
                if N not in conds:
                    conds[N] = cond1.repeat(N)
                x0 = _model_x0(model, xd, ref[None].expand(N, M), t, conds[N], uncond,
                               guidance_scale, limits)  # fmt: skip
                if known is not None:
                    x0 = torch.where(keep, known, x0)
                tick()
                return x0.cpu()

            # One segment with a fixed parent: the parent's segment reaches the reward through a
            # wrapper that hands it to ic_init_search as the previous segment of every candidate.
            best, _, _ = ic_init_mod.ic_init_search(
                denoise_fn, sched, (L, M), 1, reference, None, generator=generator,
                z_scores=np.array([z_score]), parent=prev_window, **_search_kwargs(ic, overlap),
            )  # fmt: skip
            return best[0]

    return (yield from _lockstep(search))


def _search_sequence(
    model: MotionDiT,
    settings: ICInitSettings,
    conds1: list[EncodedCondition],  # per window, batch 1
    unconds: list[EncodedCondition | None],  # per window
    source: torch.Tensor,  # [M] the motion before frame 0 (the model's first reference)
    z_scores: np.ndarray,  # [W]
    guidance_scale: float,
    generator: torch.Generator,
    limits: tuple[torch.Tensor, torch.Tensor] | None,
    overlap: int,
) -> Generator[None, None, tuple[torch.Tensor, torch.Tensor]]:
    """IC-Init over all windows of one variation ("sequence" search, the paper's): yields the
    window being searched after every denoiser call, returns ``(noise [W, L, M], windows
    [W, L, M])`` of the best path (CPU; the windows as denoised with eta 0)."""
    cfg = model.config
    L, M = cfg.seq_len, cfg.motion_dim
    device = source.device
    ic = settings
    sched = make_scheduler("ddim")
    reference = source.float().cpu()[None].expand(L, M).clone()
    threads = torch.get_num_threads()
    before = L - overlap - 1  # index, in a window, of the frame before the next window

    def search(tick: Callable[[], None]) -> tuple[torch.Tensor, torch.Tensor]:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            conds: dict[tuple[int, int], EncodedCondition] = {}

            def denoise_fn(x: torch.Tensor, i: int, seg: int, prev) -> torch.Tensor:
                N = x.shape[0]
                if (seg, N) not in conds:
                    conds.clear()  # one window at a time
                    conds[seg, N] = conds1[seg].repeat(N)
                ref = source[None].expand(N, M) if prev is None else prev[:, before].to(device)
                x0 = _model_x0(model, x.to(device), ref, sched.timesteps[i], conds[seg, N],
                               unconds[seg], guidance_scale, limits)  # fmt: skip
                tick(seg)
                return x0.cpu()

            best, _, trace = ic_init_mod.ic_init_search(
                denoise_fn, sched, (L, M), len(conds1), reference, None, generator=generator,
                z_scores=z_scores, **_search_kwargs(ic, overlap),
            )  # fmt: skip
            return best, trace.segments

    return (yield from _lockstep(search))


# --- the window sampler --------------------------------------------------------------------------
def _window_sampler(
    model: MotionDiT,
    scheduler,
    steps: int,
    cond: EncodedCondition,
    uncond: EncodedCondition | None,
    ref: torch.Tensor,  # [B, M]
    known: torch.Tensor | None,  # [L, M] values to keep
    keep: torch.Tensor | None,  # [L, M] bool, True = keep
    guidance_scale: float,
    generator: torch.Generator,
    limits: tuple[torch.Tensor, torch.Tensor] | None,
    eta: float,
    init: torch.Tensor | None = None,  # [B, L, M] initial noise (None: drawn from generator)
) -> Iterator[torch.Tensor | None]:
    """Denoise one window; yields None after each step, finally the sample ``[B, L, M]``.

    With ``init`` the generator's draw of the initial noise still happens (and is discarded), so
    the rest of its stream, and hence every other window, is as without ``init``."""
    cfg = model.config
    B = ref.shape[0]
    shape = (B, cfg.seq_len, cfg.motion_dim)
    device = ref.device
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
    if init is not None:
        x = init.to(device=device, dtype=torch.float32)
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    if known is not None:
        known_noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
        known_b = known[None].expand(shape)

        def impose(x: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
            target = known_b if t is None else scheduler.add_noise(known_b, known_noise, t[None])
            return torch.where(keep, target, x)

        x = impose(x, timesteps[0])
    is_ddim = type(scheduler).__name__ == "DDIMScheduler"
    for i, t in enumerate(timesteps):
        x0 = model.guided_denoise(x, ref, t, cond, uncond, guidance_scale).float()
        if limits is not None:
            x0 = torch.clamp(x0, limits[0], limits[1])
        kwargs = {"eta": eta} if is_ddim else {}
        x = scheduler.step(x0, t, x, generator=generator, **kwargs).prev_sample
        if known is not None:
            x = impose(x, timesteps[i + 1] if i + 1 < len(timesteps) else None)
        yield None
    if limits is not None:
        x = torch.clamp(x, limits[0], limits[1])
    yield x


def _as_limits(limits, device) -> tuple[torch.Tensor, torch.Tensor] | None:
    if limits is None:
        return None
    lo, hi = (torch.as_tensor(np.asarray(v, dtype=np.float32), device=device) for v in limits)
    if torch.any(lo > hi):
        raise ValueError("limits: lower bound above upper bound")
    return lo, hi


def _validate(model: MotionDiT, features: np.ndarray, ref_motion: np.ndarray) -> tuple:
    cfg = model.config
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[1] != cfg.audio_dim or feats.shape[0] == 0:
        raise ValueError(f"features must be [T > 0, {cfg.audio_dim}], got {feats.shape}")
    if not np.all(np.isfinite(feats)):
        raise ValueError("features contain NaN/inf")
    ref = np.asarray(ref_motion, dtype=np.float32).reshape(-1)
    if ref.shape != (cfg.motion_dim,) or not np.all(np.isfinite(ref)):
        raise ValueError(f"ref_motion must be finite [{cfg.motion_dim}], got {ref.shape}")
    return feats, ref


def _cond_rows(
    feats: np.ndarray, conditions: MotionConditions, start: int, stop: int
) -> np.ndarray:
    """Condition rows ``[stop - start, A + 79]``; frames past the audio repeat its last row."""
    idx = np.minimum(np.arange(start, stop), feats.shape[0] - 1)
    extra = conditions.frames(start, stop)
    if extra.shape[1] != EXTRA_COND_DIM:
        raise ValueError("MotionConditions must give 79 values per frame")
    return np.concatenate([feats[idx], extra], axis=1)


def _model_device(model: MotionDiT) -> torch.device:
    return next(model.parameters()).device


InitNoise = np.ndarray | torch.Tensor | Callable[[int, int], "np.ndarray | torch.Tensor | None"]


def _init_noise_source(
    init_noise: InitNoise | None, num_windows: int, n: int, L: int, M: int
) -> Callable[[int, int], torch.Tensor | None]:
    """``(window, start) -> [n, L, M] | None`` from iter_generate_motion's init_noise."""
    if init_noise is None:
        return lambda k, s: None
    if not callable(init_noise):
        arr = np.asarray(init_noise, dtype=np.float32)
        if arr.shape not in ((num_windows, L, M), (num_windows, n, L, M)):
            raise ValueError(
                f"init_noise must be [{num_windows}, {L}, {M}] or [{num_windows}, {n}, {L}, {M}]"
                f", got {arr.shape}"
            )
        fn = lambda k, s: arr[k]  # noqa: E731
    else:
        fn = init_noise

    def get(k: int, s: int) -> torch.Tensor | None:
        a = fn(k, s)
        if a is None:
            return None
        t = torch.as_tensor(np.asarray(a, dtype=np.float32))
        if tuple(t.shape) == (L, M):
            t = t[None].expand(n, L, M)
        if tuple(t.shape) != (n, L, M) or not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"init_noise for window {k} must be finite [{L}, {M}] or [{n}, {L}, {M}]"
            )
        return t.clone()

    return get


def _window_z_scores(
    intensity: np.ndarray | None, starts: Sequence[int], L: int, T: int
) -> np.ndarray:
    """Per window, its mean intensity z-normalised over the windows (zeros without intensity)."""
    if intensity is None or len(starts) < 2:
        return np.zeros(len(starts))
    per = np.stack([intensity[np.minimum(np.arange(s, s + L), T - 1)] for s in starts])
    return ic_init_mod.segment_intensity_z(per, len(starts))


def iter_generate_motion(
    model: MotionDiT,
    features: np.ndarray,
    conditions: MotionConditions,
    ref_motion: np.ndarray,
    *,
    steps: int = 10,
    guidance_scale: float = 2.0,
    seed: int = 0,
    scheduler: str = "ddim",
    eta: float = 1.0,
    overlap: int = 10,
    num_variations: int = 1,
    intensity: np.ndarray | None = None,
    init_motion: np.ndarray | None = None,
    frame_range: tuple[int, int] | None = None,
    regions: Sequence[str] | np.ndarray | None = None,
    limits: tuple[np.ndarray, np.ndarray] | None = None,
    context: int | None = None,
    init_noise: InitNoise | None = None,
    ic_init: bool | ICInitSettings = False,
) -> Iterator[GenerationProgress]:
    """Generate motion ``[T, 265]`` (``[n, T, 265]`` for ``num_variations = n > 1``) for audio
    ``features [T, A]``, yielding progress after every denoising step.

    conditions: emotion / eye state / canonical keypoints (MotionConditions). ref_motion [265]:
    the motion before frame 0 (the source portrait's). steps / guidance_scale / seed / scheduler
    ("ddim" or "lcm") / eta (DDIM only; Ditto samples with 1). overlap: frames shared by
    consecutive windows. intensity [T]: per-frame scale of the audio-driven part (1 = as
    trained). limits (lo [265], hi [265]): clamp of the x0 prediction at every step and of the
    output, in the packed (model) space. A raw clamp: it bounds scale, translation and
    expression, but clamping the pose-bin logits does not bound the decoded angles (the
    softmax of clamped logits can still peak anywhere); studio.generation's MotionLimits bound
    the decoded motion per region (degrees, expression scale per face region).

    Constraints (need ``init_motion [T, 265]``, the current motion): ``frame_range (start, end)``
    regenerates only those frames; ``regions`` (names from REGIONS, or a bool mask [265])
    regenerates only those dims. Everything else is returned bit-exact from ``init_motion``.
    ``context`` (default: overlap) frames of kept motion on each side of the range are included in
    the windows so the new frames join the old ones.

    init_noise: each window's initial noise instead of a draw from the seeded generator: an
    array ``[W, L, 265]`` or ``[W, n, L, 265]`` (W windows, see :func:`window_starts` over the
    generated span; L = seq_len) or a callable ``(window, start_frame) -> [L, 265] | [n, L, 265]
    | None`` (None: draw as usual). The generator's draw still happens, so passing the noise it
    would have drawn changes nothing; with ``eta = 0`` (DDIM) and no constraints a window is a
    function of its initial noise and the frame before it alone.

    ic_init: True (:meth:`ICInitSettings.paper`) or :class:`ICInitSettings` (e.g.
    :meth:`ICInitSettings.seamless`): choose the windows' initial noise by ConsistTalk's IC-Init
    search (models.ic_init.ic_init_search; one search over all windows per variation, or one per
    window and variation, see ICInitSettings.search) with the settings' steps and eta (``steps``
    / ``eta`` of this call are not used). Progress events come after every denoiser call of the
    search too; closing the iterator between two of them stops the search. DDIM only; not with
    ``init_noise``.

    The last event's ``result`` is float64. Same seed and arguments -> the same result.
    Raises ValueError for bad shapes, non-finite inputs, constraints without ``init_motion``,
    or ic_init with another scheduler or with init_noise.
    """
    cfg = model.config
    feats, ref = _validate(model, features, ref_motion)
    T, L, M = feats.shape[0], cfg.seq_len, cfg.motion_dim
    device = _model_device(model)
    if steps < 1 or num_variations < 1:
        raise ValueError("steps and num_variations must be >= 1")
    if intensity is not None:
        intensity = np.asarray(intensity, dtype=np.float32).reshape(-1)
        if intensity.shape != (T,) or not np.all(np.isfinite(intensity)):
            raise ValueError(f"intensity must be finite [{T}], got {intensity.shape}")

    keep_mask = None  # [T, M] True = keep init_motion
    if frame_range is not None or regions is not None:
        if init_motion is None:
            raise ValueError("frame_range/regions need init_motion, the motion to keep")
        init = np.asarray(init_motion)
        if init.shape != (T, M) or not np.all(np.isfinite(init)):
            raise ValueError(f"init_motion must be finite [{T}, {M}], got {init.shape}")
        gen = np.ones((T, M), dtype=bool)
        if frame_range is not None:
            a, b = int(frame_range[0]), int(frame_range[1])
            if not 0 <= a < b <= T:
                raise ValueError(f"frame_range must satisfy 0 <= start < end <= {T}, got {a, b}")
            gen[:a] = False
            gen[b:] = False
        if regions is not None:
            dims = regions if isinstance(regions, np.ndarray) else region_dims(*regions)
            dims = np.asarray(dims, dtype=bool)
            if dims.shape != (M,):
                raise ValueError(f"region mask must be [{M}] bool")
            gen &= dims[None, :]
        keep_mask = ~gen
    else:
        init = None

    # The span of frames the windows cover: everything, or the range plus context.
    span0, span1 = 0, T
    if frame_range is not None:
        ctx = overlap if context is None else int(context)
        span0, span1 = max(0, frame_range[0] - ctx), min(T, frame_range[1] + ctx)
    starts = [span0 + s for s in window_starts(span1 - span0, L, overlap)]
    n = num_variations
    ic = _as_ic_settings(ic_init)
    if ic is not None and (scheduler != "ddim" or init_noise is not None):
        raise ValueError("ic_init needs the ddim scheduler and no init_noise")
    noise_for = _init_noise_source(init_noise, len(starts), n, L, M)
    # The paper's search over the whole sequence needs every window's model reference on its own
    # path, i.e. a frame before each window that no crossfade touches, and no constraints.
    seq_search = ic is not None and ic.search == "sequence" and keep_mask is None
    seq_search = seq_search and L - overlap - 1 >= overlap
    resample = ic is not None and (not seq_search or ic.eta > 0)
    # IC-Init's cost, counted per window and variation whichever search runs: ic.steps denoiser
    # calls of the search (T' calls on the candidates, T - T' on the kept), then ic.steps to
    # sample the window unless the searched path is the result (sequence search, eta 0).
    total = len(starts) * (steps if ic is None else (n + int(resample)) * ic.steps)
    gen_t = torch.Generator().manual_seed(int(seed))
    lim = _as_limits(limits, device)
    sched = make_scheduler(scheduler)
    z_scores = None if ic is None else _window_z_scores(intensity, starts, L, T)
    prev_x = None  # [n, L, M] the previous window as sampled (IC-Init's previous segment)
    ref0 = ref if span0 == 0 or init is None else np.asarray(init[span0 - 1], dtype=np.float32)
    source = torch.from_numpy(np.asarray(ref0, dtype=np.float32)).to(device)
    joined = np.zeros((n, span1 - span0 + L, M), dtype=np.float64)  # fused so far, span-relative
    end = 0
    done = 0
    uncond_plain: list[EncodedCondition] = []  # the null branch without intensity, encoded once

    def encode(s: int) -> tuple[EncodedCondition, EncodedCondition | None]:
        """(condition of batch 1, null condition or None) of the window starting at s."""
        rows = _cond_rows(feats, conditions, s, s + L)
        inten = None
        if intensity is not None:
            inten = torch.from_numpy(intensity[np.minimum(np.arange(s, s + L), T - 1)])
            inten = inten.to(device)[None]
        cond1 = model.encode_condition(torch.from_numpy(rows)[None].to(device), True, inten)
        if guidance_scale == 1.0:
            return cond1, None
        if inten is not None:
            return cond1, model.encode_condition(None, False, inten)
        if not uncond_plain:
            uncond_plain.append(model.encode_condition(None, False, None))
        return cond1, uncond_plain[0]

    with torch.inference_mode():
        searched = None  # sequence search: (noise [n, W, L, M], windows [n, W, L, M])
        if seq_search:
            encoded = [encode(s) for s in starts]
            unconds = [u for _, u in encoded]
            searched = (torch.empty((n, len(starts), L, M)), torch.empty((n, len(starts), L, M)))
            for v in range(n):
                search = _search_sequence(
                    model, ic, [c for c, _ in encoded], unconds, source, z_scores,
                    guidance_scale, gen_t, lim, overlap,
                )  # fmt: skip
                while True:
                    try:
                        window = next(search)
                    except StopIteration as stop:
                        searched[0][v], searched[1][v] = stop.value
                        break
                    done += 1
                    yield GenerationProgress(done, total, window, len(starts))
        for k, s in enumerate(starts):
            if searched is not None and not resample:
                x = searched[1][:, k]
            else:
                cond1, uncond = encode(s)
                cond = cond1.repeat(n)
                if k == 0:
                    ref_b = source[None].repeat(n, 1)
                else:
                    ref_b = torch.from_numpy(joined[:, s - span0 - 1].astype(np.float32))
                known = keep = None
                if keep_mask is not None:
                    idx = np.arange(s, s + L)
                    valid = idx < T
                    km = np.zeros((L, M), dtype=bool)
                    km[valid] = keep_mask[idx[valid]]
                    kv = np.zeros((L, M), dtype=np.float32)
                    kv[valid] = init[idx[valid]]
                    known = torch.from_numpy(kv).to(device)
                    keep = torch.from_numpy(km).to(device)[None].expand(n, L, M)
                x_init = noise_for(k, s)
                w_steps, w_eta = steps, eta
                if searched is not None:
                    w_steps, w_eta = ic.steps, ic.eta
                    x_init = searched[0][:, k]
                elif ic is not None:
                    w_steps, w_eta = ic.steps, ic.eta
                    x_init = torch.empty((n, L, M))
                    for v in range(n):
                        search = _search_window(
                            model, ic, cond1, uncond, ref_b[v].to(device), source,
                            None if prev_x is None else prev_x[v], float(z_scores[k]),
                            known, None if keep is None else keep[0], guidance_scale, gen_t, lim,
                            overlap,
                        )  # fmt: skip
                        while True:
                            try:
                                next(search)
                            except StopIteration as stop:
                                x_init[v] = stop.value
                                break
                            done += 1
                            yield GenerationProgress(done, total, k, len(starts))
                sampler = _window_sampler(
                    model, sched, w_steps, cond, uncond, ref_b.to(device), known, keep,
                    guidance_scale, gen_t, lim, w_eta, x_init,
                )  # fmt: skip
                x = None
                for out in sampler:
                    if out is None:
                        done += 1
                        yield GenerationProgress(done, total, k, len(starts))
                    else:
                        x = out
            prev_x = x.float().cpu()
            changed = min(s - span0, end)  # the crossfade rewrites frames from here on
            end = _fuse_into(joined, x.double().cpu().numpy(), s - span0, end)
            # A read-only view, not a copy: O(1) per window instead of O(frames so far).
            preview = joined[0, : min(end, span1 - span0)].view()
            preview.flags.writeable = False
            yield GenerationProgress(
                done, total, k, len(starts), preview=preview,
                preview_from=min(changed, preview.shape[0]), preview_offset=span0,
            )  # fmt: skip

    result = joined[:, : span1 - span0]
    if init is not None:
        full = np.repeat(np.asarray(init, dtype=np.float64)[None], n, axis=0)
        full[:, span0:span1] = result
        # Kept entries come straight from the input: bit-exact, whatever the crossfade did.
        result = np.where(keep_mask[None], np.asarray(init)[None], full).astype(np.float64)
    yield GenerationProgress(
        total, total, len(starts) - 1, len(starts), result=result[0] if n == 1 else result
    )


def generate_motion(
    model: MotionDiT,
    features: np.ndarray,
    conditions: MotionConditions,
    ref_motion: np.ndarray,
    *,
    callback: Callable[[GenerationProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    **kwargs,
) -> np.ndarray:
    """Run :func:`iter_generate_motion` to the end and return its result.

    ``callback(progress)`` after every step; ``cancel()`` is checked after every step and a True
    raises GenerationCancelled. Other keyword arguments as for iter_generate_motion.
    """
    result = None
    events = iter_generate_motion(model, features, conditions, ref_motion, **kwargs)
    try:
        for progress in events:
            if callback is not None:
                callback(progress)
            if progress.result is not None:
                result = progress.result
            elif cancel is not None and cancel():
                raise GenerationCancelled("motion generation cancelled")
    finally:
        events.close()  # stops an IC-Init search thread now, not when garbage collected
    assert result is not None
    return result


# --- streaming -----------------------------------------------------------------------------------
class MotionStream:
    """Streaming generation: push audio features as they arrive, get frames as soon as possible.

    Each time ``hop`` new frames (plus ``lookahead`` frames of future audio) are available, one
    window ending at the newest usable frame is denoised; the frames emitted before it inside the
    window are re-imposed as known context (inpainting), so the new frames continue them, and the
    ``hop`` new frames are returned. Before ``seq_len`` frames exist the window starts at frame 0
    and the missing future features repeat the last received row. Emitted frames never change.
    Each emitted hop costs one window, so a smaller hop means lower delay and more compute.

    ``push(features [n, A]) -> [k, 265]`` (k may be 0), ``flush() -> [k, 265]`` emits the rest.
    """

    def __init__(
        self,
        model: MotionDiT,
        conditions: MotionConditions,
        ref_motion: np.ndarray,
        *,
        hop: int = 20,
        lookahead: int = 0,
        steps: int = 10,
        guidance_scale: float = 2.0,
        seed: int = 0,
        scheduler: str = "ddim",
        eta: float = 1.0,
        limits: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        L = model.config.seq_len
        if not 1 <= hop <= L or not 0 <= lookahead <= L - hop:
            raise ValueError(f"need 1 <= hop <= {L} and 0 <= lookahead <= seq_len - hop")
        self.model, self.conditions = model, conditions
        self.ref = np.asarray(ref_motion, dtype=np.float32).reshape(-1)
        self.hop, self.lookahead, self.steps = hop, lookahead, steps
        self.guidance_scale, self.eta = guidance_scale, eta
        self.generator = torch.Generator().manual_seed(int(seed))
        self.scheduler = make_scheduler(scheduler)
        self.device = _model_device(model)
        self.limits = _as_limits(limits, self.device)
        self.features = np.zeros((0, model.config.audio_dim), dtype=np.float32)
        self.motion = np.zeros((0, model.config.motion_dim), dtype=np.float64)
        self._uncond = None

    @property
    def emitted(self) -> int:
        return self.motion.shape[0]

    def push(self, features: np.ndarray) -> np.ndarray:
        """Append ``features [n, A]``; returns the newly generated frames ``[k, 265]``."""
        f = np.asarray(features, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != self.features.shape[1] or not np.all(np.isfinite(f)):
            raise ValueError(f"features must be finite [n, {self.features.shape[1]}]")
        self.features = np.concatenate([self.features, f])
        out = []
        while self.features.shape[0] >= self.emitted + self.hop + self.lookahead:
            out.append(self._generate(self.hop))
        return np.concatenate(out) if out else self.motion[:0].copy()

    def flush(self) -> np.ndarray:
        """Generate the frames still missing for the features received so far."""
        out = []
        while self.emitted < self.features.shape[0]:
            out.append(self._generate(min(self.hop, self.features.shape[0] - self.emitted)))
        return np.concatenate(out) if out else self.motion[:0].copy()

    def _generate(self, count: int) -> np.ndarray:
        model, cfg = self.model, self.model.config
        L, M = cfg.seq_len, cfg.motion_dim
        e = self.emitted
        new_end = e + count
        start = max(0, min(new_end + self.lookahead, self.features.shape[0]) - L)
        start = min(start, e)
        rows = _cond_rows(self.features, self.conditions, start, start + L)
        with torch.inference_mode():
            cond = model.encode_condition(torch.from_numpy(rows)[None].to(self.device))
            if self.guidance_scale != 1.0 and self._uncond is None:
                self._uncond = model.encode_condition(None, False)
            ref = self.ref if start == 0 else self.motion[start - 1].astype(np.float32)
            known = keep = None
            if e > start:
                kv = np.zeros((L, M), dtype=np.float32)
                kv[: e - start] = self.motion[start:e]
                km = np.zeros((L, M), dtype=bool)
                km[: e - start] = True
                known = torch.from_numpy(kv).to(self.device)
                keep = torch.from_numpy(km).to(self.device)[None]
            *_, x = _window_sampler(
                model, self.scheduler, self.steps, cond, self._uncond,
                torch.from_numpy(ref)[None].to(self.device), known, keep,
                self.guidance_scale, self.generator, self.limits, self.eta,
            )  # fmt: skip
        new = x[0, e - start : new_end - start].double().cpu().numpy()
        self.motion = np.concatenate([self.motion, new])
        return new
