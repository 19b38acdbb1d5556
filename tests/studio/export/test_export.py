"""End-to-end exports through EGL: decode the results with PyAV, check stereo geometry, and
check that cancelling or failing never leaves a file behind."""

from __future__ import annotations

import errno
import json
import threading

import av
import cv2
import numpy as np
import pytest
from export_helpers import blob_cloud, tiny_project

from studio.export import (
    ExportCancelled,
    ExportError,
    ExportSettings,
    export_project,
    plan_export,
    run_export,
)
from studio.export.heads import StaticCloudSource
from studio.export.isobmff import read_st3d

pytestmark = [pytest.mark.gl, pytest.mark.usefixtures("gl_ok")]


def probe(path):
    """(video stream info, audio duration or None, decoded RGB frames)."""
    with av.open(str(path)) as c:
        kinds = [s.type for s in c.streams]
        vs = c.streams.video[0]
        info = {
            "kinds": kinds,
            "codec": vs.codec_context.name,
            "size": (vs.codec_context.width, vs.codec_context.height),
            "rate": vs.average_rate,
            "metadata": dict(vs.metadata),
        }
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    audio_s = None
    if "audio" in kinds:
        with av.open(str(path)) as c:
            n = sum(f.samples for f in c.decode(audio=0))
            audio_s = n / c.streams.audio[0].sample_rate
    return info, audio_s, frames


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("layout", "size", "st3d"),
    [("sbs", (128, 64), 2), ("hsbs", (64, 64), 2), ("tb", (64, 128), 1), ("mono", (64, 64), None)],
)
def test_mp4_layouts(tmp_path, project, head_scene, layout, size, st3d):
    settings = ExportSettings(tmp_path / "clip.mp4", layout=layout, eye_size=(64, 64))
    done = run_export(project, settings, head_source=head_scene)
    info, audio_s, frames = probe(done.path)
    assert info["kinds"] == ["video", "audio"]
    assert info["codec"] == "h264" and info["size"] == size
    assert len(frames) == 10  # 10 frames at 25 fps = 0.4 s x 25
    assert frames[0].shape == (size[1], size[0], 3)
    assert abs(audio_s - 0.4) <= 1 / 25  # within one frame
    assert read_st3d(done.path) == st3d
    assert files_in(tmp_path) == [done.path.name]
    # the head is in the picture: centre brighter than the background corner
    img = frames[5].astype(float)
    assert img.max() > 120 and img[:4, :4].mean() < 60


def ffmpeg_stereo_side_data(path) -> str | None:
    """The "Stereo 3D:" side data line of the video stream as FFmpeg's own demuxer reports it
    (libavformat is what mpv, VLC and many VR players read files with): an independent parser
    of our st3d box / Matroska StereoMode, not ours."""
    import subprocess

    import imageio_ffmpeg

    run = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    for line in run.stderr.splitlines():
        if "Stereo 3D:" in line:
            return line.split("Stereo 3D:", 1)[1].split(",")[0].strip()
    return None


@pytest.mark.parametrize(
    ("layout", "suffix", "expected"),
    [
        ("sbs", ".mp4", "side by side"),
        ("hsbs", ".mp4", "side by side"),
        ("tb", ".mp4", "top and bottom"),
        ("sbs", ".mkv", "side by side"),
        ("tb", ".mkv", "top and bottom"),
        ("mono", ".mp4", None),
    ],
)
def test_ffmpeg_demuxer_detects_the_stereo_layout(
    tmp_path, project, head_scene, layout, suffix, expected
):
    settings = ExportSettings(
        tmp_path / f"clip{suffix}", layout=layout, eye_size=(32, 32), frame_range=(0, 2)
    )
    done = run_export(project, settings, head_source=head_scene)
    assert ffmpeg_stereo_side_data(done.path) == expected


def test_stereo_halves_differ_where_there_is_depth(tmp_path, project):
    # the default head (through the project's head resolution), few Gaussians for speed
    settings = ExportSettings(
        tmp_path / "h.mp4", eye_size=(64, 64), frame_range=(0, 2), lod_budget=4000, crf=10
    )
    done = run_export(project, settings)
    _, _, frames = probe(done.path)
    left, right = frames[0][:, :64].astype(float), frames[0][:, 64:].astype(float)
    assert left.mean() > 25  # the head is there
    diff = np.abs(left - right).mean(axis=2)
    assert diff.max() > 40  # parallax on the head's silhouette and features
    assert np.median(diff[:8]) < 3  # the empty background rows are the same in both eyes


def test_h265_mkv_and_fps_resampling(tmp_path, project, head_scene):
    settings = ExportSettings(
        tmp_path / "c.mkv", layout="tb", codec="h265", eye_size=(64, 64), fps=30
    )
    done = run_export(project, settings, head_source=head_scene)
    assert done.path.name == "c_TB.mkv"
    info, audio_s, frames = probe(done.path)
    assert info["codec"] == "hevc" and info["size"] == (64, 128)
    assert info["metadata"].get("stereo_mode") == "top_bottom"
    assert len(frames) == 12 and info["rate"] == 30  # 0.4 s at 30 fps
    assert abs(audio_s - 0.4) <= 1 / 30
    h265 = ExportSettings(tmp_path / "d.mp4", codec="h265", eye_size=(64, 64), frame_range=(0, 3))
    done = run_export(project, h265, head_source=head_scene)
    info, _, frames = probe(done.path)
    assert info["codec"] == "hevc" and len(frames) == 3 and read_st3d(done.path) == 2


