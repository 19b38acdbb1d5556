from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from studio.document import Curve, DocumentError, HandleMode, Interpolation

C, L, B = Interpolation.CONSTANT, Interpolation.LINEAR, Interpolation.BEZIER


# ------------------------------------------------------------------------------ strategies
@st.composite
def keys(draw: st.DrawFn, min_size: int = 2, max_size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(min_size, max_size))
    gaps = draw(st.lists(st.integers(1, 40), min_size=n - 1, max_size=n - 1))
    start = draw(st.integers(-100, 100))
    frames = start + np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)
    values = np.array(draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=n, max_size=n)))
    return frames, values


def monotone(values: np.ndarray, increasing: bool) -> np.ndarray:
    v = np.sort(values)
    return v if increasing else v[::-1]


# ------------------------------------------------------------------------------ basics
@pytest.mark.parametrize("interp", [C, L, B])
def test_exact_at_keys_and_clamped_outside(interp: Interpolation) -> None:
    f = np.array([-3, 0, 7, 8, 30])
    v = np.array([0.1, -2.0, 5.5, 5.25, 1e-3])
    c = Curve(f, v, interp)
    np.testing.assert_array_equal(c.evaluate(f), v)
    np.testing.assert_array_equal(c.evaluate([-1000, -4, 31, 1e9]), [v[0], v[0], v[-1], v[-1]])


def test_constant_and_linear_values() -> None:
    c = Curve([0, 10], [1.0, 3.0], [C, C])
    np.testing.assert_array_equal(c.evaluate([0, 5, 9.999, 10]), [1, 1, 1, 3])
    lin = Curve([0, 10], [1.0, 3.0], L)
    np.testing.assert_allclose(lin.evaluate([0, 2.5, 5, 10]), [1, 1.5, 2, 3])


def test_empty_curve_gives_default() -> None:
    c = Curve()
    assert c.is_empty and len(c) == 0
    np.testing.assert_array_equal(c.evaluate([1, 2]), [0, 0])
    np.testing.assert_array_equal(c.evaluate([1, 2], default=1.0), [1, 1])


def test_auto_clamped_flat_at_extrema_and_ends() -> None:
    c = Curve([0, 10, 20, 30], [0.0, 1.0, 0.5, 2.0])
    # Key 1 is a local maximum, keys 0 and 3 are ends: flat handles.
    for i in (0, 1, 3):
        assert c.left[i, 1] == 0 and c.right[i, 1] == 0
    np.testing.assert_allclose(c.right[:, 0], [10 / 3] * 4)
    np.testing.assert_allclose(c.left[:, 0], [-10 / 3] * 4)
    # Nothing exceeds the maximum key although key 1 is a peak.
    x = np.linspace(0, 30, 301)
    assert c.evaluate(x).max() <= 2.0 + 1e-12
    assert c.evaluate(np.linspace(0, 20, 201)).max() <= 1.0 + 1e-12


def test_handles_recomputed_when_keys_change() -> None:
    c = Curve([0, 10, 20], [0.0, 1.0, 2.0])
    assert c.right[1, 1] > 0
    c2 = c.with_keys([15], [5.0])  # key 1 is no longer on a monotone run... still rising
    assert c2.frames.tolist() == [0, 10, 15, 20]
    assert c2.right[1, 0] == pytest.approx(5 / 3)  # 1/3 of the new, shorter interval
    c3 = c.with_keys([10], [3.0])  # now a peak: flat
    assert c3.right[1, 1] == 0.0


def test_vector_handles_make_straight_segments() -> None:
    c = Curve([0, 9, 30], [0.0, 3.0, -6.0], B, HandleMode.VECTOR)
    lin = Curve([0, 9, 30], [0.0, 3.0, -6.0], L)
    x = np.linspace(-2, 32, 171)
    np.testing.assert_allclose(c.evaluate(x), lin.evaluate(x), atol=1e-12)


def test_free_handles_non_uniform_segment() -> None:
    c = Curve([0, 12], [0.0, 1.0]).with_handles(0, right=(6.0, 2.0))
    assert c.handle_mode[0] == HandleMode.FREE
    x = np.linspace(0, 12, 49)
    y = c.evaluate(x)
    # Reference: sample the bezier densely in t and interpolate y(x).
    t = np.linspace(0, 1, 200001)
    p0, p1, p2, p3 = (np.array(p) for p in ([0, 0], [6, 2], [8, 1], [12, 1]))
    pts = (
        ((1 - t) ** 3)[:, None] * p0
        + (3 * (1 - t) ** 2 * t)[:, None] * p1
        + (3 * (1 - t) * t**2)[:, None] * p2
        + (t**3)[:, None] * p3
    )
    np.testing.assert_allclose(y, np.interp(x, pts[:, 0], pts[:, 1]), atol=1e-6)
    assert y.max() > 1.0  # a free handle may overshoot


