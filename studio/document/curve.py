"""Animation curves: immutable keyframe arrays with constant, linear and bezier interpolation.

A key is (frame: int, value: float, interpolation of the segment leaving it, handle mode, left
handle, right handle). Handles are offsets from the key in (frames, value) units: the left one
points back in time (dx <= 0), the right one forward (dx >= 0). The bezier segment from key i to
key i+1 has the control points ``P0 = key_i``, ``P1 = key_i + right_i``,
``P2 = key_{i+1} + left_{i+1}``, ``P3 = key_{i+1}``.

Handle modes follow Blender: AUTO_CLAMPED handles are recomputed from the neighbours whenever
keys change (flat at local extrema and at the ends, slope clamped so that a segment between
monotone keys never overshoots), VECTOR handles point a third of the way to the neighbour, FREE
and ALIGNED handles are stored (ALIGNED keeps the two handles collinear when one is edited).
If the x-handles of a segment overlap, evaluation scales both down (as Blender does) so time
stays monotone.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

import numpy as np

from studio.document._packed import Packed, as_frames, evaluate_packed, pack_constant
from studio.document.errors import DocumentError

__all__ = ["MAX_ABS_VALUE", "MAX_FRAME", "Curve", "HandleMode", "Interpolation"]

# Bounds that keep every intermediate (differences, cubic coefficients) finite and frames exact
# in float64. A billion frames is over a year at 25 fps.
MAX_FRAME = 1_000_000_000
MAX_ABS_VALUE = 1e12
# x-handles this close to 1/3 and 2/3 of the segment make x(t) linear: no solve needed.
_UNIFORM_TOL = 1e-9


class Interpolation(IntEnum):
    """How the segment *leaving* a key is interpolated."""

    CONSTANT = 0
    LINEAR = 1
    BEZIER = 2


class HandleMode(IntEnum):
    """Blender-like bezier handle behaviour."""

    AUTO_CLAMPED = 0
    FREE = 1
    ALIGNED = 2
    VECTOR = 3


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _label(channel: str) -> str:
    return f"curve {channel!r}" if channel else "curve"


def _as_key_frames(frames: object, channel: str) -> np.ndarray:
    """Frames given for keys -> int64 ``[K]``; non-integer, non-finite or out-of-range raise."""
    try:
        raw = np.asarray(frames)
    except (TypeError, ValueError):
        raise DocumentError(f"{_label(channel)}: key frames are not numeric: {frames!r}") from None
    if raw.ndim == 0:
        raw = raw.reshape(1)
    if raw.ndim != 1:
        raise DocumentError(f"{_label(channel)}: key frames must be 1-D, got shape {raw.shape}")
    if raw.dtype == bool or not (
        np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)
    ):
        if raw.size == 0:
            return np.zeros(0, np.int64)
        raise DocumentError(f"{_label(channel)}: key frames must be integers, got {raw.dtype}")
    if np.issubdtype(raw.dtype, np.floating):
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            raise DocumentError(
                f"{_label(channel)}: key frame {raw[bad][0]!r} is not an integer frame"
            )
    out = raw.astype(np.int64) if raw.dtype.kind == "f" else raw.astype(np.int64, copy=True)
    if raw.dtype.kind == "f":
        big = np.abs(raw) > MAX_FRAME
    else:
        big = np.abs(out) > MAX_FRAME
    if big.any():
        raise DocumentError(f"{_label(channel)}: key frame {raw[big][0]} is outside ±{MAX_FRAME}")
    return out


def _as_values(values: object, n: int, channel: str, frames: np.ndarray, what: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DocumentError(f"{_label(channel)}: {what} are not numeric: {values!r}") from None
    if v.ndim == 0:
        v = np.full(n, float(v))
    if v.shape != (n,):
        raise DocumentError(f"{_label(channel)}: expected {n} {what}, got shape {v.shape}")
    bad = ~np.isfinite(v) | (np.abs(v) > MAX_ABS_VALUE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DocumentError(
            f"{_label(channel)}: {what[:-1]} {v[i]!r} at frame {frames[i]} is not finite or "
            f"beyond ±{MAX_ABS_VALUE:g}"
        )
    return v.copy() if v.base is not None or v is values else v


def _as_enum(values: object, n: int, enum: type[IntEnum], default: int, channel: str) -> np.ndarray:
    if values is None:
        return np.full(n, default, np.int8)
    a = np.asarray(values)
    if a.ndim == 0:
        a = np.full(n, a)
    if a.shape != (n,):
        raise DocumentError(
            f"{_label(channel)}: expected {n} {enum.__name__} values, got shape {a.shape}"
        )
    valid = np.array([int(m) for m in enum])
    if a.size and (a.dtype.kind not in "iu" or not np.isin(a, valid).all()):
        raise DocumentError(f"{_label(channel)}: invalid {enum.__name__} values {a!r}")
    return a.astype(np.int8)


class Curve:
    """An immutable keyframe curve.

    Attributes (read-only arrays, K keys):
        frames: int64 [K], strictly increasing.
        values: float64 [K].
        interp: int8 [K] Interpolation of the segment leaving each key.
        handle_mode: int8 [K] HandleMode.
        left: float64 [K, 2] left handle offsets (dx <= 0, dy).
        right: float64 [K, 2] right handle offsets (dx >= 0, dy).
        channel: name used in error messages only (not part of equality).

    The constructor sorts nothing: frames must be strictly increasing. ``left``/``right`` are
    only used for FREE and ALIGNED keys; AUTO_CLAMPED and VECTOR handles are computed.
    Raises DocumentError for non-integer/out-of-range frames, NaN/inf/huge values, bad enums,
    or handles pointing the wrong way.
    """

    __slots__ = (
        "_hash",
        "_pack",
        "channel",
        "frames",
        "handle_mode",
        "interp",
        "left",
        "right",
        "values",
    )

    frames: np.ndarray
    values: np.ndarray
    interp: np.ndarray
    handle_mode: np.ndarray
    left: np.ndarray
    right: np.ndarray
    channel: str

    def __init__(
        self,
        frames: Iterable[int] | np.ndarray = (),
        values: Iterable[float] | np.ndarray | float = (),
        interp: Iterable[int] | np.ndarray | int | None = None,
        handle_mode: Iterable[int] | np.ndarray | int | None = None,
        left: np.ndarray | None = None,
        right: np.ndarray | None = None,
        *,
        channel: str = "",
    ) -> None:
        f = _as_key_frames(frames, channel)
        k = f.shape[0]
        if k > 1 and not (np.diff(f) > 0).all():
            i = int(np.flatnonzero(np.diff(f) <= 0)[0])
            raise DocumentError(
                f"{_label(channel)}: key frames must be strictly increasing "
                f"(frame {f[i + 1]} follows {f[i]})"
            )
        v = _as_values(values, k, channel, f, "values")
        it = _as_enum(interp, k, Interpolation, Interpolation.BEZIER, channel)
        hm = _as_enum(handle_mode, k, HandleMode, HandleMode.AUTO_CLAMPED, channel)
        lh = self._handles(left, k, channel, f, "left")
        rh = self._handles(right, k, channel, f, "right")
        if (lh[:, 0] > 0).any() or (rh[:, 0] < 0).any():
            bad = (lh[:, 0] > 0) | (rh[:, 0] < 0)
            raise DocumentError(
                f"{_label(channel)}: handles at frame {f[bad][0]} point the wrong way "
                "(left dx must be <= 0, right dx >= 0)"
            )
        _recompute_handles(f, v, hm, lh, rh)
        self._init(f, v, it, hm, lh, rh, channel)

    @staticmethod
    def _handles(h: object, k: int, channel: str, f: np.ndarray, side: str) -> np.ndarray:
        if h is None:
            return np.zeros((k, 2))
        a = np.array(h, dtype=np.float64)
        if a.shape != (k, 2):
            raise DocumentError(
                f"{_label(channel)}: {side} handles must be [{k}, 2], got {a.shape}"
            )
        bad = ~np.isfinite(a).all(axis=1) | (np.abs(a) > MAX_ABS_VALUE).any(axis=1)
        if bad.any():
            raise DocumentError(
                f"{_label(channel)}: {side} handle at frame {f[bad][0]} is not finite"
            )
        return a

    def _init(self, f, v, it, hm, lh, rh, channel: str) -> None:
        # Trusted construction: arrays are owned by this curve from here on.
        for name, arr in (
            ("frames", f),
            ("values", v),
            ("interp", it),
            ("handle_mode", hm),
            ("left", lh),
            ("right", rh),
        ):
            object.__setattr__(self, name, _frozen(arr))
        object.__setattr__(self, "channel", channel)
        object.__setattr__(self, "_pack", None)
        object.__setattr__(self, "_hash", None)

    @classmethod
    def _trusted(cls, f, v, it, hm, lh, rh, channel: str) -> Curve:
        obj = cls.__new__(cls)
        _recompute_handles(f, v, hm, lh, rh)
        obj._init(f, v, it, hm, lh, rh, channel)
        return obj

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Curve is immutable; use the with_* methods")

    def __reduce__(self):
        return (
            _rebuild,
            (
                self.frames,
                self.values,
                self.interp,
                self.handle_mode,
                self.left,
                self.right,
                self.channel,
            ),
        )

    def __copy__(self) -> Curve:
        return self

    def __deepcopy__(self, memo: dict) -> Curve:
        return self

    # ------------------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def is_empty(self) -> bool:
        return self.frames.shape[0] == 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Curve):
            return NotImplemented
        if self is other:
            return True
        return all(
            np.array_equal(getattr(self, n), getattr(other, n))
            for n in ("frames", "values", "interp", "handle_mode", "left", "right")
        )

    def __hash__(self) -> int:
        if self._hash is None:
            h = hash(
                tuple(
                    getattr(self, n).tobytes()
                    for n in ("frames", "values", "interp", "handle_mode", "left", "right")
                )
            )
            object.__setattr__(self, "_hash", h)
        return self._hash

    def __repr__(self) -> str:
        span = f", frames {self.frames[0]}..{self.frames[-1]}" if len(self) else ""
        ch = f"{self.channel!r}, " if self.channel else ""
        return f"Curve({ch}{len(self)} keys{span})"

    def index_of(self, frame: int) -> int | None:
        """Index of the key at ``frame``, or None."""
        i = int(np.searchsorted(self.frames, frame))
        return i if i < len(self) and self.frames[i] == frame else None

    def evaluate(self, frames: object, default: float = 0.0) -> np.ndarray:
        """Values at ``frames [F]`` (int or float, any order) -> float64 ``[F]``.

        Before the first key: the first value; after the last key: the last value; no keys:
        ``default`` (the channel default, supplied by the caller). A scalar frame gives ``[1]``.
        Raises DocumentError for non-finite frames.
        """
        x = as_frames(frames)
        if self.is_empty:
            return np.full(x.shape[0], float(default))
        return evaluate_packed(self.packed(), x)[:, 0]

    def packed(self) -> Packed:
        """Segment tables of this curve (cached; see studio.document._packed). K >= 1 only."""
        if self._pack is None:
            object.__setattr__(self, "_pack", _pack_curve(self))
        return self._pack

    # ------------------------------------------------------------------------------ edits
    def _check_existing(self, frames: np.ndarray) -> np.ndarray:
        """Indices of the keys at ``frames``. Raises DocumentError naming a frame without one."""
        if len(self) == 0:
            if frames.size:
                raise DocumentError(f"{_label(self.channel)}: no key at frame {frames[0]}")
            return np.zeros(0, np.intp)
        idx = np.searchsorted(self.frames, frames)
        ok = (idx < len(self)) & (self.frames[np.minimum(idx, len(self) - 1)] == frames)
        if not ok.all():
            raise DocumentError(f"{_label(self.channel)}: no key at frame {frames[~ok][0]}")
        return idx

    def with_keys(
        self,
        frames: object,
        values: object,
        interp: object = None,
        handle_mode: object = None,
    ) -> Curve:
        """Insert keys, or set the value of keys that exist (their handles and modes are kept).

        ``interp``/``handle_mode`` (scalar or per key) apply to the given keys; None keeps an
        existing key's setting and gives new keys BEZIER / AUTO_CLAMPED.
        Raises DocumentError for duplicate or invalid frames or values.
        """
        ch = self.channel
        f = _as_key_frames(frames, ch)
        n = f.shape[0]
        v = _as_values(values, n, ch, f, "values")
        if n == 0:
            return self
        order = np.argsort(f, kind="stable")
        f, v = f[order], v[order]
        if n > 1 and (np.diff(f) == 0).any():
            dup = f[1:][np.diff(f) == 0][0]
            raise DocumentError(f"{_label(ch)}: frame {dup} given twice")
        new_it = None if interp is None else _as_enum(interp, n, Interpolation, 0, ch)[order]
        new_hm = None if handle_mode is None else _as_enum(handle_mode, n, HandleMode, 0, ch)[order]
        # Merge: existing keys not being replaced, then the given keys.
        keep = ~np.isin(self.frames, f)
        exists = np.isin(f, self.frames)
        old_idx = np.searchsorted(self.frames, f)
        all_f = np.concatenate([self.frames[keep], f])
        srt = np.argsort(all_f, kind="stable")
        k_keep = int(keep.sum())

        def merged(old: np.ndarray, given: np.ndarray | None, fresh: object) -> np.ndarray:
            add = np.empty((n, *old.shape[1:]), old.dtype)
            add[...] = fresh
            if exists.any():
                add[exists] = old[old_idx[exists]]
            if given is not None:
                add[...] = given if given.ndim == add.ndim else given.reshape(add.shape)
            return np.concatenate([old[keep], add])[srt]

        it = merged(self.interp, new_it, Interpolation.BEZIER)
        hm = merged(self.handle_mode, new_hm, HandleMode.AUTO_CLAMPED)
        lh = merged(self.left, None, 0.0)
        rh = merged(self.right, None, 0.0)
        vals = np.concatenate([self.values[keep], v])[srt]
        del k_keep
        return Curve._trusted(all_f[srt], vals, it, hm, lh.copy(), rh.copy(), ch)

    def without_keys(self, frames: object) -> Curve:
        """Remove the keys at ``frames``; frames without a key are ignored."""
        f = _as_key_frames(frames, self.channel)
        keep = ~np.isin(self.frames, f)
        if keep.all():
            return self
        return self._subset(keep)

    def _subset(self, keep: np.ndarray) -> Curve:
        return Curve._trusted(
            self.frames[keep],
            self.values[keep],
            self.interp[keep],
            self.handle_mode[keep],
            self.left[keep].copy(),
            self.right[keep].copy(),
            self.channel,
        )

    def with_moved_keys(
        self, frames: object, frame_delta: int = 0, value_delta: float = 0.0
    ) -> Curve:
        """Move the keys at ``frames`` by ``frame_delta`` frames and ``value_delta``.

        Moved keys keep their interpolation, mode and handles. Collisions: a moved key that lands
        on the frame of a key that is not moved replaces it (the moved key wins).
        Raises DocumentError if a frame has no key, the delta is not an integer, or a result is
        out of range.
        """
        ch = self.channel
        f = np.unique(_as_key_frames(frames, ch))
        if isinstance(frame_delta, bool) or float(frame_delta) != int(frame_delta):
            raise DocumentError(f"{_label(ch)}: frame delta {frame_delta!r} is not an integer")
        dv = float(value_delta)
        if not np.isfinite(dv):
            raise DocumentError(f"{_label(ch)}: value delta {value_delta!r} is not finite")
        if f.size == 0 or (int(frame_delta) == 0 and dv == 0.0):
            if f.size:
                self._check_existing(f)
            return self
        idx = self._check_existing(f)
        moved = np.zeros(len(self), bool)
        moved[idx] = True
        new_f = self.frames.copy()
        new_f[moved] += int(frame_delta)
        if (np.abs(new_f[moved]) > MAX_FRAME).any():
            raise DocumentError(f"{_label(ch)}: moved keys would leave ±{MAX_FRAME}")
        new_v = self.values.copy()
        new_v[moved] += dv
        if (np.abs(new_v[moved]) > MAX_ABS_VALUE).any():
            raise DocumentError(f"{_label(ch)}: moved values would exceed ±{MAX_ABS_VALUE:g}")
        keep = moved | ~np.isin(new_f, new_f[moved])
        srt = np.argsort(new_f[keep], kind="stable")
        sel = np.flatnonzero(keep)[srt]
        return Curve._trusted(
            new_f[sel],
            new_v[sel],
            self.interp[sel],
            self.handle_mode[sel],
            self.left[sel].copy(),
            self.right[sel].copy(),
            ch,
        )

    def with_interpolation(self, frames: object | None, interp: int | Interpolation) -> Curve:
        """Set the interpolation of the keys at ``frames`` (None: all keys).

        Raises DocumentError for frames without a key or an invalid value.
        """
        it = self.interp.copy()
        val = _as_enum(interp, 1, Interpolation, 0, self.channel)[0]
        if frames is None:
            it[:] = val
        else:
            it[self._check_existing(_as_key_frames(frames, self.channel))] = val
        return Curve._trusted(
            self.frames.copy(),
            self.values.copy(),
            it,
            self.handle_mode.copy(),
            self.left.copy(),
            self.right.copy(),
            self.channel,
        )

    def with_handle_mode(self, frames: object | None, mode: int | HandleMode) -> Curve:
        """Set the handle mode of the keys at ``frames`` (None: all keys).

        Switching to FREE keeps the current handles; to ALIGNED also turns the right handle to
        be collinear with the left; AUTO_CLAMPED/VECTOR recompute them.
        """
        hm = self.handle_mode.copy()
        val = _as_enum(mode, 1, HandleMode, 0, self.channel)[0]
        idx = (
            np.arange(len(self))
            if frames is None
            else self._check_existing(_as_key_frames(frames, self.channel))
        )
        hm[idx] = val
        lh, rh = self.left.copy(), self.right.copy()
        if val == HandleMode.ALIGNED:
            for i in idx:
                rh[i] = _align(lh[i], rh[i])
        return Curve._trusted(
            self.frames.copy(), self.values.copy(), self.interp.copy(), hm, lh, rh, self.channel
        )

    def with_handles(
        self,
        frame: int,
        left: tuple[float, float] | None = None,
        right: tuple[float, float] | None = None,
    ) -> Curve:
        """Set the left and/or right handle offset of the key at ``frame``.

        The key becomes FREE, unless it is ALIGNED: then it stays ALIGNED and the other handle
        turns to stay collinear (keeping its length; with both given, the right one turns).
        Raises DocumentError for a missing key, a non-finite handle, or one pointing the wrong
        way (left dx > 0, right dx < 0).
        """
        ch = self.channel
        i = int(self._check_existing(_as_key_frames(frame, ch))[0])
        lh, rh = self.left.copy(), self.right.copy()
        for side, h, arr, sign in (("left", left, lh, -1), ("right", right, rh, 1)):
            if h is None:
                continue
            a = np.asarray(h, dtype=np.float64)
            if a.shape != (2,) or not np.isfinite(a).all() or (np.abs(a) > MAX_ABS_VALUE).any():
                raise DocumentError(
                    f"{_label(ch)}: {side} handle {h!r} at frame "
                    f"{self.frames[i]} is not a finite (dx, dy)"
                )
            if a[0] * sign < 0:
                raise DocumentError(
                    f"{_label(ch)}: {side} handle at frame {self.frames[i]} points the wrong way"
                )
            arr[i] = a
        hm = self.handle_mode.copy()
        if hm[i] == HandleMode.ALIGNED:
            if left is not None:
                rh[i] = _align(lh[i], rh[i])
            else:
                lh[i] = _align(rh[i], lh[i])
        else:
            hm[i] = HandleMode.FREE
        return Curve._trusted(
            self.frames.copy(), self.values.copy(), self.interp.copy(), hm, lh, rh, ch
        )

    def with_channel(self, channel: str) -> Curve:
        """The same curve labelled ``channel`` (arrays shared)."""
        if channel == self.channel:
            return self
        obj = Curve.__new__(Curve)
        obj._init(
            self.frames, self.values, self.interp, self.handle_mode, self.left, self.right, channel
        )
        object.__setattr__(obj, "_pack", self._pack)
        return obj


def _rebuild(f, v, it, hm, lh, rh, channel):
    return Curve(f, v, it, hm, lh, rh, channel=channel)


def _align(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` turned to point opposite ``ref``, keeping its length (unchanged if ref is 0)."""
    n_ref = float(np.hypot(*ref))
    if n_ref == 0.0:
        return other
    return -ref / n_ref * float(np.hypot(*other))


