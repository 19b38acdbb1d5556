from __future__ import annotations

import pytest

from models.heads import RiggedGaussianHead, load_builtin_head


@pytest.fixture(scope="session")
def head() -> RiggedGaussianHead:
    """The shipped default head (loaded in ~0.3 s; rebuilt from the seed if the file is absent)."""
    return load_builtin_head("default")


def pytest_collection_modifyitems(config, items):
    # The root conftest has no --runslow switch yet: honour it if it appears, else RUN_SLOW=1.
    import os

    try:
        run_slow = bool(config.getoption("--runslow"))
    except ValueError:
        run_slow = os.environ.get("RUN_SLOW") == "1"
    if run_slow:
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords and "models/heads" in str(item.fspath):
            item.add_marker(skip)
