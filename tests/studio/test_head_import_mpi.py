"""MPI head folders through studio.head_import and the import-head command: a good folder is
checked and copied (or, to a .thead, rigged: see test_mpi_head_import.py), a bad one (missing
planes, mismatched sizes, no metadata) gives one line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from renderers.camera import Camera
from renderers.formats import read_mpi_folder, write_mpi_folder
from renderers.mpi import MPI
from studio.head_import import HeadImportError, check_mpi_folder, describe_mpi, import_head


def make_mpi_folder(folder: Path, planes: int = 3, w: int = 12, h: int = 10) -> Path:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(planes, h, w, 4)).astype(np.float32) / 255
    cam = Camera.orbit((0, 0, 0), 0.6, width=w, height=h)
    write_mpi_folder(folder, MPI(rgba, np.linspace(0.45, 0.65, planes), cam))
    return folder


def _run_cli(argv: list[str]) -> int:
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


def test_good_folder_is_checked_and_described(tmp_path):
    folder = make_mpi_folder(tmp_path / "head_mpi")
    mpi = check_mpi_folder(folder)
    assert mpi.num_planes == 3
    assert describe_mpi(mpi) == "3 planes 12x10, 0.45-0.65 m"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "plane_01.png").unlink(), "missing plane files: plane_01.png"),
        (lambda f: (f / "mpi.json").unlink(), "missing mpi.json"),
        (lambda f: (f / "mpi.json").write_text("{"), "bad JSON"),
        (lambda f: make_mpi_folder(f / "x", w=8).joinpath("plane_00.png").replace(
            f / "plane_00.png"), "size 8x10 does not match 12x10"),
    ],
)  # fmt: skip
def test_bad_folders_give_one_clear_line(tmp_path, damage, reason):
    folder = make_mpi_folder(tmp_path / "head_mpi")
    damage(folder)
    with pytest.raises(HeadImportError) as info:
        check_mpi_folder(folder)
    message = str(info.value)
    assert "\n" not in message and reason in message
    assert message.startswith("head_mpi: not a usable MPI head folder: ")
    assert str(tmp_path) not in message  # short: the folder's name, not its whole path
    with pytest.raises(HeadImportError, match="no such folder"):
        check_mpi_folder(tmp_path / "nothing")


def test_import_head_copies_a_folder_and_needs_a_face_for_a_thead(tmp_path, landmarker):
    src = make_mpi_folder(tmp_path / "src")
    # A .thead output makes a rigged MPI head: random planes have no face to place keypoints on.
    with pytest.raises(HeadImportError, match="no plausible face"):
        list(import_head(src, tmp_path / "a.thead", landmarker=landmarker))
    assert not (tmp_path / "a.thead").exists()
    lines = list(import_head(src, tmp_path / "copy"))
    assert lines[-1] == f"wrote {tmp_path / 'copy'}" and "3 planes 12x10" in lines[1]
    np.testing.assert_array_equal(
        read_mpi_folder(tmp_path / "copy").rgba, read_mpi_folder(src).rgba
    )
    with pytest.raises(HeadImportError, match="exists"):
        list(import_head(src, tmp_path / "copy"))
    make_mpi_folder(tmp_path / "src2", planes=2)
    list(import_head(tmp_path / "src2", tmp_path / "copy", overwrite=True))
    assert read_mpi_folder(tmp_path / "copy").num_planes == 2
    (tmp_path / "notes").mkdir()
    with pytest.raises(HeadImportError, match="not an MPI folder"):
        list(import_head(src, tmp_path / "notes", overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "notes", "src", "src2"]


def test_cli_import_head_with_an_mpi_folder(tmp_path, capsys):
    src = make_mpi_folder(tmp_path / "src")
    assert _run_cli(["import-head", str(src), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "MPI head src: 3 planes" in out and (tmp_path / "out" / "mpi.json").is_file()
    meta = json.loads((tmp_path / "out" / "mpi.json").read_text())
    assert meta["layout"] == "rgba" and len(meta["planes"]) == 3

    (src / "plane_02.png").unlink()
    assert _run_cli(["import-head", str(src), "--out", str(tmp_path / "h.thead")]) == 2
    err = capsys.readouterr().out.strip().splitlines()
    assert err[-1].endswith("src: not a usable MPI head folder: missing plane files: plane_02.png")
    assert not (tmp_path / "h.thead").exists()
