"""The ``.thead`` head file: one zip holding a rigged Gaussian head or a rigged MPI head.

Gaussian heads, kind "talking-head/gaussian-head". Layout (zip, deflate):
    head.json        {"kind": "talking-head/gaussian-head", "version": 1, "name", "kp_to_world",
                      "rig": RigParams, "metadata", "arrays": {name: dtype}, "count": N}
    <name>.npy       one array per field of RiggedGaussianHead (means, quats, scales, opacities,
                     sh, parts, keypoints, skin_index, skin_weight, jaw_weight, lid_angle,
                     pose_weight; optional: facing, int8, absent in older files = all 0)
    thumbnail.png    a small front view (for file pickers; ignored on load)

MPI heads, kind "talking-head/mpi-head" (:class:`~models.heads.mpi_head.RiggedMPIHead`):
    head.json        {"kind": "talking-head/mpi-head", "version": 1, "name", "width", "height",
                      "num_planes", "planes_dtype": "uint8" | "float32", "depths": [D] metres,
                      "intrinsics": {"fx", "fy", "cx", "cy"}, "world_to_camera" [4, 4],
                      "kp_to_world" [4, 4], "rig": MPIRigParams, "metadata"}
    planes.npy       [D, H, W, 4] uint8 (or float32) straight RGBA, plane 0 nearest (deflated:
                     mostly transparent planes compress well)
    keypoints.npy    [21, 3] float64 canonical keypoints x_c
    thumbnail.png    the composited front view, 128 px

:func:`load_head` returns the head of the file's kind (files written before MPI heads existed
load as before). ``save_head(..., precision="float16")`` stores a Gaussian head's per-Gaussian
attributes other than the means (and the keypoints) as float16: about 40% smaller, visually
identical; loading always yields float32. Writes are atomic (temporary file in the same folder,
fsync, ``os.replace``). Every problem on load raises :class:`HeadFileError` with a one-line
message.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from models.heads.mpi_head import MPIRigParams, RiggedMPIHead
from models.heads.rig import PARTS, RiggedGaussianHead, RigParams
from models.motion_space import NUM_KEYPOINTS

__all__ = [
    "BUILTIN_HEADS",
    "HEAD_FILE_KIND",
    "HEAD_FILE_VERSION",
    "MPI_HEAD_FILE_KIND",
    "MPI_HEAD_FILE_VERSION",
    "HeadFileError",
    "builtin_head_path",
    "load_builtin_head",
    "load_head",
    "save_head",
]

HEAD_FILE_KIND = "talking-head/gaussian-head"
HEAD_FILE_VERSION = 1
MPI_HEAD_FILE_KIND = "talking-head/mpi-head"
MPI_HEAD_FILE_VERSION = 1

# name -> (dtype on load, dtype stored at float16 precision)
_ARRAYS = {
    "means": (np.float32, np.float32),
    "quats": (np.float32, np.float16),
    "scales": (np.float32, np.float16),
    "opacities": (np.float32, np.float16),
    "sh": (np.float32, np.float16),
    "parts": (np.uint8, np.uint8),
    "keypoints": (np.float64, np.float64),
    "skin_index": (np.uint8, np.uint8),
    "skin_weight": (np.float32, np.float16),
    "jaw_weight": (np.float32, np.float16),
    "lid_angle": (np.float32, np.float32),
    "pose_weight": (np.float32, np.float16),
    "facing": (np.int8, np.int8),
}
# Arrays that files written before them lack: name -> fill value on load.
_OPTIONAL = {"facing": 0}


class HeadFileError(Exception):
    """A head file cannot be read or written (the message says why, in one line)."""


def save_head(
    head: RiggedGaussianHead | RiggedMPIHead,
    path: str | os.PathLike,
    *,
    precision: str = "float32",
    thumbnail: np.ndarray | None = None,
) -> None:
    """Write ``head`` (Gaussian or MPI) to ``path`` (a ``.thead`` zip), atomically.

    precision: "float32" (exact round trip) or "float16" (see module doc; Gaussian heads only:
    MPI planes are stored in their own dtype, exactly). thumbnail: an RGB image [H, W, 3] (uint8
    or float in [0, 1]); None renders a 128 px front view (the preview splatter, or the MPI's
    planes composited). Raises ValueError for a bad precision, HeadFileError when the file cannot
    be written.
    """
    if precision not in ("float32", "float16"):
        raise ValueError(f"precision must be 'float32' or 'float16', got {precision!r}")
    from models.heads.preview import encode_png

    if isinstance(head, RiggedMPIHead):
        _save_mpi_head(
            head, Path(path), encode_png(_mpi_thumbnail(head) if thumbnail is None else thumbnail)
        )
        return
    if thumbnail is None:
        thumbnail = _thumbnail(head)
    png = encode_png(thumbnail)
    col = 0 if precision == "float32" else 1
    arrays = {name: np.asarray(getattr(head, name)).astype(dt[col]) for name, dt in _ARRAYS.items()}
    meta = {
        "kind": HEAD_FILE_KIND,
        "version": HEAD_FILE_VERSION,
        "name": head.name,
        "count": len(head),
        "kp_to_world": head.kp_to_world.tolist(),
        "rig": head.rig.to_dict(),
        "parts": list(PARTS),
        "precision": precision,
        "arrays": {k: str(v.dtype) for k, v in arrays.items()},
        "metadata": head.metadata,
    }
    try:
        members = {"head.json": json.dumps(meta, indent=1).encode()}
    except (TypeError, ValueError) as exc:
        raise HeadFileError(f"cannot write {path}: metadata is not JSON ({exc})") from exc
    members.update({f"{name}.npy": _npy(a) for name, a in arrays.items()})
    _write_zip(Path(path), members, png)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _write_zip(path: Path, members: dict[str, bytes], png: bytes) -> None:
    """Write the zip atomically: a temporary file in the same folder, fsync, ``os.replace``."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise HeadFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
                for name, data in members.items():
                    z.writestr(name, data)
                z.writestr("thumbnail.png", png, compress_type=zipfile.ZIP_STORED)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a head file is a shareable document
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise HeadFileError(f"cannot write {path}: {exc}") from exc


