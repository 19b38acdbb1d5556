"""Gaussian-splat heads: the data type every splat renderer, file format and rig exchanges.

Axis convention (world and head space): right-handed, in metres; for a head looking at a viewer in
front of it, +x is the viewer's right (the subject's left), +y up and +z out of the face towards the
viewer ("RUB", OpenGL's convention). The motion space's keypoints use LivePortrait's RDF frame
instead; head rigs convert between the two (flip y and z). Files written by other tools (3DGS
training output is usually OpenCV "RDF": +y down, +z forward) are converted on load by the readers
in renderers.formats (GaussianCloud.flip_yz).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["SH_C0", "SH_FLIP_YZ_SIGNS", "GaussianCloud", "quats_to_rotmats", "sh_degree_for_coeffs"]

# Zeroth spherical-harmonic band constant: colour = 0.5 + SH_C0 * f_dc.
SH_C0 = 0.28209479177387814

# Sign of each of the 16 real SH basis functions (3DGS order) under (x, y, z) -> (x, -y, -z), the
# 180-degree turn about x that maps OpenCV RDF to RUB: band 1 is (y, z, x), band 2 (xy, yz,
# 3z^2-1, xz, x^2-y^2), band 3 (y(3x^2-y^2), xyz, y(5z^2-1), z(5z^2-3), x(5z^2-1), z(x^2-y^2),
# x(x^2-3y^2)); a basis function changes sign when it is odd in y and z together.
SH_FLIP_YZ_SIGNS = np.array(
    [1, -1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], dtype=np.float32
)


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
    """

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    metadata: dict = field(default_factory=dict)

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

    @classmethod
    def from_colors(
        cls,
        means: np.ndarray,
        quats: np.ndarray,
        scales: np.ndarray,
        opacities: np.ndarray,
        colors: np.ndarray,
        metadata: dict | None = None,
    ) -> GaussianCloud:
        """Build a view-independent cloud from RGB colours [N, 3] in [0, 1]."""
        sh = ((np.asarray(colors, dtype=np.float32) - 0.5) / SH_C0)[:, None, :]
        return cls(means, quats, scales, opacities, sh, dict(metadata or {}))

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
        )

    def flip_yz(self) -> GaussianCloud:
        """The same Gaussians with y and z negated: converts between OpenCV RDF and our RUB.

        The map is the 180-degree rotation about x, F = diag(1, -1, -1): means -> F m,
        rotations R -> F R F (quaternion (w, x, y, z) -> (w, x, -y, -z)), SH coefficients get the
        signs of their basis functions under F (SH_FLIP_YZ_SIGNS), so view-dependent colour is
        unchanged for the correspondingly flipped viewing direction. Its own inverse.
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
