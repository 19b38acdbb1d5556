"""Portrait import: one photo (or drawing) of a face becomes a rigged 2.5D Gaussian head.

Pipeline (``portrait_head``), all classical, no downloaded weights beyond the face models:

1. Image: RGB(A)/grey, uint8/uint16/float; tiny images (< 256 px) are upscaled, huge ones
   (> 2048 px) downscaled. An alpha channel with transparent pixels is used as the matte.
2. Face: ``models.face.FaceLandmarker`` detects faces (the largest is taken; several faces
   give a note) and fits the 468-point mesh and irises.
3. Crop: a window around the head (hair above, neck below) resampled so the face is
   ``face_px`` pixels tall; every pixel of this working image inside the matte becomes one
   Gaussian (so ``face_px`` sets the Gaussian count: ~45k at the default 160).
4. Matte: ``cv2.grabCut`` seeded with the mesh's face oval as sure foreground, a head-and-neck
   region (extended upwards for hair) as probable foreground and the crop border as
   background; soft edge by blurring.
5. Depth: the mesh z inside the face oval (linear interpolation of the landmarks), extended to
   hair, ears and neck by a membrane (Laplace) solve inside the matte, rounded off towards the
   silhouette and pushed back under the chin.
6. Metric frame: metres from the inter-pupil distance (0.063 m); RUB, face towards +z, eyes at
   y = 0 and x = +-0.0315, the eye surface at z = ``EYE_SURFACE_Z``: the same frame and
   keypoint transform (``kp_to_world``: 0.16 m per unit, origin (0, -0.02, 0)) as the default
   head, so canonical keypoints of portraits and the default head are comparable.
7. Gaussians: flat discs lying in the depth surface (footprint one working pixel), coloured
   from the image, opacity from the matte. Extra layers for the rig: a dark mouth interior and
   teeth behind the lips, a static copy of the lower face behind the jaw (so a stretching jaw
   never shows holes), per eye a rotating iris with a sclera-coloured fill behind it, and lid
   sheets: copies of the skin bands above and below each eye lying on a cylinder around the
   eye, which rotate down (up) over the eye to close it, carrying the lid skin and lash line.
8. Rig: ``RiggedGaussianHead`` with smooth per-Gaussian keypoint weights (Gaussian RBFs around
   the 21 keypoints, top 4), a jaw weight below the lip line, lid angles, and a pose weight
   that fades on the neck.

Left/right are the subject's (the subject's right eye is on the image left, world -x).
Raises PortraitImportError (a ValueError) with a one-line message for unusable input.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.face.keypoints import keypoints_from_landmarks
from models.heads.rig import PART_INDEX, RiggedGaussianHead, RigParams, quat_from_matrix
from models.motion_space import NUM_KEYPOINTS

if TYPE_CHECKING:
    from models.face import FaceLandmarker

__all__ = [
    "EYE_SURFACE_Z",
    "INTER_PUPIL_M",
    "KP_ORIGIN",
    "KP_SCALE",
    "PortraitImportError",
    "PortraitResult",
    "keypoint_skin_weights",
    "portrait_head",
    "read_image",
]

INTER_PUPIL_M = 0.063  # metres between the pupils of an average adult
KP_SCALE = 0.16  # metres per keypoint unit (as the default head)
KP_ORIGIN = np.array([0.0, -0.02, 0.0])  # keypoint origin in the head frame (as the default head)
EYE_SURFACE_Z = 0.078  # z of the eye surface (the default head: eye centre 0.061 + radius 0.0165)
SH_C0 = 0.28209479177387814
_MIN_SIDE = 32  # smaller images cannot hold a usable face
_UPSCALE_BELOW = 256
_MAX_SIDE = 2048
_SKIN_K = 4

# MediaPipe face-mesh contours (subject's right = lower indices = image left).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
             109)  # fmt: skip
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181,
              91, 146)  # fmt: skip
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
# per eye (right, left): upper lid corner to corner, lower lid corner to corner (outer -> inner)
EYE_UPPER = ((33, 246, 161, 160, 159, 158, 157, 173, 133),
             (263, 466, 388, 387, 386, 385, 384, 398, 362))  # fmt: skip
EYE_LOWER = ((33, 7, 163, 144, 145, 153, 154, 155, 133),
             (263, 249, 390, 373, 374, 380, 381, 382, 362))  # fmt: skip

# Keypoint RBF radii in metres (those of the default head's rig).
_KP_RADIUS = np.array([
    0.032, 0.016, 0.016, 0.024, 0.011, 0.011, 0.009, 0.024, 0.02, 0.028, 0.028,
    0.008, 0.009, 0.008, 0.011, 0.008, 0.008, 0.01, 0.011, 0.016, 0.011,
])  # fmt: skip
_UPPER_ONLY = (4, 5, 6, 12)
_LOWER_ONLY = (8, 17, 19)
_LID_KP = (11, 13, 15, 16)


class PortraitImportError(ValueError):
    """The image cannot become a head (no face, unreadable, too small); one-line message."""


@dataclass
class PortraitResult:
    """A portrait import: the rigged head, notes for the user (e.g. several faces found), the
    matte [H, W] float32 and depth [H, W] float32 (metres, RUB z) of the working crop, and
    seconds per stage."""

    head: RiggedGaussianHead
    notes: list[str] = field(default_factory=list)
    matte: np.ndarray | None = None
    depth: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ image
def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as [H, W, 3] RGB or [H, W, 4] RGBA uint8 (16-bit and grey converted).

    Raises PortraitImportError when the file is missing or not an image cv2 can decode.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise PortraitImportError(f"{p}: no such image file")
    data = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise PortraitImportError(f"{p}: not an image file that can be decoded")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img.astype(np.float64) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255)
        img = img.astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    if img.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA))
    if img.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    return np.ascontiguousarray(cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB))


def _normalise(image: object) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB uint8 [H, W, 3], alpha float32 [H, W] or None) of an array in any supported form."""
    if not isinstance(image, np.ndarray):
        raise PortraitImportError(f"image must be a numpy array, got {type(image).__name__}")
    a = image
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise PortraitImportError(f"image must be [H, W] or [H, W, 1|3|4], got {image.shape}")
    if min(a.shape[:2]) < _MIN_SIDE:
        raise PortraitImportError(
            f"image {a.shape[1]}x{a.shape[0]} is too small for a portrait (at least "
            f"{_MIN_SIDE} px a side)"
        )
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise PortraitImportError("image has NaN or infinite values")
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise PortraitImportError(f"image dtype must be uint8, uint16 or float, got {a.dtype}")
    if a.ndim == 2:
        return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2)), None
    alpha = None
    if a.shape[2] == 4:
        al = a[..., 3].astype(np.float32) / 255.0
        # An alpha channel that is opaque everywhere carries no matte.
        alpha = al if float(al.min()) < 0.5 else None
        a = a[..., :3]
    return np.ascontiguousarray(a), alpha


