"""Security policy per tenant (SPEC §5.2): what a tenant sets, and what is in force there."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Response
from pydantic import BaseModel, Field

from access_api.dependencies import Work, requires
from access_api.domain import errors as e
from access_api.domain import policies as rules
from access_api.domain.access import Scope
from access_api.domain.permissions import Permission
from access_api.domain.policies import Effective, SecurityPolicy, Sourced
from access_api.errors import problem_responses
from access_api.routers.common import SCOPED_PROBLEMS, Body, api_router, tagged
from access_api.use_cases import policies

router = api_router(prefix="/v1/tenants", tags=["security policy"], responses=SCOPED_PROBLEMS)

ReadTenant = Annotated[Scope, requires(Permission.TENANTS_READ)]
WritePolicies = Annotated[Scope, requires(Permission.POLICIES_WRITE)]


class PolicyIn(Body):
    """The whole policy of this account; a field left out or null inherits from above."""

    require_two_factor: bool | None = Field(
        default=None, description="true: every user needs a second factor"
    )
    allowed_ip_ranges: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=rules.MAX_IP_RANGES,
        description="CIDR blocks, IPv4 or IPv6; calls must come from inside one of them",
    )
    max_session_timeout_minutes: int | None = Field(
        default=None,
        description=f"{rules.SESSION_TIMEOUT_RANGE[0]}..{rules.SESSION_TIMEOUT_RANGE[1]}",
    )
    password_min_length: int | None = Field(
        default=None,
        description=f"{rules.PASSWORD_LENGTH_RANGE[0]}..{rules.PASSWORD_LENGTH_RANGE[1]}",
    )


class PolicyOut(BaseModel):
    """What this account sets itself; null inherits."""

    require_two_factor: bool | None
    allowed_ip_ranges: list[str] | None
    max_session_timeout_minutes: int | None
    password_min_length: int | None

    @classmethod
    def of(cls, policy: SecurityPolicy) -> PolicyOut:
        return cls.model_validate(policy.as_dict())


class FlagInForce(BaseModel):
    value: bool
    tenant_id: UUID | None = Field(description="The account whose policy sets it; null: default")


class NumberInForce(BaseModel):
    value: int | None
    tenant_id: UUID | None = Field(description="The account whose policy sets it; null: default")

    @classmethod
    def of(cls, sourced: Sourced | None, default: int | None) -> NumberInForce:
        if sourced is None:
            return cls(value=default, tenant_id=None)
        return cls(value=sourced.value, tenant_id=sourced.tenant_id)


class RangesInForce(BaseModel):
    ranges: list[str]
    tenant_id: UUID = Field(description="The account whose policy sets these ranges")


class EffectiveOut(BaseModel):
    """The policy in force here: the strictest along the chain from the root down."""

    tenant_id: UUID
    require_two_factor: FlagInForce
    allowed_ip_ranges: list[RangesInForce] = Field(
        description="Every level that sets ranges; an address must be inside each; "
        "empty: any address"
    )
    max_session_timeout_minutes: NumberInForce
    password_min_length: NumberInForce

    @classmethod
    def of(cls, tenant_id: UUID, policy: Effective) -> EffectiveOut:
        return cls(
            tenant_id=tenant_id,
            require_two_factor=FlagInForce(
                value=policy.two_factor_required_by is not None,
                tenant_id=policy.two_factor_required_by,
            ),
            allowed_ip_ranges=[
                RangesInForce(ranges=[str(n) for n in level.networks], tenant_id=level.tenant_id)
                for level in policy.ip_ranges
            ],
            max_session_timeout_minutes=NumberInForce.of(policy.max_session_timeout, None),
            password_min_length=NumberInForce.of(
                policy.password_min_length, rules.required_password_length(())
            ),
        )


@router.get(
    "/{tenant_id}/security-policy",
    summary="What this account's security policy sets",
    response_model=PolicyOut,
)
async def get_policy(scope: ReadTenant, work: Work) -> Response:
    return tagged(PolicyOut.of(await policies.get(work, scope)))


@router.put(
    "/{tenant_id}/security-policy",
    summary="Set this account's security policy (it applies here and to every account below)",
    responses=problem_responses(e.WouldLockYouOut, e.ValidationFailed),
)
async def put_policy(body: PolicyIn, scope: WritePolicies, work: Work) -> PolicyOut:
    return PolicyOut.of(await policies.put(work, scope, **body.model_dump()))


@router.get(
    "/{tenant_id}/security-policy/effective",
    summary="The security policy in force here, each value with the account it comes from",
)
async def get_effective_policy(scope: ReadTenant, work: Work) -> EffectiveOut:
    return EffectiveOut.of(scope.tenant.id, await policies.effective(work, scope))
