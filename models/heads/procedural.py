"""The default head: a stylised character built from analytic surfaces and sampled with Gaussians.

Every surface is a signed distance function (SDF) or a parametric patch. Surfaces are sampled
with flat Gaussian discs lying in the tangent plane (two in-plane scales, one thin one along the
normal; hair and brows are stretched along their flow). Colours are baked: albedo regions, a soft
key light with wrap (a subsurface-ish warm terminator), a cool fill, a sky term and ambient
occlusion estimated from the scene SDF, which darkens eye sockets, nostrils, the mouth line, ears
and hair grooves. The build is deterministic for a seed.

Head frame: metres, RUB (+x viewer's right, +y up, +z out of the face), origin at the centre of
the head at eye height. Subject's right = world -x.
"""

from __future__ import annotations

import numpy as np

from models.heads.rig import (
    PART_INDEX,
    RiggedGaussianHead,
    RigParams,
    quat_from_matrix,
)
from models.motion_space import NUM_KEYPOINTS

__all__ = ["DETAIL_LEVELS", "ONE_SIDED_TURN", "build_default_head"]

# spacing multiplier per detail level (Gaussian count scales with 1 / spacing^2).
DETAIL_LEVELS = {"default": 1.0, "high": 0.5}

SH_C0 = 0.28209479177387814

# One-sided surfels (facing +1: renderers cull them when they face away from the camera, see
# renderers.gaussians.backfacing). Only discs of the closed opaque surfaces qualify: the skin
# (with lips, ears and neck), the shirt body and the hair shell, whose local z axis is the
# outward SDF normal. And only where the surface is flat at the scale of the disc: the normal
# turns by less than ONE_SIDED_TURN radians within two sigma of the centre. On a tighter curve
# (nose tip, lip edges, brow ridge, ear rims, the eye sockets) a disc that faces away still pokes
# out past the silhouette and shows. Measured on this head (culled against unculled renders from
# 8 views, jaw open, blinking, posed): all parts one-sided 30-35 dB; with this rule 0.1 rad keeps
# >= 52 dB (10 % of the fill culled), 0.35 >= 49 dB (17-26 %), 0.5 no more. The hair counts as
# flat where its smooth shell (_hair_base, without the clump grooves) is flat within two sigma
# along and across the strands, measured against the disc's own (grooved) normal: about a third
# of it, >= 45 dB. Marking all of the hair one-sided (or orienting its discs along the smooth
# shell) costs 31-40 dB: the fuzzy silhouette thins and the grooves let the inside show through.
# Two-sided, also measured: the eyeballs (open caps, seen from behind past the face), the rolled
# collar (a thin tube) and every open sheet (lids, lashes, brows, mouth, teeth, tongue).
ONE_SIDED_TURN = 0.35
SKIN_K = 4  # keypoints per Gaussian in the skinning weights

# Splat sizes and spacing (the fill budget). Rasterising costs ~3/4 per covered pixel and ~1/4
# per Gaussian on llvmpipe (docs/PERFORMANCE.md), and the GL renderer draws a triangle of ~57
# sigma^2 per disc, so the cost of a closed surface is set by sigma / spacing, not by the count:
# ~40 triangle layers per covered pixel at 0.7 (one relaxed layer at 0.8 x the nominal spacing is
# ~99.7 % opaque, median; at 0.6 the gaps show as a dot pattern). So the surfaces are sampled
# evenly (_relax) and sparsely, with discs about as wide as the first head's (same softness, same
# look) and just wide enough to close. Against the first head (skin discs 1.1 x the spacing on
# unrelaxed samples, hair discs 2.9 x 0.8 spacings, all hair two-sided): 1.5-1.6x less fill at
# 0.7x the count, renders within 30.5-33 dB of it (two samplings of one design differ by ~35 dB).
SKIN_SPACING = 1.45  # skin sample spacing, times the detail level's (the lips keep 0.5)
SKIN_SIGMA = 0.8  # skin disc sigma, times the local skin spacing
HAIR_SPACING = 1.14  # nominal hair spacing (across the strands), times the detail spacing
HAIR_STRETCH = 2.6  # ... and this many times sparser along the strands
HAIR_SIGMA = (2.5, 0.85)  # along / across the strands, times the nominal hair spacing
SHIRT_SPACING = 3.6
SHIRT_SIGMA = 0.8
BROW_DENSITY = 0.45  # brow strokes (per area) relative to the first head: they overlap ~4x less
RELAX_ITERS = 10  # repulsion steps of _relax
RELAX_RADIUS = 1.5  # its kernel radius, times the local spacing

# --- proportions (metres) -------------------------------------------------------------------
EYE_R = 0.0165
LID_R = EYE_R + 0.0011
EYE_C = np.array([[-0.0315, 0.0, 0.061], [0.0315, 0.0, 0.061]])
MOUTH_Y = -0.0595
MOUTH_HW = 0.0225
HINGE = np.array([0.0, -0.014, -0.008])
PIVOT = np.array([0.0, -0.05, -0.022])
KP_SCALE = 0.16  # metres per keypoint unit: a ~0.16 m face spans about one unit
KP_ORIGIN = np.array([0.0, -0.02, 0.0])  # the keypoint origin in the head frame
IRIS_ANG, PUPIL_ANG = 0.56, 0.23  # angular radii on the eyeball (radians)
PSI_C = 0.9  # eye corners (azimuth on the lid sphere, radians)
LID_UP_A, LID_LOW_A = 0.64, 0.44

_KEY = np.array([-0.5, 0.55, 0.72])
_KEY /= np.linalg.norm(_KEY)
_FILL = np.array([0.75, 0.05, 0.55])
_FILL /= np.linalg.norm(_FILL)


# --- SDF primitives (p [M, 3] -> d [M]) ----------------------------------------------------------


def _len(q: np.ndarray) -> np.ndarray:
    return np.sqrt(q[:, 0] * q[:, 0] + q[:, 1] * q[:, 1] + q[:, 2] * q[:, 2])


def _sphere(p: np.ndarray, c, r: float) -> np.ndarray:
    return _len(p - np.asarray(c)) - r


def _ellipsoid(p: np.ndarray, c, r) -> np.ndarray:
    # Inigo Quilez's bound: exact on the surface, good near it (all we sample).
    r = np.asarray(r, dtype=np.float64)
    q = (p - np.asarray(c)) / r
    k0 = _len(q)
    k1 = _len(q / r)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _capsule(p: np.ndarray, a, b, r: float) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    pa, ba = p - a, b - a
    h = np.clip((pa @ ba) / (ba @ ba), 0.0, 1.0)
    return _len(pa - h[:, None] * ba) - r


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return -_smin(-a, -b, k)