# ------------------------------------------------------------------------------------ helpers
def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _poly_mask(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    import cv2

    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(pts[:, :2] * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return m.astype(bool)


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """img [H, W] sampled at continuous pixel coordinates (pixel centres at +0.5)."""
    h, w = img.shape
    x = np.clip(np.asarray(u) - 0.5, 0, w - 1)
    y = np.clip(np.asarray(v) - 0.5, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), w - 2 if w > 1 else 0)
    y0 = np.minimum(np.floor(y).astype(int), h - 2 if h > 1 else 0)
    fx, fy = x - x0, y - y0
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x1] * fx * (1 - fy)
            + img[y1, x0] * (1 - fx) * fy + img[y1, x1] * fx * fy)  # fmt: skip


def _membrane(values: np.ndarray, known: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Harmonic (Laplace) interpolation of ``values`` [H, W] from the ``known`` pixels into the
    rest of ``domain`` (Neumann at its boundary). Pixels of the domain not connected to a known
    pixel get the mean known value."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    h, w = values.shape
    out = np.where(known, values, 0.0).astype(np.float64)
    unknown = domain & ~known
    n = int(unknown.sum())
    if n == 0:
        return out
    fallback = float(values[known].mean()) if known.any() else 0.0
    idx = -np.ones((h, w), np.int64)
    idx[unknown] = np.arange(n)
    ys, xs = np.nonzero(unknown)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    rhs = np.zeros(n)
    inside = domain | known
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        yy, xx = ys + dy, xs + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        yy_c, xx_c = np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)
        ok &= inside[yy_c, xx_c]
        diag += ok
        nb_unknown = ok & unknown[yy_c, xx_c]
        nb_known = ok & known[yy_c, xx_c]
        r = np.flatnonzero(nb_unknown)
        rows.append(r)
        cols.append(idx[yy_c[r], xx_c[r]])
        vals.append(-np.ones(r.size))
        rhs[nb_known] += values[yy_c[nb_known], xx_c[nb_known]]
    # A tiny pull towards the mean keeps islands without a known neighbour solvable.
    eps = 1e-4
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag + eps)
    a = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    out[unknown] = spl.spsolve(a.tocsc(), rhs + eps * fallback)
    return out


def _rasterise_mesh(p: np.ndarray, z: np.ndarray, w: int, h: int) -> np.ndarray:
    """Linear interpolation [h, w] (NaN outside) of values z [K] at points p [K, 2] (pixels)
    over their Delaunay triangulation, evaluated at pixel centres."""
    from scipy.spatial import Delaunay

    out = np.full((h, w), np.nan)
    tri = Delaunay(p)
    x0, y0 = np.maximum(np.floor(p.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(p.max(0)).astype(int), [w - 1, h - 1])
    if x1 < x0 or y1 < y0:
        return out
    yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
    q = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)
    simplex = tri.find_simplex(q)
    ok = simplex >= 0
    t = tri.transform[simplex[ok]]  # [M, 3, 2]: barycentric = T (q - r)
    bary = np.einsum("mij,mj->mi", t[:, :2, :], q[ok] - t[:, 2, :])
    lam = np.concatenate([bary, 1.0 - bary.sum(1, keepdims=True)], 1)
    val = (lam * z[tri.simplices[simplex[ok]]]).sum(1)
    flat = np.full(q.shape[0], np.nan)
    flat[ok] = val
    out[y0 : y1 + 1, x0 : x1 + 1] = flat.reshape(yy.shape)
    return out


