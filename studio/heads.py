"""Studio glue between a project's head reference, the head rigs (models.heads) and the renderers.

Qt-free. Resolves a project's :class:`~studio.document.HeadRef` to a rigged Gaussian head (cached,
a head file takes ~1 s to read), converts the rig's :class:`~models.heads.GaussianArrays` to a
:class:`renderers.GaussianCloud`, deforms a head for one frame of motion channels, builds
level-of-detail sub-heads for CPU-only machines and loads baked MPIs.

Asset strings understood by :func:`resolve_head` (``HeadRef.asset``):

- ``"builtin:<name>"``: a shipped head, ``resources/heads/<name>.thead``. When the file of
  ``builtin:default`` is absent the procedural default head is built instead (seconds).
- a key of ``project.assets``: an embedded ``.thead`` file (bytes).
- anything else: a path to a ``.thead`` file.

MPI heads (``HeadRef.kind == "mpi"``) name a baked MPI folder (``mpi.json`` + plane PNGs, see
``renderers.formats.mpi_folder``) by path or, relative paths, next to the project file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from resources import RESOURCES_DIR

if TYPE_CHECKING:
    from models.heads import GaussianArrays, RiggedGaussianHead, RiggedMPIHead
    from renderers import MPI, GaussianCloud
    from studio.document import HeadRef, Project

__all__ = [
    "BUILTIN_PREFIX",
    "DEFAULT_HEAD_ASSET",
    "HeadResolveError",
    "arrays_to_cloud",
    "clear_head_cache",
    "deformed_cloud",
    "head_cache_key",
    "lod_head",
    "prepare_head",
    "project_head",
    "resolve_any_head",
    "resolve_head",
    "resolve_mpi",
    "rest_cloud",
]

BUILTIN_PREFIX = "builtin:"
DEFAULT_HEAD_ASSET = "builtin:default"
_HEAD_CACHE_SIZE = 4  # a default head is ~6 MB of arrays; a few stay resident
_LOD_CACHE_SIZE = 4


class HeadResolveError(Exception):
    """A project's head cannot be turned into something the viewport can draw (missing or
    corrupt file, unknown built-in name, wrong kind). The message is one line for the user."""


_lock = threading.Lock()
_heads: OrderedDict[tuple, RiggedGaussianHead] = OrderedDict()
# (id(parent), budget) -> (parent, sub-head): holding the parent keeps its id from being reused.
_lods: OrderedDict[tuple, tuple[RiggedGaussianHead, RiggedGaussianHead]] = OrderedDict()


def clear_head_cache() -> None:
    """Forget every cached head and level-of-detail sub-head (tests, low memory)."""
    with _lock:
        _heads.clear()
        _lods.clear()


def _remember(cache: OrderedDict, key: tuple, value: object, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def head_cache_key(ref: HeadRef | str | None, assets: Mapping[str, bytes] | None = None) -> tuple:
    """The key :func:`resolve_head` caches ``ref`` under: it changes when the file or the
    embedded bytes change (path + mtime + size, or a hash of the bytes)."""
    asset = _asset_of(ref)
    if asset.startswith(BUILTIN_PREFIX):
        path = _builtin_path(asset[len(BUILTIN_PREFIX) :])
        return ("builtin", asset, *_stat(path))
    if assets is not None and asset in assets:
        return ("embedded", asset, hashlib.blake2b(assets[asset], digest_size=16).hexdigest())
    path = Path(asset).expanduser()
    return ("file", str(path.resolve()), *_stat(path))


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


def _asset_of(ref: HeadRef | str | None) -> str:
    if ref is None:
        return DEFAULT_HEAD_ASSET
    if isinstance(ref, str):
        return ref
    if ref.kind == "mpi":
        raise HeadResolveError(f"head {ref.asset!r} is an MPI, not a rigged Gaussian head")
    return ref.asset


def _builtin_path(name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise HeadResolveError(f"unknown built-in head {name!r}")
    return RESOURCES_DIR / "heads" / f"{name}.thead"


def resolve_head(
    ref: HeadRef | str | None, assets: Mapping[str, bytes] | None = None
) -> RiggedGaussianHead:
    """The rigged Gaussian head that ``ref`` names (None: the default head), cached.

    Raises HeadResolveError for an MPI reference or a rigged MPI head file (use
    :func:`resolve_any_head`), an unknown built-in head, a missing or corrupt head file.
    """
    import models.heads

    head = resolve_any_head(ref, assets)
    if isinstance(head, models.heads.RiggedMPIHead):
        raise HeadResolveError(f"head {_asset_of(ref)!r} is a rigged MPI head, not a Gaussian head")
    return head


def resolve_any_head(
    ref: HeadRef | str | None, assets: Mapping[str, bytes] | None = None
) -> RiggedGaussianHead | RiggedMPIHead:
    """The rigged head (Gaussian or MPI: whatever the .thead holds) that ``ref`` names, cached.

    Raises HeadResolveError like :func:`resolve_head`.
    """
    key = head_cache_key(ref, assets)
    with _lock:
        if key in _heads:
            _heads.move_to_end(key)
            return _heads[key]
    head = _load(_asset_of(ref), key, assets)
    with _lock:
        _remember(_heads, key, head, _HEAD_CACHE_SIZE)
    return head


def _load(
    asset: str, key: tuple, assets: Mapping[str, bytes] | None
) -> RiggedGaussianHead | RiggedMPIHead:
    from models.heads import HeadFileError, build_default_head, load_head

    try:
        if key[0] == "builtin":
            name = asset[len(BUILTIN_PREFIX) :]
            path = _builtin_path(name)
            if path.exists():
                return load_head(path)
            if name == "default":
                return build_default_head()
            raise HeadResolveError(f"unknown built-in head {name!r} (no {path})")
        if key[0] == "embedded":
            assert assets is not None
            fd, tmp = tempfile.mkstemp(suffix=".thead")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(assets[asset])
                return load_head(tmp)
            finally:
                Path(tmp).unlink(missing_ok=True)
        return load_head(Path(asset).expanduser())
    except HeadFileError as exc:
        raise HeadResolveError(f"cannot load head {asset!r}: {exc}") from exc


def project_head(project: Project) -> RiggedGaussianHead:
    """:func:`resolve_head` for ``project.head`` (embedded assets included); a project without
    a head, or with an MPI head, gets the default Gaussian head (the viewport's fallback).

    Raises HeadResolveError like :func:`resolve_head`.
    """
    ref = project.head
    if ref is None or ref.kind == "mpi":
        return resolve_head(None)
    return resolve_head(ref, project.assets)


def resolve_mpi(project: Project, project_path: str | os.PathLike | None = None) -> MPI | None:
    """The baked MPI of an MPI-kind project head, or None when the project asks for none.

    A relative asset path is looked up next to ``project_path`` (the .ths file) first.
    Raises HeadResolveError when the project asks for an MPI that is missing or unreadable.
    """
    ref = project.head
    if ref is None or ref.kind != "mpi":
        return None
    from renderers.formats import FormatError
    from renderers.formats.mpi_folder import read_mpi_folder
    from renderers.mpi import as_mpi

    folder = Path(ref.asset).expanduser()
    if not folder.is_absolute() and project_path is not None:
        beside = Path(project_path).parent / folder
        if beside.exists():
            folder = beside
    try:
        return as_mpi(read_mpi_folder(folder))
    except (FormatError, OSError, ValueError) as exc:
        raise HeadResolveError(f"cannot load the MPI {ref.asset!r}: {exc}") from exc


# ----------------------------------------------------------------------------- conversion


def arrays_to_cloud(arrays: GaussianArrays, metadata: dict | None = None) -> GaussianCloud:
    """A ``renderers.GaussianCloud`` with the same Gaussians (same frame: metres RUB; the rig
    and the renderers share conventions, so no axis change). float32 contiguous arrays are
    shared, not copied. Raises ValueError for inconsistent shapes."""
    from renderers.gaussians import GaussianCloud

    return GaussianCloud(
        arrays.means,
        arrays.quats,
        arrays.scales,
        arrays.opacities,
        arrays.sh,
        dict(metadata or {}),
        getattr(arrays, "facing", None),  # one-sided surfels (back-face culling)
    )


def rest_cloud(head: RiggedGaussianHead) -> GaussianCloud:
    """The head's rest pose as a GaussianCloud (arrays shared, read-only)."""
    return arrays_to_cloud(head.rest, {"name": head.name})


def deformed_cloud(head: RiggedGaussianHead, values: np.ndarray) -> GaussianCloud:
    """The head driven by one frame of motion channels ``values [len(CHANNELS)]``, as a cloud.

    Raises ValueError for a wrong shape or NaN/inf channels (from the rig).
    """
    return arrays_to_cloud(head.deform(values), {"name": head.name})


# Parts whose Gaussians are small but carry the expression: they keep a larger share of a LOD
# budget (a contribution-score LOD drops them first and leaves a face without eyes or brows).
_FEATURE_PARTS = (
    "lips", "brow", "sclera_r", "iris_r", "sclera_l", "iris_l", "highlight_r", "highlight_l",
    "lash_r", "lash_l",
)  # fmt: skip
_FEATURE_WEIGHT = 4.0
# Parts tucked behind others at rest (the mouth's inside behind closed lips, the lids inside the
# eye sockets): they get a plain share of the budget (mostly hidden, they would take a quarter
# of a small one as features) and their kept discs grow at most this much, or they poke through
# what hides them.
_TUCKED_PARTS = (
    "mouth", "teeth_upper", "teeth_lower", "tongue",
    "lid_upper_r", "lid_lower_r", "lid_upper_l", "lid_lower_l",
)  # fmt: skip
_TUCKED_GROWTH = 1.25
_MAX_LOD_GROWTH = 4.0  # a disc stands in for at most 16 (a 1:16 budget on skin)


def prepare_head(head: RiggedGaussianHead, budgets: Sequence[int | None] = ()) -> None:
    """Build now, in the calling thread, what the first frames would otherwise build in the GUI
    thread: the rig's lazily built data (``RiggedGaussianHead.prepare``) of ``head`` and of its
    LOD sub-heads for ``budgets`` (None entries and budgets >= the head's size are skipped).

    Why: a viewport loads heads in a background thread, but the sub-heads and the rig's stretch
    fits were made on the first interactive frame (a generation preview, a live pose): several
    hundred ms in the GUI thread on a 2-core CPU, more with scipy's first import.
    """
    head.prepare()
    for budget in budgets:
        if budget is not None and len(head) > budget:
            lod_head(head, int(budget)).prepare()


def lod_head(head: RiggedGaussianHead, budget: int) -> RiggedGaussianHead:
    """A rigged sub-head of at most ``budget`` Gaussians for interactive frames, cached.

    Every part keeps a share of the budget (facial features ``_FEATURE_WEIGHT`` times the share
    of skin, hair and clothes, so eyes, brows and lips survive). Within a part the Gaussians are
    clustered on a voxel grid sized so that about that many cells are occupied; each cell keeps
    one member, the one nearest the cell's centroid, with the colour (SH) and opacity averaged
    over the cell (weighted by alpha mass) and its two largest axes grown by the square root of
    how many of the part's Gaussians it replaces around it (at most ``_MAX_LOD_GROWTH``;
    ``_TUCKED_GROWTH`` for parts hidden at rest): one disc stands in for the patch it replaces.

    Why clusters, not a random subset: a random subset thins a surface unevenly (gaps where
    neighbours were all dropped), and a growth that is the same for every survivor cannot
    close those; the shipped head's surfels are just wide enough to close at full density, so
    a random half already showed holes. Per-cell representatives are evenly spaced, and each
    grows by the density it replaces.

    The kept Gaussians keep their own rig data (positions, skinning, jaw/lid/pose weights,
    facing), so the sub-head deforms exactly like those Gaussians of the full head, for ~M/N of
    the full deform. Returns ``head`` itself when it has at most ``budget`` Gaussians.
    Raises ValueError unless budget is a positive integer.
    """
    from models.heads.rig import PART_INDEX

    if isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise ValueError(f"LOD budget must be a positive integer, got {budget!r}")
    if len(head) <= budget:
        return head
    key = (id(head), int(budget))
    with _lock:
        hit = _lods.get(key)
        if hit is not None and hit[0] is head:
            _lods.move_to_end(key)
            return hit[1]
    parts = np.asarray(head.parts)
    counts = np.bincount(parts, minlength=int(parts.max()) + 1).astype(np.float64)
    weight = np.ones_like(counts)
    for name in _FEATURE_PARTS:
        if PART_INDEX[name] < len(weight):
            weight[PART_INDEX[name]] = _FEATURE_WEIGHT
    # Solve sum_p min(n_p, f w_p n_p) = budget for f by bisection (monotone in f).
    lo, hi = 0.0, 1.0 / float(weight.min())
    for _ in range(50):
        f = 0.5 * (lo + hi)
        if np.minimum(counts, f * weight * counts).sum() > budget:
            hi = f
        else:
            lo = f
    keep = np.floor(np.minimum(counts, lo * weight * counts)).astype(np.int64)
    means = np.asarray(head.means, dtype=np.float64)
    scales = np.asarray(head.scales, dtype=np.float64)
    # alpha mass of a disc seen face-on: the weight of its colour in the cell's average
    srt = np.sort(scales, axis=1)
    mass = np.asarray(head.opacities, np.float64) * srt[:, 2] * srt[:, 1] + 1e-12
    chosen: list[np.ndarray] = []
    cells_of: list[tuple[np.ndarray, np.ndarray, np.ndarray, float, float]] = []
    tucked = {PART_INDEX[name] for name in _TUCKED_PARTS}
    for p in np.flatnonzero(keep):
        members = np.flatnonzero(parts == p)
        if keep[p] >= members.size:
            chosen.append(members)
            continue
        cell, n_cells, size = _voxel_clusters(means[members], int(keep[p]))
        reps = _cell_representatives(means[members], cell, n_cells)
        chosen.append(members[reps])
        cap = _TUCKED_GROWTH if p in tucked else _MAX_LOD_GROWTH
        cells_of.append((members, cell, reps, size, cap))
    index = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    fields = (
        "means", "quats", "scales", "opacities", "sh", "parts", "skin_index", "skin_weight",
        "jaw_weight", "lid_angle", "pose_weight", "facing",
    )  # fmt: skip
    sub_arrays = {f: np.array(np.asarray(getattr(head, f))[index]) for f in fields}
    # where each parent Gaussian's cell representative ended up in the sub-head
    slot = np.full(len(head), -1, np.int64)
    slot[index] = np.arange(index.size)
    sh = np.asarray(head.sh, np.float64)
    opac = np.asarray(head.opacities, np.float64)
    grow = np.ones(index.size, np.float64)
    for members, cell, reps, size, cap in cells_of:
        target = slot[members[reps]][cell]  # [n members] row in the sub-head
        rows = slot[members[reps]]
        grow[rows] = np.minimum(_coverage_growth(means[members], means[members[reps]], size), cap)
        w = mass[members]
        total = np.bincount(target, weights=w, minlength=index.size)
        flat = sh[members].reshape(members.size, -1)
        avg = np.stack(
            [np.bincount(target, weights=w * flat[:, j], minlength=index.size) for j in
             range(flat.shape[1])], axis=1
        )  # fmt: skip
        sub_sh = sub_arrays["sh"].reshape(index.size, -1)
        sub_sh[rows] = (avg[rows] / total[rows, None]).astype(np.float32)
        o = np.bincount(target, weights=w * opac[members], minlength=index.size)
        sub_arrays["opacities"][rows] = (o[rows] / total[rows]).astype(np.float32)
    sub_scales = sub_arrays["scales"]
    axes = np.argsort(sub_scales, axis=1)[:, 1:]  # the two largest axes: the disc's plane
    r = np.arange(index.size)[:, None]
    sub_scales[r, axes] *= grow[:, None].astype(np.float32)
    # dataclasses.replace re-runs the head's validation and rig precomputation for the subset.
    sub = dataclasses.replace(head, **sub_arrays)
    sub.metadata = dict(head.metadata)
    sub.metadata["lod_index"] = index  # [M <= budget] int64 indices into the parent's Gaussians
    with _lock:
        _remember(_lods, key, (head, sub), _LOD_CACHE_SIZE)
    return sub


def _voxel_clusters(points: np.ndarray, target: int) -> tuple[np.ndarray, int, float]:
    """Cluster points [n, 3] on a cubic grid with at most ``target`` occupied cells (and as close
    to it as a bisection over the cell size gets): (cell [n] int64 in [0, cells), cells, the
    cell size)."""
    lo_corner = points.min(axis=0)
    extent = float(np.max(points.max(axis=0) - lo_corner)) + 1e-9
    small, big = extent * 1e-4, extent * 2.0  # big: a single cell
    best = None
    for _ in range(30):
        size = np.sqrt(small * big)
        ijk = np.floor((points - lo_corner) / size).astype(np.int64)
        keys = (ijk[:, 0] * 1_000_003 + ijk[:, 1]) * 1_000_033 + ijk[:, 2]
        uniq, cell = np.unique(keys, return_inverse=True)
        if uniq.size > target:
            small = size
        else:
            big = size
            best = (cell.reshape(-1), int(uniq.size), float(size))
            if uniq.size >= 0.995 * target:
                break
    if best is None:  # unreachable: the largest size is one cell
        return np.zeros(len(points), np.int64), 1, 2.0 * extent
    return best


def _coverage_growth(points: np.ndarray, kept: np.ndarray, cell: float) -> np.ndarray:
    """Per kept point [m, 3] of a part's points [n, 3], the factor [m] by which its disc grows
    so the kept discs cover what all of them covered: sqrt(local density of all / of kept),
    both counted within 1.5 cells. Local, not per cell: a cell that only grazes the surface holds
    few points, yet its representative sits as far from its neighbours as any other."""
    from scipy.spatial import cKDTree

    radius = 1.5 * cell
    n_all = cKDTree(points).query_ball_point(kept, radius, return_length=True)
    n_kept = cKDTree(kept).query_ball_point(kept, radius, return_length=True)
    ratio = np.maximum(n_all, 1) / np.maximum(n_kept, 1)
    return np.minimum(np.sqrt(ratio), _MAX_LOD_GROWTH)


def _cell_representatives(points: np.ndarray, cell: np.ndarray, cells: int) -> np.ndarray:
    """Per cell, the index of the member nearest the cell's centroid: [cells] int64."""
    count = np.bincount(cell, minlength=cells).astype(np.float64)
    centroid = (
        np.stack(
            [np.bincount(cell, weights=points[:, a], minlength=cells) for a in range(3)], axis=1
        )
        / count[:, None]
    )
    dist = np.sum((points - centroid[cell]) ** 2, axis=1)
    # nearest per cell: sort by (cell, distance) and take each cell's first
    order = np.lexsort((dist, cell))
    first = np.ones(order.size, bool)
    first[1:] = cell[order[1:]] != cell[order[:-1]]
    reps = order[first]
    return reps[np.argsort(cell[reps])]