def _smoothstep(e0: float, e1, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (np.asarray(e1) - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mirror(p: np.ndarray) -> np.ndarray:
    q = p.copy()
    q[:, 0] = np.abs(q[:, 0])
    return q


def mouth_line(x: np.ndarray) -> np.ndarray:
    """y of the mouth line (a gentle smile: corners up) at x."""
    t = np.clip(np.abs(x) / MOUTH_HW, 0.0, 1.5)
    return MOUTH_Y + 0.0032 * t**2


def _ear_local(p: np.ndarray) -> np.ndarray:
    q = _mirror(p) - np.array([0.077, -0.008, -0.01])
    a = np.deg2rad(28.0)  # the ear faces outwards and a little forwards
    c, s = np.cos(a), np.sin(a)
    return np.stack([c * q[:, 0] + s * q[:, 2], q[:, 1], -s * q[:, 0] + c * q[:, 2]], -1)


def _ears(p: np.ndarray) -> np.ndarray:
    e = _ear_local(p)
    outer = _ellipsoid(e, (0.0, 0.0, 0.0), (0.0085, 0.026, 0.017))
    lobe = _ellipsoid(e, (0.0, -0.016, 0.003), (0.006, 0.011, 0.01))
    outer = _smin(outer, lobe, 0.004)
    bowl = _ellipsoid(e, (0.0075, 0.002, 0.002), (0.0055, 0.019, 0.011))
    return _smax(outer, -bowl, 0.002)


def _slit(p: np.ndarray) -> np.ndarray:
    """The mouth opening: a thin rounded slab along the mouth line, from the lips inwards."""
    x = p[:, 0]
    zc = 0.086 - 0.03 * (x / MOUTH_HW) ** 2
    dx = np.maximum(np.abs(x) - MOUTH_HW, 0.0)
    dz = np.maximum(np.abs(p[:, 2] - zc) - 0.011, 0.0)
    dy = p[:, 1] - mouth_line(x)
    return np.sqrt(dx * dx + dz * dz + dy * dy) - 0.0005


def _lips(p: np.ndarray) -> np.ndarray:
    # soft, fairly flat lips that sit on the muzzle (not pushed forward)
    upper = _ellipsoid(p, (0.0, MOUTH_Y + 0.0034, 0.0745), (0.0225, 0.0038, 0.0058))
    lower = _ellipsoid(p, (0.0, MOUTH_Y - 0.0044, 0.0735), (0.019, 0.0047, 0.0062))
    return np.minimum(upper, lower)


def skin_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance (metres, approx.) to the skin of head, face, ears and neck."""
    m = _mirror(p)
    d = _smin(
        _ellipsoid(p, (0.0, 0.03, -0.006), (0.079, 0.093, 0.089)),
        _ellipsoid(p, (0.0, -0.036, 0.016), (0.0625, 0.07, 0.062)),
        0.03,
    )
    d = _smin(d, _ellipsoid(m, (0.033, -0.024, 0.046), (0.027, 0.026, 0.03)), 0.035)  # cheeks
    d = _smin(d, _ellipsoid(p, (0.0, -0.09, 0.054), (0.025, 0.019, 0.022)), 0.016)  # chin
    # brow ridge: ends well inside the temples and blends wide (no hollow behind it)
    d = _smin(d, _capsule(p, (-0.04, 0.024, 0.061), (0.04, 0.024, 0.061), 0.0155), 0.024)
    d = _smin(d, _ellipsoid(p, (0.0, -0.052, 0.057), (0.038, 0.03, 0.0195)), 0.014)  # muzzle
    nose = _smin(
        _capsule(p, (0.0, 0.004, 0.077), (0.0, -0.021, 0.088), 0.0046),
        _sphere(p, (0.0, -0.024, 0.0888), 0.0066),
        0.007,
    )
    nose = _smin(nose, _sphere(m, (0.0078, -0.0275, 0.082), 0.0047), 0.004)
    d = _smin(d, nose, 0.006)
    d = _smax(d, -_ellipsoid(m, (0.0052, -0.0322, 0.0845), (0.0021, 0.0014, 0.0032)), 0.0012)
    d = _smin(d, _lips(p), 0.0075)
    d = _smax(d, -_slit(p), 0.0011)
    for c in EYE_C:  # sockets: the eyelid sphere plus an almond aperture in front of it
        q = (p[:, :2] - c[:2]) / np.array([0.95 * LID_R, 0.8 * LID_R])
        aperture = np.maximum((np.sqrt(np.sum(q * q, axis=1)) - 1.0) * 0.8 * LID_R, c[2] - p[:, 2])
        socket = np.minimum(_sphere(p, c, LID_R + 0.0007), aperture)
        d = _smax(d, -socket, 0.0025)
    d = _smin(d, _ears(p), 0.006)
    neck = _capsule(p, (0.0, -0.055, -0.018), (0.0, -0.19, -0.03), 0.05)
    return _smin(d, neck, 0.012)  # a small blend keeps the jaw line readable


_CROWN = np.array([0.012, 0.098, -0.045])  # the whorl: the hair flows away from here
_SWIRL = 7.5  # radians of sweep per metre away from the crown (the fringe sweeps to world -x)
# hairline height (y, metres) against the azimuth |atan2(x, z)| around the vertical axis
_HAIRLINE_A = np.array([0.0, 0.45, 0.9, 1.2, 1.42, 1.62, 1.95, 2.4, np.pi])
_HAIRLINE_Y = np.array([0.066, 0.063, 0.048, 0.024, -0.01, -0.012, 0.0, -0.03, -0.056])


def _clump_table(seed: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Clump boundaries over [0, 2 pi) with random widths in [lo, hi] radians, and a random
    height per clump in [0, 1] (some clumps stand proud)."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(lo, hi, int(2 * np.pi / lo) + 2)
    edges = np.concatenate([[0.0], np.cumsum(w)])
    edges = edges[edges < 2 * np.pi]
    edges = np.concatenate([edges, [2 * np.pi]])
    return edges, rng.random(edges.size - 1)


_CLUMPS = _clump_table(5, 0.1, 0.26)
_STRANDS = _clump_table(6, 0.025, 0.07)


def _clump_coord(psi: np.ndarray, table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t in [-1, 1] across the clump, clump index, clump height) for across-flow coordinate psi."""
    edges, height = table
    u = np.mod(psi, 2 * np.pi)
    k = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, height.size - 1)
    t = 2.0 * (u - edges[k]) / (edges[k + 1] - edges[k]) - 1.0
    return t, k, height[k]


def _hair_psi(p: np.ndarray) -> np.ndarray:
    """Across-flow coordinate: the flow lines (strand directions) are its level sets. Azimuth
    around the crown, twisted with the distance from it (a swept, slightly swirling flow)."""
    q = p - _CROWN
    r = np.sqrt(q[:, 0] ** 2 + q[:, 2] ** 2 + 0.25 * q[:, 1] ** 2)
    return np.arctan2(q[:, 0], q[:, 2]) + _SWIRL * r


def _hairline(p: np.ndarray) -> np.ndarray:
    """Signed height above the hairline (metres)."""
    a = np.abs(np.arctan2(p[:, 0], p[:, 2] + 0.01))
    return p[:, 1] - np.interp(a, _HAIRLINE_A, _HAIRLINE_Y)


def _hair_base(p: np.ndarray) -> np.ndarray:
    m = _mirror(p)
    head = np.minimum(_ellipsoid(p, (0.0, 0.03, -0.006), (0.079, 0.093, 0.089)), skin_sdf(p))
    above = _hairline(p)
    # thickness grows from the hairline to the crown; extra volume on top, less at the sides
    # (short back and sides, volume on top and towards the front)
    top = np.exp(-(((p[:, 1] - 0.105) / 0.055) ** 2) - ((p[:, 0] / 0.075) ** 2))
    top *= 0.55 + 0.45 * _smoothstep(-0.08, 0.04, p[:, 2])
    thick = 0.002 + 0.0055 * _smoothstep(0.0, 0.06, above) + 0.017 * top
    d = head - thick
    d = _smax(d, -above, 0.004)  # nothing below the hairline
    d = _smax(d, -_sphere(m, (0.088, -0.024, 0.006), 0.028), 0.01)  # around the ears
    # the swept fringe: a lock rising from the parting (world +x) and sweeping across the
    # forehead towards world -x, standing a little off it
    q = p - np.array([-0.008, 0.083, 0.056])
    a = np.deg2rad(-14.0)
    c, s = np.cos(a), np.sin(a)
    q = np.stack([c * q[:, 0] + s * q[:, 1], -s * q[:, 0] + c * q[:, 1], q[:, 2]], -1)
    fringe = _ellipsoid(q, (0.0, 0.0, 0.0), (0.062, 0.021, 0.032))
    return _smin(d, fringe, 0.02)


def hair_sdf(p: np.ndarray) -> np.ndarray:
    """Hair mass with sculpted clumps of varying width (grooves along the flow lines)."""
    d = _hair_base(p)
    psi = _hair_psi(p)
    t1, _, h1 = _clump_coord(psi, _CLUMPS)
    t2, _, _ = _clump_coord(psi + 0.4 * np.sin(3.0 * psi), _STRANDS)
    r = np.linalg.norm(p - _CROWN, axis=-1)
    fade = _smoothstep(0.01, 0.05, r)  # no grooves at the whorl
    return d + fade * (0.0028 * t1**4 - 0.0012 * h1 + 0.0007 * t2**2)


def _scene_sdf(p: np.ndarray, hair_gap: float = 0.0) -> np.ndarray:
    d = np.minimum(skin_sdf(p), hair_sdf(p) + hair_gap)
    for c in EYE_C:
        d = np.minimum(d, _sphere(p, c, LID_R))
    return d


# --- sampling --------------------------------------------------------------------------------


def _gradient(f, p: np.ndarray, eps: float = 5e-5) -> np.ndarray:
    """Central-difference gradient [M, 3] of f (all six offsets in one call)."""
    m = p.shape[0]
    offs = np.concatenate([np.eye(3), -np.eye(3)]) * eps
    d = f((p[None, :, :] + offs[:, None, :]).reshape(-1, 3)).reshape(6, m)
    return (d[:3] - d[3:]).T / (2 * eps)


def _project(f, p: np.ndarray, iters: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Newton-project points onto the zero set of f; returns (points, |f| after)."""
    eps = 5e-5
    offs = np.concatenate([np.zeros((1, 3)), np.eye(3) * eps])
    for _ in range(iters):
        m = p.shape[0]
        d = f((p[None, :, :] + offs[:, None, :]).reshape(-1, 3)).reshape(4, m)
        g = (d[1:] - d[0]).T / eps
        p = p - (d[0] / np.maximum(np.sum(g * g, axis=1), 1e-12))[:, None] * g
    return p, np.abs(f(p))


def _sample_sdf(f, lo, hi, spacing: float, rng: np.random.Generator, reject=None) -> np.ndarray:
    """Points ~``spacing`` apart on the zero set of f inside the box [lo, hi] [M, 3].

    reject: optional predicate on coarse cell centres (True = skip that cell, e.g. under hair).
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    h0 = max(4.0 * spacing, 0.004)
    axes = [np.arange(a + 0.5 * h0, b, h0) for a, b in zip(lo, hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    near = grid[np.abs(f(grid)) < 0.75 * h0]
    if reject is not None:
        near = near[~reject(near)]
    m = int(np.ceil(2.2 * (h0 / spacing) ** 2))
    pts = (near[:, None, :] + (rng.random((near.shape[0], m, 3)) - 0.5) * h0).reshape(-1, 3)
    pts, err = _project(f, pts)
    pts = pts[(err < 0.05 * spacing) & np.all((pts > lo) & (pts < hi), axis=1)]
    # blue-ish noise: shuffle, keep the first point in each cell of a jittered grid
    pts = pts[rng.permutation(pts.shape[0])]
    cell = np.floor((pts - lo + rng.random(3) * spacing) / spacing).astype(np.int64)
    key = (cell[:, 0] * 4096 + cell[:, 1]) * 4096 + cell[:, 2]
    _, first = np.unique(key, return_index=True)
    pts = pts[np.sort(first)]
    # One random point per cell still pairs points across cell walls and leaves the grid's
    # axes in the pattern (a faint lattice up close): drop one point of every pair closer than
    # half the spacing, which leaves an irregular, Poisson-disc-like set.
    from scipy.spatial import cKDTree

    pairs = cKDTree(pts).query_pairs(0.5 * spacing, output_type="ndarray")
    drop = np.zeros(pts.shape[0], dtype=bool)
    drop[pairs[:, 1]] = True
    drop[pairs[:, 0]] = False  # keep the first of each pair (chains keep alternate points)
    return pts[~drop]


def _relax(f, pts: np.ndarray, local: np.ndarray, stretch=None) -> np.ndarray:
    """Even out the spacing of points [M, 3] on the zero set of f, keeping their number:
    RELAX_ITERS steps of short-range repulsion in the tangent plane, each followed by a
    projection back onto the surface. local [M]: the intended spacing at each point.

    stretch: optional (field, k): field(p) -> (normals [M, 3], axes [M, 3]); distances along the
    axis count k times less, so the points end up ~k times sparser along it (hair strands).

    The sampler's points are irregular (nearest neighbours 0.66 spacings apart on average, empty
    spots up to 1.1 spacings in radius): narrow discs leave holes there. After 10 steps the
    nearest neighbours are 0.9 apart and the largest empty spots 0.8 (99.9th percentile, 0.7 for
    the 99th), so discs of 0.8 x the spacing close the surface; a few steps do not crystallise the
    pattern into a lattice."""
    from scipy.spatial import cKDTree

    p = pts.copy()
    h = RELAX_RADIUS * local
    k = 1.0 if stretch is None else float(stretch[1])
    for _ in range(RELAX_ITERS):
        pairs = cKDTree(p).query_pairs(float(k * h.max()), output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        d = p[i] - p[j]
        if stretch is not None:  # distances measured with the axis a shrunk k times
            n, a = stretch[0](p)
            a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
            aij = a[i] + np.where(np.sum(a[i] * a[j], axis=1) < 0, -1.0, 1.0)[:, None] * a[j]
            aij /= np.maximum(np.linalg.norm(aij, axis=1, keepdims=True), 1e-12)
            d = d + (1.0 / k - 1.0) * np.sum(d * aij, axis=1, keepdims=True) * aij
        else:
            n = _gradient(f, p)
        r = np.sqrt(np.sum(d * d, axis=1))
        hij = np.minimum(h[i], h[j])  # where the spacing changes, overlap rather than part
        w = np.clip(1.0 - r / hij, 0.0, None) ** 2 / np.maximum(r, 1e-9)
        fd = w[:, None] * d
        if stretch is not None:  # back to metres: the long axis is k times longer
            fd = fd + (k - 1.0) * np.sum(fd * aij, axis=1, keepdims=True) * aij
        force = np.zeros_like(p)
        np.add.at(force, i, fd)
        np.add.at(force, j, -fd)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        force -= np.sum(force * n, axis=1, keepdims=True) * n
        step = local[:, None] * force
        # never more than a fifth of the spacing (k fifths along the long axis) per step
        lim = 0.2 * k * local / np.maximum(np.linalg.norm(step, axis=1), 1e-12)
        p = p + step * np.minimum(lim, 1.0)[:, None]
        p, _ = _project(f, p, 2)
    return p


def _flat_enough(
    f,
    pts: np.ndarray,
    n: np.ndarray,
    reach: np.ndarray,
    tangent: np.ndarray | None = None,
    reach_b: np.ndarray | None = None,
) -> np.ndarray:
    """Mask [M]: the normal of SDF f stays within ONE_SIDED_TURN radians of the unit normal
    n [M, 3] (usually f's own normal at pts [M, 3]) out to ``reach`` [M] metres along four
    tangent directions (+-t, +-b).

    For elongated discs: tangent [M, 3] is the long axis t (unit, in the tangent plane) and
    reach_b [M] the reach across it (default: reach)."""
    if tangent is None:
        t = np.cross(n, [0.3, 0.9, 0.1])
        bad = np.linalg.norm(t, axis=1) < 1e-6  # n along the hint: any other tangent will do
        t[bad] = np.cross(n[bad], [1.0, 0.0, 0.0])
        t /= np.linalg.norm(t, axis=1, keepdims=True)
    else:
        t = tangent
    b = np.cross(n, t)
    rb = reach if reach_b is None else reach_b
    ok = np.ones(pts.shape[0], dtype=bool)
    cos_max = np.cos(ONE_SIDED_TURN)
    for d, r in ((t, reach), (-t, reach), (b, rb), (-b, rb)):
        g = _gradient(f, pts + r[:, None] * d)
        g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        ok &= np.sum(g * n, axis=1) > cos_max
    return ok


def _frames(normals: np.ndarray, tangent_hint: np.ndarray | None, rng) -> np.ndarray:
    """Rotation matrices [M, 3, 3] with columns (t1, t2, n); t1 along the hint (projected)."""
    n = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    if tangent_hint is None:
        a = rng.random(n.shape[0]) * 2 * np.pi
        tangent_hint = np.stack([np.cos(a), np.sin(a), np.cos(3 * a)], -1)
    t = tangent_hint - np.sum(tangent_hint * n, axis=1, keepdims=True) * n
    bad = np.linalg.norm(t, axis=1) < 1e-6
    t[bad] = np.cross(n[bad], [0.3, 0.9, 0.1])
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    b = np.cross(n, t)
    return np.stack([t, b, n], axis=-1)


class _Parts:
    """Accumulates Gaussians part by part."""

    def __init__(self) -> None:
        self.chunks: list[dict] = []

    def add(self, part: str, pos, frames, s1, s2, sn, color, opacity, **extra) -> None:
        m = pos.shape[0]
        full = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), (m,))  # noqa: E731
        self.chunks.append(
            {
                "means": pos,
                "quats": quat_from_matrix(frames),
                "scales": np.stack([full(s1), full(s2), full(sn)], -1),
                "colors": np.clip(np.asarray(color, dtype=np.float64), 0.0, 1.0),
                "opacities": full(opacity),
                "parts": np.full(m, PART_INDEX[part], dtype=np.uint8),
                "lid_angle": full(extra.get("lid_angle", 0.0)),
                "jaw": full(extra.get("jaw", 0.0)),
                "pose": full(extra.get("pose", 1.0)),
                "facing": full(extra.get("facing", 0)).astype(np.int8),
                "normals": frames[:, :, 2],
            }
        )

    def concat(self) -> dict:
        return {k: np.concatenate([c[k] for c in self.chunks]) for k in self.chunks[0]}


# --- shading ---------------------------------------------------------------------------------


def _ao(
    p: np.ndarray, n: np.ndarray, step: float = 0.004, strength: float = 0.8, hair_gap: float = 0.0
) -> np.ndarray:
    """Ambient occlusion in [0, 1] from the scene SDF along the normals. hair_gap > 0 lets the
    skin see the hair as a little thinner, so the hairline does not cast a grey rim."""
    occ = np.zeros(p.shape[0])
    for i in range(1, 6):
        h = i * step
        occ += (h - _scene_sdf(p + n * h, hair_gap)) / h / 2.0**i
    return np.clip(1.0 - strength * 1.4 * occ, 0.0, 1.0)


def _shade(albedo, n, ao, wrap=0.35, sss=(0.28, 0.07, 0.03), spec=0.0) -> np.ndarray:
    ndl = n @ _KEY
    key = np.clip((ndl + wrap) / (1.0 + wrap), 0.0, 1.0)
    term = np.clip(1.0 - np.abs(ndl + 0.1) / 0.45, 0.0, 1.0)  # the warm band at the terminator
    sky = 0.55 + 0.25 * n[:, 1]
    fill = np.clip(n @ _FILL, 0.0, 1.0)[:, None] * np.array([0.16, 0.19, 0.24])
    light = (
        0.78 * key[:, None] * np.sqrt(ao)[:, None]
        + (0.48 * sky * ao)[:, None] * np.array([0.95, 0.97, 1.03])
        + fill * ao[:, None]
    )
    c = albedo * light + albedo * np.asarray(sss) * (term * ao)[:, None]
    if spec:
        h = _KEY + np.array([0.0, 0.0, 1.0])
        h /= np.linalg.norm(h)
        c = c + spec * (np.clip(n @ h, 0.0, 1.0) ** 24 * ao)[:, None]
    return c


def _noise(p: np.ndarray, freq: float, seed: int) -> np.ndarray:
    """Cheap smooth value-ish noise in [-1, 1] from a few random sine waves."""
    rng = np.random.default_rng(seed)
    out = np.zeros(p.shape[0])
    for _ in range(12):
        k = rng.normal(size=3)
        k *= freq / np.linalg.norm(k)
        out += np.sin(p @ k + rng.random() * 6.283)
    return out / np.sqrt(6.0)


# --- the parts ------------------------------------------------------------------------------

SKIN = np.array([0.97, 0.76, 0.62])
LIP = np.array([0.86, 0.53, 0.5])
HAIR = np.array([0.40, 0.22, 0.12])
IRIS = np.array([0.22, 0.50, 0.72])
SHIRT = np.array([0.20, 0.45, 0.52])


def _lip_mask(p: np.ndarray) -> np.ndarray:
    x = p[:, 0]
    ym = mouth_line(x)
    t = np.clip(np.abs(x) / MOUTH_HW, 0.0, 1.0)
    bow = np.exp(-(((np.abs(x) - 0.0048) / 0.0032) ** 2)) - 0.7 * np.exp(-((x / 0.0022) ** 2))
    h_up = 0.0062 * np.sqrt(1.0 - t**2) + 0.0011 * bow + 0.0004
    h_lo = 0.0078 * (1.0 - t**2) ** 0.6 + 0.0004
    dy = p[:, 1] - ym
    inside = np.where(dy >= 0, 1.0 - _smoothstep(h_up - 0.0007, h_up + 0.0003, dy), 0.0)
    inside = np.maximum(
        inside, np.where(dy < 0, 1.0 - _smoothstep(h_lo - 0.0008, h_lo + 0.0003, -dy), 0.0)
    )
    front = _smoothstep(0.06, 0.068, p[:, 2])
    return inside * front * (1.0 - _smoothstep(MOUTH_HW - 0.002, MOUTH_HW + 0.0015, np.abs(x)))


# Jaw weight layout (metres). The surface is cut only along the slit between the lips; everywhere
# else it is continuous, so the weight must be too, with a gradient small enough that the splats
# stay overlapped when the jaw drops (~16 mm at the lips for exp_19_y = 0.1).
_JAW_TAPER = 0.3 * MOUTH_HW  # the lower lip's edge moves fully within |x| < this
_JAW_BAND = 0.017  # below the lip edge the weight reaches 1 within this (at the corners)
_JAW_SPREAD = 0.35  # beyond the corners the band starts this much higher per metre outwards
_JAW_WIDEN = 0.6  # ... and gets this much wider per metre outwards


def _jaw_open_profile(ax: np.ndarray) -> np.ndarray:
    """How far the lower lip's edge moves with the jaw (0..1) at |x| = ax: fully in the middle,
    easing to 0 at the mouth corner, so the opening is a lens and the corner stretches instead of
    tearing (a weight that jumped from 0 to 1 at the corner would split the skin there)."""
    return 1.0 - _smoothstep(_JAW_TAPER, MOUTH_HW, ax)


def _jaw_weight(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """What the jaw carries (0..1): 0 above the mouth line and on the upper lip, 1 for the chin.

    Between the lips the split is sharp (the slit really cuts the surface; inside it the side is
    decided by the wall's normal: the upper lip's inner wall faces down). The lower lip's edge
    moves by :func:`_jaw_open_profile` (1 in the middle, 0 at the corners) and the weight eases
    from there to 1 within _JAW_BAND below it. Beyond the corners the surface is whole: the weight
    blends from 0 above to 1 below over a band that starts at the corner and widens outwards
    along the cheeks, then fades out towards the ears and down the neck."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    out = np.maximum(ax - MOUTH_HW, 0.0)  # distance beyond the corner
    ym = mouth_line(np.minimum(ax, MOUTH_HW)) + 0.25 * out
    edge = _jaw_open_profile(ax)  # the lower lip edge's weight (0 beyond the corners)
    top = _JAW_SPREAD * out  # the band's top, above the (extended) mouth line
    band = _JAW_BAND + _JAW_WIDEN * out
    t = (ym + top - y) / (top + band)
    ramp = _smoothstep(0.0, 1.0, t)
    lower = y < ym
    below = np.where(lower, edge + (1.0 - edge) * _smoothstep(0.0, 1.0, (ym - y) / band), 0.0)
    below = np.where(ax < MOUTH_HW, below, ramp)
    # the cut ends at the corner: there both sides are 0 and the surface blends continuously
    in_slit = (np.abs(y - ym) < 0.0016) & (ax < MOUTH_HW) & (np.abs(n[:, 1]) > 0.3)
    below = np.where(in_slit, np.where(n[:, 1] > 0, edge, 0.0), below)
    lateral = 1.0 - _smoothstep(0.03, 0.066, ax)
    depth = _smoothstep(-0.005, 0.035, z)
    neck = _smoothstep(-0.15, -0.1, y)
    return below * lateral * depth * neck


def _pose_weight(p: np.ndarray) -> np.ndarray:
    chin = _smoothstep(0.02, 0.04, p[:, 2]) * _smoothstep(-0.125, -0.1, p[:, 1])
    return np.maximum(_smoothstep(-0.155, -0.095, p[:, 1]), chin)


def _skin(parts: _Parts, sp: float, rng) -> None:
    fine_sp, sp = 0.5 * sp, SKIN_SPACING * sp
    lo, hi = (-0.105, -0.165, -0.11), (0.105, 0.125, 0.115)
    pts = _sample_sdf(skin_sdf, lo, hi, sp, rng, reject=lambda c: hair_sdf(c) < -0.008)
    # under the hair is never seen; keep a margin there until the points are relaxed, so that
    # the relaxation does not push the skin's edge under the hair and open a gap at the hairline
    pts = pts[hair_sdf(pts) > -0.004]
    # the lips and their inner walls are small and move apart: sample them finer
    mlo, mhi = np.array([-0.03, -0.075, 0.055]), np.array([0.03, -0.044, 0.1])
    inside = np.all((pts > mlo) & (pts < mhi), axis=1)
    fine = _sample_sdf(skin_sdf, mlo, mhi, fine_sp, rng)
    pts = np.concatenate([pts[~inside], fine])
    is_fine = np.concatenate([np.zeros((~inside).sum(), bool), np.ones(len(fine), bool)])
    # sparser at the back of the head and down the neck
    back = _smoothstep(0.02, -0.06, pts[:, 2]) + _smoothstep(-0.11, -0.16, pts[:, 1])
    keep = rng.random(pts.shape[0]) < 1.0 / (1.0 + 1.2 * np.clip(back, 0, 1)) ** 2
    keep |= is_fine
    pts = pts[keep]
    local = np.where(is_fine[keep], fine_sp, sp * (1.0 + 1.2 * np.clip(back[keep], 0, 1)))
    pts = _relax(skin_sdf, pts, local)
    seen = hair_sdf(pts) > 0.0006
    for c in EYE_C:  # the back of the eye sockets, behind the eyeballs: never seen either
        seen &= (np.linalg.norm(pts - c, axis=1) > LID_R + 0.003) | (pts[:, 2] > c[2] - 0.002)
    pts, local = pts[seen], local[seen]
    n = _gradient(skin_sdf, pts)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    ao = _ao(pts, n, hair_gap=0.006)
    x, y, z = pts.T
    albedo = np.tile(SKIN, (pts.shape[0], 1))
    blush = np.exp(-(((np.abs(x) - 0.043) / 0.016) ** 2 + ((y + 0.026) / 0.013) ** 2))
    blush *= _smoothstep(0.05, 0.07, z)
    albedo = albedo * (1 - 0.22 * blush[:, None]) + 0.22 * blush[:, None] * np.array(
        [0.98, 0.55, 0.52]
    )
    nose = np.exp(-((x / 0.012) ** 2 + ((y + 0.028) / 0.01) ** 2)) * _smoothstep(0.09, 0.1, z)
    albedo = albedo * (1 - 0.12 * nose[:, None]) + 0.12 * nose[:, None] * np.array(
        [0.95, 0.55, 0.5]
    )
    ear = _smoothstep(0.066, 0.075, np.abs(x))
    albedo = albedo * (1 - 0.1 * ear[:, None]) + 0.1 * ear[:, None] * np.array([0.92, 0.5, 0.45])
    lip = _lip_mask(pts)
    slit_d = _slit(pts)
    slit = slit_d < 0.0025  # inner walls of the lips
    # The walls inside the slit are baked nearly black (the closed slit occludes them), but they
    # turn to face the viewer when the jaw opens: give the hidden part of them (behind the lip
    # rims) an ambient floor, smoothly, so the open lips get a soft inner shade, not a ragged
    # black rim. The rims themselves (the closed mouth line) keep their occlusion.
    wall = 1.0 - _smoothstep(0.0012, 0.0025, slit_d)
    hidden = wall * (1.0 - _smoothstep(0.073, 0.078, z))
    ao = ao + hidden * (np.maximum(ao, 0.35) - ao)
    lip = np.maximum(lip, slit * _smoothstep(0.064, 0.074, z))
    albedo = albedo * (1 - lip[:, None]) + lip[:, None] * LIP
    # a faint irregular mottling (several octaves: a single frequency reads as a lattice)
    mottle = 0.6 * _noise(pts, 260.0, 11) + 0.4 * _noise(pts, 610.0, 12)
    albedo *= 1.0 + 0.018 * mottle[:, None]
    inner = wall * (1.0 - _smoothstep(0.078, 0.082, z))  # smooth: a hard edge reads as ragged
    albedo *= 1.0 - inner[:, None] * np.array([0.2, 0.45, 0.45])
    color = _shade(albedo, n, ao, spec=0.0)
    color += (0.12 * lip * np.clip(n @ np.array([0.0, 0.6, 0.8]), 0, 1) ** 16)[:, None]
    jaw = _jaw_weight(pts, n)
    pose = _pose_weight(pts)
    label = np.where(lip > 0.5, "lips", "skin").astype(object)
    label[_ears(pts) < 0.0015] = "ear"
    label[pose < 1.0] = "neck"
    frames = _frames(n, None, rng)
    sigma = SKIN_SIGMA * local
    facing = _flat_enough(skin_sdf, pts, n, 2.0 * sigma).astype(np.int8)
    for name in ("skin", "lips", "ear", "neck"):
        s = label == name
        if s.any():
            parts.add(
                name, pts[s], frames[s], sigma[s], sigma[s], 0.1 * local[s],
                color[s], 0.99, jaw=jaw[s], pose=pose[s], facing=facing[s],
            )  # fmt: skip


def _hair(parts: _Parts, sp: float, rng) -> None:
    lo, hi = (-0.11, -0.07, -0.125), (0.11, 0.16, 0.12)
    pts = _sample_sdf(hair_sdf, lo, hi, sp, rng)
    # sparser along the strands (the discs are long there), then evened out in that metric
    pts = pts[rng.random(len(pts)) < 1.0 / HAIR_STRETCH]
    pts = _relax(hair_sdf, pts, np.full(len(pts), sp), (_hair_flow, HAIR_STRETCH))
    # hair lying on (or dipping into) the skin at the hairline would show through the skin as a
    # grey smudge: keep only hair standing at least a millimetre off it
    pts = pts[skin_sdf(pts) > 0.001]
    n, flow = _hair_flow(pts)
    frames = _frames(n, flow, rng)
    t = frames[:, :, 0]
    ao = _ao(pts, n, step=0.003, strength=1.2)
    psi = _hair_psi(pts)
    t1, k1, h1 = _clump_coord(psi, _CLUMPS)
    _, k2, _ = _clump_coord(psi + 0.4 * np.sin(3.0 * psi), _STRANDS)
    # per clump and per strand tone (hashed, irregular), darker in the grooves between clumps
    tone_c = 0.9 + 0.2 * np.random.default_rng(8).random(_CLUMPS[1].size)[k1]
    tone_s = 0.92 + 0.16 * np.random.default_rng(9).random(_STRANDS[1].size)[k2]
    groove = 1.0 - 0.25 * t1**6
    albedo = HAIR[None, :] * (tone_c * tone_s * groove * (0.95 + 0.1 * h1))[:, None]
    color = _shade(albedo, n, ao, wrap=0.2, sss=(0.05, 0.02, 0.0))
    # anisotropic sheen (Kajiya-Kay, viewer in front): a highlight band across the strands
    h = _KEY + np.array([0.0, 0.0, 1.0])
    h /= np.linalg.norm(h)
    th_dot = np.sum(t * h, axis=1)
    sheen = np.sqrt(np.clip(1.0 - th_dot**2, 0.0, 1.0)) ** 50
    color += (0.3 * sheen * ao * tone_s * groove)[:, None] * np.array([1.0, 0.85, 0.65])
    # one-sided where the smooth shell is flat (see ONE_SIDED_TURN)
    reach = np.full(len(pts), 2.0 * HAIR_SIGMA[0] * sp)
    reach_b = np.full(len(pts), 2.0 * HAIR_SIGMA[1] * sp)
    facing = _flat_enough(_hair_base, pts, n, reach, t, reach_b).astype(np.int8)
    parts.add("hair", pts, frames, HAIR_SIGMA[0] * sp, HAIR_SIGMA[1] * sp, 0.12 * sp, color, 0.98,
              facing=facing)  # fmt: skip


def _hair_flow(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit normal [M, 3], strand direction [M, 3]) of the hair at pts [M, 3]: the strands run
    along the level sets of psi (n x grad psi), pointing away from the crown."""
    n = _gradient(hair_sdf, pts)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    flow = np.cross(n, _hair_psi_grad(pts))
    flow *= np.where(np.sum(flow * (pts - _CROWN), axis=1) < 0, -1.0, 1.0)[:, None]
    return n, flow


def _hair_psi_grad(p: np.ndarray) -> np.ndarray:
    """Analytic gradient [M, 3] of :func:`_hair_psi` (no finite differences across its 2 pi cut)."""
    q = p - _CROWN
    rho2 = np.maximum(q[:, 0] ** 2 + q[:, 2] ** 2, 1e-10)
    r = np.sqrt(q[:, 0] ** 2 + q[:, 2] ** 2 + 0.25 * q[:, 1] ** 2)
    g = np.stack([q[:, 2] / rho2, np.zeros_like(rho2), -q[:, 0] / rho2], -1)
    return g + _SWIRL * np.stack([q[:, 0], 0.25 * q[:, 1], q[:, 2]], -1) / r[:, None]


def _brows(parts: _Parts, sp: float, rng) -> None:
    m = int(BROW_DENSITY * 4.3e-3 / sp**2)
    for side in (-1.0, 1.0):
        t = rng.random(m)
        v = rng.random(m) * 2 - 1
        x = side * (0.0135 + 0.041 * t)
        yc = 0.028 + 0.0085 * np.sin(np.pi * np.clip(t * 1.05, 0, 1)) - 0.0065 * t**2
        thick = 0.0025 * (1.0 - 0.6 * t) + 0.0009 + 0.0008 * (1 - t) ** 4
        y = yc + v * thick * (0.9 + 0.1 * np.cos(7 * t))
        pts = np.stack([x, y, np.full(m, 0.13)], -1)
        pts = _trace_front(skin_sdf, pts)
        n = _gradient(skin_sdf, pts)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        pts = pts + n * 0.0006
        # hairs lean outwards and up near the inner end, along the brow further out
        dirv = np.stack([side * np.ones(m), 0.9 * (1 - t) + 0.1 - 0.25 * t, np.zeros(m)], -1)
        frames = _frames(n, dirv, rng)
        ao = np.full(m, 1.0)
        albedo = np.tile(HAIR * 0.72, (m, 1)) * (0.85 + 0.3 * rng.random((m, 1)))
        color = _shade(albedo, n, ao, wrap=0.3, sss=(0.0, 0.0, 0.0))
        edge = 1.0 - 0.5 * np.abs(v) ** 3
        parts.add("brow", pts, frames, 0.0021, 0.0006, 0.0002, color, 0.9 * edge)


def _trace_front(f, pts: np.ndarray) -> np.ndarray:
    """March points along -z onto the first surface of f (sphere tracing)."""
    p = pts.copy()
    for _ in range(80):
        d = f(p)
        p[:, 2] -= np.maximum(d, 0.0) * 0.9
    p, _ = _project(f, p, 3)
    return p


def _fib_cap(m: int, max_ang: float, min_ang: float = 0.0) -> np.ndarray:
    """m roughly uniform unit vectors around +z with polar angle in [min_ang, max_ang]."""
    i = np.arange(m) + 0.5
    c0, c1 = np.cos(min_ang), np.cos(max_ang)
    cz = c0 - (c0 - c1) * i / m
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    s = np.sqrt(1 - cz**2)
    return np.stack([s * np.cos(phi), s * np.sin(phi), cz], -1)


def _lid_edges(psi: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(meet line, upper edge, lower edge) elevation angles at azimuth psi (outwards = +)."""
    u = psi * side  # > 0 towards the outer corner
    t = np.clip(np.abs(psi) / PSI_C, 0.0, 1.0)
    meet = -0.1 + 0.09 * u / PSI_C
    upper = meet + LID_UP_A * (1.0 - t**2) ** 0.55 * (1.0 + 0.12 * u / PSI_C)
    lower = meet - LID_LOW_A * (1.0 - t**2) ** 0.75 * (1.0 - 0.15 * u / PSI_C)
    return meet, upper, lower


def _lid_point(c, psi, phi, r) -> np.ndarray:
    return c + r[:, None] * np.stack(
        [np.sin(psi), np.cos(psi) * np.sin(phi), np.cos(psi) * np.cos(phi)], -1
    )


def _eyes(parts: _Parts, sp: float, rng) -> None:
    for e, side in ((0, -1.0), (1, 1.0)):
        sfx = "_r" if e == 0 else "_l"
        c = EYE_C[e]
        # eyeball: sclera (coarser) and iris/pupil (fine)
        area_s = 2 * np.pi * EYE_R**2 * (np.cos(IRIS_ANG - 0.05) - np.cos(1.9))
        ms = int(area_s / (0.7 * sp) ** 2)
        d = _fib_cap(ms, 1.9, IRIS_ANG - 0.05)
        pts = c + EYE_R * d
        ang = np.arccos(np.clip(d[:, 2], -1, 1))
        frames = _frames(d, None, rng)
        ao = _ao(pts, d, step=0.002, strength=0.6)
        up = d[:, 1]
        albedo = np.tile([0.97, 0.96, 0.94], (ms, 1))
        corner = np.exp(-(((d[:, 0] * side + 0.75) / 0.2) ** 2) - (up / 0.25) ** 2)
        albedo = albedo * (1 - 0.35 * corner[:, None]) + 0.35 * corner[:, None] * [0.95, 0.6, 0.6]
        shadow = 1.0 - 0.35 * _smoothstep(-0.1, 0.6, up)  # the upper lid's shadow
        color = albedo * (0.62 + 0.38 * np.clip(d @ _KEY + 0.5, 0, 1))[:, None]
        color *= (shadow * (0.55 + 0.45 * ao))[:, None]
        color = color * (1.0 - 0.25 * _smoothstep(0.9, 1.6, ang))[:, None]
        parts.add("sclera" + sfx, pts, frames, 0.62 * sp * 0.7, 0.62 * sp * 0.7, 0.0001,
                  color, 0.99)  # fmt: skip
        fine = 0.35 * sp
        area_i = 2 * np.pi * EYE_R**2 * (1 - np.cos(IRIS_ANG))
        mi = int(area_i / fine**2)
        d = _fib_cap(mi, IRIS_ANG)
        pts = c + EYE_R * 1.0004 * d
        ang = np.arccos(np.clip(d[:, 2], -1, 1))
        r = ang / IRIS_ANG
        az = np.arctan2(d[:, 1], d[:, 0])
        streak = 0.5 + 0.5 * np.sin(40 * az + 5 * np.sin(7 * az))
        iris = IRIS * (0.75 + 0.5 * (1 - r)[:, None] + 0.18 * streak[:, None])
        iris = iris * (1.0 - 0.55 * _smoothstep(0.78, 1.0, r))[:, None]  # limbal ring
        lower_glow = _smoothstep(0.0, -0.5, d[:, 1] / np.sin(IRIS_ANG)) * (1 - r)
        iris = iris + 0.25 * lower_glow[:, None] * np.array([0.6, 0.85, 0.9])
        pupil = 1.0 - _smoothstep(PUPIL_ANG - 0.02, PUPIL_ANG + 0.015, ang)
        albedo = iris * (1 - pupil[:, None]) + pupil[:, None] * np.array([0.03, 0.03, 0.05])
        shadow = 1.0 - 0.45 * _smoothstep(0.05, 0.55, d[:, 1])
        color = albedo * shadow[:, None]
        frames = _frames(d, None, rng)
        parts.add("iris" + sfx, pts, frames, 0.65 * fine, 0.65 * fine, 0.0001, color, 1.0)
        # highlights (fixed to the light, so they do not turn with the gaze)
        hdir = _KEY + np.array([0.0, 0.0, 1.0])
        hdir /= np.linalg.norm(hdir)
        h2 = np.array([0.35, -0.28, 1.0])
        h2 /= np.linalg.norm(h2)
        hp = c + EYE_R * 1.03 * np.stack([hdir, h2])
        hf = _frames(np.stack([hdir, h2]), None, rng)
        parts.add("highlight" + sfx, hp, hf, [0.0016, 0.0008], [0.0014, 0.0007], 0.0001,
                  np.ones((2, 3)), [1.0, 0.9])  # fmt: skip
        _lids(parts, sp, rng, e, side, sfx)


def _lids(parts: _Parts, sp: float, rng, e: int, side: float, sfx: str) -> None:
    c = EYE_C[e]
    fine = 0.55 * sp
    for which in ("upper", "lower"):
        span = 1.15 if which == "upper" else 0.95
        area = 2 * 1.35 * span * LID_R**2
        m = int(area / fine**2)
        psi = (rng.random(m) * 2 - 1) * 1.35
        meet, upper, lower = _lid_edges(psi, side)
        edge = upper if which == "upper" else lower
        u = rng.random(m) ** 1.4  # denser near the margin
        phi = edge + u * span if which == "upper" else edge - u * span
        off = u * span  # angular distance from the margin
        margin = np.exp(-((off / 0.07) ** 2))
        r = LID_R + 0.0011 * margin
        pts = _lid_point(c, psi, phi, r)
        n = (pts - c) / np.linalg.norm(pts - c, axis=1, keepdims=True)
        visible = skin_sdf(pts) > -0.0035
        pts, n, psi, phi, off, margin = (a[visible] for a in (pts, n, psi, phi, off, margin))
        meet, upper, lower = _lid_edges(psi, side)
        angle = (upper - meet) if which == "upper" else -(meet - lower)
        ao = _ao(pts, n, step=0.002, strength=0.2)
        albedo = np.tile(SKIN * np.array([0.99, 0.95, 0.95]), (pts.shape[0], 1))
        if which == "upper":  # a touch of lid colour above the margin
            albedo *= (1.0 - 0.06 * np.exp(-(((off - 0.3) / 0.15) ** 2)))[:, None]
        albedo = albedo * (1 - 0.3 * margin[:, None]) + 0.3 * margin[:, None] * [0.95, 0.62, 0.6]
        color = _shade(albedo, n, ao)
        frames = _frames(n, None, rng)
        parts.add(f"lid_{which}{sfx}", pts, frames, 0.95 * fine, 0.95 * fine, 0.12 * fine,
                  color, 1.0, lid_angle=angle)  # fmt: skip
    # lash line on the upper margin, thicker towards the outer corner, with a little flick
    m = int(0.032 / (0.3 * sp))
    psi = np.linspace(-PSI_C * 1.02, PSI_C * 1.08, m) * 1.0
    psi = psi * side
    meet, upper, lower = _lid_edges(psi, side)
    u = psi * side / PSI_C
    width = 0.025 + 0.04 * np.clip(u, 0, 1) ** 2
    rows = []
    for k in np.linspace(0.0, 1.0, 3):
        phi = upper + 0.012 + k * width
        rows.append(_lid_point(c, psi, phi, np.full(m, LID_R + 0.0022 - 0.0005 * k)))
    pts = np.concatenate(rows)
    pmeet = np.tile(upper - meet, 3)
    # the flick: a short tapered stroke out and up from the outer corner
    k = np.linspace(0, 1, 30)
    corner = _lid_point(
        c,
        np.array([side * PSI_C * 1.02]),
        _lid_edges(np.array([side * PSI_C * 1.02]), side)[1] + 0.02,
        np.array([LID_R + 0.0018]),
    )[0]
    flick = corner + np.stack([side * 0.0055 * k, 0.0028 * k**1.5, -0.002 * k], -1)
    pts = np.concatenate([pts, flick])
    pmeet = np.concatenate([pmeet, np.zeros(30)])
    n = (pts - c) / np.linalg.norm(pts - c, axis=1, keepdims=True)
    frames = _frames(n, np.tile([1.0, 0.0, 0.0], (pts.shape[0], 1)), rng)
    size = np.concatenate([np.tile(0.0008 + 0.0005 * np.clip(u, 0, 1), 3),
                           0.0009 * (1 - 0.7 * k)])  # fmt: skip
    color = np.tile([0.1, 0.06, 0.05], (pts.shape[0], 1))
    parts.add("lash" + sfx, pts, frames, 1.3 * size, size, 0.0002, color, 0.95,
              lid_angle=pmeet)  # fmt: skip


def _mouth(parts: _Parts, sp: float, rng) -> None:
    fine = 1.1 * sp
    # cavity: the back of an ellipsoid behind the lips, inside the skin
    cc, rr = np.array([0.0, -0.064, 0.052]), np.array([0.023, 0.017, 0.026])
    m = int(4 * np.pi * 0.02**2 / fine**2)
    d = rng.normal(size=(m, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = cc + d * rr
    pts = pts[(skin_sdf(pts) < -0.0008) & (pts[:, 2] < 0.073)]
    n = -(pts - cc) / rr**2
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    depth = np.clip((0.074 - pts[:, 2]) / 0.05, 0, 1)
    color = np.array([0.42, 0.1, 0.13]) * (1.0 - 0.75 * depth)[:, None]
    jaw = _smoothstep(MOUTH_Y + 0.006, MOUTH_Y - 0.01, pts[:, 1])  # the floor goes with the jaw
    parts.add("mouth", pts, _frames(n, None, rng), 0.7 * fine, 0.7 * fine, 0.2 * fine, color,
              0.99, jaw=jaw)  # fmt: skip
    # Corner liners: a wider, deeper ellipsoid behind the mouth corners, where the skin tears a
    # little when the jaw opens wide. Without them the tear shows the head's inner side (the
    # back-facing skin of the neck), which back-face culling removes: a see-through hole. Drawn
    # from their own generator so every other Gaussian stays as it was.
    lrng = np.random.default_rng(17)
    rw = np.array([0.04, 0.024, 0.03])
    m = int(4 * np.pi * 0.03**2 / fine**2)
    d = lrng.normal(size=(m, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = cc + d * rw
    pts = pts[(skin_sdf(pts) < -0.0008) & (pts[:, 2] < 0.073) & (np.abs(pts[:, 0]) > 0.015)]
    n = -(pts - cc) / rw**2
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    depth = np.clip((0.074 - pts[:, 2]) / 0.05, 0, 1)
    color = np.array([0.42, 0.1, 0.13]) * (1.0 - 0.75 * depth)[:, None]
    jaw = _smoothstep(MOUTH_Y + 0.006, MOUTH_Y - 0.01, pts[:, 1])
    parts.add("mouth", pts, _frames(n, None, lrng), 0.7 * fine, 0.7 * fine, 0.2 * fine, color,
              0.99, jaw=jaw)  # fmt: skip
    # teeth: curved bands behind the lips, tooth gaps darkened
    for which in ("upper", "lower"):
        hw = 0.0165 if which == "upper" else 0.0152
        hgt = 0.0092 if which == "upper" else 0.0072
        m = int(2 * hw * hgt / (0.35 * fine) ** 2)
        x = (rng.random(m) * 2 - 1) * hw
        v = rng.random(m)
        top = mouth_line(x)
        if which == "upper":
            y = top - 0.0024 + v * hgt
            z = 0.0735 - 21.0 * x**2
        else:
            y = top - 0.0026 - v * hgt
            z = 0.0712 - 23.0 * x**2
        tooth_w = np.where(np.abs(x) < 0.008, 0.0043, 0.0036)
        ph = np.abs(x) / tooth_w
        gap = np.abs(np.sin(np.pi * ph))
        keep = ~((v < 0.18) & (gap < 0.35))  # rounded tooth tips (v = 0 is the biting edge)
        x, y, z, gap, v = x[keep], y[keep], z[keep], gap[keep], v[keep]
        pts = np.stack([x, y, z], -1)
        n = np.stack([42.0 * x, np.zeros_like(x), np.ones_like(x)], -1)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        shade = 0.55 + 0.45 * _smoothstep(0.0, 0.35, gap)
        fade = 1.0 - 0.45 * _smoothstep(0.006, 0.016, np.abs(x))  # further teeth in shadow
        base = np.array([0.97, 0.95, 0.9])
        gum = _smoothstep(0.8, 0.95, 1 - v if which == "lower" else v)
        albedo = base * (1 - gum[:, None]) + gum[:, None] * np.array([0.85, 0.45, 0.48])
        color = albedo * (shade * fade)[:, None]
        jaw = 1.0 if which == "lower" else 0.0
        parts.add(f"teeth_{which}", pts, _frames(n, None, rng), 0.6 * fine * 0.5,
                  0.6 * fine * 0.5, 0.0002, color, 1.0, jaw=jaw)  # fmt: skip
    # tongue: the top of a flattened ellipsoid on the floor of the mouth
    tc, tr = np.array([0.0, -0.0745, 0.052]), np.array([0.0165, 0.0058, 0.019])
    m = int(2 * np.pi * 0.015**2 / fine**2)
    d = rng.normal(size=(m, 3))
    d[:, 1] = np.abs(d[:, 1])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = tc + d * tr
    n = d / tr
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    groove = np.exp(-((pts[:, 0] / 0.003) ** 2))
    albedo = np.array([0.86, 0.42, 0.44]) * (1 - 0.2 * groove)[:, None]
    depth = np.clip((0.074 - pts[:, 2]) / 0.04, 0, 1)
    color = albedo * (0.9 - 0.5 * depth)[:, None]
    parts.add("tongue", pts, _frames(n, None, rng), 0.6 * fine, 0.6 * fine, 0.15 * fine, color,
              1.0, jaw=1.0)  # fmt: skip


def _clothes(parts: _Parts, sp: float, rng) -> None:
    coarse = SHIRT_SPACING * sp

    def shirt(p):
        body = _ellipsoid(p, (0.0, -0.228, -0.03), (0.17, 0.075, 0.095))
        collar = _capsule(p, (0.0, -0.146, -0.028), (0.0, -0.2, -0.03), 0.057)
        return _smin(body, collar, 0.025)

    pts = _sample_sdf(shirt, (-0.19, -0.25, -0.14), (0.19, -0.13, 0.08), coarse, rng)
    pts = _relax(shirt, pts, np.full(len(pts), coarse))
    pts = pts[(skin_sdf(pts) > 0.004) & (pts[:, 1] < -0.15)]
    n = _gradient(shirt, pts)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    albedo = np.tile(SHIRT, (pts.shape[0], 1))
    color = _shade(albedo, n, np.ones(pts.shape[0]), wrap=0.25, sss=(0.0, 0.0, 0.0))
    sigma = SHIRT_SIGMA * coarse
    facing = _flat_enough(shirt, pts, n, np.full(len(pts), 2.0 * sigma)).astype(np.int8)
    parts.add("clothes", pts, _frames(n, None, rng), sigma, sigma, 0.1 * coarse,
              color, 0.99, pose=0.0, facing=facing)  # fmt: skip
    # a rolled collar (torus) hides the seam between neck and shirt
    m = int(2 * np.pi * 0.057 * 2 * np.pi * 0.0075 / (1.5 * sp) ** 2)
    u, w = rng.random(m) * 2 * np.pi, rng.random(m) * 2 * np.pi
    ring = np.stack([np.sin(u), np.zeros(m), np.cos(u)], -1)
    n = ring * np.cos(w)[:, None] + np.array([0.0, 1.0, 0.0]) * np.sin(w)[:, None]
    pts = np.array([0.0, -0.15, -0.028]) + 0.056 * ring + 0.0075 * n
    keep = skin_sdf(pts) > 0.0
    pts, n = pts[keep], n[keep]
    ao = 0.75 + 0.25 * np.clip(n[:, 1] + 0.3, 0, 1)
    color = _shade(np.tile(SHIRT * 1.25, (pts.shape[0], 1)), n, ao, wrap=0.3, sss=(0, 0, 0))
    parts.add("clothes", pts, _frames(n, None, rng), 1.2 * sp, 1.2 * sp, 0.15 * sp, color,
              0.99, pose=0.0)  # fmt: skip


# --- keypoints and skinning ------------------------------------------------------------------


def _surface_at(x: float, y: float) -> np.ndarray:
    return _trace_front(skin_sdf, np.array([[x, y, 0.14]]))[0]


def _nearest_surface(p) -> np.ndarray:
    return _project(skin_sdf, np.asarray(p, dtype=np.float64)[None, :], 10)[0][0]


def _keypoint_anchors() -> np.ndarray:
    """World positions [21, 3] of the motion-space keypoints on this head (models.KEYPOINTS)."""
    k = np.zeros((NUM_KEYPOINTS, 3))
    k[0] = _surface_at(0.0, 0.052)
    k[1] = _surface_at(-0.034, 0.036)
    k[2] = _surface_at(0.034, 0.036)
    k[3] = _surface_at(-0.046, -0.022)
    k[7] = _surface_at(0.046, -0.022)
    k[4] = _surface_at(0.0, 0.0)
    k[5] = _surface_at(0.0, -0.027)
    k[6] = _surface_at(0.0, MOUTH_Y + 0.0035)
    k[12] = _surface_at(0.0, MOUTH_Y + 0.0125)
    k[17] = _surface_at(0.0, MOUTH_Y - 0.005)
    k[19] = _surface_at(0.0, MOUTH_Y - 0.017)
    k[8] = _surface_at(0.0, -0.098)
    k[9] = _nearest_surface((-0.06, -0.07, 0.0))
    k[10] = _nearest_surface((0.06, -0.07, 0.0))
    k[14] = _surface_at(-MOUTH_HW + 0.0005, float(mouth_line(np.array([MOUTH_HW]))[0]))
    k[20] = _surface_at(MOUTH_HW - 0.0005, float(mouth_line(np.array([MOUTH_HW]))[0]))
    k[18] = _surface_at(0.0, 0.02)
    for e, (iu, il) in enumerate(((11, 13), (15, 16))):
        side = -1.0 if e == 0 else 1.0
        _, upper, lower = _lid_edges(np.zeros(1), side)
        k[iu] = _lid_point(EYE_C[e], np.zeros(1), upper, np.array([LID_R + 0.0011]))[0]
        k[il] = _lid_point(EYE_C[e], np.zeros(1), lower, np.array([LID_R + 0.0011]))[0]
    return k


# (radius in metres, side) per keypoint: side +1 only above the mouth line, -1 only below
_KP_RADIUS = {
    0: 0.032, 1: 0.016, 2: 0.016, 3: 0.024, 4: 0.011, 5: 0.011, 6: 0.009, 7: 0.024,
    8: 0.02, 9: 0.028, 10: 0.028, 11: 0.008, 12: 0.009, 13: 0.008, 14: 0.011, 15: 0.008,
    16: 0.008, 17: 0.01, 18: 0.011, 19: 0.016, 20: 0.011,
}  # fmt: skip
_UPPER_ONLY = (4, 5, 6, 12)
_LOWER_ONLY = (8, 17, 19)


def _skin_weights(pts: np.ndarray, jaw: np.ndarray, anchors: np.ndarray, active: np.ndarray):
    """Top-k keypoint weights: normalised Gaussian RBFs that fade to zero away from the face."""
    m = pts.shape[0]
    phi = np.zeros((m, NUM_KEYPOINTS))
    for j in range(NUM_KEYPOINTS):
        d2 = np.sum((pts - anchors[j]) ** 2, axis=1)
        phi[:, j] = np.exp(-d2 / _KP_RADIUS[j] ** 2)
        if j in _UPPER_ONLY:
            phi[:, j] *= 1.0 - jaw
        if j in _LOWER_ONLY:
            phi[:, j] *= jaw
    # Leave the eye sockets alone: lids and eyeballs are rigged separately and must not tear.
    for c in EYE_C:
        dist = np.linalg.norm(pts - c, axis=1)
        phi *= _smoothstep(EYE_R + 0.003, EYE_R + 0.011, dist)[:, None]
    total = phi.sum(axis=1, keepdims=True)
    w = phi / np.maximum(total, 1.0)
    w *= active[:, None]
    order = np.argsort(-w, axis=1)[:, :SKIN_K]
    top = np.take_along_axis(w, order, axis=1)
    keep_sum = top.sum(axis=1, keepdims=True)
    top = np.where(
        keep_sum > 0, top * (w.sum(axis=1, keepdims=True) / np.maximum(keep_sum, 1e-12)), 0
    )
    top[top < 1e-3] = 0.0
    return order.astype(np.uint8), top.astype(np.float32)


# --- assembly --------------------------------------------------------------------------------


def build_default_head(detail: str = "default", seed: int = 0) -> RiggedGaussianHead:
    """Build the default stylised character head, rigged to the motion space.

    detail: "default" (~50k Gaussians) or "high" (~200k). Deterministic for (detail, seed): the
    seed only jitters sample positions and tangent orientations. Takes ~15-40 s (default) and
    ~1-2 min (high) on the 2-core dev machine. Raises ValueError for an unknown detail level.
    """
    if detail not in DETAIL_LEVELS:
        raise ValueError(f"unknown detail {detail!r}; expected one of {sorted(DETAIL_LEVELS)}")
    # Base sample spacing (m): sets the Gaussian count (~50k default, ~200k high); every part's
    # spacing and disc size are multiples of it, so the fill (layers per pixel) does not change.
    sp = 0.00149 * DETAIL_LEVELS[detail]
    rng = np.random.default_rng([seed, 7])
    parts = _Parts()
    _skin(parts, sp, rng)
    _hair(parts, HAIR_SPACING * sp, rng)
    _brows(parts, sp, rng)
    _eyes(parts, sp, rng)
    _mouth(parts, sp, rng)
    _clothes(parts, sp, rng)
    g = parts.concat()
    anchors = _keypoint_anchors()
    pi = g["parts"]
    skinnable = np.isin(pi, [PART_INDEX[n] for n in ("skin", "lips", "brow")]).astype(np.float64)
    skin_index, skin_weight = _skin_weights(g["means"], g["jaw"], anchors, skinnable)
    # Order the Gaussians so that each rig set is one contiguous run (slices, not gathers):
    # partial-pose, rigid, eye parts, skinned, skinned+jaw, jaw-only.
    # Weights as stored (float32), snapped so that "1" and "0" are exact.
    g["pose"] = np.where(g["pose"] > 0.999, 1.0, g["pose"]).astype(np.float32)
    g["jaw"] = np.where(g["jaw"] < 1e-3, 0.0, g["jaw"]).astype(np.float32)
    skinned = skin_weight.sum(axis=1) > 0
    jaw = g["jaw"] > 0
    partial = g["pose"] < 1.0
    # Order so that every rig set is one contiguous run: [P-J][P&J][J-S][J&S][S-J][rest], with
    # P partial pose (neck), J jaw, S skinned (P and S never overlap); parts and neck weights
    # sorted inside groups.
    group = np.select(
        [partial & ~jaw, partial & jaw, jaw & ~skinned, jaw & skinned, skinned],
        [0, 1, 2, 3, 4],
        default=5,
    )
    order = np.lexsort((pi, np.where(partial, g["pose"], 0.0), group))
    kp_to_world = np.eye(4)
    kp_to_world[:3, :3] = KP_SCALE * np.diag([1.0, -1.0, -1.0])
    kp_to_world[:3, 3] = KP_ORIGIN
    x_c = (anchors - KP_ORIGIN) @ np.linalg.inv(kp_to_world[:3, :3]).T
    _, upper0, lower0 = _lid_edges(np.zeros(1), 1.0)
    meet0 = _lid_edges(np.zeros(1), 1.0)[0]
    k19 = anchors[19]
    rig = RigParams(
        eye_centers=EYE_C,
        eye_radius=EYE_R,
        eye_width=2.0 * LID_R * float(np.sin(PSI_C)),
        lid_travel_upper=float(LID_R * (np.sin(upper0) - np.sin(meet0))[0] / KP_SCALE),
        lid_travel_lower=float(LID_R * (np.sin(meet0) - np.sin(lower0))[0] / KP_SCALE),
        jaw_hinge=HINGE,
        jaw_gain=float(KP_SCALE / np.hypot(k19[1] - HINGE[1], k19[2] - HINGE[2])),
        pivot=PIVOT,
    )
    colors = g["colors"][order]
    return RiggedGaussianHead(
        name="default" if detail == "default" else f"default_{detail}",
        means=g["means"][order],
        quats=g["quats"][order],
        scales=g["scales"][order],
        opacities=g["opacities"][order],
        sh=((colors - 0.5) / SH_C0)[:, None, :],
        parts=pi[order],
        keypoints=x_c,
        kp_to_world=kp_to_world,
        skin_index=skin_index[order],
        skin_weight=skin_weight[order],
        jaw_weight=g["jaw"][order],
        lid_angle=g["lid_angle"][order],
        pose_weight=g["pose"][order],
        rig=rig,
        facing=g["facing"][order],
        metadata={
            "generator": "models.heads.procedural.build_default_head",
            "detail": detail,
            "seed": int(seed),
            "frame": "metres, RUB (+x viewer's right, +y up, +z out of the face)",
        },
    )
