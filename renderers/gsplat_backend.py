"""The render() call through gsplat's CUDA rasteriser (``gsplat.rasterization``).

gsplat and torch are imported lazily: this module imports on any machine, and raises
GsplatUnavailableError (naming the reason) when CUDA or gsplat is missing. gsplat's classic mode
uses the same rules as renderers.reference (EWA with eps2d = 0.3 px^2, pixel centres at +0.5,
alpha = min(0.99, ...), 1/255 cut, T < 1e-4 termination) except that it clips Gaussians at
3 sigma (tile assignment) and clamps SH colour only below 0, so tiny differences remain.
One-sided Gaussians facing away from a camera (``renderers.gaussians.backfacing``) are dropped
on the CPU before rasterisation, one gsplat call per camera when the masks differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from renderers.gaussians import GaussianCloud, backfacing

if TYPE_CHECKING:
    from renderers.camera import Camera

__all__ = ["GsplatUnavailableError", "gsplat_available", "render_gsplat"]


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
    dev = torch.device("cuda")

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(dev)

    viewmats = t(np.stack([np.asarray(c.world_to_camera) for c in cams]))  # OpenCV w2c [C, 4, 4]
    ks = t(np.stack([c.K for c in cams]))
    c = len(cams)
    bg = t(np.broadcast_to(np.asarray(background, np.float32), (c, 3)))
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
    try:
        colors, alphas, _ = gsplat.rasterization(
            means=t(cloud.means),
            quats=t(cloud.quats),
            scales=t(cloud.scales),
            opacities=t(cloud.opacities),
            colors=t(cloud.sh),
            viewmats=viewmats,
            Ks=ks,
            width=w,
            height=h,
            near_plane=0.01,
            eps2d=0.3,
            sh_degree=cloud.sh_degree,
            backgrounds=bg,
            packed=False,
            rasterize_mode="classic",
            render_mode="RGB",
        )
    except GsplatUnavailableError:
        raise
    except Exception as exc:
        raise RuntimeError(f"gsplat.rasterization failed: {exc}") from exc
    out = torch.cat([colors.clamp(0.0, 1.0), alphas], dim=-1)
    return out.float().cpu().numpy()
