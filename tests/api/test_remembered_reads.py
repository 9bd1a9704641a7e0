"""The hot reads' rows are turned into domain objects once (fast.Made): a credential's next call
in the same tenant reads the same rows, and gets the objects made of them the first time. The
statement still runs on every call, so whatever changes in the database changes the rows, and
the next call decides on the new ones. PostgreSQL: only its autocommit reads run on asyncpg
directly, where the rows are remembered."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from access_api.domain.invitations import Offer
from access_api.repositories import me as me_repository
from access_api.repositories import scoped
from access_api.repositories.fast import FastRead, Made
from tests.live import PASSWORD, join_member, live_client, live_msp, state_of


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _counted(made: Made[Any], calls: list[int]) -> Callable[[Sequence[Any]], Any]:
    real = made.make

    def counting(rows: Sequence[Any]) -> Any:
        calls.append(len(rows))
        return real(rows)

    return counting


@pytest.fixture
def makes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The rows each remembered read made objects of, call by call (a remembered call adds
    nothing)."""
    found: dict[str, list[int]] = {}
    remembered: list[tuple[str, Made[Any]]] = [
        ("key_in_tenant", scoped._KEY_IN_TENANT),
        ("session_in_tenant", scoped._SESSION_IN_TENANT),
        ("me_by_key", me_repository._MYSELF_BY_KEY),
    ]
    for name, made in remembered:
        monkeypatch.setattr(made, "make", _counted(made, found.setdefault(name, [])))
    return found


@dataclass
class Live:
    """The app on a database of the test's own, an MSP in it and its admin's headers."""

    client: httpx.AsyncClient
    root: UUID
    admin: dict[str, str]


@pytest.fixture
async def live(live_database: str) -> AsyncIterator[Live]:
    async with live_client(live_database) as client:
        root, admin = await live_msp(client, f"made-{secrets.token_hex(3)}")
        yield Live(client, root, admin)


