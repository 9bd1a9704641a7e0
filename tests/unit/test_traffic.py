"""Requests in flight and the quiet moments the server's dispatchers wait for
(services/traffic.py). Times here are lower bounds the rule implies (a wait of at least the
settle time), with loose upper bounds that only catch a wait that never ends; the live
server's behaviour is in tests/api/test_mail_delivery.py (TestGivingWay)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from access_api.services.traffic import Traffic

SETTLE = 0.05


async def timed(traffic: Traffic, within: float) -> tuple[bool, float]:
    started = time.monotonic()
    quiet = await traffic.quiet(within, settle=SETTLE)
    return quiet, time.monotonic() - started


@pytest.mark.parametrize("idle_for", [None, SETTLE * 1.5], ids=["no request yet", "idle"])
async def test_a_server_without_a_request_for_the_settle_time_is_quiet_at_once(
    idle_for: float | None,
) -> None:
    traffic = Traffic()
    if idle_for is not None:
        traffic.started()
        traffic.ended()
        await asyncio.sleep(idle_for)
    quiet, waited = await timed(traffic, within=5)
    assert quiet
    assert waited < SETTLE


async def test_a_request_that_just_ended_makes_it_wait_out_the_settle_time() -> None:
    traffic = Traffic()
    traffic.started()
    traffic.ended()
    quiet, waited = await timed(traffic, within=5)
    assert quiet
    assert SETTLE * 0.9 <= waited < 5


async def quiet_beside(
    traffic: Traffic, requests: Callable[[], Coroutine[Any, Any, None]]
) -> float:
    """How long a dispatcher waited for a quiet moment while `requests` came and went."""
    meanwhile = asyncio.create_task(requests())
    quiet, waited = await timed(traffic, within=5)
    await meanwhile
    assert quiet
    return waited


async def test_a_request_in_flight_is_waited_for_then_the_settle_time_after_it() -> None:
    traffic = Traffic()
    traffic.started()

    async def end_later() -> None:
        await asyncio.sleep(0.1)
        traffic.ended()

    assert 0.1 + SETTLE * 0.9 <= await quiet_beside(traffic, end_later) < 5


async def test_a_request_starting_during_the_settle_time_restarts_the_wait() -> None:
    traffic = Traffic()
    traffic.started()
    traffic.ended()

    async def another() -> None:
        await asyncio.sleep(SETTLE / 2)
        traffic.started()
        await asyncio.sleep(0.1)
        traffic.ended()

    assert SETTLE / 2 + 0.1 + SETTLE * 0.9 <= await quiet_beside(traffic, another) < 5


async def test_constant_traffic_gives_up_at_the_bound() -> None:
    traffic = Traffic()
    traffic.started()
    quiet, waited = await timed(traffic, within=0.1)
    assert not quiet
    assert 0.09 <= waited < 5
    assert traffic.in_flight == 1
