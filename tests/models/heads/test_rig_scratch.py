"""deform's fast paths. It reuses per-head work buffers across frames: results must not depend
on the order of frames or on other threads, and the returned arrays must be the caller's own.
The pose path (scratch buffers) must agree with the pose-free one (fresh copies), heads whose
rig sets are scattered or overlap take general paths with the same results, and the block
products and scalar helpers match numpy."""

from __future__ import annotations

import numpy as np
import pytest

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX


def _frame(**values: float) -> np.ndarray:
    v = CHANNEL_DEFAULTS.copy()
    for k, x in values.items():
        v[CHANNEL_INDEX[k]] = x
    return v


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    everything = _frame(exp_19_y=0.05, eye_open_r=0.4, eye_ball_0=0.1, pitch=5.0, yaw=-12.0,
                        roll=2.0, tx=0.01, scale=1.02)  # fmt: skip
    e0 = CHANNEL_INDEX["exp_0_x"]
    everything[e0 : e0 + 63] = rng.normal(0, 0.01, 63)
    return [
        everything,
        _frame(exp_19_y=0.05),
        _frame(eye_open_r=0.0, eye_open_l=0.0),
        _frame(exp_3_x=0.01, exp_6_y=0.01),
        _frame(yaw=20.0, tx=0.01),
        _frame(scale=1.1),
        _frame(eye_ball_1=0.1, exp_19_y=0.02),
    ]


def test_frame_order_does_not_matter_and_outputs_are_fresh(head):
    frames = _frames()
    fresh = [head.replace().deform(f) for f in frames]  # each from an unused head
    shared = head.replace()
    for order in (range(len(frames)), reversed(range(len(frames))), [0, 1, 0, 2, 0, 3, 4, 0]):
        for i in order:
            g = shared.deform(frames[i])
            for name in ("means", "quats", "scales"):
                np.testing.assert_array_equal(getattr(g, name), getattr(fresh[i], name))
            if g.means.flags.writeable:
                g.means[:] = np.nan  # the caller owns it: must not leak into later frames
            if g.quats.flags.writeable:
                g.quats[:] = np.nan
    np.testing.assert_array_equal(shared.deform(CHANNEL_DEFAULTS).means, head.means)


def _posed_by_hand(head, local, frame):
    """The pose stage applied by hand to the Gaussians with full pose weight: [M, 3] means,
    [M, 4] quats (float64) and the scale."""
    from models.heads.rig import _F, quat_from_matrix, quat_multiply
    from models.motion_space import rotation_matrix

    ch = CHANNEL_INDEX
    r = _F[:, None] * rotation_matrix(frame[ch["pitch"]], frame[ch["yaw"]], frame[ch["roll"]])
    r = r * _F[None, :]
    s = frame[ch["scale"]]
    t = frame[ch["tx"] : ch["tz"] + 1] * _F * head.kp_scale
    full = head.pose_weight == 1.0
    p = head.rig.pivot
    means = p + s * (local.means[full].astype(np.float64) - p) @ r + t
    quats = quat_multiply(quat_from_matrix(r.T), local.quats[full].astype(np.float64))
    return full, means, quats, s


def _tangled(head):
    """The head with rig sets that overlap (skinned lids and eyeballs, lids on the jaw) and are
    not contiguous: every stage then takes its general path (restores, in-place turns)."""
    from models.heads.rig import PART_INDEX

    rng = np.random.default_rng(2)
    perm = rng.permutation(len(head))
    lids = np.isin(head.parts, [PART_INDEX[p] for p in ("lid_upper_r", "lid_lower_l", "sclera_r")])
    skin_weight = head.skin_weight.copy()
    skin_index = head.skin_index.copy()
    skin_weight[lids, 0], skin_index[lids, 0] = 0.5, 3
    jaw_weight = head.jaw_weight.copy()
    jaw_weight[np.isin(head.parts, [PART_INDEX["lid_lower_r"]])] = 0.3
    fields = {
        "skin_weight": skin_weight, "skin_index": skin_index, "jaw_weight": jaw_weight,
        "means": head.means, "quats": head.quats, "scales": head.scales,
        "opacities": head.opacities, "sh": head.sh, "parts": head.parts,
        "lid_angle": head.lid_angle, "pose_weight": head.pose_weight, "facing": head.facing,
    }  # fmt: skip
    return head.replace(**{k: v[perm] for k, v in fields.items()}), perm


@pytest.mark.parametrize("tangled", [False, True])
def test_the_pose_path_equals_the_local_stages_posed_by_hand(head, tangled):
    """With a pose the local stages run in reused scratch buffers, without one straight into the
    outputs: both must give the same local deformation (posed here by hand)."""
    h = _tangled(head)[0] if tangled else head.replace()
    ch = CHANNEL_INDEX
    pose_channels = ("pitch", "yaw", "roll", "tx", "ty", "tz", "scale")
    for frame in _frames():
        still = frame.copy()
        for c in pose_channels:
            still[ch[c]] = CHANNEL_DEFAULTS[ch[c]]
        local = h.deform(still)
        for _ in range(2):  # the second time through dirty scratch buffers
            g = h.deform(frame)
            full, means, quats, s = _posed_by_hand(h, local, frame)
            np.testing.assert_allclose(g.means[full], means, atol=2e-6)
            same = np.abs(np.sum(g.quats[full] * quats, axis=1))  # q and -q: one rotation
            np.testing.assert_allclose(same, 1.0, atol=2e-6)
            np.testing.assert_allclose(g.scales, local.scales * np.float32(s), rtol=1e-6)


