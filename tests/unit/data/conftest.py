"""The data tests use their own cache directory (never the user's ~/.cache)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_DATA_CACHE", str(tmp_path / "data-cache"))
    return tmp_path / "data-cache"
