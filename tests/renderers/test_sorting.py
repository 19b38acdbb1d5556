"""renderers.sorting: back-to-front orders and the per-view cache."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.camera import Camera, StereoRig
from renderers.sorting import DepthSorter, back_to_front, view_depths


def _cloud(n: int = 5000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.1, 0.1, (n, 3)).astype(np.float32)


def test_orders_are_farthest_first_and_drop_points_before_the_near_plane() -> None:
    means = _cloud()
    cam = Camera.orbit(distance=0.12, yaw_deg=30.0, width=64, height=64)  # inside the cloud
    w2c = np.asarray(cam.world_to_camera)
    z = view_depths(means, w2c)
    assert (z < 0.01).any() and (z >= 0.01).any()
    exact = back_to_front(means, w2c, method="argsort")
    np.testing.assert_array_equal(np.sort(exact), np.flatnonzero(z >= 0.01))
    assert np.all(np.diff(z[exact]) <= 0)
    quick = back_to_front(means, w2c, method="radix16")
    np.testing.assert_array_equal(np.sort(quick), np.sort(exact))
    # 16-bit keys: out of order by at most one bucket of the depth range.
    bucket = (z[exact].max() - z[exact].min()) / 65535
    assert np.all(np.diff(z[quick]) <= bucket * 1.01)
    assert back_to_front(means[:0], w2c).shape == (0,)


def test_unknown_method_and_torch_without_cuda_are_clear_errors() -> None:
    means = _cloud(10)
    w2c = np.asarray(Camera.orbit(distance=0.5).world_to_camera)
    with pytest.raises(ValueError, match="unknown sort method"):
        back_to_front(means, w2c, method="bogus")
    with pytest.raises(ValueError, match="unknown sort method"):
        DepthSorter("bogus")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            back_to_front(means, w2c, method="torch")


def test_both_eyes_of_a_parallel_rig_share_one_sort() -> None:
    means = _cloud()
    sorter = DepthSorter("radix16")
    head = Camera.orbit(distance=0.5, yaw_deg=-35.0, pitch_deg=12.0)
    left, right = StereoRig(0.063, 0.5).cameras(head)
    first = sorter.order(means, np.asarray(left.world_to_camera), version=0)
    second = sorter.order(means, np.asarray(right.world_to_camera), version=0)
    assert sorter.sorts == 1 and second is first
    np.testing.assert_array_equal(
        first, back_to_front(means, np.asarray(right.world_to_camera), method="radix16")
    )
    sorter.order(means, np.asarray(right.world_to_camera), version=1)  # the cloud changed
    assert sorter.sorts == 2
    turned = Camera.orbit(distance=0.5, yaw_deg=-34.0, pitch_deg=12.0)
    sorter.order(means, np.asarray(turned.world_to_camera), version=1)
    assert sorter.sorts == 3
    sorter.invalidate()
    sorter.order(means, np.asarray(turned.world_to_camera), version=1)
    assert sorter.sorts == 4
