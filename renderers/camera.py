"""Pinhole cameras and the stereo rig shared by every renderer.

Conventions (every renderer, GL shader, file format and test follows these):

- World (and head) space is right-handed "RUB", metres: +x right, +y up, +z towards the viewer of
  a frontal head (the head looks along +z). See renderers.gaussians.
- Camera space is OpenCV's "RDF": +x right, +y down, +z forward (into the scene). A point is in
  front of the camera when its camera-space z > 0.
- ``world_to_camera`` [4, 4] float64 maps homogeneous world points (column vectors) to camera
  space: ``p_cam = R @ p_world + t`` with ``R = world_to_camera[:3, :3]`` and
  ``t = world_to_camera[:3, 3]``.
- Pixel coordinates are continuous: ``u`` grows to the right (column), ``v`` grows downwards (row),
  the image spans ``[0, width] x [0, height]`` and pixel (row i, column j) has its centre at
  ``(u, v) = (j + 0.5, i + 0.5)``. The pinhole model is ``u = fx * x / z + cx``,
  ``v = fy * y / z + cy``; a centred camera has ``cx = width / 2``, ``cy = height / 2``.
- OpenGL: ``gl_view()`` maps world to GL eye space (camera x, -y, -z: y up, looking down -z),
  ``gl_projection(near, far)`` maps eye space to clip space so that NDC ``x = 2u / width - 1`` and
  NDC ``y = 1 - 2v / height``. With ``glViewport(0, 0, width, height)``, window coordinates are
  then ``(u, height - v)``: GL's bottom-left origin. ``glReadPixels``/``fbo.read`` returns the
  bottom row first, so flip rows (``img[::-1]``) to get image row 0 at the top. Depth is standard
  GL (-1 at ``near``, +1 at ``far`` in NDC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Camera", "StereoRig"]


def _as_matrix(m: Any, name: str) -> np.ndarray:
    a = np.array(m, dtype=np.float64, copy=True)
    if a.shape != (4, 4):
        raise ValueError(f"{name}: expected a [4, 4] matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf")
    if not np.allclose(a[3], (0.0, 0.0, 0.0, 1.0)):
        raise ValueError(f"{name}: last row must be [0, 0, 0, 1], got {a[3].tolist()}")
    rot = a[:3, :3]
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-5) or np.linalg.det(rot) <= 0:
        raise ValueError(f"{name}: the 3x3 block is not a proper rotation")
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera: intrinsics in pixels, image size and a rigid world-to-camera pose.

    fx, fy: focal lengths in pixels (> 0); cx, cy: principal point in continuous pixel
    coordinates (see module docstring: pixel (i, j)'s centre is (j + 0.5, i + 0.5));
    width, height: image size in pixels; world_to_camera [4, 4] float64, RUB world to OpenCV
    camera (read-only copy). Immutable: the ``with_*`` methods return new cameras.
    Raises ValueError on non-positive sizes/focals, or a pose that is not a rigid transform.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    world_to_camera: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"Camera.{name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"Camera focal lengths must be > 0, got fx={self.fx}, fy={self.fy}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if int(value) != value or int(value) <= 0:
                raise ValueError(f"Camera.{name} must be a positive integer, got {value}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(
            self, "world_to_camera", _as_matrix(self.world_to_camera, "Camera.world_to_camera")
        )

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_fov(
        cls,
        fov_y_deg: float,
        width: int,
        height: int,
        world_to_camera: Any = None,
    ) -> Camera:
        """Centred camera with square pixels and vertical field of view ``fov_y_deg`` (0, 180)."""
        if not 0.0 < fov_y_deg < 180.0:
            raise ValueError(f"fov_y_deg must be in (0, 180), got {fov_y_deg}")
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2.0)
        pose = np.eye(4) if world_to_camera is None else world_to_camera
        return cls(f, f, width / 2.0, height / 2.0, width, height, pose)

    @classmethod
    def look_at(
        cls,
        eye: Any,
        target: Any,
        up: Any = (0.0, 1.0, 0.0),
        fov_y_deg: float = 30.0,
        width: int = 512,
        height: int = 512,
    ) -> Camera:
        """Centred camera at ``eye`` [3] looking at ``target`` [3], image-up along ``up``.

        Raises ValueError when eye == target or the view direction is parallel to ``up``.
        """
        eye = np.asarray(eye, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - eye
        norm = np.linalg.norm(forward)
        if norm < 1e-12:
            raise ValueError("Camera.look_at: eye and target coincide")
        forward /= norm
        right = np.cross(forward, np.asarray(up, dtype=np.float64))
        rn = np.linalg.norm(right)
        if rn < 1e-9:
            raise ValueError("Camera.look_at: view direction is parallel to up")
        right /= rn
        down = np.cross(forward, right)  # OpenCV: x right, y down, z forward (right-handed)
        return cls.from_fov(fov_y_deg, width, height, _pose_from_axes(right, down, forward, eye))

    @classmethod
    def orbit(
        cls,
        target: Any = (0.0, 0.0, 0.0),
        distance: float = 1.0,
        yaw_deg: float = 0.0,
        pitch_deg: float = 0.0,
        fov_y_deg: float = 30.0,
        width: int = 512,
        height: int = 512,
    ) -> Camera:
        """Centred camera on a sphere of radius ``distance`` around ``target``, looking at it.

        yaw 0, pitch 0: camera at ``target + (0, 0, distance)`` (in front of a frontal head)
        looking along -z with image-up = +y. Positive yaw swings the camera about the world +y axis
        towards +x, i.e. to the viewer's right (the subject's left); positive pitch raises it
        (+y), looking down. The camera position is
        ``target + distance * (sin(yaw) cos(pitch), sin(pitch), cos(yaw) cos(pitch))``, and the
        orientation is ``Ry(yaw) @ Rx(-pitch)`` applied to the frontal camera, so there is no
        singularity at pitch +-90 (image-up stays continuous).
        """
        if distance <= 0:
            raise ValueError(f"Camera.orbit: distance must be > 0, got {distance}")
        y, p = math.radians(yaw_deg), math.radians(pitch_deg)
        ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
        rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
        m = ry @ rx  # rx is Rx(-pitch)
        eye = np.asarray(target, dtype=np.float64) + distance * m[:, 2]
        pose = _pose_from_axes(m[:, 0], -m[:, 1], -m[:, 2], eye)
        return cls.from_fov(fov_y_deg, width, height, pose)

    def with_size(self, width: int, height: int) -> Camera:
        """Same camera for a resized image: the pixel grid is rescaled (fx, cx by width ratio;
        fy, cy by height ratio), so every world point lands on the same relative image spot."""
        sx, sy = width / self.width, height / self.height
        return Camera(
            self.fx * sx,
            self.fy * sy,
            self.cx * sx,
            self.cy * sy,
            width,
            height,
            self.world_to_camera,
        )

    def with_pose(self, world_to_camera: Any) -> Camera:
        """Same intrinsics with another world-to-camera pose [4, 4]."""
        return Camera(self.fx, self.fy, self.cx, self.cy, self.width, self.height, world_to_camera)

    def with_principal_point(self, cx: float, cy: float) -> Camera:
        """Same camera with another principal point (off-axis shift)."""
        return Camera(self.fx, self.fy, cx, cy, self.width, self.height, self.world_to_camera)

    # ------------------------------------------------------------------------------- properties
    @property
    def K(self) -> np.ndarray:
        """Intrinsic matrix [3, 3] float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def rotation(self) -> np.ndarray:
        """World-to-camera rotation [3, 3]."""
        return np.array(self.world_to_camera[:3, :3])

    @property
    def camera_to_world(self) -> np.ndarray:
        """Inverse pose [4, 4]: columns 0..2 are the camera x (right), y (down), z (forward)
        axes in world space, column 3 the camera position."""
        r = self.world_to_camera[:3, :3]
        t = self.world_to_camera[:3, 3]
        out = np.eye(4)
        out[:3, :3] = r.T
        out[:3, 3] = -r.T @ t
        return out

    @property
    def position(self) -> np.ndarray:
        """Camera centre [3] in world space."""
        return self.camera_to_world[:3, 3]

    @property
    def forward(self) -> np.ndarray:
        """Viewing direction [3] (camera +z) in world space."""
        return np.array(self.world_to_camera[2, :3])

    @property
    def fov_y_deg(self) -> float:
        """Nominal vertical field of view, 2 atan(height / (2 fy)) (ignores cy offsets)."""
        return math.degrees(2.0 * math.atan(0.5 * self.height / self.fy))

    @property
    def fov_x_deg(self) -> float:
        """Nominal horizontal field of view, 2 atan(width / (2 fx))."""
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.fx))

    # ------------------------------------------------------------------------------- geometry
    def world_to_cam_points(self, points: Any) -> np.ndarray:
        """Points [N, 3] world -> [N, 3] camera space (float64)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return p @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]

    def project(self, points: Any) -> tuple[np.ndarray, np.ndarray]:
        """Project world points [N, 3] -> (uv [N, 2] continuous pixels, depth [N] camera z).

        Points with depth <= 0 (behind the camera) get uv = NaN; check ``depth > 0``.
        """
        pc = self.world_to_cam_points(points)
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            safe = np.where(z > 0, z, np.nan)
            uv = np.stack(
                [self.fx * pc[:, 0] / safe + self.cx, self.fy * pc[:, 1] / safe + self.cy], 1
            )
        return uv, z

    def unproject(self, uv: Any, depth: Any) -> np.ndarray:
        """Pixels uv [N, 2] at camera depths (z) [N] -> world points [N, 3]."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = np.broadcast_to(np.asarray(depth, dtype=np.float64), (uv.shape[0],))
        pc = np.stack(
            [(uv[:, 0] - self.cx) / self.fx * z, (uv[:, 1] - self.cy) / self.fy * z, z], 1
        )
        c2w = self.camera_to_world
        return pc @ c2w[:3, :3].T + c2w[:3, 3]

    # ------------------------------------------------------------------------------- OpenGL
    def gl_view(self) -> np.ndarray:
        """World -> OpenGL eye space [4, 4] float64 (OpenCV camera with y and z negated)."""
        return np.diag([1.0, -1.0, -1.0, 1.0]) @ self.world_to_camera

    def gl_projection(self, near: float, far: float) -> np.ndarray:
        """OpenGL eye -> clip space [4, 4] float64 reproducing this pinhole exactly.

        NDC x = 2u / width - 1, NDC y = 1 - 2v / height (u, v from ``project``), so off-centre
        principal points (stereo shifts) are honoured; depth maps [near, far] to NDC [-1, 1].
        Column-vector convention: upload transposed (row-major numpy -> GLSL column-major), e.g.
        ``prog["proj"].write(m.T.astype("f4").tobytes())``.
        """
        if not 0.0 < near < far:
            raise ValueError(f"gl_projection needs 0 < near < far, got near={near}, far={far}")
        w, h = float(self.width), float(self.height)
        return np.array(
            [
                [2.0 * self.fx / w, 0.0, 1.0 - 2.0 * self.cx / w, 0.0],
                [0.0, 2.0 * self.fy / h, 2.0 * self.cy / h - 1.0, 0.0],
                [0.0, 0.0, -(far + near) / (far - near), -2.0 * far * near / (far - near)],
                [0.0, 0.0, -1.0, 0.0],
            ]
        )

    # ------------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict:
        """JSON-ready dict (fx, fy, cx, cy, width, height, world_to_camera as nested lists)."""
        return {
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "width": self.width,
            "height": self.height,
            "world_to_camera": self.world_to_camera.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Camera:
        """Inverse of ``to_dict``. Raises ValueError (KeyError wrapped) on missing fields."""
        missing = [
            k for k in ("fx", "fy", "cx", "cy", "width", "height", "world_to_camera") if k not in d
        ]
        if missing:
            raise ValueError(f"camera dict is missing {', '.join(missing)}")
        return cls(
            float(d["fx"]),
            float(d["fy"]),
            float(d["cx"]),
            float(d["cy"]),
            int(d["width"]),
            int(d["height"]),
            np.asarray(d["world_to_camera"], dtype=np.float64),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Camera):
            return NotImplemented
        return (self.fx, self.fy, self.cx, self.cy, self.width, self.height) == (
            other.fx,
            other.fy,
            other.cx,
            other.cy,
            other.width,
            other.height,
        ) and bool(np.array_equal(self.world_to_camera, other.world_to_camera))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        pos = ", ".join(f"{x:.4g}" for x in self.position)
        return (
            f"Camera(fx={self.fx:.6g}, fy={self.fy:.6g}, cx={self.cx:.6g}, cy={self.cy:.6g}, "
            f"{self.width}x{self.height}, position=({pos}))"
        )


def _pose_from_axes(
    right: np.ndarray, down: np.ndarray, forward: np.ndarray, eye: np.ndarray
) -> np.ndarray:
    """world_to_camera [4, 4] from camera axes expressed in world space and the camera centre."""
    r = np.stack([right, down, forward], 0)
    out = np.eye(4)
    out[:3, :3] = r
    out[:3, 3] = -r @ np.asarray(eye, dtype=np.float64)
    return out


@dataclass(frozen=True)
class StereoRig:
    """Parallel (off-axis) stereo: two cameras with the centre camera's intrinsics and orientation.

    ipd: baseline b in metres (> 0). convergence: distance Z_c in metres (> 0; ``math.inf`` for no
    convergence) at which disparity is zero. The left camera sits at -b/2 along the centre camera's
    x axis (its right), the right camera at +b/2; their principal points are shifted by
    ``cx_left = cx - f*b/(2*Z_c)`` and ``cx_right = cx + f*b/(2*Z_c)`` (f = fx). For a point at
    camera depth Z the horizontal disparity is then
    ``u_left - u_right = f*b/Z - f*b/Z_c``: zero at the convergence distance, positive (crossed,
    in front of the screen) nearer, negative (uncrossed, behind) farther. Never toe-in.
    """

    ipd: float = 0.063
    convergence: float = 1.0

    def __post_init__(self) -> None:
        if not (self.ipd > 0 and math.isfinite(self.ipd)):
            raise ValueError(f"StereoRig.ipd must be a positive finite baseline, got {self.ipd}")
        if not self.convergence > 0:
            raise ValueError(f"StereoRig.convergence must be > 0, got {self.convergence}")

    def cameras(self, center: Camera) -> tuple[Camera, Camera]:
        """(left, right) cameras for the centre camera ``center``."""
        shift = (
            0.0 if math.isinf(self.convergence) else center.fx * self.ipd / (2 * self.convergence)
        )
        return (
            self._eye(center, -self.ipd / 2.0, center.cx - shift),
            self._eye(center, +self.ipd / 2.0, center.cx + shift),
        )

    @staticmethod
    def _eye(center: Camera, offset: float, cx: float) -> Camera:
        # Moving the camera by +offset along its own x axis subtracts offset from camera-space x.
        pose = np.array(center.world_to_camera)
        pose[0, 3] -= offset
        return Camera(center.fx, center.fy, cx, center.cy, center.width, center.height, pose)
