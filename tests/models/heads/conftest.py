from __future__ import annotations

import pytest

from models.heads import RiggedGaussianHead, build_default_head


@pytest.fixture(scope="session")
def head() -> RiggedGaussianHead:
    """The default head, built once per test session (a few seconds)."""
    return build_default_head("default", seed=0)
