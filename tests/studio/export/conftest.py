"""Fixtures for the export tests (helpers in export_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import blob_cloud, tiny_project

from studio.document import Project


@pytest.fixture(scope="session")
def gl_ok() -> None:
    """Skip unless a headless EGL context can be made."""
    from renderers.gl_context import egl_available

    if not egl_available():
        pytest.skip("no headless EGL OpenGL context")


@pytest.fixture
def project() -> Project:
    return tiny_project()


@pytest.fixture
def head_scene():
    """A small 3D scene with depth (a sphere of blobs around the origin, 0.1 m radius)."""
    from studio.export.heads import StaticCloudSource

    rng = np.random.default_rng(0)
    d = rng.normal(size=(300, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = [tuple(p) for p in 0.1 * d]
    cloud = blob_cloud(pts, size=0.012)
    cloud.sh[:, 0, :] = (rng.uniform(0.2, 1.0, (300, 3)) - 0.5) / 0.28209479177387814
    return StaticCloudSource(cloud, "sphere")
