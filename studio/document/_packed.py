"""Batched evaluation of many curves at many frames (the engine behind Curve/Take.evaluate).

Every curve with K keys becomes K+1 *segments*: segment 0 holds the first value before the first
key, segment j (1..K-1) runs from key j-1 to key j, segment K holds the last value after the last
key. A segment is a cubic in the frame offset ``d = frame - f0`` with power coefficients
``c0 + d*(k1 + d*(k2 + d*k3))`` (k_i = c_i / h^i for the cubic c_i in normalised time u = d/h;
constant segments have k = 0), so constant, linear and bezier keys evaluate with one formula and
five gathered numbers per sample. Bezier segments whose x-handles are not at 1/3 and 2/3
("non-uniform") also store x(t) and solve x(t) = u per sample.

All curves of a take are concatenated into one table. For sorted frames ``X [F]`` the segment
that owns sample ``(c, x)`` is found without a per-sample search: each key's insertion position in
X cuts channel c's run of F samples, so the run lengths of the segments are differences of those
positions, and ``np.repeat`` expands segment ids in channel-major order. The samples are then
evaluated in cache-sized blocks of channels. Channels without keys are one constant segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studio.document.errors import DocumentError

__all__ = ["Packed", "concat_packed", "evaluate_packed", "pack_constant"]

# Samples per evaluation block: small enough that the block's temporaries stay in L2.
_BLOCK = 32768
_NEWTON_ITERS = 40
_NEWTON_TOL = 1e-13
# Per-channel bands for the binary-search path: queries are clipped to +-_LIMIT (beyond every
# key, see curve.MAX_FRAME) and channel c's keys are offset by c * _SPAN; exact in int64.
_LIMIT = 1_000_000_001
_SPAN = 4 * _LIMIT


@dataclass(frozen=True)
class Packed:
    """Segment tables of C channels. S = N + C segments for N keys in total."""

    num_channels: int
    key_frames: np.ndarray  # [N] int64, channel-major, increasing within a channel
    key_channel: np.ndarray  # [N] intp
    key_slot: np.ndarray  # [N] intp, slot of each key in the run-boundary array (len S+1)
    seg_start: np.ndarray  # [C+1] intp, first segment of each channel (and S at the end)
    f0: np.ndarray  # [S] float64 segment start frame (0 for constant ends)
    inv_h: np.ndarray  # [S] float64 1/length (0 for constant ends)
    coef: np.ndarray  # [4, S] float64 c0, k1, k2, k3 in d = frame - f0
    xcoef: np.ndarray | None  # [3, S] x(t) = a1 t + a2 t^2 + a3 t^3 for non-uniform segments
    nonuniform: np.ndarray | None  # [S] bool
    channel_nonuniform: np.ndarray | None  # [C] bool
    key_search: np.ndarray | None = None  # [N] int64 keys + channel * _SPAN, built on demand


def pack_constant(value: float) -> Packed:
    """One channel with no keys: ``value`` everywhere."""
    z = np.zeros(1)
    coef = np.zeros((4, 1))
    coef[0, 0] = value
    return Packed(
        1,
        np.zeros(0, np.int64),
        np.zeros(0, np.intp),
        np.zeros(0, np.intp),
        np.array([0, 1], np.intp),
        z,
        z.copy(),
        coef,
        None,
        None,
        None,
    )


def concat_packed(parts: list[Packed]) -> Packed:
    """Concatenate single- or multi-channel packs into one pack, channels in order."""
    seg_counts = [p.f0.shape[0] for p in parts]
    seg_offsets = np.concatenate([[0], np.cumsum(seg_counts)]).astype(np.intp)
    ch_offsets = np.concatenate([[0], np.cumsum([p.num_channels for p in parts])]).astype(np.intp)
    key_frames = np.concatenate([p.key_frames for p in parts])
    key_channel = np.concatenate(
        [p.key_channel + o for p, o in zip(parts, ch_offsets, strict=False)]
    )
    key_slot = np.concatenate([p.key_slot + o for p, o in zip(parts, seg_offsets, strict=False)])
    seg_start = np.concatenate(
        [p.seg_start[:-1] + o for p, o in zip(parts, seg_offsets, strict=False)]
        + [seg_offsets[-1:]]
    ).astype(np.intp)
    any_nonuni = any(p.nonuniform is not None for p in parts)
    xcoef = nonuni = ch_nonuni = None
    if any_nonuni:
        xcoef = np.concatenate(
            [
                p.xcoef if p.xcoef is not None else np.zeros((3, n))
                for p, n in zip(parts, seg_counts, strict=False)
            ],
            axis=1,
        )
        nonuni = np.concatenate(
            [
                p.nonuniform if p.nonuniform is not None else np.zeros(n, bool)
                for p, n in zip(parts, seg_counts, strict=False)
            ]
        )
        ch_nonuni = np.concatenate(
            [
                p.channel_nonuniform
                if p.channel_nonuniform is not None
                else np.zeros(p.num_channels, bool)
                for p in parts
            ]
        )
    return Packed(
        int(ch_offsets[-1]),
        key_frames,
        key_channel,
        key_slot,
        seg_start,
        np.concatenate([p.f0 for p in parts]),
        np.concatenate([p.inv_h for p in parts]),
        np.concatenate([p.coef for p in parts], axis=1),
        xcoef,
        nonuni,
        ch_nonuni,
    )


def as_frames(frames: object, what: str = "evaluation frames") -> np.ndarray:
    """Frames to evaluate as float64 ``[F]`` (a scalar becomes ``[1]``).

    Raises DocumentError for non-numeric, non-finite or non-1-D input.
    """
    try:
        x = np.asarray(frames, dtype=np.float64)
    except (TypeError, ValueError):
        raise DocumentError(f"{what}: not numeric: {frames!r}") from None
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise DocumentError(f"{what}: expected a 1-D array of frames, got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        bad = x[~np.isfinite(x)][0]
        raise DocumentError(f"{what}: frame {bad} is not finite")
    return x


def _segments_by_search(p: Packed, x: np.ndarray) -> np.ndarray:
    """Segment of every sample, ``[F, C]`` intp, by one binary search per sample (for few
    frames: cost O(F*C*log N) instead of O(N + F*C))."""
    if p.key_search is None:
        object.__setattr__(p, "key_search", p.key_frames + p.key_channel.astype(np.int64) * _SPAN)
    # Keys are integers, so "keys <= x" equals "keys <= floor(x)"; clipping keeps each query
    # inside its channel's band of the offset key array.
    q = np.clip(np.floor(x), -_LIMIT, _LIMIT).astype(np.int64)
    ch = np.arange(p.num_channels, dtype=np.int64)
    r = np.searchsorted(p.key_search, q[:, None] + ch[None, :] * _SPAN, side="right")
    # Channel c's segments start at (its first key's index) + c, so segment = r + c.
    r += ch.astype(np.intp)
    return r


def _segments_by_runs(p: Packed, x: np.ndarray) -> np.ndarray:
    """Number of samples each segment owns, in channel-major order ``[S]`` (x sorted)."""
    n_frames = x.shape[0]
    x0 = x[0]
    dense = (
        x0 == np.floor(x0)
        and abs(x0) < 2**52
        and x[-1] - x0 == n_frames - 1
        and np.array_equal(x, x0 + np.arange(n_frames, dtype=np.float64))
    )
    # Position of each key in x: the first sample at or after the key.
    if dense:
        pos = np.clip(p.key_frames - np.int64(x0), 0, n_frames)
    else:
        pos = np.searchsorted(x, p.key_frames.astype(np.float64), side="left")
    # Run boundaries in channel-major sample order; channel c owns samples [c*F, (c+1)*F).
    bounds = np.empty(p.f0.shape[0] + 1, dtype=np.intp)
    bounds[0] = 0
    bounds[p.seg_start[1:]] = np.arange(1, p.num_channels + 1, dtype=np.intp) * n_frames
    bounds[p.key_slot] = pos + p.key_channel * n_frames
    return np.diff(bounds)


def _horner(p: Packed, idx: np.ndarray, d: np.ndarray, out: np.ndarray) -> None:
    """out = c0 + d*(k1 + d*(k2 + d*k3)) of segments idx (same shapes), in place."""
    c0, k1, k2, k3 = p.coef
    np.multiply(k3[idx], d, out=out)
    out += k2[idx]
    out *= d
    out += k1[idx]
    out *= d
    out += c0[idx]


def evaluate_packed(p: Packed, x: np.ndarray) -> np.ndarray:
    """Values of every channel of ``p`` at frames ``x [F]`` (finite float64): ``[F, C]``."""
    n_frames = x.shape[0]
    n_ch = p.num_channels
    if n_frames == 0:
        return np.empty((0, n_ch), dtype=np.float64)
    if 4 * n_frames * n_ch < p.key_frames.shape[0]:
        seg = _segments_by_search(p, x)  # [F, C]
        d = x[:, None] - p.f0[seg]
        out = np.empty((n_frames, n_ch), dtype=np.float64)
        if p.nonuniform is not None:
            fix = np.flatnonzero(p.nonuniform[seg])
            if fix.size:
                _fix_non_uniform(p, seg.reshape(-1), d.reshape(-1), fix)
        _horner(p, seg, d, out)
        return out

    order = None
    if n_frames > 1 and not bool(np.all(x[1:] >= x[:-1])):
        order = np.argsort(x, kind="stable")
        x = x[order]
    counts = _segments_by_runs(p, x)
    block_ch = max(1, _BLOCK // n_frames)
    x_tiled = np.tile(x, min(block_ch, n_ch))
    # Channel-major result, transposed once at the end (column writes into [F, C] are slow).
    out_cf = np.empty((n_ch, n_frames), dtype=np.float64)
    flat = out_cf.reshape(-1)
    fixes: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for ca in range(0, n_ch, block_ch):
        cb = min(n_ch, ca + block_ch)
        sa, sb = p.seg_start[ca], p.seg_start[cb]
        idx = np.repeat(np.arange(sa, sb, dtype=np.intp), counts[sa:sb])  # [(cb-ca)*F]
        d = x_tiled[: idx.shape[0]] - p.f0[idx]
        _horner(p, idx, d, flat[ca * n_frames : cb * n_frames])
        if p.channel_nonuniform is not None and p.channel_nonuniform[ca:cb].any():
            # Samples of non-uniform segments, found from the segment runs rather than by
            # gathering a flag for every sample: they are contiguous runs of idx.
            nu = np.flatnonzero(p.nonuniform[sa:sb])
            run = counts[sa:sb]
            owned = run[nu]
            if owned.sum():
                starts = np.cumsum(run) - run  # first sample of each segment in the block
                first = np.repeat(starts[nu] - (np.cumsum(owned) - owned), owned)
                fix = first + np.arange(int(owned.sum()), dtype=np.intp)
                fixes.append((ca * n_frames, fix, idx[fix], d[fix]))
    if fixes:
        # One batched solve for all blocks (the Newton loop costs per call, not per sample).
        pos = np.concatenate([o + f for o, f, _, _ in fixes])
        seg = np.concatenate([s for _, _, s, _ in fixes])
        d = np.concatenate([dd for _, _, _, dd in fixes])
        _fix_non_uniform(p, seg, d, np.arange(seg.shape[0]))
        vals = np.empty_like(d)
        _horner(p, seg, d, vals)
        flat[pos] = vals
    out = np.ascontiguousarray(out_cf.T)
    if order is not None:
        res = np.empty_like(out)
        res[order] = out
        return res
    return out


def _fix_non_uniform(p: Packed, seg: np.ndarray, d: np.ndarray, which: np.ndarray) -> None:
    """Replace ``d[which]`` (frames into segment) by the bezier parameter's frame equivalent:
    solve x(t) = d/h, then d = t*h, so the cubic in d gives y(t). In place."""
    s = seg[which]
    inv_h = p.inv_h[s]
    d[which] = _solve_x(p.xcoef[:, s], d[which] * inv_h) / inv_h


def _solve_x(xc: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Solve ``a1 t + a2 t^2 + a3 t^3 = target`` for t in [0, 1] (x(t) is non-decreasing).

    Vectorised Newton iteration, falling back to bisection of the bracket whenever a Newton step
    leaves it (flat spots where x'(t) = 0 happen with zero-length handles).
    """
    a1, a2, a3 = xc
    target = np.clip(target, 0.0, 1.0)
    t = target.copy()
    lo = np.zeros_like(t)
    hi = np.ones_like(t)
    # Work on the unconverged samples only (Newton converges in a few steps for most). Converged
    # samples are frozen, so each sample's result does not depend on which other samples share
    # the call (batched and per-curve evaluation agree exactly).
    live = np.arange(t.shape[0])
    for _ in range(_NEWTON_ITERS):
        tl, gl = t[live], target[live]
        b1, b2, b3 = a1[live], a2[live], a3[live]
        fx = ((b3 * tl + b2) * tl + b1) * tl - gl
        keep = np.abs(fx) > _NEWTON_TOL
        if not keep.all():
            live, tl, fx = live[keep], tl[keep], fx[keep]
            b1, b2, b3 = b1[keep], b2[keep], b3[keep]
            if live.shape[0] == 0:
                break
        below = fx < 0
        lo_l = np.where(below, tl, lo[live])
        hi_l = np.where(below, hi[live], tl)
        lo[live], hi[live] = lo_l, hi_l
        dx = (3.0 * b3 * tl + 2.0 * b2) * tl + b1
        with np.errstate(divide="ignore", invalid="ignore"):
            tn = tl - fx / dx
        ok = (tn > lo_l) & (tn < hi_l) & np.isfinite(tn)
        t[live] = np.where(ok, tn, 0.5 * (lo_l + hi_l))
    return t
