"""Two server processes behind PgBouncer in transaction pooling mode behave as one.

The test starts PgBouncer itself (Debian package `pgbouncer`) on a free loopback port with a
config it writes, and two real `access-api serve` processes reaching a migrated database of
the test's own through it. PgBouncer gets fewer server connections than the two processes have
clients, so every transaction may land on any server connection: a statement prepared in one
and looked up in the next would fail (`ACCESS_API_DB_POOLER=transaction` prevents that).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.bootstrap import bootstrap, offline_state
from access_api.db import Database
from access_api.domain.invitations import Offer
from access_api.repositories.grants import GrantRepository
from access_api.repositories.orm import outbox, tenants
from access_api.services.clock import SystemClock
from access_api.services.passwords import Passwords
from access_api.settings import Settings
from access_api.use_cases import Work
from tests.conftest import REQUIRE_POSTGRES, ROOT, TEST_SECRET, postgres_database, settings_for
from tests.live import join_in
from tests.mail import PUBLIC_URL, SmtpServer
from tests.people import new_person

pytestmark = pytest.mark.multiprocess

PASSWORD = "correct horse battery staple"
WRONG = "wrong password"
# The database's own settings stand in for the startup parameters PgBouncer does not pass on.
DATABASE_SETTINGS = {
    "statement_timeout": "5s",
    "lock_timeout": "5s",
    "idle_in_transaction_session_timeout": "30s",
    "jit": "off",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not listening on {port}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def pgbouncer(target_host: str, target_port: int) -> Iterator[tuple[int, Path]]:
    """PgBouncer on a free loopback port in transaction mode, trusting local users (as the
    local PostgreSQL does). It refuses to run as root: then it is started as `postgres`."""
    program = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(program).exists():
        reason = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    directory = Path(tempfile.mkdtemp(prefix="access-api-pgbouncer-"))
    directory.chmod(0o755)  # readable by the unprivileged user it runs as
    port = _free_port()
    users = directory / "userlist.txt"
    users.write_text('"postgres" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={target_host} port={target_port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {users}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 200\n"
        # Fewer server connections than the two processes hold: transactions share them.
        "default_pool_size = 3\n"
        "reserve_pool_size = 0\n"
        # What a pooled connection prepared is dropped when it changes hands.
        "server_reset_query = DISCARD ALL\n"
        "server_reset_query_always = 1\n"
        "ignore_startup_parameters = extra_float_digits\n"
    )
    for path in (users, config):
        path.chmod(0o644)
    argv = [program]
    if os.geteuid() == 0:
        argv += ["-u", "postgres"]
    log = directory / "pgbouncer.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the packaged binary, our config
            [*argv, str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_port(port, process, log)
        yield port, log
    finally:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def server(name: str, env: dict[str, str], directory: Path) -> Iterator[tuple[str, Path]]:
    """`access-api serve` in a process of its own; yields its base URL and its log."""
    port = _free_port()
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, our command
            [sys.executable, "-m", "access_api.cli", "serve", "--port", str(port)],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not get ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base, log
    finally:
        _stop(process)


@dataclass
class Cluster:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    logs: list[Path]
    database: Database  # direct, not through the pooler: to look at what was stored
    smtp: SmtpServer
    settings: Settings

    async def msp(self, prefix: str) -> UUID:
        async with self.database.session() as session:
            result = await bootstrap(
                self.work(session),
                name=prefix.title(),
                domain_prefix=prefix,
                admin_email=f"admin@{prefix}.example.com",
                admin_password=PASSWORD,
            )
            await session.commit()
        return result.tenant.id

    async def second_admin(self, root: UUID, email: str) -> UUID:
        now = SystemClock().now()
        user = new_person(email, now, first_name="Second", last_name="Admin")
        admin = [Offer(tenant_id=root, roles=frozenset({"admin"}), include_descendants=True)]
        async with self.database.session() as session:
            await join_in(self.work(session), user, root, admin, Passwords())
            await session.commit()
        return user.id

    async def admins(self, root: UUID) -> frozenset[UUID]:
        async with self.database.session() as session:
            return await GrantRepository(session).root_admins(root, SystemClock().now())

    def work(self, session: AsyncSession) -> Work:
        return Work.over(session, offline_state(self.settings, self.database))


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
async def cluster(smtp_server: SmtpServer) -> AsyncIterator[Cluster]:
    async with postgres_database() as url:
        direct = urlsplit(url)
        name = direct.path.lstrip("/")
        database = Database.connect(settings_for(url))
        async with database.engine.connect() as connection:
            for setting, value in DATABASE_SETTINGS.items():
                await connection.exec_driver_sql(
                    f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'"
                )
            await connection.commit()
        with pgbouncer(direct.hostname or "127.0.0.1", direct.port or 5432) as (port, bouncer):
            env = {
                "ACCESS_API_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{name}",
                "ACCESS_API_DB_POOLER": "transaction",
                "ACCESS_API_DB_POOL_SIZE": "4",
                "ACCESS_API_SECRET_KEY": TEST_SECRET,
                "ACCESS_API_PUBLIC_URL": PUBLIC_URL,
                "ACCESS_API_SMTP_URL": smtp_server.url,
                "ACCESS_API_MAIL_POLL_SECONDS": "0.2",
            }
            directory = bouncer.parent
            with (
                server("a", env, directory) as (a, a_log),
                server("b", env, directory) as (b, b_log),
            ):
                async with (
                    httpx.AsyncClient(base_url=a, timeout=30) as client_a,
                    httpx.AsyncClient(base_url=b, timeout=30) as client_b,
                ):
                    logs = [a_log, b_log, bouncer]
                    yield Cluster(
                        client_a, client_b, logs, database, smtp_server, settings_for(url)
                    )
                texts = {path.name: path.read_text() for path in (a_log, b_log, bouncer)}
        await database.dispose()
    for name, text in texts.items():
        assert "prepared statement" not in text, f"{name}:\n{text[-3000:]}"
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"


class TestTwoProcessesBehindPgBouncer:
    async def test_a_session_started_on_one_ends_on_both(self, cluster: Cluster) -> None:
        await cluster.msp("pool-sessions")
        headers = await login(cluster.a, "admin@pool-sessions.example.com")
        for client in (cluster.b, cluster.a, cluster.b):
            response = await client.get("/v1/me", headers=headers)
            assert response.status_code == 200, response.text
        assert (await cluster.a.post("/v1/auth/logout", headers=headers)).status_code == 204
        for client in (cluster.b, cluster.a):
            refused = await client.get("/v1/me", headers=headers)
            assert refused.status_code == 401, refused.text

    async def test_failures_split_over_both_lock_the_account(self, cluster: Cluster) -> None:
        await cluster.msp("pool-throttle")
        email = "admin@pool-throttle.example.com"
        for i in range(5):  # the account's limit, counted in the database by both
            client = cluster.a if i % 2 == 0 else cluster.b
            failed = await client.post("/v1/auth/login", json={"email": email, "password": WRONG})
            assert failed.status_code == 401, failed.text
        for client in (cluster.b, cluster.a):
            right = {"email": email, "password": PASSWORD}
            locked = await client.post("/v1/auth/login", json=right)
            assert locked.status_code == 429, locked.text
            assert locked.json()["code"] == "rate_limited"

    async def test_an_idempotency_key_replays_on_the_other(self, cluster: Cluster) -> None:
        root = await cluster.msp("pool-idem")
        headers = await login(cluster.a, "admin@pool-idem.example.com")
        body = {"kind": "client", "name": "Once", "domain_prefix": "pool-idem-once"}
        path = f"/v1/tenants/{root}/clients"
        keyed = {**headers, "Idempotency-Key": "pool-one"}
        first = await cluster.a.post(path, json=body, headers=keyed)
        assert first.status_code == 201, first.text
        again = await cluster.b.post(path, json=body, headers=keyed)
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]

        body = {"kind": "client", "name": "Storm", "domain_prefix": "pool-idem-storm"}
        stormed = {**headers, "Idempotency-Key": "pool-storm"}
        both = (cluster.a, cluster.b) * 3
        responses = await asyncio.gather(
            *(client.post(path, json=body, headers=stormed) for client in both)
        )
        assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 5
        async with cluster.database.session() as session:
            count = await session.scalar(
                sa.select(sa.func.count())
                .select_from(tenants)
                .where(tenants.c.domain_prefix.in_(["pool-idem-once", "pool-idem-storm"]))
            )
        assert count == 2

    async def test_parallel_demotions_across_both_leave_one_admin(self, cluster: Cluster) -> None:
        outcomes: Counter[int] = Counter()
        for round_ in range(4):
            prefix = f"pool-admins-{round_}"
            root = await cluster.msp(prefix)
            first = await login(cluster.a, f"admin@{prefix}.example.com")
            first_id = (await cluster.a.get("/v1/me", headers=first)).json()["id"]
            second_id = await cluster.second_admin(root, f"second@{prefix}.example.com")
            second = await login(cluster.b, f"second@{prefix}.example.com")
            read_only = {"items": [{"tenant_id": str(root), "roles": ["read_only"]}]}
            responses = await asyncio.gather(
                cluster.a.put(
                    f"/v1/tenants/{root}/users/{second_id}/authorizations",
                    json=read_only,
                    headers=first,
                ),
                cluster.b.put(
                    f"/v1/tenants/{root}/users/{first_id}/authorizations",
                    json=read_only,
                    headers=second,
                ),
            )
            statuses = sorted(r.status_code for r in responses)
            assert 500 not in statuses, [r.text for r in responses]
            assert statuses.count(200) == 1, [r.text for r in responses]
            outcomes.update(statuses)
            assert len(await cluster.admins(root)) == 1

    async def test_mail_queued_on_one_is_delivered_once_by_both(self, cluster: Cluster) -> None:
        root = await cluster.msp("pool-mail")
        headers = await login(cluster.a, "admin@pool-mail.example.com")
        inbox = cluster.smtp.inbox
        inbox.clear()
        inbox.delay = 0.05  # slow enough that the other process's poll finds work too
        emails = [f"u{i:02d}@pool-mail.example.com" for i in range(30)]
        response = await cluster.a.post(
            f"/v1/tenants/{root}/invitations",
            json={"emails": emails, "authorizations": [{"roles": ["read_only"]}]},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        await inbox.arrived(30, within=30)
        await asyncio.sleep(1)  # a second delivery of any of them would show up by now
        async with cluster.database.session() as session:
            ids = set((await session.execute(sa.select(outbox.c.message_id))).scalars())
        assert len(ids) == 30
        assert inbox.count_by_message_id() == Counter(dict.fromkeys(ids, 1))
        a_log, b_log = (path.read_text() for path in cluster.logs[:2])
        delivered = [log.count("delivered to") for log in (a_log, b_log)]
        assert sum(delivered) == 30, delivered
        assert all(delivered), f"one process delivered everything: {delivered}"
