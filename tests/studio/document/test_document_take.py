from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.motion_space import CHANNEL_DEFAULTS, CHANNEL_INDEX, CHANNELS
from studio.document import Curve, DocumentError, HandleMode, Interpolation, Take


def random_take(seed: int, n_channels: int = 20, free: bool = True) -> Take:
    rng = np.random.default_rng(seed)
    curves = {}
    for ch in rng.choice(CHANNELS, n_channels, replace=False):
        k = int(rng.integers(1, 15))
        frames = np.sort(rng.choice(np.arange(-30, 200), k, replace=False))
        c = Curve(frames, rng.normal(size=k) * 3, rng.integers(0, 3, k))
        if free and k > 1 and rng.random() < 0.5:
            fr = int(frames[int(rng.integers(0, k))])
            c = c.with_handles(
                fr, left=(-rng.random() * 9, rng.normal()), right=(rng.random() * 9, 1)
            )
        curves[str(ch)] = c
    return Take.new("t", curves)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["dense", "sparse", "float", "shuffled"]))
def test_batched_equals_per_curve(seed: int, kind: str) -> None:
    take = random_take(seed)
    rng = np.random.default_rng(seed + 1)
    x = {
        "dense": np.arange(-40, 220),
        "sparse": np.sort(rng.choice(np.arange(-50, 250), 40, replace=False)),
        "float": np.sort(rng.uniform(-50, 250, 100)),
        "shuffled": rng.uniform(-50, 250, 100),
    }[kind]
    out = take.evaluate(x)
    assert out.shape == (len(x), len(CHANNELS)) and out.dtype == np.float64
    assert out.flags.c_contiguous
    for ch, i in CHANNEL_INDEX.items():
        if ch in take.curves:
            expect = take.curves[ch].evaluate(x)
        else:
            expect = np.full(len(x), CHANNEL_DEFAULTS[i])
        np.testing.assert_array_equal(out[:, i], expect, err_msg=ch)
    for j in rng.choice(len(x), 5):
        np.testing.assert_array_equal(take.evaluate_frame(x[j]), out[j])


def test_empty_take_gives_defaults() -> None:
    t = Take.new()
    np.testing.assert_array_equal(t.evaluate([0, 5]), np.stack([CHANNEL_DEFAULTS] * 2))
    assert t.evaluate([]).shape == (0, len(CHANNELS))
    assert t.key_range() is None


def test_take_normalises_curves() -> None:
    t = Take.new("a", {"yaw": Curve([0, 5], [1.0, 2.0]), "pitch": Curve(), "roll": Curve([3], [1])})
    assert list(t.curves) == ["yaw", "roll"]  # empty pitch dropped, CHANNELS order
    assert t.curves["yaw"].channel == "yaw"
    assert t.key_range() == (0, 5)
    with pytest.raises(TypeError):
        t.curves["yaw"] = Curve()  # type: ignore[index]
    t2 = t.with_curves({"yaw": None, "tx": Curve([1], [2.0])})
    assert set(t2.curves) == {"roll", "tx"} and t2.id == t.id
    assert t == Take(t.id, "a", {"yaw": Curve([0, 5], [1.0, 2.0]), "roll": Curve([3], [1])})


def test_take_validation() -> None:
    with pytest.raises(DocumentError, match="unknown channel 'nose'"):
        Take.new("a", {"nose": Curve([0], [1.0])})
    with pytest.raises(DocumentError):
        Take.new("a", {"yaw": [1, 2]})  # type: ignore[dict-item]
    with pytest.raises(DocumentError):
        Take("", "a")
    with pytest.raises(DocumentError, match="not finite"):
        Take.new().evaluate([0, np.nan])
    with pytest.raises(DocumentError, match="unknown channel"):
        Take.new().curve("nope")


def test_from_samples() -> None:
    frames = np.arange(10, 20)
    vals = np.random.default_rng(0).normal(size=(10, len(CHANNELS)))
    t = Take.from_samples("gen", frames, vals)
    assert t.source == "generated"
    np.testing.assert_array_equal(t.evaluate(frames), vals)
    mid = t.evaluate([10.5])[0]
    np.testing.assert_allclose(mid, (vals[0] + vals[1]) / 2)
    with pytest.raises(DocumentError):
        Take.from_samples("gen", frames, vals[:, :3])


def test_many_channels_non_uniform_mix() -> None:
    # Every channel keyed, some FREE handles: the batched path handles non-uniform segments.
    curves = {}
    for i, ch in enumerate(CHANNELS):
        c = Curve([0, 10, 20], [0.0, i, 0.0], [Interpolation.BEZIER] * 3)
        if i % 7 == 0:
            c = c.with_handles(10, right=(8.0, 2.0)).with_handle_mode([0], HandleMode.VECTOR)
        curves[ch] = c
    t = Take.new("m", curves)
    x = np.linspace(-1, 21, 301)
    out = t.evaluate(x)
    for ch, i in CHANNEL_INDEX.items():
        np.testing.assert_array_equal(out[:, i], curves[ch].evaluate(x))
