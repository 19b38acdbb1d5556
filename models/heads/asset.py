"""The ``.thead`` head file: one zip holding a rigged Gaussian head.

Layout (zip, deflate):
    head.json        {"kind": "talking-head/gaussian-head", "version": 1, "name", "kp_to_world",
                      "rig": RigParams, "metadata", "arrays": {name: dtype}, "count": N}
    <name>.npy       one array per field of RiggedGaussianHead (means, quats, scales, opacities,
                     sh, parts, keypoints, skin_index, skin_weight, jaw_weight, lid_angle,
                     pose_weight; optional: facing, int8, absent in older files = all 0)
    thumbnail.png    a small front view (for file pickers; ignored on load)

``save_head(..., precision="float16")`` stores the per-Gaussian attributes other than the means
(and the keypoints) as float16: about 40% smaller, visually identical; loading always yields
float32. Writes are atomic (temporary file in the same folder, fsync, ``os.replace``). Every
problem on load raises :class:`HeadFileError` with a one-line message.
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

from models.heads.rig import PARTS, RiggedGaussianHead, RigParams
from models.motion_space import NUM_KEYPOINTS

__all__ = [
    "BUILTIN_HEADS",
    "HEAD_FILE_KIND",
    "HEAD_FILE_VERSION",
    "HeadFileError",
    "builtin_head_path",
    "load_builtin_head",
    "load_head",
    "save_head",
]

HEAD_FILE_KIND = "talking-head/gaussian-head"
HEAD_FILE_VERSION = 1

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
    head: RiggedGaussianHead,
    path: str | os.PathLike,
    *,
    precision: str = "float32",
    thumbnail: np.ndarray | None = None,
) -> None:
    """Write ``head`` to ``path`` (a ``.thead`` zip), atomically.

    precision: "float32" (exact round trip) or "float16" (see module doc). thumbnail: an RGB
    image [H, W, 3] (uint8 or float in [0, 1]); None renders a 128 px front view with the preview
    splatter. Raises ValueError for a bad precision, HeadFileError when the file cannot be written.
    """
    if precision not in ("float32", "float16"):
        raise ValueError(f"precision must be 'float32' or 'float16', got {precision!r}")
    from models.heads.preview import encode_png

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
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise HeadFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
                z.writestr("head.json", json.dumps(meta, indent=1))
                for name, a in arrays.items():
                    buf = io.BytesIO()
                    np.save(buf, a, allow_pickle=False)
                    z.writestr(f"{name}.npy", buf.getvalue())
                z.writestr("thumbnail.png", png, compress_type=zipfile.ZIP_STORED)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a head file is a shareable document
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise HeadFileError(f"cannot write {path}: {exc}") from exc


def load_head(path: str | os.PathLike) -> RiggedGaussianHead:
    """Read a ``.thead`` file. Raises HeadFileError (one line) for a missing, truncated or corrupt
    file, a wrong kind or newer version, missing arrays, wrong shapes/dtypes, or NaN/inf."""
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
        if not isinstance(meta, dict) or meta.get("kind") != HEAD_FILE_KIND:
            raise HeadFileError(f"{path}: not a Gaussian head file (kind {meta.get('kind')!r})")
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
