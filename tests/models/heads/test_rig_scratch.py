"""deform reuses per-head work buffers across frames: results must not depend on the order of
frames, and the returned arrays must be the caller's own."""

from __future__ import annotations

import numpy as np

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
