"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from access_api.errors import PROBLEM_JSON, unavailable_problem
from access_api.state import AppState

router = APIRouter(tags=["operations"])

READINESS_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers",
    response_model=Health,
    responses={
        503: {
            "description": "Problem: `database_unavailable`",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    },
)
async def readyz(request: Request) -> Response | Health:
    state: AppState = request.app.state.access
    if await state.database.ping(READINESS_TIMEOUT_SECONDS):
        return Health(status="ready")
    return unavailable_problem(request)
