"""Project files: exact round trips, external assets, and one-line errors for bad files."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fileformat_factory import edit_json, make_project, npy, read_members, write_members

from studio.document import fileformat
from studio.document.curve import Curve
from studio.document.fileformat import (
    SCHEMA_VERSION,
    ProjectFileError,
    load_project,
    read_project_info,
    save_project,
)
from studio.document.project import HeadRef


def _assert_same_bits(a, b) -> None:
    """Projects equal, and every curve array identical to the bit (signed zeros, dtypes)."""
    assert a == b
    assert [t.id for t in a.takes] == [t.id for t in b.takes]
    for ta, tb in zip(a.takes, b.takes, strict=True):
        assert list(ta.curves) == list(tb.curves)
        for ch in ta.curves:
            for f in ("frames", "values", "interp", "handle_mode", "left", "right"):
                x, y = getattr(ta.curves[ch], f), getattr(tb.curves[ch], f)
                assert x.dtype == y.dtype and x.shape == y.shape
                assert x.tobytes() == y.tobytes(), (ch, f)
        assert ta.metadata == tb.metadata and ta.source == tb.source and ta.name == tb.name


@pytest.fixture(scope="module")
def project():
    return make_project()


@pytest.fixture(scope="module")
def saved_once(tmp_path_factory: pytest.TempPathFactory, project) -> Path:
    path = tmp_path_factory.mktemp("saved") / "p.ths"
    save_project(project, path)
    return path


@pytest.fixture
def saved(tmp_path: Path, saved_once: Path) -> Path:
    """A fresh copy of the saved project in this test's own folder."""
    path = tmp_path / "p.ths"
    path.write_bytes(saved_once.read_bytes())
    return path


def test_round_trip_is_exact(saved: Path, project) -> None:
    loaded = load_project(saved)
    _assert_same_bits(project, loaded)
    assert loaded.active_take_id == project.active_take_id == project.takes[-1].id
    assert loaded.frame_rate == project.frame_rate
    assert (loaded.duration, loaded.work_range) == (project.duration, project.work_range)
    assert loaded.camera == project.camera and loaded.markers == project.markers
    assert loaded.audio_clips == project.audio_clips
    assert loaded.assets == project.assets and loaded.head == project.head
    assert loaded.metadata == project.metadata
    # Evaluation (the packed engine) agrees too.
    np.testing.assert_array_equal(
        loaded.evaluate(np.arange(-5, 50)), project.evaluate(np.arange(-5, 50))
    )
    # And again: a loaded project saves to the same bytes (saves are deterministic).
    again = saved.with_name("again.ths")
    save_project(loaded, again)
    assert again.read_bytes() == saved.read_bytes()


def test_layout_of_the_archive(saved: Path, project) -> None:
    with zipfile.ZipFile(saved) as zf:
        names = zf.namelist()
        infos = {i.filename: i for i in zf.infolist()}
        doc = json.loads(zf.read("project.json"))
    assert names[0] == "project.json"
    assert infos["project.json"].compress_type == zipfile.ZIP_DEFLATED
    assert doc["format"] == "talking-head-studio" and doc["schema_version"] == SCHEMA_VERSION
    take0 = doc["takes"][0]
    assert take0["keys"] == "takes/0" and len(take0["channels"]) == 90
    for f in ("frames", "values", "interp", "handle_mode", "left", "right"):
        assert f"takes/0/{f}.npy" in names and f"takes/1/{f}.npy" in names
    # The WAV does not shrink under DEFLATE (noise): stored as is.
    assert infos["assets/voice.wav"].compress_type == zipfile.ZIP_STORED
    assert {a["name"] for a in doc["assets"]} == set(project.assets)
    assert doc["audio_clips"][0]["asset"] == {"embedded": "voice.wav"}
    assert read_project_info(saved)["active_take"] == project.active_take_id


