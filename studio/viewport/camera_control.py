"""The viewport's orbit camera: view state plus the orbit / pan / zoom drag state machine.

Qt-free (numpy + renderers.camera): the widget feeds it logical-pixel mouse positions and wheel
notches. The view camera is *view* state, not document state: navigating never makes an undo
step. It starts from the project's :class:`~studio.document.CameraSettings` and can be written
back with :meth:`ViewState.to_settings` (the widget's "use view as project camera").

Conventions follow ``renderers.camera.Camera.orbit``: yaw 0 / pitch 0 looks at the face from the
front (+z), positive yaw swings the camera to the viewer's right, positive pitch raises it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from renderers.camera import Camera

if TYPE_CHECKING:
    from studio.document import CameraSettings

__all__ = ["DRAG_MODES", "CameraControl", "ViewState"]

DRAG_MODES = ("orbit", "pan", "zoom")
MIN_DISTANCE, MAX_DISTANCE = 0.05, 50.0  # metres
MAX_PITCH = 89.0  # degrees; beyond it "up" would flip and the turntable feel is lost


@dataclass(frozen=True)
class ViewState:
    """Orbit camera: angles in degrees, distances in metres, target [3] in world RUB."""

    yaw: float = 0.0
    pitch: float = 0.0
    distance: float = 0.6
    fov_deg: float = 30.0
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.distance) and self.distance > 0):
            raise ValueError(f"ViewState.distance must be > 0, got {self.distance}")
        if not 1.0 < self.fov_deg < 179.0:
            raise ValueError(f"ViewState.fov_deg must be in (1, 179), got {self.fov_deg}")
        object.__setattr__(self, "target", tuple(float(t) for t in self.target))

    def camera(self, width: int, height: int) -> Camera:
        """The centred pinhole camera for an image of ``width`` x ``height`` pixels."""
        return Camera.orbit(
            self.target,
            self.distance,
            self.yaw,
            self.pitch,
            self.fov_deg,
            max(int(width), 1),
            max(int(height), 1),
        )

    @classmethod
    def from_settings(cls, settings: CameraSettings) -> ViewState:
        pitch = float(np.clip(settings.pitch, -MAX_PITCH, MAX_PITCH))
        return cls(settings.yaw, pitch, settings.distance, settings.fov_deg, settings.target)

    def to_settings(self, base: CameraSettings) -> CameraSettings:
        """``base`` (keeps its ipd and convergence) with this view's orbit."""
        return replace(
            base,
            yaw=self.yaw,
            pitch=self.pitch,
            distance=self.distance,
            fov_deg=self.fov_deg,
            target=self.target,
        )


@dataclass
class CameraControl:
    """Mouse navigation: ``begin(mode, x, y)``, ``move(x, y)`` per mouse move, ``end()``.

    orbit: dragging right turns the head to its left (the camera swings to the viewer's left),
    dragging down tilts it towards the viewer (the camera rises). pan: the point under the cursor
    follows the cursor (exact at the target's depth). zoom (drag): up zooms in. Positions are
    logical pixels; ``viewport_height`` (logical pixels) sets the pan scale.
    """

    state: ViewState = field(default_factory=ViewState)
    orbit_deg_per_px: float = 0.35
    zoom_per_notch: float = 0.88  # distance factor per wheel notch towards the head
    mode: str | None = None
    _last: tuple[float, float] = (0.0, 0.0)
    _height: float = 1.0

    def begin(self, mode: str, x: float, y: float, viewport_height: float) -> None:
        """Start a drag. Raises ValueError for a mode not in DRAG_MODES."""
        if mode not in DRAG_MODES:
            raise ValueError(f"unknown camera drag mode {mode!r}; expected one of {DRAG_MODES}")
        self.mode = mode
        self._last = (float(x), float(y))
        self._height = max(float(viewport_height), 1.0)

    def move(self, x: float, y: float) -> bool:
        """Continue the drag to (x, y); returns whether the view changed."""
        if self.mode is None:
            return False
        dx, dy = float(x) - self._last[0], float(y) - self._last[1]
        self._last = (float(x), float(y))
        if dx == 0 and dy == 0:
            return False
        s = self.state
        if self.mode == "orbit":
            yaw = (s.yaw - dx * self.orbit_deg_per_px + 180.0) % 360.0 - 180.0
            pitch = float(np.clip(s.pitch + dy * self.orbit_deg_per_px, -MAX_PITCH, MAX_PITCH))
            self.state = replace(s, yaw=yaw, pitch=pitch)
        elif self.mode == "pan":
            self.pan_pixels(dx, dy, self._height)
        else:
            self.zoom(-dy / 40.0)
        return True

    def end(self) -> None:
        self.mode = None

    @property
    def dragging(self) -> bool:
        return self.mode is not None

    def pan_pixels(self, dx: float, dy: float, viewport_height: float) -> None:
        """Move the view so the target-depth plane follows a (dx, dy) logical-pixel drag."""
        s = self.state
        world_per_px = 2.0 * s.distance * math.tan(math.radians(s.fov_deg) / 2.0)
        world_per_px /= max(float(viewport_height), 1.0)
        cam = s.camera(64, 64)
        c2w = cam.camera_to_world
        right, down = c2w[:3, 0], c2w[:3, 1]
        target = np.asarray(s.target) - world_per_px * (dx * right + dy * down)
        self.state = replace(s, target=tuple(target))

    def zoom(self, notches: float) -> None:
        """Dolly towards (notches > 0) or away from the target; one notch = one wheel click."""
        s = self.state
        d = float(np.clip(s.distance * self.zoom_per_notch**notches, MIN_DISTANCE, MAX_DISTANCE))
        self.state = replace(s, distance=d)

    def frame(self, center: np.ndarray, radius: float, aspect: float = 1.0) -> None:
        """Aim at ``center`` [3] and set the distance so a sphere of ``radius`` fills ~90 % of
        the narrower field of view; yaw and pitch are kept. aspect = width / height."""
        s = self.state
        half_y = math.radians(s.fov_deg) / 2.0
        half_x = math.atan(math.tan(half_y) * max(float(aspect), 1e-3))
        half = min(half_x, half_y)
        d = float(radius) / math.sin(half) / 0.9
        d = float(np.clip(d, MIN_DISTANCE, MAX_DISTANCE))
        self.state = replace(s, target=tuple(float(c) for c in center), distance=d)
