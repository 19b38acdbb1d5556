"""Frame rates. Time in the document is always integer frames at a rational rate
(OpenTimelineIO style); seconds appear only at the edges (audio, export, display)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from studio.document.errors import DocumentError

__all__ = ["FrameRate"]

# Decimal spellings of the NTSC rates (N * 1000/1001) map to the exact rational rate.
_NTSC_BASES = (24, 30, 48, 60, 120, 240)


@dataclass(frozen=True)
class FrameRate:
    """A rational frame rate ``numerator / denominator`` frames per second, kept reduced.

    Raises DocumentError for non-integer or non-positive parts.
    """

    numerator: int = 25
    denominator: int = 1

    def __post_init__(self) -> None:
        for name in ("numerator", "denominator"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise DocumentError(f"frame rate {name} must be an integer, got {v!r}")
            if v <= 0:
                raise DocumentError(f"frame rate {name} must be positive, got {v}")
        g = math.gcd(int(self.numerator), int(self.denominator))
        object.__setattr__(self, "numerator", int(self.numerator) // g)
        object.__setattr__(self, "denominator", int(self.denominator) // g)

    @property
    def fps(self) -> float:
        """Frames per second as a float (for display and audio maths)."""
        return self.numerator / self.denominator

    @property
    def fraction(self) -> Fraction:
        return Fraction(self.numerator, self.denominator)

    def seconds(self, frame: int | float | np.ndarray) -> float | np.ndarray:
        """Time in seconds of ``frame`` (scalar or array, any shape)."""
        if isinstance(frame, np.ndarray):
            return frame.astype(np.float64) * self.denominator / self.numerator
        return float(frame) * self.denominator / self.numerator

    def frame_at(self, seconds: float) -> int:
        """Nearest frame to ``seconds`` (halves round up). Raises DocumentError if not finite."""
        s = float(seconds)
        if not math.isfinite(s):
            raise DocumentError(f"time in seconds must be finite, got {seconds!r}")
        return math.floor(s * self.numerator / self.denominator + 0.5)

    @classmethod
    def parse(cls, text: str | int | float | Fraction | FrameRate) -> FrameRate:
        """Parse ``"25"``, ``"30000/1001"``, ``"29.97"`` (-> 30000/1001), numbers or a FrameRate.

        Decimal NTSC spellings (23.976, 23.98, 29.97, 47.952, 59.94, 119.88, 239.76) give the
        exact N*1000/1001 rate; other decimals are taken exactly ("12.5" -> 25/2).
        Raises DocumentError for anything unparsable, non-finite or non-positive.
        """
        if isinstance(text, FrameRate):
            return text
        if isinstance(text, Fraction):
            return cls(text.numerator, text.denominator)
        if isinstance(text, bool):
            raise DocumentError(f"not a frame rate: {text!r}")
        if isinstance(text, (int, np.integer)):
            return cls(int(text), 1)
        raw = str(text).strip()
        try:
            if "/" in raw:
                num, den = raw.split("/", 1)
                return cls(int(num.strip()), int(den.strip()))
            value = float(raw)
        except (ValueError, ZeroDivisionError):
            raise DocumentError(f"not a frame rate: {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise DocumentError(f"frame rate must be finite and positive, got {text!r}")
        for base in _NTSC_BASES:
            ntsc = base * 1000 / 1001
            if value != base and abs(value - ntsc) < 0.006:
                return cls(base * 1000, 1001)
        frac = Fraction(raw) if isinstance(text, str) else Fraction(value)
        frac = frac.limit_denominator(1_000_000)
        return cls(frac.numerator, frac.denominator)

    def __str__(self) -> str:
        if self.denominator == 1:
            return str(self.numerator)
        return f"{self.numerator}/{self.denominator}"
