"""Every refusal the domain can give, named as a fact, each with a stable code (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from uuid import UUID


class DomainError(Exception):
    """A request the rules refuse. The HTTP edge maps each class to a status."""

    code: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why one item of a bulk request was refused."""

    id: UUID | str
    error: DomainError


# --- authentication and reach -------------------------------------------------------------


class Unauthenticated(DomainError):
    code = "unauthenticated"
    title = "A valid credential is required"


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    title = "Email or password is incorrect"


class NoAccess(DomainError):
    code = "no_access"
    title = "You have no access to any account; ask an administrator to assign you a role"


class Forbidden(DomainError):
    code = "forbidden"
    title = "You lack the permission this action needs"


class TenantDisabled(DomainError):
    code = "tenant_disabled"
    title = "This account is disabled"


class TwoFactorRequired(DomainError):
    code = "two_factor_required"
    title = "This account's security policy requires two-factor authentication; enrol first"


class IpNotAllowed(DomainError):
    code = "ip_not_allowed"
    title = "This account's security policy does not allow calls from your address"


class WouldLockYouOut(DomainError):
    code = "would_lock_you_out"
    title = "This security policy would shut you out of this account"


class NotFound(DomainError):
    code = "not_found"
    title = "No such resource"


class OtpRequired(DomainError):
    code = "otp_required"
    title = "A two-factor code is required: send it as otp"

    def __init__(
        self,
        detail: str | None = None,
        *,
        methods: list[str] | None = None,
        webauthn: dict[str, object] | None = None,
    ) -> None:
        # The ways the user may prove themselves, and a passkey challenge when one applies.
        self.extensions: dict[str, object] = {}
        if methods is not None:
            self.extensions["methods"] = methods
        if webauthn is not None:
            self.extensions["webauthn"] = webauthn
        super().__init__(detail)


class RateLimited(DomainError):
    """Too many failures: the answer says when to try again (Retry-After, in seconds)."""

    code = "rate_limited"
    title = "Too many attempts; try again later"

    def __init__(self, retry_after_seconds: int, detail: str | None = None) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(detail or f"too many attempts; try again in {retry_after_seconds} s")


# --- self-protection and administration ---------------------------------------------------


class CannotDeleteSelf(DomainError):
    code = "cannot_delete_self"
    title = "You cannot delete yourself"


class CannotChangeOwnAccess(DomainError):
    code = "cannot_change_own_access"
    title = "You cannot change your own access"


class CannotResetOwnTwoFactor(DomainError):
    code = "cannot_reset_own_two_factor"
    title = "You cannot reset your own two-factor authentication"


class LastAdmin(DomainError):
    code = "last_admin"
    title = "The account must keep at least one administrator"


class PrivilegeEscalation(DomainError):
    code = "privilege_escalation"
    title = "You cannot grant a role with permissions you do not hold on that account"


class UserOutsideScope(DomainError):
    code = "user_outside_scope"
    title = "This user has access outside this account; manage them from a higher account"


# --- immutable fields and tenant structure ------------------------------------------------


class EmailImmutable(DomainError):
    code = "email_immutable"
    title = "An email address cannot be changed"


class TenantImmutableField(DomainError):
    code = "tenant_immutable_field"
    title = "An account's kind and domain prefix cannot be changed"


class DomainPrefixTaken(DomainError):
    code = "domain_prefix_taken"
    title = "This domain prefix is already in use"


class InvalidParent(DomainError):
    code = "invalid_parent"
    title = "This kind of account cannot be created here"


class ConfirmationRequired(DomainError):
    code = "confirmation_required"
    title = 'Deleting accounts needs confirm: "delete"'


class CannotDisableRoot(DomainError):
    code = "cannot_disable_root"
    title = "The MSP account cannot be disabled: it would shut everyone out, for good"


class HasChildren(DomainError):
    code = "has_children"
    title = "This account has accounts below it; pass cascade: true to delete them too"


# --- invitations and tokens ---------------------------------------------------------------


class InvitationExists(DomainError):
    code = "invitation_exists"
    title = "A pending invitation for this email already exists here; resend it instead"


class InvalidToken(DomainError):
    code = "invalid_token"
    title = "This link is invalid, used, revoked or expired"


