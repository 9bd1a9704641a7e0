"""The problem catalog: what each problem `type` (/problems/{code}) means."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from access_api.domain import errors as e
from access_api.errors import EDGE_PROBLEMS, STATUS, problem_responses

router = APIRouter(prefix="/problems", tags=["operations"])


class ProblemType(BaseModel):
    code: str
    status: int
    title: str


def _catalog() -> dict[str, ProblemType]:
    catalog = {
        cls.code: ProblemType(code=cls.code, status=status, title=cls.title)
        for cls, status in STATUS.items()
    }
    for code, (status, title) in EDGE_PROBLEMS.items():
        catalog[code] = ProblemType(code=code, status=status, title=title)
    return dict(sorted(catalog.items()))


CATALOG = _catalog()


@router.get("", summary="Every problem code this API answers with")
async def list_problem_types() -> list[ProblemType]:
    return list(CATALOG.values())


@router.get("/{code}", summary="One problem code", responses=problem_responses(e.NotFound))
async def get_problem_type(code: str) -> ProblemType:
    if code not in CATALOG:
        raise e.NotFound(f"no problem code {code!r}")
    return CATALOG[code]
