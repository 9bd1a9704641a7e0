"""The HTTP protocol the server runs: uvicorn's, with a deadline for reading each request.

uvicorn bounds idle keep-alive connections but not a request whose headers or body never
finish: a client sending a byte a second holds its connection (and a worker's memory) for as
long as it likes. Here each request must arrive whole within `read_timeout` seconds of its
first byte (of the connection, for the first one); past that it is answered 408 when nothing
has reached the app yet, and the connection is closed either way (the app then sees the client
gone).

Each connection's writes within one turn of the event loop leave in one `send`: uvicorn writes
a response's head and its body separately, two system calls and two TCP segments for the
smallest answer (the head's write alone was 7.6% of a read's samples under load, the body's
3.2%). The turn's writes are joined and written when it ends, or before the connection closes.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from access_api.settings import get_settings

_TIMEOUT_BODY = (
    b'{"type":"/problems/request_timeout","title":"The request took too long to arrive",'
    b'"status":408,"detail":"The request took too long to arrive","code":"request_timeout"}'
)
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Type: application/problem+json\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


class CoalescingTransport:
    """A connection's transport whose writes made in one turn of the loop go out as one."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            self._held = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._held.append(bytes(data))

    def flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, ...) as the transport.
        return getattr(self._transport, name)


class ReadDeadlineProtocol(HttpToolsProtocol):
    """A module-level class (the server's worker processes receive it by name), reading its
    deadline from ACCESS_API_REQUEST_READ_TIMEOUT_SECONDS."""

    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._deadline is None:
            timeout = get_settings().request_read_timeout_seconds
            self._deadline = self.loop.call_later(timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: Any) -> None:
        coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, coalescing))
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._arm()  # a new request on a kept-alive connection starts its own deadline
        super().data_received(data)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
