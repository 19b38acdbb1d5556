from __future__ import annotations

import pytest

from models.heads import RiggedGaussianHead, load_builtin_head


@pytest.fixture(scope="session")
def head() -> RiggedGaussianHead:
    """The shipped default head (loaded in ~0.3 s; rebuilt from the seed if the file is absent)."""
    return load_builtin_head("default")