def _recompute_handles(
    f: np.ndarray, v: np.ndarray, hm: np.ndarray, lh: np.ndarray, rh: np.ndarray
) -> None:
    """Fill the AUTO_CLAMPED and VECTOR handles of ``lh``/``rh`` [K, 2] in place."""
    k = f.shape[0]
    if k == 0:
        return
    auto = hm == HandleMode.AUTO_CLAMPED
    vec = hm == HandleMode.VECTOR
    if not (auto.any() or vec.any()):
        return
    if k == 1:
        lh[0] = (-1.0 / 3.0, 0.0)
        rh[0] = (1.0 / 3.0, 0.0)
        return
    ff = f.astype(np.float64)
    h = np.diff(ff)  # [K-1]
    dv = np.diff(v)
    h_prev = np.concatenate([h[:1], h])  # [K] interval before each key (mirrored at the start)
    h_next = np.concatenate([h, h[-1:]])
    if auto.any():
        d = dv / h  # secant slopes [K-1]
        m = np.zeros(k)
        if k > 2:
            # Tangent from the neighbours (slope of the chord prev -> next), zero at local
            # extrema, and at most 3x the smaller adjacent secant: with both end tangents of a
            # segment within [0, 3] times its secant the cubic is monotone (Fritsch-Carlson), so
            # it stays inside the key range.
            dl, dr = d[:-1], d[1:]
            chord = (v[2:] - v[:-2]) / (ff[2:] - ff[:-2])
            limit = 3.0 * np.minimum(np.abs(dl), np.abs(dr))
            mi = np.sign(chord) * np.minimum(np.abs(chord), limit)
            mi[dl * dr <= 0] = 0.0
            m[1:-1] = mi
        # The ends stay flat: evaluation holds the end values constant outside the keys.
        lh[auto, 0] = -h_prev[auto] / 3.0
        lh[auto, 1] = -m[auto] * h_prev[auto] / 3.0
        rh[auto, 0] = h_next[auto] / 3.0
        rh[auto, 1] = m[auto] * h_next[auto] / 3.0
    if vec.any():
        lx = np.concatenate([[0.0], -h]) / 3.0
        ly = np.concatenate([[0.0], -dv]) / 3.0
        rx = np.concatenate([h, [0.0]]) / 3.0
        ry = np.concatenate([dv, [0.0]]) / 3.0
        # The end keys mirror their one real handle.
        lx[0], ly[0] = -rx[0], -ry[0]
        rx[-1], ry[-1] = -lx[-1], -ly[-1]
        lh[vec, 0], lh[vec, 1] = lx[vec], ly[vec]
        rh[vec, 0], rh[vec, 1] = rx[vec], ry[vec]


