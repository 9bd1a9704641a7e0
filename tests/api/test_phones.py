"""Phone numbers are checked with libphonenumber and kept in E.164, wherever they come in."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from access_api.repositories.orm import users
from tests.api.conftest import Msp, World, assert_problem


async def phone_of(world: World, msp: Msp) -> str | None:
    (row,) = await world.rows(sa.select(users.c.phone).where(users.c.id == msp.admin.user_id))
    phone: str | None = row.phone
    return phone


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("+1 (415) 555-0123", "+14155550123"),
        ("0044 20 7946 0018", "+442079460018"),
        ("+49 30 901820", "+4930901820"),
    ],
)
async def test_a_number_is_stored_in_e164(world: World, msp: Msp, given: str, stored: str) -> None:
    response = await world.client.patch("/v1/me", json={"phone": given}, headers=msp.admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["phone"] == stored
    assert await phone_of(world, msp) == stored


@pytest.mark.parametrize("given", ["555 0100", "+1 555 0100", "+999 123", "call me", "+44 20"])
async def test_what_is_not_a_number_is_refused(world: World, msp: Msp, given: str) -> None:
    before = await world.snapshot()
    response = await world.client.patch("/v1/me", json={"phone": given}, headers=msp.admin.headers)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "phone"
    assert body["errors"][0]["code"] == "invalid_phone"
    assert await world.snapshot() == before


async def test_an_empty_phone_clears_it(world: World, msp: Msp) -> None:
    await world.client.patch("/v1/me", json={"phone": "+14155550123"}, headers=msp.admin.headers)
    response = await world.client.patch("/v1/me", json={"phone": ""}, headers=msp.admin.headers)
    assert response.status_code == 200, response.text
    assert await phone_of(world, msp) is None
