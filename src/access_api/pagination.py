"""Opaque list cursors: the keyset position, signed, and bound to the sort it was made for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from access_api.domain.errors import FieldError, ValidationFailed
from access_api.services.keyring import Keyring

T = TypeVar("T")
After = tuple[Any, UUID]
"""A keyset position: the sort value and the id of the last row of a page."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset list, and where the next one starts (None: this is the last)."""

    items: list[T]
    next_after: After | None


_PURPOSE = "cursor"
_SIGNATURE_BYTES = 16
_UNPAGED = frozenset({"cursor", "limit", "sort"})

# The list filters of the request being answered (routing sets it): a cursor carries them, so
# it cannot be replayed with other filters, whose page would start at a position of another
# list.
cursor_filters: ContextVar[str] = ContextVar("cursor_filters", default="")


def filters_of(query: list[tuple[str, str]]) -> str:
    """A short digest of a query's filters: every parameter but the paging ones."""
    kept = sorted((name, value) for name, value in query if name not in _UNPAGED)
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:16] if kept else ""


def _bad_cursor(message: str) -> ValidationFailed:
    return ValidationFailed([FieldError("cursor", "invalid_cursor", message)])


def _pack(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, UUID):
        return {"u": str(value)}
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, dict):
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        if "u" in value:
            return UUID(value["u"])
        raise ValueError("unknown cursor value")
    return value


class Cursors:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def encode(self, sort: str, after: tuple[Any, UUID] | None) -> str | None:
        if after is None:
            return None
        data = json.dumps(
            [sort, _pack(after[0]), str(after[1]), cursor_filters.get()], separators=(",", ":")
        ).encode()
        signature = self._keyring.sign(data, _PURPOSE)[:_SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(signature + data).decode().rstrip("=")

    def decode(self, cursor: str | None, sort: str) -> tuple[Any, UUID] | None:
        if not cursor:
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _bad_cursor("not a cursor this service issued") from exc
        signature, data = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        expected = self._keyring.sign(data, _PURPOSE)[:_SIGNATURE_BYTES]
        if not hmac.compare_digest(expected, signature):
            raise _bad_cursor("not a cursor this service issued")
        try:
            made_for, value, last_id, filters = json.loads(data)
            after = (_unpack(value), UUID(last_id))
        except (ValueError, TypeError) as exc:
            raise _bad_cursor("not a cursor this service issued") from exc
        if made_for != sort:
            raise _bad_cursor(f"this cursor was made for sort={made_for}; keep the same sort")
        if filters != cursor_filters.get():
            raise _bad_cursor("this cursor was made for other filters; keep the same filters")
        return after
