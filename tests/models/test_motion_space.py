import numpy as np
import pytest

from models import motion_space as ms


def test_layout_matches_the_design_groups():
    regions = {k.index: k.region for k in ms.KEYPOINTS}
    assert all(regions[i] == "lips" for i in ms.LIPS)
    assert all(regions[i] == "eyes" for i in ms.EYES)
    assert all(regions[i] == "brows" for i in ms.BROWS)
    assert set(ms.BLINK) <= set(ms.EYES) and set(ms.EYEBALL) <= set(ms.BLINK)
    assert set(ms.LIP_OPEN) <= set(ms.LIPS)
    # Ditto: dimension 58 of the 63 expression dims is "jaw open", 34 opens the right eye.
    assert ms.EXP_CHANNELS[58] == ms.JAW_OPEN_CHANNEL == "exp_19_y"
    assert ms.EXP_CHANNELS[34] == "exp_11_y" and "_r_" in ms.KEYPOINTS[11].name


def test_channels_are_unique_and_complete():
    assert len(ms.CHANNELS) == len(set(ms.CHANNELS)) == 7 + 63 + 8 + 4 + 8
    grouped = [c for group in ms.CHANNEL_GROUPS.values() for c in group]
    assert sorted(grouped) == sorted(ms.CHANNELS)
    assert ms.CHANNEL_DEFAULTS[ms.CHANNEL_INDEX["scale"]] == 1.0
    assert ms.CHANNEL_DEFAULTS[ms.CHANNEL_INDEX["emotion_neutral"]] == 1.0
    with pytest.raises(ValueError):
        ms.CHANNEL_DEFAULTS[0] = 3.0


def test_structured_view_round_trip():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 4, len(ms.CHANNELS)))
    frames = ms.MotionFrames.from_channels(values)
    assert frames.exp.shape == (5, 4, 21, 3) and frames.emotion.shape == (5, 4, 8)
    assert frames.exp[1, 2, 19, 1] == values[1, 2, ms.CHANNEL_INDEX["exp_19_y"]]
    np.testing.assert_array_equal(frames.to_channels(), values)
    with pytest.raises(ValueError, match="expected last dimension"):
        ms.MotionFrames.from_channels(values[..., :10])


def test_rotation_is_liveportrait_convention():
    # R = (Rz(roll) Ry(yaw) Rx(pitch))^T for row vectors: x @ R == (M @ x^T)^T.
    p, y, r = 10.0, -25.0, 7.0
    rad = np.deg2rad([p, y, r])
    cx, sx = np.cos(rad[0]), np.sin(rad[0])
    cy, sy = np.cos(rad[1]), np.sin(rad[1])
    cz, sz = np.cos(rad[2]), np.sin(rad[2])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    np.testing.assert_allclose(ms.rotation_matrix(p, y, r), (rz @ ry @ rx).T, atol=1e-12)
    batch = ms.rotation_matrix(np.zeros(3), np.array([0.0, 30.0, 90.0]), np.zeros(3))
    assert batch.shape == (3, 3, 3)
    np.testing.assert_allclose(batch[0], np.eye(3), atol=1e-12)


def test_yaw_rotates_keypoints_by_its_angle():
    rng = np.random.default_rng(1)
    x_c = rng.normal(size=(21, 3))
    values = ms.CHANNEL_DEFAULTS.copy()
    values[ms.CHANNEL_INDEX["yaw"]] = 30.0
    x = ms.transform_keypoints(x_c, ms.MotionFrames.from_channels(values))
    # Yaw turns about the vertical (y) axis: y is unchanged, the xz angle changes by 30 degrees.
    np.testing.assert_allclose(x[:, 1], x_c[:, 1], atol=1e-12)
    a0 = np.arctan2(x_c[:, 2], x_c[:, 0])
    a1 = np.arctan2(x[:, 2], x[:, 0])
    turn = np.rad2deg(np.angle(np.exp(1j * (a1 - a0))))
    np.testing.assert_allclose(np.abs(turn), 30.0, atol=1e-9)


def test_transform_applies_scale_expression_and_translation():
    x_c = np.arange(63, dtype=float).reshape(21, 3) / 50
    values = ms.CHANNEL_DEFAULTS.copy()
    frames = ms.MotionFrames.from_channels(values)
    np.testing.assert_array_equal(ms.transform_keypoints(x_c, frames), x_c)
    frames.scale[...] = 2.0
    frames.t[...] = [0.1, -0.2, 0.0]
    frames.exp[19, 1] = 0.05
    x = ms.transform_keypoints(x_c, frames)
    expected = 2.0 * x_c + [0.1, -0.2, 0.0]
    expected[19, 1] += 2.0 * 0.05
    np.testing.assert_allclose(x, expected, atol=1e-12)


@pytest.mark.parametrize("deg", [-97.5, -40.0, -0.01, 0.0, 12.345, 97.5])
def test_bin_logits_round_trip(deg):
    logits = ms.bin_logits_from_angles(np.array(deg))
    assert logits.shape == (66,)
    assert abs(float(ms.angles_from_bin_logits(logits)) - deg) < 1e-6


def test_angles_from_bins_formula():
    logits = np.zeros(66)
    logits[40] = 50.0  # nearly one-hot at bin 40
    assert abs(float(ms.angles_from_bin_logits(logits)) - (3 * 40 - 97.5)) < 1e-9


def test_ditto_pack_unpack_round_trip():
    rng = np.random.default_rng(2)
    values = np.tile(ms.CHANNEL_DEFAULTS, (7, 1))
    frames = ms.MotionFrames.from_channels(values)
    frames.exp[...] = rng.normal(scale=0.02, size=frames.exp.shape)
    frames.pitch[...] = rng.uniform(-30, 30, size=7)
    frames.yaw[...] = rng.uniform(-60, 60, size=7)
    frames.roll[...] = rng.uniform(-20, 20, size=7)
    frames.t[...] = rng.normal(scale=0.05, size=(7, 3))
    frames.scale[...] = rng.uniform(0.8, 1.2, size=7)
    packed = ms.pack_ditto(values)
    assert packed.shape == (7, ms.DITTO_MOTION_DIM)
    np.testing.assert_allclose(packed[:, 0], frames.scale - 1.0)
    np.testing.assert_array_equal(packed[:, 202:265], frames.exp.reshape(7, 63))
    np.testing.assert_allclose(ms.unpack_ditto(packed), values, atol=1e-6)
    with pytest.raises(ValueError, match="265"):
        ms.unpack_ditto(packed[:, :200])


def test_angle_sign_conventions_documented():
    nose = np.array([0.0, 0.0, -1.0])  # towards the camera in the RDF keypoint frame
    assert (nose @ ms.rotation_matrix(0, 30, 0))[0] < 0  # +yaw: face turns to the image left
    assert (nose @ ms.rotation_matrix(30, 0, 0))[1] > 0  # +pitch: face tips down
    assert (np.array([1.0, 0, 0]) @ ms.rotation_matrix(0, 0, 30))[1] > 0  # +roll: clockwise


def test_docs_keypoint_table_matches_code():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "motion-space.md").read_text()
    for k in ms.KEYPOINTS:
        assert f"| {k.index} | {k.name} | {k.region} | {k.where} |" in doc
