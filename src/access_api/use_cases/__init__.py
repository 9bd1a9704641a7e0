"""Use cases: one async function per change the service makes, over a unit of work (`Work`).

Each fetches facts through repositories, lets the pure domain decide, writes, and returns what
happened. REST routers, SCIM, the CLI and dry runs call the same functions; none of them
knows HTTP.
"""

from access_api.use_cases.work import Work

__all__ = ["Work"]
