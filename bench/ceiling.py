"""The ceiling: a bare FastAPI app doing one asyncpg query per request, on the same database.

Served by uvicorn exactly like access-api, so the ratio measures what access-api adds on top of
the framework and one round trip: authentication, the permission decision, rendering.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request

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
