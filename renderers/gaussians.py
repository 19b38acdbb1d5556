"""Gaussian-splat heads: the data type every splat renderer, file format and rig exchanges.

Axis convention (world and head space): right-handed, in metres; for a head looking at a viewer in
front of it, +x is the viewer's right (the subject's left), +y up and +z out of the face towards the
viewer ("RUB", OpenGL's convention). The motion space's keypoints use LivePortrait's RDF frame
instead; head rigs convert between the two (flip y and z). Files written by other tools (3DGS
training output is usually OpenCV "RDF": +y down, +z forward) are converted on load by the readers
in renderers.formats (GaussianCloud.flip_yz).

One-sided surfels (``GaussianCloud.facing``): a Gaussian may be marked as a piece of a closed
opaque surface, with an outward normal ``facing * R[:, 2]`` (its local z axis, the thin axis of a
surfel disc; rotations of the quaternion carry the normal along). From a camera on the inner side
of that plane the Gaussian is hidden behind the front of the same closed surface, so renderers
skip it (back-face culling): ``backfacing(cloud, camera_position)``. Two-sided (0, the default,
every 3DGS capture) is never culled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = [
    "BACKFACE_COS",
    "SH_C0",
    "SH_FLIP_YZ_SIGNS",
    "GaussianCloud",
    "backfacing",
    "facing_normals",
    "quats_to_rotmats",
    "sh_degree_for_coeffs",
]

# Zeroth spherical-harmonic band constant: colour = 0.5 + SH_C0 * f_dc.
SH_C0 = 0.28209479177387814

# Sign of each of the 16 real SH basis functions (3DGS order) under (x, y, z) -> (x, -y, -z), the
# 180-degree turn about x that maps OpenCV RDF to RUB: band 1 is (y, z, x), band 2 (xy, yz,
# 3z^2-1, xz, x^2-y^2), band 3 (y(3x^2-y^2), xyz, y(5z^2-1), z(5z^2-3), x(5z^2-1), z(x^2-y^2),
# x(x^2-3y^2)); a basis function changes sign when it is odd in y and z together.
SH_FLIP_YZ_SIGNS = np.array(
    [1, -1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], dtype=np.float32
)


# A one-sided Gaussian is culled when the cosine between its outward normal and the direction from
# the camera to its mean exceeds this (the same margin in the GL shader, the torch reference and
# the gsplat path). Not 0: a disc reaches ~2 sigma past its centre, so near a silhouette a disc
# that faces slightly away still pokes out past the front surface and shows (measured on the
# default head: 0.05 left fringes at the jaw line and ear rims, 0.2 about halves the error; the
# head marks tightly curved skin two-sided as well, models.heads.procedural.ONE_SIDED_TURN).
BACKFACE_COS = 0.2


def facing_normals(quats: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """Outward normals [N, 3] float32 ``facing * R[:, 2]`` (R from quats [N, 4] wxyz, normalised
    here; facing [N] in {-1, 0, 1}): unit for one-sided Gaussians, zero for two-sided ones."""
    q = np.asarray(quats, dtype=np.float32)
    f = np.asarray(facing, dtype=np.float32)
    inv = f / np.einsum("ij,ij->i", q, q)  # R[:, 2] of an unnormalised q is |q|^2 times too long
    w, x, y, z = (q[:, i] for i in range(4))
    out = np.empty((q.shape[0], 3), dtype=np.float32)
    out[:, 0] = 2 * (x * z + w * y) * inv
    out[:, 1] = 2 * (y * z - w * x) * inv
    out[:, 2] = (w * w - x * x - y * y + z * z) * inv
    return out


def backfacing(cloud: GaussianCloud, camera_position: np.ndarray) -> np.ndarray:
    """Mask [N] bool of the one-sided Gaussians that face away from a camera at
    ``camera_position`` [3] (world): cos(normal, mean - camera) > BACKFACE_COS."""
    n = len(cloud)
    if n == 0 or not cloud.facing.any():
        return np.zeros(n, dtype=bool)
    normal = facing_normals(cloud.quats, cloud.facing).astype(np.float64)
    d = cloud.means.astype(np.float64) - np.asarray(camera_position, dtype=np.float64)
    dist = np.linalg.norm(d, axis=1)
    return np.einsum("ij,ij->i", normal, d) > BACKFACE_COS * dist


def quats_to_rotmats(quats: np.ndarray) -> np.ndarray:
    """Rotation matrices [N, 3, 3] float64 from quaternions [N, 4] (w, x, y, z), normalised here."""
    q = np.asarray(quats, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def sh_degree_for_coeffs(k: int) -> int:
    """SH degree for K coefficients per channel (1, 4, 9, 16 -> 0, 1, 2, 3)."""
    for degree in range(4):
        if (degree + 1) ** 2 == k:
            return degree
    raise ValueError(f"{k} SH coefficients per channel is not a square of 1..4")


@dataclass
class GaussianCloud:
    """N anisotropic 3D Gaussians with activated (render-ready) parameters.

    means [N, 3] float32 metres; quats [N, 4] float32 unit quaternions (w, x, y, z);
    scales [N, 3] float32 standard deviations in metres (linear, > 0); opacities [N] float32 in
    [0, 1] (post-sigmoid); sh [N, K, 3] float32 spherical-harmonic coefficients, K in {1, 4, 9, 16},
    band 0 stored as f_dc so that colour = 0.5 + SH_C0 * sh[:, 0] (clamped to [0, 1]).
    facing [N] int8 in {-1, 0, +1}: 0 two-sided (default; None means all 0), +1/-1 one-sided with
    outward normal +/- the local z axis (module docstring); ValueError for other values.
    """

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    metadata: dict = field(default_factory=dict)
    facing: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.means = np.ascontiguousarray(self.means, dtype=np.float32)
        self.quats = np.ascontiguousarray(self.quats, dtype=np.float32)
        self.scales = np.ascontiguousarray(self.scales, dtype=np.float32)
        self.opacities = np.ascontiguousarray(self.opacities, dtype=np.float32)
        self.sh = np.ascontiguousarray(self.sh, dtype=np.float32)
        n = self.means.shape[0]
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "scales": (n, 3),
            "opacities": (n,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"GaussianCloud.{name}: expected shape {shape}, got {getattr(self, name).shape}"
                )
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"GaussianCloud.sh: expected [N={n}, K, 3], got {self.sh.shape}")
        sh_degree_for_coeffs(self.sh.shape[1])
        if self.facing is None:
            self.facing = np.zeros(n, dtype=np.int8)
        else:
            f = np.asarray(self.facing)
            if f.shape != (n,):
                raise ValueError(f"GaussianCloud.facing: expected shape ({n},), got {f.shape}")
            if f.size and (f.dtype.kind not in "iub" or f.min() < -1 or f.max() > 1):
                raise ValueError("GaussianCloud.facing: values must be -1, 0 or +1 (integers)")
            self.facing = np.ascontiguousarray(f, dtype=np.int8)

    @classmethod
    def from_colors(
        cls,
        means: np.ndarray,
        quats: np.ndarray,
        scales: np.ndarray,
        opacities: np.ndarray,
        colors: np.ndarray,
        metadata: dict | None = None,
        facing: np.ndarray | None = None,
    ) -> GaussianCloud:
        """Build a view-independent cloud from RGB colours [N, 3] in [0, 1]."""
        sh = ((np.asarray(colors, dtype=np.float32) - 0.5) / SH_C0)[:, None, :]
        return cls(means, quats, scales, opacities, sh, dict(metadata or {}), facing)

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_for_coeffs(self.sh.shape[1])

    @property
    def colors(self) -> np.ndarray:
        """View-independent base colour [N, 3] in [0, 1] (band 0 only)."""
        return np.clip(0.5 + SH_C0 * self.sh[:, 0, :], 0.0, 1.0)

    def subset(self, index: np.ndarray) -> GaussianCloud:
        """The Gaussians selected by ``index`` (bool mask [N] or int indices)."""
        return replace(
            self,
            means=self.means[index],
            quats=self.quats[index],
            scales=self.scales[index],
            opacities=self.opacities[index],
            sh=self.sh[index],
            metadata=dict(self.metadata),
            facing=self.facing[index],
        )

    @property
    def one_sided(self) -> bool:
        """Whether any Gaussian is one-sided (so back-face culling can drop some)."""
        return bool(self.facing.any())

    def normals(self) -> np.ndarray:
        """Outward normals [N, 3] float32 (zero rows for two-sided Gaussians)."""
        return facing_normals(self.quats, self.facing)

    def flip_yz(self) -> GaussianCloud:
        """The same Gaussians with y and z negated: converts between OpenCV RDF and our RUB.

        The map is the 180-degree rotation about x, F = diag(1, -1, -1): means -> F m,
        rotations R -> F R F (quaternion (w, x, y, z) -> (w, x, -y, -z)), SH coefficients get the
        signs of their basis functions under F (SH_FLIP_YZ_SIGNS), so view-dependent colour is
        unchanged for the correspondingly flipped viewing direction. ``facing`` is negated: the
        local z axis becomes F R F e_z = -F (R e_z), while the outward normal must map to F n.
        Its own inverse.
        """
        sign3 = np.array([1.0, -1.0, -1.0], dtype=np.float32)
        sign4 = np.array([1.0, 1.0, -1.0, -1.0], dtype=np.float32)
        k = self.sh.shape[1]
        return replace(
            self,
            means=self.means * sign3,
            quats=self.quats * sign4,
            scales=self.scales.copy(),
            opacities=self.opacities.copy(),
            sh=self.sh * SH_FLIP_YZ_SIGNS[:k, None],
            metadata=dict(self.metadata),
            facing=-self.facing,
        )

    def rotation_matrices(self) -> np.ndarray:
        """Rotation of each Gaussian [N, 3, 3] float64 (local axes -> world)."""
        return quats_to_rotmats(self.quats)

    def covariances(self) -> np.ndarray:
        """World-space covariance of each Gaussian [N, 3, 3] float64: R diag(s^2) R^T."""
        r = self.rotation_matrices()
        m = r * self.scales.astype(np.float64)[:, None, :]
        return m @ np.swapaxes(m, 1, 2)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box (min [3], max [3]) of the means."""
        if len(self) == 0:
            raise ValueError("bounds of an empty GaussianCloud")
        return self.means.min(axis=0), self.means.max(axis=0)

    def center(self) -> np.ndarray:
        """Centre [3] of the bounding box of the means."""
        lo, hi = self.bounds()
        return (lo + hi) / 2.0