def test_disparity_crossed_near_and_zero_at_convergence(tmp_path):
    # Camera 0.6 m from the origin, convergence 0.6 m: a blob at the origin has no disparity,
    # a blob 0.2 m nearer (depth 0.4 m) has crossed disparity f*b*(1/0.4 - 1/0.6).
    project = tiny_project(frames=1, audio=False)
    scene = StaticCloudSource(blob_cloud([(0.0, 0.03, 0.0), (0.0, -0.02, 0.2)], size=0.004))
    settings = ExportSettings(
        tmp_path / "seq", format="png", eye_size=(128, 128), ipd=0.063, convergence=0.6
    )
    done = run_export(project, settings, head_source=scene)
    rig = json.loads((done.path / "cameras.json").read_text())
    left_cam = rig["frames"][0]["cameras"]["left"]["intrinsics"]
    f = left_cam["fx"]
    assert rig["ipd"] == 0.063 and rig["convergence"] == 0.6

    def centroids(name):
        img = cv2.imread(str(done.path / name), cv2.IMREAD_GRAYSCALE).astype(float)
        img[img < 40] = 0
        out = []
        for rows in (slice(0, 64), slice(64, 128)):  # far blob above, near blob below
            part = img[rows]
            cols = np.arange(part.shape[1]) + 0.5
            out.append(float((part.sum(axis=0) * cols).sum() / part.sum()))
        return out

    (far_l, near_l), (far_r, near_r) = centroids("left/0000.png"), centroids("right/0000.png")
    assert abs(far_l - far_r) < 0.25  # at the convergence distance: zero disparity
    expected = f * 0.063 * (1 / 0.4 - 1 / 0.6)
    assert near_l - near_r > 0  # crossed: the near point is further right in the left eye
    assert near_l - near_r == pytest.approx(expected, abs=0.5)


def test_png_sequence_layout(tmp_path, project, head_scene):
    settings = ExportSettings(tmp_path / "frames", eye_size=(48, 32), frame_range=(0, 3))
    done = run_export(project, settings, head_source=head_scene)
    assert files_in(done.path) == ["audio.wav", "cameras.json", "left", "right"]
    assert files_in(done.path / "left") == ["0000.png", "0001.png", "0002.png"]
    img = cv2.imread(str(done.path / "right" / "0002.png"))
    assert img.shape == (32, 48, 3)
    rig = json.loads((done.path / "cameras.json").read_text())
    assert len(rig["frames"]) == 3
    cams = rig["frames"][1]["cameras"]
    w2c_l, w2c_r = (
        np.array(cams["left"]["world_to_camera"]),
        np.array(cams["right"]["world_to_camera"]),
    )
    assert w2c_l[0, 3] - w2c_r[0, 3] == pytest.approx(rig["ipd"])  # left eye at -ipd/2
    assert files_in(tmp_path) == ["frames"]


def test_cancel_leaves_no_file(tmp_path, project, head_scene):
    cancel = threading.Event()
    seen = []

    def on_progress(report):
        seen.append(report.frame)
        if report.frame == 3:
            cancel.set()

    settings = ExportSettings(tmp_path / "c.mp4", eye_size=(64, 64), preview_every=1)
    with pytest.raises(ExportCancelled):
        run_export(
            project, settings, cancel=cancel, head_source=head_scene, on_progress=on_progress
        )
    assert seen == [0, 1, 2, 3]
    assert files_in(tmp_path) == []


def test_ctrl_c_and_closed_generator_leave_no_file(tmp_path, project, head_scene):
    def interrupt(report):
        if report.frame == 2:
            raise KeyboardInterrupt

    settings = ExportSettings(tmp_path / "c.mp4", eye_size=(64, 64))
    with pytest.raises(KeyboardInterrupt):
        run_export(project, settings, head_source=head_scene, on_progress=interrupt)
    assert files_in(tmp_path) == []
    gen = export_project(project, plan_export(project, settings), head_source=head_scene)
    for report in gen:
        assert report.preview is None  # previews only when asked for
        assert not (tmp_path / "c_LR.mp4").exists()  # the final name appears only when done
        if report.frame == 9:
            break
    gen.close()
    assert files_in(tmp_path) == []


def test_previews(tmp_path, project, head_scene):
    settings = ExportSettings(tmp_path / "c.mp4", eye_size=(64, 64), preview_every=4)
    reports = list(export_project(project, settings, head_source=head_scene))
    with_preview = [r.frame for r in reports if r.preview is not None]
    assert with_preview == [1, 5, 9, 10]
    assert reports[-1].done and reports[-1].preview is None
    assert reports[1].preview.shape == (64, 128, 3) and reports[1].preview.dtype == np.uint8
    assert set(reports[-1].timings) >= {"evaluate", "deform", "render", "encode"}


