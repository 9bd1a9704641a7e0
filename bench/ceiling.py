"""The ceiling: a bare FastAPI app doing one asyncpg query per request, on the same database.

Served by uvicorn exactly like access-api, so the ratio measures what access-api adds on top of
the framework and one round trip: authentication, the permission decision, rendering.

`POST /login` is the login ceiling: the least any FastAPI login can do, one query for the
stored hash and its verification on the same hashing threads at the same parameters as
access-api's, answering a random token. It keeps nothing (no session, no throttle, no audit
event): a login storm against it shows what two cores leave for hashing once HTTP and one
round trip are paid, the bound a real login's ratio to the hash ceiling cannot pass.
"""

from __future__ import annotations

import asyncio
import os
import secrets
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
    yield
    await app.state.pool.close()


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
    async with request.app.state.pool.acquire() as connection:
        stored = await connection.fetchval(
            "SELECT password_hash FROM users WHERE email_key = $1", email_key(body.email)
        )
    matched = stored is not None and await asyncio.get_running_loop().run_in_executor(
        _pool(), _HASHER.verify, body.password, stored
    )
    if not matched:
        raise HTTPException(401)
    return {"access_token": secrets.token_urlsafe(32), "token_type": "bearer"}
