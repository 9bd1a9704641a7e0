"""Log lines carry the request id, so one request can be followed through the logs.

The standard library's logging, with a small JSON formatter, rather than structlog: every
library here (uvicorn, SQLAlchemy, Alembic, asyncio) logs through the standard library, so one
formatter on the root handler covers all of their lines, tracebacks included, with no second
logging pipeline to bridge and no new dependency.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

# A query parameter whose name ends in "token" (token, access_token, ...), or is a key, a
# secret or a password, carries a credential: its value never reaches a log line.
_SECRET_PARAMETER = re.compile(r"(?i)(^|[&;])((?:[^=&;]*token|[^=&;]*key|secret|password)=)[^&;]*")
REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record was passed in `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's message with terminal colours
}


def redact_query(query: str) -> str:
    """The query string with credential values replaced: safe to log."""
    return _SECRET_PARAMETER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", query)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # A line logged for a request after its context ended passes the id in `extra`.
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the record's
    `extra` fields, and the traceback (as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
