"""Dragging a motion-space keypoint in the viewport: screen motion -> expression delta.

Qt-free. A drag moves keypoint k's expression channels ``exp_k_x`` / ``exp_k_y`` (never z, which
is depth along the view and cannot be placed with a mouse), only along the axes its region allows
(:data:`KEYPOINT_AXES`), with the magnitude of the allowed components clamped
(:func:`exp_limit`). The map from exp to world space is the rig's own (``keypoints_world`` is
affine in exp: head pose, keypoint scale and the RDF->RUB flip included), so the inverse is
exact for any pose: the keypoint stays under the cursor until a limit stops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from models.motion_space import CHANNEL_INDEX, KEYPOINTS, NUM_KEYPOINTS, channel_name

if TYPE_CHECKING:
    from models.heads import RiggedGaussianHead
    from renderers.camera import Camera

__all__ = ["DEFAULT_EXP_LIMIT", "KEYPOINT_AXES", "KeypointDrag", "exp_limit"]

DEFAULT_EXP_LIMIT = 0.08  # keypoint units (~1.3 cm on the default head): beyond it faces tear
# The jaw keypoint's +y opens the mouth through a hinge; it needs a longer travel.
_EXP_LIMITS = {19: 0.15}
# Expression axes (0 = x, 1 = y) a drag may change, per keypoint. Eyelid keypoints and the jaw
# drive rotations through their y only (blink, jaw open); their x would slide the lid or the chin
# sideways, which no face does.
_Y_ONLY = frozenset((11, 13, 15, 16, 19))
KEYPOINT_AXES: tuple[tuple[int, ...], ...] = tuple(
    (1,) if k in _Y_ONLY else (0, 1) for k in range(NUM_KEYPOINTS)
)


def exp_limit(keypoint: int) -> float:
    """Largest magnitude (keypoint units) of a keypoint's dragged expression components."""
    return _EXP_LIMITS.get(int(keypoint), DEFAULT_EXP_LIMIT)


class KeypointDrag:
    """One drag of keypoint ``index`` seen by ``camera``, starting from motion ``values``.

    ``update(u, v)`` (camera pixels) returns the previewed motion frame; ``keys(frame)`` the
    channels to key when the drag ends. Raises IndexError for a keypoint outside 0..20 and
    ValueError for a keypoint behind the camera.
    """

    def __init__(
        self, head: RiggedGaussianHead, values: np.ndarray, index: int, camera: Camera
    ) -> None:
        if not 0 <= int(index) < NUM_KEYPOINTS:
            raise IndexError(f"keypoint index must be in 0..{NUM_KEYPOINTS - 1}, got {index}")
        self.index = int(index)
        self.keypoint = KEYPOINTS[self.index]
        self.axes = KEYPOINT_AXES[self.index]
        self.limit = exp_limit(self.index)
        self.camera = camera
        self.start_values = np.array(values, dtype=np.float64, copy=True)  # [C]
        self._channels = [CHANNEL_INDEX[channel_name(self.index, a)] for a in range(3)]
        self.start_exp = self.start_values[self._channels].copy()  # [3]
        p0 = head.keypoints_world(self.start_values)[self.index]
        self.start_world = p0  # [3] metres RUB
        if float(camera.world_to_cam_points(p0[None])[0, 2]) <= 0:
            raise ValueError(f"keypoint {self.keypoint.name} is behind the camera")
        # World displacement per keypoint unit of each exp axis (exact: the rig is affine in exp).
        step = 0.1
        jac = np.empty((3, 3))
        for a in range(3):
            v = self.start_values.copy()
            v[self._channels[a]] += step
            jac[:, a] = (head.keypoints_world(v)[self.index] - p0) / step
        self.jacobian = jac  # [3 world, 3 exp]
        self.values = self.start_values.copy()

    @property
    def exp(self) -> np.ndarray:
        """The keypoint's current expression delta [3] (x, y, z; keypoint units)."""
        return self.values[self._channels].copy()

    def update(self, u: float, v: float) -> np.ndarray:
        """Move the keypoint so that it projects to camera pixel (u, v) (least squares when its
        allowed axes cannot reach it, e.g. seen from the side); returns the motion frame [C]
        (a copy) to preview."""
        cam = self.camera
        axes = list(self.axes)
        jac = self.jacobian[:, axes]  # [3, A]
        rot, t = cam.rotation, cam.world_to_camera[:3, 3]
        target = np.array([u, v], dtype=np.float64)
        d = np.zeros(len(axes))
        # Gauss-Newton on the projection (the world position is affine in d; only the
        # perspective division is not): converges in 2-3 steps for mouse-sized motions.
        for _ in range(4):
            pc = rot @ (self.start_world + jac @ d) + t
            z = max(float(pc[2]), 1e-6)
            uv = np.array([cam.fx * pc[0] / z + cam.cx, cam.fy * pc[1] / z + cam.cy])
            dproj = np.array(
                [
                    [cam.fx / z, 0.0, -cam.fx * pc[0] / z**2],
                    [0.0, cam.fy / z, -cam.fy * pc[1] / z**2],
                ]
            )
            step, *_ = np.linalg.lstsq(dproj @ rot @ jac, target - uv, rcond=None)
            d += step
            if float(np.abs(step).max()) < 1e-9:
                break
        exp = self.start_exp.copy()
        exp[axes] += d
        exp[axes] = self._clamped(exp[axes])
        self.values = self.start_values.copy()
        self.values[self._channels] = exp
        return self.values.copy()

    def _clamped(self, comps: np.ndarray) -> np.ndarray:
        # Never snap a keypoint that already sits beyond the limit (generated motion may):
        # the allowed radius is the larger of the limit and where the drag started.
        start = float(np.linalg.norm(self.start_exp[list(self.axes)]))
        radius = max(self.limit, start)
        norm = float(np.linalg.norm(comps))
        return comps * (radius / norm) if norm > radius else comps

    @property
    def changed(self) -> bool:
        return not np.array_equal(self.values[self._channels], self.start_exp)

    def keys(self, frame: int) -> dict[str, tuple[list[int], list[float]]]:
        """``{channel: ([frame], [value])}`` for the dragged axes (for ``insert_keys``)."""
        return {
            channel_name(self.index, a): ([int(frame)], [float(self.values[self._channels[a]])])
            for a in self.axes
        }
