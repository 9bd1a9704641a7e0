"""The schema: every table, index and constraint, named by one convention (Alembic builds it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps (SQLite keeps naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: every time in access-api is UTC-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType: Any = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = UTCDateTime


def _created() -> sa.Column[datetime]:
    return sa.Column("created_at", Timestamp(), nullable=False)


def _updated() -> sa.Column[datetime]:
    return sa.Column("updated_at", Timestamp(), nullable=False)


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("domain_prefix", sa.String(63), nullable=False),
    sa.Column("street_address", sa.String(500), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    _created(),
    _updated(),
    sa.Column("deleted_at", Timestamp(), nullable=True),
    # How many live tenants are below this one (any depth), kept as tenants are created and
    # deleted: GET /v1/me counts the tenants a grant reaches from it, whatever the tree's size.
    sa.Column("live_descendants", sa.Integer(), nullable=False, server_default="0"),
    sa.CheckConstraint("kind IN ('msp', 'multi_client', 'client')", name="kind"),
    sa.CheckConstraint("status IN ('enabled', 'disabled')", name="status"),
    sa.Index(
        "uq_tenants_domain_prefix_live",
        "domain_prefix",
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    ),
    sa.Index("ix_tenants_parent_id_name_id", "parent_id", "name", "id"),
    sa.Index("ix_tenants_parent_id_domain_prefix_id", "parent_id", "domain_prefix", "id"),
    sa.Index("ix_tenants_parent_id_created_at_id", "parent_id", "created_at", "id"),
    # A tree's tenants by name: GET /v1/me/tenants walks it for a caller who reaches most of
    # the tree (repositories/me.py); it serves a tree's tenants by root_id alone too.
    sa.Index("ix_tenants_root_id_name_id", "root_id", "name", "id"),
)

# One row per (ancestor, descendant) pair, the tenant itself included at depth 0: reach and
# inherited grants resolve in one indexed join whatever the depth.
tenant_closure = sa.Table(
    "tenant_closure",
    metadata,
    sa.Column(
        "ancestor_id", sa.Uuid(), sa.ForeignKey("tenants.id"), primary_key=True, nullable=False
    ),
    sa.Column(
        "descendant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), primary_key=True, nullable=False
    ),
    sa.Column("depth", sa.Integer(), nullable=False),
    sa.Index("ix_tenant_closure_descendant_id_depth", "descendant_id", "depth"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("first_name", sa.String(100), nullable=False),
    sa.Column("last_name", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(40), nullable=True),
    sa.Column("session_timeout_minutes", sa.Integer(), nullable=False),
    sa.Column("two_factor", sa.String(16), nullable=False),
    _created(),
    _updated(),
    sa.Column("last_login_at", Timestamp(), nullable=True),
    sa.Column("password_changed_at", Timestamp(), nullable=False),
    # TOTP secrets are sealed (AES-GCM, a key derived from the server secret), never in clear.
    sa.Column("totp_secret", sa.String(255), nullable=True),
    sa.Column("totp_pending_secret", sa.String(255), nullable=True),
    # The last accepted time step: a code is accepted once (a conditional UPDATE decides).
    sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
    sa.CheckConstraint("two_factor IN ('disabled', 'totp', 'email')", name="two_factor"),
    sa.CheckConstraint(
        "session_timeout_minutes BETWEEN 5 AND 1440", name="session_timeout_minutes"
    ),
    # Every sortable column of the user list, with id, so a keyset page is an index range.
    sa.Index("ix_users_email_key_id", "email_key", "id"),
    sa.Index("ix_users_first_name_id", "first_name", "id"),
    sa.Index("ix_users_last_name_id", "last_name", "id"),
    sa.Index("ix_users_created_at_id", "created_at", "id"),
    sa.Index("ix_users_last_login_at_id", "last_login_at", "id"),
    sa.Index("ix_users_two_factor_email_key_id", "two_factor", "email_key", "id"),
)

# Belonging to an MSP tree. It outlives the user's last role (seed 003: an admin may assign
# a new one) and ends only when the user is deleted at the root (seed 000).
members = sa.Table(
    "members",
    metadata,
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), primary_key=True),
    _created(),
    sa.Index("ix_members_user_id", "user_id"),
)

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("permissions", JSONType, nullable=False),
    sa.Column("builtin", sa.Boolean(), nullable=False),
    _created(),
    _updated(),
    sa.UniqueConstraint("root_id", "key"),
)

authorizations = sa.Table(
    "authorizations",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("include_descendants", sa.Boolean(), nullable=False),
    sa.Column("expires_at", Timestamp(), nullable=True),
    _created(),
    _updated(),
    sa.UniqueConstraint("user_id", "tenant_id"),
    sa.Index("ix_authorizations_tenant_id", "tenant_id"),
    sa.Index("ix_authorizations_root_id_user_id", "root_id", "user_id"),
)

# RESTRICT on the role: a role that is granted cannot disappear under a grant (role_in_use).
authorization_roles = sa.Table(
    "authorization_roles",
    metadata,
    sa.Column(
        "authorization_id",
        sa.Uuid(),
        sa.ForeignKey("authorizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "role_id", sa.Uuid(), sa.ForeignKey("roles.id", ondelete="RESTRICT"), primary_key=True
    ),
    sa.Index("ix_authorization_roles_role_id", "role_id"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    _created(),
    sa.Column("last_seen_at", Timestamp(), nullable=False),
    sa.Column("ended_at", Timestamp(), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(300), nullable=True),
    sa.Index("ix_sessions_user_id", "user_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("principal", sa.String(64), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=False),
    sa.Column("response", sa.LargeBinary(), nullable=False),
    _created(),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.UniqueConstraint("principal", "key"),
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("at", Timestamp(), nullable=False),
    sa.Column("actor_user_id", sa.Uuid(), nullable=True),
    sa.Column("actor_kind", sa.String(16), nullable=False),
    sa.Column("root_id", sa.Uuid(), nullable=True),
    sa.Column("tenant_id", sa.Uuid(), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target_type", sa.String(32), nullable=False),
    sa.Column("target_id", sa.Uuid(), nullable=True),
    sa.Column("changes", JSONType, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Index("ix_audit_events_tenant_id_at_id", "tenant_id", "at", "id"),
    sa.Index("ix_audit_events_root_id_at_id", "root_id", "at", "id"),
)

# --- invitations and the mail outbox ------------------------------------------------------

_PENDING = sa.text("status = 'pending'")

# An offer of grants to an email, made in one tenant (tenant_id) and listed only there. The
# token is kept only as its keyed digest, cleared once the link dies (used, revoked, expired).
invitations = sa.Table(
    "invitations",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("invited_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
    sa.Column("expires_in_days", sa.Integer(), nullable=False),
    _created(),
    _updated(),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.Column("accepted_at", Timestamp(), nullable=True),
    sa.Column("accepted_user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
    sa.Column("revoked_at", Timestamp(), nullable=True),
    sa.Column("sent_count", sa.Integer(), nullable=False),
    sa.Column("last_sent_at", Timestamp(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'accepted', 'expired', 'revoked')", name="status"),
    sa.CheckConstraint("expires_in_days BETWEEN 1 AND 30", name="expires_in_days"),
    # One pending invitation per email per tenant, even under concurrent requests.
    sa.Index(
        "uq_invitations_tenant_id_email_key_pending",
        "tenant_id",
        "email_key",
        unique=True,
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    ),
    # The list's sorts, keyset (sort key, id) within the tenant where they were made.
    sa.Index("ix_invitations_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    sa.Index("ix_invitations_tenant_id_email_key_id", "tenant_id", "email_key", "id"),
    sa.Index("ix_invitations_tenant_id_expires_at_id", "tenant_id", "expires_at", "id"),
)

invitation_grants = sa.Table(
    "invitation_grants",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column(
        "invitation_id",
        sa.Uuid(),
        sa.ForeignKey("invitations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("include_descendants", sa.Boolean(), nullable=False),
    sa.Column("expires_at", Timestamp(), nullable=True),  # the offered grant's end, if any
    sa.UniqueConstraint("invitation_id", "tenant_id"),
    sa.Index("ix_invitation_grants_tenant_id", "tenant_id"),
)

# RESTRICT on the role: a role offered by an invitation cannot disappear under it.
invitation_grant_roles = sa.Table(
    "invitation_grant_roles",
    metadata,
    sa.Column(
        "grant_id",
        sa.Uuid(),
        sa.ForeignKey("invitation_grants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "role_id", sa.Uuid(), sa.ForeignKey("roles.id", ondelete="RESTRICT"), primary_key=True
    ),
    sa.Index("ix_invitation_grant_roles_role_id", "role_id"),
)

_UNSENT = sa.text("sent_at IS NULL AND failed_at IS NULL")

# Mail written in the same transaction as the change it announces, delivered by a dispatcher.
# The body carries links that log people in, so it is sealed, and wiped once sent.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=True),
    sa.Column("message_id", sa.String(255), nullable=False, unique=True),
    _created(),
    sa.Column("available_at", Timestamp(), nullable=False),
    sa.Column("lease_until", Timestamp(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("last_attempt_at", Timestamp(), nullable=True),
    sa.Column("sent_at", Timestamp(), nullable=True),
    sa.Column("failed_at", Timestamp(), nullable=True),
    # Which dispatcher delivers it: "mail" (SMTP) or "webhook" (HTTP POST).
    sa.Column("channel", sa.String(16), nullable=False, server_default="mail"),
    # Only undelivered messages are ever looked for: the index stays as small as the queue.
    sa.Index(
        "ix_outbox_channel_available_at_id_unsent",
        "channel",
        "available_at",
        "id",
        postgresql_where=_UNSENT,
        sqlite_where=_UNSENT,
    ),
)

# A user's API keys, bound to the MSP tree they were generated in; the secret is kept only as
# its keyed digest (one indexed lookup per request), the prefix for people to recognize it.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_by", sa.Uuid(), nullable=True),
    _created(),
    sa.Column("last_used_at", Timestamp(), nullable=True),
    sa.Column("expires_at", Timestamp(), nullable=True),
    sa.Column("revoked_at", Timestamp(), nullable=True),
    # A scoped key: no more than these permissions, only in these tenants and below (null:
    # its user's every permission, everywhere in the tree).
    sa.Column("permissions", JSONType, nullable=True),
    sa.Column("tenant_ids", JSONType, nullable=True),
    sa.Index("ix_api_keys_user_id_root_id_created_at_id", "user_id", "root_id", "created_at", "id"),
    sa.Index("ix_api_keys_user_id_root_id_name_id", "user_id", "root_id", "name", "id"),
)

# Agents (seed 004), provisioned for a user in a tenant. A deregistered agent has no token.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("created_by", sa.Uuid(), nullable=True),
    _created(),
    _updated(),
    sa.Column("last_seen_at", Timestamp(), nullable=True),
    sa.Column("token_issued_at", Timestamp(), nullable=True),
    sa.CheckConstraint("status IN ('registered', 'deregistered')", name="status"),
    sa.CheckConstraint(
        "(status = 'registered') = (token_hash IS NOT NULL)", name="token_when_registered"
    ),
    sa.Index("ix_agents_user_id_created_at_id", "user_id", "created_at", "id"),
    sa.Index("ix_agents_user_id_name_id", "user_id", "name", "id"),
    sa.Index("ix_agents_tenant_id", "tenant_id"),
)

# Failed attempts per bucket (an account or a client address, for one purpose): in the
# database, so every server process counts the same failures. The key is a keyed digest:
# no email or address is kept in clear here.
throttle_buckets = sa.Table(
    "throttle_buckets",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("failures", sa.Integer(), nullable=False),
    sa.Column("window_started_at", Timestamp(), nullable=False),
    sa.Column("locked_until", Timestamp(), nullable=True),
    sa.Column("lockouts", sa.Integer(), nullable=False),
    sa.Column("last_failure_at", Timestamp(), nullable=False),
)

# An admin's request to reset a user's authenticator (seed 000), answered by the user through
# one of two emailed links; both are kept only as keyed digests and die with the answer.
two_factor_resets = sa.Table(
    "two_factor_resets",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("requested_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("confirm_token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("deny_token_hash", sa.String(64), nullable=True, unique=True),
    _created(),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.Column("decided_at", Timestamp(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'confirmed', 'denied', 'expired')", name="status"),
    sa.Index("ix_two_factor_resets_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    sa.Index("ix_two_factor_resets_user_id_status", "user_id", "status"),
)

# Sign-in codes sent by email, kept as keyed digests; each works once, for a few minutes.
email_codes = sa.Table(
    "email_codes",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    _created(),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.Column("used_at", Timestamp(), nullable=True),
    sa.Index("ix_email_codes_user_id_created_at", "user_id", "created_at"),
)

# --- webhooks -----------------------------------------------------------------------------

# An HTTP endpoint subscribed to audit actions of its tenant and every tenant below. The
# signing secret is needed in clear to sign, so it is sealed (not hashed).
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("description", sa.String(500), nullable=True),
    sa.Column("event_types", JSONType, nullable=False),
    sa.Column("secret", sa.LargeBinary(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    _created(),
    _updated(),
    sa.Column("failing_since", Timestamp(), nullable=True),
    sa.Column("disabled_at", Timestamp(), nullable=True),
    sa.Column("deleted_at", Timestamp(), nullable=True),
    sa.CheckConstraint("status IN ('enabled', 'disabled')", name="status"),
    sa.Index("ix_webhook_endpoints_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
)

# One try at delivering one message to one endpoint: what the receiver answered, how fast.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("endpoint_id", sa.Uuid(), sa.ForeignKey("webhook_endpoints.id"), nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("at", Timestamp(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("latency_ms", sa.Integer(), nullable=False),
    sa.Column("succeeded", sa.Boolean(), nullable=False),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Index("ix_webhook_attempts_endpoint_id_at_id", "endpoint_id", "at", "id"),
)

# Security policy per tenant (SPEC §5.2): one row per tenant that sets anything; NULL inherits.
security_policies = sa.Table(
    "security_policies",
    metadata,
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("require_two_factor", sa.Boolean(), nullable=True),
    sa.Column("allowed_ip_ranges", JSONType, nullable=True),
    sa.Column("max_session_timeout_minutes", sa.Integer(), nullable=True),
    sa.Column("password_min_length", sa.Integer(), nullable=True),
    _created(),
    _updated(),
    sa.Index("ix_security_policies_root_id", "root_id"),
)

# Password reset links (forgot password, or sent by an admin): kept as keyed digests; a link
# works once, for an hour, and a newer one kills it.
password_resets = sa.Table(
    "password_resets",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("requested_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=True),
    _created(),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.Column("used_at", Timestamp(), nullable=True),
    sa.Index("ix_password_resets_user_id", "user_id"),
)

# A change of email waiting for the new address to prove it reads its mail.
email_changes = sa.Table(
    "email_changes",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("new_email", sa.String(320), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
    _created(),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.Column("used_at", Timestamp(), nullable=True),
    sa.Index("ix_email_changes_user_id", "user_id"),
)

# TOTP recovery codes, as keyed digests; each works once in place of a code.
recovery_codes = sa.Table(
    "recovery_codes",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    _created(),
    sa.Column("used_at", Timestamp(), nullable=True),
    sa.Index("ix_recovery_codes_user_id", "user_id"),
)

# Passkeys (WebAuthn credentials): public keys and sign counters, nothing secret.
passkeys = sa.Table(
    "passkeys",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("credential_id", sa.String(1400), nullable=False, unique=True),
    sa.Column("public_key", sa.LargeBinary(), nullable=False),
    sa.Column("sign_count", sa.BigInteger(), nullable=False),
    _created(),
    sa.Column("last_used_at", Timestamp(), nullable=True),
    sa.Index("ix_passkeys_user_id", "user_id"),
)

# WebAuthn challenges (registration and login), as keyed digests; each is answered once.
webauthn_challenges = sa.Table(
    "webauthn_challenges",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("challenge_hash", sa.String(64), nullable=False, unique=True),
    _created(),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.Column("used_at", Timestamp(), nullable=True),
    sa.CheckConstraint("purpose IN ('register', 'login')", name="purpose"),
    sa.Index("ix_webauthn_challenges_user_id_created_at", "user_id", "created_at"),
)

# Single sign-on (SPEC §5.3): one OpenID connection per tenant. The client secret is sealed
# (AES-GCM under the server secret); a domain belongs to one connection of the deployment.
sso_connections = sa.Table(
    "sso_connections",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False, unique=True),
    sa.Column("root_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("issuer", sa.String(500), nullable=False),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("client_secret", sa.String(1024), nullable=False),
    sa.Column("jit_enabled", sa.Boolean(), nullable=False),
    sa.Column("jit_roles", JSONType, nullable=False),
    sa.Column("jit_include_descendants", sa.Boolean(), nullable=False),
    sa.Column("enforce", sa.Boolean(), nullable=False),
    _created(),
    _updated(),
)

sso_domains = sa.Table(
    "sso_domains",
    metadata,
    sa.Column("domain", sa.String(253), primary_key=True),
    sa.Column("connection_id", sa.Uuid(), sa.ForeignKey("sso_connections.id"), nullable=False),
    sa.Index("ix_sso_domains_connection_id", "connection_id"),
)

# A login in flight: the state (as a keyed digest), the nonce and the PKCE verifier (sealed),
# kept in the database so that any process can finish what another started.
sso_logins = sa.Table(
    "sso_logins",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("connection_id", sa.Uuid(), sa.ForeignKey("sso_connections.id"), nullable=False),
    sa.Column("nonce", sa.String(1024), nullable=False),
    sa.Column("code_verifier", sa.String(1024), nullable=False),
    _created(),
    sa.Column("expires_at", Timestamp(), nullable=False),
)

# The one-time code the callback hands to the frontend, exchanged once for a session.
sso_codes = sa.Table(
    "sso_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("connection_id", sa.Uuid(), sa.ForeignKey("sso_connections.id"), nullable=False),
    _created(),
    sa.Column("expires_at", Timestamp(), nullable=False),
    sa.Column("used_at", Timestamp(), nullable=True),
)

# SCIM provisioning (SPEC §5.3): what a provisioned user gets in a tenant, and the directory of
# users the identity provider provisioned there, in the order SCIM pages through them.
scim_settings = sa.Table(
    "scim_settings",
    metadata,
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("default_roles", JSONType, nullable=False),
    sa.Column("include_descendants", sa.Boolean(), nullable=False),
    # How many users the directory holds: SCIM's totalResults without counting rows.
    sa.Column("user_count", sa.Integer(), nullable=False),
    _updated(),
)

scim_users = sa.Table(
    "scim_users",
    metadata,
    sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("user_name", sa.String(320), nullable=False),
    sa.Column("user_name_key", sa.String(320), nullable=False),
    sa.Column("external_id", sa.String(255), nullable=True),
    sa.Column("active", sa.Boolean(), nullable=False),
    _created(),
    _updated(),
    sa.Index("uq_scim_users_tenant_id_user_name_key", "tenant_id", "user_name_key", unique=True),
)
