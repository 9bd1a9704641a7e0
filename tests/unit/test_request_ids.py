"""Request ids made here (for requests that bring none): unique in a process and across the
processes forked from it."""

from __future__ import annotations

import os
import re

from access_api.main import _new_request_id


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    made = [_new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", made_id) for made_id in made)
    assert len(set(made)) == len(made)


def test_a_forked_process_makes_ids_of_its_own() -> None:
    before = _new_request_id()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next id, to the parent, then leave at once
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    ours = _new_request_id()
    assert theirs[:16] != ours[:16] == before[:16]
    assert theirs != ours
