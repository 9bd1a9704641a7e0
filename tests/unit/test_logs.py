"""Log lines: credentials in query strings redacted, JSON lines with the request id."""

from __future__ import annotations

import json
import logging

import pytest

from access_api.logs import JsonFormatter, RequestIdFilter, redact_query, request_id_var


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("token=abc&x=1", "token=[redacted]&x=1"),
        ("x=1&access_token=abc", "x=1&access_token=[redacted]"),
        (
            "api_key=k&password=p&secret=s",
            "api_key=[redacted]&password=[redacted]&secret=[redacted]",
        ),
        ("q=tokenish&limit=5", "q=tokenish&limit=5"),
        ("", ""),
    ],
)
def test_credentials_in_a_query_are_redacted(query: str, logged: str) -> None:
    assert redact_query(query) == logged


def test_a_json_line_carries_the_request_id_extra_fields_and_the_traceback() -> None:
    record = logging.LogRecord(
        "access_api.x", logging.ERROR, __file__, 1, "failed %s", ("x",), None
    )
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys  # noqa: PLC0415

        record.exc_info = sys.exc_info()
    record.route = "/v1/me"
    token = request_id_var.set("req-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed x"
    assert line["request_id"] == "req-1"
    assert line["route"] == "/v1/me"
    assert "RuntimeError: boom" in line["exception"]
    assert line["level"] == "ERROR"
