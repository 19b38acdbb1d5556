from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.document import (
    AddAudioClip,
    AddMarker,
    AddTake,
    AudioClip,
    CameraSettings,
    ChangeEvent,
    CompoundEdit,
    Curve,
    DocumentError,
    Edit,
    FrameRate,
    HeadRef,
    History,
    Interpolation,
    Marker,
    ModifyAudioClip,
    Project,
    RemoveAudioClip,
    RemoveMarker,
    RemoveTake,
    RenameTake,
    ReplaceTake,
    SetActiveTake,
    SetCamera,
    SetCurves,
    SetHead,
    SetSettings,
    Take,
    delete_keys,
    insert_keys,
    move_keys,
    set_handle_mode,
    set_handles,
    set_interpolation,
)


def make_project() -> Project:
    p = Project.new(fps="30000/1001", duration_frames=300)
    t2 = Take.new("Take 2", {"yaw": Curve([0, 50, 100], [0.0, 10.0, -5.0])}, source="generated")
    p.takes.append(t2)
    p.takes[0] = p.takes[0].with_curves({"pitch": Curve([10, 20], [1.0, 2.0], 1)})
    p.audio_clips.append(AudioClip("clip1", "speech", "audio/speech.wav", 5))
    p.assets["audio/speech.wav"] = b"RIFF....WAVE"
    p.markers.append(Marker(12, "beat"))
    p.head = HeadRef("heads/a.ply", "gaussian")
    return p


def edit_factories(p: Project) -> list:
    """Functions building one valid edit of every kind for the project's current state."""
    t0, t1 = p.takes[0].id, p.takes[-1].id
    return [
        lambda: insert_keys(p, {"yaw": ([5, 60], [1.0, 2.0]), "exp_3_x": (7, 0.5)}),
        lambda: delete_keys(p, {"pitch": [10]}),
        lambda: move_keys(p, {"pitch": [20]}, 3, 0.25),
        lambda: set_interpolation(p, {"pitch": None}, Interpolation.CONSTANT),
        lambda: set_handles(p, "pitch", 20, left=(-2.0, 1.0)),
        lambda: set_handle_mode(p, {"pitch": [10]}, 3),
        lambda: SetCurves(t1, {"yaw": None, "roll": Curve([1], [2.0])}),
        lambda: AddTake(Take.new("new"), index=1, activate=True),
        lambda: RemoveTake(p.active_take_id),
        lambda: RemoveTake(t1),
        lambda: SetActiveTake(t1),
        lambda: RenameTake(t0, "Renamed"),
        lambda: ReplaceTake(Take(t1, "regen", {"tz": Curve([0], [0.1])})),
        lambda: SetSettings(frame_rate="25", duration=60),
        lambda: SetSettings(work_range=(10, 20)),
        lambda: AddAudioClip(AudioClip.new("music", "audio/m.wav", 3), b"\x00\x01"),
        lambda: RemoveAudioClip("clip1"),
        lambda: ModifyAudioClip("clip1", offset=40, gain=0.5, muted=True),
        lambda: SetHead(HeadRef("heads/b.mpi", "mpi"), b"mpi-bytes"),
        lambda: SetHead(None),
        lambda: SetCamera(CameraSettings(yaw=20.0, distance=1.0)),
        lambda: AddMarker(Marker(3, "start")),
        lambda: RemoveMarker(Marker(12, "beat")),
        lambda: CompoundEdit(
            [RenameTake(t0, "x"), insert_keys(p, {"tx": ([1], [1.0])}), AddMarker(Marker(1))],
            "several",
        ),
    ]


@pytest.mark.parametrize("i", range(24))
def test_apply_revert_round_trip_is_exact(i: int) -> None:
    p = make_project()
    edit = edit_factories(p)[i]()
    before = copy.deepcopy(p)
    events: list[ChangeEvent] = []
    p.events.connect(events.append)
    edit.apply(p)
    assert p != before, edit
    assert events, f"{edit} emitted nothing"
    after = copy.deepcopy(p)
    n = len(events)
    edit.revert(p)
    assert p == before
    assert len(events) > n
    p.validate()
    edit.apply(p)  # redo
    assert p == after
    edit.revert(p)
    assert p == before


def test_failed_edits_leave_project_unchanged() -> None:
    p = make_project()
    before = copy.deepcopy(p)
    h = History(p)
    bad: list[Edit] = [
        SetCurves("missing", {"yaw": None}),
        RemoveTake("missing"),
        AddTake(p.takes[0]),  # duplicate id
        SetSettings(duration=0),
        SetSettings(work_range=(5, 400)),
        SetSettings(work_range=(20, 10)),
        ModifyAudioClip("clip1", gain=-1.0),
        ModifyAudioClip("nope", gain=1.0),
        RemoveMarker(Marker(99)),
        CompoundEdit([RenameTake(p.takes[0].id, "x"), AddMarker(Marker(2)), RemoveTake("nope")]),
    ]
    for e in bad:
        with pytest.raises(DocumentError):
            h.push(e)
        assert p == before, e
    assert not h.can_undo and not h.is_modified
    with pytest.raises(DocumentError):
        RemoveTake(p.takes[0].id).apply(Project.new())
    with pytest.raises(DocumentError):
        SetCurves(p.takes[0].id, {"mouth": None})
    with pytest.raises(DocumentError, match="pitch"):
        insert_keys(p, {"pitch": ([1], [np.nan])})
    with pytest.raises(DocumentError):
        ModifyAudioClip("clip1", volume=2)


