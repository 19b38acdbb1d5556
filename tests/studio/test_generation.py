"""studio.generation: audio -> take(s) with a tiny random MotionDiT saved to disk and with the
procedural model; range regeneration keeps every other frame bit-exact; cancel; bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from generation_helpers import wav_bytes

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS, JAW_OPEN_CHANNEL
from studio.document import AudioClip, Curve, HandleMode, Interpolation, Project, Take
from studio.generation import (
    GenerateRequest,
    GenerationCancelled,
    GenerationError,
    ModelLoadError,
    generate,
    generation_edit,
    iter_generate,
    region_channels,
    splice_curve,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def make_project(seconds: float = 1.0, frames: int | None = None, **wav) -> Project:
    """A project with one clip at frame 0 and an active take with linear and bezier keys."""
    n = frames or int(np.ceil(seconds * 25))
    p = Project.new(fps=25, duration_frames=n)
    p.assets["audio/speech.wav"] = wav_bytes(seconds, **wav)
    p.audio_clips.append(AudioClip.new("speech", "audio/speech.wav"))
    f = np.arange(0, n, 3)
    take = Take.new(
        "Keyed",
        {
            "yaw": Curve(f, np.sin(f / 4.0) * 5, Interpolation.LINEAR, channel="yaw"),
            JAW_OPEN_CHANNEL: Curve(
                [0, n // 2, n - 1], [0.0, 0.05, 0.01], channel=JAW_OPEN_CHANNEL
            ),
            "eye_open_r": Curve(
                [0, 7],
                [1.0, 0.4],
                Interpolation.BEZIER,
                HandleMode.AUTO_CLAMPED,
                channel="eye_open_r",
            ),
            "emotion_happy": Curve([5], [0.7], channel="emotion_happy"),
        },
    )
    p.takes = [take]
    p.active_take_id = take.id
    p.validate()
    return p


def all_frames(project: Project, take: Take) -> np.ndarray:
    return take.evaluate(np.arange(-5, project.duration + 20))


# --- whole clip ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["procedural", "tiny"])
def test_take_has_the_clip_length(model, tiny_dir):
    p = make_project(1.0)
    spec = tiny_dir if model == "tiny" else "procedural"
    events = list(iter_generate(p, GenerateRequest(model=spec, steps=2, seed=3)))
    result = events[-1].result
    assert result is not None and all(e.result is None for e in events[:-1])
    assert result.frame_range == (0, 25)
    (take,) = result.takes
    assert take.name == "Generated (seed 3)" and take.source == "generated"
    assert take.metadata["generation"]["seed"] == 3
    kr = take.key_range()
    assert kr[0] <= 0 and kr[1] >= 24
    values = take.evaluate(np.arange(25))
    assert values.shape == (25, len(CHANNELS)) and np.isfinite(values).all()
    # Eye state and emotion are the project's curves, untouched.
    for ch in ("eye_open_r", "emotion_happy"):
        assert take.curves[ch] == p.active_take.curves[ch]
    if model == "tiny":
        # Progress after every denoising step, with previews of [F, 90] channel values.
        steps = [e for e in events if e.total > 1]
        assert [e.step for e in steps if e.preview is None] == list(range(1, steps[0].total + 1))
        assert any(e.preview is not None and e.preview.shape[1] == len(CHANNELS) for e in events)
    else:
        jaw = values[:, CHANNEL_INDEX[JAW_OPEN_CHANNEL]]
        assert jaw.max() > 0.02  # the bursts open the mouth


def test_same_seed_same_take_and_variations_differ(tiny_dir):
    p = make_project(0.6)
    req = GenerateRequest(model=tiny_dir, steps=2, seed=5, variations=2)
    a = generate(p, req)
    b = generate(p, req)
    assert len(a.takes) == 2 and a.takes[0].name.endswith("1/2")
    va, vb = (r.takes[0].evaluate(np.arange(15)) for r in (a, b))
    np.testing.assert_array_equal(va, vb)
    assert not np.allclose(va, a.takes[1].evaluate(np.arange(15)))


def test_fixed_emotion_is_written_and_conditions_the_model(tiny_dir):
    p = make_project(0.6)
    neutral = generate(p, GenerateRequest(model=tiny_dir, steps=2, emotion="neutral"))
    angry = generate(p, GenerateRequest(model=tiny_dir, steps=2, emotion="angry"))
    v = angry.takes[0].evaluate(np.arange(15))
    assert np.all(v[:, CHANNEL_INDEX["emotion_angry"]] == 1.0)
    assert np.all(v[:, CHANNEL_INDEX["emotion_happy"]] == 0.0)
    exp = slice(CHANNEL_INDEX["exp_0_x"], CHANNEL_INDEX["exp_20_z"] + 1)
    assert not np.allclose(neutral.takes[0].evaluate(np.arange(15))[:, exp], v[:, exp])


# --- range regeneration --------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["procedural", "tiny"])
def test_range_regeneration_keeps_other_frames_bit_exact(model, tiny_dir):
    p = make_project(2.0)
    before = all_frames(p, p.active_take)
    spec = tiny_dir if model == "tiny" else "procedural"
    result = generate(p, GenerateRequest(model=spec, steps=2, frame_range=(17, 31)))
    assert result.frame_range == (17, 31)
    after = all_frames(p, result.takes[0])
    outside = np.r_[0 : 17 + 5, 31 + 5 : after.shape[0]]  # index 5 is frame 0
    np.testing.assert_array_equal(after[outside], before[outside])
    assert not np.array_equal(after[22:36], before[22:36])  # the range did change


def test_region_regeneration_touches_only_those_channels(tiny_dir):
    p = make_project(1.0)
    before = all_frames(p, p.active_take)
    result = generate(p, GenerateRequest(model=tiny_dir, steps=2, regions=["lips"]))
    after = all_frames(p, result.takes[0])
    lips = [CHANNEL_INDEX[c] for c in region_channels(["lips"])]
    others = [i for i in range(len(CHANNELS)) if i not in lips]
    np.testing.assert_array_equal(after[:, others], before[:, others])
    assert not np.array_equal(after[:, lips], before[:, lips])


def test_model_folder_with_motion_stats(tiny_dir, tmp_path):
    """A folder written by training (models.training): motion normalised by its stats, the
    canonical keypoints it was trained with."""
    import shutil

    from models.training import MotionStats

    folder = tmp_path / "trained"
    shutil.copytree(tiny_dir, folder)
    rng = np.random.default_rng(0)
    MotionStats(rng.normal(size=265), rng.uniform(0.5, 2, 265), rng.normal(size=63), {}).save(
        folder
    )
    p = make_project(1.0)
    before = all_frames(p, p.active_take)
    plain = generate(p, GenerateRequest(model=tiny_dir, steps=2, frame_range=(5, 15)))
    result = generate(p, GenerateRequest(model=folder, steps=2, frame_range=(5, 15)))
    after = all_frames(p, result.takes[0])
    outside = np.r_[0:10, 20 : after.shape[0]]
    np.testing.assert_array_equal(after[outside], before[outside])
    assert not np.allclose(after[10:20], all_frames(p, plain.takes[0])[10:20])


def test_splice_curve_keeps_bezier_segments_exact():
    old = Curve([0, 10, 25, 40], [0.0, 1.0, -0.5, 0.2], Interpolation.BEZIER, channel="yaw")
    new = Curve([14, 20], [3.0, 4.0], Interpolation.LINEAR, channel="yaw")
    out = splice_curve(old, new, "yaw", 14, 21)
    f = np.arange(-3, 50)
    keep = (f < 14) | (f >= 21)
    np.testing.assert_array_equal(out.evaluate(f)[keep], old.evaluate(f)[keep])
    np.testing.assert_array_equal(out.evaluate([14, 20]), [3.0, 4.0])
    # A channel without keys: default outside, new values inside.
    out = splice_curve(None, new, "scale", 14, 21)
    assert np.all(out.evaluate(np.r_[0:14, 21:30]) == CHANNEL_DEFAULTS[CHANNEL_INDEX["scale"]])


# --- cancel and progress -------------------------------------------------------------------------
def test_cancel_stops_within_one_step(tiny_dir):
    p = make_project(2.0)
    seen = []

    def cancel() -> bool:
        return len([e for e in seen if e.total > 1]) >= 3

    with pytest.raises(GenerationCancelled):
        generate(p, GenerateRequest(model=tiny_dir, steps=4), callback=seen.append, cancel=cancel)
    assert max(e.step for e in seen) == 3  # no step ran after the one where cancel said yes


def test_closing_the_generator_stops_it(tiny_dir):
    p = make_project(1.0)
    gen = iter_generate(p, GenerateRequest(model=tiny_dir, steps=4))
    for ev in gen:
        if ev.step == 2:
            break
    gen.close()  # the worker does this at a cancelled yield: no exception, no result


# --- bad and unusual input -----------------------------------------------------------------------
def test_silent_audio_gives_idle_motion_and_a_notice(tiny_dir):
    p = make_project(6.0, silent=True)
    p.takes = [Take.new("Empty")]
    p.active_take_id = p.takes[0].id
    for spec in ("procedural", tiny_dir):
        result = generate(p, GenerateRequest(model=spec, steps=2))
        assert any("silent" in n for n in result.notices)
        v = result.takes[0].evaluate(np.arange(150))
        assert np.all(v[:, CHANNEL_INDEX[JAW_OPEN_CHANNEL]] == 0.0)  # mouth closed
        assert np.ptp(v[:, CHANNEL_INDEX["yaw"]]) > 0.1  # the head still moves
        blink = v[:, CHANNEL_INDEX["exp_11_y"]]
        assert blink.max() > 0.0  # and blinks


def test_stereo_48k_audio_works(tiny_dir):
    p = make_project(1.0, rate=48000, channels=2)
    result = generate(p, GenerateRequest(model=tiny_dir, steps=2))
    assert result.frame_range == (0, 25)
    mono = make_project(1.0)
    proc = generate(p, GenerateRequest(model="procedural"))
    proc_mono = generate(mono, GenerateRequest(model="procedural"))
    jaw = CHANNEL_INDEX[JAW_OPEN_CHANNEL]
    a = proc.takes[0].evaluate(np.arange(25))[:, jaw]
    b = proc_mono.takes[0].evaluate(np.arange(25))[:, jaw]
    assert np.abs(a - b).max() < 0.01  # the same speech, whatever the format


def test_very_short_audio_is_padded(tiny_dir):
    p = make_project(0.12)  # 3 frames, far below a 16-frame window
    result = generate(p, GenerateRequest(model=tiny_dir, steps=2))
    assert result.frame_range == (0, 3)
    assert np.isfinite(result.takes[0].evaluate(np.arange(3))).all()


def test_audio_file_not_in_the_project_becomes_a_clip(tmp_path):
    p = Project.new(fps=25, duration_frames=10)
    wav = tmp_path / "line.wav"
    wav.write_bytes(wav_bytes(1.0))
    result = generate(p, GenerateRequest(audio=wav, model="procedural"))
    assert result.audio_clip is not None and result.duration == 25
    edit = generation_edit(p, result)
    edit.apply(p)
    assert p.duration == 25 and p.audio_clips[0].asset in p.assets
    assert p.active_take_id == result.takes[0].id and len(p.takes) == 2
    edit.revert(p)
    assert p.duration == 10 and not p.audio_clips and len(p.takes) == 1


def test_missing_model_folder_is_a_clear_error(tmp_path):
    p = make_project(0.4)
    with pytest.raises(ModelLoadError, match="does not exist"):
        generate(p, GenerateRequest(model=tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        generate(p, GenerateRequest(model=tmp_path / "empty"))


def test_mismatched_checkpoint_lists_the_keys(tiny_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["num_layers"] = 3  # the weights hold 2 decoder layers
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=r"missing keys: decoder_layers\.2\."):
        generate(make_project(0.4), GenerateRequest(model=bad))


def test_nan_weights_are_reported(tiny_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    bad = tmp_path / "nan"
    shutil.copytree(tiny_dir, bad)
    w = bad / "diffusion_pytorch_model.safetensors"
    state = load_file(str(w))
    state["final_layer.bias"][:] = float("nan")
    save_file(state, str(w))
    with pytest.raises(GenerationError, match="NaN"):
        generate(make_project(0.4), GenerateRequest(model=bad, steps=1))


def test_cuda_out_of_memory_retries_on_the_cpu(tiny_dir, monkeypatch):
    import models.motion_sampling as ms
    import studio.generation as g

    real = ms.iter_generate_motion
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            yield from list(real(*args, **kwargs))[:2]  # a little progress, then no memory
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield from real(*args, **kwargs)

    monkeypatch.setattr(ms, "iter_generate_motion", flaky)
    monkeypatch.setattr(g, "resolve_device", lambda device: ("cuda", []))
    moved = []
    monkeypatch.setattr(g.LoadedModel, "to", lambda self, d: moved.append(d) or self)
    g._MODEL_CACHE.clear()
    events = []
    result = generate(make_project(0.6), GenerateRequest(model=tiny_dir, steps=2), events.append)
    g._MODEL_CACHE.clear()
    assert len(calls) == 2 and moved[-1] == "cpu" and result.device == "cpu"
    assert any("out of memory" in n for n in result.notices)
    assert any("out of memory" in n for e in events for n in e.notices)  # shown while running


def test_default_model_falls_back_to_procedural_with_a_notice(monkeypatch):
    import studio.generation as g

    monkeypatch.setattr(g, "_load_default", lambda device: (None, "not installed"))
    g._MODEL_CACHE.clear()
    result = generate(make_project(0.4), GenerateRequest(model="default"))
    assert result.model == "procedural"
    assert any("procedural" in n and "not installed" in n for n in result.notices)


def test_bad_requests_raise_one_line_errors():
    p = make_project(0.4)
    for req, match in (
        (GenerateRequest(regions=["nose"], model="procedural"), "regions"),
        (GenerateRequest(emotion="bored", model="procedural"), "emotion"),
        (GenerateRequest(frame_range=(5, 5), model="procedural"), "range"),
        (GenerateRequest(audio="missing.wav", model="procedural"), "no such audio"),
    ):
        with pytest.raises(GenerationError, match=match):
            generate(p, req)
    empty = Project.new(fps=25, duration_frames=10)
    with pytest.raises(GenerationError, match="no audio"):
        generate(empty, GenerateRequest(model="procedural"))


# --- IC-Init -------------------------------------------------------------------------------------
def test_ic_init_reaches_the_sampler_and_the_metadata(tiny_dir, monkeypatch):
    import models.motion_sampling as ms

    seen = []
    real = ms.iter_generate_motion

    def spy(*args, **kw):
        seen.append(kw.get("ic_init", False))
        return real(*args, **kw)

    monkeypatch.setattr(ms, "iter_generate_motion", spy)
    p = make_project(1.0)
    plain = generate(p, GenerateRequest(model=tiny_dir, steps=2, seed=3))
    events = list(iter_generate(p, GenerateRequest(model=tiny_dir, seed=3, ic_init=True)))
    ic = events[-1].result
    assert seen == [False, True]
    assert ic.takes[0].metadata["generation"]["ic_init"] is True
    assert plain.takes[0].metadata["generation"]["ic_init"] is False
    # 30 search calls and 30 sampling steps per window: progress counts both.
    assert max(e.total for e in events[:-1]) % 60 == 0
    frames = np.arange(25)
    assert np.isfinite(ic.takes[0].evaluate(frames)).all()
    assert not np.allclose(ic.takes[0].evaluate(frames), plain.takes[0].evaluate(frames))
    with pytest.raises(GenerationError, match="IC-Init needs the ddim"):
        generate(p, GenerateRequest(model=tiny_dir, sampler="lcm", ic_init=True))


# --- pose smoothing ------------------------------------------------------------------------------
def test_pose_smoothing_is_default_and_only_touches_the_pose(tiny_dir, monkeypatch):
    import studio.generation as gen
    from models.motion_space import POSE_CHANNELS

    p = make_project(2.0)
    frames = np.arange(50)
    smoothed = generate(p, GenerateRequest(model=tiny_dir, steps=2, seed=4))
    assert GenerateRequest().pose_smoothing == 2.5
    assert smoothed.takes[0].metadata["generation"]["pose_smoothing"] == 2.5

    # pose_smoothing=0: the old output, the smoothing is never called.
    def boom(*args, **kw):
        raise AssertionError("smoothing called")

    monkeypatch.setattr(gen, "smooth_pose", boom)
    raw = generate(p, GenerateRequest(model=tiny_dir, steps=2, seed=4, pose_smoothing=0))
    assert raw.takes[0].metadata["generation"]["pose_smoothing"] == 0.0
    a, b = raw.takes[0].evaluate(frames), smoothed.takes[0].evaluate(frames)
    pose = [CHANNEL_INDEX[c] for c in POSE_CHANNELS]
    rest = [i for i in range(len(CHANNELS)) if i not in pose]
    np.testing.assert_array_equal(a[:, rest], b[:, rest])
    ang = pose[:3]
    jit = [float(np.abs(np.diff(v[:, ang], n=2, axis=0)).mean()) for v in (a, b)]
    assert jit[1] < 0.5 * jit[0]
    np.testing.assert_array_equal(a[[0, -1]][:, ang], b[[0, -1]][:, ang])  # ends kept
    # The procedural model is never smoothed.
    proc = generate(p, GenerateRequest(model="procedural"))
    assert proc.takes[0].metadata["generation"]["pose_smoothing"] == 0.0


def test_pose_smoothing_keeps_frames_outside_a_range_bit_exact(tiny_dir):
    p = make_project(2.0)
    before = all_frames(p, p.active_take)
    req = GenerateRequest(model=tiny_dir, steps=2, frame_range=(17, 31), pose_smoothing=8.0)
    after = all_frames(p, generate(p, req).takes[0])
    outside = np.r_[0 : 17 + 5, 31 + 5 : after.shape[0]]  # index 5 is frame 0
    np.testing.assert_array_equal(after[outside], before[outside])
    plain = generate(
        p, GenerateRequest(model=tiny_dir, steps=2, frame_range=(17, 31), pose_smoothing=0)
    )
    yaw = CHANNEL_INDEX["yaw"]
    assert not np.array_equal(after[22:36, yaw], all_frames(p, plain.takes[0])[22:36, yaw])


def test_bad_pose_smoothing_is_a_one_line_error():
    for bad in (-1.0, float("nan")):
        with pytest.raises(GenerationError, match="pose smoothing"):
            GenerateRequest(pose_smoothing=bad).validated()


# --- clipped audio -------------------------------------------------------------------------------
def _loud_wav(seconds: float, gain: float) -> bytes:
    import io

    import soundfile as sf

    t = np.arange(round(seconds * 16000)) / 16000
    x = np.clip(gain * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 4 * t) > 0), -1, 1)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_clipped_audio_gives_a_notice():
    from studio.generation import clipped_fraction

    p = make_project(1.0)
    p.assets["audio/speech.wav"] = _loud_wav(1.0, 4.0)
    events = list(iter_generate(p, GenerateRequest(model="procedural")))
    note = [n for n in events[-1].result.notices if "clipped" in n]
    assert len(note) == 1
    assert note[0].startswith("The audio is clipped (") and "% of samples at full scale" in note[0]
    assert note[0].endswith("lips may look exaggerated")
    # The notice arrives with the progress (the dialog logs it while the job runs).
    assert any("clipped" in n for e in events[:-1] for n in e.notices)
    # Loud but not clipped, and the 0.1 % threshold.
    p.assets["audio/speech.wav"] = _loud_wav(1.0, 0.95)
    assert not any("clipped" in n for n in generate(p, GenerateRequest(model="procedural")).notices)
    x = np.zeros(10_000)
    x[:9] = 1.0
    assert clipped_fraction(x) < 1e-3
    x[9] = -1.0
    assert clipped_fraction(x) == pytest.approx(1e-3)


# --- magnitude limits ----------------------------------------------------------------------------
def test_limits_bound_the_decoded_motion(tiny_dir):
    from studio.generation import LIMIT_REGION_CHANNELS

    p = make_project(2.0)
    p.takes = [Take.new("Empty")]
    p.active_take_id = p.takes[0].id
    angles = [CHANNEL_INDEX[c] for c in ("pitch", "yaw", "roll")]
    lips = LIMIT_REGION_CHANNELS["lips"]
    for spec in ("procedural", tiny_dir):
        free = generate(p, GenerateRequest(model=spec, steps=2)).takes[0].evaluate(np.arange(50))
        cap = float(np.abs(free[:, angles]).max()) / 3
        assert cap > 0.01
        req = GenerateRequest(model=spec, steps=2, max_angle=cap, region_scale={"lips": 0.5})
        take = generate(p, req.validated()).takes[0]
        v = take.evaluate(np.arange(50))
        assert np.abs(v[:, angles]).max() <= cap + 1e-9
        # Lips: half the deltas from the rest pose (0), within the key reduction's tolerance.
        np.testing.assert_allclose(v[:, lips], 0.5 * free[:, lips], atol=2e-3)
        assert take.metadata["generation"]["limits"]["scales"] == {"lips": 0.5}


def test_no_limit_and_scale_one_are_bit_identical(tiny_dir):
    p = make_project(1.0)
    ones = {"lips": 1.0, "jaw": 1.0, "brows": 1.0, "eyes": 1.0}
    for spec in ("procedural", tiny_dir):
        a = generate(p, GenerateRequest(model=spec, steps=2, seed=1))
        b = generate(p, GenerateRequest(model=spec, steps=2, seed=1, region_scale=ones))
        assert GenerateRequest(region_scale=ones).limits() is None
        assert a.takes[0].curves == b.takes[0].curves
        assert a.takes[0].metadata == b.takes[0].metadata


def test_motion_limits_apply_per_region_and_validate():
    from studio.generation import LIMIT_REGION_CHANNELS, MotionLimits

    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, len(CHANNELS))) * 30
    ref = rng.normal(size=len(CHANNELS))
    out = MotionLimits((5.0, 10.0, 1.0), {"jaw": 0.0, "brows": 2.0}).apply(values, ref)
    bounds = {"pitch": 5.0, "yaw": 10.0, "roll": 1.0}
    for ch, m in bounds.items():
        np.testing.assert_array_equal(
            out[:, CHANNEL_INDEX[ch]], np.clip(values[:, CHANNEL_INDEX[ch]], -m, m)
        )
    jaw, brows = LIMIT_REGION_CHANNELS["jaw"], LIMIT_REGION_CHANNELS["brows"]
    assert CHANNEL_INDEX[JAW_OPEN_CHANNEL] in jaw
    assert CHANNEL_INDEX[JAW_OPEN_CHANNEL] not in LIMIT_REGION_CHANNELS["lips"]
    np.testing.assert_array_equal(out[:, jaw], np.broadcast_to(ref[jaw], (7, len(jaw))))
    np.testing.assert_allclose(out[:, brows], ref[brows] + 2 * (values[:, brows] - ref[brows]))
    others = np.setdiff1d(
        np.arange(len(CHANNELS)), [*jaw, *brows, *(CHANNEL_INDEX[c] for c in bounds)]
    )
    np.testing.assert_array_equal(out[:, others], values[:, others])
    # All regions are disjoint.
    groups = list(LIMIT_REGION_CHANNELS.values())
    assert sum(map(len, groups)) == len(set().union(*map(set, groups)))

    assert GenerateRequest(max_angle=(1, 2, 3)).limits().max_angles == (1.0, 2.0, 3.0)
    for bad, match in (
        (dict(max_angle=-1), "max angle"),
        (dict(max_angle=(1, 2)), "max angle"),
        (dict(max_angle="x"), "max angle"),
        (dict(region_scale={"nose": 1.0}), "unknown region 'nose'"),
        (dict(region_scale={"lips": 2.5}), "scale of lips must be in 0..2"),
        (dict(region_scale={"lips": float("nan")}), "scale of lips"),
    ):
        with pytest.raises(GenerationError, match=match):
            GenerateRequest(**bad).validated()


# --- preview tails -------------------------------------------------------------------------------
def test_project_frames_of_a_tail_match_the_whole():
    from studio.generation import _first_changed_frame, _to_project_frames

    rng = np.random.default_rng(1)
    v = rng.normal(size=(50, 4))
    for fps in (25.0, 30.0, 24.0, 60.0):
        count = int(50 * fps / 25)
        whole = _to_project_frames(v, fps, count)
        for first in (0, 1, 7, count - 1, count):
            np.testing.assert_array_equal(_to_project_frames(v, fps, count, first), whole[first:])
        for m0 in (0, 1, 13, 49):  # changing model frames >= m0 changes no frame before
            w = v.copy()
            w[m0:] += 1.0
            changed = np.flatnonzero(np.any(_to_project_frames(w, fps, count) != whole, axis=1))
            assert changed.size == 0 or changed[0] >= _first_changed_frame(m0, fps)


def test_preview_buffer_assembles_tails():
    from studio.generation import PreviewBuffer

    buf = PreviewBuffer()
    assert buf.values is None
    buf.add(np.ones((3, 2)), 10)
    buf.add(np.full((100, 2), 2.0), 12)  # grows
    buf.add(np.full((2, 2), 3.0), 8)  # before the start: rebased
    v = buf.values
    assert buf.start == 8 and v.shape == (104, 2)
    np.testing.assert_array_equal(v[:2], 3.0)
    np.testing.assert_array_equal(v[2:4], 1.0)
    np.testing.assert_array_equal(v[4:], 2.0)
    buf.clear()
    assert buf.values is None


@pytest.mark.parametrize("fps", [25, 30])
def test_preview_tails_assemble_into_the_motion(tiny_dir, fps):
    from studio.generation import PreviewBuffer

    p = Project.new(fps=fps, duration_frames=int(1.6 * fps))
    p.assets["audio/speech.wav"] = wav_bytes(1.6)
    p.audio_clips.append(AudioClip.new("speech", "audio/speech.wav"))
    req = GenerateRequest(model=tiny_dir, steps=1, frame_range=(10, 30), pose_smoothing=0.0)
    buf = PreviewBuffer()
    events = list(iter_generate(p, req))
    tails = [e for e in events[:-1] if e.preview is not None]
    assert len(tails) > 2
    for e in tails:
        buf.add(e.preview, e.preview_start)
    final = events[-1]
    off = buf.start - final.preview_start
    assert off >= 0 and not np.isnan(buf.values).any()
    np.testing.assert_allclose(
        buf.values, final.preview[off : off + buf.values.shape[0]], rtol=0, atol=1e-9
    )
    assert max(e.preview.shape[0] for e in tails) <= int(np.ceil(16 * fps / 25)) + 2