def test_external_assets_are_relative_and_follow_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "show"
    (folder / "heads").mkdir(parents=True)
    head = folder / "heads" / "anna.ply"
    head.write_bytes(b"ply\n")
    outside = tmp_path / "elsewhere.ply"
    outside.write_bytes(b"ply\n")
    p = make_project(external_head=head, duration=60)
    save_project(p, folder / "a.ths")
    doc = json.loads(read_members(folder / "a.ths")["project.json"])
    assert doc["head"]["asset"] == {"external": "heads/anna.ply"}
    moved = tmp_path / "moved"
    (folder).rename(moved)
    loaded = load_project(moved / "a.ths")
    assert loaded.head == HeadRef(str(moved / "heads" / "anna.ply"), "gaussian")
    # Outside the project's folder: absolute.
    p.head = HeadRef(str(outside), "gaussian")
    save_project(p, moved / "b.ths")
    doc = json.loads(read_members(moved / "b.ths")["project.json"])
    assert doc["head"]["asset"] == {"external": str(outside)}
    # Missing: a clear error naming the path, unless the caller asks to keep the reference.
    (moved / "heads" / "anna.ply").unlink()
    with pytest.raises(ProjectFileError, match=r"missing external asset .*anna\.ply"):
        load_project(moved / "a.ths")
    kept = load_project(moved / "a.ths", missing_assets="keep")
    assert kept.head.asset == str(moved / "heads" / "anna.ply")


def test_save_refuses_what_it_cannot_store_and_leaves_the_file(saved: Path, project) -> None:
    before = saved.read_bytes()
    project.metadata["bad"] = {1, 2}
    try:
        with pytest.raises(ProjectFileError, match=r"cannot save: project metadata.bad is a set"):
            save_project(project, saved)
        project.metadata["bad"] = float("nan")
        with pytest.raises(ProjectFileError, match="nan"):
            save_project(project, saved)
        project.metadata["bad"] = {3: "x"}
        with pytest.raises(ProjectFileError, match="non-string key"):
            save_project(project, saved)
    finally:
        del project.metadata["bad"]
    assert saved.read_bytes() == before
    assert sorted(os.listdir(saved.parent)) == ["p.ths"]


def test_save_into_missing_folder_is_a_project_file_error(tmp_path: Path, project) -> None:
    with pytest.raises(ProjectFileError, match="cannot save"):
        save_project(project, tmp_path / "nope" / "p.ths")


# ---------------------------------------------------------------------------------------------
# Errors: (how to break the file, what the one-line message must say)


def _members_edit(fn):
    def apply(src: Path, dst: Path) -> None:
        m = read_members(src)
        fn(m)
        write_members(dst, m)

    return apply


def _json_edit(fn):
    return lambda src, dst: edit_json(src, dst, fn)


def _set(doc, path, value):
    d = doc
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _delete(doc, path):
    d = doc
    for k in path[:-1]:
        d = d[k]
    del d[path[-1]]


def _npy_replace(member: str, fn):
    def edit(m: dict[str, bytes]) -> None:
        import io

        arr = np.load(io.BytesIO(m[member]))
        m[member] = npy(fn(arr.copy()))

    return _members_edit(edit)


def _nan_at_3(a: np.ndarray) -> np.ndarray:
    a[3] = np.nan
    return a


def _swap_frames(a: np.ndarray) -> np.ndarray:
    a[4], a[5] = a[5], a[4]
    return a


def _bad_interp(a: np.ndarray) -> np.ndarray:
    a[7] = 9
    return a


