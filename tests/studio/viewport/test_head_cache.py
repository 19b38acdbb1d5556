"""Per-frame head work: deformation cache, fast covariances, delta uploads (no GL needed)."""

from __future__ import annotations

import numpy as np
import pytest

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX
from renderers.gl_splats import packed_covariances
from studio import heads
from studio.viewport.head_cache import DeformCache, SplatUploader, fast_packed_covariances


@pytest.fixture(scope="module")
def head():
    return heads.lod_head(heads.resolve_head(None), 3000)


def test_fast_covariances_match_the_renderer(head):
    values = CHANNEL_DEFAULTS.copy()
    values[CHANNEL_INDEX["yaw"]] = 33.0
    values[CHANNEL_INDEX["exp_19_y"]] = 0.1
    a = head.deform(values)
    ref = packed_covariances(a.quats, a.scales)
    got = fast_packed_covariances(a.quats, a.scales)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))


def test_deform_cache(head):
    cache = DeformCache(size=2)
    v = CHANNEL_DEFAULTS.copy()
    v[CHANNEL_INDEX["pitch"]] = 4.0
    a = cache.deform(head, (1, 5), v)
    assert cache.deform(head, (1, 5), v) is a and cache.hits == 1
    cache.deform(head, (1, 6), v)
    cache.deform(head, (1, 7), v)
    assert cache.deform(head, (1, 5), v) is not a  # evicted (LRU of 2)
    other = heads.lod_head(heads.resolve_head(None), 2000)
    cache.deform(other, (1, 7), v)
    assert cache.misses == 5  # a new head clears the cache


class _FakeRenderer:
    def __init__(self):
        self.calls = []
        self.last = {}

    def upload(self, cloud):
        self.calls.append("upload")

    def update(self, **arrays):
        self.calls.append(tuple(sorted(k for k, v in arrays.items() if v is not None)))
        self.last = arrays


def test_uploader_sends_only_what_changed(head):
    r = _FakeRenderer()
    up = SplatUploader(r)
    up.push(head.rest)
    assert r.calls == ["upload"]
    up.push(head.rest)  # same arrays: nothing to do
    assert r.calls == ["upload"]
    v = CHANNEL_DEFAULTS.copy()
    v[CHANNEL_INDEX["exp_2_y"]] = 0.02  # expression only: means move, quats stay
    up.push(head.deform(v))
    assert "means" in r.calls[-1] and "quats" not in r.calls[-1]  # one update, no covariances
    assert len(r.calls) == 2
    v[CHANNEL_INDEX["roll"]] = 5.0  # pose: quats change -> quats and scales go together
    a = head.deform(v)
    up.push(a)
    assert {"quats", "scales"} <= set(r.calls[-1]) and len(r.calls) == 3
    assert r.last["quats"] is a.quats and r.last["scales"] is a.scales
    up.invalidate()
    up.push(a)
    assert r.calls[-1] == "upload"
