"""Hybrid reenactment (models.hybrid): lips from audio, everything else from the tracker.

A drawn-face video whose mouth opens on one rhythm and whose head rolls, and a WAV with voiced
syllables on another rhythm: the recorded lips follow the audio, not the video; pose follows
the video. Through studio.capture and the reenact CLI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from models.face.testface import draw_face
from models.hybrid import (
    LIP_CHANNELS,
    HybridMixer,
    NeuralLipGenerator,
    ProceduralLipGenerator,
    make_lip_generator,
    mix_lips,
)
from models.motion_space import CHANNEL_DEFAULTS, CHANNELS
from models.motion_space import CHANNEL_INDEX as CI

FPS = 25
W, H = 320, 240
N = 60  # frames: 2.4 s
SR = 16_000
JAW = CI["exp_19_y"]


def _video_mouth(i: int) -> float:  # opens twice a second
    return 0.5 + 0.5 * np.sin(2 * np.pi * i / 12.5)


def _video_roll(i: int) -> float:
    return 10.0 * np.sin(2 * np.pi * i / N)


def _syllables(seconds: float, rate: float = 1.25, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """Voiced 'syllables' (a 130 Hz buzz with harmonics) gated at ``rate`` Hz, and the gate
    per 25 fps frame."""
    t = np.arange(int(sr * seconds)) / sr
    gate = (np.sin(2 * np.pi * rate * t - 0.5) > 0.0).astype(np.float64)
    buzz = sum(np.sin(2 * np.pi * 130 * h * t) / h for h in range(1, 25))
    frames = gate[:: sr // FPS][: int(seconds * FPS)]
    return (0.3 * buzz * gate).astype(np.float32), frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face_models) -> Path:
    """Drawn face: mouth on a 2 Hz rhythm, roll on a slow sine (H.264, PyAV)."""
    import av

    path = tmp_path_factory.mktemp("hybrid") / "face.mp4"
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        st.options = {"preset": "ultrafast", "crf": "16"}
        for i in range(N):
            img = draw_face(W, H, mouth_open=_video_mouth(i), roll=_video_roll(i), seed=i).image
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    import soundfile as sf

    path = tmp_path_factory.mktemp("hybrid_wav") / "speech.wav"
    audio, _ = _syllables(N / FPS)
    sf.write(path, audio, SR)
    return path


# ----------------------------------------------------------------------------- the mixer
def test_mix_lips_replaces_only_the_lip_channels():
    v = np.arange(len(CHANNELS), dtype=float)
    lips = -np.ones(len(LIP_CHANNELS))
    out = mix_lips(v, lips)
    cols = [CI[c] for c in LIP_CHANNELS]
    assert len(cols) == 18 and {c.split("_")[1] for c in LIP_CHANNELS} == {
        "6", "12", "14", "17", "19", "20"}  # fmt: skip
    assert (out[cols] == -1).all()
    other = np.setdiff1d(np.arange(len(CHANNELS)), cols)
    np.testing.assert_array_equal(out[other], v[other])
    with pytest.raises(ValueError):
        mix_lips(v[:5], lips)


def test_procedural_lips_follow_the_syllables_and_stream_like_offline():
    audio, gate = _syllables(3.0)
    whole = HybridMixer.from_audio(ProceduralLipGenerator(), audio, SR).lips()
    jaw = whole[:, LIP_CHANNELS.index("exp_19_y")]
    assert len(jaw) == 75
    assert np.corrcoef(jaw, gate[: len(jaw)])[0, 1] > 0.8
    assert jaw.max() > 0.08 and jaw[gate[: len(jaw)] == 0].min() < 0.01
    # Pushed in 30 ms pieces (a microphone), the same frames come out.
    m = HybridMixer(ProceduralLipGenerator(), SR)
    for i in range(0, len(audio), 480):
        m.push_audio(audio[i : i + 480])
    m.finish()
    np.testing.assert_allclose(m.lips(), whole, atol=1e-9)


def test_silence_keeps_the_mouth_closed():
    m = HybridMixer.from_audio(ProceduralLipGenerator(), np.zeros(SR * 2, np.float32), SR)
    assert np.abs(m.lips()).max() == 0.0


def test_lips_at_times_hold_and_end():
    audio, _ = _syllables(1.0)
    m = HybridMixer(ProceduralLipGenerator(), SR, gain=2.0)
    assert (m.lips_at(0.1) == 0).all()  # nothing generated yet: neutral
    m.push_audio(audio[: SR // 2])
    n = m.frames
    assert 0 < n < 25
    lips = m.lips()
    np.testing.assert_allclose(m.lips_at(5.0), 2.0 * lips[-1])  # not generated yet: hold
    np.testing.assert_allclose(m.lips_at(1.5 / FPS), (lips[1] + lips[2]))  # 2x gain, halfway
    m.finish()
    assert (m.lips_at(5.0) == 0).all() and (m.lips_at(-0.1) == 0).all()  # after end / before


def test_background_mixer_with_a_factory():
    audio, _ = _syllables(2.0)
    m = HybridMixer(lambda: (ProceduralLipGenerator(), "note"), SR, background=True)
    try:
        m.push_audio_chunked(audio, 0.25)
        m.finish()
        assert m.wait(10.0)
        assert m.finished and m.frames == 50 and m.notice == "note"
        ref = HybridMixer.from_audio(ProceduralLipGenerator(), audio, SR).lips()
        np.testing.assert_allclose(m.lips(), ref, atol=1e-9)
    finally:
        m.close()


def test_procedural_lips_bridge_a_loading_model():
    import threading

    audio, gate = _syllables(2.0)
    loaded = threading.Event()

    def slow_factory():
        loaded.wait(10.0)  # the "model" loads until the test says so
        return ProceduralLipGenerator()

    m = HybridMixer(slow_factory, SR, background=True)
    try:
        m.push_audio_chunked(audio, 0.25)
        assert m.wait(10.0, model=False)  # the bridge works the queue off while loading
        assert m.generator is None and m.frames == 0
        jaw = np.array([m.lips_at(i / FPS)[LIP_CHANNELS.index("exp_19_y")] for i in range(45)])
        assert np.corrcoef(jaw, gate[:45])[0, 1] > 0.8  # bridged before the model is there
        loaded.set()
        m.finish()
        assert m.wait(10.0) and m.frames == 50
        assert (m.lips_at(5.0) == 0).all()  # after the end: neutral
    finally:
        m.close()


def test_make_lip_generator_falls_back_with_a_reason(tmp_path):
    gen, notice = make_lip_generator(tmp_path / "no_model")
    assert isinstance(gen, ProceduralLipGenerator) and "procedural" in notice
    gen, notice = make_lip_generator("procedural")
    assert isinstance(gen, ProceduralLipGenerator) and notice == ""


@pytest.mark.slow
def test_shipped_model_streams_lips_that_follow_the_audio(torch_one_thread):
    from models.pretrained import load_default_motion_model

    try:
        model = load_default_motion_model()
    except OSError as exc:
        pytest.skip(f"no shipped motion model: {exc}")
    audio, gate = _syllables(3.2)
    gen = NeuralLipGenerator(model, hop=40, steps=5)
    m = HybridMixer(gen, SR)
    for i in range(0, len(audio), 4000):  # streaming: features appear as audio arrives
        m.push_audio(audio[i : i + 4000])
    m.finish()
    jaw = m.lips()[:, LIP_CHANNELS.index("exp_19_y")]
    assert len(jaw) == 80
    assert np.corrcoef(jaw, gate[:80])[0, 1] > 0.6
    assert np.ptp(jaw) > 0.02


# ----------------------------------------------------------------------------- capture + CLI
def _lips_follow_audio_pose_follows_video(values: np.ndarray, gate: np.ndarray) -> None:
    k = min(len(values), len(gate))
    jaw = values[:k, JAW]
    mouth_video = np.array([_video_mouth(i) for i in range(k)])
    assert np.corrcoef(jaw, gate[:k])[0, 1] > 0.7
    assert abs(np.corrcoef(jaw, mouth_video)[0, 1]) < 0.4
    roll = values[:k, CI["roll"]]
    truth = np.array([_video_roll(i) for i in range(k)])
    assert np.corrcoef(roll, truth)[0, 1] > 0.95 and np.abs(roll - truth).max() < 3.0


def test_record_take_hybrid(clip, landmarker):
    from models.face.sources import open_source
    from models.face.tracker import FaceTracker, TrackerSettings
    from studio.capture import record_take
    from studio.document import Project

    audio, gate = _syllables(N / FPS)
    mixer = HybridMixer.from_audio(ProceduralLipGenerator(), audio, SR)
    landmarker.reset()
    tracker = FaceTracker(landmarker, TrackerSettings(smoothing=False))
    with open_source(clip) as src:
        take = record_take(src, tracker, Project.new(fps=FPS), hybrid=mixer)
    assert take.metadata["capture"]["lips"] == "audio (procedural)"
    frames = np.arange(take.metadata["capture"]["length_frames"])
    values = take.evaluate(frames)
    _lips_follow_audio_pose_follows_video(values, gate)
    # Without hybrid the jaw follows the video's mouth instead.
    landmarker.reset()
    tracker = FaceTracker(landmarker, TrackerSettings(smoothing=False))
    with open_source(clip) as src:
        plain = record_take(src, tracker, Project.new(fps=FPS))
    jaw = plain.curves["exp_19_y"].evaluate(frames)
    assert np.corrcoef(jaw, [_video_mouth(i) for i in frames])[0, 1] > 0.8


def test_reenact_cli_hybrid_audio(clip, wav, tmp_path, landmarker):
    from studio.commands import reenact
    from studio.document import Project
    from studio.document.fileformat import load_project, save_project

    proj = tmp_path / "p.ths"
    save_project(Project.new(fps=FPS, duration_frames=10), proj)
    out = tmp_path / "out.ths"
    args = argparse.Namespace(
        source=str(clip), project=proj, out=out, calibrate_frames=0, seconds=None,
        name="Hybrid", pose="relative", smoothing=1.5, beta=0.5, profile=None,
        save_profile=None, force=False, hybrid_audio=wav, lips_model="procedural",
    )  # fmt: skip
    assert reenact.run(args) == 0
    p = load_project(out)
    take = p.active_take
    assert take.name == "Hybrid" and take.metadata["capture"]["lips"] == "audio (procedural)"
    assert len(p.audio_clips) == 1 and p.audio_clips[0].offset == 0
    frames = np.arange(take.metadata["capture"]["length_frames"])
    values = take.evaluate(frames)
    _, gate = _syllables(N / FPS)
    # The CLI smooths (One-Euro): lips still follow the audio, pose the video.
    _lips_follow_audio_pose_follows_video(values, gate)


def test_reenact_parser_has_hybrid_options():
    from studio.commands import reenact

    parser = argparse.ArgumentParser()
    reenact.add_parser(parser.add_subparsers())
    a = parser.parse_args(["reenact", "--source", "v.mp4", "--project", "p", "--out", "o",
                           "--hybrid-audio", "s.wav", "--lips-model", "procedural"])  # fmt: skip
    assert a.hybrid_audio == Path("s.wav") and a.lips_model == "procedural"


@pytest.mark.slow
@pytest.mark.gl
def test_reenact_hybrid_rendered_default_head_and_motion_model(tmp_path, landmarker):
    """The default head rendered turning its head and opening its jaw on one rhythm (an MP4),
    a WAV with syllables on another, the reenact CLI in hybrid mode with the shipped motion
    model: the take's jaw follows the audio, its yaw the video."""
    import av
    import soundfile as sf

    from renderers import Camera
    from renderers.render import render
    from studio.commands import reenact
    from studio.document import Project
    from studio.document.fileformat import load_project, save_project
    from studio.heads import deformed_cloud, lod_head, resolve_head

    head = lod_head(resolve_head(None), 20000)
    centre = head.kp_to_world[:3, 3]
    cam = Camera.look_at(centre + np.array([0, 0, 0.6]), centre, fov_y_deg=30, width=256,
                         height=256)  # fmt: skip
    n = 75
    yaw_truth = 12.0 * np.sin(2 * np.pi * np.arange(n) / n)
    video_jaw = 0.06 + 0.06 * np.sin(2 * np.pi * np.arange(n) / 12.5)
    path = tmp_path / "head.mp4"
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = 256, 256, "yuv420p"
        st.options = {"preset": "ultrafast", "crf": "14"}
        for i in range(n):
            v = CHANNEL_DEFAULTS.copy()
            v[CI["yaw"]], v[JAW] = yaw_truth[i], video_jaw[i]
            img = render(deformed_cloud(head, v), cam, background=(0.3, 0.4, 0.5))[0]
            rgb = (np.clip(img[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)
            for pkt in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    audio, gate = _syllables(n / FPS)
    wav = tmp_path / "speech.wav"
    sf.write(wav, audio, SR)
    proj = tmp_path / "p.ths"
    save_project(Project.new(fps=FPS, duration_frames=10), proj)
    args = argparse.Namespace(
        source=str(path), project=proj, out=tmp_path / "out.ths", calibrate_frames=3,
        seconds=None, name="Hybrid", pose="relative", smoothing=1.5, beta=0.5, profile=None,
        save_profile=None, force=False, hybrid_audio=wav, lips_model="default",
    )  # fmt: skip
    landmarker.reset()
    assert reenact.run(args) == 0
    take = load_project(tmp_path / "out.ths").active_take
    assert take.metadata["capture"]["lips"] == "audio (motion model)"
    k = take.metadata["capture"]["length_frames"]
    values = take.evaluate(np.arange(k))
    jaw = values[:, JAW]
    # The first 3 frames calibrated: the take's frame i is video frame i + 3 and audio time i.
    assert np.corrcoef(jaw, gate[:k])[0, 1] > 0.5
    assert abs(np.corrcoef(jaw, video_jaw[3 : 3 + k])[0, 1]) < 0.4
    yaw = values[:, CI["yaw"]]
    assert np.corrcoef(yaw, yaw_truth[3 : 3 + k])[0, 1] > 0.95
