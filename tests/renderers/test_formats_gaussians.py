from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from renderers.formats import (
    FormatError,
    load_gaussians,
    read_ply,
    read_splat,
    save_gaussians,
    write_ply,
    write_splat,
)
from renderers.gaussians import SH_C0, SH_FLIP_YZ_SIGNS, GaussianCloud


def _cloud(n: int = 40, degree: int = 3, seed: int = 0) -> GaussianCloud:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return GaussianCloud(
        rng.normal(scale=0.1, size=(n, 3)),
        q,
        np.exp(rng.normal(-4.0, 0.7, size=(n, 3))),
        rng.uniform(0.02, 0.98, n),
        rng.normal(scale=0.5, size=(n, (degree + 1) ** 2, 3)),
    )


def _raw_3dgs_table(n: int, degree: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Raw (pre-activation) vertex properties as a training tool writes them."""
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    table = {name: rng.normal(size=n).astype(np.float32) for name in ("x", "y", "z")}
    for i in range(3):
        table[f"f_dc_{i}"] = rng.normal(size=n).astype(np.float32)
    for i in range(3 * (k - 1)):
        table[f"f_rest_{i}"] = rng.normal(scale=0.2, size=n).astype(np.float32)
    table["opacity"] = rng.normal(0, 3, size=n).astype(np.float32)
    for i in range(3):
        table[f"scale_{i}"] = rng.normal(-4, 1, size=n).astype(np.float32)
    for i in range(4):
        table[f"rot_{i}"] = rng.normal(size=n).astype(np.float32)  # unnormalised, as in 3DGS
    return table


def _write_raw_ply(
    path: Path,
    table: dict[str, np.ndarray],
    order: list[str],
    fmt: str = "binary_little_endian",
    comments: tuple[str, ...] = (),
    count: int | None = None,
) -> None:
    n = len(next(iter(table.values())))
    header = ["ply", f"format {fmt} 1.0", *[f"comment {c}" for c in comments]]
    header += [f"element vertex {n if count is None else count}"]
    header += [f"property float {name}" for name in order] + ["end_header", ""]
    if fmt == "ascii":
        rows = np.stack([table[k] for k in order], 1)
        body = "\n".join(" ".join(repr(float(v)) for v in row) for row in rows).encode() + b"\n"
    else:
        dtype = np.dtype([(k, "<f4") for k in order])
        rec = np.zeros(n, dtype)
        for k in order:
            rec[k] = table[k]
        body = rec.tobytes()
    path.write_bytes("\n".join(header).encode() + body)


@pytest.mark.parametrize("degree", [0, 3])
def test_ply_round_trip(tmp_path: Path, degree: int) -> None:
    cloud = _cloud(degree=degree)
    write_ply(tmp_path / "a.ply", cloud)
    back = read_ply(tmp_path / "a.ply")
    assert back.metadata["source_axes"] == "rub" and back.sh_degree == degree
    for name in ("means", "quats", "sh"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cloud, name))
    # Opacity and scale pass through float32 logit / log: float32 precision, not bit-exact.
    np.testing.assert_allclose(back.opacities, cloud.opacities, rtol=5e-7, atol=0)
    np.testing.assert_allclose(back.scales, cloud.scales, rtol=5e-7, atol=0)
    # File -> cloud -> file is byte-exact.
    write_ply(tmp_path / "b.ply", back)
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()
    # Writing in RDF and reading it back (the header says rdf) returns the same cloud.
    write_ply(tmp_path / "c.ply", cloud, axes="rdf")
    again = read_ply(tmp_path / "c.ply")
    np.testing.assert_array_equal(again.means, cloud.means)
    np.testing.assert_array_equal(again.sh, cloud.sh)


def test_ply_reordered_properties_degree_3_rdf(tmp_path: Path) -> None:
    raw = _raw_3dgs_table(7, 3)
    order = list(raw)[::-1]  # every property in an unusual place
    order.insert(3, "nx")
    raw["nx"] = np.zeros(7, np.float32)
    _write_raw_ply(tmp_path / "t.ply", raw, order)
    cloud = read_ply(tmp_path / "t.ply")  # no axes comment: a training tool's RDF file
    assert cloud.sh_degree == 3 and cloud.metadata["source_axes"] == "rdf"
    np.testing.assert_array_equal(cloud.means, np.stack([raw["x"], -raw["y"], -raw["z"]], 1))
    assert cloud.sh[3, 0, 1] == raw["f_dc_1"][3]
    # f_rest is channel-major: coefficient j (1..15) of channel c is f_rest_{c * 15 + j - 1}.
    for c in range(3):
        for j in range(1, 16):
            expected = raw[f"f_rest_{c * 15 + j - 1}"][5] * SH_FLIP_YZ_SIGNS[j]
            assert cloud.sh[5, j, c] == expected
    sig = 1.0 / (1.0 + np.exp(-raw["opacity"].astype(np.float64)))
    np.testing.assert_allclose(cloud.opacities, sig, rtol=1e-6)
    np.testing.assert_allclose(
        cloud.scales, np.exp(np.stack([raw[f"scale_{i}"] for i in range(3)], 1)), rtol=1e-6
    )
    q = np.stack([raw[f"rot_{i}"] for i in range(4)], 1).astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(cloud.quats, q * [1, 1, -1, -1], atol=1e-7)
    # The same file read as RUB is untouched; the flip is its own inverse.
    rub = read_ply(tmp_path / "t.ply", axes="rub")
    np.testing.assert_array_equal(rub.flip_yz().means, cloud.means)
    np.testing.assert_array_equal(rub.flip_yz().sh, cloud.sh)


def test_ply_axes_comment_is_honoured(tmp_path: Path) -> None:
    raw = _raw_3dgs_table(3, 0)
    _write_raw_ply(tmp_path / "rub.ply", raw, list(raw), comments=("axes rub",))
    cloud = read_ply(tmp_path / "rub.ply")
    np.testing.assert_array_equal(cloud.means[:, 1], raw["y"])
    forced = read_ply(tmp_path / "rub.ply", axes="rdf")
    np.testing.assert_array_equal(forced.means[:, 1], -raw["y"])


def test_ascii_ply(tmp_path: Path) -> None:
    raw = _raw_3dgs_table(5, 1)
    _write_raw_ply(tmp_path / "bin.ply", raw, list(raw))
    _write_raw_ply(tmp_path / "asc.ply", raw, list(raw)[::-1], fmt="ascii")
    a, b = read_ply(tmp_path / "bin.ply"), read_ply(tmp_path / "asc.ply")
    assert b.sh_degree == 1
    for name in ("means", "quats", "scales", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_ply_big_endian(tmp_path: Path) -> None:
    raw = _raw_3dgs_table(4, 0)
    order = list(raw)
    dtype = np.dtype([(k, ">f4") for k in order])
    rec = np.zeros(4, dtype)
    for k in order:
        rec[k] = raw[k]
    header = ["ply", "format binary_big_endian 1.0", "element vertex 4"]
    header += [f"property float {k}" for k in order] + ["end_header", ""]
    (tmp_path / "be.ply").write_bytes("\n".join(header).encode() + rec.tobytes())
    _write_raw_ply(tmp_path / "le.ply", raw, order)
    np.testing.assert_array_equal(
        read_ply(tmp_path / "be.ply").sh, read_ply(tmp_path / "le.ply").sh
    )


def _error(path: Path, match: str) -> None:
    with pytest.raises(FormatError, match=match) as info:
        read_ply(path)
    assert "\n" not in str(info.value)


def test_ply_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.ply"
    p.write_bytes(b"")
    _error(p, "empty file")
    p.write_bytes(b"hello")
    _error(p, "not a PLY")

    raw = _raw_3dgs_table(6, 1)
    order = [k for k in raw if k not in ("opacity", "rot_3")]
    _write_raw_ply(p, raw, order)
    _error(p, "missing vertex properties: opacity, rot_3")

    renamed = dict(raw)
    renamed["scale0"] = renamed.pop("scale_0")
    _write_raw_ply(p, renamed, list(renamed))
    _error(p, "missing vertex properties: scale_0")

    _write_raw_ply(p, raw, list(raw))
    p.write_bytes(p.read_bytes()[:-10])
    _error(p, "truncated: header declares 6 vertex")

    _write_raw_ply(p, raw, list(raw), count=3)
    _error(p, "wrong element count")

    bad = {k: v.copy() for k, v in raw.items()}
    bad["y"][2] = np.nan
    _write_raw_ply(p, bad, list(bad))
    _error(p, "'y' has 1 NaN/inf")
    bad["y"][2] = 0
    bad["scale_1"][4] = np.inf
    _write_raw_ply(p, bad, list(bad))
    _error(p, "'scale_1' has 1 NaN/inf")

    bad = {k: v.copy() for k, v in raw.items()}
    bad["scale_2"][1] = -300.0  # exp underflows to 0 in float32
    _write_raw_ply(p, bad, list(bad))
    _error(p, "vertex 1 has a zero or infinite scale")

    bad = {k: v.copy() for k, v in raw.items()}
    for i in range(4):
        bad[f"rot_{i}"][3] = 0.0
    _write_raw_ply(p, bad, list(bad))
    _error(p, "1 zero-length quaternions")

    odd = {k: v for k, v in raw.items() if k not in ("f_rest_7", "f_rest_8")}
    _write_raw_ply(p, odd, list(odd))
    _error(p, "7 f_rest properties do not match an SH degree")

    p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement face 0\nend_header\n")
    _error(p, "no 'vertex' element")


def test_write_rejects_bad_clouds(tmp_path: Path) -> None:
    cloud = _cloud(4, 0)
    cloud.scales[1, 0] = 0.0
    with pytest.raises(FormatError, match="zero or negative"):
        write_ply(tmp_path / "x.ply", cloud)
    cloud = _cloud(4, 0)
    cloud.means[0, 0] = np.nan
    with pytest.raises(FormatError, match="NaN"):
        write_splat(tmp_path / "x.splat", cloud)


def test_splat_round_trip(tmp_path: Path) -> None:
    cloud = _cloud(100, 2)
    write_splat(tmp_path / "a.splat", cloud)
    assert (tmp_path / "a.splat").stat().st_size == 100 * 32
    back = read_splat(tmp_path / "a.splat")
    assert back.sh_degree == 0
    np.testing.assert_array_equal(back.means, cloud.means)
    np.testing.assert_array_equal(back.scales, cloud.scales)
    np.testing.assert_allclose(back.colors, cloud.colors, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(back.opacities, cloud.opacities, atol=0.5 / 255 + 1e-6)
    # q and -q are the same rotation; 8-bit components are within 1/128 before renormalising.
    dots = np.abs(np.sum(back.quats * cloud.quats, axis=1))
    assert dots.min() > 0.999
    # Quantised data round-trips exactly.
    write_splat(tmp_path / "b.splat", back)
    assert (tmp_path / "a.splat").read_bytes() == (tmp_path / "b.splat").read_bytes()


def test_splat_layout_and_axes(tmp_path: Path) -> None:
    rec = np.zeros(1, [("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("r", "u1", 4)])
    rec["p"] = (1.0, 2.0, 3.0)
    rec["s"] = (0.1, 0.2, 0.3)
    rec["c"] = (255, 0, 128, 51)
    rec["r"] = (255, 128, 128, 128)  # identity rotation, w first
    (tmp_path / "one.splat").write_bytes(rec.tobytes())
    cloud = read_splat(tmp_path / "one.splat")
    np.testing.assert_array_equal(cloud.means, [[1.0, -2.0, -3.0]])  # RDF -> RUB
    np.testing.assert_allclose(cloud.scales, [[0.1, 0.2, 0.3]])
    np.testing.assert_allclose(cloud.colors, [[1.0, 0.0, 128 / 255]], atol=1e-6)
    np.testing.assert_allclose(0.5 + SH_C0 * cloud.sh[0, 0], [1.0, 0.0, 128 / 255], atol=1e-6)
    assert cloud.opacities[0] == pytest.approx(0.2)
    np.testing.assert_allclose(cloud.quats, [[1, 0, 0, 0]])
    np.testing.assert_array_equal(read_splat(tmp_path / "one.splat", axes="rub").means, [[1, 2, 3]])


def test_splat_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.splat"
    p.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        read_splat(p)
    p.write_bytes(bytes(40))
    with pytest.raises(FormatError, match="not a multiple of 32"):
        read_splat(p)
    rec = np.zeros(2, [("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("r", "u1", 4)])
    rec["s"] = 0.1
    rec["r"] = (200, 128, 128, 128)
    rec["r"][1] = 128
    p.write_bytes(rec.tobytes())
    with pytest.raises(FormatError, match="1 zero-length quaternions"):
        read_splat(p)
    rec["r"][1] = (200, 128, 128, 128)
    rec["s"][0, 2] = -1
    p.write_bytes(rec.tobytes())
    with pytest.raises(FormatError, match="zero or negative scales"):
        read_splat(p)
    rec["s"][0, 2] = 1
    rec["p"][1, 0] = np.inf
    p.write_bytes(rec.tobytes())
    with pytest.raises(FormatError, match="NaN/inf position"):
        read_splat(p)


def test_load_and_save_dispatch(tmp_path: Path) -> None:
    cloud = _cloud(5, 1)
    save_gaussians(tmp_path / "a.ply", cloud)
    save_gaussians(tmp_path / "a.splat", cloud)
    assert load_gaussians(tmp_path / "a.ply").sh_degree == 1
    np.testing.assert_array_equal(load_gaussians(tmp_path / "a.splat").means, cloud.means)
    with pytest.raises(FormatError, match="unknown Gaussian file type"):
        load_gaussians(tmp_path / "a.obj")
