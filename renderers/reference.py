"""Pure-torch CPU reference renderers: the oracle every fast path (GL, gsplat) is tested against.

Gaussians (3DGS rules, made tiling-independent):
- camera-space means; Gaussians with z < ``near`` (0.01 m) are culled, and so are one-sided
  Gaussians facing away from the camera (``renderers.gaussians.backfacing``: cos(outward normal,
  mean - camera centre) > 0.05);
- colour from SH (degree 0..3, the 3DGS constants and basis order) evaluated for the world-space
  direction from the camera centre to the mean, ``clamp(0.5 + sum, 0, 1)``;
- 2D covariance ``J W Sigma W^T J^T + 0.3 I`` (px^2), J the Jacobian of the pinhole projection at
  the mean, W the world-to-camera rotation. As in 3DGS, x/z and y/z entering J are clamped to the
  frustum widened by 15% of the image on each side (``[(-0.15 w - cx) / fx, (1.15 w - cx) / fx]``,
  the same as 3DGS's 1.3 tan(fov / 2) for a centred camera);
- per pixel centre p = (j + 0.5, i + 0.5), d = p - mean2d,
  ``alpha = min(0.99, opacity * exp(-0.5 d^T Sigma2d^-1 d))``; alpha < 1/255 contributes nothing.
  Unlike 3DGS's tile-dependent cut-off at 3 sigma, every Gaussian is evaluated wherever its alpha
  can reach 1/255: the ellipse ``d^T Sigma2d^-1 d <= 2 ln(255 opacity)`` (at most ~3.33 sigma).
  A GL quad must cover that ellipse to match this oracle;
- front-to-back in order of camera-space z of the means (stable sort), T starts at 1; a Gaussian
  whose contribution would bring T below 1e-4 ends the pixel and is not added (3DGS);
- output rgb = sum(c alpha T) + T * background, alpha = 1 - T.

MPI: planes are premultiplied, warped into the target camera by the plane-induced homography
(bilinear, ``grid_sample(align_corners=False)``, transparent outside the plane image), and
composited back to front with premultiplied "over"; output rgb is composited over ``background``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from renderers.camera import Camera
from renderers.gaussians import GaussianCloud, backfacing

if TYPE_CHECKING:
    import torch

    from renderers.mpi import MPI, ImPortraitMPI

__all__ = [
    "SH_C1",
    "SH_C2",
    "SH_C3",
    "eval_sh",
    "plane_homography",
    "project_gaussians",
    "render_gaussians_reference",
    "render_mpi_reference",
]

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)

NEAR_PLANE = 0.01
LOW_PASS = 0.3
MIN_ALPHA = 1.0 / 255.0
MAX_ALPHA = 0.99
MIN_TRANSMITTANCE = 1e-4
_TILE = 16
_CHUNK = 64


def eval_sh(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Sum of SH bands, 3DGS order and constants: sh [N, K, 3], unit dirs [N, 3] -> [N, 3]
    (without the +0.5 offset and clamp)."""
    k = sh.shape[1]
    result = SH_C0 * sh[:, 0]
    if k > 1:
        x, y, z = dirs[:, 0:1], dirs[:, 1:2], dirs[:, 2:3]
        result = result - SH_C1 * y * sh[:, 1] + SH_C1 * z * sh[:, 2] - SH_C1 * x * sh[:, 3]
        if k > 4:
            xx, yy, zz = x * x, y * y, z * z
            xy, yz, xz = x * y, y * z, x * z
            result = (
                result
                + SH_C2[0] * xy * sh[:, 4]
                + SH_C2[1] * yz * sh[:, 5]
                + SH_C2[2] * (2.0 * zz - xx - yy) * sh[:, 6]
                + SH_C2[3] * xz * sh[:, 7]
                + SH_C2[4] * (xx - yy) * sh[:, 8]
            )
            if k > 9:
                result = (
                    result
                    + SH_C3[0] * y * (3.0 * xx - yy) * sh[:, 9]
                    + SH_C3[1] * xy * z * sh[:, 10]
                    + SH_C3[2] * y * (4.0 * zz - xx - yy) * sh[:, 11]
                    + SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * sh[:, 12]
                    + SH_C3[4] * x * (4.0 * zz - xx - yy) * sh[:, 13]
                    + SH_C3[5] * z * (xx - yy) * sh[:, 14]
                    + SH_C3[6] * x * (xx - 3.0 * yy) * sh[:, 15]
                )
    return result


