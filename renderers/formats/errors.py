"""The one exception every reader and writer in renderers.formats raises for bad input."""

from __future__ import annotations

__all__ = ["FormatError"]


class FormatError(ValueError):
    """A file (or an object about to be written) does not fit its format.

    The message is one line that names the file or element and the problem (missing properties,
    truncation, non-finite values, ...).
    """
