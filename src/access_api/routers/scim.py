"""What a user provisioned by SCIM gets in a tenant (the SCIM service itself is access_api.scim)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from access_api.dependencies import Work, requires
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.permissions import Permission
from access_api.domain.scim import ScimSettings
from access_api.errors import problem_responses
from access_api.routers.common import SCOPED_PROBLEMS, Body, api_router
from access_api.use_cases import scim

router = api_router(prefix="/v1/tenants", tags=["sso"], responses=SCOPED_PROBLEMS)

ManageSso = Annotated[Scope, requires(Permission.SSO_MANAGE)]


class ScimSettingsBody(Body):
    default_roles: list[str] = Field(default_factory=list, max_length=50)
    include_descendants: bool = False


class ScimSettingsView(BaseModel):
    default_roles: list[str] = Field(
        description="Role keys a provisioned user gets on this account"
    )
    include_descendants: bool
    endpoint: str = Field(description="The SCIM base URL to give the identity provider")

    @classmethod
    def of(cls, found: ScimSettings, endpoint: str) -> ScimSettingsView:
        return cls(
            default_roles=sorted(found.default_roles),
            include_descendants=found.include_descendants,
            endpoint=endpoint,
        )


@router.get("/{tenant_id}/scim", summary="What SCIM-provisioned users get on this account")
async def get_settings(scope: ManageSso, work: Work) -> ScimSettingsView:
    return ScimSettingsView.of(await scim.settings(work, scope), scim.endpoint(work, scope))


@router.put(
    "/{tenant_id}/scim",
    summary="Set the roles SCIM-provisioned users get on this account",
    responses=problem_responses(e.PrivilegeEscalation, e.ValidationFailed),
)
async def put_settings(body: ScimSettingsBody, scope: ManageSso, work: Work) -> ScimSettingsView:
    saved = await scim.put_settings(work, scope, body.default_roles, body.include_descendants)
    return ScimSettingsView.of(saved, scim.endpoint(work, scope))
