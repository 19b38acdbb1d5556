"""plan_export: layouts, sizes, names, timing and bad input (no rendering)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_helpers import tiny_project

from studio.export import ExportError, ExportSettings, plan_export, tagged_path
from studio.export.renderer import eye_cameras


@pytest.mark.parametrize(
    ("layout", "name", "frame", "render"),
    [
        ("sbs", "clip_LR.mp4", (128, 64), (64, 64)),
        ("hsbs", "clip_3dh.mp4", (64, 64), (32, 64)),
        ("tb", "clip_TB.mp4", (64, 128), (64, 64)),
        ("mono", "clip.mp4", (64, 64), (64, 64)),
    ],
)
def test_layout_sizes_and_tags(tmp_path, layout, name, frame, render):
    plan = plan_export(
        tiny_project(), ExportSettings(tmp_path / "clip.mp4", layout=layout, eye_size=(64, 64))
    )
    assert plan.out == tmp_path / name
    assert plan.frame_size == frame
    assert plan.render_size == render
    assert plan.format == "mp4"
    assert not plan.warnings


def test_tag_not_doubled_and_can_be_off(tmp_path):
    assert tagged_path(Path("a/x_lr.mp4"), "sbs") == Path("a/x_lr.mp4")
    assert tagged_path(Path("a/x.mkv"), "tb") == Path("a/x_TB.mkv")
    plan = plan_export(tiny_project(), ExportSettings(tmp_path / "y.mp4", tag_name=False))
    assert plan.out.name == "y.mp4"
    plan = plan_export(tiny_project(), ExportSettings(tmp_path / "z", format="mkv", layout="tb"))
    assert plan.out.name == "z_TB.mkv" and plan.format == "mkv"


def test_odd_sizes_rounded_to_even_with_a_note(tmp_path):
    plan = plan_export(
        tiny_project(), ExportSettings(tmp_path / "c.mp4", layout="mono", eye_size=(63, 31))
    )
    assert plan.frame_size == (64, 32)
    assert len(plan.warnings) == 1 and "63x31" in plan.warnings[0] and "even" in plan.warnings[0]
    # side-by-side only needs an even height; PNG needs nothing
    sbs = plan_export(tiny_project(), ExportSettings(tmp_path / "c.mp4", eye_size=(63, 32)))
    assert sbs.frame_size == (126, 32) and not sbs.warnings
    png = plan_export(tiny_project(), ExportSettings(tmp_path / "seq", eye_size=(63, 31)))
    assert png.format == "png" and png.render_size == (63, 31) and not png.warnings


def test_frame_positions_exact_and_resampled(tmp_path):
    project = tiny_project(frames=10, fps=25)
    same = plan_export(project, ExportSettings(tmp_path / "a.mp4"))
    np.testing.assert_array_equal(same.positions, np.arange(10.0))
    assert same.duration_s == pytest.approx(0.4)
    up = plan_export(project, ExportSettings(tmp_path / "a.mp4", fps=30))
    assert up.num_frames == 12  # 0.4 s x 30 fps
    np.testing.assert_allclose(up.positions, np.arange(12) * 25 / 30)
    part = plan_export(project, ExportSettings(tmp_path / "a.mp4", frame_range=(3, 7)))
    np.testing.assert_array_equal(part.positions, [3.0, 4.0, 5.0, 6.0])
    ntsc = plan_export(project, ExportSettings(tmp_path / "a.mp4", fps="29.97"))
    assert str(ntsc.fps) == "30000/1001"


def test_camera_overrides_and_rig(tmp_path):
    plan = plan_export(
        tiny_project(),
        ExportSettings(
            tmp_path / "a.mp4", eye_size=(64, 64), ipd=0.05, convergence=0.8, fov_deg=40
        ),
    )
    left, right = eye_cameras(plan)
    assert np.linalg.norm(left.position - right.position) == pytest.approx(0.05)
    assert left.fov_y_deg == pytest.approx(40)
    # off-axis: principal points shifted symmetrically by f*b/(2*Zc)
    shift = left.fx * 0.05 / (2 * 0.8)
    assert left.cx == pytest.approx(32 - shift) and right.cx == pytest.approx(32 + shift)
    hsbs = plan_export(
        tiny_project(), ExportSettings(tmp_path / "b.mp4", layout="hsbs", eye_size=(64, 64))
    )
    cam = eye_cameras(hsbs)[0]
    assert (cam.width, cam.height) == (32, 64)
    assert cam.fx == pytest.approx(cam.fy / 2)  # anamorphic squeeze


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame_range": (5, 20)}, "outside the project"),
        ({"frame_range": (-1, 5)}, "outside the project"),
        ({"frame_range": (6, 6)}, "outside the project"),
        ({"layout": "cube"}, "layout must be one of"),
        ({"codec": "vp9"}, "codec must be one of"),
        ({"eye_size": (1, 64)}, "eye size"),
        ({"ipd": 0.0}, "ipd must be > 0 for a stereo layout"),
        ({"ipd": 63.0}, "metres"),
        ({"convergence": 0.0}, "convergence must be > 0"),
        ({"fov_deg": 200.0}, "fov"),
        ({"fps": "abc"}, "frame rate"),
        ({"crf": 70}, "crf"),
    ],
)
def test_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=message):
        plan_export(tiny_project(), ExportSettings(tmp_path / "a.mp4", **kwargs))


def test_unwritable_destinations(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="is not a folder"):
        plan_export(tiny_project(), ExportSettings(blocker / "out.mp4"))
    with pytest.raises(ExportError, match="does not exist"):
        plan_export(tiny_project(), ExportSettings(tmp_path / "nope" / "out.mp4"))
    (tmp_path / "dir_LR.mp4").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        plan_export(tiny_project(), ExportSettings(tmp_path / "dir.mp4"))
    existing = tmp_path / "old_LR.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(ExportError, match="--force"):
        plan_export(tiny_project(), ExportSettings(existing))
    assert plan_export(tiny_project(), ExportSettings(existing, overwrite=True)).out == existing
    with pytest.raises(ExportError, match="suffix"):
        plan_export(tiny_project(), ExportSettings(tmp_path / "a.avi"))


def test_mono_allows_zero_ipd_and_audio_flag(tmp_path):
    plan = plan_export(tiny_project(), ExportSettings(tmp_path / "a.mp4", layout="mono", ipd=0))
    assert plan.eyes == ("mono",) and plan.audio
    silent = plan_export(tiny_project(audio=False), ExportSettings(tmp_path / "a.mp4"))
    assert not silent.audio


def test_export_package_is_qt_free():
    import subprocess
    import sys

    code = (
        "import sys, studio.export, studio.export.job, studio.export.renderer, "
        "studio.export.writers, studio.export.isobmff, studio.export.heads, "
        "studio.commands.export, studio.commands.export_motion\n"
        "qt = ('PySide6', 'shiboken6', 'pyqtgraph')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in qt]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