def test_overlapping_x_handles_are_scaled() -> None:
    c = Curve([0, 10], [0.0, 1.0]).with_handles(0, right=(9.0, 0.0)).with_handles(10, left=(-9, 0))
    y = c.evaluate(np.linspace(0, 10, 101))
    assert np.all(np.diff(y) >= -1e-12) and np.isfinite(y).all()


def test_aligned_keeps_other_handle_collinear() -> None:
    c = Curve([0, 10, 20], [0.0, 1.0, 0.0]).with_handle_mode([10], HandleMode.ALIGNED)
    r_len = np.hypot(*c.right[1])
    c2 = c.with_handles(10, left=(-2.0, -1.0))
    assert c2.handle_mode[1] == HandleMode.ALIGNED
    np.testing.assert_allclose(c2.right[1], np.array([2.0, 1.0]) / np.hypot(2, 1) * r_len)
    c3 = c.with_handles(10, right=(4.0, 0.0))
    np.testing.assert_allclose(c3.left[1], [-np.hypot(*c.left[1]), 0.0], atol=1e-12)


def test_edits_return_new_curves() -> None:
    c = Curve([0, 10, 20], [0.0, 1.0, 2.0], [L, B, C])
    c2 = c.with_keys([10, 5], [7.0, 3.0])
    assert c2.frames.tolist() == [0, 5, 10, 20] and c2.values.tolist() == [0, 3, 7, 2]
    assert c2.interp.tolist() == [L, B, B, C]  # replaced key keeps its interpolation
    assert c.values.tolist() == [0, 1, 2]
    assert c.without_keys([10, 99]).frames.tolist() == [0, 20]
    assert c.with_interpolation([0], C).interp.tolist() == [C, B, C]
    assert c.with_interpolation(None, L).interp.tolist() == [L, L, L]
    with pytest.raises(AttributeError):
        c.values = np.zeros(3)  # type: ignore[misc]
    with pytest.raises(ValueError):
        c.values[0] = 1.0


def test_move_keys_collision_moved_key_wins() -> None:
    c = Curve([0, 10, 20], [0.0, 1.0, 2.0], [L, B, C])
    m = c.with_moved_keys([10], 10, 0.5)
    assert m.frames.tolist() == [0, 20] and m.values.tolist() == [0.0, 1.5]
    assert m.interp.tolist() == [L, B]
    s = c.with_moved_keys([0, 10], 5)
    assert s.frames.tolist() == [5, 15, 20]
    # Moving all keys together never collides.
    assert c.with_moved_keys([0, 10, 20], 10).frames.tolist() == [10, 20, 30]
    with pytest.raises(DocumentError, match="no key at frame 3"):
        c.with_moved_keys([3], 1)
    with pytest.raises(DocumentError):
        c.with_moved_keys([0], 0.5)  # type: ignore[arg-type]


def test_equality_is_exact_and_ignores_label() -> None:
    a = Curve([0, 1], [0.0, 1.0])
    assert a == Curve([0, 1], [0.0, 1.0], channel="yaw")
    assert a != Curve([0, 1], [0.0, 1.0 + 1e-15])
    assert hash(a) == hash(Curve([0, 1], [0.0, 1.0]))


@pytest.mark.parametrize(
    ("frames", "values", "match"),
    [
        ([0, 1.5], [0, 1], "1.5"),
        ([0, 1], [0, np.nan], "frame 1"),
        ([0, 1], [np.inf, 0], "frame 0"),
        ([0, 1], [1e13, 0], "frame 0"),
        ([1, 0], [0, 1], "increasing"),
        ([0, 0], [0, 1], "increasing"),
        ([0, 2e9], [0, 1], "outside"),
        ([0, np.nan], [0, 1], "nan"),
        ([0, 1], [0, 1, 2], "expected 2"),
    ],
)
def test_validation_names_channel_and_frame(frames: list, values: list, match: str) -> None:
    with pytest.raises(DocumentError, match=match) as info:
        Curve(frames, values, channel="yaw")
    assert "'yaw'" in str(info.value)


