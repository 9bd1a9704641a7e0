"""Creating an MSP root and its first admin: the one way into an empty deployment."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain import access, tenants
from access_api.domain.access import Grant, GrantChange
from access_api.domain.audit import SYSTEM, AuditEvent, created
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.permissions import ADMIN_ROLE
from access_api.domain.users import SESSION_TIMEOUT_DEFAULT, TwoFactor, User, check_password
from access_api.ids import new_id
from access_api.repositories.access import AccessRepository
from access_api.repositories.audit import AuditRepository
from access_api.repositories.tenants import TenantRepository
from access_api.repositories.users import UserRepository
from access_api.services.passwords import Passwords


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    created: bool
    tenant: tenants.Tenant
    admin_email: str
    generated_password: str | None
    existing_user: bool


def normalize_email(email: str, field: str = "email") -> str:
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed([FieldError(field, "invalid_email", str(exc))]) from exc


async def bootstrap(
    session: AsyncSession,
    passwords: Passwords,
    *,
    name: str,
    domain_prefix: str,
    admin_email: str,
    admin_password: str | None,
    now: datetime,
) -> Bootstrapped:
    """Create an MSP root, its built-in roles and its first admin (admin on the root and
    everything below). Running it again for an existing prefix changes nothing."""
    tenant_repo = TenantRepository(session)
    email = normalize_email(admin_email, "admin_email")
    existing = await tenant_repo.by_prefix(domain_prefix)
    if existing is not None:
        return Bootstrapped(False, existing, email, None, existing_user=False)
    root = tenants.new_root(id=new_id(), name=name, domain_prefix=domain_prefix, now=now)
    users = UserRepository(session)
    found = await users.by_email(email)
    generated = None
    if found is None:
        if admin_password is None:
            generated = admin_password = secrets.token_urlsafe(18)
        check_password(admin_password, email=email, field="admin_password")
        user = User(
            id=new_id(),
            email=email,
            first_name="Admin",
            last_name=name,
            phone=None,
            session_timeout_minutes=SESSION_TIMEOUT_DEFAULT,
            two_factor=TwoFactor.DISABLED,
            created_at=now,
            updated_at=now,
            last_login_at=None,
        )
        await users.insert(user, await passwords.hash(admin_password))
    else:
        user = found[0]
    await tenant_repo.insert(root)
    grants = AccessRepository(session)
    await grants.create_builtin_roles(root.id, now)
    await grants.add_member(root.id, user.id, now)
    change = GrantChange(
        before=None,
        after=Grant(
            user_id=user.id,
            tenant_id=root.id,
            roles=frozenset({ADMIN_ROLE}),
            include_descendants=True,
        ),
    )
    await grants.apply([change], root_id=root.id, roles_by_key=await grants.roles(root.id), now=now)
    await AuditRepository(session).record(
        [
            AuditEvent(
                id=new_id(),
                at=now,
                actor=SYSTEM,
                root_id=root.id,
                tenant_id=root.id,
                action="tenant.created",
                target_type="tenant",
                target_id=root.id,
                changes=created(root, ("kind", "name", "domain_prefix")),
            ),
            AuditEvent(
                id=new_id(),
                at=now,
                actor=SYSTEM,
                root_id=root.id,
                tenant_id=root.id,
                action="authorization.granted",
                target_type="user",
                target_id=user.id,
                changes=access.grant_changes(change),
            ),
        ]
    )
    return Bootstrapped(True, root, user.email, generated, existing_user=found is not None)
