"""The CLI progress line."""

from __future__ import annotations

import io

from studio.export.progress import ProgressLine, format_eta


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_eta():
    assert format_eta(None) == "--:--"
    assert format_eta(9.4) == "0:09"
    assert format_eta(3725) == "1:02:05"


def test_tty_line_redrawn_in_place():
    out = _Tty()
    line = ProgressLine("export", out, interval=0.0)
    for i in range(1, 4):
        line.update(i, 3, 12.5, 3 - i)
    line.update(3, 3, 12.5, 0)  # repeated final report: not drawn twice
    line.finish()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")
    assert "export  3/3 frames   12.5 fps  ETA 0:00" in text


def test_log_lines_every_ten_percent():
    out = io.StringIO()
    line = ProgressLine("export", out)
    for i in range(0, 101):
        line.update(i, 100, 5.0, None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("export  100/100")
    assert "\r" not in out.getvalue()
