"""Multiplane images (MPI): D fronto-parallel RGBA planes in front of a reference camera.

Conventions:
- ``MPI.rgba`` [D, H, W, 4] float32, STRAIGHT (non-premultiplied) colour and alpha in [0, 1],
  or uint8 (0..255 standing for [0, 1]: a rigged MPI head's planes every frame, kept as they
  are because converting and checking 100 MB of float32 cost ~100 ms a frame; use
  ``MPI.float_rgba()`` where floats are needed). Plane 0 is the nearest. Pixel (i, j) of
  every plane is the plane point seen through pixel centre (j + 0.5, i + 0.5) of
  ``MPI.camera`` (intrinsics of the plane images + the MPI pose).
- ``MPI.depths`` [D] float64 metres, camera-space z of each plane in the reference camera,
  strictly increasing (near to far); by default equally spaced in disparity (1 / depth).
- Rendering warps each plane into the target camera by the homography of the plane
  n = (0, 0, 1), n . X = depth (reference camera frame), and composites back to front with "over".
  Filtering happens on PREMULTIPLIED colour (see renderers.reference.render_mpi_reference).

IM-Portrait's layout (``ImPortraitMPI``) follows Tucker & Snavely (2020), whom IM-Portrait cites
for it: two RGB images shared by all planes, a "frontal" (foreground: what the reference camera
sees) and a "residual" (background: content behind occluders), and one alpha per plane. Plane d's
colour blends them by its visibility from the reference camera,
``w_d = prod_{j < d} (1 - alpha_j)`` (plane 0 nearest; w_0 = 1):
``rgb_d = w_d * frontal + (1 - w_d) * residual``. So the frontal view of the MPI reproduces the
frontal image wherever the planes are opaque, and disoccluded regions show the residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renderers.camera import Camera

__all__ = [
    "DEFAULT_FAR_OFFSET",
    "DEFAULT_NEAR_OFFSET",
    "DEFAULT_NUM_PLANES",
    "MPI",
    "ImPortraitMPI",
    "as_mpi",
    "disparity_depths",
    "head_mpi_depths",
]

DEFAULT_NUM_PLANES = 24
# IM-Portrait, supplementary "Rendering details": near = r - 0.15, far = r + 0.05 (metres).
DEFAULT_NEAR_OFFSET = 0.15
DEFAULT_FAR_OFFSET = 0.05


def disparity_depths(near: float, far: float, num_planes: int) -> np.ndarray:
    """Depths [num_planes] float64 from ``near`` to ``far``, equally spaced in disparity.

    num_planes == 1 gives [near]. Raises ValueError unless 0 < near < far and num_planes >= 1.
    """
    if not (0.0 < near < far) or not np.isfinite(far):
        raise ValueError(f"disparity_depths needs 0 < near < far < inf, got {near}, {far}")
    if int(num_planes) != num_planes or num_planes < 1:
        raise ValueError(f"num_planes must be a positive integer, got {num_planes}")
    if num_planes == 1:
        return np.array([float(near)])
    depths = 1.0 / np.linspace(1.0 / near, 1.0 / far, int(num_planes))
    depths[0], depths[-1] = near, far  # exact end points despite 1/(1/x) rounding
    return depths


def head_mpi_depths(
    distance: float,
    num_planes: int = DEFAULT_NUM_PLANES,
    near_offset: float = DEFAULT_NEAR_OFFSET,
    far_offset: float = DEFAULT_FAR_OFFSET,
) -> np.ndarray:
    """IM-Portrait's planes for a head at ``distance`` metres from the MPI camera:
    ``disparity_depths(distance - near_offset, distance + far_offset, num_planes)``."""
    if distance - near_offset <= 0:
        raise ValueError(
            f"head distance {distance} m leaves no room for the near plane "
            f"(distance - {near_offset} must be > 0)"
        )
    return disparity_depths(distance - near_offset, distance + far_offset, num_planes)


def _check_depths(depths: np.ndarray, d: int, who: str) -> np.ndarray:
    depths = np.array(depths, dtype=np.float64).reshape(-1)
    if depths.shape != (d,):
        raise ValueError(f"{who}: {depths.shape[0]} depths for {d} planes")
    if not np.isfinite(depths).all() or (depths <= 0).any():
        raise ValueError(f"{who}: depths must be finite and > 0")
    if (np.diff(depths) <= 0).any():
        raise ValueError(f"{who}: depths must be strictly increasing (plane 0 nearest)")
    return depths


def _check_camera(camera: Camera, h: int, w: int, who: str) -> None:
    if not isinstance(camera, Camera):
        raise TypeError(f"{who}: camera must be a renderers.camera.Camera, got {type(camera)}")
    if (camera.width, camera.height) != (w, h):
        raise ValueError(
            f"{who}: camera is {camera.width}x{camera.height} but the planes are {w}x{h}"
        )


def _unit_array(
    a: np.ndarray, shape_desc: str, ndim: int, last: int | None, who: str
) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != ndim or (last is not None and a.shape[-1] != last):
        raise ValueError(f"{who}: expected {shape_desc}, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{who}: contains NaN or inf")
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        raise ValueError(f"{who}: values must lie in [0, 1], got [{a.min()}, {a.max()}]")
    return a


@dataclass(eq=False)
class MPI:
    """Render-ready multiplane image.

    rgba [D, H, W, 4] float32 straight colour + alpha in [0, 1], or uint8 (255 = 1.0, kept
    as uint8, not copied when contiguous), plane 0 nearest; depths [D] float64 metres,
    strictly increasing; camera: the MPI reference camera (width x height must equal W x H).
    Raises ValueError on shape/range/order problems.
    """

    rgba: np.ndarray
    depths: np.ndarray
    camera: Camera

    def __post_init__(self) -> None:
        if isinstance(self.rgba, np.ndarray) and self.rgba.dtype == np.uint8:
            self.rgba = np.ascontiguousarray(self.rgba)  # every value is in range
            if self.rgba.ndim != 4 or self.rgba.shape[-1] != 4:
                raise ValueError(f"MPI.rgba: expected rgba [D, H, W, 4], got {self.rgba.shape}")
        else:
            self.rgba = _unit_array(self.rgba, "rgba [D, H, W, 4]", 4, 4, "MPI.rgba")
        d, h, w, _ = self.rgba.shape
        if d == 0:
            raise ValueError("MPI.rgba: an MPI needs at least one plane")
        self.depths = _check_depths(self.depths, d, "MPI.depths")
        _check_camera(self.camera, h, w, "MPI")

    @property
    def num_planes(self) -> int:
        return int(self.rgba.shape[0])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def width(self) -> int:
        return int(self.rgba.shape[2])

    def float_rgba(self) -> np.ndarray:
        """The straight planes [D, H, W, 4] as float32 in [0, 1] (``rgba`` itself when float)."""
        if self.rgba.dtype == np.uint8:
            return np.multiply(self.rgba, np.float32(1.0 / 255.0), dtype=np.float32)
        return self.rgba

    def premultiplied(self) -> np.ndarray:
        """Planes [D, H, W, 4] float32 with colour multiplied by alpha (what GPUs should filter)."""
        out = self.float_rgba()
        out = out.copy() if out is self.rgba else out
        out[..., :3] *= out[..., 3:4]
        return out

    def premultiplied_uint8(self) -> np.ndarray:
        """Planes [D, H, W, 4] uint8, colour multiplied by alpha and rounded (an RGBA8 texture).
        From uint8 planes this is ~1 ms a 512x512 plane (OpenCV's RGBA -> mRGBA), against
        ~15 ms through float32."""
        if self.rgba.dtype != np.uint8:
            return np.clip(self.premultiplied() * 255.0 + 0.5, 0, 255).astype(np.uint8)
        import cv2

        out = np.empty_like(self.rgba)
        for src, dst in zip(self.rgba, out, strict=True):
            cv2.cvtColor(src, cv2.COLOR_RGBA2mRGBA, dst=dst)
        return out

    def to_mpi(self) -> MPI:
        return self

    @classmethod
    def from_im_portrait(
        cls,
        frontal: np.ndarray,
        residual: np.ndarray,
        alpha: np.ndarray,
        depths: np.ndarray,
        camera: Camera,
    ) -> MPI:
        """MPI from IM-Portrait's layout (see ImPortraitMPI)."""
        return ImPortraitMPI(frontal, residual, alpha, depths, camera).to_mpi()


@dataclass(eq=False)
class ImPortraitMPI:
    """IM-Portrait's MPI: frontal RGB [H, W, 3], residual RGB [H, W, 3], alpha [D, H, W], all
    float32 in [0, 1]; depths [D] (plane 0 nearest) and the reference camera as for MPI.

    ``to_rgba_planes()`` forms plane colours with Tucker & Snavely's blend weights
    (module docstring). Raises ValueError on shape/range/order problems.
    """

    frontal: np.ndarray
    residual: np.ndarray
    alpha: np.ndarray
    depths: np.ndarray
    camera: Camera

    def __post_init__(self) -> None:
        self.frontal = _unit_array(self.frontal, "frontal [H, W, 3]", 3, 3, "ImPortraitMPI.frontal")
        self.residual = _unit_array(
            self.residual, "residual [H, W, 3]", 3, 3, "ImPortraitMPI.residual"
        )
        self.alpha = _unit_array(self.alpha, "alpha [D, H, W]", 3, None, "ImPortraitMPI.alpha")
        d, h, w = self.alpha.shape
        if d == 0:
            raise ValueError("ImPortraitMPI.alpha: an MPI needs at least one plane")
        for name in ("frontal", "residual"):
            if getattr(self, name).shape[:2] != (h, w):
                raise ValueError(
                    f"ImPortraitMPI.{name} is {getattr(self, name).shape[:2]} but alpha planes "
                    f"are {(h, w)}"
                )
        self.depths = _check_depths(self.depths, d, "ImPortraitMPI.depths")
        _check_camera(self.camera, h, w, "ImPortraitMPI")

    @property
    def num_planes(self) -> int:
        return int(self.alpha.shape[0])

    def blend_weights(self) -> np.ndarray:
        """Visibility of each plane from the reference camera [D, H, W] float32:
        w_0 = 1, w_d = prod_{j < d} (1 - alpha_j)."""
        a = self.alpha.astype(np.float64)
        trans = np.cumprod(1.0 - a, axis=0)
        w = np.ones_like(a)
        w[1:] = trans[:-1]
        return w.astype(np.float32)

    def to_rgba_planes(self) -> np.ndarray:
        """Straight RGBA planes [D, H, W, 4] float32: rgb_d = w_d frontal + (1 - w_d) residual."""
        w = self.blend_weights()[..., None].astype(np.float64)
        rgb = w * self.frontal[None].astype(np.float64) + (1.0 - w) * self.residual[None]
        out = np.empty((*self.alpha.shape, 4), dtype=np.float32)
        out[..., :3] = np.clip(rgb, 0.0, 1.0)
        out[..., 3] = self.alpha
        return out

    def to_mpi(self) -> MPI:
        return MPI(self.to_rgba_planes(), self.depths, self.camera)


def as_mpi(mpi: MPI | ImPortraitMPI) -> MPI:
    """The render-ready MPI for either representation."""
    if isinstance(mpi, MPI | ImPortraitMPI):
        return mpi.to_mpi()
    raise TypeError(f"expected MPI or ImPortraitMPI, got {type(mpi).__name__}")
