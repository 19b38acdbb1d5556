"""Head import glue (studio.head_import) and the import-head command."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from studio.head_import import HeadImportError, head_mpi, import_head, mpi_camera


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    import cv2

    from models.face.testface import draw_face

    path = tmp_path_factory.mktemp("faces") / "drawn face.png"
    cv2.imwrite(str(path), draw_face(480, 400).image[..., ::-1])
    return path


def _run_cli(argv: list[str]) -> int:
    """The import-head command through argparse, as studio.cli runs it (exit 2 on user errors)."""
    from studio.cli import CliError
    from studio.commands import import_head as command

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return command.run(args)
    except CliError as exc:
        print(f"talking-head-studio import-head: error: {exc}")
        return 2


def test_portrait_import_writes_a_loadable_head(landmarker, face_png, tmp_path):
    from models.heads import load_head

    out = tmp_path / "head.thead"
    got = []
    lines = list(import_head(face_png, out, landmarker=landmarker, result=got))
    assert lines[-1] == f"wrote {out}" and any("Gaussians" in ln for ln in lines)
    head = load_head(out)
    np.testing.assert_allclose(head.keypoints, got[0].head.keypoints)
    with pytest.raises(HeadImportError, match="exists"):
        list(import_head(face_png, out, landmarker=landmarker))


def test_no_face_leaves_no_file(landmarker, tmp_path, capsys):
    import cv2

    blank = tmp_path / "wall.jpg"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    out = tmp_path / "wall.thead"
    with pytest.raises(HeadImportError, match="no face found"):
        list(import_head(blank, out, landmarker=landmarker))
    assert not out.exists() and list(tmp_path.iterdir()) == [blank]
    assert _run_cli(["import-head", str(blank), "--out", str(out)]) == 2
    err = capsys.readouterr().out.strip().splitlines()
    assert len(err) <= 3 and "no face found" in err[-1]
    assert not out.exists()


def test_bad_inputs(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(HeadImportError, match="unknown input type"):
        list(import_head(text, tmp_path / "a.thead"))
    with pytest.raises(HeadImportError, match="no such file"):
        list(import_head(tmp_path / "missing.png", tmp_path / "a.thead"))
    with pytest.raises(HeadImportError, match=r"\.thead"):
        list(import_head(text, tmp_path / "a.ply"))
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(HeadImportError, match=r"broken\.ply"):
        list(import_head(broken, tmp_path / "b.thead"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.ply", "notes.txt"]


@pytest.mark.gl
def test_ply_round_trip_places_keypoints_near_the_originals(landmarker, tmp_path):
    from models.heads import load_builtin_head
    from renderers.formats import save_gaussians
    from studio.head_import import import_ply
    from studio.heads import rest_cloud

    head = load_builtin_head("default")
    path = tmp_path / "default.ply"
    save_gaussians(path, rest_cloud(head))
    imported = import_ply(path, landmarker=landmarker).head
    a = head.kp_to_world_points(head.keypoints)
    b = imported.kp_to_world_points(imported.keypoints)
    err = np.linalg.norm(a - b, axis=1)
    # Eyes, nose, lips: where the mesh and the hand-placed anchors mean the same point.
    central = [4, 5, 6, 11, 12, 13, 15, 16, 17, 19]
    assert err[central].max() < 0.012, err
    assert np.median(err) < 0.008, err
    assert abs(imported.kp_scale - head.kp_scale) / head.kp_scale < 0.1
    # The rig works: opening the jaw moves the chin down.
    from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX

    v = CHANNEL_DEFAULTS.copy()
    v[CHANNEL_INDEX["exp_19_y"]] = 0.08
    moved = imported.deform(v).means - imported.means
    chin = np.linalg.norm(imported.means - b[8], axis=1) < 0.01
    assert moved[chin, 1].mean() < -0.004


@pytest.mark.gl
def test_portrait_mpi_reproduces_the_render(landmarker, face_png):
    from renderers.render import render
    from studio.head_import import import_portrait
    from studio.heads import rest_cloud

    head = import_portrait(face_png, landmarker=landmarker, face_px=100).head
    cam = mpi_camera(head, width=160, height=160)
    mpi = head_mpi(head, camera=cam, backend="gl")
    ref = render(rest_cloud(head), cam, backend="gl")[0]
    out = render(mpi, cam, backend="gl")[0]
    mse = float(np.mean((out[..., :3] - ref[..., :3]) ** 2))
    assert 10 * np.log10(1 / mse) >= 30.0
