"""The standard 3D Gaussian Splatting .ply file (as written by the 3DGS training code and others).

Layout: one ``vertex`` element whose properties are read by NAME (tools order them differently):
``x y z`` (means), optional ``nx ny nz`` (normals; see "Facing" below), ``f_dc_0..2`` (SH band
0 per RGB channel), ``f_rest_0..M-1`` with M = 3 * (K - 1), K = (degree + 1)^2 (channel-major:
all R coefficients of bands 1.. then all G then all B), ``opacity`` (logit), ``scale_0..2`` (log
of the standard deviations), ``rot_0..3`` (quaternion, rot_0 = w, not necessarily normalised).
Binary little-endian, binary big-endian and ascii bodies are read; we write binary little-endian,
float32.

Activations on load: opacity = sigmoid(logit), scale = exp(log scale), quaternion normalised (a
documented repair: training code stores unnormalised quaternions; quaternions already within 1e-6
of unit length are kept bit-exact; a zero-length quaternion is an error). The writer applies the
inverses (logit, log). Means, SH coefficients and unit quaternions round-trip bit-exactly;
opacities and scales round-trip to float32 precision (within a few ulps, relative error < 1e-6),
because float32 logits / log-scales cannot represent every float32 activated value.

Axes: files from training tools use the COLMAP/OpenCV frame (RDF, +y down, +z forward); our world
is RUB. ``axes="rdf"`` converts on load (GaussianCloud.flip_yz: means, rotations and SH);
``axes="rub"`` takes the file as is. Our writer records ``comment axes rub`` (or ``rdf``) in the
header, and the reader honours such a comment when ``axes`` is None (the default); with no
comment, None means "rdf".

Facing (one-sided surfels, ``GaussianCloud.facing``): the writer stores the outward normal
``facing * R[:, 2]`` in ``nx ny nz`` (in the file's axes; zero for two-sided Gaussians, as 3DGS
writes them) and records ``comment facing nx ny nz``. The reader turns normals back into
``facing = sign(n . R[:, 2])`` where ``|n| > 0.5`` (else 0), exact for our files. Other tools put
zeros there (3DGS) or may put real point normals that do not mean "culled from behind", so by
default normals are honoured only in files carrying that comment (``facing=None``);
``facing=True`` / ``False`` forces it on or off.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from renderers.formats.errors import FormatError, check_cloud_writable
from renderers.gaussians import GaussianCloud, facing_normals

__all__ = ["read_ply", "write_ply"]

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_FORMATS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "ascii"}
_AXES = ("rdf", "rub")
_MAX_HEADER = 1 << 20
_UNIT_TOLERANCE = 1e-6


class _Element:
    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count
        # (name, numpy type) for scalars, (name, (count type, item type)) for lists
        self.properties: list[tuple[str, str | tuple[str, str]]] = []

    @property
    def has_lists(self) -> bool:
        return any(isinstance(t, tuple) for _, t in self.properties)


def _parse_header(data: bytes, where: str) -> tuple[str, list[_Element], list[str], int]:
    """(format, elements, comments, body offset) of a PLY file's bytes."""
    if not data:
        raise FormatError(f"{where}: empty file")
    if not data.startswith(b"ply"):
        raise FormatError(f"{where}: not a PLY file (does not start with 'ply')")
    m = re.search(rb"end_header[ \t]*\r?\n", data[:_MAX_HEADER])
    if m is None:
        raise FormatError(f"{where}: PLY header has no 'end_header' line")
    try:
        lines = data[: m.start()].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise FormatError(f"{where}: PLY header is not ASCII text") from None
    fmt = None
    elements: list[_Element] = []
    comments: list[str] = []
    for lineno, raw in enumerate(lines[1:], start=2):
        parts = raw.split()
        if not parts:
            continue
        key = parts[0]
        if key in ("comment", "obj_info"):
            comments.append(raw.strip()[len(key) :].strip())
        elif key == "format":
            if len(parts) < 2 or parts[1] not in _FORMATS:
                raise FormatError(f"{where}: unsupported PLY format line {raw.strip()!r}")
            fmt = parts[1]
        elif key == "element":
            if len(parts) != 3 or not parts[2].isdigit():
                raise FormatError(f"{where}: bad element line {lineno}: {raw.strip()!r}")
            elements.append(_Element(parts[1], int(parts[2])))
        elif key == "property":
            if not elements:
                raise FormatError(f"{where}: property before any element (line {lineno})")
            if len(parts) == 3 and parts[1] in _PLY_TYPES:
                elements[-1].properties.append((parts[2], _PLY_TYPES[parts[1]]))
            elif (
                len(parts) == 5
                and parts[1] == "list"
                and parts[2] in _PLY_TYPES
                and parts[3] in _PLY_TYPES
            ):
                elements[-1].properties.append(
                    (parts[4], (_PLY_TYPES[parts[2]], _PLY_TYPES[parts[3]]))
                )
            else:
                raise FormatError(f"{where}: bad property line {lineno}: {raw.strip()!r}")
        else:
            raise FormatError(f"{where}: unknown PLY header keyword {key!r} (line {lineno})")
    if fmt is None:
        raise FormatError(f"{where}: PLY header has no format line")
    return fmt, elements, comments, m.end()


