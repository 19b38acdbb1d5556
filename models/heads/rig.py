"""A Gaussian head rigged to the motion space: identity data plus an analytic deformation model.

Frames. The head's Gaussians live in a metric "RUB" frame (metres; +x the viewer's right, +y up,
+z out of the face towards the viewer), the convention of ``renderers.gaussians``. The motion
space's keypoints live in LivePortrait's "RDF" frame in normalised units. ``kp_to_world`` [4, 4]
is the similarity between the two: ``world = kp_to_world @ [x_kp, 1]`` with the 3x3 block
``kp_scale * diag(1, -1, -1)`` (y and z flipped) and a translation (the keypoint origin in metres).

Rig (the analytic version of a per-Gaussian motion basis). Per frame of motion channels:

1. Expression: Gaussian i moves by ``sum_k skin_weight[i, k] * exp[skin_index[i, k]]``
   (keypoint units, converted to metres), i.e. each keypoint's delta moves its region smoothly.
   The channels that drive dedicated rigs below (exp_19_y, and the y of blink keypoints 11, 13,
   15, 16) do not translate.
2. Jaw: ``exp_19_y > 0`` opens the mouth. Gaussian i rotates about the jaw hinge (an x-parallel
   axis in front of the ears) by ``theta * jaw_weight[i]``, ``theta = jaw_gain * exp_19_y``
   radians (jaw_gain is set so that keypoint 19's surface point moves by exp_19_y, clamped to
   [-0.05, 0.6] rad).
3. Eyelids: per eye a closure c (0 open, 1 closed, < 0 wider than rest):
   upper ``c = (1 - eye_open) + exp_{11|15}_y / lid_travel_upper`` (+y, i.e. the upper-lid
   keypoint moving down, closes); lower ``c = (1 - eye_open) - exp_{13|16}_y / lid_travel_lower``
   (the lower-lid keypoint moving up closes); both clamped to [-0.3, 1]. Lid Gaussian i rotates
   about the eye's x axis by ``c * lid_angle[i]`` (its own angle, so the lid margin lands on the
   closure line at c = 1).
4. Stretch: where stages 1-2 stretch the surface (the skin around the mouth corners when the jaw
   opens wide), its flat discs grow with it, so the surface stays closed instead of opening gaps
   that show the mouth's dark liners behind it. Visited: discs of the skin surface (skin, lips,
   ears, neck) that face forwards (not the lips' inner walls), are isotropic in their plane, are
   moved by the skinning or the jaw, are not at a fold (the slit, the crease under the jaw) and
   whose rig weights vary across their neighbours enough to stretch them at the rig's extremes
   by 25 % through the jaw or 60 % through the skinning (see _STRETCH_MIN_JAW). Per disc, the
   deformation gradient is the least-squares fit ``F = sum_j (m'_j - m'_i) P_ij`` [3, 2] over up
   to _STRETCH_K rest neighbours on the surface (``P`` from their rest offsets in the disc's
   tangent plane), evaluated as ``F0 + FW @ d + theta u g^T`` from precomputed products (exact
   for the skinning; the jaw's turn linearised per disc). With ``C = F^T F`` in the disc's rest
   axes, its two in-plane scales grow by ``sqrt(C_kk + |C_12|)``, clamped to [1, _STRETCH_MAX]:
   an axis-aligned ellipse that contains the stretched one, so the quaternions stay as they
   are. Compression leaves discs as they are.
5. Gaze: each eyeball (sclera, iris, pupil) rotates about its centre so that the pupil moves by
   ``eye_ball`` eye-widths (+x image right, +y image down); the corneal highlight stays put.
6. Pose: ``x' = pivot + s * (x - pivot) @ R_rub + t_world`` with ``R_rub = F R F`` (F = diag(1,
   -1, -1)) the motion-space rotation ``rotation_matrix(pitch, yaw, roll)`` in RUB, and t in
   keypoint units converted to metres. Gaussians with ``pose_weight = w < 1`` (the neck) rotate
   by the fraction w of the head's rotation (same axis, w times the angle: a slerp from the
   identity), so the neck bends smoothly and the shoulders (w = 0) stay.

Cost (precomputed in ``_prepare``): each stage touches only its own index block (slices for the
built-in heads, which are sorted so that every rig set is contiguous; other heads gather and
scatter). Without a pose the local stages write straight into fresh copies of the base (copied
around the rows a stage rewrites whole), which are the outputs; with one they write into reused
scratch buffers (restoring only rows the previous frame changed and this one does not rewrite
from the base) and the pose maps them into fresh outputs. Skinning is one dense
``[24, 3]^T @ [21 + 3, S]`` sgemm (weights and base means; per column block only the keypoints
that move it); jaw and lid rotations about x are complex multiplications on float32 pairs; the
stretch is one ``[3, 21] @ [21, 2 S]`` sgemm in the same blocks and a few contiguous passes
over its S discs in reused work buffers (its fits are built lazily, on the first frame that
needs them: ~0.9 s for the 50k head, 2.5-4 s for 200k, 2-core machine at load 6); the pose is
one small matmul per array with four rows packed per product, the neck's partial turn a few
passes per component. Every BLAS call stays below OpenBLAS's threading threshold (see
_BLAS_SERIAL); everything stays float32. The 200k head, every channel active: ~6.5-10 ms on
the shared 2-core machine, whose speed drifts; ~0.65x the previous version's time in the same
process (``benchmarks.deform --against``).

Intensity and emotion channels are not read here: they condition generators, not the rig.
With every channel the rig reads at its default (CHANNEL_DEFAULTS) ``deform`` returns the base
arrays themselves (read-only), so zero motion is the identity, bit for bit.

Keypoints. ``keypoints_world(frame)`` applies the same rig to the canonical keypoints:
``kp_to_world(x_c + exp)`` then the pose about ``pivot``. Two deliberate differences from the
motion space's ``x = s * (x_c @ R + exp) + t``: the expression is applied in the head's own frame
and turns with it (a rig deforms the face, then poses the head; for typical angles and deltas the
difference is a few thousandths of a unit), and the default head pivots at the top of the neck
rather than at the keypoint origin (a pose-dependent translation). With ``exp = 0`` and
``rig.pivot`` at the keypoint origin the two agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from models.motion_space import (
    CHANNEL_DEFAULTS,
    CHANNEL_INDEX,
    CHANNELS,
    NUM_KEYPOINTS,
)

__all__ = [
    "PARTS",
    "PART_INDEX",
    "GaussianArrays",
    "RigParams",
    "RiggedGaussianHead",
    "positive_fields",
    "quat_from_matrix",
    "quat_multiply",
]

# Part labels of the Gaussians (uint8 codes). "_r" is the subject's right (image left, world -x).
PARTS: tuple[str, ...] = (
    "skin", "lips", "ear", "hair", "brow",
    "sclera_r", "iris_r", "sclera_l", "iris_l", "highlight_r", "highlight_l",
    "lid_upper_r", "lash_r", "lid_lower_r", "lid_upper_l", "lash_l", "lid_lower_l",
    "mouth", "teeth_upper", "teeth_lower", "tongue", "neck", "clothes",
)  # fmt: skip
PART_INDEX: dict[str, int] = {name: i for i, name in enumerate(PARTS)}

_F = np.array([1.0, -1.0, -1.0])  # RDF <-> RUB axis flip
_STRETCH_K = 6  # rest neighbours per disc in the stretch fit
_STRETCH_MAX = 4.0  # largest growth of a disc axis
# squared growth below which no disc is grown at all (0.1 % of a radius: invisible), so small
# expressions keep the base scales and a viewport skips re-uploading every covariance
_STRETCH_NONE = 1.001**2
# smallest strain at the rig's extremes worth visiting a disc for: from the jaw (discs of 0.8 x
# the spacing still close a surface stretched 25 %), from the skinning alone (a wide grin
# stretches the cheeks by up to ~40 %, which leaves the surface nearly closed)
_STRETCH_MIN_JAW, _STRETCH_MIN_SKIN = 0.25, 0.6
_STRETCH_FRONT = 0.25  # least z of a disc's rest normal (RUB: +z out of the face) to be visited
_FOLD_REACH = 0.002  # metres: discs this close to a surface turned away are not visited
_SKIN_EXTREME = 0.03  # keypoint units: a large expression delta (a wide grin moves ~0.025)
_JAW_EXTREME = 0.6  # radians: the jaw's clamp
_JAW_CUT = 300.0  # per metre: a jaw-weight gradient steeper than this is a cut (smooth: <~150)
# parts that form one continuous surface (neighbours across their labels count)
_SURFACE_PARTS = ("skin", "lips", "ear", "neck")
_BLINK_Y = (11, 13, 15, 16)
_JAW_KP = 19


def positive_fields(params: object, names: tuple[str, ...]) -> None:
    """Make ``params``' fields ``names`` floats, each finite and > 0 (ValueError naming the
    class and field otherwise): the scalar checks every rig's parameters share."""
    for name in names:
        value = float(getattr(params, name))
        if not np.isfinite(value) or value <= 0:
            cls = type(params).__name__
            raise ValueError(f"{cls}.{name} must be finite and > 0, got {value}")
        setattr(params, name, value)


