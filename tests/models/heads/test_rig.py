from __future__ import annotations

import numpy as np
import pytest

from models.heads import GaussianArrays, RiggedGaussianHead
from models.heads.preview import orbit_view, render_preview
from models.heads.rig import PART_INDEX, PARTS, quat_from_matrix, quat_multiply
from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, rotation_matrix


def frame(**values: float) -> np.ndarray:
    v = CHANNEL_DEFAULTS.copy()
    for name, value in values.items():
        v[CHANNEL_INDEX[name]] = value
    return v


def mask(head: RiggedGaussianHead, *names: str) -> np.ndarray:
    return np.isin(head.parts, [PART_INDEX[n] for n in names])


def test_counts_parts_and_keypoints(head):
    assert 30_000 <= len(head) <= 70_000
    counts = np.bincount(head.parts, minlength=len(PARTS))
    for part in ("skin", "lips", "hair", "brow", "iris_r", "iris_l", "lid_upper_r", "lash_l",
                 "mouth", "teeth_upper", "teeth_lower", "tongue", "ear", "neck"):  # fmt: skip
        assert counts[PART_INDEX[part]] > 0, part
    kp = head.keypoints_world()
    # subject's right (keypoint 11, eye_r_upper) is on the viewer's left (world -x)
    assert kp[11, 0] < 0 < kp[15, 0] and kp[14, 0] < 0 < kp[20, 0]
    assert kp[0, 1] > kp[4, 1] > kp[5, 1] > kp[6, 1] > kp[17, 1] > kp[19, 1] > kp[8, 1]
    assert np.all(np.abs(head.keypoints) < 1.0)  # normalised keypoint units
    # every face keypoint lies near the rendered surface
    d = np.min(np.linalg.norm(head.means[None, :, :] - kp[:, None, :], axis=2), axis=1)
    assert d.max() < 0.004


def test_zero_motion_is_bit_exact_identity(head):
    g = head.deform(CHANNEL_DEFAULTS)
    for name in ("means", "quats", "scales", "opacities", "sh"):
        np.testing.assert_array_equal(getattr(g, name), getattr(head, name))
    # intensity and emotion channels do not drive the rig
    g2 = head.deform(frame(intensity=0.3, emotion_happy=1.0))
    np.testing.assert_array_equal(g2.means, head.means)
    assert not g.means.flags.writeable  # shared base arrays cannot be corrupted by callers


