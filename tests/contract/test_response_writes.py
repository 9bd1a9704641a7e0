"""The server's answers leave in as few writes as they can: a small answer's head and body in
one TCP segment, not two (uvicorn writes them separately; http_server.CoalescingTransport joins
the writes of one turn of the event loop). Counted from the client's side of a real
connection to `access-api serve`, by the kernel's count of the segments with data it received
(Linux's TCP_INFO, tcpi_data_segs_in)."""

from __future__ import annotations

import socket
import struct
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.processes import sqlite_cli_server

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="TCP_INFO's segment counts are Linux's"
)

_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in in struct tcp_info (Linux 4.6 and later)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with sqlite_cli_server(tmp_path_factory.mktemp("writes")) as port:
        yield port


def data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, _DATA_SEGS_IN)[0])


def read_answer(sock: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """One whole answer (by its Content-Length): its head, its body, and what came after."""
    sock.settimeout(10)
    received = buffered
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the head ended: {received!r}"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(b"content-length:")
    ]
    assert lengths, f"no Content-Length: {head!r}"
    while len(rest) < lengths[0]:
        chunk = sock.recv(1 << 20)
        assert chunk, "closed before the body ended"
        rest += chunk
    return head, rest[: lengths[0]], rest[lengths[0] :]


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        ("GET /healthz", b"200"),
        ("GET /v1/me", b"401"),  # a problem, from the app's handlers
        ("GET /v1/no-such-thing", b"404"),
        ("DELETE /healthz", b"405"),
        ("GET /openapi.json", b"200"),  # about 200 kB: more than one segment's worth
    ],
)
def test_an_answer_leaves_in_one_write(server: int, request_line: str, status: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        for _ in range(3):  # a kept-alive connection, answer after answer
            before = data_segments_in(sock)
            sock.sendall(f"{request_line} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, body, extra = read_answer(sock)
            time.sleep(0.05)  # nothing more is on its way
            segments = data_segments_in(sock) - before
            assert head.split(b" ")[1] == status
            assert extra == b""
            if len(head) + len(body) < 16_000:  # under loopback's segment size
                assert segments == 1, f"{request_line}: {segments} segments"
            else:
                # Many segments, but no more than its bytes need: nothing written apart.
                mss = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
                assert segments <= (len(head) + len(body)) // mss + 2


def test_pipelined_requests_get_their_answers_whole_and_in_order(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /v1/me HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        first, body, rest = read_answer(sock)
        second, problem, rest = read_answer(sock, rest)
        third, ready, rest = read_answer(sock, rest)
    assert (first.split(b" ")[1], body) == (b"200", b'{"status":"ok"}')
    assert second.split(b" ")[1] == b"401"
    assert b'"code":"unauthenticated"' in problem
    assert (third.split(b" ")[1], ready) == (b"200", b'{"status":"ready"}')
    assert rest == b""


def test_a_large_answer_arrives_whole_after_the_client_pauses(server: int) -> None:
    """Swagger UI's script (over 1 MB, written in many turns of the loop) arrives whole and
    in order, answer after answer, when the client reads only after the server has written
    what the connection's buffers take."""
    with urllib.request.urlopen(
        f"http://127.0.0.1:{server}/docs-assets/swagger-ui-bundle.js", timeout=10
    ) as whole:
        expected = whole.read()
    assert len(expected) > 1_000_000
    with socket.create_connection(("127.0.0.1", server)) as sock:
        for _ in range(3):
            sock.sendall(b"GET /docs-assets/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)
            head, body, extra = read_answer(sock)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert body == expected
            assert extra == b""