def _skip_binary_list_element(
    body: bytes, offset: int, element: _Element, endian: str, where: str
) -> int:
    """Byte offset after an element with list properties (parsed row by row; rare in 3DGS files)."""
    for _ in range(element.count):
        for _, t in element.properties:
            if isinstance(t, tuple):
                ct = np.dtype(endian + t[0])
                if offset + ct.itemsize > len(body):
                    raise FormatError(f"{where}: truncated in element {element.name!r}")
                n = int(np.frombuffer(body, ct, 1, offset)[0])
                offset += ct.itemsize + n * np.dtype(t[1]).itemsize
            else:
                offset += np.dtype(t).itemsize
    if offset > len(body):
        raise FormatError(f"{where}: truncated in element {element.name!r}")
    return offset


def _read_vertex_table(path: str) -> tuple[dict[str, np.ndarray], list[str], int]:
    """Vertex properties {name: float64 [N]}, header comments, N."""
    where = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise FormatError(f"{where}: cannot read ({e.strerror})") from None
    fmt, elements, comments, start = _parse_header(data, where)
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if vertex is None:
        names = ", ".join(e.name for e in elements) or "none"
        raise FormatError(f"{where}: no 'vertex' element (elements: {names})")
    if vertex.has_lists:
        raise FormatError(f"{where}: the vertex element has list properties; not a 3DGS file")
    for i, (name, _) in enumerate(vertex.properties):
        if any(name == other for other, _ in vertex.properties[i + 1 :]):
            raise FormatError(f"{where}: vertex property {name!r} appears twice")

    if fmt == "ascii":
        return _read_ascii(data[start:], elements, vertex, where), comments, vertex.count

    endian = _FORMATS[fmt]
    body = memoryview(data)[start:]
    offset = 0
    table = None
    for element in elements:
        if element.has_lists:
            if element is vertex:
                raise AssertionError("unreachable")
            offset = _skip_binary_list_element(bytes(body), offset, element, endian, where)
            continue
        dtype = np.dtype([(n, endian + t) for n, t in element.properties])  # type: ignore[operator]
        size = dtype.itemsize * element.count
        if offset + size > len(body):
            raise FormatError(
                f"{where}: truncated: header declares {element.count} {element.name} "
                f"({size} bytes) but only {len(body) - offset} bytes follow"
            )
        if element is vertex:
            table = np.frombuffer(body, dtype, element.count, offset)
        offset += size
    leftover = len(body) - offset
    stride = np.dtype([(n, t) for n, t in vertex.properties]).itemsize  # type: ignore[misc]
    # A stray newline after the data is tolerated; a whole vertex or more means a wrong count.
    if leftover >= max(1, stride):
        raise FormatError(
            f"{where}: header declares {vertex.count} vertices but {leftover} more bytes follow "
            "the declared data (wrong element count?)"
        )
    assert table is not None
    return {n: table[n].astype(np.float64) for n, _ in vertex.properties}, comments, vertex.count