def _frames_from_gradient(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation matrices [M, 3, 3] (columns: tangent u, tangent v, normal) of a depth surface
    z(x, y) with slopes gx = dz/dx, gy = dz/dy (RUB), and the stretch [M, 2] of a disc whose
    front projection should cover one pixel."""
    t1 = np.stack([np.ones_like(gx), np.zeros_like(gx), gx], -1)
    t1 /= np.linalg.norm(t1, axis=-1, keepdims=True)
    t2 = np.stack([np.zeros_like(gy), np.ones_like(gy), gy], -1)
    n = np.cross(t1, t2)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    t2 = np.cross(n, t1)
    stretch = np.stack([np.sqrt(1 + gx * gx), np.sqrt(1 + gy * gy)], -1)
    return np.stack([t1, t2, n], -1), np.minimum(stretch, 2.0)


def keypoint_skin_weights(
    pts: np.ndarray,
    jaw: np.ndarray,
    anchors: np.ndarray,
    active: np.ndarray,
    radius_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth skinning weights of points [M, 3] to keypoints ``anchors`` [21, 3] (same units):
    (skin_index [M, 4] uint8, skin_weight [M, 4] float32), the top 4 of normalised Gaussian RBFs
    (the default head's radii times ``radius_scale``) that fade to zero away from the face.
    Upper-face keypoints (nose, upper lip) are masked by ``1 - jaw`` [M], lower ones (chin, lower
    lip) by ``jaw``; the blink keypoints get no weight (lids have their own rig); ``active`` [M]
    scales everything (0 = not skinned)."""
    pts = np.asarray(pts, np.float64)
    radius = _KP_RADIUS * float(radius_scale)
    phi = np.empty((pts.shape[0], NUM_KEYPOINTS))
    for j in range(NUM_KEYPOINTS):  # per keypoint: no [M, 21, 3] temporary
        d2 = ((pts - anchors[j]) ** 2).sum(-1)
        phi[:, j] = np.exp(-d2 / radius[j] ** 2)
    phi[:, list(_UPPER_ONLY)] *= (1.0 - jaw)[:, None]
    phi[:, list(_LOWER_ONLY)] *= jaw[:, None]
    phi[:, list(_LID_KP)] = 0.0  # lids are rigged by their own sheets
    total = phi.sum(axis=1, keepdims=True)
    w = phi / np.maximum(total, 1.0) * active[:, None]
    order = np.argsort(-w, axis=1)[:, :_SKIN_K]
    top = np.take_along_axis(w, order, axis=1)
    keep = top.sum(axis=1, keepdims=True)
    top = np.where(keep > 0, top * (w.sum(axis=1, keepdims=True) / np.maximum(keep, 1e-12)), 0.0)
    top[top < 1e-3] = 0.0
    return order.astype(np.uint8), top.astype(np.float32)


class _Layers:
    """Gaussians collected layer by layer, concatenated at the end."""

    def __init__(self) -> None:
        self.items: list[dict[str, np.ndarray]] = []

    def add(self, part: str, means, rot, scales, colors, opacity, jaw, lid=0.0, skinnable=1.0,
            pose=None) -> None:  # fmt: skip
        m = np.asarray(means, np.float64).reshape(-1, 3)
        k = m.shape[0]
        if k == 0:
            return

        def col(x, width=None):
            a = np.asarray(x, np.float64)
            shape = (k,) if width is None else (k, width)
            return np.broadcast_to(a, shape).copy()

        self.items.append({
            "means": m, "rot": np.broadcast_to(rot, (k, 3, 3)).copy(),
            "scales": col(scales, 3), "colors": col(colors, 3), "opacities": col(opacity),
            "parts": np.full(k, PART_INDEX[part], np.uint8), "jaw": col(jaw), "lid": col(lid),
            "skinnable": col(skinnable), "pose": col(1.0 if pose is None else pose),
        })  # fmt: skip

    def concat(self) -> dict[str, np.ndarray]:
        return {key: np.concatenate([it[key] for it in self.items]) for key in self.items[0]}


# ------------------------------------------------------------------------------------ import
def portrait_head(
    image: np.ndarray | str | os.PathLike,
    *,
    landmarker: FaceLandmarker | None = None,
    name: str = "portrait",
    face_px: int = 160,
    progress: Callable[[str], None] | None = None,
) -> PortraitResult:
    """Build a rigged 2.5D Gaussian head from a portrait (module docstring).

    image: a path or an array [H, W] | [H, W, 1|3|4] (uint8, uint16 or float in [0, 1]), RGB(A).
    landmarker: a FaceLandmarker to reuse (None: one is created; raises
    ``models.face.FaceModelsMissingError`` when its model files are absent). face_px: face height
    in working pixels (Gaussian count ~ 1.8 face_px^2). progress: called with short stage names.

    Returns a PortraitResult (head, notes, matte, depth, timings). Raises PortraitImportError for
    unreadable or too small images and images without a face.
    """
    import cv2

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []

    def stage(label: str) -> None:
        now = time.perf_counter()
        timings[label] = now - stage.t  # type: ignore[attr-defined]
        stage.t = now  # type: ignore[attr-defined]

    stage.t = t_start  # type: ignore[attr-defined]
    say = progress or (lambda _msg: None)
    if not 40 <= int(face_px) <= 600:
        raise ValueError(f"face_px must lie in [40, 600], got {face_px}")
    if isinstance(image, str | os.PathLike):
        image = read_image(image)
    rgb, alpha = _normalise(image)
    h0, w0 = rgb.shape[:2]
    scale0 = 1.0
    if max(h0, w0) > _MAX_SIDE:
        scale0 = _MAX_SIDE / max(h0, w0)
    elif max(h0, w0) < _UPSCALE_BELOW:
        scale0 = _UPSCALE_BELOW / max(h0, w0)
    if scale0 != 1.0:
        size = (max(1, round(w0 * scale0)), max(1, round(h0 * scale0)))
        interp = cv2.INTER_AREA if scale0 < 1 else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, size, interpolation=interp)
        if alpha is not None:
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
        notes.append(f"image {w0}x{h0} resampled to {size[0]}x{size[1]}")

    # --- face --------------------------------------------------------------------------------
    say("finding the face")
    if landmarker is None:
        from models.face import FaceLandmarker

        landmarker = FaceLandmarker()
    dets = landmarker.detect(rgb)
    if not dets:
        raise PortraitImportError("no face found in the image (a frontal face is needed)")
    if len(dets) > 1:
        notes.append(f"{len(dets)} faces found; using the largest")
    lm = landmarker.landmarks(rgb, dets[0])
    if lm.presence < landmarker.min_presence:
        raise PortraitImportError(
            f"no face found in the image (face mesh confidence {lm.presence:.2f})"
        )
    pts = lm.points.astype(np.float64)  # [468, 3] pixels
    if lm.iris is not None:
        pupils = lm.iris[:, 0, :].astype(np.float64)  # [2, 2] right eye, left eye
        iris_r = np.linalg.norm(lm.iris[:, 1:, :] - lm.iris[:, :1, :], axis=-1).mean(axis=1)
    else:
        pupils = np.stack([pts[[33, 133], :2].mean(0), pts[[362, 263], :2].mean(0)])
        iris_r = 0.2 * np.linalg.norm(pts[[33, 362], :2] - pts[[133, 263], :2], axis=1)
    iod = float(np.linalg.norm(pupils[1] - pupils[0]))
    if iod < 4.0:
        raise PortraitImportError(f"the face is too small in the image ({iod:.1f} px between eyes)")
    stage("face")

    # --- working crop ------------------------------------------------------------------------
    say("matting")
    eye_mid = pupils.mean(0)
    ex = (pupils[1] - pupils[0]) / iod  # eye line direction (image), roll of the face
    ey = np.array([-ex[1], ex[0]])  # image "down" across the face
    chin = pts[152, :2]
    face_h = float(np.dot(chin - pts[10, :2], ey))
    if face_h <= 0:
        raise PortraitImportError("the face mesh is upside down or degenerate")
    s = face_px / face_h  # working pixels per image pixel
    # Crop window in face units: x in [-1.2, 1.2], y from 1.5 above the eyes to 1.35 below.
    cw, top, bottom = 1.2 * face_h, 1.5 * face_h, 1.35 * face_h
    ww, wh = round(2 * cw * s), round((top + bottom) * s)
    # Affine working <- image: rotate the eye line horizontal, scale, translate.
    a = np.array([[ex[0], ex[1]], [ey[0], ey[1]]]) * s
    origin = eye_mid - ex * cw - ey * top  # image point of the crop's top-left corner
    m = np.zeros((2, 3))
    m[:, :2] = a
    m[:, 2] = -a @ origin
    m_cv = m.copy()
    m_cv[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5  # cv2 samples pixel centres at integers
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    if s < 0.5:  # strong downscale: pre-blur against aliasing
        k = int(2 * round(0.5 / s) + 1)
        src = cv2.GaussianBlur(rgb, (k, k), 0.4 / s)
    else:
        src = rgb
    work = cv2.warpAffine(src, m_cv, (ww, wh), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    inside_img = cv2.warpAffine(np.ones(rgb.shape[:2], np.uint8), m_cv, (ww, wh),
                                flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)  # fmt: skip
    wp = np.empty((468, 3))
    wp[:, :2] = pts[:, :2] @ a.T + m[:, 2]
    wp[:, 2] = pts[:, 2] * s
    w_pupils = pupils @ a.T + m[:, 2]
    w_iris_r = iris_r * s
    mpp = INTER_PUPIL_M / float(np.linalg.norm(w_pupils[1] - w_pupils[0]))  # metres / pixel
    u_mid, v_eye = (w_pupils[0] + w_pupils[1]) / 2

    def to_world_xy(u, v):
        return (np.asarray(u) - u_mid) * mpp, -(np.asarray(v) - v_eye) * mpp

    # --- matte -------------------------------------------------------------------------------
    oval = _poly_mask((wh, ww), wp[list(FACE_OVAL)])
    if alpha is not None:
        matte = cv2.warpAffine(alpha, m_cv, (ww, wh), flags=cv2.INTER_LINEAR, borderValue=0.0)
        notes.append("matte from the image's alpha channel")
    else:
        matte = _grabcut_matte(work, wp, oval, inside_img, face_px)
    # The head ends on the neck: fade out the bottom of the crop.
    vv = np.arange(wh)[:, None] + 0.5
    chin_v = float(wp[152, 1])
    matte = matte * (1.0 - _smoothstep(chin_v + 0.45 * face_px, chin_v + 0.6 * face_px, vv))
    matte = matte.astype(np.float32)
    if float((matte > 0.5).sum()) < 0.3 * float(oval.sum()):
        raise PortraitImportError("could not separate the head from the background")
    stage("matte")

    # --- depth -------------------------------------------------------------------------------
    say("estimating depth")
    depth = _depth_proxy(wp, oval, matte, mpp, face_px)
    stage("depth")

    # --- Gaussians ---------------------------------------------------------------------------
    say("building Gaussians")
    head = _build_head(name, work, matte, depth, wp, w_pupils, w_iris_r, mpp, u_mid, v_eye,
                       to_world_xy, oval, face_px)  # fmt: skip
    head.metadata.update({
        "generator": "models.heads.portrait.portrait_head",
        "source_size": [int(w0), int(h0)],
        "faces_found": len(dets),
        "face_px": int(face_px),
        "metres_per_pixel": float(mpp),
        "frame": "metres, RUB (+x viewer's right, +y up, +z out of the face)",
    })  # fmt: skip
    stage("gaussians")
    timings["total"] = time.perf_counter() - t_start
    return PortraitResult(head, notes, matte, depth.astype(np.float32), timings)


def _grabcut_matte(
    work: np.ndarray, wp: np.ndarray, oval: np.ndarray, inside_img: np.ndarray, face_px: int
) -> np.ndarray:
    """Soft foreground matte [H, W] float32 in [0, 1] from cv2.grabCut seeded by the face."""
    import cv2

    h, w = oval.shape
    # grabCut at about 100 px per face height: its cost grows with the pixel count.
    f = min(1.0, 100.0 / face_px)
    sw, sh = max(8, round(w * f)), max(8, round(h * f))
    small = cv2.resize(work, (sw, sh), interpolation=cv2.INTER_AREA)
    scale = np.array([sw / w, sh / h])
    p = wp[:, :2] * scale
    mask = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    # Probable foreground: the face oval grown sideways (ears), upwards (hair) and the neck.
    oval_pts = p[list(FACE_OVAL)]
    centre = oval_pts.mean(0)
    grown = (
        (oval_pts - centre) * np.array([1.25, 1.3])
        + centre
        + np.array([0, -0.08]) * (oval_pts[:, 1].max() - oval_pts[:, 1].min())
    )
    cv2.fillPoly(mask, [np.round(grown).astype(np.int32)], cv2.GC_PR_FGD)
    # The skull and hair: a dome over the face, as wide as the grown oval, up to ~0.75 face
    # heights above the eyes (the crop's top).
    face_hgt = oval_pts[:, 1].max() - oval_pts[:, 1].min()
    top_y = oval_pts[:, 1].min()
    dome_c = (round(centre[0]), round(top_y + 0.25 * face_hgt))
    dome_ax = (round(0.5 * np.ptp(grown[:, 0])), round(0.95 * face_hgt))
    cv2.ellipse(mask, dome_c, dome_ax, 0, 180, 360, cv2.GC_PR_FGD, -1)
    chin, jaw_r, jaw_l = p[152], p[172], p[397]
    neck_w = 0.55 * abs(jaw_l[0] - jaw_r[0])
    neck = np.array([[chin[0] - neck_w / 2, chin[1] - 0.1 * neck_w],
                     [chin[0] + neck_w / 2, chin[1] - 0.1 * neck_w],
                     [chin[0] + neck_w / 2, sh], [chin[0] - neck_w / 2, sh]])  # fmt: skip
    cv2.fillPoly(mask, [np.round(neck).astype(np.int32)], cv2.GC_PR_FGD)
    # Sure foreground: the face oval shrunk a little (the mesh edge can lie on the background).
    sure = (oval_pts - oval_pts.mean(0)) * 0.85 + oval_pts.mean(0)
    cv2.fillPoly(mask, [np.round(sure).astype(np.int32)], cv2.GC_FGD)
    # Sure background: the border (not the bottom: the body continues there) and padding.
    b = max(1, round(0.02 * max(sw, sh)))
    mask[:b, :] = cv2.GC_BGD
    mask[:, :b] = cv2.GC_BGD
    mask[:, -b:] = cv2.GC_BGD
    pad = cv2.resize(inside_img.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST)
    mask[pad == 0] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    try:
        cv2.grabCut(small, mask, None, bgd, fgd, 4, cv2.GC_INIT_WITH_MASK)
        fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    except cv2.error:  # e.g. a flat image where a GMM cannot be fitted: keep the seed
        fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    # Keep the component connected to the face; fill holes (eyes, mouth on odd colours).
    n, labels = cv2.connectedComponents(fg)
    if n > 2:
        c = np.round(p[4, :2]).astype(int)
        c = np.clip(c, 0, [sw - 1, sh - 1])
        keep = labels[c[1], c[0]]
        if keep == 0:
            keep = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
        fg = (labels == keep).astype(np.uint8)
    inv = (1 - fg).astype(np.uint8)
    n, labels = cv2.connectedComponents(inv)
    border = set(np.unique(np.concatenate([labels[0], labels[:, 0], labels[:, -1]]))) - {0}
    if n > 1:
        holes = (labels > 0) & ~np.isin(labels, list(border))
        fg[holes] = 1
    big = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    k = max(3, round(0.015 * face_px) | 1)
    soft = cv2.GaussianBlur(big, (2 * k + 1, 2 * k + 1), k / 2.0)
    soft = np.clip((soft - 0.5) * 1.6 + 0.5, 0.0, 1.0)
    soft[oval] = np.maximum(soft[oval], 1.0)
    return soft.astype(np.float32)


def _depth_proxy(
    wp: np.ndarray, oval: np.ndarray, matte: np.ndarray, mpp: float, face_px: int
) -> np.ndarray:
    """Depth [H, W] float64 (metres, RUB z) over the working crop (module docstring, step 5)."""
    import cv2

    h, w = matte.shape
    # Mesh z: pixels, + away from the camera -> metres towards the viewer, eye surface at
    # EYE_SURFACE_Z (the lid centres 159, 145, 386, 374 lie on the eye surface).
    z_ref = float(wp[[159, 145, 386, 374], 2].mean())
    zm = EYE_SURFACE_Z - (wp[:, 2] - z_ref) * mpp
    # Solve on a coarse grid (about 64 px per face height), then upsample.
    f = min(1.0, 64.0 / face_px)
    cw, ch = max(8, round(w * f)), max(8, round(h * f))
    zi = _rasterise_mesh(wp[:, :2] * f, zm, cw, ch)
    oval_c = cv2.resize(oval.astype(np.uint8), (cw, ch), interpolation=cv2.INTER_NEAREST) > 0
    known = np.isfinite(zi) & oval_c
    matte_c = cv2.resize(matte, (cw, ch), interpolation=cv2.INTER_AREA) > 0.05
    domain = matte_c | known
    domain = cv2.dilate(domain.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    z = _membrane(np.where(known, zi, 0.0), known, domain)
    # Round the silhouette off: a quarter circle of radius R back from the inner surface.
    dist = cv2.distanceTransform(matte_c.astype(np.uint8), cv2.DIST_L2, 5) / f * mpp  # metres
    r = 0.05
    t = np.clip(1.0 - dist / r, 0.0, 1.0)
    fall = r * (1.0 - np.sqrt(np.maximum(1.0 - t * t, 0.0)))
    face_soft = cv2.GaussianBlur(oval_c.astype(np.float32), (0, 0), 2.0)
    z -= fall * (1.0 - face_soft)
    # Under the jaw the neck lies behind the chin.
    chin_y = float(wp[152, 1]) * f
    below = (np.arange(ch)[:, None] + 0.5 - chin_y) / f * mpp
    z -= 0.045 * _smoothstep(-0.005, 0.03, below) * (1.0 - face_soft)
    z = cv2.GaussianBlur(z.astype(np.float32), (0, 0), 1.0).astype(np.float64)
    return cv2.resize(z, (w, h), interpolation=cv2.INTER_LINEAR)


def _curve(points: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """y(x) through image points [K, 2] (sorted by x, held constant beyond the ends)."""
    order = np.argsort(points[:, 0])
    xs, ys = points[order, 0], points[order, 1]
    return lambda x: np.interp(x, xs, ys)


def _build_head(name, work, matte, depth, wp, w_pupils, w_iris_r, mpp, u_mid, v_eye, to_world_xy,
                oval, face_px) -> RiggedGaussianHead:  # fmt: skip

    h, w = matte.shape
    colors = _decontaminate(work.astype(np.float64) / 255.0, matte)
    gv, gu = np.gradient(depth)  # metres per pixel
    gx, gy = gu / mpp, -gv / mpp  # dz/dx, dz/dy in metres/metre (y up)
    sel = matte > 0.04
    vs, us = np.nonzero(sel)
    uc, vc = us + 0.5, vs + 0.5
    xw, yw = to_world_xy(uc, vc)
    zw = depth[vs, us]
    rot, stretch = _frames_from_gradient(gx[vs, us], gy[vs, us])
    sigma = 0.62 * mpp
    thin = 0.12 * mpp
    layers = _Layers()

    # Regions in the working image.
    lips_outer = _poly_mask((h, w), wp[list(LIPS_OUTER)])
    up_in = wp[list(LIPS_INNER_UPPER), :2]
    lo_in = wp[list(LIPS_INNER_LOWER), :2]
    gap = _curve((up_in + lo_in) / 2)  # the lip line, v(u)
    corner_r, corner_l = wp[61, :2], wp[291, :2]
    mouth_hw = 0.5 * abs(corner_l[0] - corner_r[0]) * mpp
    mouth_cu = 0.5 * (corner_l[0] + corner_r[0])
    eye_masks = [_eye_opening(colors, wp, e, mpp) for e in range(2)]

    def jaw_weight(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """1 on the lower lip and chin, 0 above the lip line; fades towards the jaw angles and
        on the neck (world distances)."""
        du = np.abs(u - mouth_cu) * mpp
        beyond = np.clip((du - mouth_hw) / 0.02, 0.0, 1.0)
        band = 0.003 + 0.02 * beyond
        below = (v - gap(u)) * mpp  # metres below the lip line
        wgt = _smoothstep(-0.0005, band, below)
        wgt *= 1.0 - _smoothstep(mouth_hw + 0.012, mouth_hw + 0.04, du)
        chin_below = (v - wp[152, 1]) * mpp
        wgt *= 1.0 - _smoothstep(0.0, 0.02, chin_below)
        return wgt

    def pose_weight(v: np.ndarray) -> np.ndarray:
        below = (v - wp[152, 1]) * mpp
        return 1.0 - _smoothstep(0.005, 0.09, below)

    jaw = jaw_weight(uc, vc)
    pw = pose_weight(vc)
    in_eye = eye_masks[0][vs, us] | eye_masks[1][vs, us]
    in_lips = lips_outer[vs, us]
    above_brow = vc < wp[[105, 334], 1].min() - 0.02 / mpp
    part = np.where(in_lips, PART_INDEX["lips"], PART_INDEX["skin"])
    part = np.where(~oval[vs, us] & above_brow, PART_INDEX["hair"], part)
    part = np.where(~oval[vs, us] & (vc > wp[152, 1]), PART_INDEX["neck"], part)
    opac = np.clip(matte[vs, us] * 1.02, 0.0, 0.99)

    # Eyes: iris discs rotate with gaze; the rest of the eye opening is static.
    eye_info = []
    for e in range(2):
        upper, lower = _opening_margins(eye_masks[e], wp, e)
        cu = 0.5 * (upper[0, 0] + upper[-1, 0])
        width_m = abs(upper[-1, 0] - upper[0, 0]) * mpp
        y_up, y_lo = _curve(upper), _curve(lower)
        cv_ = 0.5 * (y_up(np.array([cu]))[0] + y_lo(np.array([cu]))[0])
        radius = max(0.011, 0.55 * width_m)
        z_surf = float(_bilinear(depth, np.array([cu]), np.array([cv_]))[0])
        cx, cy = to_world_xy(cu, cv_)
        centre = np.array([float(cx), float(cy), z_surf - radius])
        eye_info.append((upper, lower, y_up, y_lo, cu, cv_, radius, centre, width_m))
    iris_sel = np.zeros(vs.size, bool)
    eye_z = zw.copy()
    for e in range(2):
        _, _, _, _, _, _, radius, centre, _ = eye_info[e]
        m_e = eye_masks[e][vs, us]
        dx, dy = xw[m_e] - centre[0], yw[m_e] - centre[1]
        eye_z[m_e] = centre[2] + np.sqrt(
            np.maximum(radius**2 - dx * dx - dy * dy, 0.25 * radius**2)
        )
        d_iris = np.hypot(uc - w_pupils[e, 0], vc - w_pupils[e, 1])
        iris_sel |= m_e & (d_iris <= 1.05 * w_iris_r[e])
    zw = np.where(in_eye, eye_z, zw)
    iris_side = np.where(xw < 0, 0, 1)
    part = np.where(iris_sel & (iris_side == 0), PART_INDEX["iris_r"], part)
    part = np.where(iris_sel & (iris_side == 1), PART_INDEX["iris_l"], part)
    eye_rot = np.eye(3)
    rot[in_eye] = eye_rot

    skinnable = (~in_eye).astype(np.float64)
    means = np.stack([xw, yw, zw], -1)
    scales = np.stack([sigma * stretch[:, 0], sigma * stretch[:, 1], np.full(vs.size, thin)], -1)
    for code in np.unique(part):
        k = part == code
        layers.add(_part_name(code), means[k], rot[k], scales[k], colors[vs[k], us[k]],
                   opac[k], jaw[k], 0.0, skinnable[k], pw[k])  # fmt: skip

    # Sclera-coloured fill behind each iris (shows where the iris moved away from).
    for e in range(2):
        m_e = eye_masks[e][vs, us]
        k = iris_sel & m_e
        white = m_e & ~iris_sel
        fill = np.median(colors[vs[white], us[white]], axis=0) if white.any() else np.full(3, 0.9)
        layers.add("skin", means[k] - [0, 0, 0.0015], eye_rot, scales[k], fill, 0.99, 0.0, 0.0,
                   0.0)  # fmt: skip

    # Mouth interior and teeth behind the lips; a static copy of the lower face behind the jaw.
    mouth = _mouth_layers(layers, wp, gap, matte, depth, colors, mpp, to_world_xy, sigma, thin)
    # Deep enough that the jaw, which also swings back as it opens, stays in front of it.
    back = (jaw > 0.02) & ~mouth[vs, us] & ~in_eye
    layers.add("skin", means[back] - [0, 0, 0.016], rot[back], scales[back] * [1.3, 1.3, 1.0],
               colors[vs[back], us[back]], np.minimum(opac[back], 0.99), 0.0, 0.0, 0.0,
               pw[back])  # fmt: skip

    # Lid sheets.
    lid_travel = []
    for e in range(2):
        lid_travel.append(_lid_layers(layers, e, eye_info[e], depth, colors, matte, mpp,
                                      to_world_xy, sigma, thin))  # fmt: skip

    g = layers.concat()
    # Keypoints: the mesh keypoints on the depth surface.
    kp_px = keypoints_from_landmarks(wp)  # [21, 3] working pixels
    kx, ky = to_world_xy(kp_px[:, 0], kp_px[:, 1])
    kz = _bilinear(depth, kp_px[:, 0], kp_px[:, 1])
    for e, (iu, il) in enumerate(((11, 13), (15, 16))):
        kz[iu] = kz[il] = eye_info[e][7][2] + eye_info[e][6] + 0.0005
    anchors = np.stack([kx, ky, kz], -1)
    kp_to_world = np.eye(4)
    kp_to_world[:3, :3] = KP_SCALE * np.diag([1.0, -1.0, -1.0])
    kp_to_world[:3, 3] = KP_ORIGIN
    x_c = (anchors - KP_ORIGIN) @ np.linalg.inv(kp_to_world[:3, :3]).T
    skin_index, skin_weight = keypoint_skin_weights(g["means"], g["jaw"], anchors, g["skinnable"])

    # Jaw hinge: in front of the ears, a little below eye level, behind the face.
    hinge = np.array([0.0, -0.014, EYE_SURFACE_Z - 0.086])
    k19 = anchors[19]
    rig = RigParams(
        eye_centers=np.stack([eye_info[0][7], eye_info[1][7]]),
        eye_radius=float(np.mean([eye_info[0][6], eye_info[1][6]])),
        eye_width=float(np.mean([eye_info[0][8], eye_info[1][8]])),
        lid_travel_upper=max(1e-3, float(np.mean([t[0] for t in lid_travel])) / KP_SCALE),
        lid_travel_lower=max(1e-3, float(np.mean([t[1] for t in lid_travel])) / KP_SCALE),
        jaw_hinge=hinge,
        jaw_gain=float(KP_SCALE / np.hypot(k19[1] - hinge[1], k19[2] - hinge[2])),
        pivot=np.array([0.0, -0.05, EYE_SURFACE_Z - 0.1]),
    )
    quats = quat_from_matrix(g["rot"]).astype(np.float32)
    # Rig sets as contiguous runs (slices in the rig): neck, rigid, skinned, jaw.
    skinned = skin_weight.sum(axis=1) > 0
    group = np.select([g["pose"] < 1.0, skinned & (g["jaw"] <= 0), skinned], [0, 2, 3], default=1)
    order = np.lexsort((g["parts"], group))
    colors_g = np.clip(g["colors"], 0.0, 1.0)
    return RiggedGaussianHead(
        name=name,
        means=g["means"][order],
        quats=quats[order],
        scales=np.maximum(g["scales"][order], 1e-6),
        opacities=np.clip(g["opacities"][order], 0.0, 1.0),
        sh=((colors_g[order] - 0.5) / SH_C0)[:, None, :],
        parts=g["parts"][order],
        keypoints=x_c,
        kp_to_world=kp_to_world,
        skin_index=skin_index[order],
        skin_weight=skin_weight[order],
        jaw_weight=g["jaw"][order],
        lid_angle=g["lid"][order],
        pose_weight=g["pose"][order],
        rig=rig,
        metadata={},
    )


def _eye_opening(colors: np.ndarray, wp: np.ndarray, e: int, mpp: float) -> np.ndarray:
    """Mask [H, W] of eye ``e``'s opening: the mesh's eye polygon grown to the pixels around it
    that do not look like skin (sclera, iris, lash line), so that the lids close over all of the
    visible eye even where the mesh contour sits inside it."""
    import cv2

    h, w = colors.shape[:2]
    poly = wp[list(EYE_UPPER[e]) + list(EYE_LOWER[e][::-1]), :2]
    mesh = _poly_mask((h, w), poly)
    ctr = poly.mean(0)
    eye_h = max(float(np.ptp(poly[:, 1])), 0.004 / mpp)
    grown = (poly - ctr) * np.array([1.12, 1.0]) + ctr
    grown[:, 1] = ctr[1] + (poly[:, 1] - ctr[1]) * 1.7 + np.sign(poly[:, 1] - ctr[1]) * 0.001 / mpp
    region = _poly_mask((h, w), grown)
    # Skin colour: a patch of the cheek under the eye.
    x0, x1 = int(poly[:, 0].min()), int(poly[:, 0].max()) + 1
    y0 = int(poly[:, 1].max() + 1.2 * eye_h)
    patch = colors[max(0, y0) : max(0, y0) + max(2, int(eye_h)), max(0, x0) : max(x0 + 1, x1)]
    if patch.size == 0:
        return mesh
    skin = np.median(patch.reshape(-1, 3), axis=0)
    diff = np.linalg.norm(colors - skin, axis=-1)
    nonskin = (diff > 0.14) & region
    nonskin = cv2.morphologyEx(nonskin.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    opening = (nonskin > 0) | mesh
    n, labels = cv2.connectedComponents(opening.astype(np.uint8))
    if n > 2:
        keep = np.unique(labels[mesh])
        opening = np.isin(labels, keep[keep > 0])
    return opening


def _opening_margins(opening: np.ndarray, wp: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower margin points [K, 2] (pixel centres, outer to inner corner) of an eye
    opening mask; the mesh contour when the mask is empty."""
    cols = np.flatnonzero(opening.any(axis=0))
    if cols.size < 3:
        return wp[list(EYE_UPPER[e]), :2], wp[list(EYE_LOWER[e]), :2]
    sub = opening[:, cols]
    top = np.argmax(sub, axis=0).astype(np.float64)
    bottom = (opening.shape[0] - 1 - np.argmax(sub[::-1], axis=0)).astype(np.float64)
    u = cols + 0.5
    # The margins lie on the pixel edges just outside the opening.
    return np.stack([u, top], -1), np.stack([u, bottom + 1.0], -1)


def _decontaminate(colors: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """Colours [H, W, 3] where the matte is partial replaced by nearby solid-foreground colours,
    so the soft edge does not carry the background's colour into the head."""
    import cv2

    # Antialiased edge pixels mix in the background even where the matte is 1: use the colours
    # of pixels at least two pixels inside the solid matte.
    solid = cv2.erode((matte > 0.97).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    if solid.sum() == 0:
        return colors
    out = colors.astype(np.float32).copy()
    num, den = out * solid[..., None], solid.copy()
    fill = np.zeros_like(out)
    have = np.zeros(matte.shape, bool)
    for sigma in (1.5, 4.0, 12.0):  # push solid colours outwards, finest first
        n = cv2.GaussianBlur(num, (0, 0), sigma)
        d = cv2.GaussianBlur(den, (0, 0), sigma)
        ok = (d > 1e-3) & ~have
        fill[ok] = n[ok] / d[ok, None]
        have |= ok
    edge = (solid == 0) & have
    out[edge] = fill[edge]
    return out.astype(np.float64)


def _part_name(code: int) -> str:
    from models.heads.rig import PARTS

    return PARTS[int(code)]


def _mouth_layers(layers, wp, gap, matte, depth, colors, mpp, to_world_xy, sigma, thin
                  ) -> np.ndarray:  # fmt: skip
    """Dark mouth interior (static), upper teeth (static) and lower teeth (on the jaw), all
    hidden behind the closed lips and uncovered as the jaw opens. Returns the region [H, W]
    bool they cover (the lips' width, from the upper lip down by the largest opening)."""
    h, w = matte.shape
    cu = 0.5 * (wp[61, 0] + wp[291, 0])
    hw = 0.5 * abs(wp[291, 0] - wp[61, 0]) + 0.002 / mpp
    vv, uu = np.mgrid[0:h, 0:w] + 0.5
    du = np.clip(np.abs(uu - cu) / hw, 0.0, 1.0)
    below = (vv - gap(uu)) * mpp  # metres below the lip line
    depth_below = 0.004 + 0.024 * np.sqrt(1.0 - du * du)
    region = (np.abs(uu - cu) < hw) & (below > -0.004) & (below < depth_below)
    vs, us = np.nonzero(region)
    uc, vc = us + 0.5, vs + 0.5
    xw, yw = to_world_xy(uc, vc)
    surf = depth[vs, us]
    b = below[vs, us]
    a = du[vs, us]
    # Darker towards the middle and the depth of the mouth.
    r = np.clip(np.hypot(a, b / 0.02), 0.0, 1.0)
    shade = 0.5 + 0.5 * r
    interior = np.stack([0.30 * shade, 0.07 * shade, 0.08 * shade], -1)
    layers.add("mouth", np.stack([xw, yw, surf - 0.02], -1), np.eye(3),
               [1.4 * sigma, 1.4 * sigma, thin], interior, 0.99, 0.0, 0.0, 0.0)  # fmt: skip
    # Teeth: a row under the upper lip and one above the lower lip, narrower than the mouth.
    tooth = 0.84 - 0.25 * a**2
    teeth = np.stack([tooth, 0.97 * tooth, 0.9 * tooth], -1)
    up = (b > -0.0035) & (b < 0.0025) & (a < 0.72)
    layers.add("teeth_upper", np.stack([xw[up], yw[up], surf[up] - 0.010], -1), np.eye(3),
               [sigma, sigma, thin], teeth[up], 0.97, 0.0, 0.0, 0.0)  # fmt: skip
    lo = (b > -0.002) & (b < 0.003) & (a < 0.65)
    layers.add("teeth_lower", np.stack([xw[lo], yw[lo], surf[lo] - 0.009], -1), np.eye(3),
               [sigma, sigma, thin], 0.92 * teeth[lo], 0.97, 1.0, 0.0, 0.0)  # fmt: skip
    return region


def _lid_layers(layers, e, info, depth, colors, matte, mpp, to_world_xy, sigma, thin
                ) -> tuple[float, float]:  # fmt: skip
    """Upper and lower lid sheets of eye ``e`` (module docstring); returns the travel (metres)
    of the upper and lower lid margins at the eye centre."""
    upper, _lower, y_up, y_lo, cu, cv_, radius, centre, _width = info
    h, w = matte.shape
    r_lid = radius + 0.0006
    u0 = int(np.floor(upper[:, 0].min() - 0.001 / mpp))
    u1 = int(np.ceil(upper[:, 0].max() + 0.001 / mpp))
    cols = np.arange(max(0, u0), min(w, u1 + 1))
    uc = cols + 0.5
    vu, vl = y_up(uc), y_lo(uc)  # image rows of the margins (v grows downwards)
    vk = vl - 0.32 * (vl - vu)  # the closure line, nearer the lower lid
    _, yc = to_world_xy(cu, cv_)

    def elevation(v):
        _, yy = to_world_xy(0.0, v)
        return np.arcsin(np.clip((yy - yc) / r_lid, -0.97, 0.97))

    result = []
    for which in ("upper", "lower"):
        margin = vu if which == "upper" else vl
        # Each margin closes 0.4 mm past the closure line, so the two lids overlap.
        overshoot = (0.0004 / mpp) * (1.0 if which == "upper" else -1.0)
        angle = elevation(margin) - elevation(vk + overshoot)  # > 0 upper (down), < 0 lower
        travel_px = np.abs(vk - margin)
        band = travel_px + 0.0015 / mpp
        # Rows of the band: above the upper margin / below the lower margin.
        rows_max = int(np.ceil(band.max())) + 1
        dv = np.arange(rows_max) + 0.5
        if which == "upper":
            vv = margin[None, :] - dv[:, None] + 0.5
        else:
            vv = margin[None, :] + dv[:, None] - 0.5
        ok = dv[:, None] <= band[None, :]
        uu = np.broadcast_to(uc[None, :], vv.shape)
        ang = np.broadcast_to(angle[None, :], vv.shape)
        vv, uu, ang = vv[ok], uu[ok], ang[ok]
        inside = (vv > 0) & (vv < h)
        vv, uu, ang = vv[inside], uu[inside], ang[inside]
        xi = np.clip(uu.astype(int), 0, w - 1)
        yi = np.clip(vv.astype(int), 0, h - 1)
        xw, yw = to_world_xy(uu, vv)
        phi = np.arcsin(np.clip((yw - yc) / r_lid, -0.97, 0.97))
        zw = centre[2] + r_lid * np.cos(phi)
        # Discs tangent to the cylinder: normal (0, sin phi, cos phi).
        c, s_ = np.cos(phi), np.sin(phi)
        rot = np.zeros((vv.size, 3, 3))
        rot[:, 0, 0] = 1.0
        rot[:, 1, 1], rot[:, 2, 1] = c, -s_
        rot[:, 1, 2], rot[:, 2, 2] = s_, c
        stretch = 1.0 / np.maximum(c, 0.3)
        scales = np.stack([np.full(vv.size, sigma), sigma * stretch, np.full(vv.size, thin)], -1)
        part = f"lid_{which}_{'r' if e == 0 else 'l'}"
        layers.add(part, np.stack([xw, yw, zw], -1), rot, scales, colors[yi, xi],
                   np.minimum(0.99, 1.02 * matte[yi, xi]), 0.0, ang, 0.0)  # fmt: skip
        mid = int(np.argmin(np.abs(uc - cu)))
        result.append(float(travel_px[mid] * mpp))
    return result[0], result[1]