def _save_mpi_head(head: RiggedMPIHead, path: Path, png: bytes) -> None:
    fx, fy, cx, cy = (float(x) for x in head.intrinsics)
    meta = {
        "kind": MPI_HEAD_FILE_KIND,
        "version": MPI_HEAD_FILE_VERSION,
        "name": head.name,
        "width": head.width,
        "height": head.height,
        "num_planes": head.num_planes,
        "planes_dtype": str(head.planes.dtype),
        "depths": [float(x) for x in head.depths],
        "intrinsics": {"fx": fx, "fy": fy, "cx": cx, "cy": cy},
        "world_to_camera": head.world_to_camera.tolist(),
        "kp_to_world": head.kp_to_world.tolist(),
        "rig": head.rig.to_dict(),
        "metadata": head.metadata,
    }
    try:
        text = json.dumps(meta, indent=1, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise HeadFileError(f"cannot write {path}: metadata is not JSON ({exc})") from exc
    members = {
        "head.json": text,
        "planes.npy": _npy(np.ascontiguousarray(head.planes)),
        "keypoints.npy": _npy(np.asarray(head.keypoints, dtype=np.float64)),
    }
    _write_zip(path, members, png)


def load_head(path: str | os.PathLike) -> RiggedGaussianHead | RiggedMPIHead:
    """Read a ``.thead`` file: a RiggedGaussianHead or a RiggedMPIHead, by the file's kind.
    Raises HeadFileError (one line) for a missing, truncated or corrupt file, an unknown kind or
    newer version, missing arrays, wrong shapes/dtypes, or NaN/inf."""
    path = Path(path)
    try:
        z = zipfile.ZipFile(path, "r")
    except FileNotFoundError as exc:
        raise HeadFileError(f"{path}: no such file") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise HeadFileError(f"{path}: not a head file or truncated ({exc})") from exc
    with z:
        try:
            meta = json.loads(z.read("head.json"))
        except KeyError as exc:
            raise HeadFileError(f"{path}: head.json is missing") from exc
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
            raise HeadFileError(f"{path}: head.json is unreadable ({exc})") from exc
        if isinstance(meta, dict) and meta.get("kind") == MPI_HEAD_FILE_KIND:
            return _load_mpi_head(path, z, meta)
        if not isinstance(meta, dict) or meta.get("kind") != HEAD_FILE_KIND:
            kind = meta.get("kind") if isinstance(meta, dict) else None
            raise HeadFileError(
                f"{path}: not a Gaussian head file nor an MPI head file (kind {kind!r})"
            )
        version = meta.get("version")
        if not isinstance(version, int) or version > HEAD_FILE_VERSION or version < 1:
            raise HeadFileError(
                f"{path}: head file version {version!r} is not supported (this build reads "
                f"up to {HEAD_FILE_VERSION})"
            )
        if list(meta.get("parts", PARTS)) != list(PARTS):
            raise HeadFileError(f"{path}: unknown part labels {meta.get('parts')}")
        arrays = {}
        for name, (dtype, _) in _ARRAYS.items():
            try:
                raw = z.read(f"{name}.npy")
            except KeyError as exc:
                if name in _OPTIONAL:
                    continue
                raise HeadFileError(f"{path}: array {name}.npy is missing") from exc
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise HeadFileError(f"{path}: array {name}.npy is corrupt ({exc})") from exc
            try:
                a = np.load(io.BytesIO(raw), allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise HeadFileError(f"{path}: array {name}.npy is corrupt ({exc})") from exc
            if a.dtype.kind not in "fiu":
                raise HeadFileError(f"{path}: array {name}.npy has dtype {a.dtype}")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise HeadFileError(f"{path}: array {name}.npy contains NaN or inf")
            arrays[name] = a.astype(dtype)
    n = meta.get("count")
    if not isinstance(n, int) or n < 0:
        raise HeadFileError(f"{path}: bad Gaussian count {n!r}")
    for name, fill in _OPTIONAL.items():
        if name not in arrays:
            arrays[name] = np.full(n, fill, dtype=_ARRAYS[name][0])
    expected = {
        "means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,),
        "parts": (n,), "keypoints": (NUM_KEYPOINTS, 3), "jaw_weight": (n,),
        "lid_angle": (n,), "pose_weight": (n,), "facing": (n,),
    }  # fmt: skip
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise HeadFileError(
                f"{path}: array {name} has shape {arrays[name].shape}, expected {shape}"
            )
    sh = arrays["sh"]
    if sh.ndim != 3 or sh.shape[0] != n or sh.shape[2] != 3 or sh.shape[1] not in (1, 4, 9, 16):
        raise HeadFileError(f"{path}: array sh has shape {sh.shape}, expected [{n}, K, 3]")
    si, sw = arrays["skin_index"], arrays["skin_weight"]
    if si.ndim != 2 or si.shape[0] != n or sw.shape != si.shape:
        raise HeadFileError(f"{path}: skin arrays have shapes {si.shape} and {sw.shape}")
    try:
        rig = RigParams.from_dict(meta["rig"])
        kp_to_world = np.asarray(meta["kp_to_world"], dtype=np.float64)
        return RiggedGaussianHead(
            name=str(meta.get("name", path.stem)),
            kp_to_world=kp_to_world,
            rig=rig,
            metadata=dict(meta.get("metadata") or {}),
            **arrays,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise HeadFileError(f"{path}: invalid head ({exc})") from exc


def _read_npy(path: Path, z: zipfile.ZipFile, name: str) -> np.ndarray:
    try:
        raw = z.read(name)
    except KeyError as exc:
        raise HeadFileError(f"{path}: {name} is missing") from exc
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise HeadFileError(f"{path}: {name} is corrupt ({exc})") from exc
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise HeadFileError(f"{path}: {name} is corrupt ({exc})") from exc


def _load_mpi_head(path: Path, z: zipfile.ZipFile, meta: dict) -> RiggedMPIHead:
    version = meta.get("version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or not (1 <= version <= MPI_HEAD_FILE_VERSION)
    ):
        raise HeadFileError(
            f"{path}: MPI head file version {version!r} is not supported (this build reads "
            f"up to {MPI_HEAD_FILE_VERSION})"
        )
    for key, types in (("width", int), ("height", int), ("num_planes", int), ("depths", list),
                       ("intrinsics", dict), ("world_to_camera", list), ("kp_to_world", list),
                       ("rig", dict), ("planes_dtype", str)):  # fmt: skip
        if key not in meta:
            raise HeadFileError(f"{path}: head.json has no {key!r}")
        if not isinstance(meta[key], types) or isinstance(meta[key], bool):
            raise HeadFileError(f"{path}: head.json {key!r} has the wrong type")
    d, h, w = meta["num_planes"], meta["height"], meta["width"]
    if meta["planes_dtype"] not in ("uint8", "float32"):
        raise HeadFileError(f"{path}: planes dtype {meta['planes_dtype']!r} is not supported")
    planes = _read_npy(path, z, "planes.npy")
    if planes.shape != (d, h, w, 4) or str(planes.dtype) != meta["planes_dtype"]:
        raise HeadFileError(
            f"{path}: planes.npy is {planes.dtype} {planes.shape}, expected "
            f"{meta['planes_dtype']} {(d, h, w, 4)}"
        )
    if planes.dtype == np.float32 and not np.all(np.isfinite(planes)):
        raise HeadFileError(f"{path}: planes.npy contains NaN or inf")
    keypoints = _read_npy(path, z, "keypoints.npy")
    if keypoints.shape != (NUM_KEYPOINTS, 3) or keypoints.dtype.kind != "f":
        raise HeadFileError(
            f"{path}: keypoints.npy has shape {keypoints.shape}, expected ({NUM_KEYPOINTS}, 3)"
        )
    if not np.all(np.isfinite(keypoints)):
        raise HeadFileError(f"{path}: keypoints.npy contains NaN or inf")
    try:
        intr = meta["intrinsics"]
        intrinsics = np.array([intr["fx"], intr["fy"], intr["cx"], intr["cy"]], dtype=np.float64)
        return RiggedMPIHead(
            name=str(meta.get("name", path.stem)),
            planes=planes,
            depths=np.asarray(meta["depths"], dtype=np.float64),
            intrinsics=intrinsics,
            world_to_camera=np.asarray(meta["world_to_camera"], dtype=np.float64),
            keypoints=keypoints,
            kp_to_world=np.asarray(meta["kp_to_world"], dtype=np.float64),
            rig=MPIRigParams.from_dict(meta["rig"]),
            metadata=dict(meta.get("metadata") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HeadFileError(f"{path}: invalid MPI head ({text})") from exc


def _mpi_thumbnail(head: RiggedMPIHead, size: int = 128) -> np.ndarray:
    """The planes composited front to back over a light grey, resized to ``size`` px wide."""
    import cv2

    rgb = np.zeros((head.height, head.width, 3), np.float32)
    trans = np.ones((head.height, head.width, 1), np.float32)
    scale = np.float32(1.0 / 255.0 if head.planes.dtype == np.uint8 else 1.0)
    for plane in head.planes:  # plane 0 nearest: front to back
        p = plane.astype(np.float32) * scale
        rgb += trans * p[..., 3:] * p[..., :3]
        trans *= 1.0 - p[..., 3:]
    rgb += trans * np.array([0.85, 0.87, 0.9], np.float32)
    out_h = max(1, round(size * head.height / head.width))
    return cv2.resize(rgb, (size, out_h), interpolation=cv2.INTER_AREA)


def _thumbnail(head: RiggedGaussianHead, size: int = 128) -> np.ndarray:
    from models.heads.preview import orbit_view, render_preview

    g = head.rest
    center = head.kp_to_world_points(head.keypoints).mean(axis=0)
    lo, hi = g.means.min(axis=0), g.means.max(axis=0)
    dist = 2.6 * float(max(hi[1] - lo[1], hi[0] - lo[0]))
    # Render from a subset for speed: a thumbnail needs ~20k splats, enlarged to cover.
    step = max(1, len(head) // 20000)
    sub = type(g)(
        g.means[::step], g.quats[::step], g.scales[::step] * np.sqrt(step),
        g.opacities[::step], g.sh[::step],
    )  # fmt: skip
    target = np.array([center[0], (lo[1] + hi[1]) / 2, center[2]])
    img, _ = render_preview(
        sub, size, size, camera=orbit_view(target, dist), fov_deg=24, background=(0.85, 0.87, 0.9)
    )
    return img


# Built-in heads: name -> (file under resources/heads, detail level to rebuild it from the seed).
BUILTIN_HEADS = {
    "default": ("default.thead", "default"),
    "default_high": ("default_high.thead", "high"),
}


def builtin_head_path(name: str = "default") -> Path:
    """Path of a shipped head file (``resources/heads/<file>``); it may not exist yet."""
    if name not in BUILTIN_HEADS:
        raise KeyError(f"unknown built-in head {name!r}; expected one of {sorted(BUILTIN_HEADS)}")
    import resources

    return Path(resources.__file__).parent / "heads" / BUILTIN_HEADS[name][0]


def load_builtin_head(name: str = "default") -> RiggedGaussianHead:
    """Load a shipped head; when its file is absent, build it from the seed (seconds) instead.

    Raises KeyError for an unknown name and HeadFileError for a corrupt shipped file.
    """
    path = builtin_head_path(name)
    if path.exists():
        return load_head(path)
    from models.heads.procedural import build_default_head

    return build_default_head(BUILTIN_HEADS[name][1], seed=0)
