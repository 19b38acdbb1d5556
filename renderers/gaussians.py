"""Gaussian-splat heads: the data type every splat renderer, file format and rig exchanges.

Axis convention (world and head space): right-handed, in metres; for a head looking at a viewer in
front of it, +x is the viewer's right (the subject's left), +y up and +z out of the face towards the
viewer ("RUB", OpenGL's convention). The motion space's keypoints use LivePortrait's RDF frame
instead; head rigs convert between the two (flip y and z). Files written by other tools (3DGS training output is usually
OpenCV "RDF": +y down, +z forward) are converted on load by the readers in renderers.formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["SH_C0", "GaussianCloud", "sh_degree_for_coeffs"]

# Zeroth spherical-harmonic band constant: colour = 0.5 + SH_C0 * f_dc.
SH_C0 = 0.28209479177387814


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

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box (min [3], max [3]) of the means."""
        if len(self) == 0:
            raise ValueError("bounds of an empty GaussianCloud")
        return self.means.min(axis=0), self.means.max(axis=0)

    def center(self) -> np.ndarray:
        """Centre [3] of the bounding box of the means."""
        lo, hi = self.bounds()
        return (lo + hi) / 2.0
