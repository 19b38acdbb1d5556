"""Level of detail: select_lod keeps the Gaussians that matter most."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.camera import Camera
from renderers.gaussians import GaussianCloud
from renderers.lod import contribution_scores, lod_cloud, select_lod
from renderers.reference import render_gaussians_reference


def cloud_with_known_ranks(n: int = 200, seed: int = 0) -> GaussianCloud:
    rng = np.random.default_rng(seed)
    means = rng.uniform(-0.1, 0.1, (n, 3))
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    scales = np.full((n, 3), 0.002)
    opacities = np.full(n, 0.05)
    # Every fifth Gaussian is big and opaque: those must survive any budget >= n / 5.
    scales[::5] = 0.01
    opacities[::5] = 0.9
    return GaussianCloud.from_colors(means, quats, scales, opacities, rng.uniform(size=(n, 3)))


def test_keeps_the_most_contributing() -> None:
    cloud = cloud_with_known_ranks()
    kept = select_lod(cloud, 40)
    assert kept.dtype == np.int64 and np.all(np.diff(kept) > 0)
    np.testing.assert_array_equal(kept, np.arange(0, 200, 5))
    assert select_lod(cloud, 500).tolist() == list(range(200))
    # A thin needle (one large scale) scores below an equally opaque disc.
    s = contribution_scores(
        GaussianCloud.from_colors(
            np.zeros((2, 3)),
            [[1, 0, 0, 0]] * 2,
            [[0.01, 0.0001, 0.0001], [0.01, 0.01, 0.0001]],
            [1.0, 1.0],
            np.zeros((2, 3)),
        )
    )
    assert s[1] > 10 * s[0]


def test_camera_aware_scores_drop_what_is_not_seen() -> None:
    cloud = cloud_with_known_ranks()
    cloud.means[::5, 2] = 5.0  # the big ones move behind the camera at z = 0.6
    cam = Camera.orbit(distance=0.6, width=64, height=64)
    kept = select_lod(cloud, 40, cam)
    assert not np.isin(np.arange(0, 200, 5), kept).any()
    assert contribution_scores(cloud, cam)[::5].max() == 0.0
    # Nearer Gaussians of equal size score higher (projected area).
    near_far = contribution_scores(
        GaussianCloud.from_colors(
            [[0.0, 0.0, 0.3], [0.0, 0.0, -0.3]],
            [[1, 0, 0, 0]] * 2,
            [[0.01] * 3] * 2,
            [1.0, 1.0],
            np.zeros((2, 3)),
        ),
        cam,
    )
    assert near_far[0] > near_far[1]


def test_lod_render_stays_close_and_compensation_restores_coverage() -> None:
    cloud = cloud_with_known_ranks(400, seed=1)
    cam = Camera.orbit(distance=0.5, width=48, height=48)
    full = render_gaussians_reference(cloud, cam)
    picked = render_gaussians_reference(lod_cloud(cloud, 80), cam)
    rng = np.random.default_rng(0)
    rand = render_gaussians_reference(
        cloud.subset(np.sort(rng.choice(400, 80, replace=False))), cam
    )
    err_picked = np.abs(picked - full).mean()
    assert err_picked < np.abs(rand - full).mean()
    comp = lod_cloud(cloud, 80, compensate=True)
    assert comp.scales.max() > lod_cloud(cloud, 80).scales.max()
    cov = render_gaussians_reference(comp, cam)[..., 3].sum()
    assert abs(cov - full[..., 3].sum()) < abs(picked[..., 3].sum() - full[..., 3].sum())


@pytest.mark.parametrize("budget", [0, -3, 2.5, True])
def test_bad_budget(budget) -> None:
    with pytest.raises(ValueError, match="budget"):
        select_lod(cloud_with_known_ranks(), budget)
