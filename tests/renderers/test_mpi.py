from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from renderers.camera import Camera
from renderers.formats import FormatError, read_mpi_folder, write_mpi_folder
from renderers.mpi import MPI, ImPortraitMPI, as_mpi, disparity_depths, head_mpi_depths


def _camera(w: int = 12, h: int = 10) -> Camera:
    return Camera.orbit((0, 0, 0), 1.0, width=w, height=h)


def _quantised(rng: np.random.Generator, shape: tuple[int, ...], bits: int = 8) -> np.ndarray:
    top = (1 << bits) - 1
    return rng.integers(0, top + 1, size=shape).astype(np.float32) / np.float32(top)


def test_disparity_depths() -> None:
    d = disparity_depths(0.5, 2.0, 5)
    assert d[0] == 0.5 and d[-1] == 2.0
    np.testing.assert_allclose(np.diff(1.0 / d), -(1 / 0.5 - 1 / 2.0) / 4)
    head = head_mpi_depths(1.0)
    assert (
        head.shape == (24,) and head[0] == pytest.approx(0.85) and head[-1] == pytest.approx(1.05)
    )
    assert disparity_depths(1.0, 2.0, 1).tolist() == [1.0]
    with pytest.raises(ValueError):
        disparity_depths(2.0, 1.0, 4)
    with pytest.raises(ValueError):
        head_mpi_depths(0.1)


def test_mpi_validation() -> None:
    cam = _camera()
    rgba = np.zeros((3, 10, 12, 4), np.float32)
    MPI(rgba, [1, 2, 3], cam)
    with pytest.raises(ValueError, match="2 depths for 3 planes"):
        MPI(rgba, [1, 2], cam)
    with pytest.raises(ValueError, match="strictly increasing"):
        MPI(rgba, [1, 3, 2], cam)
    with pytest.raises(ValueError, match="camera is 12x10 but the planes are 11x10"):
        MPI(rgba[:, :, :11], [1, 2, 3], cam)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MPI(rgba + 2, [1, 2, 3], cam)
    planes8 = np.zeros((3, 10, 12, 4), np.uint8)
    assert MPI(planes8, [1, 2, 3], cam).rgba.dtype == np.uint8  # uint8 stays uint8
    with pytest.raises(ValueError, match=r"rgba \[D, H, W, 4\]"):
        MPI(planes8[..., :3], [1, 2, 3], cam)
    with pytest.raises(ValueError, match="11x10"):
        MPI(planes8[:, :, :11], [1, 2, 3], cam)


def test_im_portrait_blend_weights() -> None:
    rng = np.random.default_rng(0)
    frontal, residual = rng.uniform(size=(10, 12, 3)), rng.uniform(size=(10, 12, 3))
    alpha = rng.uniform(size=(4, 10, 12))
    mpi = ImPortraitMPI(frontal, residual, alpha, [1.0, 1.1, 1.2, 1.3], _camera())
    planes = mpi.to_rgba_planes()
    np.testing.assert_allclose(planes[0, ..., :3], frontal, atol=1e-6)  # nothing in front of it
    w2 = (1 - alpha[0]) * (1 - alpha[1])
    np.testing.assert_allclose(
        planes[2, ..., :3], w2[..., None] * frontal + (1 - w2[..., None]) * residual, atol=1e-6
    )
    np.testing.assert_array_equal(planes[..., 3], mpi.alpha)
    # A fully opaque front plane hides everything: planes behind it take the residual colour.
    alpha[0] = 1.0
    behind = ImPortraitMPI(frontal, residual, alpha, [1.0, 1.1, 1.2, 1.3], _camera())
    np.testing.assert_allclose(
        behind.to_rgba_planes()[1:, ..., :3], np.broadcast_to(residual, (3, 10, 12, 3)), atol=1e-6
    )
    assert isinstance(as_mpi(mpi), MPI)
    with pytest.raises(ValueError, match="frontal"):
        ImPortraitMPI(frontal[:5], residual, alpha, [1.0, 1.1, 1.2, 1.3], _camera())


