"""FaceTracker: drawn faces (fast) and the rendered default head (slow, GL) with known motion."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from models.face.one_euro import OneEuroFilter
from models.face.testface import draw_face
from models.face.tracker import (
    FaceTracker,
    PerformerProfile,
    ProfileError,
    TrackerSettings,
    angles_from_matrix,
    similarity_fit,
)
from models.motion_space import CHANNEL_DEFAULTS, rotation_matrix
from models.motion_space import CHANNEL_INDEX as CI

JAW = CI["exp_19_y"]


def _runslow(request) -> None:
    try:
        run = bool(request.config.getoption("--runslow"))
    except ValueError:
        run = os.environ.get("RUN_SLOW") == "1"
    if not run:
        pytest.skip("slow: run with --runslow or RUN_SLOW=1")


@pytest.fixture
def tracker(landmarker):
    landmarker.reset()
    return FaceTracker(landmarker, TrackerSettings(smoothing=False))


# ----------------------------------------------------------------------------- pure functions
def test_angles_invert_rotation_matrix():
    for p, y, r in ((10, -20, 5), (-30, 40, -15), (0, 0, 0)):
        assert np.allclose(angles_from_matrix(rotation_matrix(p, y, r)), (p, y, r), atol=1e-9)


def test_similarity_fit_recovers_a_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    r = rotation_matrix(12, -7, 3)
    s, r2, t = similarity_fit(src, 2.5 * src @ r + [1, 2, 3])
    assert s == pytest.approx(2.5) and np.allclose(r2, r) and np.allclose(t, [1, 2, 3])


def test_reference_keypoints_are_the_default_heads():
    # Expression is measured in the default head's keypoint units: the tracker reads them from
    # the shipped head, so they cannot drift apart.
    from models.face.tracker import default_reference_keypoints
    from models.heads import load_builtin_head

    kp = load_builtin_head("default").keypoints
    np.testing.assert_array_equal(default_reference_keypoints(), kp)


def test_one_euro_smooths_noise_and_follows_steps():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    rng = np.random.default_rng(1)
    out = [f(np.array([1.0 + 0.1 * rng.normal()]), i / 30)[0] for i in range(60)]
    assert np.std(out[30:]) < 0.05  # raw noise std is 0.1
    g = OneEuroFilter(min_cutoff=1.0, beta=5.0)
    vals = [g(np.array([0.0 if i < 5 else 10.0]), i / 30)[0] for i in range(15)]
    assert vals[-1] > 9.0  # speed opens the cutoff: a step is followed within ~10 frames
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)


def test_settings_reject_unknown_regions():
    with pytest.raises(ValueError, match="region"):
        TrackerSettings(gains={"nose": 1.0})
    with pytest.raises(ValueError, match="pose"):
        TrackerSettings(pose="sideways")


# ----------------------------------------------------------------------------- drawn faces
def test_roll_and_mouth_on_drawn_faces(tracker):
    tracker.calibrate([draw_face(320, 240, seed=i).image for i in range(3)])
    rolls = np.array([0, 4, 8, 12, 8, 4, 0, -4, -8, -12, -8, -4, 0], dtype=float)
    got = [tracker.process(draw_face(320, 240, roll=r).image, i / 25).values[CI["roll"]]
           for i, r in enumerate(rolls)]  # fmt: skip
    assert np.abs(np.array(got) - rolls).max() < 2.0
    opens = np.array([0, 0.25, 0.5, 0.75, 1, 0.75, 0.5, 0.25, 0, 0.5, 1, 0])
    jaw = [tracker.process(draw_face(320, 240, mouth_open=m).image, 1 + i / 25).values[JAW]
           for i, m in enumerate(opens)]  # fmt: skip
    assert np.corrcoef(opens, jaw)[0, 1] >= 0.9
    assert max(jaw) > 0.0


def test_face_lost_holds_then_eases_to_neutral(landmarker):
    landmarker.reset()
    tr = FaceTracker(landmarker, TrackerSettings(smoothing=False, hold_s=0.0, ease_s=0.5))
    tr.calibrate([draw_face(320, 240).image])
    r = tr.process(draw_face(320, 240, roll=10).image, 0.0)
    assert r.found and r.values[CI["roll"]] > 7
    blank = np.zeros((240, 320, 3), np.uint8)
    seq = [tr.process(blank + (i % 2), 0.04 * (i + 1)) for i in range(20)]  # not frozen: +1 noise
    rolls = [s.values[CI["roll"]] for s in seq]
    assert all(s.status == "lost" for s in seq)
    assert rolls[0] == pytest.approx(r.values[CI["roll"]], abs=0.2)  # held at first
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(rolls))  # monotonic ease
    assert np.allclose(seq[-1].values, CHANNEL_DEFAULTS)  # neutral after 0.5 s
    back = tr.process(draw_face(320, 240, roll=10).image, 1.0)
    assert back.found and back.values[CI["roll"]] > 7


def test_bad_frames_never_raise(tracker):
    tracker.calibrate([draw_face(320, 240).image])
    assert tracker.process(None, 0.0).status == "no_frame"
    assert tracker.process(np.zeros((3, 3)), 0.1).status == "bad_frame"
    assert tracker.process("not an image", 0.2).status == "bad_frame"
    assert tracker.process(np.full((240, 320, 3), np.nan), 0.3).status == "bad_frame"
    f = draw_face(320, 240).image
    assert tracker.process(f, 0.4).found
    frozen = tracker.process(f.copy(), 0.5)
    assert frozen.status == "frozen"
    assert tracker.process(f.copy(), 2.0).status == "lost"  # frozen past the timeout


def test_regions_off_and_gains(tracker):
    tracker.calibrate([draw_face(320, 240).image])
    frame = draw_face(320, 240, roll=10, mouth_open=1.0).image
    full = tracker.measure(tracker._landmarks(frame))
    tracker.settings.enabled["head"] = False
    tracker.settings.gains["mouth"] = 2.0
    tracker.landmarker.reset()
    v = tracker.measure(tracker._landmarks(frame))
    assert v[CI["roll"]] == 0.0 and v[CI["yaw"]] == 0.0
    assert v[JAW] == pytest.approx(2.0 * full[JAW], rel=0.05)


def test_profile_save_load(tracker, tmp_path):
    prof = tracker.calibrate([draw_face(320, 240).image], name="me")
    path = tmp_path / "me.json"
    prof.save(path)
    back = PerformerProfile.load(path)
    assert back.name == "me" and np.allclose(back.neutral_mesh, prof.neutral_mesh, atol=1e-6)
    (tmp_path / "bad.json").write_text('{"neutral_mesh": [1, 2]}')
    with pytest.raises(ProfileError, match="neutral_mesh"):
        PerformerProfile.load(tmp_path / "bad.json")
    with pytest.raises(ProfileError, match="no face"):
        tracker.calibrate([np.zeros((64, 64, 3), np.uint8)])


def test_several_faces_are_counted(tracker):
    a = draw_face(320, 240, centre=(90, 120), face_height=120).image
    b = draw_face(320, 240, centre=(240, 120), face_height=90, seed=2).image
    both = np.where(np.arange(320)[None, :, None] < 165, a, b).astype(np.uint8)
    r = tracker.process(both, 0.0)
    assert r.found and r.num_faces == 2
    assert r.landmarks.points[:, 0].mean() < 165  # the larger face is followed


# ----------------------------------------------------------------------------- rendered head
@pytest.mark.slow
@pytest.mark.gl
def test_rendered_head_pose_and_jaw(request, landmarker, tmp_path):
    """The default head rendered with known yaw, pitch, roll and jaw, written as a PNG sequence,
    read back through open_source and tracked after calibrating on its neutral frames.

    All of the head's Gaussians are drawn: a 20k level of detail of the ~50k head leaves dark
    holes in the skin, which the mesh model reads as features (yaw 0.95x / 0.74x and 5 degrees
    off at 20 on that render, against 1.05x / 0.94x and 1.5 degrees on the full head)."""
    _runslow(request)
    import cv2

    from models.face.sources import open_source
    from renderers import Camera
    from renderers.render import render
    from studio.heads import deformed_cloud, resolve_head

    head = resolve_head(None)
    centre = head.kp_to_world[:3, 3]
    cam = Camera.look_at(
        centre + np.array([0, 0, 0.6]), centre, fov_y_deg=30, width=256, height=256
    )
    ramp = [0, 5, 10, 15, 20, 15, 10, 5, 0, -5, -10, -15, -20, -15, -10, -5, 0]
    plan = [{}] * 3 + [{"yaw": a} for a in ramp] + [{"pitch": a / 2} for a in ramp]
    plan += [{"roll": a / 2} for a in ramp]
    jaw = [0, 0.03, 0.06, 0.09, 0.12, 0.09, 0.06, 0.03, 0, 0.06, 0.12, 0]
    plan += [{"exp_19_y": j} for j in jaw]
    for i, kw in enumerate(plan):
        v = CHANNEL_DEFAULTS.copy()
        for k, x in kw.items():
            v[CI[k]] = x
        img = render(deformed_cloud(head, v), cam, background=(0.3, 0.4, 0.5))[0]
        rgb = (np.clip(img[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), rgb[..., ::-1])
    landmarker.reset()
    tr = FaceTracker(landmarker, TrackerSettings(smoothing=False))
    with open_source(tmp_path) as src:
        frames = list(src)
    tr.calibrate(frames[:3])
    out = np.array([tr.process(f, t).values for t, f in frames[3:]])
    n = len(ramp)
    truth = np.array(ramp, dtype=float)
    yaw, pitch, roll = (
        out[:n, CI["yaw"]],
        out[n : 2 * n, CI["pitch"]],
        out[2 * n : 3 * n, CI["roll"]],
    )
    pos, neg = truth > 0, truth < 0

    def gains(v, t):  # median read / true angle for positive and negative angles
        return f"{np.median(v[pos] / t[pos]):.2f} / {np.median(v[neg] / t[neg]):.2f}"

    print(f"max error: yaw {np.abs(yaw - truth).max():.2f} (gain + / - {gains(yaw, truth)}), "
          f"pitch {np.abs(pitch - truth / 2).max():.2f} (gain down / up "
          f"{gains(pitch, truth / 2)}), roll {np.abs(roll - truth / 2).max():.2f}, jaw r "
          f"{np.corrcoef(jaw, out[3 * n :, JAW])[0, 1]:.3f}")  # fmt: skip
    assert np.abs(roll - truth / 2).max() <= 2.0, roll
    # The mesh model reads this stylised head's pitch at about 0.75x of the angle even from a
    # settled crop (see docs/motion-space.md, "Known bias"), so 3 degrees at 10 is close to its
    # limit; the crop settling after detection and calibration and the re-crop on fast moves
    # (FaceLandmarker.recrop) take the error from about 5 degrees to about 2.5.
    assert np.abs(pitch - truth / 2).max() <= 3.0, pitch
    assert np.corrcoef(jaw, out[3 * n :, JAW])[0, 1] >= 0.9
    assert np.abs(yaw - truth).max() <= 3.0, yaw
