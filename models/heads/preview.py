"""A small numpy Gaussian splatter for head thumbnails and rig tests.

Not the product's renderer (that is ``renderers``, which models may not import): this one exists
so a head file can carry a thumbnail and tests can measure what is visible, without GL or torch.
It is the usual 3DGS image formation: EWA projection of each Gaussian (pinhole camera, +0.3 px^2
low-pass), depth sort, front-to-back alpha compositing per 16x16 tile. Slow (seconds for 200k
Gaussians at 512 px) but exact enough to judge a look.
"""

from __future__ import annotations

import numpy as np

from models.heads.rig import GaussianArrays

__all__ = ["SH_C0", "colors_from_sh", "encode_png", "orbit_view", "render_preview"]

SH_C0 = 0.28209479177387814
_TILE = 16


def colors_from_sh(sh: np.ndarray) -> np.ndarray:
    """Band-0 colour [N, 3] in [0, 1] of SH coefficients [N, K, 3]."""
    return np.clip(0.5 + SH_C0 * np.asarray(sh)[:, 0, :], 0.0, 1.0)


def orbit_view(
    target: np.ndarray, distance: float, yaw_deg: float = 0.0, pitch_deg: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Camera (position [3], rotation [3, 3] world->camera rows right/up/back) on an orbit.

    yaw > 0 moves the camera to the viewer's right (+x), pitch > 0 above; it looks at target.
    """
    y, p = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    back = np.array([np.sin(y) * np.cos(p), np.sin(p), np.cos(y) * np.cos(p)])
    pos = np.asarray(target, dtype=np.float64) + distance * back
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    return pos, np.stack([right, up, back])


def _covariances(quats: np.ndarray, scales: np.ndarray) -> np.ndarray:
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    w, x, y, z = q.T
    r = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    ).reshape(-1, 3, 3)  # fmt: skip
    m = r * scales[:, None, :]
    return m @ np.swapaxes(m, 1, 2)  # [N, 3, 3]


def render_preview(
    g: GaussianArrays,
    width: int = 256,
    height: int = 256,
    *,
    camera: tuple[np.ndarray, np.ndarray] | None = None,
    fov_deg: float = 20.0,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    features: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render Gaussians to (image [H, W, F] float32, alpha [H, W] float32).

    camera: (position [3], rotation [3, 3]) as from :func:`orbit_view` (default: 0.7 m in front
    of the origin). features [N, F] are composited instead of the band-0 colours (e.g. one-hot
    part labels to measure what is visible); the background is added only to colours.
    """
    if camera is None:
        camera = orbit_view(np.zeros(3), 0.7)
    pos, rot = camera
    means = np.asarray(g.means, dtype=np.float64)
    feats = colors_from_sh(g.sh) if features is None else np.asarray(features, dtype=np.float64)
    pc = (means - pos) @ rot.T  # camera right/up/back
    depth = -pc[:, 2]
    f = 0.5 * height / np.tan(np.deg2rad(fov_deg) / 2)
    keep = depth > 1e-3
    u = 0.5 * width + f * pc[:, 0] / np.where(keep, depth, 1.0)
    v = 0.5 * height - f * pc[:, 1] / np.where(keep, depth, 1.0)
    cov = rot @ _covariances(np.asarray(g.quats, np.float64), np.asarray(g.scales, np.float64))
    cov = cov @ rot.T
    d = np.where(keep, depth, 1.0)
    j = np.zeros((len(means), 2, 3))
    j[:, 0, 0] = f / d
    j[:, 0, 2] = f * pc[:, 0] / d**2
    j[:, 1, 1] = -f / d
    j[:, 1, 2] = -f * pc[:, 1] / d**2
    c2 = j @ cov @ np.swapaxes(j, 1, 2)
    a, b, c = c2[:, 0, 0] + 0.3, c2[:, 0, 1], c2[:, 1, 1] + 0.3
    det = a * c - b * b
    keep &= det > 0
    det = np.where(keep, det, 1.0)
    conic = np.stack([c / det, -b / det, a / det], -1)
    radius = 3.0 * np.sqrt(0.5 * (a + c) + np.sqrt(np.maximum(0.25 * (a - c) ** 2 + b * b, 0)))
    opac = np.asarray(g.opacities, dtype=np.float64)
    keep &= (u + radius > 0) & (u - radius < width) & (v + radius > 0) & (v - radius < height)
    keep &= opac > 1.0 / 255
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(depth[idx], kind="stable")]
    tw, th = -(-width // _TILE), -(-height // _TILE)
    tx0 = np.clip(((u[idx] - radius[idx]) // _TILE).astype(int), 0, tw - 1)
    tx1 = np.clip(((u[idx] + radius[idx]) // _TILE).astype(int), 0, tw - 1)
    ty0 = np.clip(((v[idx] - radius[idx]) // _TILE).astype(int), 0, th - 1)
    ty1 = np.clip(((v[idx] + radius[idx]) // _TILE).astype(int), 0, th - 1)
    # Expand (gaussian, tile) pairs, keeping depth order inside each tile (stable sort by tile).
    nx, ny = tx1 - tx0 + 1, ty1 - ty0 + 1
    counts = nx * ny
    owner = np.repeat(np.arange(idx.size), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    tile = (ty0[owner] + local // nx[owner]) * tw + tx0[owner] + local % nx[owner]
    order = np.argsort(tile, kind="stable")
    tile, owner = tile[order], idx[owner[order]]
    bounds = np.searchsorted(tile, np.arange(tw * th + 1))
    nf = feats.shape[1]
    out = np.zeros((th * _TILE, tw * _TILE, nf))
    alpha_out = np.zeros((th * _TILE, tw * _TILE))
    py, px = np.mgrid[0:_TILE, 0:_TILE]
    for t in range(tw * th):
        sel = owner[bounds[t] : bounds[t + 1]]
        if sel.size == 0:
            continue
        oy, ox = (t // tw) * _TILE, (t % tw) * _TILE
        dx = (ox + px.ravel() + 0.5)[:, None] - u[sel][None, :]  # [P, G]
        dy = (oy + py.ravel() + 0.5)[:, None] - v[sel][None, :]
        cs = conic[sel]
        power = -0.5 * (cs[:, 0] * dx * dx + cs[:, 2] * dy * dy) - cs[:, 1] * dx * dy
        al = np.minimum(0.99, opac[sel] * np.exp(np.minimum(power, 0.0)))
        al[al < 1.0 / 255] = 0.0
        trans = np.cumprod(1.0 - al, axis=1)
        wgt = al * np.concatenate([np.ones((al.shape[0], 1)), trans[:, :-1]], axis=1)
        out[oy : oy + _TILE, ox : ox + _TILE] = (wgt @ feats[sel]).reshape(_TILE, _TILE, nf)
        alpha_out[oy : oy + _TILE, ox : ox + _TILE] = (1.0 - trans[:, -1]).reshape(_TILE, _TILE)
    out, alpha_out = out[:height, :width], alpha_out[:height, :width]
    if features is None:
        out = out + (1.0 - alpha_out)[..., None] * np.asarray(background)
    return out.astype(np.float32), alpha_out.astype(np.float32)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an image [H, W, 3] (uint8, or float in [0, 1]); zlib only, no imaging lib."""
    import struct
    import zlib

    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"encode_png: expected [H, W, 3], got {img.shape}")
    h, w = img.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
