"""The render() call through gsplat's CUDA rasteriser (``gsplat.rasterization``).

gsplat and torch are imported lazily: this module imports on any machine, and raises
GsplatUnavailableError (naming the reason) when CUDA or gsplat is missing. gsplat's classic mode
uses the same rules as renderers.reference (EWA with eps2d = 0.3 px^2, pixel centres at +0.5,
alpha = min(0.99, ...), 1/255 cut, T < 1e-4 termination) except that it clips Gaussians at
3 sigma (tile assignment), so tiny differences remain at the edges of opaque Gaussians. Colours
are evaluated here, not by gsplat: gsplat clamps SH colour only below 0, where the reference and
the GL renderers clamp each Gaussian's colour to [0, 1] (bright highlights of trained heads go
above 1), so we hand it per-camera RGB with the same clamp (measured on a random SH-degree-2
scene: 32.6 dB against the reference with gsplat's SH, 60+ dB with ours).
One-sided Gaussians facing away from a camera (``renderers.gaussians.backfacing``) are dropped
on the CPU before rasterisation, one gsplat call per camera when the masks differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from renderers.gaussians import GaussianCloud, backfacing
from renderers.reference import LOW_PASS, NEAR_PLANE

if TYPE_CHECKING:
    import torch

    from renderers.camera import Camera

__all__ = [
    "GsplatScene",
    "GsplatUnavailableError",
    "gsplat_available",
    "render_gsplat",
]


_DEVICE = "cuda"  # where render_gsplat puts its tensors (the CPU tests swap in a stand-in)


class GsplatUnavailableError(RuntimeError):
    """gsplat rendering needs torch with CUDA and the gsplat package."""


def _require():
    try:
        import torch
    except ImportError as exc:
        raise GsplatUnavailableError(f"torch is not installed: {exc}") from exc
    if not torch.cuda.is_available():
        raise GsplatUnavailableError(
            "gsplat backend needs CUDA; torch.cuda.is_available() is False"
        )
    try:
        import gsplat
    except Exception as exc:  # ImportError, or a broken CUDA extension build
        raise GsplatUnavailableError(f"cannot import gsplat: {exc}") from exc
    return torch, gsplat


def gsplat_available() -> bool:
    """Whether torch has CUDA and gsplat imports (does not compile gsplat's kernels)."""
    try:
        _require()
    except GsplatUnavailableError:
        return False
    return True


def render_gsplat(
    cloud: GaussianCloud,
    cameras: Sequence[Camera],
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Render ``cloud`` for cameras of one image size: [C, H, W, 4] float32 (RGB over
    ``background``, alpha = coverage). Raises GsplatUnavailableError without CUDA/gsplat, and
    RuntimeError wrapping gsplat's own failures (e.g. its JIT build)."""
    torch, gsplat = _require()
    cams = list(cameras)
    w, h = cams[0].width, cams[0].height
    c = len(cams)
    if len(cloud) == 0:
        out = np.zeros((c, h, w, 4), np.float32)
        out[..., :3] = np.asarray(background, np.float32)
        return out
    if cloud.one_sided:
        masks = [backfacing(cloud, cam.position) for cam in cams]
        if any(m.any() for m in masks):
            groups: dict[bytes, list[int]] = {}  # cameras that cull the same Gaussians
            for i, m in enumerate(masks):
                groups.setdefault(np.packbits(m).tobytes(), []).append(i)
            out = np.empty((c, h, w, 4), np.float32)
            for members in groups.values():
                sub = cloud.subset(~masks[members[0]])
                sub.facing[:] = 0  # already culled for these cameras
                out[members] = render_gsplat(sub, [cams[i] for i in members], background)
            return out
    arguments = GsplatScene(cloud, _DEVICE).arguments(cams, background)
    try:
        colors, alphas, _ = gsplat.rasterization(**arguments)
    except GsplatUnavailableError:
        raise
    except Exception as exc:
        raise RuntimeError(f"gsplat.rasterization failed: {exc}") from exc
    out = torch.cat([colors.clamp(0.0, 1.0), alphas], dim=-1)
    return out.float().cpu().numpy()


class GsplatScene:
    """A Gaussian cloud held on ``device`` for repeated gsplat renders: upload once, then one
    ``arguments`` call per frame builds only the per-view tensors (cameras, colours). A real-time
    caller keeps one; moving a 200k-Gaussian degree-3 cloud to the GPU is ~48 MB per call."""

    def __init__(self, cloud: GaussianCloud, device: torch.device | str = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.means = self._tensor(cloud.means)  # [N, 3]
        self.quats = self._tensor(cloud.quats)  # [N, 4] wxyz
        self.scales = self._tensor(cloud.scales)  # [N, 3]
        self.opacities = self._tensor(cloud.opacities)  # [N]
        self.sh = self._tensor(cloud.sh)  # [N, K, 3]

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)

    def arguments(self, cameras: Sequence[Camera], background: tuple[float, float, float]) -> dict:
        """Keyword arguments for ``gsplat.rasterization``: our conventions mapped onto gsplat's.
        Kept apart from the call so that the mapping can be checked against gsplat's pure-torch
        projection without a GPU (tests/renderers).

        means [N, 3], quats [N, 4] wxyz (gsplat normalises them too), scales [N, 3], opacities
        [N], colors [C, N, 3] per-camera RGB (SH evaluated for the direction from each camera
        centre, + 0.5, clamped to [0, 1] as in the reference; sh_degree None tells gsplat so),
        viewmats [C, 4, 4] world-to-camera in OpenCV axes (x right, y down, z forward: ours),
        Ks [C, 3, 3], backgrounds [C, 3]; one image size for all cameras (ValueError).
        """
        import torch

        from renderers.reference import eval_sh

        cams = list(cameras)
        if len({(cam.width, cam.height) for cam in cams}) != 1:
            raise ValueError("gsplat renders cameras of one image size per call")
        bg = np.tile(np.asarray(background, np.float32), (len(cams), 1))
        centres = self._tensor(np.stack([cam.position for cam in cams]))  # [C, 3]
        colors = []
        for centre in centres:
            dirs = torch.nn.functional.normalize(self.means - centre, dim=1, eps=1e-12)
            colors.append(torch.clamp(eval_sh(self.sh, dirs) + 0.5, 0.0, 1.0))
        return {
            "means": self.means,
            "quats": self.quats,
            "scales": self.scales,
            "opacities": self.opacities,
            "colors": torch.stack(colors),
            "viewmats": self._tensor(np.stack([np.asarray(cam.world_to_camera) for cam in cams])),
            "Ks": self._tensor(np.stack([cam.K for cam in cams])),
            "width": cams[0].width,
            "height": cams[0].height,
            "near_plane": NEAR_PLANE,
            "eps2d": LOW_PASS,
            "sh_degree": None,
            "backgrounds": self._tensor(bg),
            "packed": False,
            "rasterize_mode": "classic",
            "render_mode": "RGB",
        }
