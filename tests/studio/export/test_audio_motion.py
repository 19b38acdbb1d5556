"""Export audio mixing, and motion CSV/JSON/NPY export and import (no rendering)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from export_helpers import tiny_project, wav_bytes

from models.motion_space import CHANNEL_INDEX, CHANNELS, DITTO_MOTION_DIM, unpack_ditto
from studio.document import AudioClip
from studio.export import ExportError, export_motion, import_motion
from studio.export.audio import mix_project_audio
from studio.export.motion import MOTION_COLUMNS, motion_table, read_motion, rig_constants


# ------------------------------------------------------------------------------------ audio
def test_mix_offsets_gains_and_trim():
    project = tiny_project(frames=50, audio=False)  # 2 s at 25 fps
    project.assets["a.wav"] = wav_bytes(0.5, rate=16000)
    project.assets["b.wav"] = wav_bytes(0.5, rate=44100, channels=2, freq=1000)
    project.audio_clips += [
        AudioClip.new("a", "a.wav", offset=0, gain=1.0),
        AudioClip.new("b", "b.wav", offset=25, gain=0.5),  # starts at 1.0 s
    ]
    mix = mix_project_audio(project, 0, 50)
    assert mix.shape == (96000, 2) and mix.dtype == np.float32
    rms = lambda a: float(np.sqrt(np.mean(a**2)))  # noqa: E731
    assert rms(mix[:24000]) == pytest.approx(0.25 / np.sqrt(2), rel=0.05)  # clip a
    assert rms(mix[26000:46000]) < 1e-3  # silence between
    assert rms(mix[48100:71900]) == pytest.approx(0.125 / np.sqrt(2), rel=0.05)  # b, gain 0.5
    np.testing.assert_allclose(mix[:, 0], mix[:, 1])  # mono duplicated / identical channels
    # trimmed to a range starting inside clip b: it plays from its 0.2 s point
    part = mix_project_audio(project, 30, 40)
    assert part.shape == (19200, 2)
    np.testing.assert_allclose(part, mix[57600:76800], atol=1e-6)


def test_muted_clip_and_missing_audio(tmp_path):
    project = tiny_project(audio=False)
    project.audio_clips.append(AudioClip("c1", "gone", str(tmp_path / "gone.wav")))
    with pytest.raises(ExportError, match="--no-audio"):
        mix_project_audio(project, 0, 10)
    project.audio_clips[0] = AudioClip("c1", "gone", str(tmp_path / "gone.wav"), muted=True)
    assert not mix_project_audio(project, 0, 10).any()


# ------------------------------------------------------------------------------------ motion
@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_motion_round_trips_with_the_document(tmp_path, suffix):
    project = tiny_project(frames=10)
    out = export_motion(project, tmp_path / f"motion{suffix}")
    take = import_motion(out, name="back")
    frames = np.arange(10)
    np.testing.assert_array_equal(take.evaluate(frames), project.evaluate(frames))
    assert take.source == "imported" and take.name == "back"
    assert set(take.curves) == {"yaw", "exp_19_y", "eye_open_l", "emotion_happy"}
    # a project with the imported take active exports the same table again
    project.takes.append(take)
    original = motion_table(project)[1]
    project.active_take_id = take.id
    np.testing.assert_array_equal(motion_table(project)[1], original)


def test_csv_columns_and_derived_values(tmp_path):
    project = tiny_project(frames=10)
    out = export_motion(project, tmp_path / "m.csv", frame_range=(2, 8))
    with out.open() as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert tuple(header) == MOTION_COLUMNS
    assert header[:9] == ["frame", "time_s", "pitch", "yaw", "roll", "tx", "ty", "tz", "scale"]
    assert "exp_20_z" in header and "eye_ball_5" in header and "emotion_contempt" in header
    assert header[-3:] == ["mouth_open", "blink_l", "blink_r"]
    assert len(rows) == 1 + 6 and rows[1][0] == "2" and float(rows[1][1]) == pytest.approx(0.08)
    table = np.array(rows[1:], dtype=np.float64)
    col = {n: i for i, n in enumerate(header)}
    rig = rig_constants(project)
    values = project.evaluate(np.arange(2, 8))
    np.testing.assert_allclose(
        table[:, col["mouth_open"]],
        np.clip(values[:, CHANNEL_INDEX["exp_19_y"]] / rig["mouth_full_open"], 0, 1),
    )
    # eye_open_l goes 1 -> 0.1 -> 1: the left blink rises to 0.9 at frame 5, right stays 0
    blink_l = table[:, col["blink_l"]]
    assert blink_l[3] == pytest.approx(0.9) and blink_l.min() >= 0 and blink_l.max() <= 1
    assert not table[:, col["blink_r"]].any()
    assert 0 < table[:, col["mouth_open"]].max() <= 1


def test_json_metadata(tmp_path):
    out = export_motion(tiny_project(), tmp_path / "m.json")
    doc = json.loads(out.read_text())
    assert doc["format"] == "talking-head-studio/motion" and doc["frame_rate"] == "25"
    assert doc["columns"] == list(MOTION_COLUMNS) and len(doc["rows"]) == 10
    assert set(doc["rig"]) == {"mouth_full_open", "lid_travel_upper"}


def test_ditto_npy(tmp_path):
    project = tiny_project()
    out = export_motion(project, tmp_path / "m.npy")
    packed = np.load(out)
    assert packed.shape == (10, DITTO_MOTION_DIM) and packed.dtype == np.float32
    back = unpack_ditto(packed.astype(np.float64))
    yaw = CHANNEL_INDEX["yaw"]
    np.testing.assert_allclose(back[:, yaw], project.evaluate(np.arange(10))[:, yaw], atol=1e-3)


def test_motion_bad_input(tmp_path):
    project = tiny_project()
    with pytest.raises(ExportError, match=r"\.csv, \.json or \.npy"):
        export_motion(project, tmp_path / "m.txt")
    with pytest.raises(ExportError, match="outside the project"):
        export_motion(project, tmp_path / "m.csv", frame_range=(0, 11))
    (tmp_path / "m.csv").write_text("x")
    with pytest.raises(ExportError, match="--force"):
        export_motion(project, tmp_path / "m.csv")
    with pytest.raises(ExportError, match="does not exist"):
        export_motion(project, tmp_path / "no" / "m.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,yaw\n0,1\n0,2\n")
    with pytest.raises(ExportError, match="duplicate"):
        read_motion(bad)
    bad.write_text("yaw\n1\n")
    with pytest.raises(ExportError, match="no 'frame' column"):
        read_motion(bad)
    bad.write_text("frame,yaw\n0.5,1\n")
    with pytest.raises(ExportError, match="whole frames"):
        read_motion(bad)
    bad.write_text("frame,yaw\n0,nan\n")
    with pytest.raises(ExportError, match="NaN"):
        read_motion(bad)
    # unknown columns are ignored; missing channels keep their defaults
    ok = tmp_path / "ok.csv"
    ok.write_text("frame,yaw,whatever\n0,1.5,7\n4,-2,7\n")
    frames, values, present = read_motion(ok)
    assert present == ("yaw",) and frames.tolist() == [0, 4]
    assert values.shape == (2, len(CHANNELS)) and values[0, CHANNEL_INDEX["scale"]] == 1.0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