def test_deform_shapes_and_validation(head):
    g = head.deform(frame(exp_6_y=0.02, yaw=5.0))
    assert isinstance(g, GaussianArrays) and len(g) == len(head)
    assert g.means.dtype == np.float32 and g.quats.shape == (len(head), 4)
    np.testing.assert_allclose(np.linalg.norm(g.quats, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        head.deform(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        head.deform(frame(yaw=float("nan")))
    assert len(head.deform_batch(np.stack([CHANNEL_DEFAULTS, frame(yaw=3.0)]))) == 2


def test_expression_moves_its_region_smoothly(head):
    g = head.deform(frame(exp_1_y=-0.05))  # right brow up (RDF: -y is up)
    moved = np.linalg.norm(g.means - head.means, axis=1)
    brow_r = mask(head, "brow") & (head.means[:, 0] < 0)
    brow_l = mask(head, "brow") & (head.means[:, 0] > 0)
    assert np.median(g.means[brow_r, 1] - head.means[brow_r, 1]) > 0.004  # up, in metres
    assert moved[brow_l].max() < 1e-3 and moved[mask(head, "hair", "iris_r")].max() == 0.0
    kp = head.keypoints_world(frame(exp_1_y=-0.05))
    np.testing.assert_allclose(kp[1] - head.keypoints_world()[1], [0, 0.05 * head.kp_scale, 0])


def test_jaw_open_moves_mouth_down_and_reveals_the_interior(head):
    opened = frame(exp_19_y=0.08)
    g = head.deform(opened)
    lower = mask(head, "teeth_lower", "tongue")
    upper = mask(head, "teeth_upper")
    assert np.all(g.means[lower, 1] < head.means[lower, 1])
    np.testing.assert_array_equal(g.means[upper], head.means[upper])
    chin = head.keypoints_world()[8]
    near_chin = np.linalg.norm(head.means - chin, axis=1) < 0.01
    assert np.mean(g.means[near_chin, 1] - head.means[near_chin, 1]) < -0.008

    # From the front, the mouth's centre shows lips/skin at rest and the interior when open.
    interior = mask(head, "mouth", "teeth_upper", "teeth_lower", "tongue").astype(np.float64)
    kp = head.keypoints_world()
    # the lips part around the mouth line; look 6 mm below it (the jaw drops ~13 mm there)
    target = np.array([0.0, kp[14, 1] - 0.008, kp[6, 2]])
    cam = orbit_view(target, 0.25)
    kw = {"camera": cam, "fov_deg": 1.2, "features": interior[:, None]}
    rest_vis, _ = render_preview(head.rest, 24, 24, **kw)
    open_vis, _ = render_preview(g, 24, 24, **kw)
    assert rest_vis.mean() < 0.05
    assert open_vis.mean() > 0.5
    rest_rgb, _ = render_preview(head.rest, 24, 24, camera=cam, fov_deg=1.2)
    open_rgb, _ = render_preview(g, 24, 24, camera=cam, fov_deg=1.2)
    assert open_rgb.mean() < rest_rgb.mean() - 0.1  # the dark cavity shows


@pytest.mark.parametrize("channels", [{"eye_open_r": 0.0, "eye_open_l": 0.0},
                                      {"exp_11_y": 1.0, "exp_13_y": -1.0,
                                       "exp_15_y": 1.0, "exp_16_y": -1.0}])  # fmt: skip
def test_eye_close_covers_the_iris(head, channels):
    if "exp_11_y" in channels:  # full travel of the blink keypoints closes the lids too
        channels = {
            "exp_11_y": head.rig.lid_travel_upper, "exp_15_y": head.rig.lid_travel_upper,
            "exp_13_y": -head.rig.lid_travel_lower, "exp_16_y": -head.rig.lid_travel_lower,
        }  # fmt: skip
    closed = head.deform(frame(**channels))
    iris = mask(head, "iris_r").astype(np.float64)[:, None]
    cam = orbit_view(head.rig.eye_centers[0], 0.25)
    kw = {"camera": cam, "fov_deg": 9.0, "features": iris}
    open_vis, _ = render_preview(head.rest, 32, 32, **kw)
    closed_vis, _ = render_preview(closed, 32, 32, **kw)
    assert open_vis.sum() > 60  # tens of pixels of iris when open...
    assert closed_vis.sum() < 0.02 * open_vis.sum()  # ...hidden behind the lids when closed
    lids = mask(head, "lid_upper_r")
    assert np.mean(closed.means[lids, 1] - head.means[lids, 1]) < 0  # the upper lid came down


def test_gaze_turns_the_eyeball_not_the_highlight(head):
    g = head.deform(frame(eye_ball_0=0.2, eye_ball_1=0.1))
    iris = mask(head, "iris_r")
    c = head.rig.eye_centers[0]
    before = head.means[iris].mean(axis=0) - c
    after = g.means[iris].mean(axis=0) - c
    assert after[0] - before[0] > 0.003 and after[1] < before[1]  # image right and down
    np.testing.assert_allclose(np.linalg.norm(g.means[iris] - c, axis=1),
                               np.linalg.norm(head.means[iris] - c, axis=1), atol=1e-6)  # fmt: skip
    hl = mask(head, "highlight_r", "iris_l")
    np.testing.assert_array_equal(g.means[hl], head.means[hl])


def test_yaw_30_rotates_keypoints_by_30_degrees(head):
    kp0 = head.keypoints_world()
    kp = head.keypoints_world(frame(yaw=30.0))
    a, b = kp0[10] - kp0[9], kp[10] - kp[9]  # the jaw-to-jaw axis lies in the xz plane
    a, b = a[[0, 2]], b[[0, 2]]
    ang = np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    assert ang == pytest.approx(30.0, abs=0.5)
    # the whole keypoint set moved rigidly: the same rotation, about the pivot
    r = rotation_matrix(0.0, 30.0, 0.0)
    f = np.diag([1.0, -1.0, -1.0])
    expected = head.rig.pivot + (kp0 - head.rig.pivot) @ (f @ r @ f)
    np.testing.assert_allclose(kp, expected, atol=1e-9)
    # and the Gaussians with full pose weight follow the same rigid motion
    g = head.deform(frame(yaw=30.0))
    full = head.pose_weight == 1.0
    want = head.rig.pivot + (head.means[full] - head.rig.pivot) @ (f @ r @ f)
    np.testing.assert_allclose(g.means[full], want, atol=2e-6)
    # shoulders stay, the neck bends part way
    assert np.array_equal(g.means[head.pose_weight == 0], head.means[head.pose_weight == 0])


def test_quaternions_follow_rotations(head):
    g = head.deform(frame(pitch=10.0, yaw=-20.0, roll=5.0))
    f = np.diag([1.0, -1.0, -1.0])
    r = f @ rotation_matrix(10.0, -20.0, 5.0) @ f
    q = quat_from_matrix(r.T)
    full = np.flatnonzero(head.pose_weight == 1.0)[:100]
    want = quat_multiply(q, head.quats[full].astype(np.float64))
    got = g.quats[full].astype(np.float64)
    same = np.abs(np.sum(want * got, axis=1))  # q and -q are the same rotation
    np.testing.assert_allclose(same, 1.0, atol=1e-5)


def test_motion_space_formula_when_pivoting_at_the_keypoint_origin(head):
    from models.heads import RigParams
    from models.motion_space import MotionFrames, transform_keypoints

    d = head.rig.to_dict()
    d["pivot"] = head.kp_to_world[:3, 3].tolist()  # pivot at the keypoint origin
    h2 = head.replace(rig=RigParams.from_dict(d))
    assert not np.array_equal(head.rig.pivot, h2.rig.pivot)  # the session head is untouched
    v = frame(yaw=12.0, pitch=-7.0, roll=3.0, tx=0.02, ty=-0.01, scale=1.1)
    m = MotionFrames.from_channels(v)
    want = head.kp_to_world_points(transform_keypoints(head.keypoints, m))
    np.testing.assert_allclose(h2.keypoints_world(v), want, atol=1e-12)
    # expression deltas are applied in the head frame, then posed: x = s(x_c + exp) R + t
    v = frame(yaw=12.0, pitch=-7.0, exp_5_x=0.01, exp_17_y=0.02)
    m = MotionFrames.from_channels(v)
    r = rotation_matrix(m.pitch, m.yaw, m.roll)
    want = head.kp_to_world_points((head.keypoints + m.exp) @ r)
    np.testing.assert_allclose(h2.keypoints_world(v), want, atol=1e-12)


@pytest.mark.slow
def test_build_is_deterministic_and_matches_the_shipped_head(head):
    from models.heads import build_default_head

    built = build_default_head("default", seed=0)
    for name in ("means", "quats", "scales", "opacities", "sh", "skin_weight", "jaw_weight"):
        np.testing.assert_array_equal(getattr(built, name), getattr(head, name), err_msg=name)
    other = build_default_head("default", seed=1)
    assert len(other) != len(built) or not np.array_equal(other.means, built.means)


def test_jaw_weight_is_smooth_around_the_mouth_corners(head):
    """The surface is whole at the commissures: a jump in jaw weight there tears the skin open
    when the jaw drops (the corner must stretch). Neighbours within 1.5 mm of each other, within
    4 mm of a corner keypoint, differ by little (a hard split differs by 1)."""
    from scipy.spatial import cKDTree

    kp = head.keypoints_world()
    skin = mask(head, "skin", "lips")
    for k in (14, 20):
        near = skin & (np.linalg.norm(head.means - kp[k], axis=1) < 0.004)
        assert near.sum() > 30
        w = head.jaw_weight[near]
        pairs = cKDTree(head.means[near]).query_pairs(0.0015, output_type="ndarray")
        assert np.abs(w[pairs[:, 0]] - w[pairs[:, 1]]).max() < 0.3, k