def _pack_curve(c: Curve) -> Packed:
    """Segment tables of a curve with K >= 1 keys (see studio.document._packed)."""
    k = len(c)
    if k == 0:
        return pack_constant(0.0)
    f = c.frames.astype(np.float64)
    v = c.values
    s = k + 1
    f0 = np.zeros(s)
    inv_h = np.zeros(s)
    coef = np.zeros((4, s))
    coef[0, 0] = v[0]
    coef[0, -1] = v[-1]
    xcoef = nonuni = ch_nonuni = None
    if k > 1:
        h = np.diff(f)
        dv = np.diff(v)
        it = c.interp[:-1]
        f0[1:-1] = f[:-1]
        inv_h[1:-1] = 1.0 / h
        c0 = v[:-1].copy()
        c1 = np.zeros(k - 1)
        c2 = np.zeros(k - 1)
        c3 = np.zeros(k - 1)
        lin = it == Interpolation.LINEAR
        c1[lin] = dv[lin]
        bez = it == Interpolation.BEZIER
        if bez.any():
            a = c.right[:-1, 0][bez] / h[bez]  # right x-handle of the start key, in u
            b = -c.left[1:, 0][bez] / h[bez]  # left x-handle of the end key, in u
            ry = c.right[:-1, 1][bez]
            ly = c.left[1:, 1][bez]
            # Overlapping x-handles would make time run backwards: scale both (Blender does).
            over = a + b > 1.0
            if over.any():
                scale = np.ones_like(a)
                scale[over] = 1.0 / (a[over] + b[over])
                a, b, ry, ly = a * scale, b * scale, ry * scale, ly * scale
            d = dv[bez]
            c1[bez] = 3.0 * ry
            c2[bez] = 3.0 * (d + ly - 2.0 * ry)
            c3[bez] = -2.0 * d - 3.0 * ly + 3.0 * ry
            nu = (np.abs(a - 1.0 / 3.0) > _UNIFORM_TOL) | (np.abs(b - 1.0 / 3.0) > _UNIFORM_TOL)
            if nu.any():
                xcoef = np.zeros((3, s))
                nonuni = np.zeros(s, bool)
                seg = np.flatnonzero(bez)[nu] + 1
                xcoef[0, seg] = 3.0 * a[nu]
                xcoef[1, seg] = 3.0 * (1.0 - b[nu]) - 6.0 * a[nu]
                xcoef[2, seg] = 3.0 * a[nu] + 3.0 * b[nu] - 2.0
                nonuni[seg] = True
                ch_nonuni = np.ones(1, bool)
        # Coefficients in frames since the segment start (see _packed): k_i = c_i / h^i.
        ih = 1.0 / h
        coef[0, 1:-1] = c0
        coef[1, 1:-1] = c1 * ih
        coef[2, 1:-1] = c2 * ih * ih
        coef[3, 1:-1] = c3 * ih * ih * ih
    return Packed(
        1,
        c.frames,
        np.zeros(k, np.intp),
        np.arange(1, k + 1, dtype=np.intp),
        np.array([0, s], np.intp),
        f0,
        inv_h,
        coef,
        xcoef,
        nonuni,
        ch_nonuni,
    )
