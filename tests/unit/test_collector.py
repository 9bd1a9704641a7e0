"""A started app sets the garbage collector for serving, once per process (access_api.collector):
what the app built is frozen out of the collector's reach, and young collections wait for
10,000 allocations. The bench shows what it is for (`python -m bench --only me`: p99 and CPU
per request); this shows it happens, when, and only where asked."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from access_api import collector
from tests.conftest import sqlite_database
from tests.live import live_client


@pytest.fixture
def collector_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test process's collector as it was, whatever the test did to it."""
    monkeypatch.setattr(collector, "_tuned_in", set())
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
class TestCollector:
    async def test_a_started_app_freezes_what_it_built_once(self, tmp_path: Path) -> None:
        frozen_before, threshold_before = gc.get_freeze_count(), gc.get_threshold()
        async with sqlite_database(tmp_path) as url:
            async with live_client(url, gc_tuning=False) as client:
                assert (await client.get("/healthz")).status_code == 200
            assert gc.get_freeze_count() == frozen_before
            assert gc.get_threshold() == threshold_before

            async with live_client(url, gc_tuning=True) as client:
                # Frozen at startup: the modules, routes, models and engine of a started app.
                frozen = gc.get_freeze_count()
                assert frozen > frozen_before + 50_000
                assert gc.get_threshold() == (
                    collector.YOUNG_THRESHOLD,
                    *threshold_before[1:],
                )
                assert (await client.get("/healthz")).status_code == 200

            # A second app in the same process freezes nothing more (a second freeze would add
            # its own objects; frozen ones freed by their reference counts leave meanwhile).
            async with live_client(url, gc_tuning=True) as client:
                assert (await client.get("/healthz")).status_code == 200
                assert gc.get_freeze_count() <= frozen
