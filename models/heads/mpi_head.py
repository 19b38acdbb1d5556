"""An MPI head rigged to the motion space: baked planes plus a 2D warp rig around the keypoints.

An MPI (IM-Portrait's representation) is D fronto-parallel RGBA planes in front of one baking
camera. It cannot be re-lit or seen from far off-axis, and it holds only what the baking camera
saw, so the rig is image-space, as IM-Portrait-style heads must be:

1. Expression: every expression channel except the jaw (``exp_19_y``) and the lids (the y of
   11, 13, 15, 16) moves its keypoint; the keypoint's delta, projected into the baking camera at
   plane d's depth (``f * delta_xy / z_d`` pixels), is weighted by
   ``exp(-((z_d - z_k) / depth_sigma)^2 / 2)`` (a keypoint moves the planes near it in depth, not
   the ears or the hair behind) and spread over the plane by Gaussian radial-basis interpolation
   (exact at the keypoints, smooth, zero far away). The kernel is separable, so a plane's field
   is a small [h, K] @ [K, w] product, evaluated every sigma / 4 pixels (sigma the kernel's
   width, ~35 px at 512: every 8 pixels; 2 to 8) for all planes at once, and upsampled. Each
   plane is resampled backwards (``cv2.remap``, bilinear) from a copy whose transparent pixels
   carry their neighbours' colour, so straight-alpha filtering leaves no dark fringes, over the
   box where its field reaches 0.05 px and its content can land.
   The z of a delta (e.g. a pout, lips forward: ``exp_6_z``, ``exp_17_z`` < 0) cannot move content
   between planes (a 3 mm pout is under half a plane's spacing), so it becomes xy displacement
   too, of two kinds. Perspective: a point at depth z moving by dz scales by ``z / (z + dz)``
   about the principal point, and its neighbourhood magnifies by that factor about it (a
   separable bump ``(m - 1) (p - q_k) G(p - q_k)`` added to the field, cancelled at the other
   keypoints so the field stays exact there). Frontally this is small, as it is on the Gaussian
   head: LiveLink's mouthPucker (-0.02 units, 3 mm) moves the lips ~0.5 px at 512. Parallax: the
   planes turn with the head pose, and a point in front of its plane would move more; the
   in-plane shift s that lands it there satisfies ``r[:2, :2] s = r[:2, :2] xy + r[:2, 2] dz``
   (r the pose rotation in camera axes; exact for the rotation, orthographic), so a turned head
   shows the lips standing out (20 degrees of yaw, every lip keypoint 0.05 units forward: the
   lower lip ~6 px further to the side at 512). At zero pose it is the identity. Views the rig
   does not know (a stereo eye, an orbiting viewer) see only the perspective part.
2. Jaw: ``exp_19_y > 0`` opens the mouth. Below the lip seam (a parabola through the mouth
   corners 14, 20 and the middle of the lips 6, 17) the face moves down by keypoint 19's
   projected delta, fading beyond the mouth corners and below the chin; the rows between the
   upper lip and the lowered lower lip (a lens between the corners) are painted a dark mouth
   interior on the plane at the lips' depth, and the planes in front of it are cleared there.
3. Gaze: ``eye_ball_{0,1}`` (right eye) and ``eye_ball_{3,4}`` (left) turn the eyeball as
   ``models.heads.rig`` does (``Ry(a) Rx(b)``, ``a = asin(x * eye_width / eye_radius)``, clamped
   at 0.95 eye radii: the pupil moves by x eye widths, +x image right, +y down; the z channels
   2 and 5 are not read, as there). The pupil (``eye_radius`` in front of the eyeball centre)
   is projected before and after: the iris moves by that many pixels and is foreshortened by
   ``cos a`` across and ``cos b`` up. In the baked view the iris is found once per eye (first
   use): the eye opening is the visible eyeball (pixels in the lid ellipse that are neither
   skin-coloured nor as dark as the lashes, holes such as the pupil filled, the largest piece);
   the iris is a disc around the pupil (the dark blob nearest the opening's middle), as wide as
   the pupil's row is between the sclera on either side (else 0.4 eye half-widths). Per frame
   the disc, with its colours (where the lids hid it, a smooth fill from its visible ring), is
   warped affinely over the eye with the disc replaced by sclera (a smooth membrane of the
   visible sclera's colours), clipped to the opening (soft edge), and painted on the eye's
   plane (planes in front cleared there): the iris never slides onto skin, and at large angles
   it goes behind the lids' corners. The corneal highlights move with the iris (the Gaussian
   head keeps its own in place: tried here, a highlight left on the sclera looked wrong).
4. Eyelids (after gaze, so they close over the moved iris): per eye a closure c in [0, 1] from
   ``eye_open`` and the lid keypoints' y deltas (the formula of ``models.heads.rig``); the upper
   lid comes down (and the lower lid up) over the eye opening (an ellipse around keypoints 11
   and 13, ``rig.eye_width`` wide), painted with skin (a smooth membrane over the eye from the
   skin-coloured pixels around it in the frontal view), with a dark lash line at the lid edge.
   An MPI cannot show the lid it never saw: this is the plausible stand-in.
5. Pose: pitch/yaw/roll about ``rig.pivot``, scale and translation are a similarity of the whole
   MPI, applied to its camera (``x' = pivot + s * R (x - pivot) + t`` for the planes is the same
   as moving the reference camera by it and scaling the plane depths by s). The renderer then
   shows the head turned. An MPI is only valid near its baking view: pitch and yaw are clamped to
   +-``MAX_MPI_ANGLE`` degrees (roll keeps the planes facing the camera and is not clamped).

Not modelled: the part of the eyeball or iris the baking camera never saw (only what its own
view holds moves), the gaze's z channels, and content moving between planes.
With every channel the rig reads at its default, ``deform`` returns the head's own planes and
camera (read-only arrays): zero motion is the identity, bit for bit. Planes (and regions) whose
displacement stays under 0.05 px are not resampled. Deformed planes are read-only too: they are
written into buffers the head keeps (two at most, 25 MB each at 512 x 512 x 24) and reuses once
nothing refers to them any more, so a frame puts back only the boxes the buffer's last frame
changed instead of copying every plane.

Cost (24 planes 512x512 uint8, the default head baked as the studio does; a shared 2-core CPU
at load ~2, ``python -m benchmarks.mpi_deform``): pose alone ~0.2 ms (only the camera moves),
gaze ~2 ms, blink ~4 ms, jaw ~4 ms, brows or a pout of the lips ~6 ms, a smile ~10 ms, the
demo take's speech frames (jaw, lips, lids, brows, pose) 5-14 ms (~10 typical, ~12 with a
gaze), every channel ~25 ms: 2.5x (blink) to 6x (brows) less than the version that copied
every plane and resampled each plane's whole reach (same process, ``--against``). What is left
is mostly cv2.remap and the warp maps' upsampling, in proportion to the resampled area; cv2's
own threads made no consistent difference on 2 busy cores (``cv2.setNumThreads(1)``, a
process-wide setting the caller owns, was 20% faster to 40% slower in same-process A/B runs).
The first deformed frame also pads the planes' colours and samples the eyes and irises
(~0.3 s).
numpy and cv2 only; Qt-free; never imports renderers (studio turns :class:`MPIArrays` into
``renderers.MPI``).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from models.heads.rig import positive_fields
from models.motion_space import (
    CHANNEL_DEFAULTS,
    CHANNEL_INDEX,
    CHANNELS,
    NUM_KEYPOINTS,
    rotation_matrix,
)

__all__ = ["MAX_MPI_ANGLE", "MPIArrays", "MPIRigParams", "RiggedMPIHead"]

MAX_MPI_ANGLE = 25.0  # degrees of pitch / yaw an MPI head turns at most (IM-Portrait: "small")
_F = np.array([1.0, -1.0, -1.0])  # RDF <-> RUB axis flip
_LID_Y = {11: 0, 13: 0, 15: 1, 16: 1}  # lid keypoint -> eye (their y drives the lids)
_JAW_KP = 19
_GAZE_XY = (0, 1, 3, 4)  # eye_ball_* the rig reads: x, y per eye (z, as in rig.py, is not)
# The (smooth) expression field is sampled every sigma / 4 pixels (sigma the kernel's width),
# 2 to 8: bilinear upsampling then errs by ~1% of the field (0.8% measured at 512 px: against
# every 4 px, speech frames 60 dB PSNR and 15% faster).
_FIELD_SAMPLES_PER_SIGMA = 4
_FIELD_STEP_RANGE = (2, 8)
_MIN_SHIFT = 0.05  # pixels: smaller displacements leave a plane (region) untouched
_MOUTH_DARK = np.array([0.20, 0.06, 0.07], np.float32)  # near the lips
_MOUTH_DEEP = np.array([0.05, 0.01, 0.02], np.float32)  # the back of the mouth


@dataclass
class MPIArrays:
    """One frame of an MPI head, render-ready (the fields of ``renderers.MPI`` without importing
    it). rgba [D, H, W, 4] straight RGBA, uint8 (0..255) or float32 (0..1), plane 0 nearest;
    depths [D] float64 metres, increasing; intrinsics [4] float64 (fx, fy, cx, cy) pixels, pixel
    (i, j)'s centre at (j + 0.5, i + 0.5); world_to_camera [4, 4] float64 rigid, head RUB metres
    to the OpenCV camera. Arrays a frame did not change are the head's read-only base arrays;
    deformed planes are read-only too (the head reuses their buffer once nothing refers to it).
    """

    rgba: np.ndarray
    depths: np.ndarray
    intrinsics: np.ndarray
    world_to_camera: np.ndarray

    @property
    def width(self) -> int:
        return int(self.rgba.shape[2])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[1])

    def float_rgba(self) -> np.ndarray:
        """The planes as float32 [D, H, W, 4] in [0, 1] (a copy for uint8 planes)."""
        if self.rgba.dtype == np.uint8:
            return np.multiply(self.rgba, np.float32(1.0 / 255.0), dtype=np.float32)
        return self.rgba


@dataclass
class MPIRigParams:
    """Parameters of the MPI rig. pivot [3] metres (head RUB frame) of the pose; eye_width
    metres (the eye opening's width, the unit of the eye_ball channels); eye_radius metres (the
    eyeball's radius; None: 0.6 eye widths, the default head's proportion); lid_travel_upper /
    lid_travel_lower keypoint units of exp_{11,15}_y / -exp_{13,16}_y that close a lid (as
    ``RigParams``); depth_sigma metres (how far in depth a keypoint's delta reaches across
    planes); radius_scale: the interpolation kernel's width in inter-ocular distances."""

    pivot: np.ndarray
    eye_width: float = 0.03
    lid_travel_upper: float = 0.045
    lid_travel_lower: float = 0.02
    depth_sigma: float = 0.025
    radius_scale: float = 0.3
    eye_radius: float | None = None

    def __post_init__(self) -> None:
        self.pivot = np.array(self.pivot, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(self.pivot)):
            raise ValueError("MPIRigParams.pivot must be finite")
        if self.eye_radius is None:
            self.eye_radius = 0.6 * float(self.eye_width)
        positive_fields(
            self,
            ("eye_width", "eye_radius", "lid_travel_upper", "lid_travel_lower", "depth_sigma",
             "radius_scale"),
        )  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "pivot": self.pivot.tolist(),
            "eye_width": self.eye_width,
            "lid_travel_upper": self.lid_travel_upper,
            "lid_travel_lower": self.lid_travel_lower,
            "depth_sigma": self.depth_sigma,
            "radius_scale": self.radius_scale,
            "eye_radius": self.eye_radius,
        }

    @classmethod
    def from_dict(cls, d: dict) -> MPIRigParams:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _frozen(a: np.ndarray, dtype: type | None = None) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True) if dtype is not None else np.array(a, copy=True)
    out.flags.writeable = False
    return out