def _read_ascii(
    body: bytes, elements: list[_Element], vertex: _Element, where: str
) -> dict[str, np.ndarray]:
    try:
        tokens = body.decode("ascii").split()
    except UnicodeDecodeError:
        raise FormatError(f"{where}: ascii PLY body is not ASCII text") from None
    pos = 0
    for element in elements:
        nprops = len(element.properties)
        if element is vertex:
            need = nprops * element.count
            if pos + need > len(tokens):
                raise FormatError(
                    f"{where}: truncated: header declares {element.count} vertices "
                    f"({need} values) but only {len(tokens) - pos} values follow"
                )
            try:
                values = np.array(tokens[pos : pos + need], dtype=np.float64)
            except ValueError:
                raise FormatError(f"{where}: non-numeric value in the vertex data") from None
            values = values.reshape(element.count, nprops)
            return {name: values[:, i] for i, (name, _) in enumerate(element.properties)}
        for _ in range(element.count):  # skip another element, row by row
            for _, t in element.properties:
                if pos >= len(tokens):
                    raise FormatError(f"{where}: truncated in element {element.name!r}")
                pos += 1 + (int(float(tokens[pos])) if isinstance(t, tuple) else 0)
    raise AssertionError("unreachable")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Two-sided form: no overflow warning for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_axes(axes: str | None) -> None:
    if axes is not None and axes not in _AXES:
        raise ValueError(f"axes must be one of {_AXES} or None, got {axes!r}")


_FACING_COMMENT = "facing nx ny nz"


def read_ply(
    path: str | os.PathLike, axes: str | None = None, facing: bool | None = None
) -> GaussianCloud:
    """Read a 3DGS .ply into a GaussianCloud in our RUB world with activated parameters.

    axes: the file's frame: "rdf" (training tools; converted), "rub" (as is), or None (the
    header's ``comment axes ...`` if any, else "rdf"). facing: read one-sided surfels from
    ``nx ny nz`` (module docstring): None when the header says so, True/False always/never.
    SH degree (0..3) follows from the number of f_rest properties. metadata gets ``source``
    (path), ``source_axes``, ``sh_degree`` and ``ignored_properties``.
    Raises FormatError: empty/not a PLY file, truncated body, missing properties (all listed),
    f_rest count not matching a degree, NaN/inf, zero scales after exp, zero-length quaternions.
    """
    _check_axes(axes)
    where = os.fspath(path)
    props, comments, n = _read_vertex_table(path)
    f_rest_names = sorted(
        (k for k in props if k.startswith("f_rest_")),
        key=lambda k: int(k[7:]) if k[7:].isdigit() else -1,
    )
    m = len(f_rest_names)
    if m not in (0, 9, 24, 45):
        raise FormatError(
            f"{where}: {m} f_rest properties do not match an SH degree (0, 9, 24 or 45 expected)"
        )
    required = (
        ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
        + [f"scale_{i}" for i in range(3)]
        + [f"rot_{i}" for i in range(4)]
        + [f"f_rest_{i}" for i in range(m)]
    )
    missing = [k for k in required if k not in props]
    if missing:
        raise FormatError(f"{where}: missing vertex properties: {', '.join(missing)}")
    for k in required:
        bad = ~np.isfinite(props[k])
        if bad.any():
            raise FormatError(
                f"{where}: property {k!r} has {int(bad.sum())} NaN/inf values "
                f"(first at vertex {int(np.argmax(bad))})"
            )
    ignored = [k for k in props if k not in required and k not in ("nx", "ny", "nz")]

    if axes is None:
        axes = "rdf"
        for c in comments:
            parts = c.split()
            if len(parts) == 2 and parts[0] == "axes" and parts[1] in _AXES:
                axes = parts[1]

    def col(*names: str) -> np.ndarray:
        return np.stack([props[k] for k in names], axis=1) if names else np.zeros((n, 0))

    means = col("x", "y", "z")
    k = m // 3 + 1
    sh = np.empty((n, k, 3), dtype=np.float64)
    sh[:, 0, :] = col("f_dc_0", "f_dc_1", "f_dc_2")
    if m:
        rest = col(*[f"f_rest_{i}" for i in range(m)])  # [N, 3 * (K - 1)], channel-major
        sh[:, 1:, :] = rest.reshape(n, 3, k - 1).transpose(0, 2, 1)
    opacities = _sigmoid(props["opacity"]).astype(np.float32)
    log_scales = col("scale_0", "scale_1", "scale_2")
    with np.errstate(over="ignore"):
        scales = np.exp(log_scales).astype(np.float32)
    if (scales <= 0).any() or not np.isfinite(scales).all():
        i = int(np.argmax(((scales <= 0) | ~np.isfinite(scales)).any(axis=1)))
        raise FormatError(
            f"{where}: vertex {i} has a zero or infinite scale after exp (log scale "
            f"{log_scales[i].tolist()})"
        )
    quats = _normalise_quats(col("rot_0", "rot_1", "rot_2", "rot_3"), where)
    if facing is None:
        facing = _FACING_COMMENT in comments
    signs = None
    if facing and all(k in props for k in ("nx", "ny", "nz")):
        normals = col("nx", "ny", "nz")
        z_axis = facing_normals(quats, np.ones(n, np.int8)).astype(np.float64)
        dot = np.einsum("ij,ij->i", np.nan_to_num(normals), z_axis)
        strong = np.linalg.norm(np.nan_to_num(normals), axis=1) > 0.5
        signs = np.where(strong, np.sign(dot), 0).astype(np.int8)

    cloud = GaussianCloud(
        means.astype(np.float32),
        quats,
        scales,
        opacities,
        sh.astype(np.float32),
        {
            "source": where,
            "source_axes": axes,
            "sh_degree": round(k**0.5) - 1,
            "ignored_properties": ignored,
        },
        signs,
    )
    return cloud.flip_yz() if axes == "rdf" else cloud


