"""Fixtures of the store tests."""

from __future__ import annotations

import pytest

from swimstream.store import held_tail


@pytest.fixture(params=["in memory", "spilled"])
def held_tail_kept(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a recovery test twice: the tail held in memory, and spilled to disk after
    its second record (part-way, with groups in memory and on disk to be moved over)."""
    if request.param == "spilled":
        monkeypatch.setattr(held_tail, "SPILL_AFTER", 1)
    return str(request.param)
