"""The generation child process (studio.generation_child): requests as JSON, the JSON-lines
protocol with previews and a result file, SIGINT cancels at the next step leaving no files, bad
input is one error line. Qt-free; the child runs a tiny random model on one torch thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from generation_helpers import wav_bytes

from models.motion_space import CHANNEL_INDEX, JAW_OPEN_CHANNEL
from studio.document import AudioClip, Project, Take
from studio.document.fileformat import save_project
from studio.generation import GenerateRequest, GenerationError, GenerationResult
from studio.generation_child import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    RESULT_NAME,
    load_result,
    request_from_json,
    request_to_json,
    save_result,
)

ROOT = Path(__file__).resolve().parents[2]


def _project(seconds: float) -> Project:
    p = Project.new(fps=25, duration_frames=int(np.ceil(seconds * 25)))
    p.assets["audio/speech.wav"] = wav_bytes(seconds)
    p.audio_clips.append(AudioClip.new("speech", "audio/speech.wav"))
    return p


def _inputs(tmp_path: Path, project: Project | None, request: GenerateRequest) -> list[str]:
    """The child's command line; inputs in tmp_path/in (None: keep the snapshot there), its
    output folder tmp_path/out."""
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    if project is not None:
        save_project(project, tmp_path / "in" / "p.ths", backups=0)
    (tmp_path / "in" / "r.json").write_text(request_to_json(request))
    return [sys.executable, "-m", "studio.generation_child", str(tmp_path / "in" / "p.ths"),
            str(tmp_path / "in" / "r.json"), "--out-dir", str(tmp_path / "out"),
            "--threads", "1"]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_request_round_trips_through_json(tmp_path):
    r = GenerateRequest(
        audio=tmp_path / "a.wav", frame_range=(3, 9), regions=("lips", "pose"),
        emotion="happy", steps=4, seed=5, variations=2, model=tmp_path, device="cuda",
        canonical_keypoints=np.arange(63.0).reshape(21, 3), ic_init=True,
    )  # fmt: skip
    back = request_from_json(request_to_json(r))
    assert back.audio == str(tmp_path / "a.wav") and back.model == str(tmp_path)
    assert back.frame_range == (3, 9) and back.regions == ["lips", "pose"]
    assert (back.emotion, back.steps, back.seed, back.variations) == ("happy", 4, 5, 2)
    assert back.device == "cuda" and back.ic_init is True
    np.testing.assert_array_equal(back.canonical_keypoints, r.canonical_keypoints)
    with pytest.raises(GenerationError, match="unknown fields"):
        request_from_json('{"nonsense": 1}')
    with pytest.raises(GenerationError, match="steps"):
        request_from_json('{"steps": 0}')


def test_result_file_round_trip(tmp_path):
    p = _project(0.4)
    takes = [Take.new("A"), Take.new("B")]
    clip = p.audio_clips[0]
    result = GenerationResult(takes, (2, 8), ["note"], clip, p.assets[clip.asset], 12, "m", "cpu")
    save_result(result, p.frame_rate, tmp_path / "r.ths")
    info = {"frame_range": [2, 8], "notices": ["note"], "model": "m", "device": "cpu"}
    back = load_result(tmp_path / "r.ths", info)
    assert [t.id for t in back.takes] == [t.id for t in takes]
    assert back.audio_clip == clip and back.audio_data == p.assets[clip.asset]
    assert (back.frame_range, back.notices, back.duration) == ((2, 8), ["note"], 12)


def test_child_speaks_json_lines_and_writes_the_result(tmp_path, tiny_dir):
    project = _project(1.0)
    request = GenerateRequest(model=tiny_dir, steps=2, seed=3, variations=2, device="cpu")
    run = subprocess.run(
        _inputs(tmp_path, project, request), capture_output=True, text=True, env=_env(),
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    steps = [m for m in lines if "step" in m]
    assert steps and all({"step", "total", "text"} <= set(m) for m in steps)
    assert any(m.get("preview") and "preview_start" in m for m in steps)
    done = lines[-1]
    assert done["done"] is True and done["result"] == RESULT_NAME
    assert done["frame_range"] == [0, 25] and done["model"] == "tiny" and done["device"] == "cpu"
    # Only the result is left in the output folder (previews are removed).
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == [RESULT_NAME]
    result = load_result(tmp_path / "out" / RESULT_NAME, done)
    assert len(result.takes) == 2 and result.takes[0].name == "Generated (seed 3) 1/2"
    assert result.audio_clip is None and result.duration == 25


def test_sigint_cancels_at_the_next_step_and_leaves_no_files(tmp_path, tiny_dir):
    project = _project(4.0)
    request = GenerateRequest(model=tiny_dir, steps=50, device="cpu")
    proc = subprocess.Popen(
        _inputs(tmp_path, project, request), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env(),
    )  # fmt: skip
    try:
        seen = []
        for line in proc.stdout:
            msg = json.loads(line)
            seen.append(msg)
            if msg.get("step", 0) >= 1:
                proc.send_signal(signal.SIGINT)
                break
        rest = [json.loads(line) for line in proc.stdout]
        assert proc.wait(60) == EXIT_CANCELLED, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert rest[-1] == {"cancelled": True}
    last_step = max(m.get("step", 0) for m in seen + rest)
    assert last_step < seen[-1]["total"] // 2  # stopped long before the end
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_input_is_one_error_line(tmp_path):
    project = _project(0.4)
    request = GenerateRequest(model=tmp_path / "missing", device="cpu")
    run = subprocess.run(
        _inputs(tmp_path, project, request), capture_output=True, text=True, env=_env(),
        timeout=120,
    )  # fmt: skip
    assert run.returncode == EXIT_ERROR
    last = json.loads(run.stdout.splitlines()[-1])
    assert "does not exist" in last["error"] and "\n" not in last["error"]
    assert list((tmp_path / "out").iterdir()) == []
    (tmp_path / "in" / "p.ths").write_bytes(b"not a project")
    run = subprocess.run(
        _inputs(tmp_path, None, request), capture_output=True, text=True, env=_env(), timeout=120
    )
    assert run.returncode == EXIT_ERROR
    assert json.loads(run.stdout.splitlines()[-1])["error"].startswith("cannot read the project")


def test_previews_are_tails_each_in_its_own_file(tmp_path, tiny_dir, capsys, monkeypatch):
    # In-process run() with the final clean-up disabled, to look at every tail it wrote.
    from studio import generation_child
    from studio.generation import PreviewBuffer

    project = _project(2.0)
    save_project(project, tmp_path / "p.ths", backups=0)
    (tmp_path / "out").mkdir()
    monkeypatch.setattr(generation_child, "_remove_previews", lambda folder: None)
    request = GenerateRequest(model=tiny_dir, steps=1, device="cpu", pose_smoothing=0.0)
    assert generation_child.run(tmp_path / "p.ths", request, tmp_path / "out") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    shown = [m for m in lines if m.get("preview")]
    names = [m["preview"] for m in shown]
    assert len(names) > 3 and len(set(names)) == len(names)  # no tail overwrites another
    buf = PreviewBuffer()
    for m in shown:
        tail = np.load(tmp_path / "out" / m["preview"])
        assert tail.dtype == np.float32 and tail.shape[1] == 90 and tail.shape[0] <= 16
        buf.add(tail, m["preview_start"])
    assert buf.start == 0 and buf.values.shape[0] == 50 and not np.isnan(buf.values).any()
    result = load_result(tmp_path / "out" / RESULT_NAME, lines[-1])
    take = result.takes[0].evaluate(np.arange(50))
    jaw = CHANNEL_INDEX[JAW_OPEN_CHANNEL]
    # The preview is the motion before key reduction: within its tolerance of the take.
    np.testing.assert_allclose(buf.values[:, jaw], take[:, jaw], atol=2e-3)


def test_request_with_limits_round_trips(tmp_path):
    r = GenerateRequest(max_angle=(5.0, 10.0, 2.5), region_scale={"lips": 0.5, "eyes": 1.5})
    back = request_from_json(request_to_json(r))
    assert back.limits() == r.limits()
    assert back.limits().max_angles == (5.0, 10.0, 2.5)
    with pytest.raises(GenerationError, match="scale of lips"):
        request_from_json('{"region_scale": {"lips": 9}}')
