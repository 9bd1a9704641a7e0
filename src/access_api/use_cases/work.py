"""The unit of work: what one change needs (repositories, clock, keyring, audit, outbox).

A use case takes a `Work` and plain values, and knows nothing of HTTP. The REST routers get
one from the `WorkDep` dependency (one per request, inside the request's transaction); the
CLI and tests build one over a session of their own with `Work.over(...)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from functools import cached_property
from typing import NotRequired, TypedDict, TypeVar, Unpack
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from access_api.db import DEFERRED, close, finish
from access_api.domain import access
from access_api.domain.access import Caller, Scope, ScopeFacts
from access_api.domain.audit import Action, Actor, AuditEvent, Changes
from access_api.domain.errors import NotFound
from access_api.domain.tenants import Tenant
from access_api.domain.users import User
from access_api.ids import new_id
from access_api.repositories.agents import AgentRepository
from access_api.repositories.api_keys import ApiKeyRepository
from access_api.repositories.audit import AuditRepository
from access_api.repositories.auth import LoginRepository, SessionRepository
from access_api.repositories.grants import GrantRepository
from access_api.repositories.invitations import InvitationRepository
from access_api.repositories.me import MeRepository
from access_api.repositories.members import MemberRepository
from access_api.repositories.outbox import OutboxRepository, QueuedMail
from access_api.repositories.passkeys import PasskeyRepository
from access_api.repositories.policies import PolicyRepository
from access_api.repositories.recovery import RecoveryRepository
from access_api.repositories.roles import RoleRepository
from access_api.repositories.scim import ScimRepository
from access_api.repositories.scoped import ScopedRepository
from access_api.repositories.sessions import SessionListing
from access_api.repositories.sso import SsoRepository
from access_api.repositories.tenants import TenantRepository
from access_api.repositories.two_factor import TwoFactorRepository
from access_api.repositories.users import UserRepository
from access_api.repositories.webhooks import WebhookRepository
from access_api.services import webhooks
from access_api.services.keyring import Keyring
from access_api.services.passwords import Passwords
from access_api.services.second_factor import SecondFactor
from access_api.services.throttle import Throttle
from access_api.settings import Settings
from access_api.state import AppState

Hook = Callable[[], None]


class EventFields(TypedDict):
    """What an audit event says besides its actor and action (`Work.event`, `Work.record`)."""

    tenant: Tenant | None
    target_id: UUID | None
    changes: NotRequired[Changes | None]
    target_type: NotRequired[str | None]


RefusalHook = Callable[[], Awaitable[None]]
_T = TypeVar("_T")


class Work:
    """One transaction's worth of change. Repositories are made on first use; the events a
    change records are written in the same transaction and kept in `events` for whoever
    needs them afterwards (webhooks, a dry run's description)."""

    def __init__(
        self,
        session: AsyncSession,
        state: AppState,
        *,
        now: datetime,
        request_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        after_commit: list[Hook] | None = None,
        after_refusal: list[RefusalHook] | None = None,
    ) -> None:
        self.session = session
        self.state = state
        self.now = now
        self.request_id = request_id
        self.ip = ip
        self.user_agent = user_agent
        self.events: list[AuditEvent] = []
        self._after_commit = after_commit if after_commit is not None else []
        self._after_refusal = after_refusal if after_refusal is not None else []

    @classmethod
    def over(cls, session: AsyncSession, state: AppState, now: datetime | None = None) -> Work:
        """A unit of work outside HTTP (CLI, tests): the caller commits the session."""
        return cls(session, state, now=now or state.clock.now())

    async def read_apart(self, read: Callable[[Work], Awaitable[_T]]) -> _T:
        """Reads made before a long wait that needs no database (a password hash: ~20 ms, or
        longer queued for a hashing thread in a storm), on a session of their own that is
        closed before the wait: the request's transaction has not begun, so nothing (a pooled
        connection, SQLite's write lock) is held while it waits. In autocommit where reads
        have it (no BEGIN or COMMIT round trips). What follows runs in the request's
        transaction, on facts that may have changed meanwhile, as under READ COMMITTED."""
        return await self._alone(self.state.database.reads, read)

    async def apart(self, change: Callable[[Work], Awaitable[_T]]) -> _T:
        """Changes kept whatever the request does next (a one-time state used up before the
        long wait that follows it), with the reads that go with them, on a session of their
        own committed at once: nothing is held during the wait. Each change must be atomic
        by itself (one statement): in autocommit where reads have it. `change` must not raise
        after it changed something: its session then rolls back where it is transactional."""
        return await self._alone(self.state.database.one_statement, change)

    async def stamp(self, change: Callable[[Work], Awaitable[_T]]) -> _T:
        """A write a read-only request may make (a credential's last use, at most once a
        minute; one statement): in the request's session, unless that one's transactions are
        deferred reads (SQLite's read-only requests). There the read is ended first (its
        connection goes back to the pool) and the change made apart, committed at once; the
        request's next statement begins a new read."""
        if self.session.info.get(DEFERRED):
            await finish(self.session)
            return await self.apart(change)
        return await change(self)

    async def one_statement(self, change: Callable[[Work], Awaitable[_T]]) -> _T:
        """A change that is atomic by itself (one statement on PostgreSQL): in the request's
        transaction if that has begun, so it commits or rolls back with what came before it;
        otherwise on a session of its own, committed at once, in autocommit where reads have
        it. A login's only write (its session, the throttle buckets it forgets, its audit
        event) then costs one round trip instead of BEGIN, the statement and COMMIT. Only for
        a change that is the last of its request: nothing after it can undo it."""
        if self.session.in_transaction():
            return await change(self)
        return await self._alone(self.state.database.one_statement, change)

    async def _alone(
        self, sessions: async_sessionmaker[AsyncSession], run: Callable[[Work], Awaitable[_T]]
    ) -> _T:
        """Run on a session of its own, committed at once, with this request's context. As
        a request's own session: committed and closed only if something began it (a fast read
        or write on a connection of its own does not), since a commit or a close costs a
        greenlet hop (or a task) even with nothing to end."""
        session = sessions()
        try:
            done = await run(
                Work(
                    session,
                    self.state,
                    now=self.now,
                    request_id=self.request_id,
                    ip=self.ip,
                    user_agent=self.user_agent,
                )
            )
            await finish(session)
        finally:
            await close(session)
        return done

    # --- what the app holds -------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def keyring(self) -> Keyring:
        return self.state.keyring

    @property
    def passwords(self) -> Passwords:
        return self.state.passwords

    # --- repositories -------------------------------------------------------------------

    @cached_property
    def tenants(self) -> TenantRepository:
        return TenantRepository(self.session)

    @cached_property
    def users(self) -> UserRepository:
        return UserRepository(self.session)

    @cached_property
    def grants(self) -> GrantRepository:
        return GrantRepository(self.session)

    @cached_property
    def roles(self) -> RoleRepository:
        return RoleRepository(self.session)

    @cached_property
    def invitations(self) -> InvitationRepository:
        return InvitationRepository(self.session)

    @cached_property
    def api_keys(self) -> ApiKeyRepository:
        return ApiKeyRepository(self.session)

    @cached_property
    def agents(self) -> AgentRepository:
        return AgentRepository(self.session)

    @cached_property
    def two_factor(self) -> TwoFactorRepository:
        return TwoFactorRepository(self.session)

    @cached_property
    def scoped(self) -> ScopedRepository:
        return ScopedRepository(self.session)

    @cached_property
    def myself(self) -> MeRepository:
        return MeRepository(self.session)

    @cached_property
    def sessions(self) -> SessionRepository:
        return SessionRepository(self.session)

    @cached_property
    def logins(self) -> LoginRepository:
        return LoginRepository(self.session)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(self.session)

    @cached_property
    def outbox(self) -> OutboxRepository:
        return OutboxRepository(self.session)

    @cached_property
    def members(self) -> MemberRepository:
        return MemberRepository(self.session)

    @cached_property
    def sso(self) -> SsoRepository:
        return SsoRepository(self.session)

    @cached_property
    def scim(self) -> ScimRepository:
        return ScimRepository(self.session)

    @cached_property
    def webhooks(self) -> WebhookRepository:
        return WebhookRepository(self.session)

    @cached_property
    def policies(self) -> PolicyRepository:
        return PolicyRepository(self.session)

    @cached_property
    def recovery(self) -> RecoveryRepository:
        return RecoveryRepository(self.session)

    @cached_property
    def passkeys(self) -> PasskeyRepository:
        return PasskeyRepository(self.session)

    @cached_property
    def session_list(self) -> SessionListing:
        return SessionListing(self.session)

    # --- adapters that need the transaction's hooks -------------------------------------

    @cached_property
    def throttle(self) -> Throttle:
        return Throttle(
            session=self.session,
            database=self.state.database,
            keyring=self.state.keyring,
            now=self.now,
            after_refusal=self.after_refusal,
        )

    @cached_property
    def second_factor(self) -> SecondFactor:
        return SecondFactor(
            factors=self.two_factor,
            throttling=self.throttle,
            database=self.state.database,
            keyring=self.state.keyring,
            dispatcher=self.state.dispatcher,
            now=self.now,
            after_refusal=self.after_refusal,
            public_url=self.settings.public_url,
        )

    def after_commit(self, hook: Hook) -> None:
        """Run hook once the transaction has committed (e.g. wake the mail dispatcher)."""
        self._after_commit.append(hook)

    def after_refusal(self, hook: RefusalHook) -> None:
        """Run hook once the change was refused and rolled back (e.g. count a failed attempt,
        which must outlive the rollback); it opens a transaction of its own."""
        self._after_refusal.append(hook)

    # --- who may do what ----------------------------------------------------------------

    async def scope(self, caller: Caller, tenant_id: UUID, permission: str | None) -> Scope:
        """The caller acting in a tenant's context: reach, then status, then permission."""
        facts = await self.grants.scope_facts(caller, tenant_id, self.now)
        return await self.judge(caller, tenant_id, facts, permission)

    async def judge(
        self, caller: Caller, tenant_id: UUID, facts: ScopeFacts, permission: str | None
    ) -> Scope:
        """The caller acting in a tenant's context, from facts already read."""
        resolved = access.resolve_scope(caller, facts, self.now)
        if caller.tenant_limit is not None:  # a key scoped to some tenants and below
            access.ensure_within_limit(caller, await self.tenants.chain(tenant_id))
        if permission is not None:
            access.require(resolved, permission)
        return resolved

    async def lock_tree(self, scope: Scope, permission: str) -> Scope:
        """Serialize changes to a tree's access: lock its root row, then judge the caller
        again. A change is applied to the tree as it is now (admins, grants), and a request
        that began while its caller had access is not applied once that access is gone."""
        await self.tenants.lock_tree(scope.tenant.root_id)
        return await self.scope(scope.caller, scope.tenant.id, permission)

    async def visible_user(self, scope: Scope, user_id: UUID) -> User:
        """A user as seen from the context: absent (404) when the context cannot see them."""
        tenant = scope.tenant
        visible = await self.members.visible_from(tenant.id, tenant.root_id, [user_id], self.now)
        user = await self.users.get(user_id) if user_id in visible else None
        if user is None:
            raise NotFound(f"no user {user_id} here")
        return user

    async def manageable_user(self, scope: Scope, user_id: UUID) -> User:
        """A user whose person (profile, keys, agents, 2FA) the caller may manage from here."""
        user = await self.visible_user(scope, user_id)
        chains = await self.grants.grant_chains(user.id, self.now)
        access.ensure_can_manage_person(scope.caller, scope.tenant.id, user.id, chains)
        return user

    # --- the audit trail and the outbox -------------------------------------------------

    def event(self, actor: Actor, action: Action, **what: Unpack[EventFields]) -> AuditEvent:
        """An event of this request (its time, id and address), not yet recorded: a bulk
        change records its hundreds of events in one write (`record_events`)."""
        tenant, target_type = what["tenant"], what.get("target_type")
        return AuditEvent(
            id=new_id(),
            at=self.now,
            actor=actor,
            root_id=tenant.root_id if tenant else None,
            tenant_id=tenant.id if tenant else None,
            action=action,
            target_type=target_type or action.target_type,
            target_id=what["target_id"],
            changes=what.get("changes") or {},
            request_id=self.request_id,
            ip=self.ip,
        )

    async def record(self, actor: Actor, action: Action, **what: Unpack[EventFields]) -> None:
        """Write an audit event (`event`'s fields) into this transaction: a change and its
        record commit (or roll back) together."""
        await self.record_events([self.event(actor, action, **what)])

    def events_for(
        self,
        actor: Actor,
        action: Action,
        *,
        tenant: Tenant | None,
        changed: Iterable[tuple[UUID, Changes | None]],
    ) -> list[AuditEvent]:
        """The events of a bulk change: one per (target, changes), by one actor in one tenant."""
        return [
            self.event(actor, action, tenant=tenant, target_id=target, changes=changes)
            for target, changes in changed
        ]

    async def record_events(self, events: Sequence[AuditEvent], *, written: bool = False) -> None:
        """Write events into this transaction, all in one statement, and queue their webhook
        deliveries. written: a repository already inserted them, riding in a statement of its
        own (a round trip fewer); they are kept and sent to webhooks all the same."""
        if events:
            if not written:
                await self.audit.record(events)
            self.events.extend(events)
            if await webhooks.enqueue(self.webhooks, self.outbox, events):
                self.after_commit(self.state.webhooks.wake)

    async def send(self, mails: Iterable[QueuedMail]) -> None:
        """Queue mail in the outbox (same transaction) and wake the dispatcher after commit."""
        queued = list(mails)
        if queued:
            await self.outbox.add(queued)
            self.after_commit(self.state.dispatcher.wake)
