"""The command line: new, info and their errors (run in-process through studio.cli.main)."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from studio.cli import main
from studio.document import load_project


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "speech.wav"
    t = np.arange(int(1.5 * 16000)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


def test_new_with_audio_then_info(tmp_path, wav, capsys):
    out = tmp_path / "p.ths"
    assert main(["new", str(out), "--fps", "30000/1001", "--audio", str(wav)]) == 0
    project = load_project(out)
    assert (project.frame_rate.numerator, project.frame_rate.denominator) == (30000, 1001)
    assert project.duration == int(np.ceil(1.5 * 30000 / 1001))
    assert len(project.audio_clips) == 1 and project.audio_clips[0].asset in project.assets
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "30000/1001 fps" in text and "speech at frame 0 (embedded; 1.50 s, 16000 Hz" in text
    assert "head pose" in text and "emotion" in text


def test_new_defaults_and_duration(tmp_path):
    out = tmp_path / "empty.ths"
    assert main(["new", str(out), "--duration", "2"]) == 0
    project = load_project(out)
    assert project.duration == 50 and project.work_range == (0, 50)
    assert len(project.takes) == 1 and not project.active_take.curves


@pytest.mark.parametrize(
    "argv, message",
    [
        (["new", "{tmp}/x.txt"], "end in .ths"),
        (["new", "{tmp}/x.ths", "--fps", "-3"], "frame rate"),
        (["new", "{tmp}/x.ths", "--duration", "0"], "duration"),
        (["new", "{tmp}/x.ths", "--audio", "{tmp}/missing.wav"], "missing.wav"),
        (["new", "{tmp}/x.ths", "--audio", "{tmp}/garbage.wav"], "not a readable audio file"),
        (["info", "{tmp}/missing.ths"], "missing.ths"),
        (["info", "{tmp}/garbage.wav"], "garbage.wav"),
    ],
)
def test_errors_are_one_line_with_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and message in err
    assert not (tmp_path / "x.ths").exists()


def test_new_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "p.ths"
    assert main(["new", str(out)]) == 0
    before = out.read_bytes()
    assert main(["new", str(out), "--duration", "3"]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["new", str(out), "--duration", "3", "--force"]) == 0
    assert load_project(out).duration == 75


def test_python_dash_m_studio_is_the_same_command(tmp_path):
    out = tmp_path / "m.ths"
    result = subprocess.run(
        [sys.executable, "-m", "studio", "new", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "studio", "info", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0 and "250 frames" in result.stdout
