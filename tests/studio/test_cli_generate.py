"""``talking-head-studio generate`` end to end on a 1-s WAV: procedural and a tiny model folder,
embedding the audio, range regeneration and one-line errors (exit 2)."""

from __future__ import annotations

import numpy as np
import pytest
from generation_helpers import wav_bytes  # tests/studio

from models.motion_space import CHANNELS
from studio import cli
from studio.document import load_project, save_project
from studio.project_ops import new_project


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    assert cli.COMMANDS["generate"] == "studio.commands.generate"


@pytest.fixture()
def files(tmp_path):
    wav = tmp_path / "line.wav"
    wav.write_bytes(wav_bytes(1.0))
    project = tmp_path / "empty.ths"
    save_project(new_project(duration_s=0.4), project)
    return tmp_path, wav, project


def test_procedural_embeds_the_audio_and_adds_an_active_take(files, capsys):
    tmp, wav, project = files
    out = tmp / "out.ths"
    rc = cli.main(
        [
            "generate",
            str(project),
            "--audio",
            str(wav),
            "--out",
            str(out),
            "--model",
            "procedural",
            "--seed",
            "4",
            "--variations",
            "2",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "generating" in captured.err
    p = load_project(out)
    assert len(p.audio_clips) == 1 and p.audio_clips[0].asset in p.assets
    assert p.duration == 25  # grown to the audio
    names = [t.name for t in p.takes]
    assert names[1:] == ["Generated (seed 4) 1/2", "Generated (seed 4) 2/2"]
    assert p.active_take_id == p.takes[1].id
    assert np.isfinite(p.evaluate(np.arange(25))).all()

    # Generating again with the same WAV uses the embedded clip instead of adding another.
    out2 = tmp / "out2.ths"
    assert (
        cli.main(
            [
                "generate",
                str(out),
                "--audio",
                str(wav),
                "--out",
                str(out2),
                "--model",
                "procedural",
                "--range",
                "5:15",
            ]
        )
        == 0
    )
    p2 = load_project(out2)
    assert len(p2.audio_clips) == 1 and len(p2.takes) == 4
    keep = np.r_[0:5, 15:25]
    before = p.takes[1].evaluate(keep)
    np.testing.assert_array_equal(p2.active_take.evaluate(keep), before)


def test_tiny_model_folder(files, tiny_dir):
    tmp, wav, project = files
    out = tmp / "tiny.ths"
    rc = cli.main(
        [
            "generate",
            str(project),
            "--audio",
            str(wav),
            "--out",
            str(out),
            "--model",
            str(tiny_dir),
            "--steps",
            "2",
            "--regions",
            "lips,pose",
            "--emotion",
            "happy",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    p = load_project(out)
    take = p.active_take
    assert take.name == "Generated (seed 0)" and take.metadata["generation"]["model"] == "tiny"
    assert take.metadata["generation"]["ic_init"] is False
    assert take.metadata["generation"]["pose_smoothing"] == 2.5  # the default
    assert "exp_19_y" in take.curves and "yaw" in take.curves
    assert "exp_1_y" not in take.curves  # brows were not generated


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "/no/such/model"], "does not exist"),
        (["--range", "9"], "--range must be A:B"),
        (["--regions", "nose"], "unknown or no regions"),
        (["--emotion", "bored"], "unknown emotion"),
        (["--pose-smoothing", "-1"], "pose smoothing must be"),
        (["--max-angle", "ten"], "--max-angle must be degrees"),
        (["--max-angle", "-3"], "--max-angle must be degrees"),
        (["--max-angle", "1,2"], "--max-angle must be degrees"),
        (["--region-scale", "nose=0.5"], "--region-scale must be REGION=S"),
        (["--region-scale", "lips"], "--region-scale must be REGION=S"),
        (["--region-scale", "lips=3"], "--region-scale lips: the scale must be in 0..2"),
        (["--region-scale", "brows=x"], "--region-scale brows: the scale must be in 0..2"),
    ],
)
def test_errors_are_one_line_exit_2(files, capsys, extra, message):
    tmp, wav, project = files
    out = tmp / "x.ths"
    rc = cli.main(["generate", str(project), "--audio", str(wav), "--out", str(out), *extra])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("talking-head-studio generate: error:") and message in err[-1]
    assert not out.exists()


def test_missing_audio_and_existing_out(files, capsys):
    tmp, _wav, project = files
    assert (
        cli.main(
            ["generate", str(project), "--audio", str(tmp / "no.wav"), "--out", str(tmp / "y.ths")]
        )
        == 2
    )
    assert "no such audio file" in capsys.readouterr().err
    assert cli.main(["generate", str(project), "--out", str(project)]) == 2
    assert "exists" in capsys.readouterr().err


def test_ic_init_flag(files, tiny_dir):
    tmp, wav, project = files
    out = tmp / "ic.ths"
    args = ["generate", str(project), "--audio", str(wav), "--out", str(out)]
    rc = cli.main([*args, "--model", str(tiny_dir), "--device", "cpu", "--ic-init"])
    assert rc == 0
    assert load_project(out).active_take.metadata["generation"]["ic_init"] is True


def test_pose_smoothing_flag(files, tiny_dir):
    tmp, wav, project = files
    out = tmp / "ps.ths"
    args = ["generate", str(project), "--audio", str(wav), "--out", str(out)]
    rc = cli.main([*args, "--model", str(tiny_dir), "--device", "cpu", "--steps", "2",
                   "--pose-smoothing", "0"])  # fmt: skip
    assert rc == 0
    assert load_project(out).active_take.metadata["generation"]["pose_smoothing"] == 0.0


def test_limit_flags(files, tiny_dir):
    tmp, wav, project = files
    out = tmp / "lim.ths"
    args = ["generate", str(project), "--audio", str(wav), "--out", str(out)]
    rc = cli.main([*args, "--model", str(tiny_dir), "--device", "cpu", "--steps", "2",
                   "--max-angle", "2", "--region-scale", "lips=0.5",
                   "--region-scale", "brows=1.5"])  # fmt: skip
    assert rc == 0
    take = load_project(out).active_take
    limits = take.metadata["generation"]["limits"]
    assert limits == {"max_angles": [2.0, 2.0, 2.0], "scales": {"lips": 0.5, "brows": 1.5}}
    v = take.evaluate(np.arange(25))
    for ch in ("pitch", "yaw", "roll"):
        assert np.abs(v[:, CHANNELS.index(ch)]).max() <= 2.0


def test_clipped_audio_prints_a_note(files, capsys):
    import io

    import soundfile as sf

    tmp, _wav, project = files
    t = np.arange(16000) / 16000
    loud = np.clip(3.0 * np.sin(2 * np.pi * 150 * t), -1.0, 1.0)  # most samples at full scale
    buf = io.BytesIO()
    sf.write(buf, loud, 16000, format="WAV", subtype="PCM_16")
    wav = tmp / "loud.wav"
    wav.write_bytes(buf.getvalue())
    out = tmp / "loud.ths"
    rc = cli.main(["generate", str(project), "--audio", str(wav), "--out", str(out),
                   "--model", "procedural"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "note: The audio is clipped (" in err and "lips may look exaggerated" in err
