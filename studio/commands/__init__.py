"""Subcommands of ``talking-head-studio``, one module each (see studio.cli)."""
