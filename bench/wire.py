"""Round trips counted on the wire: a loopback proxy in front of PostgreSQL.

A round trip is the client speaking again after the server has answered: each client protocol
message that follows server bytes (on the same connection) starts one. Counted below the
driver, it sees what the server sees (pings, BEGIN and COMMIT, a prepare before an execute)
and counts the ceiling the same way as ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Iterator

_PROTOCOL_3 = 196608


@contextlib.contextmanager
def counting_proxy(target_host: str, target_port: int) -> Iterator[CountingProxy]:
    """The proxy on an event loop of its own thread: the bench's loop blocks now and then
    (waiting for a server to start), and the proxy must keep forwarding meanwhile."""
    proxy = CountingProxy(target_host, target_port)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="counting-proxy", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(timeout=10)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


class CountingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.round_trips = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    def reset(self) -> None:
        self.round_trips = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        answered = asyncio.Event()  # the server spoke since the client last did
        for coroutine in (
            self._client_side(reader, upstream_writer, answered),
            self._server_side(upstream_reader, writer, answered),
        ):
            task = asyncio.create_task(coroutine)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _client_side(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, answered: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # Untyped messages first: an SSLRequest (refused: the server is plain here), then
            # the StartupMessage.
            while True:
                head = await source.readexactly(8)
                length, code = struct.unpack("!ii", head)
                sink.write(head + await source.readexactly(length - 8))
                await sink.drain()
                if code == _PROTOCOL_3:
                    break
            while True:
                head = await source.readexactly(5)
                length = struct.unpack("!i", head[1:])[0]
                body = await source.readexactly(length - 4)
                if answered.is_set():
                    answered.clear()
                    self.round_trips += 1
                sink.write(head + body)
                await sink.drain()
        with contextlib.suppress(OSError):
            sink.close()

    async def _server_side(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, answered: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                answered.set()
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(OSError):
            sink.close()
