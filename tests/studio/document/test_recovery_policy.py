"""AutosavePolicy: when the next autosave is due."""

from __future__ import annotations

import math

import pytest

from studio.document.recovery import AutosavePolicy


def test_nothing_changed_is_never_due() -> None:
    p = AutosavePolicy(interval_minutes=2)
    assert p.next_due(None, 100.0) is None
    assert not p.due(1e9, None, 100.0)
    # A change already covered by the last autosave.
    assert not p.due(1e9, 50.0, 100.0)
    assert not p.due(1e9, 100.0, 100.0)


def test_due_interval_after_last_autosave_even_while_editing() -> None:
    p = AutosavePolicy(interval_minutes=2)
    assert p.next_due(130.0, 100.0) == 220.0
    assert not p.due(219.9, 130.0, 100.0)
    assert p.due(220.0, 130.0, 100.0)
    # Continuous editing (last change just now) does not postpone it.
    assert p.due(500.0, 499.9, 100.0)


def test_never_written_and_changed_is_due_at_once() -> None:
    p = AutosavePolicy(interval_minutes=5)
    assert p.next_due(42.0, None) == 42.0
    assert p.due(42.0, 42.0, None)
    assert not p.due(41.0, 42.0, None)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_bad_interval_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        AutosavePolicy(interval_minutes=bad)
    assert AutosavePolicy(0.5).interval_seconds == 30.0
