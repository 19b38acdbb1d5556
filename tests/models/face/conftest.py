from __future__ import annotations

import pytest

from models.face.fetch_models import DEFAULT_DEST, SETUP_COMMAND, models_present


@pytest.fixture(scope="session")
def landmarker():
    """One FaceLandmarker for the session; skips when setup has not fetched the models."""
    if not models_present(DEFAULT_DEST):
        pytest.skip(f"face models not installed in {DEFAULT_DEST}: run `{SETUP_COMMAND}`")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    from models.face.landmarks import FaceLandmarker

    return FaceLandmarker(num_threads=1)