def test_heads_with_scattered_rig_sets_deform_like_sorted_ones(head):
    """Rig sets that are index arrays (a head not sorted by part) take the gather/scatter paths;
    the result is the sorted head's, permuted."""
    rng = np.random.default_rng(3)
    perm = rng.permutation(len(head))
    names = ("means", "quats", "scales", "opacities", "sh", "parts", "skin_index",
             "skin_weight", "jaw_weight", "lid_angle", "pose_weight", "facing")  # fmt: skip
    shuffled = head.replace(**{k: getattr(head, k)[perm] for k in names})
    assert not isinstance(shuffled._full_set, slice)  # the general path is what is tested
    for frame in [*_frames(), _frames()[0]]:
        want, got = head.deform(frame), shuffled.deform(frame)
        for name in ("means", "quats", "scales"):
            np.testing.assert_allclose(getattr(got, name), getattr(want, name)[perm], atol=1e-6)


def test_tangled_rig_sets_do_not_depend_on_the_order_of_frames(head):
    tangled, _ = _tangled(head)
    frames = _frames()
    fresh = [tangled.replace().deform(f) for f in frames]
    for i in [0, 1, 0, 2, 6, 0, 3, 4, 0, 5]:
        g = tangled.deform(frames[i])
        for name in ("means", "quats", "scales"):
            np.testing.assert_array_equal(getattr(g, name), getattr(fresh[i], name))


def test_block_products_match_numpy():
    from models.heads.rig import _affine_rows, _column_blocks, _matmul_cols, _tiled

    rng = np.random.default_rng(4)
    xt = rng.normal(size=(24, 9001)).astype(np.float32)
    xt[3:9, :4000] = 0.0  # rows unused in some blocks
    mt = rng.normal(size=(3, 24)).astype(np.float32)
    out = np.empty((9001, 3), np.float32)
    _matmul_cols(mt, _column_blocks(xt, keep=3), out)
    np.testing.assert_allclose(out, (mt.astype(np.float64) @ xt).T, rtol=1e-5, atol=1e-4)
    for n in (0, 3, 17, 10_003):  # below the packing, a tail after it
        for d in (3, 4):
            src = rng.normal(size=(n, d)).astype(np.float32)
            m = rng.normal(size=(d, d))
            off = rng.normal(size=d)
            dst = np.empty_like(src)
            _affine_rows(src, m, off, dst)
            np.testing.assert_allclose(dst, src @ m + off, rtol=1e-5, atol=1e-5)
    off = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(_tiled(off, 1000), np.tile(off, 1000))


def test_scalar_rotation_helpers_match_the_batched_ones():
    from models.heads.rig import (
        _F,
        _LEFT_IDX,
        _LEFT_SIGN,
        _left_of,
        _rotation_quat,
        _rotation_rub,
        quat_from_matrix,
    )
    from models.motion_space import rotation_matrix

    rng = np.random.default_rng(5)
    for pitch, yaw, roll in rng.uniform(-90, 90, (50, 3)):
        r = _F[:, None] * rotation_matrix(pitch, yaw, roll) * _F[None, :]
        np.testing.assert_allclose(_rotation_rub(pitch, yaw, roll), r, atol=1e-15)
        q = np.array(_rotation_quat(r.T))
        want = quat_from_matrix(r.T)
        np.testing.assert_allclose(q * np.sign(q[0]), want * np.sign(want[0]), atol=1e-12)
        np.testing.assert_array_equal(_left_of(tuple(q)), q[_LEFT_IDX] * _LEFT_SIGN)


def test_the_jaw_turns_the_skinned_surface(head):
    """Stage 2 acts on stage 1's result (the jaw's rows partly overlap the skinned ones): a
    float64 twin of the two stages from the module docstring."""
    frame = _frames()[0].copy()
    for c, x in {"pitch": 0.0, "yaw": 0.0, "roll": 0.0, "tx": 0.0, "scale": 1.0}.items():
        frame[CHANNEL_INDEX[c]] = x
    e0 = CHANNEL_INDEX["exp_0_x"]
    exp = frame[e0 : e0 + 63].reshape(21, 3).copy()
    theta = float(np.clip(head.rig.jaw_gain * exp[19, 1], -0.05, 0.6))
    exp[[11, 13, 15, 16, 19], 1] = 0.0  # channels with their own rigs do not translate
    d = exp * np.array([1.0, -1.0, -1.0]) * head.kp_scale
    w = np.zeros((len(head), 21))
    np.add.at(w, (np.arange(len(head))[:, None], head.skin_index.astype(int)), head.skin_weight)
    skinned = head.means + w @ d
    jaw = head.jaw_weight > 0
    assert (jaw & (w.sum(1) > 0)).any() and (jaw & (w.sum(1) == 0)).any()
    a = theta * head.jaw_weight[jaw].astype(np.float64)
    hinge = head.rig.jaw_hinge
    y, z = skinned[jaw, 1] - hinge[1], skinned[jaw, 2] - hinge[2]
    want = skinned[jaw].copy()
    want[:, 1] = hinge[1] + y * np.cos(a) - z * np.sin(a)
    want[:, 2] = hinge[2] + y * np.sin(a) + z * np.cos(a)
    g = head.deform(frame)  # the pose path is checked against this one above
    np.testing.assert_allclose(g.means[jaw], want, atol=1e-6)


def test_concurrent_frames_on_one_head(head):
    """The viewport deforms in a worker thread while the GUI thread may deform too: each call
    takes its own scratch and stretch buffers."""
    from concurrent.futures import ThreadPoolExecutor

    h = head.replace()
    frames = _frames()
    want = [head.replace().deform(f) for f in frames]
    jobs = [i % len(frames) for i in range(40)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: h.deform(frames[i]), jobs))
    for i, g in zip(jobs, got, strict=True):
        for name in ("means", "quats", "scales"):
            np.testing.assert_array_equal(getattr(g, name), getattr(want[i], name))
