"""Mail that was only logged says so: nobody should read "delivered" and wait for it."""

from __future__ import annotations

import logging

import pytest

from tests.api.conftest import Msp, World
from tests.api.test_mail_delivery import dispatcher_for, invite


async def test_logged_mail_is_never_called_delivered(
    world: World, msp: Msp, caplog: pytest.LogCaptureFixture
) -> None:
    await invite(world.client, msp.id, msp.admin.headers, "ada@example.com")
    console = dispatcher_for(world)
    with caplog.at_level(logging.INFO, logger="access_api.mail"):
        assert (await console.deliver_due()).sent == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "access_api.mail"]
    assert any("logged, not sent" in line and "ada@example.com" in line for line in lines)
    assert not [line for line in lines if "delivered" in line]
