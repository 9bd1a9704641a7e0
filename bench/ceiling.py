"""The ceiling: a bare FastAPI app doing one asyncpg query per request, on the same database.

Served by uvicorn exactly like access-api, so the ratio measures what access-api adds on top of
the framework and one round trip: authentication, the permission decision, rendering.

`POST /login` is the login ceiling: the least a FastAPI login can do, one query for the user
and the stored hash, its verification on the same hashing threads at the same parameters as
access-api's, and the session it answers kept (one insert into access-api's own `sessions`
table, committed: a login whose session were not kept would be no login). No throttle, no
audit event, no connection reset between uses. A login storm against it shows what two cores
leave for hashing once HTTP, two round trips and a commit are paid: the bound a real login's
ratio to the hash ceiling cannot pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from access_api.domain.users import email_key
from access_api.services.passwords import _HASHER, _pool

DSN = os.environ["BENCH_CEILING_DSN"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(DSN, min_size=2, max_size=10)
    app.state.logins = await asyncpg.create_pool(DSN, min_size=2, max_size=10, reset=_kept)
    yield
    await app.state.logins.close()
    await app.state.pool.close()


async def _kept(connection: asyncpg.Connection) -> None:
    """A connection goes back to the login pool as it is: no reset round trip."""


app = FastAPI(lifespan=lifespan)


@app.get("/one-query")
async def one_query(request: Request) -> dict[str, Any]:
    async with request.app.state.pool.acquire() as connection:
        row = await connection.fetchrow(
            "SELECT id, email, first_name, last_name FROM users ORDER BY id LIMIT 1"
        )
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "name": [row["first_name"], row["last_name"]],
    }


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """What a login storm's probe asks, as access-api's /healthz answers it."""
    return {"status": "ok"}


class Login(BaseModel):
    email: str
    password: str


@app.post("/login")
async def login(body: Login, request: Request) -> dict[str, str]:
    logins = request.app.state.logins
    async with logins.acquire() as connection:
        user = await connection.fetchrow(
            "SELECT id, password_hash FROM users WHERE email_key = $1", email_key(body.email)
        )
    matched = user is not None and await asyncio.get_running_loop().run_in_executor(
        _pool(), _HASHER.verify, body.password, user["password_hash"]
    )
    if not matched:
        raise HTTPException(401)
    token = secrets.token_urlsafe(32)
    async with logins.acquire() as connection:
        await connection.execute(
            "INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at)"
            " VALUES ($1, $2, $3, now(), now())",
            uuid.uuid4(),
            user["id"],
            hashlib.sha256(token.encode()).hexdigest(),
        )
    return {"access_token": token, "token_type": "bearer"}
