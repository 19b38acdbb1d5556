"""Errors of the export package."""

from __future__ import annotations

__all__ = ["ExportCancelled", "ExportError"]


class ExportError(ValueError):
    """An export that cannot be done as asked (bad settings, unwritable or full disk, missing
    audio, a range outside the project, no MPI baking, ...). ``str(error)`` is one line.

    A ValueError so that the CLI reports it as a user error (one line, exit status 2).
    """


class ExportCancelled(Exception):
    """The export was cancelled (cancel flag set or Ctrl-C); nothing was left on disk."""