class InvitationNotPending(DomainError):
    code = "invitation_not_pending"
    title = "This invitation is no longer pending: it was accepted or revoked, or has expired"


# --- credentials: API keys, agents, two-factor -------------------------------------------


class ApiKeyExpired(DomainError):
    code = "api_key_expired"
    title = "This API key has expired; generate a new one instead"


class AgentDeregistered(DomainError):
    code = "agent_deregistered"
    title = "This agent is deregistered; reregister it to give it a token again"


class AgentUserWithoutAccess(DomainError):
    code = "agent_user_without_access"
    title = "This user has no access to that account: an agent there could never act"


class TwoFactorEnabled(DomainError):
    code = "two_factor_enabled"
    title = "Two-factor authentication is already on; an administrator can reset it"


class TotpNotEnrolling(DomainError):
    code = "totp_not_enrolling"
    title = "No TOTP enrolment is in progress; start one with POST /v1/me/two-factor/totp"


class TwoFactorNotEnabled(DomainError):
    code = "two_factor_not_enabled"
    title = "This user has no authenticator app (TOTP) to reset"


class InvalidOtp(DomainError):
    code = "invalid_otp"
    title = "This code is wrong, expired or already used"


# --- account recovery, email changes, passkeys --------------------------------------------


class CannotResetOwnPassword(DomainError):
    code = "cannot_reset_own_password"
    title = "You cannot send yourself a password reset; change your password instead"


class EmailTaken(DomainError):
    code = "email_taken"
    title = "This email address belongs to another account"


class PasskeyRejected(DomainError):
    code = "passkey_rejected"
    title = "This passkey could not be verified; start again with new options"


# --- roles --------------------------------------------------------------------------------


class RoleImmutable(DomainError):
    code = "role_immutable"
    title = "Built-in roles cannot be changed or deleted"


class RoleInUse(DomainError):
    code = "role_in_use"
    title = "This role is still granted or offered; remove it from every grant first"


class RoleKeyTaken(DomainError):
    code = "role_key_taken"
    title = "A role with this key already exists in this organization"


# --- single sign-on and SCIM (SPEC §5.3) ----------------------------------------------------


class SsoNotConfigured(DomainError):
    code = "sso_not_configured"
    title = "Single sign-on is not configured for this email domain or account"


class SsoDomainTaken(DomainError):
    code = "sso_domain_taken"
    title = "This email domain already belongs to another single sign-on connection"


class SsoRequired(DomainError):
    code = "sso_required"
    title = "Accounts of this email domain sign in with single sign-on"


class SsoDiscoveryFailed(DomainError):
    code = "sso_discovery_failed"
    title = "The issuer's OpenID configuration could not be read"


class ScimUserExists(DomainError):
    code = "scim_user_exists"
    title = "A user with this userName or email already exists"


class InvalidFilter(DomainError):
    code = "invalid_filter"
    title = "The filter is not valid, or names what cannot be searched by"


class InvalidCursor(DomainError):
    code = "invalid_cursor"
    title = "This cursor is not one this list gave out"


class ScimGroupUnknown(DomainError):
    code = "scim_group_unknown"
    title = "A SCIM group is a role of the organization: no role has this key"


# --- request-level conventions ------------------------------------------------------------


class ValidationFailed(DomainError):
    code = "validation_error"
    title = "The request is not valid"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        self.errors = errors
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errors))


class PreconditionFailed(DomainError):
    code = "precondition_failed"
    title = "The resource changed since you read it (If-Match does not match its ETag)"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was already used with a different request"


class Conflict(DomainError):
    code = "conflict"
    title = "The request conflicts with the current state; retry it"


class BulkRefused(DomainError):
    """A bulk request in which some items break a rule: nothing was changed."""

    code = "bulk_refused"
    title = "Some items were refused; nothing was changed"

    def __init__(self, errors: list[ItemError]) -> None:
        self.errors = errors
        codes = {item.error.code for item in errors}
        self.shared = errors[0].error if len(codes) == 1 else None
        super().__init__(
            f"{len(errors)} item(s) refused: "
            + "; ".join(f"{item.id}: {item.error.code}" for item in errors)
        )


def raise_if_any(errors: list[ItemError]) -> None:
    """Bulk actions are atomic: one refused item refuses them all, naming every offender."""
    if errors:
        raise BulkRefused(errors)