@pytest.mark.parametrize("bits", [8, 16])
def test_folder_round_trip_rgba(tmp_path: Path, bits: int) -> None:
    rng = np.random.default_rng(bits)
    cam = _camera().with_principal_point(5.25, 4.75)
    mpi = MPI(_quantised(rng, (5, 10, 12, 4), bits), head_mpi_depths(0.9, 5), cam)
    write_mpi_folder(tmp_path / "m", mpi, bit_depth=bits)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "mpi.json",
        *[f"plane_{i:02d}.png" for i in range(5)],
    ]
    back = read_mpi_folder(tmp_path / "m")
    assert isinstance(back, MPI)
    np.testing.assert_array_equal(back.rgba, mpi.rgba)
    np.testing.assert_array_equal(back.depths, mpi.depths)
    assert back.camera == cam
    # Unquantised data lands on the nearest code.
    smooth = MPI(rng.uniform(size=(2, 10, 12, 4)), [1.0, 2.0], cam)
    write_mpi_folder(tmp_path / "s", smooth, bit_depth=bits)
    err = np.abs(read_mpi_folder(tmp_path / "s").rgba - smooth.rgba).max()
    assert err <= 0.5 / ((1 << bits) - 1) + 1e-7


def test_folder_round_trip_im_portrait(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    mpi = ImPortraitMPI(
        _quantised(rng, (10, 12, 3)),
        _quantised(rng, (10, 12, 3)),
        _quantised(rng, (3, 10, 12)),
        [0.8, 0.9, 1.0],
        _camera(),
    )
    write_mpi_folder(tmp_path / "m", mpi)
    meta = json.loads((tmp_path / "m" / "mpi.json").read_text())
    assert meta["layout"] == "im-portrait" and meta["frontal"] == "frontal.png"
    back = read_mpi_folder(tmp_path / "m")
    assert isinstance(back, ImPortraitMPI)
    for name in ("frontal", "residual", "alpha", "depths"):
        np.testing.assert_array_equal(getattr(back, name), getattr(mpi, name))
    # Rewriting a smaller MPI into the folder removes stale planes.
    write_mpi_folder(tmp_path / "m", MPI(np.zeros((2, 10, 12, 4)), [1.0, 2.0], _camera()))
    assert read_mpi_folder(tmp_path / "m").num_planes == 2


def test_folder_errors(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    rng = np.random.default_rng(0)
    write_mpi_folder(folder, MPI(_quantised(rng, (3, 10, 12, 4)), [1.0, 1.5, 2.0], _camera()))
    meta_path = folder / "mpi.json"
    meta = json.loads(meta_path.read_text())

    def expect(match: str) -> None:
        with pytest.raises(FormatError, match=match) as info:
            read_mpi_folder(folder)
        assert "\n" not in str(info.value)

    (folder / "plane_01.png").rename(tmp_path / "p1.png")
    expect("missing plane files: plane_01.png")
    (tmp_path / "p1.png").rename(folder / "plane_01.png")

    meta_path.write_text(json.dumps({**meta, "depths": [1.0, 2.0]}))
    expect("2 depths but 3 planes listed")
    meta_path.write_text(json.dumps({**meta, "depths": [1.0, 2.0], "planes": meta["planes"][:2]}))
    expect("extra plane files plane_02.png")
    meta_path.write_text(json.dumps({**meta, "depths": [2.0, 1.0, 3.0]}))
    expect("strictly increasing")
    meta_path.write_text(json.dumps({**meta, "width": 13}))
    expect("does not match 13x10")
    meta_path.write_text(json.dumps({**meta, "version": 99}))
    expect("newer than this reader")
    meta_path.write_text(json.dumps({**meta, "bit_depth": 16}))
    expect("expected 16-bit")
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "intrinsics"}))
    expect("no 'intrinsics'")
    meta_path.write_text("{not json")
    expect("bad JSON")
    meta_path.write_text(json.dumps(meta))

    import cv2

    cv2.imwrite(str(folder / "plane_02.png"), np.zeros((9, 12, 4), np.uint8))
    expect("plane_02.png: size 12x9 does not match 12x10")
    cv2.imwrite(str(folder / "plane_02.png"), np.zeros((10, 12, 3), np.uint8))
    expect("expected RGBA")
    meta_path.unlink()
    expect("missing mpi.json")
