"""The fixed permission catalog and the built-in roles every MSP tree has."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    TENANTS_READ = "tenants.read"
    CLIENTS_WRITE = "clients.write"
    CLIENTS_STATUS = "clients.status"
    CLIENTS_DELETE = "clients.delete"
    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    USERS_DELETE = "users.delete"
    USERS_EXPORT = "users.export"
    AUTHORIZATIONS_WRITE = "authorizations.write"
    INVITATIONS_READ = "invitations.read"
    INVITATIONS_WRITE = "invitations.write"
    API_KEYS_MANAGE = "api_keys.manage"
    TWO_FACTOR_RESET = "two_factor.reset"
    AGENTS_MANAGE = "agents.manage"
    ROLES_WRITE = "roles.write"
    AUDIT_READ = "audit.read"
    SSO_MANAGE = "sso.manage"
    WEBHOOKS_MANAGE = "webhooks.manage"
    POLICIES_WRITE = "policies.write"
    SESSIONS_MANAGE = "sessions.manage"


DESCRIPTIONS: dict[Permission, str] = {
    Permission.TENANTS_READ: "See the account, its client accounts and its roles",
    Permission.CLIENTS_WRITE: "Add client accounts and edit their details",
    Permission.CLIENTS_STATUS: "Disable and enable client accounts",
    Permission.CLIENTS_DELETE: "Delete client accounts",
    Permission.USERS_READ: "See users and their authorizations",
    Permission.USERS_WRITE: "Edit users' profiles",
    Permission.USERS_DELETE: "Remove users from the account and everything below it",
    Permission.USERS_EXPORT: "Export users as CSV",
    Permission.AUTHORIZATIONS_WRITE: "Grant and remove roles",
    Permission.INVITATIONS_READ: "See invitations made in the account",
    Permission.INVITATIONS_WRITE: "Invite, resend and revoke invitations",
    Permission.API_KEYS_MANAGE: "Generate, regenerate and revoke users' API keys",
    Permission.TWO_FACTOR_RESET: "Request two-factor resets",
    Permission.AGENTS_MANAGE: "Provision, reregister, deregister and reprovision agents",
    Permission.ROLES_WRITE: "Create, edit and delete custom roles",
    Permission.AUDIT_READ: "Read the audit trail",
    Permission.SSO_MANAGE: "Configure single sign-on (OpenID Connect) and SCIM provisioning",
    Permission.WEBHOOKS_MANAGE: "Subscribe webhook endpoints to events and see their deliveries",
    Permission.POLICIES_WRITE: "Set the account's security policy",
    Permission.SESSIONS_MANAGE: "See and end users' login sessions",
}

ALL_PERMISSIONS: frozenset[str] = frozenset(Permission)
READ_PERMISSIONS: frozenset[str] = frozenset(p for p in Permission if p.endswith(".read"))

ADMIN_ROLE = "admin"
READ_ONLY_ROLE = "read_only"

BUILTIN_ROLES: dict[str, str] = {ADMIN_ROLE: "Admin", READ_ONLY_ROLE: "Read only"}
"""Built-in role keys and their names; their permissions come from builtin_permissions()."""


def builtin_permissions(key: str, stored: frozenset[str]) -> frozenset[str]:
    """Built-in roles follow the code, not the copy a tree stored when it was created: `admin`
    holds every permission of the catalog as it is now (one added later included) and
    `read_only` every `*.read` one. A custom role keeps exactly what it stores."""
    if key == ADMIN_ROLE:
        return ALL_PERMISSIONS
    if key == READ_ONLY_ROLE:
        return READ_PERMISSIONS
    return stored
