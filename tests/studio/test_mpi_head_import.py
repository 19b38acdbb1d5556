"""Rigged MPI heads through the studio: baked from a Gaussian head, imported from an MPI folder
(keypoints from face landmarks on the front view), and the import-head / render commands."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.heads import RiggedMPIHead, load_builtin_head, load_head
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
from renderers import Camera, disparity_depths
from renderers.formats import write_mpi_folder
from renderers.mpi import MPI
from studio.cli import main
from studio.head_import import (
    HeadImportError,
    bake_mpi_head,
    deformed_mpi,
    import_head,
    mpi_front_view,
)

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def drawn():
    from models.face.testface import draw_face

    return draw_face(256, 256, face_height=170)


def face_mpi_folder(folder, drawn):
    """A 12-plane MPI whose plane at 0.58 m holds a drawn face (opaque), the rest empty."""
    h, w = drawn.image.shape[:2]
    cam = Camera.look_at((0, 0, 0.6), (0, 0, 0), width=w, height=h)
    depths = disparity_depths(0.45, 0.65, 12)
    rgba = np.zeros((12, h, w, 4), np.float32)
    k = int(np.argmin(np.abs(depths - 0.58)))
    rgba[k, ..., :3] = drawn.image / 255.0
    rgba[k, ..., 3] = 1.0
    write_mpi_folder(folder, MPI(rgba, depths, cam))
    return folder


def _frame(**channels):
    v = CHANNEL_DEFAULTS.copy()
    for name, value in channels.items():
        v[CHANNEL_INDEX[name]] = value
    return v


def test_baked_mpi_head_carries_the_keypoints_and_reproduces_the_render():
    from renderers.render import render
    from studio.head_import import mpi_camera
    from studio.heads import rest_cloud

    head = load_builtin_head("default")
    mpi_head = bake_mpi_head(head, width=128, height=128, backend="gl")
    assert isinstance(mpi_head, RiggedMPIHead) and mpi_head.planes.dtype == np.uint8
    assert mpi_head.num_planes == 24
    np.testing.assert_array_equal(mpi_head.keypoints, head.keypoints)
    np.testing.assert_array_equal(mpi_head.kp_to_world, head.kp_to_world)
    np.testing.assert_array_equal(mpi_head.rig.pivot, head.rig.pivot)
    # IM-Portrait's spacing around the head centre 0.6 m away.
    assert mpi_head.depths[0] == pytest.approx(0.45) and mpi_head.depths[-1] == pytest.approx(0.65)
    cam = mpi_camera(head, width=128, height=128)
    ref = render(rest_cloud(head), cam, backend="gl")[0]
    out = render(deformed_mpi(mpi_head, CHANNEL_DEFAULTS), cam, backend="gl")[0]
    mse = float(np.mean((out[..., :3] - ref[..., :3]) ** 2))
    assert 10 * np.log10(1 / mse) >= 30.0
    # The rig's jaw darkens the mouth of the real head (keypoints 6/17 from the Gaussian head).
    uv, _ = mpi_head.project(mpi_head.kp_to_world_points(mpi_head.keypoints))
    opened = render(deformed_mpi(mpi_head, _frame(exp_19_y=0.08)), cam, backend="gl")[0]
    x, y = int(uv[17, 0]), int(0.5 * (uv[6, 1] + uv[17, 1]) + 2)
    assert (
        opened[y - 1 : y + 2, x - 2 : x + 3, :3].mean()
        < 0.6 * out[y - 1 : y + 2, x - 2 : x + 3, :3].mean()
    )


def test_mpi_folder_becomes_a_rigged_head_file(landmarker, drawn, tmp_path):
    src = face_mpi_folder(tmp_path / "face_mpi", drawn)
    out = tmp_path / "face.thead"
    got = []
    lines = list(import_head(src, out, landmarker=landmarker, result=got))
    assert lines[-1] == f"wrote {out}" and "12 planes 256x256" in lines[1]
    head = load_head(out)
    assert isinstance(head, RiggedMPIHead)
    np.testing.assert_array_equal(head.planes, got[0].head.planes)
    # Keypoints land on the drawn face's features (pixels of the baking camera).
    uv, z = head.project(head.kp_to_world_points(head.keypoints))
    assert np.allclose(z, 0.58, atol=0.02)  # on the face's plane
    tol = 0.08 * drawn.image.shape[0]
    assert np.linalg.norm(uv[[11, 13]].mean(0) - drawn.eye_r) < tol
    assert np.linalg.norm(uv[[15, 16]].mean(0) - drawn.eye_l) < tol
    assert np.linalg.norm(uv[5] - drawn.nose_tip) < tol
    assert np.linalg.norm(uv[[6, 17]].mean(0) - drawn.mouth) < tol
    assert uv[14, 0] < uv[20, 0]  # the subject's right corner on the image left
    # Existing output without overwrite: refused, nothing changed.
    with pytest.raises(HeadImportError, match="exists"):
        list(import_head(src, out, landmarker=landmarker))
    # A folder without a face: one line, no file.
    empty = tmp_path / "wall_mpi"
    rgba = np.zeros((3, 64, 64, 4), np.float32)
    rgba[1] = (0.5, 0.5, 0.5, 1.0)
    write_mpi_folder(
        empty, MPI(rgba, disparity_depths(0.45, 0.65, 3), Camera.orbit(width=64, height=64))
    )
    with pytest.raises(HeadImportError, match="no plausible face") as info:
        list(import_head(empty, tmp_path / "wall.thead", landmarker=landmarker))
    assert "\n" not in str(info.value) and not (tmp_path / "wall.thead").exists()


def test_cli_imports_a_folder_and_renders_the_mpi_head(landmarker, drawn, tmp_path, capsys):
    src = face_mpi_folder(tmp_path / "face_mpi", drawn)
    thead = tmp_path / "face.thead"
    assert main(["import-head", str(src), "--out", str(thead)]) == 0
    assert "wrote" in capsys.readouterr().out and isinstance(load_head(thead), RiggedMPIHead)
    common = ["--width", "128", "--height", "128", "--background", "0,0,0"]
    shots = {}
    for name, sets in (
        ("rest", []),
        ("jaw", ["--set", "exp_19_y=0.08"]),
        ("yaw", ["--set", "yaw=10"]),
    ):
        png = tmp_path / f"{name}.png"
        assert main(["render", str(thead), "--out", str(png), *common, *sets]) == 0
        shots[name] = cv2.imread(str(png))[..., ::-1].astype(np.float64) / 255.0

    # Framed by the rest pose: the head turns inside a fixed view, to the image's left.
    def centroid_x(img):
        lum = img.sum(-1)
        return (lum * np.arange(img.shape[1])[None]).sum() / lum.sum()

    assert centroid_x(shots["yaw"]) < centroid_x(shots["rest"]) - 1.0
    # The open jaw darkens the mouth.
    head = load_head(thead)
    uv, _ = head.project(head.kp_to_world_points(head.keypoints))
    mouth = (0.5 * (uv[6] + uv[17]) * 128 / 256).astype(int)
    x, y = mouth
    rest_patch = shots["rest"][y : y + 3, x - 2 : x + 3].mean()
    jaw_patch = shots["jaw"][y : y + 3, x - 2 : x + 3].mean()
    assert jaw_patch < 0.7 * rest_patch
    # --out FOLDER still copies the folder.
    assert main(["import-head", str(src), "--out", str(tmp_path / "copy")]) == 0
    assert (tmp_path / "copy" / "mpi.json").is_file()


def test_portrait_to_mpi_head_file(landmarker, drawn, tmp_path):
    png = tmp_path / "portrait.png"
    cv2.imwrite(str(png), drawn.image[..., ::-1])
    out = tmp_path / "portrait.thead"
    lines = list(import_head(png, out, landmarker=landmarker, kind="mpi"))
    assert any("MPI head: 24 planes" in ln for ln in lines)
    head = load_head(out)
    assert isinstance(head, RiggedMPIHead)
    rgb, depth = mpi_front_view(deformed_mpi(head, CHANNEL_DEFAULTS))
    assert np.isfinite(depth).mean() > 0.1 and rgb.shape == (512, 512, 3)
    with pytest.raises(HeadImportError, match="unknown head kind"):
        list(import_head(png, tmp_path / "x.thead", landmarker=landmarker, kind="nerf"))


def test_cli_bakes_a_gaussian_head_file_into_an_mpi_head(tmp_path):
    from models.heads import RiggedGaussianHead, builtin_head_path, load_head

    src = builtin_head_path("default")
    assert main(["import-head", str(src), "--out", str(tmp_path / "copy.thead")]) == 0
    assert isinstance(load_head(tmp_path / "copy.thead"), RiggedGaussianHead)
    out = tmp_path / "baked.thead"
    assert main(["import-head", str(src), "--out", str(out), "--kind", "mpi"]) == 0
    head = load_head(out)
    assert isinstance(head, RiggedMPIHead) and head.num_planes == 24
    png = tmp_path / "open.png"
    assert main(["render", str(out), "--out", str(png), "--set", "exp_19_y=0.05"]) == 0
    assert png.stat().st_size > 0
