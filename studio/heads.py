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
    "lid_upper_r", "lid_lower_r", "lid_upper_l", "lid_lower_l", "lash_r", "lash_l", "mouth",
    "teeth_upper", "teeth_lower", "tongue",
)  # fmt: skip
_FEATURE_WEIGHT = 4.0
_MAX_LOD_GROWTH = 2.0


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

    Every part keeps a fraction of its Gaussians (facial features ``_FEATURE_WEIGHT`` times the
    fraction of skin, hair and clothes, so eyes, brows and lips survive), drawn uniformly at
    random with a fixed seed so that surfaces thin out evenly instead of opening holes; the
    survivors' two largest axes grow by sqrt(kept fraction)^-1 (at most 2x) to keep coverage.
    The sub-head deforms with the same rig, so a frame costs ~budget/N of the full deform.
    Returns ``head`` itself when it has at most ``budget`` Gaussians.
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
    rng = np.random.default_rng(0)
    chosen = []
    grow = np.ones(len(head), dtype=np.float32)
    for p in np.flatnonzero(keep):
        members = np.flatnonzero(parts == p)
        pick = np.sort(rng.permutation(members)[: keep[p]])
        chosen.append(pick)
        grow[pick] = min(float(np.sqrt(counts[p] / keep[p])), _MAX_LOD_GROWTH)
    index = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    fields = (
        "means", "quats", "scales", "opacities", "sh", "parts", "skin_index", "skin_weight",
        "jaw_weight", "lid_angle", "pose_weight", "facing",
    )  # fmt: skip
    sub_arrays = {f: np.asarray(getattr(head, f))[index] for f in fields}
    scales = sub_arrays["scales"].copy()
    order = np.argsort(scales, axis=1)
    rows = np.arange(len(scales))[:, None]
    scales[rows, order[:, 1:]] *= grow[index][:, None]
    sub_arrays["scales"] = scales
    # dataclasses.replace re-runs the head's validation and rig precomputation for the subset.
    sub = dataclasses.replace(head, **sub_arrays)
    sub.metadata = dict(head.metadata)
    sub.metadata["lod_index"] = index  # [M <= budget] int64 indices into the parent's Gaussians
    with _lock:
        _remember(_lods, key, (head, sub), _LOD_CACHE_SIZE)
    return sub