def project_gaussians(
    cloud: GaussianCloud,
    camera: Camera,
    near: float = NEAR_PLANE,
    dtype: torch.dtype | None = None,
    backface_culling: bool = True,
) -> dict[str, torch.Tensor]:
    """Per-Gaussian screen-space quantities of the visible (z >= near and, with
    ``backface_culling``, not a one-sided Gaussian facing away) Gaussians, depth-sorted.

    Returns tensors: index [M] (into the cloud), mean2d [M, 2] (continuous pixels), depth [M],
    cov2d [M, 2, 2] (px^2, low-pass included), conic [M, 2, 2] (its inverse), color [M, 3]
    (SH evaluated, clamped to [0, 1]), opacity [M].
    """
    import torch

    dtype = dtype or torch.float32
    # Geometry in float64: the covariance product loses precision in float32 for tiny Gaussians.
    f64 = torch.float64
    means = torch.from_numpy(cloud.means).to(f64)
    w2c = torch.from_numpy(np.array(camera.world_to_camera)).to(f64)
    rot, trans = w2c[:3, :3], w2c[:3, 3]
    pc = means @ rot.T + trans
    visible = pc[:, 2] >= near
    if backface_culling and cloud.one_sided:
        visible &= ~torch.from_numpy(backfacing(cloud, camera.position))
    idx = torch.nonzero(visible).squeeze(1)
    pc = pc[idx]
    z = pc[:, 2]
    order = torch.sort(z, stable=True).indices
    idx, pc, z = idx[order], pc[order], z[order]

    cov3 = torch.from_numpy(cloud.covariances()).to(f64)[idx]  # [M, 3, 3] world
    w, h = camera.width, camera.height
    lim_x = ((-0.15 * w - camera.cx) / camera.fx, (1.15 * w - camera.cx) / camera.fx)
    lim_y = ((-0.15 * h - camera.cy) / camera.fy, (1.15 * h - camera.cy) / camera.fy)
    tx = torch.clamp(pc[:, 0] / z, *lim_x) * z
    ty = torch.clamp(pc[:, 1] / z, *lim_y) * z
    jac = torch.zeros((len(idx), 2, 3), dtype=f64)
    jac[:, 0, 0] = camera.fx / z
    jac[:, 0, 2] = -camera.fx * tx / (z * z)
    jac[:, 1, 1] = camera.fy / z
    jac[:, 1, 2] = -camera.fy * ty / (z * z)
    t = jac @ rot
    cov2 = t @ cov3 @ t.transpose(1, 2)
    cov2 = cov2 + LOW_PASS * torch.eye(2, dtype=f64)
    det = cov2[:, 0, 0] * cov2[:, 1, 1] - cov2[:, 0, 1] * cov2[:, 1, 0]
    conic = (
        torch.stack(
            [
                torch.stack([cov2[:, 1, 1], -cov2[:, 0, 1]], -1),
                torch.stack([-cov2[:, 1, 0], cov2[:, 0, 0]], -1),
            ],
            -2,
        )
        / det[:, None, None]
    )
    mean2d = torch.stack(
        [camera.fx * pc[:, 0] / z + camera.cx, camera.fy * pc[:, 1] / z + camera.cy], -1
    )

    campos = torch.from_numpy(camera.position).to(f64)
    dirs = means[idx] - campos
    dirs = dirs / dirs.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sh = torch.from_numpy(cloud.sh).to(f64)[idx]
    color = torch.clamp(eval_sh(sh, dirs) + 0.5, 0.0, 1.0)
    opacity = torch.from_numpy(cloud.opacities).to(f64)[idx]
    out = {
        "index": idx,
        "mean2d": mean2d,
        "depth": z,
        "cov2d": cov2,
        "conic": conic,
        "color": color,
        "opacity": opacity,
    }
    return {k: (v if k == "index" else v.to(dtype)) for k, v in out.items()}