_POOL_SIZE = 2  # deformed-plane buffers a head keeps for reuse (25 MB each at 512 x 512 x 24)


def _refs(entry: list) -> int:
    """References to a pool entry's buffer (the entry's, this call's, and any caller's)."""
    return sys.getrefcount(entry[0])


_IDLE_REFS = _refs([np.empty(0), None])  # a buffer no caller refers to any more


def _copy_except(dst: np.ndarray, src: np.ndarray, box: tuple, hole: tuple | None) -> None:
    """src's box (y0, y1, x0, x1) into dst [H, W, ...], except where hole (a box or None)
    overlaps it."""
    y0, y1, x0, x1 = box
    if hole is not None:
        hy0, hy1 = max(y0, hole[0]), min(y1, hole[1])
        hx0, hx1 = max(x0, hole[2]), min(x1, hole[3])
        if hy0 < hy1 and hx0 < hx1:
            dst[y0:hy0, x0:x1] = src[y0:hy0, x0:x1]
            dst[hy1:y1, x0:x1] = src[hy1:y1, x0:x1]
            dst[hy0:hy1, x0:hx0] = src[hy0:hy1, x0:hx0]
            dst[hy0:hy1, hx1:x1] = src[hy0:hy1, hx1:x1]
            return
    dst[y0:y1, x0:x1] = src[y0:y1, x0:x1]


def _intersect(a: tuple, b: tuple) -> tuple[int, int, int, int] | None:
    """The overlap of boxes a and b (y0, y1, x0, x1), or None."""
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


