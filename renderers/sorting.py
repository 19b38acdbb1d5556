"""Depth sorting of Gaussians for back-to-front alpha blending.

The fast CPU path quantises camera-space depth to 16 bits and uses numpy's stable sort, which is a
radix sort for 16-bit keys (measured on the 2-core dev machine: 0.7 ms for 50k and ~8 ms for 200k
Gaussians against 1.7 ms / 18 ms for ``np.argsort`` of float32). Over a head's depth range
(~0.3 m) a 16-bit bucket is ~5 micrometres, far below anything visible. With torch already
imported and CUDA available, "auto" sorts on the GPU instead.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["SORT_METHODS", "DepthSorter", "back_to_front", "view_depths"]

SORT_METHODS = ("auto", "radix16", "argsort", "torch")


def view_depths(means: np.ndarray, world_to_camera: np.ndarray) -> np.ndarray:
    """Camera-space z [N] float32 of world points means [N, 3] (OpenCV camera: z forward)."""
    w2c = np.asarray(world_to_camera, dtype=np.float64)
    row = w2c[2, :3].astype(np.float32)
    return means @ row + np.float32(w2c[2, 3])


def _torch_cuda_ready() -> bool:
    torch = sys.modules.get("torch")  # never import torch (seconds) just to sort
    return torch is not None and bool(torch.cuda.is_available())


def back_to_front(
    means: np.ndarray, world_to_camera: np.ndarray, near: float = 0.01, method: str = "auto"
) -> np.ndarray:
    """Indices [M] uint32 of the Gaussians with camera z >= near, farthest first.

    method: "radix16" (16-bit quantised keys, numpy), "argsort" (exact float32 keys), "torch"
    (CUDA; raises RuntimeError without it) or "auto" (torch on CUDA when torch is already
    imported, else radix16). Raises ValueError for an unknown method.
    """
    if method not in SORT_METHODS:
        raise ValueError(f"unknown sort method {method!r}; expected one of {SORT_METHODS}")
    z = view_depths(means, world_to_camera)
    if method == "auto":
        method = "torch" if _torch_cuda_ready() else "radix16"
    visible = z >= near
    index = None
    if not visible.all():
        index = np.flatnonzero(visible).astype(np.uint32)
        z = z[index]
    if z.size == 0:
        return np.zeros(0, dtype=np.uint32)
    if method == "torch":
        order = _torch_order(z)
    elif method == "argsort":
        order = np.argsort(-z, kind="stable")
    else:
        lo, hi = float(z.min()), float(z.max())
        scale = 65535.0 / (hi - lo) if hi > lo else 0.0
        keys = ((hi - z) * np.float32(scale)).astype(np.uint16)  # 0 = farthest
        order = np.argsort(keys, kind="stable")
    order = order.astype(np.uint32, copy=False)
    return order if index is None else index[order]


def _torch_order(z: np.ndarray) -> np.ndarray:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("sort method 'torch' needs CUDA")
    zt = torch.from_numpy(np.ascontiguousarray(z)).cuda()
    return torch.argsort(zt, descending=True, stable=True).cpu().numpy()


class DepthSorter:
    """Caches the last order: sorting is skipped when neither the camera's depth axis nor the
    cloud version changed. The order depends only on the third row of the world-to-camera
    matrix (camera z), so a static view redrawn and the second eye of a parallel stereo rig
    (its eyes differ by a shift along camera x: the same row, bit for bit) reuse it."""

    def __init__(self, method: str = "auto", near: float = 0.01) -> None:
        if method not in SORT_METHODS:
            raise ValueError(f"unknown sort method {method!r}; expected one of {SORT_METHODS}")
        self.method = method
        self.near = near
        self._key: tuple | None = None
        self._order: np.ndarray | None = None
        self.sorts = 0  # number of real sorts done (for tests and benchmarks)

    def order(self, means: np.ndarray, world_to_camera: np.ndarray, version: int) -> np.ndarray:
        """Back-to-front indices [M] uint32 (see ``back_to_front``), cached per (camera-z row of
        world_to_camera, version)."""
        key = (version, np.asarray(world_to_camera, dtype=np.float64)[2].tobytes())
        if key != self._key or self._order is None:
            self._order = back_to_front(means, world_to_camera, self.near, self.method)
            self._key = key
            self.sorts += 1
        return self._order

    def invalidate(self) -> None:
        self._key = None
        self._order = None
