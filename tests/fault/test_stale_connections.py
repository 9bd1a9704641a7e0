"""Pooled connections are not pinged when taken: a dead one is found by its error, and the
request runs once more on a fresh connection instead of failing."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.fault.proxy import FaultProxy
from tests.fault.test_database_outage import TIMEOUTS, _through
from tests.live import PASSWORD, live_client, live_msp


class TestStaleConnections:
    async def test_connections_cut_while_idle_do_not_fail_requests(
        self, live_database: str
    ) -> None:
        target = urlsplit(live_database)
        proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 5432)
        await proxy.start()
        try:
            async with live_client(_through(proxy, live_database), **TIMEOUTS) as client:
                root, headers = await live_msp(client, "stale-msp")
                path = f"/v1/tenants/{root}"
                assert (await client.get(path, headers=headers)).status_code == 200

                # The server went away and came back while the pool sat idle (a restart, a
                # pooler or a firewall dropping idle connections).
                await proxy.down()
                await proxy.heal()
                response = await client.get(path, headers=headers)
                assert response.status_code == 200, response.text

                await proxy.down()
                await proxy.heal()
                renamed = await client.patch(
                    path, json={"name": "Stale Msp Renamed"}, headers=headers
                )
                assert renamed.status_code == 200, renamed.text
                assert (await client.get(path, headers=headers)).json()["name"] == (
                    "Stale Msp Renamed"
                )

                # A login: its read and its one write skip SQLAlchemy's execution (FastRead,
                # FastWrite), and still find a dead connection by its error.
                await proxy.down()
                await proxy.heal()
                login = await client.post(
                    "/v1/auth/login",
                    json={"email": "admin@stale-msp.example.com", "password": PASSWORD},
                )
                assert login.status_code == 200, login.text
                token = {"Authorization": f"Bearer {login.json()['access_token']}"}
                assert (await client.get("/v1/me", headers=token)).status_code == 200
        finally:
            await proxy.close()