def _union(a: tuple, b: tuple) -> tuple[int, int, int, int]:
    """The smallest box (y0, y1, x0, x1) holding boxes a and b."""
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(eq=False)
class RiggedMPIHead:
    """An MPI head (identity) with canonical keypoints and an image-space motion rig.

    planes [D, H, W, 4] uint8 or float32 straight RGBA (plane 0 nearest); depths [D] float64
    metres, strictly increasing; intrinsics [4] float64 (fx, fy, cx, cy) and world_to_camera
    [4, 4] float64: the baking camera (RUB head metres -> OpenCV camera; pixel (i, j)'s centre at
    (j + 0.5, i + 0.5)). keypoints [21, 3] float64 canonical x_c (motion-space RDF units),
    kp_to_world [4, 4] float64 similarity keypoint units -> head metres (as RiggedGaussianHead).
    rig: MPIRigParams. Raises ValueError on inconsistent shapes, ranges or non-finite values.
    """

    name: str
    planes: np.ndarray
    depths: np.ndarray
    intrinsics: np.ndarray
    world_to_camera: np.ndarray
    keypoints: np.ndarray
    kp_to_world: np.ndarray
    rig: MPIRigParams
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        planes = np.asarray(self.planes)
        if planes.dtype not in (np.uint8, np.float32):
            planes = planes.astype(np.float32)
        if planes.ndim != 4 or planes.shape[-1] != 4 or planes.shape[0] < 1:
            raise ValueError(f"RiggedMPIHead.planes: expected [D, H, W, 4], got {planes.shape}")
        if (
            planes.dtype == np.float32
            and planes.size
            and (not np.all(np.isfinite(planes)) or planes.min() < 0 or planes.max() > 1)
        ):
            raise ValueError("RiggedMPIHead.planes: float planes must be finite, in [0, 1]")
        self.planes = _frozen(np.ascontiguousarray(planes))
        self.depths = _frozen(np.asarray(self.depths, dtype=np.float64).reshape(-1))
        d = planes.shape[0]
        if self.depths.shape != (d,) or not np.all(np.isfinite(self.depths)):
            raise ValueError(f"RiggedMPIHead.depths: expected {d} finite depths")
        if np.any(self.depths <= 0) or np.any(np.diff(self.depths) <= 0):
            raise ValueError("RiggedMPIHead.depths must be > 0 and strictly increasing")
        self.intrinsics = _frozen(np.asarray(self.intrinsics, dtype=np.float64).reshape(-1))
        if self.intrinsics.shape != (4,) or not np.all(np.isfinite(self.intrinsics)):
            raise ValueError("RiggedMPIHead.intrinsics: expected 4 finite values fx, fy, cx, cy")
        if self.intrinsics[0] <= 0 or self.intrinsics[1] <= 0:
            raise ValueError("RiggedMPIHead.intrinsics: focal lengths must be > 0")
        w2c = np.asarray(self.world_to_camera, dtype=np.float64)
        if w2c.shape != (4, 4) or not np.all(np.isfinite(w2c)):
            raise ValueError("RiggedMPIHead.world_to_camera: expected a finite [4, 4] matrix")
        rot = w2c[:3, :3]
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-5) or np.linalg.det(rot) <= 0:
            raise ValueError("RiggedMPIHead.world_to_camera: not a rigid transform")
        self.world_to_camera = _frozen(w2c)
        self.keypoints = _frozen(np.asarray(self.keypoints, dtype=np.float64))
        if self.keypoints.shape != (NUM_KEYPOINTS, 3) or not np.all(np.isfinite(self.keypoints)):
            raise ValueError(f"RiggedMPIHead.keypoints: expected finite [{NUM_KEYPOINTS}, 3]")
        self.kp_to_world = _frozen(np.asarray(self.kp_to_world, dtype=np.float64))
        if self.kp_to_world.shape != (4, 4) or not np.all(np.isfinite(self.kp_to_world)):
            raise ValueError("RiggedMPIHead.kp_to_world: expected a finite [4, 4] matrix")
        if not isinstance(self.rig, MPIRigParams):
            raise TypeError("RiggedMPIHead.rig must be MPIRigParams")
        self.metadata = dict(self.metadata or {})
        self._prepare()

    # --- geometry ------------------------------------------------------------------------------

    @property
    def num_planes(self) -> int:
        return int(self.planes.shape[0])

    @property
    def height(self) -> int:
        return int(self.planes.shape[1])

    @property
    def width(self) -> int:
        return int(self.planes.shape[2])

    @property
    def kp_scale(self) -> float:
        """Metres per keypoint unit."""
        return float(abs(np.linalg.det(self.kp_to_world[:3, :3])) ** (1.0 / 3.0))

    @property
    def rest(self) -> MPIArrays:
        """The baked planes and camera (read-only), i.e. ``deform(CHANNEL_DEFAULTS)``."""
        return self._rest

    def kp_to_world_points(self, x: np.ndarray) -> np.ndarray:
        """Keypoint-space points ``[..., 3]`` (RDF units) -> head metres RUB ``[..., 3]``."""
        x = np.asarray(x, dtype=np.float64)
        return x @ self.kp_to_world[:3, :3].T + self.kp_to_world[:3, 3]

    def project(self, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Head-frame points [N, 3] -> (pixel coordinates [N, 2] (u right, v down, continuous),
        camera depth [N]) in the baking camera."""
        p = np.asarray(world, dtype=np.float64) @ self.world_to_camera[:3, :3].T
        p = p + self.world_to_camera[:3, 3]
        fx, fy, cx, cy = self.intrinsics
        z = p[:, 2]
        return np.stack([fx * p[:, 0] / z + cx, fy * p[:, 1] / z + cy], axis=1), z

    def _prepare(self) -> None:
        h, w = self.planes.shape[1:3]
        self._rest = MPIArrays(self.planes, self.depths, self.intrinsics, self.world_to_camera)
        self._rig_channels = np.array(
            sorted(
                {CHANNEL_INDEX[n] for n in ("pitch", "yaw", "roll", "tx", "ty", "tz", "scale")}
                | {CHANNEL_INDEX["eye_open_r"], CHANNEL_INDEX["eye_open_l"]}
                | {CHANNEL_INDEX[f"eye_ball_{i}"] for i in _GAZE_XY}
                | set(range(CHANNEL_INDEX["exp_0_x"], CHANNEL_INDEX["exp_0_x"] + 63))
            )
        )
        uv, z = self.project(self.kp_to_world_points(self.keypoints))
        if np.any(z <= 0):
            raise ValueError("RiggedMPIHead: keypoints behind the baking camera")
        self._kp_uv = uv - 0.5  # array-index coordinates (pixel centres at integers)
        self._kp_z = z
        # Camera-frame delta (metres) per keypoint unit: R_w2c @ kp_to_world's linear block.
        self._kp_to_cam = self.world_to_camera[:3, :3] @ self.kp_to_world[:3, :3]
        iod = float(np.linalg.norm(uv[11] - uv[15]))
        if not np.isfinite(iod) or iod < 2.0:
            raise ValueError("RiggedMPIHead: the eye keypoints coincide in the baking view")
        self._sigma = self.rig.radius_scale * iod
        q = self._kp_uv
        g = np.exp(-0.5 * np.sum((q[:, None] - q[None]) ** 2, -1) / self._sigma**2)
        # A little ridge keeps close keypoints (the lips) from ringing; still ~exact at keypoints.
        self._rbf_inv = np.linalg.inv(g + 1e-3 * np.eye(NUM_KEYPOINTS))
        self._xs = np.arange(w, dtype=np.float64)
        self._ys = np.arange(h, dtype=np.float64)
        # The expression field's samples, every _step pixels over the whole image plus one
        # beyond each edge (so upsampling never clamps inside the image): sample j sits at
        # pixel (j - 0.5) * s - 0.5, cv2.resize's pixel-centre convention (module _warp).
        lo, hi = _FIELD_STEP_RANGE
        s = self._step = int(np.clip(self._sigma // _FIELD_SAMPLES_PER_SIGMA, lo, hi))
        self._coarse_x = (np.arange(-(-w // s) + 2) - 0.5) * s - 0.5  # [nw + 2]
        self._coarse_y = (np.arange(-(-h // s) + 2) - 0.5) * s - 0.5  # [nh + 2]
        dx = self._coarse_x[None] - q[:, :1]  # [K, nw + 2]
        dy = self._coarse_y[None] - q[:, 1:]  # [K, nh + 2]
        self._coarse_x = self._coarse_x.astype(np.float32)  # warp maps are float32
        self._coarse_y = self._coarse_y.astype(np.float32)
        # The separable kernel's factors and the magnification bumps', float32 (float64
        # products of these sizes ran 2-10x slower on the busy 2-core CPU), the left ones
        # transposed and contiguous: [nh + 2, K] and [K, nw + 2].
        gx = np.exp(-0.5 * (dx / self._sigma) ** 2)
        gy = np.exp(-0.5 * (dy / self._sigma) ** 2)
        self._gx = gx.astype(np.float32)
        self._gx_dx = (gx * dx).astype(np.float32)
        self._gy_t = np.ascontiguousarray(gy.T, dtype=np.float32)
        self._gy_dy_t = np.ascontiguousarray((gy * dy).T, dtype=np.float32)
        self._mouth = _mouth_geometry(q, z, self.depths)
        # Lazily built, once, under the lock (two threads deforming at once build them once).
        self._lock = threading.RLock()
        self._eyes = None  # eye geometry and skin colours: first use (it composites the view)
        self._gaze = None  # eye opening, iris disc, sclera: first gaze
        # (padded planes with colour under transparent pixels [D, H, W, 4], per plane the
        # content box (y0, y1, x0, x1) of alpha > 0 or None, per plane whether it is all zero):
        # first deformed frame
        self._padded = None
        self._pool: list[list] = []  # [buffer, its (plane, box) changes]: see _take_buffer

    # --- deformation ---------------------------------------------------------------------------

    def _check_frame(self, frame: np.ndarray) -> np.ndarray:
        v = np.asarray(frame, dtype=np.float64)
        if v.shape != (len(CHANNELS),):
            raise ValueError(f"deform: expected a frame of {len(CHANNELS)} channels, got {v.shape}")
        if not np.all(np.isfinite(v[self._rig_channels])):
            raise ValueError("deform: the frame contains NaN or inf")
        return v

    def deform(self, frame: np.ndarray) -> MPIArrays:
        """The MPI driven by one frame of motion channels ``[len(CHANNELS)]``.

        Returns MPIArrays (planes in the head's dtype; the camera moved by the pose, depths scaled
        by the scale channel). Planes the frame leaves untouched keep their values; at
        CHANNEL_DEFAULTS the head's own read-only arrays come back. Deformed planes are a new
        read-only array, never the head's own (its buffer is reused for a later frame once
        nothing refers to it: copy it to write to it). Thread-safe. Raises ValueError for a
        wrong shape or NaN/inf in the channels the rig reads.
        """
        v = self._check_frame(frame)
        if np.array_equal(v[self._rig_channels], CHANNEL_DEFAULTS[self._rig_channels]):
            return self._rest
        ch = CHANNEL_INDEX
        exp = v[ch["exp_0_x"] : ch["exp_0_x"] + 63].reshape(NUM_KEYPOINTS, 3)
        jaw = max(float(exp[_JAW_KP, 1]), 0.0)
        closure = self._closures(v, exp)
        ball = v[ch["eye_ball_0"] : ch["eye_ball_5"] + 1].reshape(2, 3)[:, :2]
        gaze = [self._gaze_map(e, ball[e]) if np.any(ball[e]) else None for e in (0, 1)]
        planes = self.planes
        if np.any(exp) or np.any(closure > 0) or any(m is not None for m in gaze):
            planes, stale = self._take_buffer()
            planes.flags.writeable = True
            written: list[tuple[int, tuple[int, int, int, int]]] = []  # (plane, box) changed
            if np.any(exp):
                self._warp(planes, stale, written, exp, jaw, self._pose_rotation(v))
            else:
                self._restore(planes, stale, {})
            if jaw > 0:
                written += self._paint_mouth(planes, jaw)
            for eye in (0, 1):
                if gaze[eye] is not None:  # before the lids: they close over the moved iris
                    written += self._paint_gaze(planes, eye, gaze[eye])
                if closure[eye].max() > 0:
                    written += self._paint_lids(planes, eye, closure[eye])
            self._keep_buffer(planes, written)
        planes.flags.writeable = False
        w2c, depths = self._pose(v)
        return MPIArrays(planes, depths, self.intrinsics, w2c)

    def _closures(self, v: np.ndarray, exp: np.ndarray) -> np.ndarray:
        """[2 eyes, (upper, lower)] closure in [0, 1] (rig.py's formula, no widening)."""
        ch = CHANNEL_INDEX
        out = np.zeros((2, 2))
        for eye, (up, low, name) in enumerate(((11, 13, "eye_open_r"), (15, 16, "eye_open_l"))):
            blink = 1.0 - float(v[ch[name]])
            out[eye, 0] = blink + exp[up, 1] / self.rig.lid_travel_upper
            out[eye, 1] = blink - exp[low, 1] / self.rig.lid_travel_lower
        return np.clip(out, 0.0, 1.0)

    def _pose_rotation(self, v: np.ndarray) -> np.ndarray:
        """The head's rotation [3, 3] for column vectors in the head's RUB frame (pitch and yaw
        clamped to +-MAX_MPI_ANGLE)."""
        ch = CHANNEL_INDEX
        pitch = float(np.clip(v[ch["pitch"]], -MAX_MPI_ANGLE, MAX_MPI_ANGLE))
        yaw = float(np.clip(v[ch["yaw"]], -MAX_MPI_ANGLE, MAX_MPI_ANGLE))
        r = rotation_matrix(pitch, yaw, float(v[ch["roll"]]))
        # rig.py applies R_rub = F r F to row vectors; for column vectors it is the transpose.
        return (_F[:, None] * r * _F[None, :]).T

    def _pose(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The moved camera [4, 4] and the scaled depths [D] (module docstring, stage 5)."""
        ch = CHANNEL_INDEX
        pitch = float(np.clip(v[ch["pitch"]], -MAX_MPI_ANGLE, MAX_MPI_ANGLE))
        yaw = float(np.clip(v[ch["yaw"]], -MAX_MPI_ANGLE, MAX_MPI_ANGLE))
        roll = float(v[ch["roll"]])
        s = float(v[ch["scale"]])
        t = v[ch["tx"] : ch["tz"] + 1]
        if pitch == 0 and yaw == 0 and roll == 0 and s == 1.0 and not np.any(t):
            return self.world_to_camera, self.depths
        if not s > 0:
            raise ValueError(f"deform: scale must be > 0, got {s}")
        rot = self._pose_rotation(v)
        t_world = t * _F * self.kp_scale
        # Points move by x' = pivot + s rot (x - pivot) + t. The camera moves with them, so its
        # world-to-camera is W2C o T^-1, with T^-1's scale folded into the depths instead.
        c2w = np.linalg.inv(self.world_to_camera)
        centre = c2w[:3, 3]
        new_centre = self.rig.pivot + s * rot @ (centre - self.rig.pivot) + t_world
        new_rot_c2w = rot @ c2w[:3, :3]
        w2c = np.eye(4)
        w2c[:3, :3] = new_rot_c2w.T
        w2c[:3, 3] = -new_rot_c2w.T @ new_centre
        w2c.flags.writeable = False
        depths = self.depths * s
        depths.flags.writeable = False
        return w2c, depths

    # --- stage 1 + 2: the warp ----------------------------------------------------------------

    def _padded_planes(self) -> tuple[np.ndarray, list, np.ndarray]:
        """(padded [D, H, W, 4], boxes, blank [D] bool): the planes with each transparent
        pixel's colour taken from its opaque neighbours (two 3x3 alpha-weighted passes), so
        bilinear straight-alpha resampling has no dark fringes; per plane the content box
        (y0, y1, x0, x1) of its alpha > 0 pixels (None: fully transparent); whether the plane
        is all zero. Only each plane's content box is touched; uint8 planes stay in uint8 (cv2's
        saturating arithmetic, ~10x cheaper than float). Built once (first deformed frame)."""
        with self._lock:
            if self._padded is None:
                self._padded = self._pad()
        return self._padded

    def _pad(self) -> tuple[np.ndarray, list, np.ndarray]:
        import cv2

        out = np.array(self.planes, copy=True)
        h, w = out.shape[1:3]
        boxes: list[tuple[int, int, int, int] | None] = []
        blank = np.array([not p.any() for p in self.planes])
        for d in range(out.shape[0]):
            rows = np.flatnonzero(out[d, ..., 3].any(axis=1))
            cols = np.flatnonzero(out[d, ..., 3].any(axis=0))
            if rows.size == 0:
                boxes.append(None)
                continue
            boxes.append((int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1))
            y0, y1 = max(0, rows[0] - 3), min(h, rows[-1] + 4)
            x0, x1 = max(0, cols[0] - 3), min(w, cols[-1] + 4)
            box = out[d, y0:y1, x0:x1]
            rgb = np.ascontiguousarray(box[..., :3])
            a = np.ascontiguousarray(box[..., 3])
            for _ in range(2):
                if out.dtype == np.uint8:
                    a3 = cv2.merge([a, a, a])
                    num = cv2.blur(cv2.multiply(rgb, a3, scale=1.0 / 255.0), (3, 3))
                    fill = cv2.divide(num, cv2.blur(a3, (3, 3)), scale=255.0)
                else:
                    num = cv2.blur(rgb * a[..., None], (3, 3))
                    fill = num / np.maximum(cv2.blur(a, (3, 3))[..., None], 1e-6)
                empty = (a == 0).view(np.uint8)
                cv2.copyTo(fill, empty, rgb)
                # Pixels that got a colour count as (barely) opaque for the second pass.
                grown = (cv2.blur(a, (3, 3)) > 0).view(np.uint8)
                a = np.maximum(a, grown.astype(a.dtype))
            box[..., :3] = rgb
        out.flags.writeable = False
        return out, boxes, blank

    # Deformed planes are written into buffers [D, H, W, 4] kept in a small pool and reused
    # once their caller lets go of them (nothing else refers to the array): a frame then only
    # puts back the boxes the buffer's last frame changed, instead of copying all 25 MB (at
    # 512 x 512 x 24, ~5 ms on a shared 2-core CPU, a third of a speech frame). Buffers are
    # handed out read-only, so a caller cannot change what a later frame would reuse.

    def _take_buffer(self) -> tuple[np.ndarray, list | None]:
        """(a buffer, the (plane, box) list where it differs from the head's planes; None for a
        new buffer, which holds nothing yet)."""
        with self._lock:
            for i, entry in enumerate(self._pool):
                if _refs(entry) <= _IDLE_REFS:  # only the pool refers to it
                    del self._pool[i]
                    return entry[0], entry[1]
        return np.empty_like(self.planes), None

    def _keep_buffer(self, planes: np.ndarray, written: list) -> None:
        with self._lock:
            self._pool.append([planes, written])
            del self._pool[:-_POOL_SIZE]

    def _restore(self, out: np.ndarray, stale: list | None, boxes: dict) -> None:
        """Make ``out`` the head's planes except inside ``boxes`` ({plane: (y0, y1, x0, x1)},
        which the caller overwrites): every plane for a new buffer (``stale`` None), else the
        stale boxes."""
        blank = self._padded_planes()[2]
        h, w = self.planes.shape[1:3]
        if stale is None:
            for d in range(out.shape[0]):
                if blank[d]:
                    out[d].fill(0)  # no read: half the memory traffic of a copy
                else:
                    _copy_except(out[d], self.planes[d], (0, h, 0, w), boxes.get(d))
        else:
            for d, box in stale:
                _copy_except(out[d], self.planes[d], box, boxes.get(d))

    def _field_coefficients(
        self, exp: np.ndarray, rot: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The expression field of every plane (module doc, stage 1) as (coef [K, D, 2] pixels,
        mags [K, D]): the field at pixel p of plane d is ``sum_k coef[k, d] G_k(p) + mags[k, d]
        (p - q_k) G_k(p)``, G_k the Gaussian kernel around keypoint k's pixel q_k (array-index
        coordinates), p - field(p) the pixel it samples."""
        fx, fy, cx, cy = self.intrinsics
        moving = exp.copy()
        moving[_JAW_KP, 1] = 0.0
        for k in _LID_Y:
            moving[k, 1] = 0.0
        delta = moving @ self._kp_to_cam.T  # [21, 3] metres, camera frame
        xy = delta[:, :2]
        dz = delta[:, 2]  # [21] metres, < 0 towards the camera
        q = self._kp_uv
        mag = np.zeros(NUM_KEYPOINTS)
        persp = np.zeros((NUM_KEYPOINTS, 2))
        if np.any(dz):
            # Parallax: the planes cannot move content in depth, so shift it in its plane by
            # the amount that lands it where the moved point goes in the posed view: with the
            # head rotation in camera axes r (column vectors) and an in-plane shift s,
            # r[:2, :2] s = r[:2, :2] xy + r[:2, 2] dz (exact for the rotation, orthographic).
            # Zero pose leaves xy as it is.
            w2c = self.world_to_camera[:3, :3]
            r = w2c @ rot @ w2c.T
            xy = xy + np.outer(dz, np.linalg.solve(r[:2, :2], r[:2, 2]))
            # Perspective: a point at depth z moving by dz scales by z / (z + dz) about the
            # principal point; its neighbourhood magnifies by that factor about it (the bump
            # term of the field, zero at the keypoint itself).
            mag = self._kp_z / np.maximum(self._kp_z + dz, 1e-3) - 1.0  # [21]
            persp = (q + 0.5 - np.array([cx, cy])) * mag[:, None]  # [21, 2] pixels
        # [21, D, 2] pixel displacement targets on each plane, weighted by depth proximity.
        near = np.exp(
            -0.5 * ((self.depths[None] - self._kp_z[:, None]) / self.rig.depth_sigma) ** 2
        )
        targets = near[..., None] * (
            xy[:, None] * np.array([fx, fy]) / self.depths[None, :, None] + persp[:, None]
        )
        mags = near * mag[:, None]  # [21, D] magnification per plane
        if np.any(mag):
            # The bump terms' values at the other keypoints come off their targets, so the
            # field stays exact at the keypoints.
            diff = q[:, None] - q[None]  # [K (at), K (of), 2]
            g = np.exp(-0.5 * np.sum(diff**2, -1) / self._sigma**2)
            targets = targets - np.einsum("kjc,jd->kdc", diff * g[..., None], mags)
        return np.einsum("kj,jdc->kdc", self._rbf_inv, targets), mags

    def _warp(
        self,
        out: np.ndarray,
        stale: list | None,
        written: list,
        exp: np.ndarray,
        jaw: float,
        rot: np.ndarray,
    ) -> None:
        """Stages 1 and 2: the head's planes with the expression field (xy and z deltas) and
        the jaw shift applied, into the buffer ``out`` [D, H, W, 4] (``stale``: see _restore);
        the boxes it resamples are appended to ``written``. rot [3, 3]: the head's pose rotation
        (RUB, column vectors), for the z deltas' parallax.

        Cost: each plane is resampled only over the box where its field reaches _MIN_SHIFT and
        its content can land (the rest of the plane is the head's), straight into the buffer.
        The field is sampled every _step pixels for all planes at once (small BLAS
        products), and the warp map (pixel minus field) is upsampled from the samples: the
        pixel grid is linear, so bilinear upsampling keeps it exact."""
        d_count, h, w = self.planes.shape[:3]
        fy = self.intrinsics[1]
        coef, mags = self._field_coefficients(exp, rot)
        padded, content, _ = self._padded_planes()
        with_content = [d for d in range(d_count) if content[d] is not None]
        # The field's samples [P, nh + 2, nw + 2] (x and y) of the planes with content: the
        # separable kernel makes each a [nh, K] @ [K, nw] product (small: BLAS stays on one
        # thread; full-size products went multi-threaded and thrashed on a busy 2-core CPU).
        shape = (len(with_content), len(self._coarse_y), len(self._coarse_x))
        if np.any(coef) or np.any(mags):
            cw = coef[:, with_content].transpose(1, 2, 0)[..., None].astype(np.float32)
            field_x = self._gy_t @ (cw[:, 0] * self._gx)  # [P, nh + 2, nw + 2]
            field_y = self._gy_t @ (cw[:, 1] * self._gx)
            if np.any(mags):
                mw = mags[:, with_content].T[..., None].astype(np.float32)  # [P, K, 1]
                field_x += self._gy_t @ (mw * self._gx_dx)
                field_y += self._gy_dy_t @ (mw * self._gx)
            size = np.abs(field_x)
            np.maximum(size, np.abs(field_y), out=size)
            live = size >= _MIN_SHIFT
            live_rows, live_cols = live.any(axis=2), live.any(axis=1)
            largest = size.max(axis=(1, 2), initial=0.0)
        else:  # the jaw alone: no expression field
            field_x = field_y = np.zeros(shape, np.float32)
            live_rows = np.zeros(shape[:2], bool)
            live_cols = np.zeros((shape[0], shape[2]), bool)
            largest = np.zeros(shape[0])
        mouth = self._mouth
        jaw_px = jaw * self._kp_to_cam[1, 1] * fy / mouth["z"] if jaw > 0 else 0.0
        jaw_fields: dict[float, tuple] = {}  # the jaw field depends on the plane only by weight
        boxes: dict[int, tuple[int, int, int, int]] = {}
        jaw_boxes: dict[int, tuple] = {}
        for d in range(d_count):
            box = None
            if content[d] is not None:
                p = with_content.index(d)
                box = self._warp_box(live_rows[p], live_cols[p], largest[p], content[d])
                jaw_d = float(jaw_px * mouth["plane_weight"][d])
                # Only where the plane's content can land (planes hold slices of the head's
                # surface: many have nothing at the mouth).
                m = int(np.ceil(largest[p] + jaw_d)) + 1
                cy0, cy1, cx0, cx1 = content[d]
                reach = (cy0 - m, cy1 + m, cx0 - m, cx1 + m)
                jx0, jx1, jy0, jy1 = mouth["roi"]
                jbox = (jy0, min(h, int(jy1 + jaw_d + 2)), jx0, min(w, jx1))
                if abs(jaw_d) >= _MIN_SHIFT and _intersect(jbox, reach) is not None:
                    key = round(jaw_d, 3)
                    if key not in jaw_fields:
                        jy0, jy1, jx0, jx1 = jbox
                        jfield = _jaw_shift(
                            mouth, self._xs[None, jx0:jx1], self._ys[jy0:jy1, None], jaw_d
                        )
                        jaw_fields[key] = (jbox, jfield)
                    jaw_boxes[d] = jaw_fields[key]
                    box = _intersect(jbox if box is None else _union(box, jbox), reach)
            if box is not None:
                boxes[d] = box
        self._restore(out, stale, boxes)
        # The warp maps' samples [P, nh + 2, nw + 2]: sample position minus field, x and y
        # apart (cv2.remap takes them so: no interleaving pass).
        map_x = self._coarse_x - field_x
        map_y = self._coarse_y[:, None] - field_y
        for d, box in boxes.items():
            written.append((d, box))
            p = with_content.index(d)
            self._remap_box(out[d], padded[d], map_x[p], map_y[p], box, jaw_boxes.get(d))

    def _remap_box(
        self,
        out: np.ndarray,
        src: np.ndarray,
        map_x: np.ndarray,
        map_y: np.ndarray,
        box: tuple[int, int, int, int],
        jaw: tuple | None,
    ) -> None:
        """Resample the box (y0, y1, x0, x1) of one plane ``out`` [H, W, 4] from ``src`` (its
        padded plane), with the warp map's samples map_x, map_y [nh + 2, nw + 2] upsampled and
        the jaw field (None or (its box, field [h, w])) taken off the map's y."""
        import cv2

        s = self._step
        y0, y1, x0, x1 = box
        # Coarse samples [c0, c1) upsample to pixels (c0 - 1) s + t, t in [0, (c1 - c0) s);
        # the box keeps s pixels from the ends, where cv2.resize clamps.
        r0, r1 = y0 // s, -(-y1 // s) + 2
        c0, c1 = x0 // s, -(-x1 // s) + 2
        size = ((c1 - c0) * s, (r1 - r0) * s)
        oy, ox = (r0 - 1) * s, (c0 - 1) * s
        crop = (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))
        # [h, w] source pixel x and y of each pixel of the box
        src_x = cv2.resize(map_x[r0:r1, c0:c1], size, interpolation=cv2.INTER_LINEAR)[crop]
        src_y = cv2.resize(map_y[r0:r1, c0:c1], size, interpolation=cv2.INTER_LINEAR)[crop]
        if jaw is not None:
            jbox, jfield = jaw
            both = _intersect(jbox, box)
            if both is not None:
                by0, by1, bx0, bx1 = both
                jy0, jx0 = jbox[0], jbox[2]
                src_y[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] -= jfield[
                    by0 - jy0 : by1 - jy0, bx0 - jx0 : bx1 - jx0
                ]
        cv2.remap(
            src, src_x, src_y, cv2.INTER_LINEAR, dst=out[y0:y1, x0:x1],
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip

    def _warp_box(
        self,
        live_rows: np.ndarray,
        live_cols: np.ndarray,
        largest: float,
        content: tuple[int, int, int, int],
    ) -> tuple[int, int, int, int] | None:
        """The box (y0, y1, x0, x1) a plane is resampled over, or None where its field stays
        under _MIN_SHIFT: live_rows [nh + 2] / live_cols [nw + 2] bool, the rows / columns of
        field samples that reach _MIN_SHIFT; largest: the largest sample (pixels); content: the
        plane's content box. Bilinear upsampling never exceeds the samples around a pixel, so
        pixels between samples under _MIN_SHIFT stay under it; and a pixel whose source (it
        minus the field) lies farther than the largest field plus the filter's pixel from the
        content samples only transparent pixels, as the plane holds there already."""
        rows = np.flatnonzero(live_rows)
        if rows.size == 0:
            return None
        cols = np.flatnonzero(live_cols)
        s = self._step
        h, w = self.planes.shape[1:3]
        # Sample j sits at pixel (j - 0.5) s - 0.5: pixels next to a live sample lie within
        # ((j - 2) s, (j + 1) s).
        reach = int(np.ceil(largest)) + 1
        cy0, cy1, cx0, cx1 = content
        y0 = max(0, (int(rows[0]) - 2) * s, cy0 - reach)
        y1 = min(h, (int(rows[-1]) + 1) * s, cy1 + reach)
        x0 = max(0, (int(cols[0]) - 2) * s, cx0 - reach)
        x1 = min(w, (int(cols[-1]) + 1) * s, cx1 + reach)
        if y1 <= y0 or x1 <= x0:
            return None
        return y0, y1, x0, x1

    def _paint_mouth(self, planes: np.ndarray, jaw: float) -> list:
        """Dark interior between the upper lip and the lowered lower lip (module doc, stage 2).
        Returns the (plane, box) pairs it changed, as :func:`_paint`."""
        m = self._mouth
        fy = self.intrinsics[1]
        gap_px = jaw * self._kp_to_cam[1, 1] * fy / m["z"]
        if gap_px < 0.5:
            return []
        x0, x1 = m["x_range"]
        ys0 = int(max(0, np.floor(m["seam_min"]) - 1))
        ys1 = int(min(self.height, np.ceil(m["seam_max"] + gap_px) + 2))
        xs = self._xs[None, x0:x1]
        ys = self._ys[ys0:ys1, None]
        seam = _seam(m, xs)
        gap = gap_px * _lens(m, xs)
        inside = np.clip(np.minimum(ys - seam, seam + gap - ys) + 0.5, 0.0, 1.0)
        inside = inside * np.clip(gap - 0.5, 0.0, 1.0)
        depth = np.clip((ys - seam) / np.maximum(gap, 1e-6), 0, 1)
        # Darkest in the middle of the opening, a little red near the lips.
        shade = 1.0 - 4.0 * (depth - 0.5) ** 2
        colour = _MOUTH_DARK + (_MOUTH_DEEP - _MOUTH_DARK) * shade[..., None]
        return _paint(planes, m["plane"], (ys0, ys1, x0, x1), inside.astype(np.float32), colour)

    # --- stage 3: gaze --------------------------------------------------------------------------

    def _gaze_geometry(self) -> list[dict | None]:
        with self._lock:
            if self._gaze is None:
                self._gaze = [_gaze_geometry(self, g) for g in self._eye_geometry()]
        return self._gaze

    def _gaze_map(self, eye: int, ball: np.ndarray) -> np.ndarray | None:
        """The [2, 3] affine map (destination: the opening's box -> source: the lid roi, pixels)
        that moves the iris of ``eye`` for the pupil offset ``ball`` [2] (eye widths; rig.py's
        rotation), or None when it moves less than _MIN_SHIFT (or the eye is not in view)."""
        gz = self._gaze_geometry()[eye]
        if gz is None:
            return None
        r, w = self.rig.eye_radius, self.rig.eye_width
        lim = 0.95 * r
        a, b = np.arcsin(np.clip(ball * w, -lim, lim) / r)
        # rig.py turns the eyeball by Ry(a) Rx(b) (column vectors, RUB): the pupil, r in front of
        # the centre, goes to r (sin a cos b, -sin b, cos a cos b) (+x image right, -y down).
        move = r * np.array([np.sin(a) * np.cos(b), -np.sin(b), np.cos(a) * np.cos(b) - 1.0])
        p0 = gz["pupil"]  # [3] camera frame metres
        p1 = p0 + self.world_to_camera[:3, :3] @ move
        fx, fy = self.intrinsics[:2]
        shift = np.array([fx * p1[0] / p1[2], fy * p1[1] / p1[2]]) - np.array(
            [fx * p0[0] / p0[2], fy * p0[1] / p0[2]]
        )
        if np.abs(shift).max() < _MIN_SHIFT:
            return None
        # The iris disc turns away from the camera: foreshortened by cos a across, cos b up.
        k = np.array([np.cos(a), np.cos(b)])
        # source (lid roi) = c + (p + offset - c - shift) / k, p in the opening's box
        c = gz["iris_centre"] - gz["offset"]
        return np.array(
            [
                [1.0 / k[0], 0.0, gz["offset"][0] + c[0] - (c[0] + shift[0]) / k[0]],
                [0.0, 1.0 / k[1], gz["offset"][1] + c[1] - (c[1] + shift[1]) / k[1]],
            ],
            np.float64,
        )

    def _paint_gaze(self, planes: np.ndarray, eye: int, m: np.ndarray) -> list:
        """The iris disc moved by the affine map m, over the eye with its iris removed (sclera
        where it was), clipped to the eye opening, on the eye's plane. Returns the (plane, box)
        pairs it changed, as :func:`_paint`."""
        import cv2

        gz = self._gaze_geometry()[eye]
        y0, y1, x0, x1 = gz["roi"]
        size = (x1 - x0, y1 - y0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        alpha = cv2.warpAffine(gz["iris_alpha"], m, size, flags=flags)  # zero outside
        iris = cv2.warpAffine(gz["iris_rgb"], m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        bare = gz["bare"]
        colour = bare + alpha[..., None] * (iris - bare)
        mask = gz["opening"] * np.maximum(gz["iris_gone"], alpha)
        return _paint(planes, gz["plane"], gz["roi"], mask, colour)

    # --- stage 4: eyelids ----------------------------------------------------------------------

    def _eye_geometry(self) -> list[dict]:
        with self._lock:
            if self._eyes is None:
                self._eyes = [_eye_geometry(self, up, low) for up, low in ((11, 13), (15, 16))]
        return self._eyes

    def _paint_lids(self, planes: np.ndarray, eye: int, closure: np.ndarray) -> list:
        """The lids of ``eye`` closed by closure [2] (upper, lower) in [0, 1] (module doc,
        stage 4). Returns the (plane, box) pairs it changed, as :func:`_paint`."""
        g = self._eye_geometry()[eye]
        cu, cl = float(closure[0]), float(closure[1])
        y0, y1, x0, x1 = g["roi"]
        xs = self._xs[None, x0:x1]
        ys = self._ys[y0:y1, None]
        cxe, cye, a, b = g["centre"][0], g["centre"][1], g["half_width"], g["half_height"]
        u = np.clip((xs - cxe) / a, -1.0, 1.0)
        arc = np.sqrt(1.0 - u * u)
        # Lid margins: from the opening's contour towards a closed line that bows down a little
        # (the lower lid travels less: they meet below the centre).
        closed = cye + 0.35 * b + 0.2 * b * arc
        upper = (1.0 - cu) * (cye - b * arc) + cu * closed + 0.5
        lower = (1.0 - cl) * (cye + b * arc) + cl * closed - 0.5
        covered = np.maximum(
            np.clip(upper - ys + 0.5, 0.0, 1.0) * (cu > 0),
            np.clip(ys - lower + 0.5, 0.0, 1.0) * (cl > 0),
        )
        r = np.sqrt(((xs - cxe) / (1.3 * a)) ** 2 + ((ys - cye) / (1.35 * b)) ** 2)
        # Feathered edge: the paint fades into the baked skin around the eye.
        inside = _smoothstep(1.0, 0.85, r)
        mask = (inside * covered).astype(np.float32)
        # The skin is the eye region inpainted from its surroundings, shaded a little darker
        # towards the margin, with a dark lash line along the upper margin.
        shade = 1.0 - 0.15 * np.clip(1.0 - (upper - ys) / max(b, 1.0), 0.0, 1.0)
        colour = g["skin"] * shade[..., None].astype(np.float32)
        lash = np.clip(1.3 - np.abs(ys - upper + 0.7), 0.0, 1.0) * (cu > 0.05) * inside
        colour = colour * (1.0 - 0.75 * lash[..., None]).astype(np.float32)
        return _paint(planes, g["plane"], (y0, y1, x0, x1), mask, colour)


# ------------------------------------------------------------------------------ helpers


def _nearest_plane(depths: np.ndarray, z: float) -> int:
    return int(np.argmin(np.abs(1.0 / depths - 1.0 / z)))


def _mouth_geometry(q: np.ndarray, z: np.ndarray, depths: np.ndarray) -> dict:
    """Lip seam, opening lens and jaw region in array-index pixels, from keypoints q [21, 2]."""
    c_r, c_l = q[14], q[20]
    mid = 0.5 * (q[6] + q[17])
    if c_r[0] > c_l[0]:
        c_r, c_l = c_l, c_r
    xs3 = np.array([c_r[0], mid[0], c_l[0]])
    ys3 = np.array([c_r[1], mid[1], c_l[1]])
    if np.ptp(xs3) < 2.0 or not (c_r[0] < mid[0] < c_l[0]):
        # Degenerate mouth keypoints: a straight seam through the middle of the lips.
        quad = np.array([0.0, 0.0, mid[1]])
        half = 10.0
    else:
        quad = np.polyfit(xs3, ys3, 2)
        half = 0.5 * (c_l[0] - c_r[0])
    cx = float(mid[0])
    chin_y = float(q[8, 1])
    fade = max(0.6 * (chin_y - mid[1]), 4.0)  # below the chin the jaw fades into the neck
    jaw_half = max(float(abs(q[10, 0] - q[9, 0])) / 2.0, 1.5 * half)
    z_lips = float(0.5 * (z[6] + z[17]))
    z_back = float(max(z[8], z[17], z[19], z[14], z[20])) + 0.03
    plane_weight = 1.0 - _smoothstep(z_back, z_back + 0.03, depths)
    seam_pts = np.polyval(quad, np.linspace(cx - half, cx + half, 9))
    return {
        "quad": quad,
        "cx": cx,
        "half": half,
        "chin": chin_y,
        "fade": fade,
        "jaw_half": jaw_half,
        "z": z_lips,
        "plane": _nearest_plane(depths, z_lips),
        "plane_weight": plane_weight,
        "seam_min": float(seam_pts.min()),
        "seam_max": float(seam_pts.max()),
        "x_range": (int(max(0, np.floor(cx - half - 2))), int(np.ceil(cx + half + 3))),
        "roi": (
            int(max(0, np.floor(cx - jaw_half))),
            int(np.ceil(cx + jaw_half) + 1),
            int(max(0, np.floor(seam_pts.min() - 2))),
            int(np.ceil(chin_y + fade) + 2),
        ),
    }


def _seam(m: dict, xs: np.ndarray) -> np.ndarray:
    x = np.clip(xs, m["cx"] - m["half"], m["cx"] + m["half"])
    return np.polyval(m["quad"], x)


def _lens(m: dict, xs: np.ndarray) -> np.ndarray:
    """Opening profile in [0, 1]: 1 at the middle of the mouth, 0 at the corners."""
    u = (xs - m["cx"]) / m["half"]
    return np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))


def _jaw_shift(m: dict, xs: np.ndarray, ys: np.ndarray, jaw_px: float) -> np.ndarray:
    """Downward shift [h, w] float32 (pixels, destination-based) of the jaw region for an
    opening of ``jaw_px`` at the middle of the mouth. Between the corners the rows from the seam
    to the seam + opening all sample the seam (the gap the interior fills); outside, the skin
    stretches over a band that widens away from the corners."""
    seam = _seam(m, xs)
    du = np.abs(xs - m["cx"])
    gap = jaw_px * _lens(m, xs)
    band = np.maximum(gap, jaw_px * (1.0 + 2.0 * np.clip((du - m["half"]) / m["half"], 0, 1)))
    band = np.where(du <= m["half"], np.maximum(gap, 0.5), band)
    lateral = 1.0 - _smoothstep(m["half"] * 1.1, m["jaw_half"], du)
    below = m["chin"] + jaw_px
    vertical = 1.0 - _smoothstep(below, below + m["fade"], ys)
    # The [h, w] part in float32, in place, the factors folded first (it runs for up to four
    # plane weights a frame): jaw_px * lateral * vertical * clip((ys - seam) / band, 0, 1).
    shift = np.subtract(ys, seam, dtype=np.float32)
    shift *= (1.0 / band).astype(np.float32)
    np.clip(shift, 0.0, 1.0, out=shift)
    shift *= (jaw_px * lateral).astype(np.float32)
    shift *= vertical.astype(np.float32)
    return shift


def _composite(planes: np.ndarray, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Front view of the region (y0, y1, x0, x1): straight colour [h, w, 3] float32 and the
    per-plane visible weight [D, h, w] (T_d * alpha_d)."""
    y0, y1, x0, x1 = roi
    p = planes[:, y0:y1, x0:x1].astype(np.float32)
    if planes.dtype == np.uint8:
        p /= 255.0
    a = p[..., 3]
    trans = np.cumprod(1.0 - a, axis=0)
    vis = a.copy()
    vis[1:] *= trans[:-1]
    rgb = (vis[..., None] * p[..., :3]).sum(0) / np.maximum(vis.sum(0), 1e-6)[..., None]
    return rgb, vis


def _eye_geometry(head: RiggedMPIHead, up: int, low: int) -> dict:
    """Eye opening (ellipse, array-index pixels), target plane and sampled skin colour."""
    q = head._kp_uv
    fx = head.intrinsics[0]
    z = float(min(head._kp_z[up], head._kp_z[low]))
    centre = 0.5 * (q[up] + q[low])
    a = max(0.5 * head.rig.eye_width * fx / z, 2.0)
    b = max(0.62 * abs(q[low, 1] - q[up, 1]), 0.35 * a, 1.5)
    h, w = head.height, head.width
    y0 = int(max(0, np.floor(centre[1] - 2.2 * b)))
    y1 = int(min(h, np.ceil(centre[1] + 2.2 * b) + 1))
    x0 = int(max(0, np.floor(centre[0] - 1.6 * a)))
    x1 = int(min(w, np.ceil(centre[0] + 1.6 * a) + 1))
    roi = (y0, y1, x0, x1)
    rgb, vis = _composite(head.planes, roi)
    ys = np.arange(y0, y1)[:, None]
    xs = np.arange(x0, x1)[None]
    r = np.sqrt(((xs - centre[0]) / a) ** 2 + ((ys - centre[1]) / b) ** 2)
    # Skin: a smooth membrane over the eye region from the skin-coloured pixels around it
    # (a normalised Gaussian blur of them). Lashes, brows and the eye itself are left out: they
    # differ from the median colour of the ring below and beside the eye.
    import cv2

    cover = vis.sum(0)
    ring = (r > 1.3) & (r < 2.4) & (ys > centre[1] - 0.3 * b) & (cover > 0.9)
    if ring.sum() < 4:
        ring = (r > 1.3) & (cover > 0.5)
    median = np.median(rgb[ring], axis=0) if ring.any() else np.array([0.8, 0.65, 0.55])
    skinlike = (r > 1.3) & (cover > 0.9) & (np.abs(rgb - median).max(-1) < 0.12)
    weight = skinlike.astype(np.float32)
    sigma = max(0.6 * b, 2.0)
    num = cv2.GaussianBlur(rgb.astype(np.float32) * weight[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
    skin = np.where(den > 1e-3, num / np.maximum(den, 1e-6), median).astype(np.float32)
    # Paint on the nearest plane that holds a real part of the eye region, so the lid covers it.
    inside = r <= 1.0
    weight = vis[:, inside].sum(1) if inside.any() else np.zeros(head.num_planes)
    front = np.flatnonzero(weight > 0.02 * max(weight.sum(), 1e-6))
    plane = int(front[0]) if front.size else _nearest_plane(head.depths, z)
    return {
        "centre": centre,
        "half_width": a,
        "half_height": b,
        "roi": roi,
        "plane": plane,
        "skin": skin,  # [h, w, 3] float32 straight colour over the roi
        "front": rgb,  # [h, w, 3] float32 the baked front view over the roi
        "z": z,  # metres: the eye keypoints' camera depth
    }


def _gaze_geometry(head: RiggedMPIHead, g: dict) -> dict | None:
    """Eye opening, iris disc and sclera of one eye, found in its baked front view (``g`` from
    :func:`_eye_geometry`). Over g's roi: opening [h, w] float32 soft mask (the visible eyeball:
    not skin, not lash-dark, inside the lid ellipse, holes such as the pupil filled, the largest
    piece); iris_alpha [h, w] float32 soft disc; iris_rgb [h, w, 3] the iris' colours (where the
    lids hide it: a smooth fill from its visible ring); bare [h, w, 3] the view with the disc
    replaced by the sclera (a smooth membrane of the visible sclera's colours); iris_centre [2]
    roi pixels; pupil [3] camera-frame metres. None when the eye is not in the view."""
    import cv2

    y0, y1, x0, x1 = g["roi"]
    rgb = g["front"]
    if rgb.shape[0] < 3 or rgb.shape[1] < 3:
        return None
    cxe, cye = g["centre"][0] - x0, g["centre"][1] - y0
    a, b = g["half_width"], g["half_height"]
    ys = np.arange(y1 - y0, dtype=np.float64)[:, None]
    xs = np.arange(x1 - x0, dtype=np.float64)[None]
    ell = ((xs - cxe) / a) ** 2 + ((ys - cye) / b) ** 2 <= 1.0
    lum = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    chroma = rgb.max(-1) - rgb.min(-1)
    # Not skin: far from the lid's skin colour, and either another hue (iris, grey sclera) or
    # brighter (a warm sclera); the pink inner corner and lid rim are skin-hued and darker.
    skin = g["skin"]
    hue = rgb / np.maximum(rgb.sum(-1, keepdims=True), 1e-3)
    skin_hue = skin / np.maximum(skin.sum(-1, keepdims=True), 1e-3)
    skin_lum = skin @ np.array([0.299, 0.587, 0.114], np.float32)
    nonskin = (
        ell
        & (np.abs(rgb - skin).max(-1) > 0.12)
        & ((np.abs(hue - skin_hue).max(-1) > 0.035) | (lum > skin_lum + 0.1))
    )
    opening = np.zeros(ell.shape, bool)
    if nonskin.sum() >= 8:
        bright = float(np.percentile(lum[nonskin], 90))
        cand = nonskin & (lum >= 0.35 * bright)  # lashes and lid shadow are darker
        opening = _largest_piece(_fill_holes(cand))
        # A smooth contour: pixel-wise colour tests leave a ragged lower lid.
        opening = _largest_piece(cv2.GaussianBlur(opening.astype(np.float32), (0, 0), 1.0) > 0.5)
        opening &= ell
    if opening.sum() < 0.15 * ell.sum():
        # Nothing eye-like found: the lower two thirds of the lid ellipse.
        opening = ell & ((((xs - cxe) / a) ** 2 + ((ys - cye) / (0.65 * b)) ** 2) <= 1.0)
    if opening.sum() < 4:
        return None
    bright = float(np.percentile(lum[opening], 90))
    sclera = opening & (lum >= 0.6 * bright) & (chroma < 0.2)
    # The iris: around the pupil (the dark blob near the middle of the opening; the lid
    # keypoints sit over it), out along its row to the sclera on either side.
    centre, radius = np.array([cxe, cye]), 0.4 * a
    near = opening & ((xs - cxe) ** 2 + (ys - cye) ** 2 <= (0.6 * a) ** 2)
    pupil = near & (lum < 0.35 * bright)
    if pupil.sum() >= 3:
        py, px = np.nonzero(pupil)
        centre = np.array([px.mean(), py.mean()])
    row = int(np.clip(round(centre[1]), 0, opening.shape[0] - 1))
    col = int(np.clip(round(centre[0]), 0, opening.shape[1] - 1))
    edges = []
    for step in (-1, 1):
        x = col
        while 0 <= x + step < opening.shape[1] and opening[row, x + step] and not sclera[row, x]:
            x += step
        # Only an edge against the sclera measures the iris (one against a lid corner does not).
        if sclera[row, x] and abs(x - col) >= 2:
            edges.append(x - 0.5 * step)
    if len(edges) == 2:
        found, mid = 0.5 * (edges[1] - edges[0]), 0.5 * (edges[0] + edges[1])
    elif len(edges) == 1:
        found, mid = abs(edges[0] - centre[0]), centre[0]
    else:
        found, mid = 0.0, centre[0]
    if 0.15 * a <= found <= 0.95 * a:
        radius, centre = found, np.array([mid, centre[1]])
    dist = np.sqrt((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2)
    disc = np.clip(radius - dist + 0.5, 0.0, 1.0).astype(np.float32)

    def membrane(weight: np.ndarray, sigma: float, fallback: np.ndarray) -> np.ndarray:
        w = weight.astype(np.float32)
        num = cv2.GaussianBlur(rgb * w[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(w, (0, 0), sigma)[..., None]
        return np.where(den > 1e-3, num / np.maximum(den, 1e-6), fallback).astype(np.float32)

    # The iris' pixels next to the lids carry their shadow and lashes: filled like the hidden part.
    inner = cv2.erode(opening.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2) > 0
    seen = inner & (dist <= radius)
    ring = seen & (dist >= 0.6 * radius) & ~sclera
    ring_colour = np.median(rgb[ring], axis=0) if ring.any() else np.array([0.3, 0.25, 0.2])
    iris_rgb = np.where(
        seen[..., None],
        rgb,
        membrane(ring, max(0.35 * radius, 1.0), ring_colour),
    ).astype(np.float32)
    white = sclera & (dist > radius + 1.0)
    white_colour = np.median(rgb[white], axis=0) if white.any() else np.array([0.9, 0.88, 0.85])
    sclera_rgb = membrane(white, max(0.5 * radius, 1.5), white_colour)
    # The iris comes off with its anti-aliased rim (a disc 1 px wider), or a ring would stay.
    gone = np.clip(radius + 1.5 - dist, 0.0, 1.0).astype(np.float32)[..., None]
    bare = (rgb + gone * (sclera_rgb - rgb)).astype(np.float32)
    soft = opening.astype(np.float32)
    soft = soft * cv2.GaussianBlur(soft, (0, 0), 0.6)  # feathered inside its own edge
    fx, fy, cx, cy = head.intrinsics
    z = g["z"]
    u, v = centre[0] + x0 + 0.5, centre[1] + y0 + 0.5  # pixel coordinates
    # Everything is painted inside the opening: keep its box (a quarter of the lid roi).
    rows, cols = np.flatnonzero(soft.any(1)), np.flatnonzero(soft.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = (slice(r0, r1), slice(c0, c1))
    return {
        "roi": (y0 + r0, y0 + r1, x0 + c0, x0 + c1),
        "plane": g["plane"],
        "opening": np.ascontiguousarray(soft[box]),
        "iris_gone": np.ascontiguousarray(gone[..., 0][box]),
        "bare": np.ascontiguousarray(bare[box]),
        # The moving iris keeps the whole lid roi: it may come from under the lids.
        "iris_alpha": disc,
        "iris_rgb": iris_rgb,
        "iris_centre": centre,  # lid-roi pixels
        "offset": np.array([c0, r0], np.float64),  # the box's origin in the lid roi
        "iris_radius": radius,
        "pupil": np.array([(u - cx) / fx * z, (v - cy) / fy * z, z]),
    }


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """mask [h, w] bool with the regions it encloses (not reachable from the border) added."""
    import cv2

    h, w = mask.shape
    outside = np.zeros((h + 2, w + 2), np.uint8)
    outside[1:-1, 1:-1] = mask
    flood = outside.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return mask | (flood[1:-1, 1:-1] == 0)


def _largest_piece(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected piece of mask [h, w] bool (all False if empty)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    if n <= 1:
        return np.zeros_like(mask)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _paint(
    planes: np.ndarray,
    target: int,
    roi: tuple[int, int, int, int],
    mask: np.ndarray,
    colour: np.ndarray,
) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Cover ``mask [h, w]`` (0..1) of the region with opaque ``colour`` ([3] or [h, w, 3],
    straight, 0..1) on plane ``target``; planes in front of it are cleared there so nothing hides
    the paint. In place, in the planes' dtype. Returns the (plane, roi) pairs it changed."""
    y0, y1, x0, x1 = roi
    if mask.size == 0 or not mask.any():
        return []
    scale = 255.0 if planes.dtype == np.uint8 else 1.0
    m = mask[..., None]
    changed = [(target, roi)]
    if target > 0:
        # Only the alpha (the colour stays), of all front planes at once (a zero alpha stays
        # zero: the planes with nothing there do not change).
        alpha = planes[:target, y0:y1, x0:x1, 3]
        held = np.flatnonzero(alpha.any(axis=(1, 2)))
        if held.size:
            alpha[...] = _store(alpha * (np.float32(1.0) - mask.astype(np.float32)), planes.dtype)
            changed += [(int(d), roi) for d in held]
    p = planes[target, y0:y1, x0:x1].astype(np.float32) / np.float32(scale)
    a = p[..., 3:4]
    new_a = a + (1.0 - a) * m
    premult = (1.0 - m) * a * p[..., :3] + m * np.broadcast_to(colour, p[..., :3].shape)
    p[..., :3] = np.where(new_a > 0, premult / np.maximum(new_a, 1e-6), p[..., :3])
    p[..., 3:] = new_a
    planes[target, y0:y1, x0:x1] = _store(p * np.float32(scale), planes.dtype)
    return changed


def _store(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(np.round(a), 0, 255).astype(np.uint8)
    return np.clip(a, 0.0, 1.0).astype(np.float32)
