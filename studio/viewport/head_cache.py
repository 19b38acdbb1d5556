"""Per-frame head work for the viewport, kept minimal: cached deformation and delta uploads.

Qt-free. :class:`DeformCache` keeps the last few deformed frames keyed by (document revision,
frame) so redraws (orbit, hover, mode switches) never re-run the rig. :class:`SplatUploader`
remembers which arrays a ``GaussianSplatRenderer`` holds and re-uploads only those a frame
changed (the rig hands out its read-only base arrays for everything it leaves alone).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING

import numpy as np

from studio.heads import arrays_to_cloud

if TYPE_CHECKING:
    from models.heads import GaussianArrays, RiggedGaussianHead
    from renderers.gl_splats import GaussianSplatRenderer

__all__ = ["DeformCache", "SplatUploader", "fast_packed_covariances"]


class DeformCache:
    """LRU of ``head.deform(values)`` results keyed by a caller's key, e.g. (revision, frame).

    One cache serves one head: :meth:`deform` clears it when a different head object comes.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = int(size)
        self._head: RiggedGaussianHead | None = None
        self._items: OrderedDict[Hashable, GaussianArrays] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def deform(self, head: RiggedGaussianHead, key: Hashable, values: np.ndarray) -> GaussianArrays:
        """The deformed Gaussians for ``values [len(CHANNELS)]``, cached under ``key``."""
        if head is not self._head:
            self._items.clear()
            self._head = head
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return hit
        self.misses += 1
        arrays = head.deform(values)
        self._items[key] = arrays
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return arrays

    def clear(self) -> None:
        self._items.clear()
        self._head = None


def fast_packed_covariances(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Packed float32 covariances [N, 6] from quats [N, 4] and scales [N, 3]: the renderer's own
    ``renderers.gl_splats.packed_covariances`` (kept here for callers of the old name)."""
    from renderers.gl_splats import packed_covariances

    return packed_covariances(quats, scales)


class SplatUploader:
    """Feeds a GaussianSplatRenderer frame after frame, uploading only what changed.

    Arrays are compared by identity: the rig returns its own base arrays for attributes a frame
    leaves alone, and the cache returns the same objects for a frame seen before.
    """

    def __init__(self, renderer: GaussianSplatRenderer) -> None:
        self.renderer = renderer
        self._held: dict[str, np.ndarray] = {}
        self.uploads: dict[str, int] = {"full": 0, "means": 0, "cov": 0, "sh": 0}

    def push(self, arrays: GaussianArrays) -> None:
        """Make the renderer hold ``arrays``. Raises ValueError for inconsistent shapes."""
        held = self._held
        n = len(arrays)
        facing = getattr(arrays, "facing", None)
        if (
            not held
            or held["means"].shape[0] != n
            or held["sh"].shape != arrays.sh.shape
            or held["facing"] is not facing  # another head: its one-sided surfels differ
        ):
            self.renderer.upload(arrays_to_cloud(arrays))
            self.uploads["full"] += 1
        else:
            changed = {
                name: getattr(arrays, name)
                for name in ("means", "quats", "scales", "opacities", "sh")
                if getattr(arrays, name) is not held[name]
            }
            if "quats" in changed or "scales" in changed:
                # Covariances need both (the renderer computes them in float32, ~4 ms for 50k).
                changed["quats"], changed["scales"] = arrays.quats, arrays.scales
            if changed:
                self.renderer.update(**changed)
            for names, key in (
                (("means", "opacities"), "means"),
                (("quats",), "cov"),
                (("sh",), "sh"),
            ):
                if any(name in changed for name in names):
                    self.uploads[key] += 1
        self._held = {
            "means": arrays.means,
            "quats": arrays.quats,
            "scales": arrays.scales,
            "opacities": arrays.opacities,
            "sh": arrays.sh,
            "facing": facing,
        }

    def invalidate(self) -> None:
        """Forget what the renderer holds (next push uploads everything)."""
        self._held = {}
