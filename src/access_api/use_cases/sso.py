"""Single sign-on (SPEC §5.3): a tenant's OpenID connection, and the login through it: start,
callback, and the exchange of a one-time code for a session."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from access_api.domain import errors as e
from access_api.domain import invitations, sso, throttle
from access_api.domain.access import Scope
from access_api.domain.audit import SYSTEM, Action, Actor, ActorKind, created
from access_api.domain.permissions import Permission
from access_api.domain.sso import CallbackRefused, Connection, Jit, PendingLogin, Refusal
from access_api.domain.tenants import Tenant
from access_api.domain.users import User, email_key, new_user
from access_api.ids import new_id
from access_api.services import oidc
from access_api.use_cases import members
from access_api.use_cases.auth import NewSession, start_session
from access_api.use_cases.work import Work

log = logging.getLogger("access_api.sso")

_SECRET = "sso-client-secret"  # noqa: S105 - the keyring purpose, not a secret
_VERIFIER = "sso-code-verifier"
CODE_PREFIX = "asc"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionInput:
    issuer: str
    client_id: str
    client_secret: str | None
    domains: list[str]
    jit: Jit
    enforce: bool


# --- the connection -----------------------------------------------------------------------


async def get(work: Work, scope: Scope) -> Connection:
    found = await work.sso.of_tenant(scope.tenant.id)
    if found is None:
        raise e.NotFound("no single sign-on connection on this account")
    return found[0]


async def put(work: Work, scope: Scope, wanted: ConnectionInput) -> Connection:
    """Create or replace the tenant's connection. The issuer must answer discovery now: a
    connection that cannot log anyone in is refused rather than saved."""
    scope = await work.lock_tree(scope, Permission.SSO_MANAGE)
    tenant = scope.tenant
    existing = await work.sso.of_tenant(tenant.id)
    issuer = sso.issuer(wanted.issuer)
    domains = sso.domains(wanted.domains)
    known = await work.roles.of_tree(tenant.root_id)
    sso.ensure_jit_roles(wanted.jit, known.keys())
    sso.ensure_no_escalation(wanted.jit.roles, known, scope.permissions)
    if wanted.client_secret is None and existing is None:
        raise e.ValidationFailed(
            [e.FieldError("client_secret", "missing", "required for a new connection")]
        )
    connection = Connection(
        id=existing[0].id if existing else new_id(),
        tenant_id=tenant.id,
        root_id=tenant.root_id,
        issuer=issuer,
        client_id=wanted.client_id,
        domains=domains,
        jit=wanted.jit,
        enforce=wanted.enforce,
        created_at=existing[0].created_at if existing else work.now,
        updated_at=work.now,
    )
    sso.ensure_domains_free(domains, await work.sso.owners(domains), connection.id)
    try:
        await oidc.CLIENT.metadata(issuer)
    except oidc.ProviderUnavailable as exc:
        raise e.SsoDiscoveryFailed(str(exc)) from exc
    sealed = (
        work.keyring.seal_text(wanted.client_secret, _SECRET)
        if wanted.client_secret is not None
        else existing[1]  # type: ignore[index]
    )
    await work.sso.save(connection, sealed, new=existing is None)
    await work.record(
        scope.caller.actor,
        Action.SSO_CONNECTION_SAVED,
        tenant=tenant,
        target_id=connection.id,
        changes=sso.described(connection)
        | ({"client_secret": {"before": None, "after": "(new)"}} if wanted.client_secret else {}),
    )
    return connection


async def delete(work: Work, scope: Scope) -> None:
    scope = await work.lock_tree(scope, Permission.SSO_MANAGE)
    connection = await get(work, scope)
    await work.sso.delete(connection.id)
    await work.record(
        scope.caller.actor,
        Action.SSO_CONNECTION_DELETED,
        tenant=scope.tenant,
        target_id=connection.id,
    )


# --- password login's side of it ---------------------------------------------------------


async def ensure_password_login_allowed(work: Work, email: str) -> None:
    """`enforce` closes password login for the connection's domains (401 sso_required)."""
    sso.ensure_password_login_allowed(await work.sso.of_domain(sso.email_domain(email)))


# --- the login ----------------------------------------------------------------------------


def redirect_uri(work: Work) -> str:
    """The redirect URI to register at the IdP: the API's own public address."""
    return f"{work.settings.base_url}/v1/auth/sso/callback"


def _complete(work: Work, **params: str) -> str:
    return f"{work.settings.public_url}/sso/complete?{urlencode(params)}"


