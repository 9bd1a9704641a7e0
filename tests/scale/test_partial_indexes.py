"""A query a partial index serves must say its predicate in SQL, not through a bound parameter.

PostgreSQL plans a prepared statement for its values five times, then may keep one generic
plan for any value: a predicate given as a parameter (status = $2) cannot be proved to imply
the index's (status = 'pending') there, so the index is left aside and every invitation of the
tenant is read through another index. This looks at the plan each database makes for the
statement the repository runs, the generic one on PostgreSQL, in a tenant with many settled
invitations (SQLite plans again with the values bound: it is checked there all the same).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from access_api.ids import new_id
from access_api.repositories.invitations import open_for_statement
from access_api.repositories.orm import invitations, tenants

_INDEX = "uq_invitations_tenant_id_email_key_pending"


async def _tenant_with_invitations(connection: AsyncConnection, count: int) -> UUID:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    tenant_id = new_id()
    await connection.execute(
        sa.insert(tenants).values(
            id=tenant_id,
            root_id=tenant_id,
            parent_id=None,
            kind="msp",
            name="Partial",
            domain_prefix=f"partial-{tenant_id.hex[:8]}",
            status="enabled",
            created_at=now,
            updated_at=now,
        )
    )
    statuses = ("pending", "accepted", "revoked", "expired")
    await connection.execute(
        sa.insert(invitations),
        [
            {
                "id": new_id(),
                "root_id": tenant_id,
                "tenant_id": tenant_id,
                "email": f"invitee-{n}@x.com",
                "email_key": f"invitee-{n}@x.com",
                # Most are settled, as in a tenant that has invited for years.
                "status": statuses[0] if n % 50 == 0 else statuses[1 + n % 3],
                "token_hash": None,
                "invited_by": None,
                "expires_in_days": 7,
                "created_at": now,
                "updated_at": now,
                "expires_at": now + timedelta(days=7),
                "accepted_at": None,
                "accepted_user_id": None,
                "revoked_at": None,
                "sent_count": 1,
                "last_sent_at": now,
            }
            for n in range(count)
        ],
    )
    return tenant_id


def _literal(value: object) -> str:
    """A value of ours (a UUID, an email, a list of emails) as SQL, for EXPLAIN EXECUTE."""
    if isinstance(value, list):
        return f"ARRAY[{', '.join(_literal(item) for item in value)}]"
    return f"'{value}'"


async def test_looking_for_pending_invitations_uses_their_index(
    connection: AsyncConnection,
) -> None:
    tenant_id = await _tenant_with_invitations(connection, 2000)
    dialect = connection.dialect
    statement, given = open_for_statement(
        tenant_id,
        [f"invitee-{n}@x.com" for n in range(0, 500, 5)],
        postgres=dialect.name == "postgresql",
    )
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params(given)
    # As stored: SQLite keeps a UUID as its 32 hex digits.
    parameters = tuple(
        values[name].hex
        if isinstance(values[name], UUID) and dialect.name == "sqlite"
        else values[name]
        for name in compiled.positiontup or ()
    )
    if dialect.name == "postgresql":
        # The plan a prepared statement keeps after its fifth run, asked for at once (EXPLAIN
        # of the statement with its values would plan for those values).
        await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await connection.exec_driver_sql(f"PREPARE open_for AS {compiled}")
        arguments = ", ".join(_literal(value) for value in parameters)
        rows = await connection.exec_driver_sql(f"EXPLAIN EXECUTE open_for({arguments})")
    else:
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", parameters)
    plan = " | ".join(str(row[-1]) for row in rows)
    assert _INDEX in plan, plan
    assert not [line for line in plan.split(" | ") if "Filter" in line and "email_key" in line], (
        plan
    )
    if dialect.name == "postgresql":
        assert "Seq Scan" not in plan, plan
    # And the statement finds what it should: the pending ones among those asked for.
    found = (await connection.execute(statement, given)).all()
    assert sorted(row.email_key for row in found) == sorted(
        f"invitee-{n}@x.com" for n in range(0, 500, 50)
    )
