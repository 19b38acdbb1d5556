"""Talking Head Studio: the application (document, CLI, and the Qt user interface)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
