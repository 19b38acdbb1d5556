"""``talking-head-studio train motion|intensity`` end to end on tiny runs (a few steps): from
generated espeak-ng data and from a ``.ths`` project; bad numeric flags fail in one line before
anything is written; a failed run leaves neither a half-written model nor a stray folder."""

from __future__ import annotations

import json

import pytest
from generation_helpers import wav_bytes  # tests/studio

from models.speech_data import espeak_available
from studio import cli
from studio.document import save_project
from studio.project_ops import new_project


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    assert cli.COMMANDS["train"] == "studio.commands.train"


def _train(kind: str, data, out, *extra: str) -> int:
    return cli.main(
        ["train", kind, "--data", str(data), "--out", str(out), "--steps", "2", "--batch", "2",
         "--threads", "1", *extra]
    )  # fmt: skip


def _siblings(path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def keyed_project(tmp_path_factory):
    """A project with a procedural take over 2.4 s of embedded speech-like audio."""
    tmp = tmp_path_factory.mktemp("train_project")
    wav = tmp / "line.wav"
    wav.write_bytes(wav_bytes(2.4))
    empty = tmp / "empty.ths"
    save_project(new_project(duration_s=0.4), empty)
    out = tmp / "keyed.ths"
    args = ["generate", str(empty), "--audio", str(wav), "--out", str(out), "--model",
            "procedural"]  # fmt: skip
    assert cli.main(args) == 0
    return out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch", "0"], "--batch must be a positive integer, got 0"),
        (["--steps", "-5"], "--steps must be a positive integer, got -5"),
        (["--lr", "0"], "--lr must be a finite number > 0"),
        (["--lr", "nan"], "--lr must be a finite number > 0"),
        (["--lr", "inf"], "--lr must be a finite number > 0"),
        (["--threads", "0"], "--threads must be a positive integer"),
        (["--log-every", "0"], "--log-every must be a positive integer"),
        (["--generate-data", "-1"], "--generate-data must be 0 or more"),
    ],
)
def test_bad_numbers_fail_in_one_line_before_writing(tmp_path, capsys, flags, message):
    out = tmp_path / "model"
    rc = cli.main(["train", "motion", "--data", str(tmp_path / "data"), "--out", str(out), *flags])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "data").exists()
    assert _siblings(out) == []


def test_refuses_to_replace_a_folder_that_is_not_a_model(tmp_path, capsys):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli.main(["train", "motion", "--data", str(tmp_path), "--out", str(out)]) == 2
    assert "holds no model" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_a_failed_run_leaves_nothing_behind(tmp_path, capsys):
    out = tmp_path / "model"
    # no manifest.json and no projects: fails after the staging folder was made
    assert _train("motion", tmp_path / "nothing_here", out) == 2
    assert "not a training data folder" in capsys.readouterr().err
    assert not out.exists() and _siblings(out) == []


def test_ctrl_c_removes_the_partial_model_and_keeps_the_old_one(tmp_path, monkeypatch, capsys):
    import models.training as training

    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("{}")  # a previous model

    def interrupted(*args, **kwargs):
        (args[1] / "diffusion_pytorch_model.safetensors").write_bytes(b"half")
        yield training.TrainProgress("data", 0, 1)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "iter_train_motion", interrupted)
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text("{}")
    assert _train("motion", data, out) == 130
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert _siblings(out) == []


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng library not available")
@pytest.mark.parametrize("kind", ["motion", "intensity"])
def test_tiny_run_on_generated_data(tmp_path, capsys, kind):
    out = tmp_path / "model"
    assert _train(kind, tmp_path / "data", out, "--generate-data", "2", "--log-every", "1") == 0
    text = capsys.readouterr().out
    assert "generated 2/2 clips" in text and f"model written to {out}" in text
    assert (out / "config.json").is_file() and (
        out / "diffusion_pytorch_model.safetensors"
    ).is_file()
    log = json.loads((out / "training_log.json").read_text())
    assert log["finished"] and log["kind"] == kind
    if kind == "intensity":
        assert (out / "teacher" / "config.json").is_file()
    assert _siblings(out) == []


def test_tiny_motion_run_on_a_project_then_resume(tmp_path, capsys, keyed_project):
    out = tmp_path / "model"
    assert _train("motion", keyed_project, out) == 0
    assert "1 clip(s) from 1 project(s)" in capsys.readouterr().out
    assert (out / "project_data" / "manifest.json").is_file()
    assert json.loads((out / "training_log.json").read_text())["step"] == 2
    # A finished run continues with more steps, in place of the old folder.
    assert cli.main(["train", "motion", "--data", str(keyed_project), "--out", str(out),
                     "--steps", "3", "--batch", "2", "--threads", "1"]) == 0  # fmt: skip
    assert json.loads((out / "training_log.json").read_text())["step"] == 3
    assert _siblings(out) == []


def test_tiny_intensity_run_on_a_project(tmp_path, keyed_project):
    out = tmp_path / "model"
    assert _train("intensity", keyed_project, out) == 0
    log = json.loads((out / "training_log.json").read_text())
    assert log["finished"] and log["step"] == 4  # 2 teacher + 2 student steps
