"""Takes: one complete, non-destructive set of motion curves (keyed, generated or recorded)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS
from studio.document._packed import Packed, as_frames, concat_packed, evaluate_packed, pack_constant
from studio.document.curve import Curve, Interpolation
from studio.document.errors import DocumentError

__all__ = ["TAKE_SOURCES", "Take", "new_id"]

# Known sources; others are allowed (plug-ins may add their own).
TAKE_SOURCES = ("procedural", "generated", "recorded", "keyed", "imported")


def new_id() -> str:
    """A fresh id (uuid4 hex)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, eq=True)
class Take:
    """An immutable take: named curves for a subset of CHANNELS.

    ``curves`` becomes a read-only mapping in CHANNELS order holding only channels with keys
    (empty curves are dropped; each curve is labelled with its channel for error messages).
    Change a take by making a new one (``with_curves``, ``with_name``); edits swap takes in the
    project. ``metadata`` is a plain dict: treat it as read-only.
    Raises DocumentError for unknown channels, non-Curve values or a bad id/name.
    """

    id: str
    name: str
    curves: Mapping[str, Curve] = field(default_factory=dict)
    source: str = "keyed"
    metadata: dict[str, Any] = field(default_factory=dict)
    _pack: Packed | None = field(default=None, init=False, repr=False, compare=False)

    __hash__ = None  # type: ignore[assignment]  # metadata is a dict

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise DocumentError(f"take id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.name, str):
            raise DocumentError(f"take {self.id}: name must be a string, got {self.name!r}")
        if not isinstance(self.source, str):
            raise DocumentError(f"take {self.name!r}: source must be a string")
        if not isinstance(self.curves, Mapping):
            raise DocumentError(f"take {self.name!r}: curves must be a mapping channel -> Curve")
        for ch, c in self.curves.items():
            if ch not in CHANNEL_INDEX:
                raise DocumentError(f"take {self.name!r}: unknown channel {ch!r}")
            if not isinstance(c, Curve):
                raise DocumentError(f"take {self.name!r}: channel {ch!r} is not a Curve: {c!r}")
        ordered = {
            ch: self.curves[ch].with_channel(ch)
            for ch in sorted(self.curves, key=CHANNEL_INDEX.__getitem__)
            if not self.curves[ch].is_empty
        }
        object.__setattr__(self, "curves", MappingProxyType(ordered))
        object.__setattr__(self, "metadata", dict(self.metadata))

    def __reduce__(self):
        return (Take, (self.id, self.name, dict(self.curves), self.source, self.metadata))

    def __deepcopy__(self, memo: dict) -> Take:
        import copy

        return Take(
            self.id, self.name, dict(self.curves), self.source, copy.deepcopy(self.metadata, memo)
        )

    # ---------------------------------------------------------------------------- builders
    @classmethod
    def new(
        cls,
        name: str = "Take 1",
        curves: Mapping[str, Curve] | None = None,
        source: str = "keyed",
        metadata: dict[str, Any] | None = None,
    ) -> Take:
        """A take with a fresh uuid4 id."""
        return cls(new_id(), name, dict(curves or {}), source, dict(metadata or {}))

    @classmethod
    def from_samples(
        cls,
        name: str,
        frames: object,
        values: np.ndarray,
        channels: tuple[str, ...] | list[str] = CHANNELS,
        source: str = "generated",
        interp: Interpolation = Interpolation.LINEAR,
        metadata: dict[str, Any] | None = None,
    ) -> Take:
        """A take keyed at every sample: ``values [F, len(channels)]`` at integer ``frames [F]``
        (e.g. a generator's or tracker's output).

        Raises DocumentError for a shape mismatch, unknown channels or bad frames/values.
        """
        vals = np.asarray(values, dtype=np.float64)
        chans = tuple(channels)
        if vals.ndim != 2 or vals.shape[1] != len(chans):
            raise DocumentError(
                f"take {name!r}: values must be [F, {len(chans)}], got {vals.shape}"
            )
        curves = {ch: Curve(frames, vals[:, j], interp, channel=ch) for j, ch in enumerate(chans)}
        return cls.new(name, curves, source, metadata)

    def with_curves(self, changes: Mapping[str, Curve | None]) -> Take:
        """A copy with channels replaced (a Curve) or removed (None or an empty Curve)."""
        curves = dict(self.curves)
        for ch, c in changes.items():
            if c is None:
                curves.pop(ch, None)
            else:
                curves[ch] = c
        return replace(self, curves=curves)

    def with_name(self, name: str) -> Take:
        return replace(self, name=name)

    # ---------------------------------------------------------------------------- queries
    def curve(self, channel: str) -> Curve:
        """The curve of ``channel`` (an empty curve if it has no keys).

        Raises DocumentError for an unknown channel.
        """
        if channel not in CHANNEL_INDEX:
            raise DocumentError(f"take {self.name!r}: unknown channel {channel!r}")
        c = self.curves.get(channel)
        return c if c is not None else Curve(channel=channel)

    def key_range(self) -> tuple[int, int] | None:
        """(first, last) key frame over all curves, or None without keys."""
        if not self.curves:
            return None
        return (
            int(min(c.frames[0] for c in self.curves.values())),
            int(max(c.frames[-1] for c in self.curves.values())),
        )

    def packed(self) -> Packed:
        """All CHANNELS as one segment table (cached on this immutable take)."""
        if self._pack is None:
            parts = [
                self.curves[ch].packed()
                if ch in self.curves
                else pack_constant(float(CHANNEL_DEFAULTS[i]))
                for i, ch in enumerate(CHANNELS)
            ]
            object.__setattr__(self, "_pack", concat_packed(parts))
        return self._pack

    def evaluate(self, frames: object) -> np.ndarray:
        """All channels at ``frames [F]`` (int or float, any order): float64 ``[F, len(CHANNELS)]``.

        Channels without keys give CHANNEL_DEFAULTS. Raises DocumentError for non-finite frames.
        """
        return evaluate_packed(self.packed(), as_frames(frames))

    def evaluate_frame(self, frame: int | float) -> np.ndarray:
        """All channels at one frame: float64 ``[len(CHANNELS)]``."""
        return self.evaluate(np.array([frame], dtype=np.float64))[0]
