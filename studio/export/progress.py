"""A compact progress line for terminals: ``export  120/246 frames  14.2 fps  ETA 0:09``,
rewritten in place with a carriage return (plain lines when the stream is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressLine", "format_eta"]


def format_eta(seconds: float | None) -> str:
    """``h:mm:ss`` / ``m:ss``; "--:--" when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressLine:
    """Prints ``label  i/N frames  x fps  ETA m:ss`` on ``stream`` (default stderr).

    On a terminal the line is redrawn in place at most every ``interval`` seconds; elsewhere
    (logs, pipes) a line is printed every ``log_every`` percent so logs stay short.
    """

    def __init__(
        self, label: str, stream: TextIO | None = None, interval: float = 0.2, log_every: int = 10
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.log_every = log_every
        self._last = 0.0
        self._last_pct = -1
        self._width = 0
        self._last_frame = -1

    def update(self, frame: int, total: int, fps: float, eta_s: float | None) -> None:
        if frame == self._last_frame:
            return
        now = time.monotonic()
        text = f"{self.label}  {frame}/{total} frames  {fps:5.1f} fps  ETA {format_eta(eta_s)}"
        if self.tty:
            if frame < total and now - self._last < self.interval:
                return
            self._last = now
            self._last_frame = frame
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            pct = 100 * frame // max(total, 1)
            if pct // self.log_every == self._last_pct // self.log_every and frame < total:
                return
            self._last_pct = pct
            self._last_frame = frame
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the in-place line (newline) so later output starts on a fresh line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
