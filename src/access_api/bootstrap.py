"""Creating an MSP root and its first admin: the one way into an empty deployment."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from access_api.db import Database
from access_api.domain import tenants
from access_api.domain.audit import SYSTEM, Action, created
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.invitations import Offer
from access_api.domain.permissions import ADMIN_ROLE
from access_api.domain.users import SESSION_TIMEOUT_DEFAULT, TwoFactor, User, check_password
from access_api.ids import new_id
from access_api.pagination import Cursors
from access_api.services import emails as email_syntax
from access_api.services.clock import SystemClock
from access_api.services.keyring import Keyring
from access_api.services.mailer import Dispatcher
from access_api.services.passwords import Passwords
from access_api.services.webhooks import webhook_dispatcher
from access_api.settings import Settings
from access_api.state import AppState
from access_api.use_cases import members
from access_api.use_cases.work import Work


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    created: bool
    tenant: tenants.Tenant
    admin_email: str
    generated_password: str | None
    existing_user: bool


def normalize_email(email: str, field: str = "email") -> str:
    try:
        return email_syntax.normalized(email)
    except email_syntax.EmailNotValidError as exc:
        raise ValidationFailed([FieldError(field, "invalid_email", str(exc))]) from exc


async def bootstrap(
    work: Work,
    *,
    name: str,
    domain_prefix: str,
    admin_email: str,
    admin_password: str | None,
) -> Bootstrapped:
    """Create an MSP root, its built-in roles and its first admin (admin on the root and
    everything below). Running it again for an existing prefix changes nothing."""
    email = normalize_email(admin_email, "admin_email")
    existing = await work.tenants.by_prefix(domain_prefix)
    if existing is not None:
        return Bootstrapped(False, existing, email, None, existing_user=False)
    now = work.now
    root = tenants.new_root(id=new_id(), name=name, domain_prefix=domain_prefix, now=now)
    found = await work.users.by_email(email)
    generated = None
    password_hash: str | None = None
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
        password_hash = await work.passwords.hash(admin_password)
    else:
        user = found[0]
    await work.tenants.insert(root)
    await work.roles.create_builtin(root.id, now)
    await work.record(
        SYSTEM,
        Action.TENANT_CREATED,
        tenant=root,
        target_id=root.id,
        changes=created(root, ("kind", "name", "domain_prefix")),
    )
    await members.join(
        work,
        SYSTEM,
        root_id=root.id,
        user=user,
        password_hash=password_hash,
        offers=[Offer(tenant_id=root.id, roles=frozenset({ADMIN_ROLE}), include_descendants=True)],
        tenant=root,
    )
    return Bootstrapped(True, root, user.email, generated, existing_user=found is not None)


def offline_state(settings: Settings, database: Database) -> AppState:
    """What a use case run from the command line needs (no app is serving)."""
    keyring = Keyring(settings.secret)
    clock = SystemClock()
    dispatcher = Dispatcher(database=database, keyring=keyring, clock=clock, settings=settings)
    return AppState(
        settings=settings,
        database=database,
        keyring=keyring,
        passwords=Passwords(),
        clock=clock,
        cursors=Cursors(keyring),
        dispatcher=dispatcher,
        webhooks=webhook_dispatcher(dispatcher, database, keyring, clock, settings),
    )
