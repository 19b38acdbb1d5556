"""The .splat file of antimatter15's WebGL viewer: 32 bytes per Gaussian, no header.

Per splat, little-endian: position 3 x float32, scale 3 x float32 (linear standard deviations),
colour 4 x uint8 (R, G, B = clamp(0.5 + SH_C0 * f_dc) * 255; A = opacity * 255), rotation
4 x uint8 (w, x, y, z), each ``round(q * 128 + 128)`` clamped to 0..255 from a unit quaternion.
Colour is view-independent (SH degree 0 on load; higher bands are dropped on save). Files carry
no axis information: like the .ply files they are converted from, they are in the training
tools' RDF frame by default (``axes="rdf"``, converted to our RUB on load and back on save).
Round trip: positions and scales exact; colour, opacity and rotation to 8-bit quantisation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from renderers.formats.errors import FormatError, check_cloud_writable
from renderers.gaussians import SH_C0, GaussianCloud

__all__ = ["SPLAT_DTYPE", "read_splat", "write_splat"]

SPLAT_DTYPE = np.dtype(
    [("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))]
)
assert SPLAT_DTYPE.itemsize == 32


def _check_axes(axes: str) -> None:
    if axes not in ("rdf", "rub"):
        raise ValueError(f"axes must be 'rdf' or 'rub', got {axes!r}")


def read_splat(path: str | os.PathLike, axes: str = "rdf") -> GaussianCloud:
    """Read a .splat file into a GaussianCloud (RUB world, SH degree 0).

    Raises FormatError: empty file, size not a multiple of 32 bytes (truncated), NaN/inf
    positions or scales, zero/negative scales, zero-length quaternions (all four bytes 128).
    """
    _check_axes(axes)
    where = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise FormatError(f"{where}: cannot read ({e.strerror})") from None
    if not data:
        raise FormatError(f"{where}: empty file")
    if len(data) % SPLAT_DTYPE.itemsize:
        raise FormatError(
            f"{where}: truncated: {len(data)} bytes is not a multiple of 32 bytes per splat"
        )
    rec = np.frombuffer(data, SPLAT_DTYPE)
    for field in ("position", "scale"):
        bad = ~np.isfinite(rec[field]).all(axis=1)
        if bad.any():
            raise FormatError(
                f"{where}: {int(bad.sum())} splats have NaN/inf {field} "
                f"(first {int(np.argmax(bad))})"
            )
    bad = (rec["scale"] <= 0).any(axis=1)
    if bad.any():
        raise FormatError(
            f"{where}: {int(bad.sum())} splats have zero or negative scales "
            f"(first {int(np.argmax(bad))})"
        )
    q = (rec["rot"].astype(np.float64) - 128.0) / 128.0
    norm = np.linalg.norm(q, axis=1)
    bad = norm < 1e-9
    if bad.any():
        raise FormatError(
            f"{where}: {int(bad.sum())} zero-length quaternions "
            f"(first at splat {int(np.argmax(bad))})"
        )
    rgba = rec["rgba"].astype(np.float32) / np.float32(255.0)
    cloud = GaussianCloud(
        rec["position"].copy(),
        (q / norm[:, None]).astype(np.float32),
        rec["scale"].copy(),
        rgba[:, 3],
        ((rgba[:, :3].astype(np.float64) - 0.5) / SH_C0)[:, None, :].astype(np.float32),
        {"source": where, "source_axes": axes, "sh_degree": 0},
    )
    return cloud.flip_yz() if axes == "rdf" else cloud


def write_splat(path: str | os.PathLike, cloud: GaussianCloud, axes: str = "rdf") -> None:
    """Write ``cloud`` as .splat (in the ``axes`` frame, RDF by default, as viewers expect).

    Splats are written in the order given (antimatter15's converter sorts by size * opacity;
    viewers sort by depth themselves). Raises FormatError for NaN/inf values or zero/negative
    scales.
    """
    _check_axes(axes)
    where = os.fspath(path)
    check_cloud_writable(cloud, where)
    if axes == "rdf":
        cloud = cloud.flip_yz()
    rec = np.zeros(len(cloud), SPLAT_DTYPE)
    rec["position"] = cloud.means
    rec["scale"] = cloud.scales
    rgba = np.concatenate([cloud.colors, np.clip(cloud.opacities, 0.0, 1.0)[:, None]], axis=1)
    rec["rgba"] = np.clip(np.round(rgba.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    q = cloud.quats.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rec["rot"] = np.clip(np.round(q * 128.0 + 128.0), 0, 255).astype(np.uint8)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(rec.tobytes())
    os.replace(tmp, target)