async def start(work: Work, email: str | None, domain_prefix: str | None) -> str:
    """Where to send the browser: the IdP's authorization endpoint, with code + PKCE, a state
    and a nonce that are kept here (10 minutes) for the callback, whichever process gets it."""
    # Found on a session of its own: nothing is held while the IdP's discovery is fetched.
    connection = await work.read_apart(lambda w: _connection_for(w, email, domain_prefix))
    try:
        request = await oidc.CLIENT.authorization_request(
            connection.issuer, connection.client_id, redirect_uri(work)
        )
    except oidc.ProviderUnavailable as exc:
        raise e.SsoDiscoveryFailed(str(exc)) from exc
    login = PendingLogin(
        connection_id=connection.id,
        nonce=request.nonce,
        code_verifier=request.code_verifier,
        expires_at=work.now + sso.LOGIN_LIFETIME,
    )
    await work.sso.begin_login(
        work.keyring.digest(request.state),
        login,
        work.keyring.seal_text(request.code_verifier, _VERIFIER),
        work.now,
    )
    return request.url


async def _connection_for(work: Work, email: str | None, domain_prefix: str | None) -> Connection:
    if email:
        connection = await work.sso.of_domain(sso.email_domain(email))
    elif domain_prefix:
        tenant = await work.tenants.by_prefix(domain_prefix.strip().lower())
        chain = await work.tenants.chain(tenant.id) if tenant else []
        connection = await work.sso.nearest(chain)
    else:
        raise e.ValidationFailed(
            [e.FieldError("email", "missing", "give an email or a domain_prefix")]
        )
    if connection is None:
        raise e.SsoNotConfigured()
    return connection


async def callback(work: Work, code: str | None, state: str | None, error: str | None) -> str:
    """The IdP's answer. Every check of the ID token and of the person passes, or the browser
    goes to /sso/complete?error=<code> with nothing issued. The state is used up either way,
    first and at once, so nothing (a pooled connection, SQLite's write lock) is held while the
    IdP is asked; the person (made just in time) and the one-time code are then written in
    the request's transaction: both or neither."""
    connection: Connection | None = None
    try:
        pending, found, tenant = await work.apart(lambda w: _take_login(w, state or ""))
        login = sso.ensure_pending(pending[0] if pending else None, work.now)
        if found is None or pending is None:
            raise CallbackRefused(Refusal.INVALID_STATE, "the connection is gone")
        connection, sealed_secret = found
        if tenant is None:
            raise CallbackRefused(Refusal.INVALID_STATE, "the connection's account is gone")
        if error or not code:
            raise CallbackRefused(Refusal.IDP_ERROR, f"the IdP answered {error or 'no code'}")
        claims = await _redeem(work, connection, sealed_secret, login, pending[1], code)
        email = sso.identity(claims, connection)
        user = await _user_for(work, connection, tenant, email, claims)
    except CallbackRefused as refused:
        # The reason goes to the log and the audit trail; the tokens never do.
        log.info("sso callback refused: %s (%s)", refused.refusal.value, refused.detail)
        if connection is not None:
            await work.record(
                SYSTEM,
                Action.SSO_LOGIN_REFUSED,
                tenant=await work.tenants.get(connection.tenant_id),
                target_id=connection.id,
                changes={"reason": {"before": None, "after": refused.refusal.value}},
            )
        return _complete(work, error=refused.refusal.value)
    one_time = f"{CODE_PREFIX}_{secrets.token_urlsafe(32)}"
    await work.sso.issue_code(
        work.keyring.digest(one_time),
        user.id,
        connection.id,
        work.now,
        work.now + sso.CODE_LIFETIME,
    )
    return _complete(work, code=one_time)


async def _take_login(
    work: Work, state: str
) -> tuple[tuple[PendingLogin, str] | None, tuple[Connection, str] | None, Tenant | None]:
    """The login in flight (removed as it is read), its connection and that one's account;
    judged by the caller, after this is committed."""
    pending = await work.sso.take_login(work.keyring.digest(state))
    if pending is None:
        return None, None, None
    found = await work.sso.get(pending[0].connection_id)
    tenant = await work.tenants.get(found[0].tenant_id) if found else None
    return pending, found, tenant


