"""The ``talking-head-studio`` command line.

With no arguments it runs the main job: the studio window on the demo project when a display is
available, otherwise a headless render of the demo. Subcommands live in studio/commands/, one
module each with ``add_parser(subparsers)`` and ``run(args) -> int``; they import their heavy
dependencies inside ``run`` so ``--help`` stays fast.

Errors the user can fix (bad files, bad arguments) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "CliError", "main"]

# Subcommand name -> module in studio.commands. Order is the order shown in --help.
COMMANDS = {
    "open": "studio.commands.open",
    "demo": "studio.commands.demo",
    "new": "studio.commands.new",
    "info": "studio.commands.info",
    "render": "studio.commands.render",
    "import-head": "studio.commands.import_head",
    "export": "studio.commands.export",
    "export-motion": "studio.commands.export_motion",
    "reenact": "studio.commands.reenact",
    "import-livelink": "studio.commands.import_livelink",
    "export-livelink": "studio.commands.export_livelink",
    "generate": "studio.commands.generate",
    "auto-emotion": "studio.commands.auto_emotion",
    "train": "studio.commands.train",
}


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from studio import __version__

    parser = argparse.ArgumentParser(
        prog="talking-head-studio",
        description=(
            "Animate neural talking heads, see them live in 3D, export stereo VR clips. "
            "Without a command: open the studio on the demo project (or, with no display, "
            "render the demo headless)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input or a missing capability rather than a bug: reported
    in one line. Imported here, on failure only, so a successful run pays nothing for them."""
    import importlib

    errors: list[type[BaseException]] = [CliError, OSError, ValueError]
    for module, name in (
        ("studio.document.fileformat", "ProjectFileError"),
        ("models.heads.asset", "HeadFileError"),
        ("renderers.gl_context", "GLUnavailableError"),
        ("renderers.gsplat_backend", "GsplatUnavailableError"),
        ("renderers.native", "NativeUnavailable"),
        ("studio.export", "ExportError"),
        ("studio.heads", "HeadResolveError"),
    ):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "default"
    try:
        if command == "default":
            from studio.commands.open import run_default

            return run_default(args)
        module = importlib.import_module(COMMANDS[command])
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("talking-head-studio: cancelled", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"talking-head-studio {command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
