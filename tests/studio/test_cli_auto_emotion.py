"""Auto-emotion on a project: studio.project_ops.auto_emotion_keys (one undoable edit) and
``talking-head-studio auto-emotion`` on a procedural speaking take, neutral with a happy range."""

from __future__ import annotations

import numpy as np
import pytest

from models.emotion import apply_emotion_template
from models.motion_space import CHANNEL_INDEX, EMOTIONS
from models.procedural import procedural_motion
from studio import cli
from studio.document import load_project, save_project
from studio.project_ops import auto_emotion_keys, new_project, take_from_dense

F = 200
HAPPY = slice(80, 140)
_EMO0 = CHANNEL_INDEX["emotion_angry"]


def _project():
    """A project with one take: procedural speech over 8 s, happy on frames 80..139."""
    sr = 16000
    rng = np.random.default_rng(1)
    t = np.arange(8 * sr) / sr
    loud = np.repeat(rng.uniform(0.2, 1.0, 33), sr // 4)[: t.size]
    audio = 0.3 * loud * np.sign(np.sin(2 * np.pi * 150 * t)) * (np.sin(2 * np.pi * 4 * t) > 0)
    dense = procedural_motion(audio, sr, 25.0, F, seed=1)
    w = np.zeros((F, 8))
    w[:, EMOTIONS.index("neutral")] = 1.0
    w[HAPPY] = 0.0
    w[HAPPY, EMOTIONS.index("happy")] = 1.0
    dense = apply_emotion_template(dense, w)
    dense[:, _EMO0 : _EMO0 + 8] = 0.0  # the emotion curve is what auto-emotion must find
    project = new_project(duration_s=F / 25.0)
    take = take_from_dense(dense, "Speech", "procedural")
    project.takes.append(take)
    project.active_take_id = take.id
    return project, take


def _share(project, take_id, frames) -> np.ndarray:
    v = project.take(take_id).evaluate(np.asarray(frames))[:, _EMO0 : _EMO0 + 8]
    return v.mean(axis=0)


def test_keys_read_neutral_speech_and_the_happy_range_as_one_undoable_edit():
    project, take = _project()
    before = project.take(take.id)
    result = auto_emotion_keys(project)
    assert result.take_id == take.id and result.frame_range == (0, F)
    assert result.weights.shape == (len(result.frames), 8) and 2 <= len(result.frames) < F // 4
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, atol=1e-9)
    result.edit.apply(project)
    happy = _share(project, take.id, range(90, 130))
    calm = _share(project, take.id, [*range(0, 60), *range(165, F)])
    assert happy.argmax() == EMOTIONS.index("happy") and happy.max() > 0.6
    assert calm.argmax() == EMOTIONS.index("neutral") and calm.max() > 0.6
    result.edit.revert(project)
    assert project.take(take.id) is before


def test_a_range_keeps_the_keys_outside_it():
    project, take = _project()
    first = auto_emotion_keys(project)
    first.edit.apply(project)
    outside = project.take(take.id).curve("emotion_neutral").frames
    outside = outside[(outside < 60) | (outside >= 150)]
    second = auto_emotion_keys(project, take.id, (60, 150))
    assert second.frames.min() == 60 and second.frames.max() == 149
    second.edit.apply(project)
    kept = project.take(take.id).curve("emotion_neutral").frames
    assert set(outside) <= set(kept)


def test_errors():
    project, _ = _project()
    with pytest.raises(ValueError, match="not inside"):
        auto_emotion_keys(project, frame_range=(0, F + 1))
    with pytest.raises(ValueError, match="shorter than 2"):
        auto_emotion_keys(project, frame_range=(5, 6))
    with pytest.raises(ValueError, match="no expression keys"):
        auto_emotion_keys(project, project.takes[0].id)


def test_cli(tmp_path, capsys):
    project, take = _project()
    src = tmp_path / "speech.ths"
    save_project(project, src)
    out = tmp_path / "keyed.ths"
    rc = cli.main(["auto-emotion", str(src), "--out", str(out), "--take", "Speech"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "emotion keys on take 'Speech'" in text and "neutral" in text
    p = load_project(out)
    happy = _share(p, take.id, range(90, 130))
    assert happy.argmax() == EMOTIONS.index("happy")

    def fails(*extra: str, project=src) -> str:
        assert cli.main(["auto-emotion", str(project), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        return err

    assert "no take named 'Nope'" in fails("--out", str(tmp_path / "x.ths"), "--take", "Nope")
    assert "exists; pass --force" in fails("--out", str(out))
    assert "not inside" in fails("--out", str(tmp_path / "y.ths"), "--range", "0:999")
    assert "--tolerance" in fails("--out", str(tmp_path / "z.ths"), "--tolerance", "0")
    empty = tmp_path / "empty.ths"
    save_project(new_project(duration_s=1.0), empty)
    assert "no expression keys" in fails("--out", str(tmp_path / "w.ths"), project=empty)
