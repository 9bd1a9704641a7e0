"""The SCIM 2.0 service (RFC 7643/7644) at /scim/v2/tenants/{t}/: a sub-application, so its
errors are SCIM errors in application/scim+json while the API's stay RFC 9457 problems.

Payloads are scim2-models' (parsing, validation, PATCH operations, attribute selection,
discovery schemas); storage and rules are ours, through the use cases."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    Email,
    Error,
    ETag,
    Filter,
    Group,
    GroupMember,
    ListResponse,
    Meta,
    Mutability,
    Name,
    Pagination,
    Patch,
    PatchOp,
    Required,
    ResourceType,
    ResponseParameters,
    Schema,
    SCIMException,
    ScimFilter,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    User,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from access_api import errors as edge
from access_api.dependencies import CurrentCaller, Work
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.scim import MAX_COUNT, ScimUser, UserInput, is_placeholder
from access_api.routing import TransactionalRoute
from access_api.use_cases import scim
from access_api.use_cases.scim import ScimGroup

log = logging.getLogger("access_api.scim")

MEDIA_TYPE = "application/scim+json"
_SCIM_TYPES: dict[type[e.DomainError], str] = {
    e.ValidationFailed: "invalidValue",
    e.ScimUserExists: "uniqueness",
    e.EmailImmutable: "mutability",
    e.ScimGroupUnknown: "invalidValue",
    e.InvalidFilter: "invalidFilter",
    e.InvalidCursor: "invalidCursor",
}

# What the directory stores of a User and a Group: the published schemas say exactly that, so a
# client (and the conformance checker) never writes an attribute that would be dropped.
_USER_ATTRIBUTES = {"userName": None, "name": {"givenName", "familyName"}, "emails": {"value"}}
_USER_ATTRIBUTES |= {"active": None}
_GROUP_ATTRIBUTES = {"displayName": None, "members": {"value", "display", "$ref", "type"}}


class ScimResponse(JSONResponse):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), default=str).encode()


def _error(status_code: int, detail: str, scim_type: str | None = None) -> ScimResponse:
    body = Error(status=status_code, scim_type=scim_type, detail=detail)
    return ScimResponse(body.model_dump(), status_code=status_code)


# --- rendering ----------------------------------------------------------------------------


def _base(request: Request, tenant_id: UUID) -> str:
    state = request.app.state.access
    return f"{state.settings.base_url}/scim/v2/tenants/{tenant_id}"


def _version(*parts: object) -> str:
    return 'W/"' + hashlib.sha256(repr(parts).encode()).hexdigest()[:16] + '"'


def _user(u: ScimUser, base: str) -> User[Any]:
    return User(
        id=str(u.id),
        external_id=u.external_id,
        user_name=u.user_name,
        name=Name(given_name=u.first_name, family_name=u.last_name),
        emails=None if is_placeholder(u.email) else [Email(value=u.email)],
        active=u.active,
        meta=Meta(
            resource_type="User",
            created=u.created_at,
            last_modified=u.updated_at,
            location=f"{base}/Users/{u.id}",
            version=_version(u),
        ),
    )


_USER_SCHEMAS = ("urn:ietf:params:scim:schemas:core:2.0:User",)
_INSTANT = TypeAdapter(datetime)


def _user_body(u: ScimUser, base: str) -> dict[str, Any]:
    """What `_dump(_user(u, base), Context.RESOURCE_QUERY_RESPONSE)` gives, built directly:
    for the pages of Users, 100 to a page. Through scim2-models a user costs 0.13 ms of CPU
    (building the model with its validation, then its serializer walking each attribute), 13
    ms a page; this, a few us. Pages asked with attributes or excludedAttributes, and single
    users, still go through scim2-models, and a test holds the two equal
    (`tests/api/test_scim.py`)."""
    location = f"{base}/Users/{u.id}"
    body: dict[str, Any] = {"schemas": list(_USER_SCHEMAS), "id": str(u.id)}
    if u.external_id is not None:
        body["externalId"] = u.external_id
    body["meta"] = {
        "resourceType": "User",
        "created": _INSTANT.dump_python(u.created_at, mode="json"),
        "lastModified": _INSTANT.dump_python(u.updated_at, mode="json"),
        "location": location,
        "version": _version(u),
    }
    body["userName"] = u.user_name
    body["name"] = {"familyName": u.last_name, "givenName": u.first_name}
    body["active"] = u.active
    if not is_placeholder(u.email):
        body["emails"] = [{"value": u.email}]
    return body


def _group(g: ScimGroup, base: str) -> Group:
    return Group(
        id=str(g.role.id),
        display_name=g.role.key,
        members=[
            GroupMember(value=str(uid), display=email, ref=f"{base}/Users/{uid}", type="User")
            for uid, email in g.members
        ],
        meta=Meta(
            resource_type="Group",
            created=g.role.created_at,
            last_modified=g.role.updated_at,
            location=f"{base}/Groups/{g.role.id}",
            version=_version(g.role.id, g.role.updated_at, g.members),
        ),
    )


def _parameters(attributes: str | None, excluded: str | None) -> ResponseParameters[Any] | None:
    if not attributes and not excluded:
        return None
    return ResponseParameters.model_validate(
        {"attributes": attributes, "excludedAttributes": excluded}
    )


def _dump(model: Any, context: Context, parameters: Any = None) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(scim_ctx=context, response_parameters=parameters)
    return dumped


def _input(model: User[Any]) -> UserInput:
    emails = model.emails or []
    primary = next((m for m in emails if m.primary), emails[0] if emails else None)
    return UserInput(
        user_name=model.user_name or "",
        external_id=model.external_id,
        active=model.active is not False,
        email=primary.value if primary else None,
        first_name=model.name.given_name if model.name else None,
        last_name=model.name.family_name if model.name else None,
    )


async def _payload(request: Request, model: Any, context: Context) -> Any:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise _Invalid("the body is not JSON") from exc
    try:
        return model.model_validate(body, scim_ctx=context)
    except ValueError as exc:
        raise _Invalid(" ".join(str(exc).split())[:300], "invalidValue") from exc


class _Invalid(Exception):
    def __init__(self, detail: str, scim_type: str = "invalidSyntax") -> None:
        self.detail = detail
        self.scim_type = scim_type
        super().__init__(detail)


# --- discovery ----------------------------------------------------------------------------


def _trimmed(
    schema: Schema, keep: dict[str, set[str] | None], required: set[str], **overrides: Any
) -> Schema:
    """The attributes of a standard schema that the directory stores; `required` names those
    it needs (an attribute and all its sub-attributes)."""
    attributes = []
    for original in schema.attributes or []:
        if original.name not in keep:
            continue
        subs = keep[original.name]
        attribute = original
        if subs is not None and original.sub_attributes:
            attribute = original.model_copy(
                update={
                    "sub_attributes": [
                        s.model_copy(update={"required": Required.true})
                        if original.name in required
                        else s
                        for s in original.sub_attributes
                        if s.name in subs
                    ]
                }
            )
        if attribute.name in required:
            attribute = attribute.model_copy(update={"required": Required.true})
        if attribute.name in overrides:
            attribute = attribute.model_copy(update=overrides[attribute.name])
        attributes.append(attribute)
    return schema.model_copy(update={"attributes": attributes})


def _schemas(role_keys: list[str]) -> list[Schema]:
    user = _trimmed(
        User.to_schema(),
        _USER_ATTRIBUTES,
        {"userName", "name", "active"},
        emails={"mutability": Mutability.immutable},
    )
    group = _trimmed(
        Group.to_schema(),
        _GROUP_ATTRIBUTES,
        {"displayName"},
        displayName={"canonical_values": role_keys},
    )
    return [user, group]


def _with_meta(schema: Schema, base: str) -> Schema:
    return schema.model_copy(
        update={"meta": Meta(resource_type="Schema", location=f"{base}/Schemas/{schema.id}")}
    )


def _resource_types(base: str) -> list[ResourceType]:
    found = []
    for model in (User, Group):
        kind = ResourceType.from_resource(model)
        found.append(
            kind.model_copy(
                update={
                    "meta": Meta(
                        resource_type="ResourceType", location=f"{base}/ResourceTypes/{kind.id}"
                    )
                }
            )
        )
    return found


def _service_provider_config(base: str) -> ServiceProviderConfig:
    return ServiceProviderConfig(
        documentation_uri="https://github.com/",
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_COUNT),
        pagination=Pagination(
            cursor=True,
            index=True,
            default_pagination_method="index",
            default_page_size=100,
            max_page_size=MAX_COUNT,
        ),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="API key",
                description="A user API key (aak_…) as Authorization: Bearer",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{base}/ServiceProviderConfig"),
    )


# --- routes -------------------------------------------------------------------------------

router = APIRouter(prefix="/tenants/{tenant_id}", route_class=TransactionalRoute)


async def _scope(tenant_id: UUID, caller: CurrentCaller, work: Work) -> Scope:
    return await scim.authorize(work, caller, tenant_id)


Provisioner = Annotated[Scope, Depends(_scope)]


@router.get("/ServiceProviderConfig")
async def service_provider_config(request: Request, scope: Provisioner) -> ScimResponse:
    config = _service_provider_config(_base(request, scope.tenant.id))
    return ScimResponse(_dump(config, Context.RESOURCE_QUERY_RESPONSE))


@router.get("/Schemas")
async def schemas(request: Request, scope: Provisioner, work: Work) -> ScimResponse:
    base = _base(request, scope.tenant.id)
    found = [_with_meta(s, base) for s in _schemas(await scim.role_keys(work, scope))]
    page = ListResponse[Schema](
        total_results=len(found), start_index=1, items_per_page=len(found), resources=found
    )
    return ScimResponse(_dump(page, Context.RESOURCE_QUERY_RESPONSE))


@router.get("/Schemas/{schema_id}")
async def schema(request: Request, schema_id: str, scope: Provisioner, work: Work) -> ScimResponse:
    base = _base(request, scope.tenant.id)
    for found in _schemas(await scim.role_keys(work, scope)):
        if found.id == schema_id:
            return ScimResponse(_dump(_with_meta(found, base), Context.RESOURCE_QUERY_RESPONSE))
    raise e.NotFound(f"no schema {schema_id}")


@router.get("/ResourceTypes")
async def resource_types(request: Request, scope: Provisioner) -> ScimResponse:
    found = _resource_types(_base(request, scope.tenant.id))
    page = ListResponse[ResourceType](
        total_results=len(found), start_index=1, items_per_page=len(found), resources=found
    )
    return ScimResponse(_dump(page, Context.RESOURCE_QUERY_RESPONSE))


@router.get("/ResourceTypes/{type_id}")
async def resource_type(request: Request, type_id: str, scope: Provisioner) -> ScimResponse:
    for found in _resource_types(_base(request, scope.tenant.id)):
        if found.id == type_id:
            return ScimResponse(_dump(found, Context.RESOURCE_QUERY_RESPONSE))
    raise e.NotFound(f"no resource type {type_id}")


Attributes = Annotated[str | None, Query(max_length=2000)]


@router.get("/Users")
async def list_users(
    request: Request,
    scope: Provisioner,
    work: Work,
    filter: Annotated[str | None, Query(max_length=2000)] = None,
    start_index: Annotated[int, Query(alias="startIndex")] = 1,
    count: Annotated[int, Query()] = 100,
    attributes: Attributes = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes")] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> ScimResponse:
    parameters = _parameters(attributes, excluded_attributes)
    found = await scim.list_users(work, scope, _filter(filter), start_index, count, cursor)
    return _page(request, scope, found, start_index, parameters)


@router.post("/Users/.search")
async def search_users(request: Request, scope: Provisioner, work: Work) -> ScimResponse:
    """RFC 7644 §3.4.3: the same query as GET /Users, in a body."""
    search = await _payload(request, SearchRequest, Context.SEARCH_REQUEST)
    where = _filter(str(search.filter) if search.filter else None)
    start = search.start_index or 1
    found = await scim.list_users(work, scope, where, start, search.count or 100, search.cursor)
    parameters = _parameters(
        ",".join(map(str, search.attributes or [])) or None,
        ",".join(map(str, search.excluded_attributes or [])) or None,
    )
    return _page(request, scope, found, start, parameters)


@router.post("/.search")
async def search_everything(scope: Provisioner) -> ScimResponse:
    """Searching Users and Groups at once is not offered: search each endpoint."""
    return _error(501, "search /Users/.search or /Groups instead")


def _page(
    request: Request, scope: Scope, found: scim.UserPage, start: int, parameters: Any
) -> ScimResponse:
    base = _base(request, scope.tenant.id)
    if parameters is None:
        return _listed(
            User[Any],
            [],
            None,
            total=found.total,
            start=max(start, 1),
            next_cursor=found.next_cursor,
            bodies=[_user_body(u, base) for u in found.users],
        )
    return _listed(
        User[Any],
        [_user(u, base) for u in found.users],
        parameters,
        total=found.total,
        start=max(start, 1),
        next_cursor=found.next_cursor,
    )


def _listed(
    kind: Any,
    resources: Sequence[User[Any] | Group],
    parameters: Any,
    *,
    total: int,
    start: int = 1,
    next_cursor: str | None = None,
    bodies: list[dict[str, Any]] | None = None,
) -> ScimResponse:
    """A ListResponse. Each resource is dumped once, as a query response (attributes and
    excludedAttributes applied), unless given dumped (bodies); the envelope is dumped without
    them, then given them."""
    if bodies is None:
        bodies = [_dump(r, Context.RESOURCE_QUERY_RESPONSE, parameters) for r in resources]
    page = ListResponse[kind](
        total_results=total,
        start_index=start,
        items_per_page=len(bodies),
        next_cursor=next_cursor,
        resources=None,
    )
    body = _dump(page, Context.SEARCH_RESPONSE)
    body["Resources"] = bodies
    return ScimResponse(body)


def _filter(text: str | None) -> Any:
    if not text:
        return None
    try:
        return ScimFilter(text).ast
    except Exception as exc:
        raise e.InvalidFilter(str(exc).splitlines()[0][:300]) from exc


@router.post("/Users", status_code=status.HTTP_201_CREATED)
async def create_user(request: Request, scope: Provisioner, work: Work) -> ScimResponse:
    model = await _payload(request, User[Any], Context.RESOURCE_CREATION_REQUEST)
    created = _user(
        await scim.create_user(work, scope, _input(model)), _base(request, scope.tenant.id)
    )
    return _located(created, Context.RESOURCE_CREATION_RESPONSE, status.HTTP_201_CREATED)


def _located(model: User[Any] | Group, context: Context, code: int = 200) -> ScimResponse:
    headers = {"Location": model.meta.location or ""} if model.meta else {}
    if model.meta and model.meta.version:
        headers["ETag"] = model.meta.version
    return ScimResponse(_dump(model, context), status_code=code, headers=headers)


@router.get("/Users/{user_id}")
async def get_user(
    request: Request,
    user_id: UUID,
    scope: Provisioner,
    work: Work,
    attributes: Attributes = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes")] = None,
) -> ScimResponse:
    found = _user(await scim.get_user(work, scope, user_id), _base(request, scope.tenant.id))
    parameters = _parameters(attributes, excluded_attributes)
    return ScimResponse(_dump(found, Context.RESOURCE_QUERY_RESPONSE, parameters))


@router.put("/Users/{user_id}")
async def replace_user(
    request: Request, user_id: UUID, scope: Provisioner, work: Work
) -> ScimResponse:
    model = await _payload(request, User[Any], Context.RESOURCE_REPLACEMENT_REQUEST)
    replaced = await scim.replace_user(work, scope, user_id, _input(model))
    return _located(
        _user(replaced, _base(request, scope.tenant.id)), Context.RESOURCE_REPLACEMENT_RESPONSE
    )


@router.patch("/Users/{user_id}")
async def patch_user(
    request: Request, user_id: UUID, scope: Provisioner, work: Work
) -> ScimResponse:
    operations = await _payload(request, PatchOp[User[Any]], Context.RESOURCE_PATCH_REQUEST)
    base = _base(request, scope.tenant.id)

    def apply(current: ScimUser) -> UserInput:
        model = _user(current, base)
        operations.patch(model)
        return _input(model)

    patched = await scim.patch_user(work, scope, user_id, apply)
    return _located(_user(patched, base), Context.RESOURCE_PATCH_RESPONSE)


@router.delete("/Users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: UUID, scope: Provisioner, work: Work) -> Response:
    await scim.delete_user(work, scope, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/Groups")
async def list_groups(
    request: Request,
    scope: Provisioner,
    work: Work,
    filter: Annotated[str | None, Query(max_length=2000)] = None,
    attributes: Attributes = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes")] = None,
) -> ScimResponse:
    base = _base(request, scope.tenant.id)
    groups = [_group(g, base) for g in await scim.list_groups(work, scope)]
    if filter:
        matcher: ScimFilter[Group] = ScimFilter(filter)
        groups = [g for g in groups if matcher.match(g)]
    parameters = _parameters(attributes, excluded_attributes)
    return _listed(Group, groups, parameters, total=len(groups))


def _member_ids(model: Group) -> list[UUID]:
    try:
        return [UUID(str(m.value)) for m in model.members or []]
    except ValueError as exc:
        raise e.NotFound("a member is not a user of this directory") from exc


@router.post("/Groups", status_code=status.HTTP_201_CREATED)
async def create_group(request: Request, scope: Provisioner, work: Work) -> ScimResponse:
    model = await _payload(request, Group, Context.RESOURCE_CREATION_REQUEST)
    made = await scim.create_group(work, scope, model.display_name or "", _member_ids(model))
    return _located(
        _group(made, _base(request, scope.tenant.id)), Context.RESOURCE_CREATION_RESPONSE, 201
    )


@router.get("/Groups/{group_id}")
async def get_group(
    request: Request, group_id: UUID, scope: Provisioner, work: Work
) -> ScimResponse:
    found = _group(await scim.get_group(work, scope, group_id), _base(request, scope.tenant.id))
    return ScimResponse(_dump(found, Context.RESOURCE_QUERY_RESPONSE))


@router.put("/Groups/{group_id}")
async def replace_group(
    request: Request, group_id: UUID, scope: Provisioner, work: Work
) -> ScimResponse:
    model = await _payload(request, Group, Context.RESOURCE_REPLACEMENT_REQUEST)
    done = await scim.set_members(work, scope, group_id, _member_ids(model))
    return _located(
        _group(done, _base(request, scope.tenant.id)), Context.RESOURCE_REPLACEMENT_RESPONSE
    )


@router.patch("/Groups/{group_id}")
async def patch_group(
    request: Request, group_id: UUID, scope: Provisioner, work: Work
) -> ScimResponse:
    operations = await _payload(request, PatchOp[Group], Context.RESOURCE_PATCH_REQUEST)
    base = _base(request, scope.tenant.id)
    model = _group(await scim.get_group(work, scope, group_id), base)
    operations.patch(model)
    done = await scim.set_members(work, scope, group_id, _member_ids(model))
    return _located(_group(done, base), Context.RESOURCE_PATCH_RESPONSE)


@router.delete("/Groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(group_id: UUID, scope: Provisioner, work: Work) -> Response:
    """A role cannot be deleted through SCIM: deleting its group empties it on t."""
    await scim.set_members(work, scope, group_id, [])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- the application and its errors -------------------------------------------------------


def create(parent: FastAPI) -> FastAPI:
    """The SCIM sub-application, sharing the parent's state (database, keyring, clock)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state = parent.state
    app.include_router(router)

    async def on_domain(request: Request, error: Exception) -> ScimResponse:
        assert isinstance(error, e.DomainError)  # noqa: S101 - registered for this family
        shown = error.shared or error.errors[0].error if isinstance(error, e.BulkRefused) else error
        # SCIM has no 422: a request it refuses for its content is a 400 with a scimType.
        code = edge.STATUS.get(type(shown), 400)
        code = 400 if code == 422 else code
        return _error(code, shown.detail, _SCIM_TYPES.get(type(shown)))

    async def on_scim(request: Request, error: Exception) -> ScimResponse:
        assert isinstance(error, SCIMException)  # noqa: S101
        found = error.to_error()
        return ScimResponse(found.model_dump(), status_code=int(found.status or 400))

    async def on_invalid(request: Request, error: Exception) -> ScimResponse:
        if isinstance(error, _Invalid):
            return _error(400, error.detail, error.scim_type)
        if isinstance(error, RequestValidationError | ValidationError):
            first = error.errors()[0] if error.errors() else {"msg": "invalid request"}
            where = ".".join(str(p) for p in first.get("loc", ()))
            return _error(400, f"{where}: {first.get('msg')}", "invalidValue")
        raise error

    async def on_http(request: Request, error: Exception) -> ScimResponse:
        assert isinstance(error, StarletteHTTPException)  # noqa: S101
        return _error(error.status_code, str(error.detail))

    app.add_exception_handler(e.DomainError, on_domain)
    app.add_exception_handler(SCIMException, on_scim)
    app.add_exception_handler(_Invalid, on_invalid)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(ValidationError, on_invalid)
    app.add_exception_handler(StarletteHTTPException, on_http)
    return app