CASES = {
    "empty": (lambda s, d: d.write_bytes(b""), "empty"),
    "text file": (lambda s, d: d.write_text("hello"), "not a Talking Head Studio project"),
    "truncated": (lambda s, d: d.write_bytes(s.read_bytes()[: len(s.read_bytes()) // 2]),
                  "truncated or damaged"),
    "foreign zip": (_members_edit(lambda m: m.pop("project.json")), "no project.json"),
    "wrong format": (_json_edit(lambda d: _set(d, ["format"], "blender")), "format 'blender'"),
    "newer schema": (_json_edit(lambda d: _set(d, ["schema_version"], SCHEMA_VERSION + 4)),
                     f"newer schema version {SCHEMA_VERSION + 4} > supported {SCHEMA_VERSION}"),
    "schema 0": (_json_edit(lambda d: _set(d, ["schema_version"], 0)), "schema version 0"),
    "schema str": (_json_edit(lambda d: _set(d, ["schema_version"], "1")),
                   "schema_version: expected an integer, got a string"),
    "missing camera": (_json_edit(lambda d: _delete(d, ["camera"])), "missing field camera"),
    "missing fov": (_json_edit(lambda d: _delete(d, ["camera", "fov_deg"])),
                    "missing field camera.fov_deg"),
    "wrong type": (_json_edit(lambda d: _set(d, ["markers", 1, "frame"], "12")),
                   r"markers\[1\].frame: expected an integer, got a string"),
    "bool as number": (_json_edit(lambda d: _set(d, ["audio_clips", 0, "gain"], True)),
                       r"audio_clips\[0\].gain: expected a number"),
    "json NaN": (_members_edit(lambda m: m.update({"project.json": m["project.json"].replace(
        b'"gain": 0.75', b'"gain": NaN')})), "NaN"),
    "not json": (_members_edit(lambda m: m.update({"project.json": b"{nope"})), "invalid JSON"),
    "json list": (_members_edit(lambda m: m.update({"project.json": b"[]"})), "expected an object"),
    "unknown channel": (_json_edit(lambda d: _set(d, ["takes", 0, "channels", 2], "nose_ring")),
                        "unknown channel name 'nose_ring'"),
    "duplicate channel": (_json_edit(lambda d: _set(d, ["takes", 0, "channels", 2], "pitch")),
                          "listed twice"),
    "counts mismatch": (_json_edit(lambda d: _delete(d, ["takes", 0, "key_counts", -1])),
                        "90 channels but 89 key counts"),
    "wrong length": (_json_edit(lambda d: _set(d, ["takes", 0, "key_counts", 0], 121)),
                     "keys of wrong length"),
    "short array": (_npy_replace("takes/0/values.npy", lambda a: a[:-1]), "keys of wrong length"),
    "nan value": (_npy_replace("takes/0/values.npy", _nan_at_3),
                  "NaN/inf key values in channel pitch"),
    "inf handle": (_npy_replace("takes/1/right.npy", lambda a: np.full_like(a, np.inf)),
                   "NaN/inf key right"),
    "non-increasing": (_npy_replace("takes/0/frames.npy", _swap_frames),
                       "non-increasing frames in channel pitch"),
    "bad interp": (_npy_replace("takes/0/interp.npy", _bad_interp), "invalid interp code 9"),
    "wrong dtype": (_npy_replace("takes/0/frames.npy", lambda a: a.astype(np.float64)),
                    "dtype float64, expected int64"),
    "2-D values": (_npy_replace("takes/0/values.npy", lambda a: a.reshape(-1, 1)),
                   "shape .* expected \\[K\\]"),
    "object array": (_members_edit(lambda m: m.update({"takes/0/values.npy": npy(
        np.array([{}], dtype=object))})), "dtype object"),
    "missing member": (_members_edit(lambda m: m.pop("takes/1/left.npy")),
                       "member takes/1/left.npy is missing"),
    "missing asset": (_members_edit(lambda m: m.pop("assets/voice.wav")),
                      "member assets/voice.wav is missing"),
    "unreadable audio": (_members_edit(lambda m: m.update({"assets/voice.wav": b"RIFF" + bytes(
        len(m["assets/voice.wav"]) - 4)})), "unreadable audio asset 'voice.wav'"),
    "asset size": (_json_edit(lambda d: _set(d, ["assets", 0, "size"], 1)), "expected 1"),
    "dangling asset": (_json_edit(lambda d: _set(d, ["audio_clips", 0, "asset"],
                                                 {"embedded": "x"})),
                       "embedded asset 'x' is not in the asset table"),
    "bad active take": (_json_edit(lambda d: _set(d, ["active_take"], "gone")),
                        "active take 'gone' is not in the project"),
    "bad camera": (_json_edit(lambda d: _set(d, ["camera", "fov_deg"], 500)), "fov_deg"),
    "bad handles": (_npy_replace("takes/0/left.npy", lambda a: np.abs(a) + 1),
                    "point the wrong way"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_files_give_one_line_errors(case: str, saved: Path) -> None:
    make, expected = CASES[case]
    bad = saved.with_name("bad.ths")
    make(saved, bad)
    before = bad.read_bytes()
    with pytest.raises(ProjectFileError) as info:
        load_project(bad)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{bad}: "), msg
    assert info.value.path == str(bad)
    import re

    assert re.search(expected, msg), msg
    assert bad.read_bytes() == before


def test_corrupt_member_is_reported(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("assets/voice.wav")  # stored: its bytes are right there
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 100] ^= 0xFF
    bad = saved.with_name("bad.ths")
    bad.write_bytes(bytes(data))
    with pytest.raises(ProjectFileError, match=r"corrupt member assets/voice.wav \(Bad CRC"):
        load_project(bad)


def test_missing_and_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(ProjectFileError, match="no such file"):
        load_project(tmp_path / "nothing.ths")
    with pytest.raises(ProjectFileError, match="is a folder"):
        load_project(tmp_path)


def test_migrations_run_in_order(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def v1_to_v2(doc, read):
        calls.append(doc["schema_version"])
        assert read("takes/0/frames.npy")[:6] == b"\x93NUMPY"
        doc["metadata"]["migrated"] = True
        return doc

    monkeypatch.setattr(fileformat, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(fileformat, "MIGRATIONS", {})
    fileformat.register_migration(1)(v1_to_v2)
    with pytest.raises(ValueError, match="already exists"):
        fileformat.register_migration(1)(v1_to_v2)
    loaded = load_project(saved)
    assert calls == [1] and loaded.metadata["migrated"] is True
    # A version with no migration left is refused clearly.
    monkeypatch.setattr(fileformat, "SCHEMA_VERSION", 3)
    with pytest.raises(ProjectFileError, match="schema version 2 is no longer supported"):
        load_project(saved)


def test_loading_touches_nothing(saved: Path) -> None:
    st = os.stat(saved)
    listing = sorted(os.listdir(saved.parent))
    load_project(saved)
    assert os.stat(saved).st_mtime_ns == st.st_mtime_ns
    assert sorted(os.listdir(saved.parent)) == listing


def test_error_message_is_one_line_and_bounded() -> None:
    e = ProjectFileError("/x/p.ths", "line one\nline two\t" + "y" * 1000)
    assert "\n" not in str(e) and str(e).startswith("/x/p.ths: line one line two")
    assert len(e.problem) <= 400
    import pickle

    again = pickle.loads(pickle.dumps(e))
    assert str(again) == str(e) and again.path == "/x/p.ths"


def test_empty_take_and_no_head_round_trip(tmp_path: Path) -> None:
    from studio.document.project import Project

    p = Project.new(24, 100)
    p.takes[0] = p.takes[0].with_curves({"yaw": Curve([5], [1.0], channel="yaw")})
    save_project(p, tmp_path / "e.ths")
    q = load_project(tmp_path / "e.ths")
    _assert_same_bits(p, q)
    assert q.head is None and q.audio_clips == [] and q.assets == {}


def test_external_audio_is_checked_and_symlinked_projects_resolve(tmp_path: Path) -> None:
    from fileformat_factory import wav_bytes

    from studio.document.project import AudioClip

    real = tmp_path / "real"
    real.mkdir()
    (real / "voice.wav").write_bytes(wav_bytes())
    p = make_project(duration=20, key_every=5, channels=("yaw",), n_takes=1)
    p.audio_clips = [AudioClip("ext", "External", str(real / "voice.wav"))]
    save_project(p, real / "p.ths")
    link = tmp_path / "link.ths"
    link.symlink_to(real / "p.ths")
    assert load_project(link).audio_clips[0].asset == str(real / "voice.wav")
    (real / "voice.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(ProjectFileError, match=r"unreadable audio file .*voice\.wav"):
        load_project(real / "p.ths")
    (real / "voice.wav").unlink()
    with pytest.raises(ProjectFileError, match=r"missing external asset .*voice\.wav"):
        load_project(real / "p.ths")
    assert load_project(real / "p.ths", missing_assets="keep").audio_clips == p.audio_clips
    with pytest.raises(ValueError):
        load_project(real / "p.ths", missing_assets="ignore")
