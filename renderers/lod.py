"""Level of detail for CPU-only machines: keep the Gaussians that contribute most to the image.

A Gaussian's contribution is scored as opacity x the area of its largest cross-section
(pi s_a s_b, s_a >= s_b the two largest scales): roughly the alpha mass it deposits when seen
face-on. With a camera the area is the projected one, ``(f / z)^2`` times larger, and Gaussians
behind the camera or whose 3-sigma disc misses the image score 0.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from renderers.gaussians import GaussianCloud

if TYPE_CHECKING:
    from renderers.camera import Camera

__all__ = ["contribution_scores", "lod_cloud", "select_lod"]

_NEAR = 0.01


def contribution_scores(cloud: GaussianCloud, camera: Camera | None = None) -> np.ndarray:
    """Visual contribution [N] float64 of every Gaussian (larger is more important)."""
    s = np.sort(np.abs(cloud.scales.astype(np.float64)), axis=1)
    area = np.pi * s[:, 2] * s[:, 1]
    score = np.clip(cloud.opacities.astype(np.float64), 0.0, 1.0) * area
    if camera is None:
        return score
    pc = camera.world_to_cam_points(cloud.means)
    z = pc[:, 2]
    visible = z >= _NEAR
    zs = np.where(visible, z, 1.0)
    f2 = camera.fx * camera.fy / (zs * zs)
    u = camera.fx * pc[:, 0] / zs + camera.cx
    v = camera.fy * pc[:, 1] / zs + camera.cy
    reach = 3.0 * s[:, 2] * max(camera.fx, camera.fy) / zs  # 3-sigma radius in pixels
    visible &= (u + reach >= 0) & (u - reach <= camera.width)
    visible &= (v + reach >= 0) & (v - reach <= camera.height)
    return np.where(visible, score * f2, 0.0)


def select_lod(cloud: GaussianCloud, budget: int, camera: Camera | None = None) -> np.ndarray:
    """Indices [min(budget, N)] int64 (ascending) of the ``budget`` highest-scoring Gaussians
    (see ``contribution_scores``). Raises ValueError unless budget is a positive integer."""
    if isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise ValueError(f"LOD budget must be a positive integer, got {budget!r}")
    n = len(cloud)
    budget = int(budget)
    if budget >= n:
        return np.arange(n, dtype=np.int64)
    score = contribution_scores(cloud, camera)
    top = np.argpartition(-score, budget - 1)[:budget]
    return np.sort(top).astype(np.int64)


def lod_cloud(
    cloud: GaussianCloud,
    budget: int,
    camera: Camera | None = None,
    compensate: bool = False,
) -> GaussianCloud:
    """The ``budget`` most contributing Gaussians as a new cloud.

    compensate: enlarge the survivors' two largest axes by one common factor so that the total
    scored area is preserved (capped at 1.5x), which keeps coverage when many small Gaussians
    were dropped. Raises ValueError for a bad budget.
    """
    index = select_lod(cloud, budget, camera)
    out = cloud.subset(index)
    if compensate and len(index) < len(cloud):
        score = contribution_scores(cloud, camera)
        kept = float(score[index].sum())
        if kept > 0:
            factor = float(np.clip(np.sqrt(score.sum() / kept), 1.0, 1.5))
            scales = out.scales.copy()
            order = np.argsort(scales, axis=1)
            rows = np.arange(len(scales))[:, None]
            scales[rows, order[:, 1:]] *= np.float32(factor)
            out = replace(out, scales=scales)
    return out
