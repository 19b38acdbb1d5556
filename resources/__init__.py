"""Shipped assets: the demo project and its speech, the default head, shaders, icons, weights."""

from pathlib import Path

__all__ = ["RESOURCES_DIR", "resource_path"]

RESOURCES_DIR = Path(__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    """Absolute path of a shipped resource, e.g. ``resource_path("demo", "demo.ths")``.

    Raises FileNotFoundError naming the path when the resource is missing from the install.
    """
    path = RESOURCES_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"shipped resource missing: {path}")
    return path