def render_gaussians_reference(
    cloud: GaussianCloud,
    camera: Camera,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    near: float = NEAR_PLANE,
    dtype: torch.dtype | None = None,
    backface_culling: bool = True,
) -> np.ndarray:
    """Render ``cloud`` seen by ``camera``: [H, W, 4] float32 numpy, RGB composited over
    ``background``, alpha = accumulated opacity (1 - final transmittance). Rules: module docstring.

    Works on all 16x16 pixel tiles at once, each against the Gaussians whose alpha >= 1/255
    ellipse bounding box touches the tile (memory ~ tiles x Gaussians: meant for test-sized
    images and clouds). dtype: compositing precision (float32 default; float64 for tighter
    comparisons). backface_culling: False draws one-sided Gaussians from both sides.
    """
    import torch

    dtype = dtype or torch.float32
    h, w = camera.height, camera.width
    bg = torch.tensor(background, dtype=dtype).reshape(3)
    image = torch.zeros((h, w, 3), dtype=dtype)
    trans_img = torch.ones((h, w), dtype=dtype)
    g = (
        project_gaussians(cloud, camera, near, torch.float64, backface_culling)
        if len(cloud)
        else None
    )
    if g is not None and len(g["index"]):
        opacity = g["opacity"]
        # Mahalanobis radius^2 beyond which alpha < 1/255 (no extent when opacity < 1/255).
        r2 = 2.0 * torch.log(torch.clamp(opacity * 255.0, min=1.0))
        half = torch.sqrt(r2[:, None] * torch.stack([g["cov2d"][:, 0, 0], g["cov2d"][:, 1, 1]], -1))
        lo = g["mean2d"] - half  # [M, 2] (u, v) bounding box of the alpha >= 1/255 ellipse
        hi = g["mean2d"] + half
        keep = (opacity >= MIN_ALPHA) & (hi[:, 0] >= 0) & (lo[:, 0] <= w) & (hi[:, 1] >= 0)
        keep &= lo[:, 1] <= h
        sel = torch.nonzero(keep).squeeze(1)  # preserves the depth order
        mean2d = g["mean2d"][sel].to(dtype)
        conic = g["conic"][sel].to(dtype)
        color = g["color"][sel].to(dtype)
        opac = opacity[sel].to(dtype)
        lo, hi = lo[sel], hi[sel]
        nty, ntx = -(-h // _TILE), -(-w // _TILE)
        t0 = torch.arange(nty * ntx)
        tile_x = (t0 % ntx * _TILE).to(torch.float64)[:, None]
        tile_y = (t0 // ntx * _TILE).to(torch.float64)[:, None]
        # [T, M]: Gaussian m's bounding box touches tile t (columns stay in depth order).
        hit = (hi[None, :, 0] >= tile_x) & (lo[None, :, 0] <= tile_x + _TILE)
        hit &= (hi[None, :, 1] >= tile_y) & (lo[None, :, 1] <= tile_y + _TILE)
        counts = hit.sum(1)
        gmax = int(counts.max())
        if gmax:
            # Per tile, the indices of its Gaussians first (stable: depth order kept), padded.
            order = torch.sort((~hit).to(torch.uint8), dim=1, stable=True).indices[:, :gmax]
            valid = torch.arange(gmax)[None] < counts[:, None]  # [T, G]
            vv, uu = torch.meshgrid(
                torch.arange(_TILE, dtype=dtype) + 0.5,
                torch.arange(_TILE, dtype=dtype) + 0.5,
                indexing="ij",
            )
            local = torch.stack([uu.reshape(-1), vv.reshape(-1)], -1)  # [P, 2]
            pix = local[None] + torch.cat([tile_x, tile_y], 1).to(dtype)[:, None]  # [T, P, 2]
            rgb, trans = _composite_tiles(pix, order, valid, mean2d, conic, color, opac)
            pad_h, pad_w = nty * _TILE, ntx * _TILE
            rgb = rgb.reshape(nty, ntx, _TILE, _TILE, 3).permute(0, 2, 1, 3, 4)
            trans = trans.reshape(nty, ntx, _TILE, _TILE).permute(0, 2, 1, 3)
            image = rgb.reshape(pad_h, pad_w, 3)[:h, :w]
            trans_img = trans.reshape(pad_h, pad_w)[:h, :w]
    out = torch.empty((h, w, 4), dtype=torch.float32)
    out[..., :3] = (image + trans_img[..., None] * bg).to(torch.float32)
    out[..., 3] = (1.0 - trans_img).to(torch.float32)
    return out.numpy()


def _composite_tiles(
    pix: torch.Tensor,
    order: torch.Tensor,
    valid: torch.Tensor,
    mean2d: torch.Tensor,
    conic: torch.Tensor,
    color: torch.Tensor,
    opac: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back compositing for all tiles at once.

    pix [T, P, 2] pixel centres; order [T, G] depth-sorted Gaussian indices per tile, valid
    [T, G] marks the real ones (the rest is padding). Returns (colour [T, P, 3], final
    transmittance [T, P]). Works in chunks of Gaussians and stops once every pixel is done (the
    3DGS early exit), which bounds the cost of dense heads.
    """
    import torch

    t, p = pix.shape[:2]
    rgb = torch.zeros((t, p, 3), dtype=pix.dtype)
    trans = torch.ones((t, p), dtype=pix.dtype)
    done = torch.zeros((t, p), dtype=torch.bool)
    counts = valid.sum(1)
    for start in range(0, order.shape[1], _CHUNK):
        # Only tiles that still have Gaussians in this chunk and pixels not yet done.
        act = torch.nonzero((counts > start) & ~done.all(1)).squeeze(1)
        if len(act) == 0:
            break
        g = order[act, start : start + _CHUNK]  # [A, C]
        d = pix[act][:, :, None, :] - mean2d[g][:, None]  # [A, P, C, 2]
        c = conic[g][:, None]  # [A, 1, C, 2, 2]
        power = -0.5 * (
            c[..., 0, 0] * d[..., 0] ** 2
            + c[..., 1, 1] * d[..., 1] ** 2
            + (c[..., 0, 1] + c[..., 1, 0]) * d[..., 0] * d[..., 1]
        )
        alpha = torch.clamp(opac[g][:, None] * torch.exp(power), max=MAX_ALPHA)
        keep = (alpha >= MIN_ALPHA) & valid[act, None, start : start + _CHUNK]
        alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
        # T never increases, so "stop before the Gaussian that would drop T below 1e-4" keeps
        # exactly the Gaussians after which the unmasked running T is still >= 1e-4; a pixel that
        # stopped in an earlier chunk takes nothing more.
        tr, dn = trans[act], done[act]
        t_run = tr[..., None] * torch.cumprod(1.0 - alpha, dim=-1)
        live = (t_run >= MIN_TRANSMITTANCE) & ~dn[..., None]
        done[act] = dn | ~live[..., -1]
        alpha = torch.where(live, alpha, torch.zeros_like(alpha))
        t_after = tr[..., None] * torch.cumprod(1.0 - alpha, dim=-1)
        t_before = torch.cat([tr[..., None], t_after[..., :-1]], -1)
        rgb[act] = rgb[act] + torch.bmm(alpha * t_before, color[g])
        trans[act] = t_after[..., -1]
    return rgb, trans


def plane_homography(reference: Camera, target: Camera, depth: float) -> np.ndarray:
    """[3, 3] float64 mapping homogeneous TARGET pixels (u, v, 1) to REFERENCE pixels for the
    plane z = depth of the reference camera (normal (0, 0, 1) in its frame).

    With [R | t] the reference-to-target transform, a plane point maps as
    X_t = (R + t n^T / depth) X_r, so H_ref<-tgt = K_r (R + t n^T / depth)^-1 K_t^-1.
    """
    rel = target.world_to_camera @ np.linalg.inv(reference.world_to_camera)
    n = np.array([0.0, 0.0, 1.0])
    m = rel[:3, :3] + np.outer(rel[:3, 3], n) / depth
    return reference.K @ np.linalg.inv(m) @ np.linalg.inv(target.K)


def render_mpi_reference(
    mpi: MPI | ImPortraitMPI,
    camera: Camera,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Render an MPI (either layout) seen by ``camera``: [H, W, 4] float32 numpy, RGB over
    ``background``, alpha = accumulated coverage.

    Each plane (premultiplied) is sampled bilinearly at the reference pixel that the plane
    homography assigns to each target pixel centre; samples outside the plane image, or where the
    plane is behind the target camera or seen edge-on, are transparent. Composited back to front.
    """
    import torch
    import torch.nn.functional as F

    from renderers.mpi import as_mpi

    mpi = as_mpi(mpi)
    ref = mpi.camera
    h, w = camera.height, camera.width
    planes = torch.from_numpy(mpi.premultiplied()).permute(0, 3, 1, 2)  # [D, 4, Hr, Wr]
    vv, uu = torch.meshgrid(
        torch.arange(h, dtype=torch.float64) + 0.5,
        torch.arange(w, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([uu, vv, torch.ones_like(uu)], -1).reshape(-1, 3)  # [P, 3]
    # Target pixel rays in target camera coordinates, to know where a plane lies in front.
    rel = camera.world_to_camera @ np.linalg.inv(ref.world_to_camera)
    rays = pix @ torch.from_numpy(np.linalg.inv(camera.K)).T  # [P, 3], z = 1
    grids, valid = [], []
    for depth in mpi.depths:
        hm = torch.from_numpy(plane_homography(ref, camera, float(depth)))
        q = pix @ hm.T
        # Ray parameter where the target ray meets the plane: n_t . X = d_t, with the plane's
        # normal and offset expressed in the target frame.
        n_t = torch.from_numpy(rel[:3, :3] @ np.array([0.0, 0.0, 1.0]))
        d_t = float(depth) + float(n_t @ torch.from_numpy(rel[:3, 3]))
        denom = rays @ n_t
        s = d_t / torch.where(denom.abs() < 1e-12, torch.full_like(denom, 1e-12), denom)
        ok = (denom.abs() >= 1e-12) & (s > 0) & (q[:, 2].abs() > 1e-12)
        uv = q[:, :2] / torch.where(ok, q[:, 2], torch.ones_like(q[:, 2]))[:, None]
        gx = 2.0 * uv[:, 0] / ref.width - 1.0
        gy = 2.0 * uv[:, 1] / ref.height - 1.0
        grid = torch.stack([gx, gy], -1)
        grid = torch.where(ok[:, None], grid, torch.full_like(grid, -4.0))  # off-image: clear
        grids.append(grid.reshape(h, w, 2))
        valid.append(ok.reshape(h, w))
    grid = torch.stack(grids).to(torch.float32)
    warped = F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped = warped * torch.stack(valid)[:, None].to(warped.dtype)  # [D, 4, H, W]
    acc = torch.zeros((4, h, w), dtype=torch.float32)
    for d in range(mpi.num_planes - 1, -1, -1):
        layer = warped[d]
        acc = layer + acc * (1.0 - layer[3:4])
    out = torch.empty((h, w, 4), dtype=torch.float32)
    bg = torch.tensor(background, dtype=torch.float32).reshape(3, 1, 1)
    out[..., :3] = (acc[:3] + (1.0 - acc[3:4]) * bg).permute(1, 2, 0)
    out[..., 3] = acc[3]
    return out.numpy()
