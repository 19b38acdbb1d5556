"""The one exception the document raises for bad input."""

from __future__ import annotations

__all__ = ["DocumentError"]


class DocumentError(ValueError):
    """Invalid document data or an edit that cannot apply (the message names channel/frame/id)."""