def test_disk_full_removes_temp_and_says_so(tmp_path, project, head_scene, monkeypatch):
    from studio.export import writers

    real_write = writers.VideoWriter.write
    count = [0]

    def failing_write(self, frame):
        count[0] += 1
        if count[0] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, frame)

    monkeypatch.setattr(writers.VideoWriter, "write", failing_write)
    settings = ExportSettings(tmp_path / "c.mp4", eye_size=(64, 64))
    with pytest.raises(ExportError, match="disk is full"):
        run_export(project, settings, head_source=head_scene)
    assert files_in(tmp_path) == []


def test_missing_audio_file(tmp_path, head_scene):
    from studio.document import AudioClip

    project = tiny_project(audio=False)
    project.audio_clips.append(AudioClip("x", "speech", str(tmp_path / "speech.wav")))
    with pytest.raises(ExportError, match="no-audio"):
        run_export(
            project, ExportSettings(tmp_path / "a.mp4", eye_size=(32, 32)), head_source=head_scene
        )
    assert files_in(tmp_path) == []
    done = run_export(
        project,
        ExportSettings(tmp_path / "a.mp4", eye_size=(32, 32), audio=False),
        head_source=head_scene,
    )
    info, audio_s, _ = probe(done.path)
    assert info["kinds"] == ["video"] and audio_s is None


def test_gaussian_head_exports_as_a_per_frame_baked_mpi(tmp_path):
    # --head mpi on a Gaussian head: every frame is baked into IM-Portrait's 24 planes on the
    # export's own GL context and drawn as an MPI from both eyes.
    project = tiny_project(frames=3, audio=False)
    settings = ExportSettings(tmp_path / "m.mp4", head="mpi", eye_size=(48, 48), audio=False)
    done = run_export(project, settings)
    info, _, frames = probe(done.path)
    assert info["size"] == (96, 48) and len(frames) == 3
    left, right = frames[0][:, :48].astype(float), frames[0][:, 48:].astype(float)
    background = frames[0][0, 0].astype(float)
    assert np.abs(left - background).sum(axis=2).mean() > 10  # the head is there
    assert np.abs(left - right).mean() > 0.5  # and seen from two eyes
    assert files_in(tmp_path) == ["m_LR.mp4"]


def test_cli_export(tmp_path, capsys):
    from studio.commands import export as export_cmd
    from studio.document.fileformat import save_project

    project = tiny_project(frames=3)
    save_project(project, tmp_path / "p.ths")
    import argparse

    parser = argparse.ArgumentParser()
    export_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["export", str(tmp_path / "p.ths"), "--out", str(tmp_path / "v.mp4"), "--eye-size",
         "33x32", "--lod", "2000", "--range", "1:", "--quiet"]
    )  # fmt: skip
    assert export_cmd.run(args) == 0
    out = capsys.readouterr()
    assert "v_LR.mp4" in out.out and "rounded to 34x32" not in out.err  # sbs: width may be odd
    info, _, frames = probe(tmp_path / "v_LR.mp4")
    assert info["size"] == (66, 32) and len(frames) == 2
    args = parser.parse_args(
        ["export", str(tmp_path / "p.ths"), "--out", str(tmp_path / "v.mp4"), "--quiet"]
    )
    with pytest.raises(ExportError, match="--force"):
        export_cmd.run(args)


def test_mpi_project_head(tmp_path):
    from renderers import MPI, Camera, head_mpi_depths
    from renderers.formats.mpi_folder import write_mpi_folder
    from studio.document import HeadRef

    cam = Camera.orbit((0, 0, 0), 0.6, 0, 0, 30, 32, 32)
    yy, xx = np.mgrid[0:32, 0:32]
    disc = ((xx - 16) ** 2 + (yy - 16) ** 2 < 100).astype(np.float32)
    rgba = np.zeros((4, 32, 32, 4), np.float32)
    rgba[1, ..., 0] = 1.0
    rgba[1, ..., 3] = disc  # a red disc on the second plane, ~0.5 m away
    write_mpi_folder(tmp_path / "mpi", MPI(rgba, head_mpi_depths(0.6, 4), cam))
    project = tiny_project(frames=2, audio=False)
    project.head = HeadRef(str(tmp_path / "mpi"), kind="mpi")
    done = run_export(project, ExportSettings(tmp_path / "m.mp4", eye_size=(32, 32), crf=5))
    _, _, frames = probe(done.path)
    left, right = frames[0][:, :32].astype(float), frames[0][:, 32:].astype(float)
    for eye in (left, right):
        assert eye[16, 16, 0] > 200 and eye[16, 16, 1] < 60  # red disc in the middle
        assert eye[1, 1, 0] < 60  # background
    assert np.abs(left - right).max() > 50  # the disc is off the convergence plane: parallax
    with pytest.raises(ExportError, match="is an MPI"):
        run_export(project, ExportSettings(tmp_path / "g.mp4", head="gaussian", eye_size=(32, 32)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_LR.mp4", "mpi"]