@dataclass
class GaussianArrays:
    """Render-ready Gaussians (the fields of ``renderers.GaussianCloud``, without importing it).

    means [N, 3] float32 metres RUB; quats [N, 4] float32 unit wxyz; scales [N, 3] float32 linear
    standard deviations; opacities [N] float32 in [0, 1]; sh [N, K, 3] float32 (band 0 is f_dc:
    colour = 0.5 + SH_C0 * sh[:, 0]); facing [N] int8 in {-1, 0, 1} or None (all two-sided):
    one-sided surfels, outward normal ``facing * R[:, 2]`` (``renderers.GaussianCloud.facing``;
    the rig rotates the quats, so the normals follow; deform hands the head's array out as is).
    Arrays a frame did not change are the head's own read-only base arrays: copy before writing.
    """

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    facing: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.means.shape[0])


@dataclass
class RigParams:
    """Scalar and point parameters of the analytic rig, all in the head's metric RUB frame."""

    eye_centers: np.ndarray  # [2, 3] right eye (world -x) then left eye
    eye_radius: float  # eyeball radius, metres
    eye_width: float  # width of the eye opening, metres (the unit of the eye_ball channels)
    lid_travel_upper: float  # keypoint units of exp_{11,15}_y that close the upper lid
    lid_travel_lower: float  # keypoint units of -exp_{13,16}_y that close the lower lid
    jaw_hinge: np.ndarray  # [3] a point on the jaw's (x-parallel) hinge axis
    jaw_gain: float  # radians of jaw rotation per keypoint unit of exp_19_y
    pivot: np.ndarray  # [3] head-pose pivot (top of the neck)

    def __post_init__(self) -> None:
        self.eye_centers = np.array(self.eye_centers, dtype=np.float64).reshape(2, 3)
        self.jaw_hinge = np.array(self.jaw_hinge, dtype=np.float64).reshape(3)
        self.pivot = np.array(self.pivot, dtype=np.float64).reshape(3)
        positive_fields(
            self, ("eye_radius", "eye_width", "lid_travel_upper", "lid_travel_lower", "jaw_gain")
        )

    def to_dict(self) -> dict:
        return {
            "eye_centers": self.eye_centers.tolist(),
            "eye_radius": self.eye_radius,
            "eye_width": self.eye_width,
            "lid_travel_upper": self.lid_travel_upper,
            "lid_travel_lower": self.lid_travel_lower,
            "jaw_hinge": self.jaw_hinge.tolist(),
            "jaw_gain": self.jaw_gain,
            "pivot": self.pivot.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> RigParams:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


# --- quaternions (w, x, y, z), rotations of column vectors ---------------------------------------


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternions ``[..., 4]`` (wxyz), broadcasting."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[..., 4]`` (wxyz, w >= 0) of rotation matrices ``[..., 3, 3]``.

    The matrices rotate column vectors (``v' = m @ v``).
    """
    m = np.asarray(m, dtype=np.float64)
    # Four candidate formulas; pick per matrix the one with the largest (best conditioned) root.
    t = np.stack(
        [
            1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
            1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        axis=-1,
    )
    k = np.argmax(t, axis=-1)
    r = 0.5 * np.sqrt(np.maximum(np.take_along_axis(t, k[..., None], -1)[..., 0], 1e-30))
    s = 0.25 / r
    q = np.empty((*m.shape[:-2], 4))
    d21, d02, d10 = (
        m[..., 2, 1] - m[..., 1, 2],
        m[..., 0, 2] - m[..., 2, 0],
        m[..., 1, 0] - m[..., 0, 1],
    )
    s21, s02, s10 = (
        m[..., 2, 1] + m[..., 1, 2],
        m[..., 0, 2] + m[..., 2, 0],
        m[..., 1, 0] + m[..., 0, 1],
    )
    cand = [
        np.stack([r, d21 * s, d02 * s, d10 * s], -1),
        np.stack([d21 * s, r, s10 * s, s02 * s], -1),
        np.stack([d02 * s, s10 * s, r, s21 * s], -1),
        np.stack([d10 * s, s02 * s, s21 * s, r], -1),
    ]
    for i in range(4):
        q = np.where((k == i)[..., None], cand[i], q)
    q *= np.where(q[..., :1] < 0, -1.0, 1.0)
    return q


def _quat_matrices(q: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] (column vectors) of unit quaternions [..., 4] (wxyz)."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


_LEFT_IDX = np.array([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
_LEFT_SIGN = np.array([[1, 1, 1, 1], [-1, 1, 1, -1], [-1, -1, 1, 1], [-1, 1, -1, 1]], dtype=float)


def _rotation_quat(r: np.ndarray) -> tuple[float, float, float, float]:
    """The unit quaternion (w, x, y, z) of one rotation r [3, 3] (column vectors) as Python
    floats: the trace formula when the angle is below ~170 degrees, else
    :func:`quat_from_matrix` (numpy's per-call overhead on one 3x3 matrix costs ~50 us, and
    several run per frame)."""
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = r.tolist()
    w2 = 1.0 + r00 + r11 + r22
    if w2 < 0.01:
        return tuple(quat_from_matrix(r).tolist())
    w = 0.5 * math.sqrt(w2)
    k = 0.25 / w
    return w, (r21 - r12) * k, (r02 - r20) * k, (r10 - r01) * k


def _left_of(q: tuple[float, float, float, float]) -> np.ndarray:
    """The matrix L [4, 4] with ``quat_multiply(q, p) == p @ L`` for row quaternions p, of one
    quaternion q given as Python floats."""
    return np.array(q)[_LEFT_IDX] * _LEFT_SIGN


def _rotation_rub(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """``F rotation_matrix(pitch, yaw, roll) F`` [3, 3] (row vectors, RUB; F = diag(1, -1, -1))
    for one pose, angles in degrees: the same matrix in scalar arithmetic (numpy's batched
    version costs ~0.15 ms per call)."""
    p, y, r = math.radians(pitch), math.radians(yaw), math.radians(roll)
    cp, sp, cy, sy = math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    cr, sr = math.cos(r), math.sin(r)
    # (Rz(roll) Ry(yaw) Rx(pitch))^T, then the flips (signs of rows and columns 1 and 2)
    return np.array(
        [
            [cr * cy, -(sr * cy), sy],
            [-(cr * sy * sp - sr * cp), sr * sy * sp + cr * cp, cy * sp],
            [-(cr * sy * cp + sr * sp), sr * sy * cp - cr * sp, cy * cp],
        ]
    )


def _rotate_about_x(
    means: np.ndarray,
    quats: np.ndarray,
    center: np.ndarray,
    angle: np.ndarray,
    src_m: np.ndarray | None = None,
    src_q: np.ndarray | None = None,
) -> None:
    """Rotate points src_m [M, 3] and quats src_q [M, 4] (float32, rows contiguous; None: in
    place) about the x-parallel axis through center by per-point angles [M] (radians; positive
    turns +z towards -y, i.e. the front downwards), into means / quats [M, 3] / [M, 4].

    A rotation about x is a complex multiplication: (y + iz) * e^{ia} for the point and, for the
    quaternion (cos(a/2), sin(a/2), 0, 0) * q, (w + ix) * e^{ia/2} and (y + iz) * e^{ia/2}. So the
    float pairs are viewed as complex64 and each array is updated with a few ufunc passes
    instead of ~30 column operations. The quaternion's two pairs are multiplied column by column:
    broadcasting e^{ia/2} [M, 1] over [M, 2] runs numpy's inner loop once per row (~4x slower).
    """
    src_m = means if src_m is None else src_m
    src_q = quats if src_q is None else src_q
    half = np.asarray(angle, dtype=np.float32) * np.float32(0.5)
    rot_q = np.empty(half.shape, dtype=np.complex64)  # e^{ia/2}
    rot_q.real, rot_q.imag = np.cos(half), np.sin(half)
    rot_p = rot_q * rot_q  # e^{ia}
    yz = means[:, 1:3].view(np.complex64)[:, 0]  # [M] complex views of (y, z)
    c = np.complex64(complex(center[1], center[2]))
    np.subtract(src_m[:, 1:3].view(np.complex64)[:, 0], c, out=yz)
    yz *= rot_p
    yz += c
    if src_m is not means:
        means[:, 0] = src_m[:, 0]
    qc, qs = quats.view(np.complex64), src_q.view(np.complex64)  # [M, 2]: (w + ix, y + iz)
    np.multiply(qs[:, 0], rot_q, out=qc[:, 0])
    np.multiply(qs[:, 1], rot_q, out=qc[:, 1])


def _rotate_set(
    means: np.ndarray,
    quats: np.ndarray,
    sel: slice | np.ndarray,
    center: np.ndarray,
    angle: np.ndarray,
    src_m: np.ndarray | None = None,
    src_q: np.ndarray | None = None,
) -> None:
    """:func:`_rotate_about_x` of the rows ``sel`` of src_m / src_q (None: in place) into the
    same rows of writable means / quats: on views for a slice (no gather),
    gather-rotate-scatter for an index array."""
    src_m = means if src_m is None else src_m
    src_q = quats if src_q is None else src_q
    if isinstance(sel, slice):
        _rotate_about_x(means[sel], quats[sel], center, angle, src_m[sel], src_q[sel])
        return
    m, q = src_m[sel], src_q[sel]
    _rotate_about_x(m, q, center, angle)
    means[sel], quats[sel] = m, q


# OpenBLAS runs a product on the calling thread only while M N K <= 2^18; above it, it spreads
# even tiny products over threads, which on busy cores costs 10-100x the arithmetic (the 200k
# head's pose-only frame: 142 ms with 16k-row chunks against 8.6 ms with 4k, load 6; its
# skinning, [56k, 24] @ [24, 3]: 24-37 ms whole against 0.6-0.9 ms in blocks, load 6.5). Every
# product below is cut into blocks under this bound.
_BLAS_SERIAL = 1 << 18
_TILE_ROWS = 4096  # rows per add of a tiled offset (_add_tiled)


def _column_blocks(xt: np.ndarray, e: int = 3, keep: int = 0) -> list[tuple]:
    """xt [D, N] float32 cut for products ``mt @ xt`` with mt [e, D] (see _matmul_cols): per
    block of columns (start, stop, rows [R] intp, xt[rows, start:stop] [R, B] contiguous), rows
    those with a nonzero in the block plus the last ``keep`` always. The skinning's and the
    stretch fit's weights are local: a block of neighbouring Gaussians is moved by ~13 of the
    21 keypoints, so the product reads ~40 % less memory (the dropped terms are exact zeros)."""
    d, n = xt.shape
    step = max(1, _BLAS_SERIAL // (e * d))
    blocks = []
    for i in range(0, n, step):
        j = min(i + step, n)
        used = np.any(xt[:, i:j] != 0, axis=1)
        if keep:
            used[d - keep :] = True
        rows = np.flatnonzero(used)
        blocks.append((i, j, rows, np.ascontiguousarray(xt[rows, i:j], dtype=np.float32)))
    return blocks


def _matmul_cols(mt: np.ndarray, blocks: list[tuple], out: np.ndarray) -> None:
    """``out[...] = (mt @ xt).T`` for a small mt [E, D] float32, xt [D, N] cut into
    :func:`_column_blocks`, and out [N, E] (E ~ 3; rows contiguous).

    With the long dimension N as the product's columns OpenBLAS runs ~2x faster than
    ``xt.T @ mt.T`` with N rows (whose result has only E columns: its kernels use a fraction of
    their width). Each block's [E, B] result is written into out column by column (strided,
    one ufunc pass each; a block transpose copy runs numpy's inner loop once per row)."""
    e = mt.shape[0]
    buf = np.empty((e, max((j - i for i, j, _, _ in blocks), default=0)), dtype=np.float32)
    for i, j, rows, xb in blocks:
        b = buf[:, : j - i]
        np.matmul(mt[:, rows], xb, out=b)
        o = out[i:j]
        for c in range(e):
            o[:, c] = b[c]


_BLOCK_DIAG: dict[tuple[int, int, int], np.ndarray] = {}  # (D, E, k) -> its positions


def _block_diag(m: np.ndarray, k: int) -> np.ndarray:
    """``kron(I_k, m)`` [k D, k E] float32 (np.kron's generic path costs ~10x more): m's
    values scattered to positions cached per shape."""
    d, e = m.shape
    pos = _BLOCK_DIAG.get((d, e, k))
    if pos is None:
        rows = np.arange(k)[:, None, None] * d + np.arange(d)[None, :, None]
        cols = np.arange(k)[:, None, None] * e + np.arange(e)[None, None, :]
        pos = _BLOCK_DIAG.setdefault((d, e, k), (rows * (k * e) + cols).reshape(k, d * e))
    out = np.zeros(k * d * k * e, dtype=np.float32)
    out[pos] = m.reshape(-1)
    return out.reshape(k * d, k * e)


def _tiled(off: np.ndarray, rows: int) -> np.ndarray:
    """``np.tile(off, rows)`` [rows E] for off [E] float32 (np.tile's generic path costs ~2x)."""
    return np.repeat(off[None, :], rows, axis=0).reshape(-1)


def _add_tiled(flat: np.ndarray, off: np.ndarray) -> None:
    """In place ``flat += off`` tiled, for rows [N, E] viewed flat [N E] and off [E] float32:
    one contiguous add per _TILE_ROWS rows (broadcasting a length-3 row over [N, 3] runs
    numpy's inner loop once per row, ~3x slower)."""
    e = off.size
    tile = _tiled(off, min(flat.size // e, _TILE_ROWS))
    for i in range(0, flat.size, tile.size):
        part = flat[i : i + tile.size]
        part += tile[: part.size]


_KRON = 4  # rows packed per block-diagonal product in _affine_rows


def _affine_rows(src: np.ndarray, m: np.ndarray, off: np.ndarray | None, dst: np.ndarray) -> None:
    """``dst = src @ m + off`` for src/dst [N, D] float32 (distinct buffers, dst contiguous),
    m [D, E], off [E].

    A ``[C, 3] @ [3, 3]`` sgemm runs far below the machine's speed (the inner dimension is too
    short), so ``_KRON`` consecutive rows are packed into one: ``[C/4, 4 D] @ kron(I_4, m)``, a
    view of the same memory and the same products (the extra terms are exact zeros), ~2x faster.
    Blocks stay single-threaded (see _BLAS_SERIAL); each block's offset is added while it is in
    cache, as one flat contiguous add of the offset tiled over the block.
    """
    m = m if m.dtype == np.float32 else m.astype(np.float32)
    n = src.shape[0]
    d, e = m.shape
    k = _KRON
    nk = n - n % k if dst.flags.c_contiguous and n >= 4 * k else 0
    step = max(1, _BLAS_SERIAL // (k * d * k * e))  # packed rows per block
    tile = None
    if off is not None:
        tile = _tiled(np.asarray(off, dtype=np.float32), min(n, max(step * k, _TILE_ROWS)))
    if nk:
        mk = _block_diag(m, k)
        xs = src[:nk].reshape(nk // k, k * d)
        ys = dst[:nk].reshape(nk // k, k * e)  # a view: dst is contiguous
        for i in range(0, nk // k, step):
            o = ys[i : i + step]
            np.matmul(xs[i : i + step], mk, out=o)
            if tile is not None:
                flat = o.reshape(-1)
                flat += tile[: flat.size]
    rows = min(_TILE_ROWS, _BLAS_SERIAL // (d * e))
    for i in range(nk, n, rows):
        o = dst[i : i + rows]
        np.matmul(src[i : i + rows], m, out=o)
        if tile is not None:
            flat = o.reshape(-1)  # a view: dst is contiguous
            flat += tile[: flat.size]


def _affine_set(
    src: np.ndarray, sel: slice | np.ndarray, m: np.ndarray, off: np.ndarray | None,
    dst: np.ndarray,
) -> None:  # fmt: skip
    """``dst[sel] = src[sel] @ m + off`` (see :func:`_affine_rows`): straight into dst's rows
    for a slice, through a temporary for an index array (whose ``dst[sel]`` is a copy)."""
    if isinstance(sel, slice):
        _affine_rows(src[sel], m, off, dst[sel])
        return
    out = np.empty((sel.size, m.shape[1]), dtype=np.float32)
    _affine_rows(src[sel], m, off, out)
    dst[sel] = out


def _scale_shift_set(
    src: np.ndarray, sel: slice | np.ndarray, s: float, off: np.ndarray, dst: np.ndarray
) -> None:
    """``dst[sel] = s * src[sel] + off`` for rows [N, 3] float32 and off [3]: elementwise (the
    same float32 results as the product with ``s I``, at a fraction of its cost)."""
    out = dst[sel] if isinstance(sel, slice) else np.empty((sel.size, 3), dtype=np.float32)
    flat = out.reshape(-1)  # a view: slices of contiguous rows are contiguous
    np.multiply(src[sel].reshape(-1), np.float32(s), out=flat)
    _add_tiled(flat, np.asarray(off, dtype=np.float32))
    if not isinstance(sel, slice):
        dst[sel] = out


def _copy_except(base: np.ndarray, skip: list) -> np.ndarray:
    """A fresh copy of base [N, ...] except the rows of the slices in skip (left uninitialised:
    the caller rewrites them whole); index arrays in skip are copied like the other rows."""
    spans = sorted((s.start, s.stop) for s in skip if isinstance(s, slice) and s.stop > s.start)
    if not spans:
        return base.copy()
    out = np.empty_like(base)
    at = 0
    for start, stop in spans:
        if start > at:
            out[at:start] = base[at:start]
        at = max(at, stop)
    out[at:] = base[at:]
    return out


def _runs(idx: np.ndarray) -> list[slice]:
    """Sorted indices split into maximal contiguous runs, as slices."""
    if idx.size == 0:
        return []
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [idx.size]])
    return [slice(int(idx[a]), int(idx[b - 1]) + 1) for a, b in zip(starts, ends, strict=True)]


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    """A slice when the sorted indices are one contiguous run (cheap views), else the indices."""
    if idx.size == 0:
        return slice(0, 0)
    if idx[-1] - idx[0] + 1 == idx.size:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


@dataclass
class RiggedGaussianHead:
    """A Gaussian head (identity) with canonical keypoints and an analytic motion-space rig.

    Base Gaussians (rest pose, metres RUB): means [N, 3] float32, quats [N, 4] float32 wxyz,
    scales [N, 3] float32, opacities [N] float32, sh [N, K, 3] float32.
    parts [N] uint8 codes into PARTS. keypoints [21, 3] float64 canonical x_c (motion-space RDF
    units). kp_to_world [4, 4] float64 similarity, keypoint units -> metres (see module doc).
    skin_index [N, k] uint8 keypoint indices, skin_weight [N, k] float32 (0 where unused).
    jaw_weight [N] float32 in [0, 1]; lid_angle [N] float32 radians (closure rotation of lid
    Gaussians, 0 elsewhere); pose_weight [N] float32 in [0, 1]. rig: RigParams.
    facing [N] int8 in {-1, 0, 1} (None: all 0, two-sided): one-sided surfels of closed surfaces,
    outward normal ``facing * R[:, 2]``, culled by the renderers when seen from behind.
    Raises ValueError on inconsistent shapes, non-finite values or facing values outside -1..1.
    """

    name: str
    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    parts: np.ndarray
    keypoints: np.ndarray
    kp_to_world: np.ndarray
    skin_index: np.ndarray
    skin_weight: np.ndarray
    jaw_weight: np.ndarray
    lid_angle: np.ndarray
    pose_weight: np.ndarray
    rig: RigParams
    metadata: dict = field(default_factory=dict)
    facing: np.ndarray | None = None

    def __post_init__(self) -> None:
        f32 = np.float32
        self.means = _frozen(self.means, f32)
        self.quats = _frozen(self.quats, f32)
        self.scales = _frozen(self.scales, f32)
        self.opacities = _frozen(self.opacities, f32)
        self.sh = _frozen(self.sh, f32)
        self.parts = _frozen(self.parts, np.uint8)
        self.keypoints = _frozen(self.keypoints, np.float64)
        self.kp_to_world = _frozen(self.kp_to_world, np.float64)
        self.skin_index = _frozen(self.skin_index, np.uint8)
        self.skin_weight = _frozen(self.skin_weight, f32)
        self.jaw_weight = _frozen(self.jaw_weight, f32)
        self.lid_angle = _frozen(self.lid_angle, f32)
        self.pose_weight = _frozen(self.pose_weight, f32)
        n = self.means.shape[0]
        if self.facing is None:
            self.facing = np.zeros(n, dtype=np.int8)
        facing = np.asarray(self.facing)
        if facing.size and (
            facing.dtype.kind not in "iub" or facing.min() < -1 or facing.max() > 1
        ):
            raise ValueError("RiggedGaussianHead.facing: values must be -1, 0 or +1 (integers)")
        self.facing = _frozen(facing, np.int8)
        k = self.skin_index.shape[1] if self.skin_index.ndim == 2 else -1
        expected = {
            "means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,),
            "parts": (n,), "keypoints": (NUM_KEYPOINTS, 3), "kp_to_world": (4, 4),
            "skin_index": (n, k), "skin_weight": (n, k), "jaw_weight": (n,),
            "lid_angle": (n,), "pose_weight": (n,), "facing": (n,),
        }  # fmt: skip
        for name, shape in expected.items():
            a = getattr(self, name)
            if a.shape != shape or k < 1:
                raise ValueError(
                    f"RiggedGaussianHead.{name}: expected shape {shape}, got {a.shape}"
                )
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise ValueError(f"RiggedGaussianHead.{name}: contains NaN or inf")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"RiggedGaussianHead.sh: expected [N={n}, K, 3], got {self.sh.shape}")
        if not np.all(np.isfinite(self.sh)):
            raise ValueError("RiggedGaussianHead.sh: contains NaN or inf")
        if n and (self.skin_index.max() >= NUM_KEYPOINTS or self.parts.max() >= len(PARTS)):
            raise ValueError("RiggedGaussianHead: skin_index or parts out of range")
        a = self.kp_to_world[:3, :3]
        scale = float(np.cbrt(abs(np.linalg.det(a))))
        if scale <= 0 or not np.allclose(a @ a.T, scale**2 * np.eye(3), rtol=1e-6, atol=1e-12):
            raise ValueError("RiggedGaussianHead.kp_to_world: not a similarity transform")
        self._prepare()

    # --- precomputation ------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Index sets and dense weights the per-frame deformation needs (kept private)."""
        n = len(self)
        self._kp_scale = float(np.cbrt(abs(np.linalg.det(self.kp_to_world[:3, :3]))))
        self._rest = GaussianArrays(
            self.means, self.quats, self.scales, self.opacities, self.sh, self.facing
        )
        skinned = np.flatnonzero(np.any(self.skin_weight > 0, axis=1))
        self._skin_set = _as_slice(skinned)
        # Skinning as one sparse [S, 21] matrix: disp = W @ delta is a single CSR SpMV (no
        # per-slot gathers, which cost ~10x more); float32 throughout.
        import scipy.sparse as sp

        k = self.skin_index.shape[1]
        w = self.skin_weight[skinned]
        self._skin_csr = sp.csr_matrix(
            (w.ravel(), self.skin_index[skinned].astype(np.int32).ravel(),
             np.arange(0, k * skinned.size + 1, k, dtype=np.int32)),
            shape=(skinned.size, NUM_KEYPOINTS),
            dtype=np.float32,
        )  # fmt: skip
        self._skin_csr.sum_duplicates()
        self._skin_csr.eliminate_zeros()
        # Dense [21 + 3, S] = [W | base means]^T: skinned means = one sgemm [delta; I_3]^T @ it
        # (~3x faster than the CSR SpMV with three vectors, and no separate add pass; stored
        # transposed for _matmul_cols).
        self._skin_blocks = _column_blocks(
            np.concatenate([self._skin_csr.toarray(), self.means[skinned]], axis=1).T, keep=3
        )
        # Reusable work buffers for the local stages (see _take_scratch); a pool, so concurrent
        # deform calls on one head never share one.
        self._scratch_pool: list[_Scratch] = []
        jaw = np.flatnonzero(self.jaw_weight > 0)
        self._jaw_set = _as_slice(jaw)
        self._jaw_w = np.ascontiguousarray(self.jaw_weight[jaw], dtype=np.float32)
        p = self.parts
        self._eye_sets = []
        self._lid_sets = []
        for side in ("r", "l"):
            ball = np.flatnonzero(
                (p == PART_INDEX[f"sclera_{side}"]) | (p == PART_INDEX[f"iris_{side}"])
            )
            upper = np.flatnonzero(
                (p == PART_INDEX[f"lid_upper_{side}"]) | (p == PART_INDEX[f"lash_{side}"])
            )
            lower = np.flatnonzero(p == PART_INDEX[f"lid_lower_{side}"])
            self._eye_sets.append(_as_slice(ball))
            self._lid_sets.append(
                (
                    _as_slice(upper),
                    np.ascontiguousarray(self.lid_angle[upper], dtype=np.float32),
                    _as_slice(lower),
                    np.ascontiguousarray(self.lid_angle[lower], dtype=np.float32),
                )
            )
        partial = np.flatnonzero(self.pose_weight < 1.0)
        # the neck: Gaussians that stay (weight 0, the shoulders) and those that bend, each as a
        # slice when contiguous (the built-in heads are sorted that way), else an index array
        still = partial[self.pose_weight[partial] == 0.0]
        bend = partial[self.pose_weight[partial] > 0.0]
        self._still_sets = _runs(still) if len(_runs(still)) <= 4 else [still]
        # per bend set: its pose weights [B]
        self._bend_sets = []
        for r in _runs(bend) if len(_runs(bend)) <= 4 else [bend]:
            self._bend_sets.append((r, np.ascontiguousarray(self.pose_weight[r], np.float32)))
        self._has_partial = partial.size > 0
        # Which local stages may read the base instead of the scratch buffers (so that the rows
        # they rewrite need no restoring first): the jaw's means unless the skinning moved some
        # of them this frame; the lids and eyeballs when no other stage touches their rows.
        cover = np.zeros(n, dtype=np.int32)
        for e in range(2):
            cover[self._lid_sets[e][0]] += 1
            cover[self._lid_sets[e][2]] += 1
            cover[self._eye_sets[e]] += 1
        self._turns_alone = bool(
            cover.max(initial=0) <= 1
            and not cover[self._skin_set].any()
            and not cover[self._jaw_set].any()
        )
        cover[:] = 0
        cover[self._skin_set] = 1
        self._jaw_in_skin = bool(cover[self._jaw_set].any())
        full = np.ones(n, dtype=bool)
        full[partial] = False
        self._full_set = _as_slice(np.flatnonzero(full))
        ch = CHANNEL_INDEX
        e0 = ch["exp_0_x"]
        self._rig_channels = np.array(
            [ch[c] for c in ("pitch", "yaw", "roll", "tx", "ty", "tz", "scale")]
            + list(range(e0, e0 + 3 * NUM_KEYPOINTS))
            + [ch[c] for c in ("eye_open_r", "eye_open_l")]
            + [ch[f"eye_ball_{i}"] for i in range(6)]
        )
        translating = np.ones((NUM_KEYPOINTS, 3), dtype=bool)
        translating[list(_BLINK_Y), 1] = False
        translating[_JAW_KP, 1] = False
        self._translating = translating
        self._stretch_fits: tuple | None = None  # built on first use (_stretch_prepare)
        self._stretch_work: list[tuple] = []  # work buffers of _stretch (a pool)

    def prepare(self) -> None:
        """Build now what the rig otherwise builds on the first expressive frame (the stretch
        stage's fits: ~0.3 s for 50k Gaussians, plus scipy's import the first time in a
        process). Call it where a head is loaded in the background, so an interactive frame
        never pays for it. Idempotent and safe to call from any thread."""
        self._stretch_prepare()

    def _stretch_prepare(self) -> tuple:
        """The discs the stretch stage visits and their fits (see the module docstring). Per
        disc s and fit column a, values sit at column ``a S + s`` of [., 2 S] arrays, components
        first, so that _stretch runs contiguous passes: (flat [2, S] intp, the disc's two
        in-plane axes in ``scales.reshape(-1)``; base [3, 2 S] float32; fw [21, 2 S] cut by
        :func:`_column_blocks`; then float32: ug [3, 2 S], s0 [S] rest in-plane scale, g0 [2, S]
        the rest pose's own squared growth per axis; see _stretch). Built once per head,
        lazily (or by :meth:`prepare`), on the first frame with expression or jaw motion."""
        if self._stretch_fits is not None:
            return self._stretch_fits
        from scipy.spatial import cKDTree

        n, k_nb = len(self), _STRETCH_K
        z = np.zeros((3, 0), np.float32)
        sets = (np.zeros((2, 0), np.intp), z, [], z, np.zeros(0, np.float32),
                np.zeros((2, 0), np.float32))  # fmt: skip
        sc = self.scales.astype(np.float64)
        rot = _quat_matrices(self.quats.astype(np.float64))  # [N, 3, 3], columns t1, t2, n
        normals = np.ascontiguousarray(rot[:, :, 2])  # [N, 3]
        surface = np.where(np.isin(self.parts, [PART_INDEX[p] for p in _SURFACE_PARTS]), 0, 1)
        moving = (self.jaw_weight > 0) | np.any(self.skin_weight > 0, axis=1)
        flat_iso = (np.abs(sc[:, 0] - sc[:, 1]) <= 1e-6 * sc[:, 0]) & (sc[:, 2] < 0.5 * sc[:, 0])
        # Only the outer surface: the mouth's liners sit just behind the skin, and grown they
        # would poke through it.
        # And only discs that face forwards (rest normal within ~75 degrees of +z): the lips'
        # inner walls face up and down into the slit, and grown along the opening they would
        # reach across the teeth.
        front = rot[:, 2, 2] > _STRETCH_FRONT
        cand = np.flatnonzero(moving & flat_iso & (surface == 0) & front)
        if cand.size == 0:
            self._stretch_fits = sets
            return sets
        w_dense = np.zeros((n, NUM_KEYPOINTS), dtype=np.float32)
        np.add.at(w_dense, (np.arange(n)[:, None], self.skin_index.astype(np.int64)),
                  self.skin_weight)  # fmt: skip
        hinge = self.rig.jaw_hinge
        members = np.flatnonzero(surface == 0)  # neighbours: anywhere on the skin surface
        i = cand
        tree = cKDTree(self.means[members])
        k_q = min(3 * k_nb, members.size)
        d, j = tree.query(self.means[i], k_q)
        d, j = d.reshape(i.size, k_q), members[j.reshape(i.size, k_q)]
        t1, t2, nrm = rot[i, :, 0], rot[i, :, 1], rot[i, :, 2]
        # same side of the surface (not the facing wall across the lips' slit), not itself,
        # within reach of the disc (4 sigma), not across a cut of the jaw weights (the lips'
        # fronts meet at the mouth line, facing the same way: a jump there is no stretch)
        facing = np.einsum("mc,mkc->mk", nrm, normals[j])
        jump = np.abs(self.jaw_weight[j] - self.jaw_weight[i][:, None])
        valid = (facing > 0.5) & (d > 1e-9) & (d < 4.0 * sc[i, :1]) & (jump <= _JAW_CUT * d)
        rank = np.cumsum(valid, axis=1)
        keep = valid & (rank <= k_nb)
        # the first k_nb valid neighbours, padded with the disc itself (zero weight)
        slot = np.where(keep, rank - 1, k_nb)
        nb = np.repeat(i[:, None], k_nb + 1, axis=1)
        np.put_along_axis(nb, slot, np.where(keep, j, i[:, None]), axis=1)
        nb = nb[:, :k_nb]
        off = self.means[nb].astype(np.float64) - self.means[i][:, None]
        uv = np.stack([np.einsum("mkc,mc->mk", off, t1), np.einsum("mkc,mc->mk", off, t2)], -1)
        ata = np.einsum("mka,mkb->mab", uv, uv)  # [M, 2, 2]
        det = ata[:, 0, 0] * ata[:, 1, 1] - ata[:, 0, 1] ** 2
        # at least three neighbours spread over the plane (not along one line)
        tr = ata[:, 0, 0] + ata[:, 1, 1]
        good = (keep.sum(1) >= 3) & (det > 0.05 * tr * tr)
        inv = np.stack([np.stack([ata[:, 1, 1], -ata[:, 0, 1]], -1),
                        np.stack([-ata[:, 0, 1], ata[:, 0, 0]], -1)], 1)  # fmt: skip
        inv /= np.where(good, det, 1.0)[:, None, None]
        p_all = np.einsum("mka,mab->mkb", uv, inv)  # [M, K, 2]
        # strain bounds at the rig's extremes, from the weight differences to the neighbours
        dist = np.maximum(np.linalg.norm(off, axis=2), 1e-9)
        lever = np.hypot(self.means[i, 1] - hinge[1], self.means[i, 2] - hinge[2])
        dj = np.abs(self.jaw_weight[nb] - self.jaw_weight[i][:, None])
        jaw_strain = _JAW_EXTREME * lever * np.max(dj / dist, axis=1)
        dw = np.abs(w_dense[nb] - w_dense[i][:, None]).sum(axis=2)
        skin_strain = (_SKIN_EXTREME * self._kp_scale) * np.max(dw / dist, axis=1)
        use = good & ((jaw_strain > _STRETCH_MIN_JAW) | (skin_strain > _STRETCH_MIN_SKIN))
        # At a fold (a surface turned away within _FOLD_REACH or 3 sigma: the lips' walls
        # and rims at the slit, the crease under the jaw) the baked colour is dark and a
        # grown disc would spread across the opening: those stay as they are.
        test = np.flatnonzero(use)
        reach = np.maximum(3.0 * sc[i[test], 0], _FOLD_REACH)
        k_f = min(64, members.size)
        df, jf = tree.query(self.means[i[test]], k_f, distance_upper_bound=float(reach.max()))
        df, jf = df.reshape(test.size, k_f), jf.reshape(test.size, k_f)
        hit = df < reach[:, None]
        nf = normals[members[np.where(hit, jf, 0)]]  # [T, k_f, 3]
        fold = np.any(hit & (np.einsum("mc,mkc->mk", nrm[test], nf) < 0.2), axis=1)
        use[test[fold]] = False
        import scipy.sparse as sp

        idx, nbs, pw = cand[use], nb[use], p_all[use]  # [S], [S, K], [S, K, 2]
        m = idx.size
        # The fit as one sparse [2 S, N] matrix: row c S + s of fit @ x is
        # sum_j P_sjc (x_j - x_s) for any per-Gaussian quantity x.
        cols = np.concatenate([nbs, idx[:, None]], axis=1)  # [S, K + 1]
        vals = np.concatenate([pw, -pw.sum(axis=1, keepdims=True)], axis=1)  # [S, K + 1, 2]
        fit = sp.csr_matrix(
            (vals.transpose(2, 0, 1).ravel(), np.tile(cols, (2, 1)).ravel(),
             np.arange(0, 2 * m * (k_nb + 1) + 1, k_nb + 1)),
            shape=(2 * m, n),
        )  # fmt: skip
        # The skinned means are base + W @ d (d [21, 3] the frame's deltas, metres), so
        # their F is fit @ base + (fit @ W) @ d. The jaw then turns disc s by theta w_s about
        # x: F <- R (F + theta u_s g_s^T), u_s = dR/dtheta R^T (m_s - hinge) (rest m_s: the
        # skinning moves it by millimetres on a ~0.1 m lever), g_s = fit @ jaw_weight;
        # C = F^T F loses R.
        base = fit @ self.means.astype(np.float64)  # [2 S, 3]
        fw = fit @ w_dense.astype(np.float64)  # [2 S, 21]
        g = fit @ self.jaw_weight.astype(np.float64)  # [2 S]
        rel = self.means[idx].astype(np.float64) - hinge
        u = np.stack([np.zeros(m), -rel[:, 2], rel[:, 1]], -1)  # [S, 3]
        ug = np.stack([u * g[:m, None], u * g[m:, None]], axis=1)  # [S, 2, 3]

        base_f = _per_disc(base, m)
        # The least-squares fit of a curved surface is not exactly the identity at rest (its
        # squared growth reaches ~1.1 on the default head's tightest curves): growth is measured
        # against the rest pose's own, so the rest and small expressions grow nothing.
        c12 = np.abs(np.einsum("ij,ij->i", base_f[:, 0], base_f[:, 1]))
        g0 = np.stack([np.einsum("ij,ij->i", base_f[:, a], base_f[:, a]) + c12 for a in (0, 1)], 1)
        sets = (
            np.stack([3 * idx, 3 * idx + 1]).astype(np.intp),
            _components(base),
            _column_blocks(_components(fw)),
            _components(np.concatenate([ug[:, 0], ug[:, 1]])),
            np.ascontiguousarray(sc[idx, 0], dtype=np.float32),
            np.ascontiguousarray(np.maximum(g0, 1e-6).T, dtype=np.float32),
        )
        self._stretch_fits = sets  # published whole: a concurrent frame sees all or none
        return sets

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def kp_scale(self) -> float:
        """Metres per keypoint unit."""
        return self._kp_scale

    @property
    def rest(self) -> GaussianArrays:
        """The base Gaussians (read-only arrays), i.e. ``deform(CHANNEL_DEFAULTS)``."""
        return self._rest

    def kp_to_world_points(self, x: np.ndarray) -> np.ndarray:
        """Keypoint-space points ``[..., 3]`` (RDF units) -> head metres RUB ``[..., 3]``."""
        x = np.asarray(x, dtype=np.float64)
        return x @ self.kp_to_world[:3, :3].T + self.kp_to_world[:3, 3]

    def world_to_kp_points(self, p: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`kp_to_world_points`."""
        p = np.asarray(p, dtype=np.float64)
        return (p - self.kp_to_world[:3, 3]) @ np.linalg.inv(self.kp_to_world[:3, :3]).T

    # --- deformation ---------------------------------------------------------------------------

    def _check_frame(self, frame: np.ndarray) -> np.ndarray:
        v = np.asarray(frame, dtype=np.float64)
        if v.shape != (len(CHANNELS),):
            raise ValueError(f"deform: expected a frame of {len(CHANNELS)} channels, got {v.shape}")
        if not np.all(np.isfinite(v[self._rig_channels])):
            raise ValueError("deform: the frame contains NaN or inf")
        return v

    def _pose(self, v: np.ndarray) -> tuple[np.ndarray, float, np.ndarray] | None:
        """(R_rub [3, 3] for row vectors, scale, t_world [3]) or None when the pose is rest."""
        ch = CHANNEL_INDEX
        pitch, yaw, roll = v[ch["pitch"]], v[ch["yaw"]], v[ch["roll"]]
        s = float(v[ch["scale"]])
        t = v[ch["tx"] : ch["tz"] + 1]
        if pitch == 0 and yaw == 0 and roll == 0 and s == 1.0 and not np.any(t):
            return None
        return _rotation_rub(pitch, yaw, roll), s, t * _F * self._kp_scale

    def deform(self, frame: np.ndarray) -> GaussianArrays:
        """The Gaussians driven by one frame of motion channels ``[len(CHANNELS)]``.

        Returns GaussianArrays in the head's metric RUB frame. Arrays the frame leaves unchanged
        are the base arrays (read-only, not copies); at CHANNEL_DEFAULTS all of them are.
        Raises ValueError for a wrong shape or NaN/inf in the channels the rig reads.

        Cost: every stage touches only its own precomputed (contiguous, for the built-in heads)
        block (module docstring): without a pose the stages write into fresh copies of the base,
        with one into reused scratch buffers that the pose maps into fresh outputs. Thread-safe:
        concurrent calls take separate scratch and work buffers from per-head pools.
        """
        v = self._check_frame(frame)
        if np.array_equal(v[self._rig_channels], CHANNEL_DEFAULTS[self._rig_channels]):
            return self._rest
        e0 = CHANNEL_INDEX["exp_0_x"]
        exp = v[e0 : e0 + 3 * NUM_KEYPOINTS].reshape(NUM_KEYPOINTS, 3)
        pose = self._pose(v)
        if pose is None:  # the local stages write straight into fresh outputs
            return self._deform(v, exp, None, None)
        scratch = self._take_scratch()
        try:
            return self._deform(v, exp, pose, scratch)
        finally:
            self._scratch_pool.append(scratch)

    def _take_scratch(self) -> _Scratch:
        """A work buffer pair equal to the base arrays except on its ``dirty`` row sets (those
        the previous frame that used it changed; the local stages restore them as needed)."""
        try:
            return self._scratch_pool.pop()
        except IndexError:
            return _Scratch(self.means.copy(), self.quats.copy())

    def _deform(
        self, v: np.ndarray, exp: np.ndarray, pose: tuple | None, scratch: _Scratch | None
    ) -> GaussianArrays:
        """Stages 1-6 for a checked frame v, its expression deltas exp [21, 3] and its pose
        (:meth:`_pose`). With a pose the local stages (1-5) write into the scratch buffers
        (reused across frames; only rows the previous frame changed are restored) and the pose
        maps them into fresh outputs; without one (scratch None) they write into fresh copies
        of the base, which are the outputs."""
        rig = self.rig
        exp_t = np.where(self._translating, exp, 0.0)
        skin = bool(exp_t.any()) and self._skin_csr.nnz > 0
        # the per-frame scalars as Python floats (numpy scalar calls cost microseconds each)
        jaw_y, up_r, low_r, up_l, low_l = exp[[_JAW_KP, 11, 13, 15, 16], 1].tolist()
        theta = min(max(rig.jaw_gain * jaw_y, -0.05), 0.6)
        jaw = theta != 0.0 and self._jaw_w.size > 0
        # the rotations of stages 3 and 5: (rows, centre, per-row angles) and (rows, rot, centre)
        lids, gazes = [], []
        ch = CHANNEL_INDEX
        eye_open = (float(v[ch["eye_open_r"]]), float(v[ch["eye_open_l"]]))
        ball = v[ch["eye_ball_0"] : ch["eye_ball_5"] + 1].reshape(2, 3).tolist()
        for e, (y_up, y_low) in enumerate(((up_r, low_r), (up_l, low_l))):
            closed = 1.0 - eye_open[e]
            c_up = min(max(closed + y_up / rig.lid_travel_upper, -0.3), 1.0)
            c_low = min(max(closed - y_low / rig.lid_travel_lower, -0.3), 1.0)
            up_sel, up_angle, low_sel, low_angle = self._lid_sets[e]
            for sel, angle, c in ((up_sel, up_angle, c_up), (low_sel, low_angle, c_low)):
                if c != 0.0 and angle.size:
                    lids.append((sel, rig.eye_centers[e], np.float32(c) * angle))
            if ball[e][0] != 0.0 or ball[e][1] != 0.0:
                lim = 0.95 * rig.eye_radius
                a = math.asin(min(max(ball[e][0] * rig.eye_width, -lim), lim) / rig.eye_radius)
                b = math.asin(min(max(ball[e][1] * rig.eye_width, -lim), lim) / rig.eye_radius)
                ca, sa, cb, sb = math.cos(a), math.sin(a), math.cos(b), math.sin(b)
                # ry @ rx (column vectors): pupil to +x (image right) and -y (image down)
                rot = np.array([[ca, sa * sb, sa * cb], [0.0, cb, -sb], [-sa, ca * sb, ca * cb]])
                gazes.append((self._eye_sets[e], rot, rig.eye_centers[e]))
        turns = jaw or bool(lids) or bool(gazes)  # stages that move means and quats

        # rows each array gets rewritten whole this frame from the base (or, for the skinning,
        # from its weights): a fresh output copies the base around them, the scratch buffers
        # need not restore them
        fresh_m = [self._skin_set] if skin else []
        fresh_q = [self._jaw_set] if jaw else []  # nothing before the jaw turns quats
        if jaw and not (skin and self._jaw_in_skin):
            fresh_m.append(self._jaw_set)
        if self._turns_alone:
            fresh_m += [sel for sel, _, _ in lids] + [sel for sel, _, _ in gazes]
            fresh_q += [sel for sel, _, _ in lids] + [sel for sel, _, _ in gazes]
        means, quats, scales = self.means, self.quats, self.scales
        if scratch is None:
            if skin or turns:
                means = _copy_except(self.means, fresh_m)
            if turns:
                quats = _copy_except(self.quats, fresh_q)
        elif skin or turns:
            for sel in scratch.dirty_m:
                if not any(sel is f for f in fresh_m):
                    scratch.m[sel] = self.means[sel]
            for sel in scratch.dirty_q:
                if not any(sel is f for f in fresh_q):
                    scratch.q[sel] = self.quats[sel]
            means, quats = scratch.m, scratch.q
            scratch.dirty_m = [self._skin_set] if skin else []
            scratch.dirty_q = []
            if turns:
                moved = (
                    ([self._jaw_set] if jaw else [])
                    + [sel for sel, _, _ in lids]
                    + [sel for sel, _, _ in gazes]
                )
                scratch.dirty_m += moved
                scratch.dirty_q += moved

        # 1. expression: one dense [24, 3]^T @ [24, S] product over the skinned Gaussians.
        d = None
        if skin:
            d = np.empty((NUM_KEYPOINTS + 3, 3), dtype=np.float32)
            d[:NUM_KEYPOINTS] = exp_t * (_F * self._kp_scale)  # [21, 3] metres RUB
            d[NUM_KEYPOINTS:] = np.eye(3, dtype=np.float32)
            sel = self._skin_set
            if isinstance(sel, slice):
                _matmul_cols(np.ascontiguousarray(d.T), self._skin_blocks, means[sel])
            else:
                out = np.empty((self._skin_csr.shape[0], 3), dtype=np.float32)
                _matmul_cols(np.ascontiguousarray(d.T), self._skin_blocks, out)
                means[sel] = out

        # 2. jaw (nothing before it turns quats)
        if jaw:
            src_m = means if skin and self._jaw_in_skin else self.means
            _rotate_set(means, quats, self._jaw_set, rig.jaw_hinge,
                        np.float32(theta) * self._jaw_w, src_m, self.quats)  # fmt: skip

        # 3. eyelids, then 5. gaze (disjoint rows: the order between them is free)
        src_m, src_q = (self.means, self.quats) if self._turns_alone else (means, quats)
        for sel, center, angle in lids:
            _rotate_set(means, quats, sel, center, angle, src_m, src_q)
        for sel, rot, center in gazes:
            m_rows, q_rows = means[sel], quats[sel]  # views for a slice, else copies
            if src_m is means:  # rotating in place needs a copy of its input
                rows_m, rows_q = m_rows.copy(), q_rows.copy()
            else:
                rows_m, rows_q = src_m[sel], src_q[sel]
            # p' = (p - c) rot^T + c = p rot^T + (c - c rot^T)
            _affine_rows(rows_m, rot.T, center - center @ rot.T, m_rows)
            _affine_rows(rows_q, _left_of(_rotation_quat(rot)), None, q_rows)
            if not isinstance(sel, slice):
                means[sel], quats[sel] = m_rows, q_rows

        # 4. stretch: discs grow where the skinning and the jaw stretch the surface
        s = 1.0 if pose is None else pose[1]
        if skin or jaw:
            fits = self._stretch_prepare()
            if fits[4].size:
                grown = self._stretch(None if d is None else d[:NUM_KEYPOINTS], theta, s, fits)
                if grown is not None:
                    scales = grown
        if pose is None:
            return GaussianArrays(means, quats, scales, self.opacities, self.sh, self.facing)

        # 6. head pose: local arrays -> fresh output arrays, block by block.
        r_rub, s, t_w = pose
        rotates = not np.array_equal(r_rub, np.eye(3))
        src_m, src_q = means, quats
        means = np.empty_like(src_m)
        quats = np.empty_like(src_q) if rotates else src_q
        pivot = rig.pivot
        full = self._full_set
        a = s * r_rub
        _affine_set(src_m, full, a, pivot - pivot @ a + t_w, means)
        if rotates:
            _affine_set(src_q, full, _left_of(_rotation_quat(r_rub.T)), None, quats)
        if self._has_partial:
            self._pose_partial(r_rub, src_m, src_q, means, quats if rotates else None, s, t_w)
        if s != 1.0 and scales is self.scales:
            scales = scales * np.float32(s)
        # hand out fresh arrays, never the scratch buffers
        quats = quats.copy() if quats is scratch.q else quats
        return GaussianArrays(means, quats, scales, self.opacities, self.sh, self.facing)

    def _stretch(
        self, d: np.ndarray | None, theta: float, s: float, fits: tuple
    ) -> np.ndarray | None:
        """Stage 4 for the skinning deltas d [21, 3] (metres RUB; None: no skinning) and the jaw
        angle theta; returns fresh scales [N, 3] float32 times the pose scale s, or None when no
        disc grows (the smallest expressions): the caller keeps the shared base scales, so a
        viewport re-uploads only the means, not every covariance."""
        flat_idx, base, fw, ug, s0, g0 = fits
        m = s0.size
        # work buffers reused across frames (fresh ones cost more in page faults than the
        # arithmetic); a pool, so concurrent frames never share one
        try:
            f, sq, c12 = self._stretch_work.pop()
        except IndexError:
            f, sq, c12 = np.empty_like(base), np.empty_like(base), np.empty(m, np.float32)
        try:
            # F [3, 2 m]: component c of disc i's fit column a at [c, a m + i]
            if d is None:
                np.copyto(f, base)
            else:
                dt = np.ascontiguousarray(d.T)  # [3, 21]
                for i, j, rows, fb in fw:
                    np.matmul(dt[:, rows], fb, out=f[:, i:j])
                f += base
            if theta != 0.0:
                np.multiply(ug, np.float32(theta), out=sq)
                f += sq
            # C = F^T F [m, 2, 2] in the disc's own rest axes (rotations drop out). The disc
            # keeps its axes and grows to diag(C11 + |C12|, C22 + |C12|), which contains C
            # (their difference is positive semidefinite): exact for a stretch along an axis,
            # slightly wider across a stretch between them, never a gap (and no turn of the
            # quaternion).
            p = sq[:, :m]  # [3, m]
            np.multiply(f[:, :m], f[:, m:], out=p)
            np.add(p[0], p[1], out=c12)
            c12 += p[2]
            np.abs(c12, out=c12)
            np.multiply(f, f, out=sq)
            # squared growth per axis [2, m], relative to the rest pose's
            g = f[0].reshape(2, m)
            np.add(sq[0], sq[1], out=f[0])
            f[0] += sq[2]
            g += c12
            g /= g0
            if float(g.max()) <= _STRETCH_NONE:
                return None
            np.maximum(g, np.float32(1.0), out=g)
            np.minimum(g, np.float32(_STRETCH_MAX**2), out=g)
            np.sqrt(g, out=g)
            g *= s0
            if s != 1.0:
                g *= np.float32(s)
                scales = self.scales * np.float32(s)
            else:
                scales = self.scales.copy()
            out = scales.reshape(-1)  # a view: rows of 3
            out[flat_idx[0]] = g[0]
            out[flat_idx[1]] = g[1]
            return scales
        finally:
            self._stretch_work.append((f, sq, c12))

    def _pose_partial(
        self,
        r_rub: np.ndarray,
        src_m: np.ndarray,
        src_q: np.ndarray,
        means: np.ndarray,
        quats: np.ndarray | None,
        s: float,
        t_w: np.ndarray,
    ) -> None:
        """Neck Gaussians, src -> dst: the fraction w = pose_weight of the head's rotation (same
        axis, w times the angle: a slerp from the identity), full scale and translation; weight 0
        (the shoulders) only scales and translates. quats None: the rotation is the identity."""
        pivot = self.rig.pivot
        f32 = np.float32
        for sel in self._still_sets:
            if s == 1.0 and not np.any(t_w):
                means[sel] = src_m[sel]
            else:
                _scale_shift_set(src_m, sel, s, pivot - s * pivot + t_w, means)
            if quats is not None:
                quats[sel] = src_q[sel]
        # axis k and angle phi of the rotation (column form: M = r_rub.T)
        q = _rotation_quat(r_rub.T)
        sin_half = math.sqrt(q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
        phi = 2.0 * math.atan2(sin_half, q[0])
        k = np.array(q[1:]) / sin_half if sin_half > 1e-12 else np.array([1.0, 0.0, 0.0])
        kx, ky, kz = (f32(x) for x in k)
        off = (pivot + t_w).astype(f32)
        # Per component (each a contiguous [B] vector: ufuncs on [B, 3] rows with [B] weights
        # would broadcast over rows of 3, ~3x slower), Rodrigues with the per-row angle w phi:
        # d' = d cos + (k x d) sin + k (k . d)(1 - cos), d = p - pivot.
        for sel, w in self._bend_sets:
            ang = w * f32(phi)
            c, sn = np.cos(ang), np.sin(ang)
            rows = src_m[sel]
            dx, dy, dz = (rows[:, j] - f32(pivot[j]) for j in range(3))
            kd = kx * dx + ky * dy + kz * dz
            kd *= 1.0 - c  # (k . d)(1 - cos)
            out = means[sel] if isinstance(sel, slice) else np.empty_like(rows)
            # the tuple (all three cross products) is built before the loop scales dx, dy, dz
            for j, (dj, kj, cross) in enumerate(
                (
                    (dx, kx, ky * dz - kz * dy),
                    (dy, ky, kz * dx - kx * dz),
                    (dz, kz, kx * dy - ky * dx),
                )
            ):
                dj *= c
                cross *= sn
                dj += cross
                dj += kj * kd
                dj *= f32(s)
                dj += off[j]
                out[:, j] = dj
            if not isinstance(sel, slice):
                means[sel] = out
            if quats is not None:
                # cos(w phi / 2) q + sin(w phi / 2) (0, k) q
                half = w * f32(0.5 * phi)
                ch, shf = np.cos(half), np.sin(half)
                rows = src_q[sel]
                qw, qx, qy, qz = (rows[:, j] for j in range(4))
                out = quats[sel] if isinstance(sel, slice) else np.empty_like(rows)
                for j, (qj, kq) in enumerate(
                    (
                        (qw, -(kx * qx + ky * qy + kz * qz)),
                        (qx, kx * qw + ky * qz - kz * qy),
                        (qy, ky * qw + kz * qx - kx * qz),
                        (qz, kz * qw + kx * qy - ky * qx),
                    )
                ):
                    kq *= shf
                    kq += ch * qj
                    out[:, j] = kq
                if not isinstance(sel, slice):
                    quats[sel] = out

    def deform_batch(self, frames: np.ndarray) -> list[GaussianArrays]:
        """:meth:`deform` for each row of ``frames [F, len(CHANNELS)]``."""
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim != 2:
            raise ValueError(f"deform_batch: expected [F, {len(CHANNELS)}], got {frames.shape}")
        return [self.deform(f) for f in frames]

    def keypoints_world(self, frame: np.ndarray | None = None) -> np.ndarray:
        """Driven keypoints [21, 3] in metres RUB, placed by the same pose as the Gaussians.

        ``kp_to_world(x_c + exp)`` then the head pose about ``rig.pivot`` (module docstring).
        ``frame`` None means the rest pose. Raises ValueError like :meth:`deform`.
        """
        if frame is None:
            return self.kp_to_world_points(self.keypoints)
        v = self._check_frame(frame)
        e0 = CHANNEL_INDEX["exp_0_x"]
        exp = v[e0 : e0 + 3 * NUM_KEYPOINTS].reshape(NUM_KEYPOINTS, 3)
        p = self.kp_to_world_points(self.keypoints + exp)
        pose = self._pose(v)
        if pose is None:
            return p
        r_rub, s, t_w = pose
        return self.rig.pivot + s * (p - self.rig.pivot) @ r_rub + t_w

    def replace(self, **changes: object) -> RiggedGaussianHead:
        """A copy with some fields replaced (validated again); the rig and metadata are copied.

        Changing the number of Gaussians (e.g. a subset) without giving ``facing`` makes the copy
        two-sided (facing None): always drawn correctly, only without back-face culling.
        """
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["rig"] = RigParams.from_dict(self.rig.to_dict())
        d["metadata"] = dict(self.metadata)
        means = changes.get("means")
        if "facing" not in changes and means is not None and np.shape(means)[0] != len(self):
            d["facing"] = None
        d.update(changes)
        return RiggedGaussianHead(**d)


@dataclass
class _Scratch:
    """Work copies of a head's means/quats for frames with a pose; rows outside the sets in
    dirty_m / dirty_q (slices or index arrays of the rig) equal the base."""

    m: np.ndarray
    q: np.ndarray
    dirty_m: list = field(default_factory=list)
    dirty_q: list = field(default_factory=list)


def _per_disc(a: np.ndarray, m: int) -> np.ndarray:
    """Rows [2 m, ...] (all discs' first columns, then their second) -> [m, 2, ...] float32."""
    return np.ascontiguousarray(np.stack([a[:m], a[m:]], axis=1), dtype=np.float32)


def _components(a: np.ndarray) -> np.ndarray:
    """Rows [2 m, C] -> [C, 2 m] float32 contiguous (each component's values in one run)."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32).T)


def _frozen(a: np.ndarray, dtype: type) -> np.ndarray:
    """A private read-only copy: the rig hands these arrays out without copying them."""
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.setflags(write=False)
    return out
