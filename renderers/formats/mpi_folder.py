"""MPI folders: one RGBA PNG per plane plus ``mpi.json`` (as LLFF and Stereo Magnification do).

Folder contents:
- ``plane_00.png`` ... ``plane_{D-1}.png`` (two digits, more when D > 100): RGBA PNG, STRAIGHT
  (non-premultiplied) colour, plane 0 nearest; 8-bit (default) or 16-bit per channel
  (``bit_depth`` in mpi.json). A value v is stored as round(v * 255) (or * 65535) and read back as
  v / 255 in float32, so quantised data round-trips bit-exactly.
- ``mpi.json``: {"format": "talking-head-studio/mpi", "version": 1, "layout": "rgba" |
  "im-portrait", "bit_depth": 8 | 16, "alpha": "straight", "plane_order": "near-to-far",
  "width", "height", "intrinsics": {"fx", "fy", "cx", "cy"} (pixels; pixel (i, j)'s centre at
  (j + 0.5, i + 0.5)), "world_to_camera": [4][4] (RUB world -> OpenCV camera), "depths": [D]
  (metres), "planes": [file names]}; im-portrait adds "frontal" and "residual" file names.
- layout "im-portrait": also ``frontal.png`` and ``residual.png`` (RGB, same bit depth); the
  per-plane alphas are the A channel of the plane PNGs, whose RGB holds the blended plane colour,
  so a reader that only knows the "rgba" layout still sees the same MPI.

mpi.json is written last: a folder whose write was interrupted has no (or the old) metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from renderers.camera import Camera
from renderers.formats.errors import FormatError
from renderers.mpi import MPI, ImPortraitMPI

__all__ = ["MPI_FORMAT", "MPI_FORMAT_VERSION", "read_mpi_folder", "write_mpi_folder"]

MPI_FORMAT = "talking-head-studio/mpi"
MPI_FORMAT_VERSION = 1
_LAYOUTS = ("rgba", "im-portrait")


def _plane_name(i: int) -> str:
    return f"plane_{i:02d}.png"


def _quantise(a: np.ndarray, bit_depth: int) -> np.ndarray:
    scale = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(np.clip(a.astype(np.float64), 0.0, 1.0) * scale).astype(dtype)


def _dequantise(q: np.ndarray, bit_depth: int) -> np.ndarray:
    return q.astype(np.float32) / np.float32((1 << bit_depth) - 1)


def _write_png(path: Path, image: np.ndarray) -> None:
    """image [H, W, 3|4] RGB(A) uint8/uint16."""
    import cv2

    bgr = image[..., [2, 1, 0, 3]] if image.shape[2] == 4 else image[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise FormatError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())


def _read_png(path: Path, channels: int, bit_depth: int) -> np.ndarray:
    """[H, W, channels] RGB(A) of the PNG at ``path``; FormatError when missing or mismatched."""
    import cv2

    if not path.is_file():
        raise FormatError(f"{path.parent}: missing {path.name}")
    img = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FormatError(f"{path}: not a readable PNG")
    found = 1 if img.ndim == 2 else img.shape[2]
    if found != channels:
        kind = {3: "RGB", 4: "RGBA"}[channels]
        raise FormatError(f"{path}: expected {kind} ({channels} channels), found {found}")
    expected = np.uint8 if bit_depth == 8 else np.uint16
    if img.dtype != expected:
        raise FormatError(
            f"{path}: expected {bit_depth}-bit channels (mpi.json bit_depth), found {img.dtype}"
        )
    return img[..., [2, 1, 0, 3]] if channels == 4 else img[..., ::-1]


def write_mpi_folder(
    folder: str | os.PathLike, mpi: MPI | ImPortraitMPI, bit_depth: int = 8
) -> None:
    """Write ``mpi`` (either layout) into ``folder`` (created if needed; stale plane files of an
    earlier, larger MPI are removed). bit_depth: 8 or 16. Raises ValueError for a bad bit depth,
    TypeError for other objects."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if not isinstance(mpi, MPI | ImPortraitMPI):
        raise TypeError(f"expected MPI or ImPortraitMPI, got {type(mpi).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "mpi.json"
    if meta_path.exists():
        meta_path.unlink()  # the folder is inconsistent until the new metadata is written
    rgba = mpi.to_rgba_planes() if isinstance(mpi, ImPortraitMPI) else mpi.float_rgba()
    names = [_plane_name(i) for i in range(rgba.shape[0])]
    for old in folder.glob("plane_*.png"):
        if old.name not in names:
            old.unlink()
    q = _quantise(rgba, bit_depth)
    if isinstance(mpi, ImPortraitMPI):
        # Alpha must round-trip exactly: take it from the source, not from the blended planes.
        q[..., 3] = _quantise(mpi.alpha, bit_depth)
    for name, plane in zip(names, q, strict=True):
        _write_png(folder / name, plane)
    cam = mpi.camera
    meta: dict[str, Any] = {
        "format": MPI_FORMAT,
        "version": MPI_FORMAT_VERSION,
        "layout": "im-portrait" if isinstance(mpi, ImPortraitMPI) else "rgba",
        "bit_depth": bit_depth,
        "alpha": "straight",
        "plane_order": "near-to-far",
        "width": cam.width,
        "height": cam.height,
        "intrinsics": {"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy},
        "world_to_camera": cam.world_to_camera.tolist(),
        "depths": [float(d) for d in mpi.depths],
        "planes": names,
    }
    if isinstance(mpi, ImPortraitMPI):
        _write_png(folder / "frontal.png", _quantise(mpi.frontal, bit_depth))
        _write_png(folder / "residual.png", _quantise(mpi.residual, bit_depth))
        meta["frontal"] = "frontal.png"
        meta["residual"] = "residual.png"
    tmp = folder / "mpi.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, meta_path)


def _require(meta: dict, key: str, types: type | tuple[type, ...], where: Path) -> Any:
    if key not in meta:
        raise FormatError(f"{where}: mpi.json has no {key!r}")
    value = meta[key]
    if not isinstance(value, types) or isinstance(value, bool):
        raise FormatError(f"{where}: mpi.json {key!r} has the wrong type ({type(value).__name__})")
    return value


def read_mpi_folder(folder: str | os.PathLike) -> MPI | ImPortraitMPI:
    """Read an MPI folder: an MPI for layout "rgba", an ImPortraitMPI for "im-portrait"
    (``renderers.mpi.as_mpi`` turns either into an MPI).

    Raises FormatError: missing folder or mpi.json, bad JSON, wrong format name or a newer
    version, missing keys, missing plane files (listed), extra plane files or depths not matching
    the plane count, planes of different sizes or not matching width/height, wrong channel count
    or bit depth.
    """
    folder = Path(folder)
    meta_path = folder / "mpi.json"
    if not folder.is_dir():
        raise FormatError(f"{folder}: not a folder")
    if not meta_path.is_file():
        raise FormatError(f"{folder}: missing mpi.json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{meta_path}: bad JSON ({e})") from None
    if not isinstance(meta, dict):
        raise FormatError(f"{meta_path}: top level is not a JSON object")
    if meta.get("format") != MPI_FORMAT:
        raise FormatError(f"{meta_path}: format is {meta.get('format')!r}, not {MPI_FORMAT!r}")
    version = _require(meta, "version", int, meta_path)
    if version > MPI_FORMAT_VERSION:
        raise FormatError(
            f"{meta_path}: version {version} is newer than this reader ({MPI_FORMAT_VERSION})"
        )
    layout = _require(meta, "layout", str, meta_path)
    if layout not in _LAYOUTS:
        raise FormatError(f"{meta_path}: unknown layout {layout!r} (expected one of {_LAYOUTS})")
    bit_depth = _require(meta, "bit_depth", int, meta_path)
    if bit_depth not in (8, 16):
        raise FormatError(f"{meta_path}: bit_depth must be 8 or 16, got {bit_depth}")
    if meta.get("alpha", "straight") != "straight":
        raise FormatError(f"{meta_path}: only straight alpha is supported, got {meta['alpha']!r}")
    width = _require(meta, "width", int, meta_path)
    height = _require(meta, "height", int, meta_path)
    intr = _require(meta, "intrinsics", dict, meta_path)
    depths = _require(meta, "depths", list, meta_path)
    pose = _require(meta, "world_to_camera", list, meta_path)
    try:
        camera = Camera(
            float(intr["fx"]),
            float(intr["fy"]),
            float(intr["cx"]),
            float(intr["cy"]),
            width,
            height,
            np.asarray(pose, dtype=np.float64),
        )
        depths_arr = np.asarray(depths, dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"{meta_path}: bad camera or depths ({e})") from None
    d = len(depths)
    names = meta.get("planes", [_plane_name(i) for i in range(d)])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FormatError(f"{meta_path}: 'planes' must be a list of file names")
    if len(names) != d:
        raise FormatError(f"{meta_path}: {d} depths but {len(names)} planes listed")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FormatError(f"{folder}: missing plane files: {', '.join(missing)}")
    extra = sorted(p.name for p in folder.glob("plane_*.png") if p.name not in names)
    if extra:
        raise FormatError(
            f"{folder}: {d} depths in mpi.json but extra plane files {', '.join(extra)}"
        )
    planes = []
    for name in names:
        q = _read_png(folder / name, 4, bit_depth)
        if q.shape[:2] != (height, width):
            raise FormatError(
                f"{folder / name}: size {q.shape[1]}x{q.shape[0]} does not match "
                f"{width}x{height} in mpi.json"
            )
        planes.append(q)
    rgba = _dequantise(np.stack(planes), bit_depth)
    try:
        if layout == "rgba":
            return MPI(rgba, depths_arr, camera)
        images = []
        for key in ("frontal", "residual"):
            q = _read_png(folder / str(meta.get(key, f"{key}.png")), 3, bit_depth)
            if q.shape[:2] != (height, width):
                raise FormatError(
                    f"{folder}: {key} image is {q.shape[1]}x{q.shape[0]}, planes are "
                    f"{width}x{height}"
                )
            images.append(_dequantise(q, bit_depth))
        return ImPortraitMPI(images[0], images[1], rgba[..., 3], depths_arr, camera)
    except FormatError:
        raise
    except ValueError as e:
        raise FormatError(f"{folder}: {e}") from None
