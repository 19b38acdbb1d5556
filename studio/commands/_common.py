"""Helpers shared by the subcommands: loading the input project, checking the output path,
the ``--range A:B`` option and the one-line progress display on stderr.

Failures the user can fix raise :class:`studio.cli.CliError` with a one-line message. Heavy
imports stay inside the functions so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from studio.cli import CliError

if TYPE_CHECKING:
    from studio.document import Project

__all__ = [
    "add_range_argument",
    "check_out_project",
    "check_overwrite",
    "load_project_or_fail",
    "parse_range",
    "progress",
    "progress_line",
    "resolve_range",
]


def load_project_or_fail(path: Path) -> Project:
    """The project at ``path``, with missing assets kept (the command reports a missing audio
    file or head itself, with a remedy). Raises CliError with the file error's one line."""
    from studio.document.fileformat import ProjectFileError, load_project

    try:
        return load_project(path, missing_assets="keep")
    except ProjectFileError as exc:
        raise CliError(str(exc)) from None


def check_overwrite(out: Path, force: bool) -> None:
    """Raises CliError when ``out`` exists and ``--force`` was not given."""
    if out.exists() and not force:
        raise CliError(f"{out} exists; pass --force to overwrite it")


def check_out_project(out: Path, force: bool) -> None:
    """Checks an output project path: it ends in .ths, and may be overwritten only with
    ``--force``. Raises CliError. (``save_project`` then writes it atomically.)"""
    if out.suffix.lower() != ".ths":
        raise CliError(f"{out}: project files end in .ths")
    check_overwrite(out, force)


def parse_range(text: str) -> tuple[int | None, int | None]:
    """``"A:B"`` -> (A, B) project frames, end exclusive; either side may be empty.

    Raises argparse.ArgumentTypeError for anything else.
    """
    start, sep, end = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"range must look like A:B (frames), got {text!r}")
    try:
        return (int(start) if start.strip() else None, int(end) if end.strip() else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"range must be whole frames A:B, got {text!r}") from None


def add_range_argument(p: argparse.ArgumentParser) -> None:
    """``--range A:B`` (parsed by :func:`parse_range`; default None, the work range)."""
    p.add_argument(
        "--range", type=parse_range, default=None, metavar="A:B",
        help="project frames A (inclusive) to B (exclusive); default the work range",
    )  # fmt: skip


def resolve_range(
    project: Project, frame_range: tuple[int | None, int | None] | None
) -> tuple[int, int] | None:
    """``--range`` with an empty side filled from the project's work range; None stays None."""
    if frame_range is None:
        return None
    start, end = frame_range
    w0, w1 = project.work_range
    return (w0 if start is None else start, w1 if end is None else end)


def progress(text: str) -> None:
    """Show ``text`` as the progress line on stderr (overwriting the previous one)."""
    print(f"\r{text}   ", end="", file=sys.stderr, flush=True)


@contextmanager
def progress_line() -> Iterator[None]:
    """Ends the progress line with a newline on leaving, also when an error is raised."""
    try:
        yield
    finally:
        print("", file=sys.stderr)
