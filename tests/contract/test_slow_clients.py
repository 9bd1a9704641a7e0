"""A client that never finishes its request does not hold the connection: 408, then closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.processes import sqlite_cli_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with sqlite_cli_server(
        tmp_path_factory.mktemp("slow"), request_read_timeout_seconds="1"
    ) as port:
        yield port


def answer(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_headers_that_never_end_are_cut_with_408(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        received = answer(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"request_timeout"' in received
    assert time.monotonic() - started < 4


def test_a_body_that_never_ends_is_cut(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"email": '
        )
        started = time.monotonic()
        answer(sock)  # closed (whatever the app managed to say first)
    assert time.monotonic() - started < 4


def test_a_prompt_request_on_a_kept_alive_connection_is_unaffected(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.6)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = answer(sock)
    assert received.count(b"HTTP/1.1 200 OK") == 3
