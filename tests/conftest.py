"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The team's shared reference data (beside the repository, never copied into it)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA
