"""What every router shares: strict bodies, list pages, ETags and bulk id lists."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from access_api.domain import errors as e
from access_api.domain.errors import PreconditionFailed
from access_api.domain.users import TwoFactor, User
from access_api.errors import problem_responses
from access_api.pagination import Cursors, Page
from access_api.routing import TransactionalRoute
from access_api.services import phones
from access_api.use_cases.auth import NewSession

T = TypeVar("T")

MAX_BULK_IDS = 1000
# Items in one bulk body (grants to set, users to name): the same bound as ids.
MAX_BULK_ITEMS = MAX_BULK_IDS

# Every route that needs a credential and a tenant can answer these.
SCOPED_PROBLEMS = problem_responses(
    e.Unauthenticated,
    e.NoAccess,
    e.Forbidden,
    e.TenantDisabled,
    e.TwoFactorRequired,
    e.IpNotAllowed,
    e.NotFound,
    e.ValidationFailed,
)
AUTHENTICATED_PROBLEMS = problem_responses(e.Unauthenticated, e.ValidationFailed)


def api_router(**kwargs: Any) -> APIRouter:
    """A router whose routes run in one transaction each (see routing.TransactionalRoute)."""
    return APIRouter(route_class=TransactionalRoute, **kwargs)


class Body(BaseModel):
    """A request body: a field the endpoint does not accept is refused, never ignored."""

    model_config = ConfigDict(extra="forbid")


def _phone(value: str) -> str:
    try:
        return phones.normalize_phone(value)
    except ValueError as error:
        raise PydanticCustomError("invalid_phone", str(error)) from error


Phone = Annotated[
    str,
    AfterValidator(_phone),
    WithJsonSchema(
        {
            "type": "string",
            "format": "phone",
            "maxLength": 40,
            "description": "International form (+, country code, number; spaces allowed), "
            'kept in E.164; "" clears it',
            "examples": [phones.EXAMPLE],
        }
    ),
]
"""A phone number in a request body: validated and normalized to E.164."""


class IdList(Body):
    ids: list[UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


class ListPage(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as cursor to get the next page; null on the last page"
    )


Limit = Annotated[int, Query(ge=1, le=200, description="Items per page")]
Cursor = Annotated[str | None, Query(description="next_cursor from the previous page")]


# A session just started (login, invitation accept): its token is shown once, here.
class Token(BaseModel):
    access_token: str = Field(description="Send as Authorization: Bearer <access_token>")
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    expires_at: datetime = Field(
        description="When the session ends if left idle; each use extends it, up to the "
        "session's absolute lifetime"
    )

    @classmethod
    def of(cls, started: NewSession) -> Token:
        return cls(access_token=started.token, expires_at=started.expires_at)


def page_of(
    page: Page[Any], render: Callable[[Any], T], cursors: Cursors, sort: str
) -> ListPage[T]:
    """A repository page as the API's list: rendered items, and the cursor to the next page."""
    return ListPage(
        items=[render(item) for item in page.items],
        next_cursor=cursors.encode(sort, page.next_after),
    )


def split_sort(sort: str) -> tuple[str, bool]:
    """'-name' sorts by name, descending."""
    return (sort[1:], True) if sort.startswith("-") else (sort, False)


def etag_of(model: BaseModel) -> str:
    """A strong ETag: the hash of the representation, so it changes whenever what a client
    sees changes, whatever caused it."""
    return _etag(model.model_dump_json().encode())


def _etag(representation: bytes) -> str:
    return f'"{hashlib.sha256(representation).hexdigest()[:32]}"'


def tagged(model: BaseModel) -> Response:
    """The model as the JSON answer, with its ETag: serialized once for both (FastAPI would
    serialize the returned model again). The bytes are those FastAPI sends for it (pydantic's
    JSON, no aliases here); the route declares the model as its response_model."""
    representation = model.model_dump_json().encode()
    return Response(
        representation, media_type="application/json", headers={"ETag": _etag(representation)}
    )


def rendered(model: BaseModel) -> Response:
    """The model as the JSON answer, the bytes FastAPI would send for it (as `tagged`), for a
    route that renders its own answer (routing.TransactionalRoute._solved_directly); the
    route declares the model as its response_model."""
    return Response(model.model_dump_json().encode(), media_type="application/json")


def check_if_match(request: Request, current: BaseModel) -> None:
    """PATCH with If-Match only applies to the representation the client last read."""
    header = request.headers.get("if-match")
    if header is None:
        return
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if "*" not in tags and etag_of(current) not in tags:
        raise PreconditionFailed()


def same_named(model: type[BaseModel], source: object) -> dict[str, Any]:
    """A response model's fields, read from a domain object whose attributes bear the same
    names (a user, a tenant): to build the model, or a model that extends it, in one step."""
    return {name: getattr(source, name) for name in _field_names(model)}


@cache
def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    # Once per model: `model_fields` is a descriptor that checks, on every read, whether it
    # was read on an instance (deprecated) or on the class.
    return tuple(model.model_fields)


class UserOut(BaseModel):
    id: UUID
    email: str
    first_name: str
    last_name: str
    phone: str | None
    session_timeout_minutes: int
    two_factor: TwoFactor
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(**same_named(UserOut, user))