def test_remove_active_take_restores_position_and_active() -> None:
    p = make_project()
    p.takes.append(Take.new("Take 3"))
    ids = [t.id for t in p.takes]
    p.active_take_id = ids[1]
    e = RemoveTake(ids[1])
    e.apply(p)
    assert p.active_take_id == ids[2] and [t.id for t in p.takes] == [ids[0], ids[2]]
    e.revert(p)
    assert [t.id for t in p.takes] == ids and p.active_take_id == ids[1]


def test_settings_report_keys_outside() -> None:
    p = make_project()
    e = SetSettings(duration=40)
    e.apply(p)
    assert p.work_range == (0, 40)
    t2 = p.takes[1]
    assert e.keys_outside == {t2.id: {"yaw": 2}}
    assert len(t2.curves["yaw"]) == 3  # kept
    assert p.frame_rate == FrameRate(30000, 1001)


def test_events_name_what_changed() -> None:
    p = make_project()
    seen: list[ChangeEvent] = []
    p.events.connect(seen.append)
    insert_keys(p, {"yaw": ([1], [1.0])}).apply(p)
    assert seen[-1].kind == "curves" and seen[-1].detail["channels"] == ("yaw",)
    assert seen[-1].detail["take_id"] == p.active_take_id
    SetCamera(CameraSettings(pitch=5)).apply(p)
    assert seen[-1].kind == "camera"
    # A failing listener does not break the edit or the other listeners.
    p.events.connect(lambda ev: 1 / 0)
    AddMarker(Marker(1)).apply(p)
    assert seen[-1].kind == "markers"
    with p.events.blocked():
        AddMarker(Marker(2)).apply(p)
    assert seen[-1].detail["marker"] == Marker(1)


# ------------------------------------------------------------------------------ history
def test_history_undo_redo_labels_and_clean_state() -> None:
    p = Project.new()
    h = History(p)
    log: list[str] = []
    h.connect(lambda ev: log.append(ev.detail["action"]))
    assert not h.is_modified and not h.can_undo and h.undo() is None
    h.push(insert_keys(p, {"yaw": ([0, 10], [0.0, 1.0])}))
    h.push(AddMarker(Marker(5, "m")))
    assert h.undo_label == "Add marker" and h.is_modified
    h.mark_clean()
    assert not h.is_modified
    h.undo()
    assert h.is_modified and h.redo_label == "Add marker" and p.markers == []
    h.redo()
    assert not h.is_modified and p.markers == [Marker(5, "m")]
    h.undo()
    h.push(RenameTake(p.active_take_id, "x"))  # discards the redo tail, clean unreachable
    assert not h.can_redo and h.is_modified
    while h.can_undo:
        h.undo()
    assert h.is_modified  # saved state had the marker
    assert log[:2] == ["push", "push"] and "clean" in log
    h.clear()
    assert not h.can_undo and h.is_modified


def test_drag_merges_into_one_undo_step() -> None:
    p = Project.new()
    h = History(p)
    h.push(insert_keys(p, {"yaw": ([0, 10, 20], [0.0, 1.0, 2.0]), "roll": ([0], [1.0])}))
    start = p.active_take
    before = copy.deepcopy(p)
    for step in range(1, 12):  # drag key 10 across key 20 and further
        h.push(move_keys(p, {"yaw": [10]}, step, 0.1 * step, base=start, merge_key=("drag", 1)))
    h.push(move_keys(p, {"roll": [0]}, 1, base=start, merge_key=("drag", 1)))
    assert len(h) == 2 and h.undo_label == "Move keys"
    yaw = p.active_take.curves["yaw"]
    assert yaw.frames.tolist() == [0, 20, 21]  # key 20 survived being passed over
    assert p.active_take.curves["roll"].frames.tolist() == [1]
    h.undo()
    assert p == before
    h.redo()
    assert p.active_take.curves["yaw"] == yaw
    # A different merge key, or none, starts a new step.
    h.push(move_keys(p, {"yaw": [0]}, 1, merge_key=("drag", 2)))
    h.push(move_keys(p, {"yaw": [1]}, 1))
    assert len(h) == 4


def test_no_merge_into_clean_state_and_max_depth() -> None:
    p = Project.new()
    h = History(p, max_depth=3)
    h.push(SetCamera(CameraSettings(yaw=1), merge_key="orbit"))
    h.mark_clean()
    h.push(SetCamera(CameraSettings(yaw=2), merge_key="orbit"))
    assert len(h) == 2 and h.is_modified
    h.undo()
    assert not h.is_modified and p.camera.yaw == 1
    for i in range(5):
        h.push(AddMarker(Marker(i)))
    assert len(h) == 3 and h.is_modified
    while h.can_undo:
        h.undo()
    assert p.markers == [Marker(0), Marker(1)]


# ---------------------------------------------------------------- random edit sequences
OPS = st.lists(
    st.tuples(st.sampled_from(["edit", "undo", "redo"]), st.integers(0, 23)), max_size=25
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_random_sequences_undo_redo_restore_exact_states(ops: list[tuple[str, int]]) -> None:
    p = make_project()
    h = History(p)
    states = [copy.deepcopy(p)]  # states[i]: project after i applied edits
    for op, k in ops:
        if op == "edit":
            try:
                edit = edit_factories(p)[k]()
                h.push(edit)
            except DocumentError:
                assert p == states[h.index]
                continue
            del states[h.index :]
            states.append(copy.deepcopy(p))
            assert len(states) == h.index + 1
        elif op == "undo" and h.undo() is not None:
            assert p == states[h.index]
        elif op == "redo" and h.redo() is not None:
            assert p == states[h.index]
        p.validate()
    while h.can_undo:
        h.undo()
        assert p == states[h.index]
    assert p == states[0]
