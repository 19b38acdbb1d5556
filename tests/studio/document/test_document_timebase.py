from __future__ import annotations

import pytest

from studio.document import DocumentError, FrameRate


def test_default_and_reduction() -> None:
    assert FrameRate() == FrameRate(25, 1)
    assert FrameRate(50, 2) == FrameRate(25)
    assert FrameRate(30000, 1001).fps == pytest.approx(29.97002997)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25", (25, 1)),
        ("30000/1001", (30000, 1001)),
        ("29.97", (30000, 1001)),
        ("23.976", (24000, 1001)),
        ("23.98", (24000, 1001)),
        ("59.94", (60000, 1001)),
        ("12.5", (25, 2)),
        (" 60 ", (60, 1)),
        (24, (24, 1)),
        (29.97, (30000, 1001)),
    ],
)
def test_parse(text: object, expected: tuple[int, int]) -> None:
    fr = FrameRate.parse(text)  # type: ignore[arg-type]
    assert (fr.numerator, fr.denominator) == expected


@pytest.mark.parametrize("text", ["", "abc", "0", "-25", "nan", "inf", "25/0", "1/-2", True])
def test_parse_rejects(text: object) -> None:
    with pytest.raises(DocumentError):
        FrameRate.parse(text)  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [(0, 1), (25, 0), (-1, 1), (25.0, 1), (True, 1)])
def test_validation(args: tuple) -> None:
    with pytest.raises(DocumentError):
        FrameRate(*args)


def test_seconds_and_frames_round_trip() -> None:
    fr = FrameRate(30000, 1001)
    for frame in (0, 1, 29, 30, 1799, 107892):
        assert fr.frame_at(fr.seconds(frame)) == frame
    assert FrameRate(25).seconds(50) == 2.0
    assert FrameRate(25).frame_at(0.019) == 0  # 0.475 frames
    assert FrameRate(25).frame_at(0.02) == 1  # exactly half a frame rounds up
    assert FrameRate(25).frame_at(-0.05) == -1
    with pytest.raises(DocumentError):
        FrameRate(25).frame_at(float("nan"))
    assert str(fr) == "30000/1001" and str(FrameRate(25)) == "25"
