"""Live Link Face CSV: import, export, round trip, tolerant headers, malformed files."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from models.motion_space import CHANNEL_INDEX as CI
from studio.livelink import (
    ARKIT_BLENDSHAPES,
    LIVELINK_COLUMNS,
    LiveLinkError,
    blendshapes_from_channels,
    channels_from_blendshapes,
    format_timecode,
    parse_timecode,
    read_livelink,
    take_from_livelink,
    write_livelink,
)

# Shapes whose inverse is exact when each opposing pair is used one side at a time.
ROUND_TRIP = ("JawOpen", "EyeBlinkLeft", "EyeBlinkRight", "EyeWideLeft", "EyeSquintRight",
              "MouthSmileLeft", "MouthSmileRight", "BrowInnerUp", "BrowOuterUpLeft",
              "EyeLookInRight", "EyeLookUpLeft", "JawLeft")  # fmt: skip


def _csv(path, n=30, fps=60, columns=LIVELINK_COLUMNS, seed=0, transform=lambda s: s):
    rng = np.random.default_rng(seed)
    vals = {c: np.zeros(n) for c in columns}
    for c in ROUND_TRIP:
        vals[c] = np.clip(0.5 + 0.4 * np.sin(np.arange(n) / 5 + rng.uniform(0, 6)), 0, 1)
    vals["HeadYaw"] = 0.3 * np.sin(np.arange(n) / 7)
    vals["HeadPitch"] = -0.1 + 0.05 * np.arange(n) / n
    lines = [",".join(transform(c) for c in columns)]
    for i in range(n):
        row = []
        for c in columns:
            if c == "Timecode":
                row.append(f"10:00:{i // fps:02d}:{i % fps:02d}.000")
            elif c == "BlendShapeCount":
                row.append("61")
            else:
                row.append(f"{vals[c][i]:.6f}")
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")
    return vals


def test_timecode():
    assert parse_timecode("01:02:03:30.500", 60) == pytest.approx(3723.5 + 0.5 / 60 * 1)
    assert format_timecode(3723.5, 60) == "01:02:03:30.000"
    with pytest.raises(ValueError):
        parse_timecode("12.5", 60)


def test_import_maps_the_documented_channels(tmp_path):
    vals = _csv(tmp_path / "a.csv", n=90)  # 1.5 s: the timecode rate is guessed from FF
    data = read_livelink(tmp_path / "a.csv")
    assert data.timecode_fps == 60 and len(data) == 90
    assert data.times[1] == pytest.approx(1 / 60)
    ch = channels_from_blendshapes(data.shapes)
    assert np.allclose(ch[:, CI["exp_19_y"]], 0.12 * vals["JawOpen"], atol=1e-6)
    assert np.allclose(ch[:, CI["eye_open_l"]], 1 - vals["EyeBlinkLeft"], atol=1e-6)
    assert np.allclose(ch[:, CI["yaw"]], -np.degrees(vals["HeadYaw"]), atol=1e-4)
    smile = ch[:, CI["exp_20_x"]]  # subject's left corner moves out (+x) and up (-y)
    assert (smile[vals["MouthSmileLeft"] > 0.1] > 0).all()
    assert (ch[:, CI["exp_20_y"]][vals["MouthSmileLeft"] > 0.1] < 0).all()


def test_round_trip(tmp_path):
    _csv(tmp_path / "a.csv", n=40)
    data = read_livelink(tmp_path / "a.csv", timecode_fps=60)  # < 1 s: rate not guessable
    dense = channels_from_blendshapes(data.shapes)
    write_livelink(tmp_path / "b.csv", dense, 60.0)
    back = read_livelink(tmp_path / "b.csv", timecode_fps=60)
    assert back.times == pytest.approx(data.times)
    for name in (*ROUND_TRIP, "HeadYaw", "HeadPitch"):
        assert np.allclose(back.shapes[name], data.shapes[name], atol=1e-5), name
    # Through a take at the same rate: key reduction stays within the channel tolerances.
    take = take_from_livelink(data, 60.0)
    again = blendshapes_from_channels(take.evaluate(np.arange(40)))
    assert np.abs(again["JawOpen"] - data.shapes["JawOpen"]).max() < 0.05


def test_other_order_and_camel_case(tmp_path):
    _csv(tmp_path / "a.csv", seed=3)
    cols = list(LIVELINK_COLUMNS)
    rng = np.random.default_rng(5)
    shuffled = [cols[i] for i in rng.permutation(len(cols))]
    _csv(tmp_path / "b.csv", columns=shuffled, seed=3,
         transform=lambda c: c[0].lower() + c[1:])  # jawOpen, headYaw, timecode  # fmt: skip
    a, b = read_livelink(tmp_path / "a.csv"), read_livelink(tmp_path / "b.csv")
    for name in ARKIT_BLENDSHAPES:
        assert np.array_equal(a.shapes[name], b.shapes[name]), name
    assert np.array_equal(a.times, b.times)


def test_missing_columns_read_as_zero_and_extra_ignored(tmp_path):
    p = tmp_path / "few.csv"
    p.write_text("Timecode,jaw_open,Extra\n00:00:00:00.000,0.5,x\n00:00:00:01.000,1,y\n")
    d = read_livelink(p, timecode_fps=30)
    assert d.ignored == ["Extra"] and "EyeBlinkLeft" in d.missing
    assert d.shapes["JawOpen"].tolist() == [0.5, 1.0] and d.times[1] == pytest.approx(1 / 30)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("JawOpen\n0.5\n", "no Timecode"),
        ("Timecode,Foo\n00:00:00:00.000,1\n", "no ARKit"),
        ("Timecode,JawOpen\n", "no data rows"),
        ("Timecode,JawOpen\n00:00:00:00.000,0.5\n00:00:00:01.000\n", "row 3 has 1 fields"),
        (
            "Timecode,JawOpen\n00:00:00:00.000,0.5\n00:00:00:01.000,abc\n",
            "row 3, column JawOpen: 'abc' is not a number",
        ),
        ("Timecode,JawOpen\nnoon,0.5\n", "row 2, column Timecode"),
        (
            "Timecode,BlendShapeCount,JawOpen\n00:00:00:00.000,x,0.5\n",
            "row 2, column BlendShapeCount",
        ),
        ("Timecode,JawOpen\n00:00:01:00.000,0.5\n00:00:00:01.000,0.5\n", "row 3.*backwards"),
        ("Timecode,JawOpen,jawopen\n00:00:00:00.000,0.5,0.5\n", "twice"),
    ],
)
def test_malformed_files_name_row_and_column(tmp_path, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(LiveLinkError, match=match) as exc:
        read_livelink(p)
    assert "\n" not in str(exc.value)


def _cli(module, argv):
    import importlib

    mod = importlib.import_module(f"studio.commands.{module}")
    parser = argparse.ArgumentParser()
    mod.add_parser(parser.add_subparsers())
    return mod.run(parser.parse_args(argv))


def test_cli_import_then_export(tmp_path):
    from studio.document import Project, load_project, save_project

    _csv(tmp_path / "a.csv", n=120)  # 2 s at 60 fps
    save_project(Project.new(25, 10), tmp_path / "p.ths")
    assert _cli("import_livelink", ["import-livelink", str(tmp_path / "a.csv"), "--project",
                str(tmp_path / "p.ths"), "--out", str(tmp_path / "p2.ths")]) == 0  # fmt: skip
    p2 = load_project(tmp_path / "p2.ths")
    assert len(p2.takes) == 2 and p2.active_take.name == "a" and p2.active_take.source == "imported"
    assert p2.duration == 50 and p2.work_range == (0, 50)  # grown to cover 2 s at 25 fps
    assert _cli("export_livelink", ["export-livelink", str(tmp_path / "p2.ths"), "--out",
                str(tmp_path / "out.csv")]) == 0  # fmt: skip
    d = read_livelink(tmp_path / "out.csv")
    assert len(d) == 50 and d.shapes["JawOpen"].max() > 0.5