def _normalise_quats(q: np.ndarray, where: str) -> np.ndarray:
    """Unit quaternions [N, 4] float32 from raw ones (float64); FormatError on zero length."""
    norm = np.linalg.norm(q, axis=1)
    zero = ~(norm > 1e-12)
    if zero.any():
        raise FormatError(
            f"{where}: {int(zero.sum())} zero-length quaternions "
            f"(first at vertex {int(np.argmax(zero))})"
        )
    q32 = q.astype(np.float32)
    # Already-unit quaternions are kept bit-exact so a write/read round trip is lossless.
    needs = np.abs(norm - 1.0) > _UNIT_TOLERANCE
    q32[needs] = (q[needs] / norm[needs, None]).astype(np.float32)
    return q32


def write_ply(path: str | os.PathLike, cloud: GaussianCloud, axes: str = "rub") -> None:
    """Write ``cloud`` as a binary little-endian float32 3DGS .ply.

    axes: the frame to write: "rub" (ours, default) or "rdf" (for 3DGS training tools and most
    viewers); recorded in the header as ``comment axes <axes>``. Opacities are clipped to
    [1e-30, 1 - 1e-12] before the logit (an opacity of exactly 0 cannot be stored), scales must be
    > 0 and finite. Properties: x y z nx ny nz f_dc_0..2 f_rest_* opacity scale_0..2 rot_0..3;
    nx ny nz hold the outward normals of one-sided Gaussians (zero for two-sided ones).
    Raises FormatError for non-positive or non-finite scales or non-finite values; ValueError for
    a bad ``axes``.
    """
    if axes not in _AXES:
        raise ValueError(f"axes must be one of {_AXES}, got {axes!r}")
    if axes == "rdf":
        cloud = cloud.flip_yz()
    where = os.fspath(path)
    check_cloud_writable(cloud, where)
    n, k = len(cloud), cloud.sh.shape[1]
    m = 3 * (k - 1)
    names = (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(m)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )
    p = np.clip(cloud.opacities.astype(np.float64), 1e-30, 1.0 - 1e-12)
    columns = [
        cloud.means,
        cloud.normals(),  # after the axis conversion: normals in the file's frame
        cloud.sh[:, 0, :],
        cloud.sh[:, 1:, :].transpose(0, 2, 1).reshape(n, m),
        np.log(p / (1.0 - p))[:, None],
        np.log(cloud.scales.astype(np.float64)),
        cloud.quats,
    ]
    table = np.concatenate([np.asarray(c, dtype=np.float64) for c in columns], axis=1)
    table = table.astype("<f4")
    header = "\n".join(
        [
            "ply",
            "format binary_little_endian 1.0",
            f"comment axes {axes}",
            *([f"comment {_FACING_COMMENT}"] if cloud.one_sided else []),
            "comment written by Talking Head Studio (renderers.formats.ply)",
            f"element vertex {n}",
            *[f"property float {name}" for name in names],
            "end_header",
            "",
        ]
    )
    _atomic_write(path, header.encode("ascii") + table.tobytes())


def _atomic_write(path: str | os.PathLike, payload: bytes) -> None:
    """Write via a temporary file and rename, so a failed write never leaves half a file."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
