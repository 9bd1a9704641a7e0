"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from access_api.errors import EDGE_PROBLEMS, PROBLEM_JSON, problem, unavailable_problem
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
    summary="Readiness: the database answers and its schema is migrated to this release",
    response_model=Health,
    responses={
        503: {
            "description": "Problem: `database_unavailable`, `schema_behind`",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    },
)
async def readyz(request: Request) -> Response | Health:
    state: AppState = request.app.state.access
    if not await state.database.ping(READINESS_TIMEOUT_SECONDS):
        return unavailable_problem(request)
    if not await state.database.schema_is_current():
        # Not ready rather than serving 503s: run `access-api migrate`, then it turns ready.
        status, title = EDGE_PROBLEMS["schema_behind"]
        return problem(
            request,
            status=status,
            code="schema_behind",
            title=title,
            detail="The database schema is behind this release: run `access-api migrate`",
            headers={"Retry-After": "5"},
        )
    return Health(status="ready")
