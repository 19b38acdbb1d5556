"""Audio peaks for drawing waveforms: min/max per pixel column, computed once per clip.

Qt-free. :class:`AudioPeaks` keeps the mono signal and a block-level min/max pyramid (one level,
``BLOCK`` samples per entry) made once when the clip is loaded. Drawing asks for the columns of a
zoom level (``samples_per_px``); columns are laid on a grid anchored at the clip's first sample,
so panning never recomputes anything and each zoom level is computed in tiles of ``TILE`` columns
that stay cached (LRU) until the zoom changes often enough to push them out.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from studio.document.audio import to_mono

__all__ = ["AudioPeaks"]


class AudioPeaks:
    """Min/max envelope of one clip at any zoom.

    ``samples``: ``[S, channels]`` or ``[S]`` float audio; channels are averaged. Raises
    ValueError for an empty signal or a non-positive sample rate.
    """

    BLOCK = 256  # samples per pyramid entry
    TILE = 1024  # columns per cached tile
    MAX_TILES = 256  # LRU size (256 tiles x 1024 columns x 2 float32 = 2 MB)

    def __init__(self, samples: np.ndarray, sample_rate: int) -> None:
        mono = to_mono(np.asarray(samples))
        if mono.ndim != 1 or mono.shape[0] == 0:
            raise ValueError(f"audio peaks need a non-empty 1-D signal, got shape {mono.shape}")
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.num_samples = int(mono.shape[0])
        self._mono = np.ascontiguousarray(mono, dtype=np.float32)  # [S]
        nb = math.ceil(self.num_samples / self.BLOCK)
        padded = np.empty(nb * self.BLOCK, np.float32)
        padded[: self.num_samples] = self._mono
        padded[self.num_samples :] = self._mono[-1]  # pad with a real sample: no fake silence
        blocks = padded.reshape(nb, self.BLOCK)
        self._bmin = blocks.min(axis=1)  # [nb]
        self._bmax = blocks.max(axis=1)  # [nb]
        self._tiles: OrderedDict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_samples / self.sample_rate

    def num_columns(self, samples_per_px: float) -> int:
        """Columns the whole clip spans at this zoom."""
        return math.ceil(self.num_samples / samples_per_px)

    def columns(
        self, first: int, count: int, samples_per_px: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Min and max ``[count]`` float32 of columns ``first .. first+count-1``.

        Column ``c`` covers samples ``[c * spp, (c + 1) * spp)``. Columns outside the clip are
        NaN (draw nothing there). Raises ValueError for a non-positive zoom.
        """
        spp = float(samples_per_px)
        if not (spp > 0 and math.isfinite(spp)):
            raise ValueError(f"samples per pixel must be positive, got {samples_per_px}")
        count = max(int(count), 0)
        mins = np.full(count, np.nan, np.float32)
        maxs = np.full(count, np.nan, np.float32)
        total = self.num_columns(spp)
        lo, hi = max(int(first), 0), min(int(first) + count, total)
        if hi <= lo:
            return mins, maxs
        for t in range(lo // self.TILE, (hi - 1) // self.TILE + 1):
            tmin, tmax = self._tile(spp, t)
            c0 = t * self.TILE
            a, b = max(lo, c0), min(hi, c0 + tmin.shape[0])
            mins[a - first : b - first] = tmin[a - c0 : b - c0]
            maxs[a - first : b - first] = tmax[a - c0 : b - c0]
        return mins, maxs

    def _tile(self, spp: float, t: int) -> tuple[np.ndarray, np.ndarray]:
        key = (spp, t)
        hit = self._tiles.get(key)
        if hit is not None:
            self._tiles.move_to_end(key)
            return hit
        total = self.num_columns(spp)
        c0 = t * self.TILE
        n = min(self.TILE, total - c0)
        edges = (np.arange(n + 1, dtype=np.float64) + c0) * spp  # [n+1] sample positions
        if spp >= 4 * self.BLOCK:
            # Wide columns: reduce block extrema (edges snap to blocks, < 1/4 column of error).
            lo_arr, hi_arr, scale = self._bmin, self._bmax, float(self.BLOCK)
        else:
            lo_arr, hi_arr, scale = self._mono, self._mono, 1.0
        size = lo_arr.shape[0]
        idx = np.minimum((edges[:-1] / scale).astype(np.int64), size - 1)  # [n]
        end = max(min(math.ceil(edges[-1] / scale), size), int(idx[-1]) + 1)
        # Reduce only this tile's span; reduceat gives a[i] for empty columns (spp < 1), which
        # is the nearest sample, as wanted.
        rel = idx - idx[0]
        out = (
            np.minimum.reduceat(lo_arr[idx[0] : end], rel),
            np.maximum.reduceat(hi_arr[idx[0] : end], rel),
        )
        tile = (out[0].astype(np.float32), out[1].astype(np.float32))
        self._tiles[key] = tile
        if len(self._tiles) > self.MAX_TILES:
            self._tiles.popitem(last=False)
        return tile
