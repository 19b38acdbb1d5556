"""The export child process entry point (studio.export.child): settings as JSON, the JSON-lines
protocol on stdout, thumbnails written atomically, cancel and errors as lines and exit codes.
Run in-process here (same code the studio starts with ``python -m``)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from export_helpers import tiny_project

from studio.export import ExportError, ExportSettings
from studio.export.child import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    main,
    run,
    settings_from_json,
    settings_to_json,
    thumbnail,
)


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_settings_survive_json():
    s = ExportSettings(
        Path("/tmp/x/clip.mp4"), layout="tb", codec="h265", eye_size=(320, 240), fps="30000/1001",
        fov_deg=30.0, ipd=0.06, head="gaussian", frame_range=(2, 9), audio=False, crf=22,
        background=(0.0, 0.5, 1.0), overwrite=True, preview_every=3, lod_budget=5000,
    )  # fmt: skip
    assert settings_from_json(settings_to_json(s)) == s
    assert settings_from_json(settings_to_json(ExportSettings(Path("a.mkv")))) == ExportSettings(
        Path("a.mkv")
    )
    with pytest.raises(ExportError, match="bad export settings"):
        settings_from_json('{"out": "a.mp4", "colour": 3}')
    with pytest.raises(ExportError, match="bad export settings"):
        settings_from_json("[1, 2")


def test_thumbnail_is_at_most_the_width():
    img = np.zeros((100, 1001, 4), np.uint8)
    t = thumbnail(img, 480)
    assert t.shape[1] <= 480 and t.shape[2] == 3 and t.flags.c_contiguous


@pytest.mark.gl
@pytest.mark.usefixtures("gl_ok")
def test_protocol_of_a_tiny_export(tmp_path, capsys):
    from studio.document.fileformat import save_project

    save_project(tiny_project(frames=3), tmp_path / "p.ths")
    settings = ExportSettings(
        tmp_path / "v.mp4", eye_size=(32, 32), preview_every=1, lod_budget=2000
    )
    (tmp_path / "s.json").write_text(settings_to_json(settings))
    previews = tmp_path / "previews"
    previews.mkdir()
    argv = [str(tmp_path / "p.ths"), str(tmp_path / "s.json"), "--preview-dir", str(previews),
            "--thumb-width", "40"]  # fmt: skip
    assert main(argv) == 0
    lines = _lines(capsys.readouterr().out)
    assert [m.get("frame") for m in lines] == [0, 1, 2, 3, 3]
    assert lines[0]["total"] == 3 and "preview" not in lines[0]
    assert all("preview" in m for m in lines[1:4])
    done = lines[-1]
    assert done["done"] and Path(done["path"]) == tmp_path / "v_LR.mp4"
    assert (tmp_path / "v_LR.mp4").is_file() and set(done["timings"]) >= {"render", "encode"}
    thumb = np.load(previews / lines[3]["preview"])
    assert thumb.dtype == np.uint8 and thumb.shape == (16, 32, 3)  # 64x32 strip, step 2
    assert sorted(p.name for p in previews.iterdir()) == ["preview-0.npy", "preview-1.npy"]


@pytest.mark.gl
@pytest.mark.usefixtures("gl_ok")
def test_cancel_and_errors_are_lines_and_exit_codes(tmp_path, capsys):
    from studio.document.fileformat import save_project

    save_project(tiny_project(frames=3), tmp_path / "p.ths")
    settings = ExportSettings(tmp_path / "v.mp4", eye_size=(32, 32), lod_budget=2000)
    cancel = threading.Event()
    cancel.set()  # as after SIGINT: stops before the first frame
    assert run(tmp_path / "p.ths", settings, None, cancel=cancel) == EXIT_CANCELLED
    assert _lines(capsys.readouterr().out)[-1] == {"cancelled": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.ths"]  # no partial file

    (tmp_path / "v_LR.mp4").write_bytes(b"old")  # exists, no overwrite: an ExportError
    assert run(tmp_path / "p.ths", settings, None) == EXIT_ERROR
    error = _lines(capsys.readouterr().out)[-1]["error"]
    assert "exists" in error and "\n" not in error

    (tmp_path / "bad.ths").write_bytes(b"not a project")
    assert run(tmp_path / "bad.ths", settings, None) == EXIT_ERROR
    assert "cannot read the project" in _lines(capsys.readouterr().out)[-1]["error"]


def test_bad_settings_file_is_an_error_line(tmp_path, capsys):
    (tmp_path / "s.json").write_text("{")
    assert main([str(tmp_path / "p.ths"), str(tmp_path / "s.json")]) == EXIT_ERROR
    assert "bad export settings" in _lines(capsys.readouterr().out)[0]["error"]
