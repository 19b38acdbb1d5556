"""The one exception every reader and writer in renderers.formats raises for bad input, and the
checks the writers share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from renderers.gaussians import GaussianCloud

__all__ = ["FormatError", "check_cloud_writable"]


class FormatError(ValueError):
    """A file (or an object about to be written) does not fit its format.

    The message is one line that names the file or element and the problem (missing properties,
    truncation, non-finite values, ...).
    """


def check_cloud_writable(cloud: GaussianCloud, where: str) -> None:
    """Raises FormatError naming ``where`` when the cloud has NaN/inf values or zero/negative
    scales (no file format can store them meaningfully)."""
    for name in ("means", "quats", "scales", "opacities", "sh"):
        if not np.isfinite(getattr(cloud, name)).all():
            raise FormatError(f"{where}: cannot write: cloud.{name} has NaN/inf values")
    if (cloud.scales <= 0).any():
        raise FormatError(f"{where}: cannot write: cloud.scales has zero or negative values")