async def _redeem(
    work: Work,
    connection: Connection,
    sealed_secret: str,
    login: PendingLogin,
    sealed_verifier: str,
    code: str,
) -> dict[str, Any]:
    try:
        return await oidc.CLIENT.redeem(
            issuer=connection.issuer,
            client_id=connection.client_id,
            client_secret=work.keyring.unseal_text(sealed_secret, _SECRET),
            redirect_uri=redirect_uri(work),
            code=code,
            code_verifier=work.keyring.unseal_text(sealed_verifier, _VERIFIER),
            nonce=login.nonce,
            now=work.now,
        )
    except oidc.ProviderUnavailable as exc:
        raise CallbackRefused(Refusal.IDP_ERROR, str(exc)) from exc
    except oidc.TokenInvalid as exc:
        raise CallbackRefused(Refusal.INVALID_ID_TOKEN, str(exc)) from exc


async def _user_for(
    work: Work, connection: Connection, tenant: Tenant, email: str, claims: dict[str, Any]
) -> User:
    found = await work.users.by_email(email)
    member = bool(found and await work.members.members_among(connection.root_id, [found[0].id]))
    if not sso.ensure_known(member, found is not None, connection):
        assert found is not None  # noqa: S101 - ensure_known refuses an unknown person
        return found[0]
    first, last = sso.names(claims, email)
    return await provision(
        work,
        tenant,
        email=email,
        first_name=first,
        last_name=last,
        roles=connection.jit.roles,
        include_descendants=connection.jit.include_descendants,
        actor=SYSTEM,
    )


async def provision(
    work: Work,
    tenant: Tenant,
    *,
    email: str,
    first_name: str,
    last_name: str,
    roles: frozenset[str],
    include_descendants: bool,
    actor: Actor,
) -> User:
    """A person the IdP vouches for becomes a member of the tree with the given roles on the
    tenant (just-in-time login, SCIM). Their password is a random secret nobody knows: they
    sign in through the IdP, or set one through a reset."""
    user = new_user(
        id=new_id(),
        email=email,
        first_name=first_name or email_key(email).split("@", 1)[0],
        last_name=last_name or "-",
        phone=None,
        now=work.now,
    )
    unusable = await work.passwords.hash(secrets.token_urlsafe(32))
    await work.tenants.lock_tree(tenant.root_id)
    await members.join(
        work,
        actor,
        root_id=tenant.root_id,
        user=user,
        password_hash=unusable,
        offers=_offers(tenant, roles, include_descendants),
        tenant=tenant,
    )
    await work.record(
        actor,
        Action.USER_CREATED,
        tenant=tenant,
        target_id=user.id,
        changes=created(user, ("email", "first_name", "last_name")),
    )
    return user


def _offers(
    tenant: Tenant, roles: frozenset[str], include_descendants: bool
) -> list[invitations.Offer]:
    if not roles:
        return []
    return [
        invitations.Offer(tenant_id=tenant.id, roles=roles, include_descendants=include_descendants)
    ]


async def grant(
    work: Work,
    tenant: Tenant,
    user: User,
    roles: frozenset[str],
    include_descendants: bool,
    actor: Actor,
) -> None:
    """Membership of the tree, and the roles added to what the user holds on the tenant (the
    caller holds the tree lock)."""
    await members.join(
        work,
        actor,
        root_id=tenant.root_id,
        user=user,
        password_hash=None,
        offers=_offers(tenant, roles, include_descendants),
        tenant=tenant,
    )


async def exchange(work: Work, code: str, otp: str | None) -> NewSession:
    """The one-time code from /sso/complete, turned into a session once (60 s). A user with a
    second factor of ours still gives it here, as at password login: a refusal (otp_required,
    a wrong code) rolls back, so the same code can be sent again with the otp."""
    used = await work.sso.use_code(work.keyring.digest(code), work.now)
    user = await work.users.get(used[0]) if used else None
    if used is None or user is None:
        raise e.InvalidToken()
    account = (throttle.LOGIN_ACCOUNT, email_key(user.email))
    address = (throttle.LOGIN_ADDRESS, work.ip or "unknown")
    await work.throttle.check(account, address)
    await work.second_factor.check(user, otp, account, address)
    found = await work.sso.get(used[1])
    tenant = await work.tenants.get(found[0].tenant_id) if found else None
    await work.record(
        Actor(user_id=user.id, kind=ActorKind.SESSION),
        Action.SSO_LOGIN_SUCCEEDED,
        tenant=tenant,
        target_id=user.id,
        changes={"connection_id": {"before": None, "after": str(used[1])}},
    )
    return await start_session(work, user)