def test_invalid_edit_inputs() -> None:
    c = Curve([0, 10], [0.0, 1.0], channel="roll")
    with pytest.raises(DocumentError, match="roll"):
        c.with_keys([5], [np.nan])
    with pytest.raises(DocumentError, match="given twice"):
        c.with_keys([5, 5], [1.0, 2.0])
    with pytest.raises(DocumentError):
        c.with_handles(0, right=(-1.0, 0.0))
    with pytest.raises(DocumentError):
        c.with_handles(3, right=(1.0, 0.0))
    with pytest.raises(DocumentError):
        c.with_interpolation([0], 7)
    with pytest.raises(DocumentError, match="not finite"):
        c.evaluate([0, np.inf])
    with pytest.raises(DocumentError):
        c.evaluate(np.zeros((2, 2)))


# ------------------------------------------------------------------------------ properties
@settings(max_examples=150, deadline=None)
@given(keys(), st.lists(st.sampled_from([L, B]), min_size=12, max_size=12))
def test_continuous(kv: tuple[np.ndarray, np.ndarray], interps: list[int]) -> None:
    f, v = kv
    c = Curve(f, v, interps[: len(f)])
    step = 0.01
    x = np.arange(f[0] - 2, f[-1] + 2, step)
    y = c.evaluate(x)
    # Lipschitz bound: auto-clamped tangents are at most 3x the adjacent secant slopes.
    lip = 3 * np.max(np.abs(np.diff(v) / np.diff(f))) if len(f) > 1 else 0
    scale = max(1.0, np.abs(v).max())
    assert np.all(np.abs(np.diff(y)) <= lip * step * (1 + 1e-9) + 1e-9 * scale)


@settings(max_examples=150, deadline=None)
@given(keys(), st.booleans(), st.sampled_from([L, B]))
def test_monotone_keys_give_monotone_curve_without_overshoot(
    kv: tuple[np.ndarray, np.ndarray], increasing: bool, interp: Interpolation
) -> None:
    f, v = kv
    v = monotone(v, increasing)
    c = Curve(f, v, interp)
    x = np.concatenate([np.arange(f[0] - 3, f[-1] + 3), np.linspace(f[0], f[-1], 997)])
    x.sort()
    y = c.evaluate(x)
    tol = 1e-9 * max(1.0, np.abs(v).max())
    d = np.diff(y)
    assert np.all(d >= -tol) if increasing else np.all(d <= tol)
    assert y.min() >= v.min() - tol and y.max() <= v.max() + tol


@settings(max_examples=100, deadline=None)
@given(
    keys(),
    st.lists(
        st.tuples(st.floats(0, 60), st.floats(-1e3, 1e3), st.floats(0, 60), st.floats(-1e3, 1e3)),
        min_size=12,
        max_size=12,
    ),
)
def test_free_handles_still_pass_through_keys(
    kv: tuple[np.ndarray, np.ndarray], handles: list[tuple[float, float, float, float]]
) -> None:
    f, v = kv
    c = Curve(f, v)
    for fr, (lx, ly, rx, ry) in zip(f, handles, strict=False):
        c = c.with_handles(int(fr), left=(-lx, ly), right=(rx, ry))
    assert np.all(c.handle_mode == HandleMode.FREE)
    np.testing.assert_array_equal(c.evaluate(f), v)
    x = np.linspace(f[0], f[-1], 503)
    y = c.evaluate(x)
    assert np.isfinite(y).all()
    # Time stays monotone inside each segment, so the curve stays within its control points.
    ctrl = np.concatenate([v, v + c.left[:, 1], v + c.right[:, 1]])
    assert y.min() >= ctrl.min() - 1e-6 and y.max() <= ctrl.max() + 1e-6


@settings(max_examples=100, deadline=None)
@given(keys(min_size=1), st.lists(st.floats(-500, 500), min_size=1, max_size=50))
def test_vectorised_equals_scalar_and_order_independent(
    kv: tuple[np.ndarray, np.ndarray], xs: list[float]
) -> None:
    f, v = kv
    c = Curve(f, v, np.arange(len(f)) % 3)
    x = np.array(xs)
    y = c.evaluate(x)
    assume(len(x) > 0)
    np.testing.assert_array_equal(y, np.array([c.evaluate([xi])[0] for xi in x]))
    order = np.argsort(x)
    np.testing.assert_array_equal(c.evaluate(x[order]), y[order])