class TestAKeysNextCallsInATenant:
    async def test_are_remembered_and_decided_again_on_every_change(
        self, live: Live, makes: dict[str, list[int]]
    ) -> None:
        client, root, admin = live.client, live.root, live.admin
        created = await client.post(
            f"/v1/tenants/{root}/clients",
            json={"kind": "client", "name": "Contoso", "domain_prefix": "contoso"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        tenant = created.json()["id"]
        role = await client.post(
            f"/v1/tenants/{root}/roles",
            json={
                "key": "viewer",
                "name": "Viewer",
                "permissions": ["tenants.read", "users.read"],
            },
            headers=admin,
        )
        assert role.status_code == 201, role.text
        # On the root, inherited: the client below is reached through it.
        viewer = await join_member(
            state_of(client),
            root,
            [Offer(tenant_id=root, roles=frozenset({"viewer"}), include_descendants=True)],
            f"viewer-{secrets.token_hex(4)}@example.com",
        )
        key = await client.post(
            f"/v1/tenants/{root}/users/{viewer}/api-keys", json={}, headers=admin
        )
        assert key.status_code == 201, key.text
        headers = bearer(key.json()["key"])
        users = f"/v1/tenants/{tenant}/users"

        # The first call stamps the key's last use, so the second reads other rows; from
        # the third on, the same rows: made once, remembered after.
        for _ in range(2):
            assert (await client.get(users, headers=headers)).status_code == 200
        made = len(makes["key_in_tenant"])
        for path in (users, f"/v1/tenants/{tenant}", users):
            assert (await client.get(path, headers=headers)).status_code == 200
        assert len(makes["key_in_tenant"]) == made, "the same rows were made again"
        assert scoped._KEY_IN_TENANT.rows >= 1

        # The role loses users.read: its permissions are in the rows, the next call
        # reads them, and is refused.
        edited = await client.patch(
            f"/v1/tenants/{root}/roles/viewer",
            json={"permissions": ["tenants.read"]},
            headers=admin,
        )
        assert edited.status_code == 200, edited.text
        refused = await client.get(users, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "forbidden"
        assert (await client.get(f"/v1/tenants/{tenant}", headers=headers)).status_code == 200
        assert len(makes["key_in_tenant"]) == made + 1

        # The client is disabled: refused there, whatever was remembered of it.
        disabled = await client.post(
            f"/v1/tenants/{root}/clients/disable", json={"ids": [tenant]}, headers=admin
        )
        assert disabled.status_code == 200, disabled.text
        blocked = await client.get(f"/v1/tenants/{tenant}", headers=headers)
        assert blocked.status_code == 403, blocked.text
        assert blocked.json()["code"] == "tenant_disabled"

        # The key is revoked: no call goes through any more.
        revoked = await client.delete(
            f"/v1/tenants/{root}/users/{viewer}/api-keys/{key.json()['id']}", headers=admin
        )
        assert revoked.status_code == 204, revoked.text
        for path in (f"/v1/tenants/{root}", "/v1/me"):
            gone = await client.get(path, headers=headers)
            assert gone.status_code == 401, gone.text
            assert gone.json()["code"] == "unauthenticated"

    async def test_a_session_is_decided_again_when_its_user_loses_a_grant(
        self, live: Live, makes: dict[str, list[int]]
    ) -> None:
        client, root, admin = live.client, live.root, live.admin
        email = f"reader-{secrets.token_hex(4)}@example.com"
        viewer = await join_member(
            state_of(client),
            root,
            [Offer(tenant_id=root, roles=frozenset({"read_only"}), include_descendants=False)],
            email,
        )
        me = await client.get("/v1/me", headers=admin)
        login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = bearer(login.json()["access_token"])
        path = f"/v1/tenants/{root}/users/{me.json()['id']}"
        for _ in range(3):
            assert (await client.get(path, headers=headers)).status_code == 200
        assert len(makes["session_in_tenant"]) < 3, "nothing was remembered"

        removed = await client.put(
            f"/v1/tenants/{root}/users/{viewer}/authorizations",
            json={"items": []},
            headers=admin,
        )
        assert removed.status_code == 200, removed.text
        refused = await client.get(path, headers=headers)
        # No role left anywhere: no access at all (seed 003).
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "no_access"


class TestMe:
    async def test_shows_a_changed_name_on_the_next_call(
        self, live: Live, makes: dict[str, list[int]]
    ) -> None:
        client, root, admin = live.client, live.root, live.admin
        me = (await client.get("/v1/me", headers=admin)).json()
        key = await client.post(
            f"/v1/tenants/{root}/users/{me['id']}/api-keys", json={}, headers=admin
        )
        assert key.status_code == 201, key.text
        headers = bearer(key.json()["key"])
        for _ in range(4):
            assert (await client.get("/v1/me", headers=headers)).status_code == 200
        assert len(makes["me_by_key"]) < 4, "nothing was remembered"

        renamed = await client.patch(
            f"/v1/tenants/{root}/users/{me['id']}",
            json={"first_name": "Renamed"},
            headers=admin,
        )
        assert renamed.status_code == 200, renamed.text
        again = await client.get("/v1/me", headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["first_name"] == "Renamed"


_DOCUMENT = FastRead(sa.select(sa.cast(sa.bindparam("doc", type_=sa.String), JSONB).label("doc")))
_SERIES = FastRead(
    sa.select(sa.func.generate_series(1, sa.bindparam("n", type_=sa.Integer)).label("n"))
)


class TestMade:
    async def test_json_values_equal_in_python_are_told_apart(
        self, autocommit: AsyncEngine
    ) -> None:
        """1, 1.0 and true are equal in Python (and hash alike); as JSON they differ."""
        calls: list[int] = []
        made = Made(lambda rows: rows[0].doc)
        made.make = _counted(made, calls)
        async with AsyncSession(autocommit) as session:
            found = [
                await _DOCUMENT.made(session, {"doc": doc}, made)
                for doc in ("[1]", "[1.0]", "[true]", '{"a": 1}', '{"a": true}', "[1]")
            ]
        assert found == [[1], [1.0], [True], {"a": 1}, {"a": True}, [1]]
        assert [type(value[0]) for value in found[:3]] == [int, float, bool]
        assert type(found[4]["a"]) is bool
        assert len(calls) == 5  # the last is the first, remembered

    async def test_memory_is_bounded_by_rows(self, autocommit: AsyncEngine) -> None:
        calls: list[int] = []
        made = Made(lambda rows: tuple(row.n for row in rows), budget=4, most=3)
        made.make = _counted(made, calls)
        async with AsyncSession(autocommit) as session:

            async def series(n: int) -> tuple[int, ...]:
                found: tuple[int, ...] = await _SERIES.made(session, {"n": n}, made)
                assert found == tuple(range(1, n + 1))
                return found

            await series(4)  # more rows than it keeps of one read: never remembered
            await series(4)
            assert (calls, made.rows) == ([4, 4], 0)
            await series(1)
            await series(2)
            await series(1)
            assert (calls[2:], made.rows) == ([1, 2], 3)
            await series(3)  # 6 rows: the least recently used (2 rows) goes
            assert made.rows == 4
            await series(1)
            await series(3)
            assert calls[4:] == [3]
            await series(2)  # made again
            assert calls[4:] == [3, 2]
            assert made.rows <= 4
