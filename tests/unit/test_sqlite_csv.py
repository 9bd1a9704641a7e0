"""SQLite's export lines (repositories/sqlite_csv.py): the written-out line of every column
gives what a function per cell gives, for every kind of text a person may have typed; and the
cells follow COPY's CSV rules. The HTTP tests (tests/api/test_export.py) check the same bytes
on both databases."""

from __future__ import annotations

import csv
import io
import itertools

from access_api.domain.users import EXPORT_COLUMNS
from access_api.repositories.sqlite_csv import every_column, lines_for, some_columns

TEXTS = (
    "plain",
    "",
    "a,b",
    'say "hi"',
    '"',
    "two\rlines",
    "two\nlines",
    "=1+1",
    "+1",
    "-1",
    "@SUM(1)",
    "\tx",
    "\rx",
    '=a,"b"',
    "\\.",
    "ünïcödé",
)
USER_ID = "01a231f9546977b0894cbdd493ab0606"
CREATED = "2026-11-22 09:00:01.120039"


def _row(
    email: str, first: str, last: str, keys: str | None, login: str | None
) -> tuple[str | None, ...]:
    return (USER_ID, email, first, last, keys, "totp", "active", CREATED, login)


def test_every_column_is_the_line_a_function_per_cell_writes() -> None:
    rows = [
        _row(email, first, last, keys, login)
        for email, first, last in itertools.product(TEXTS, repeat=3)
        for keys, login in ((None, None), ("b,a,c", CREATED), ("admin", None))
    ]
    assert lines_for(EXPORT_COLUMNS) is every_column
    assert every_column(rows) == some_columns(EXPORT_COLUMNS)(rows)


def test_cells_follow_copys_csv_rules() -> None:
    row = _row('Smith, "Jr"', "=cmd", "", "read_only,admin,auditor", None)
    (line,) = every_column([row])
    assert line == (
        '01a231f9-5469-77b0-894c-bdd493ab0606,"Smith, ""Jr""",\'=cmd,"",admin;auditor;read_only,'
        "totp,active,2026-11-22T09:00:01.120039+00:00,"
    )
    # What a spreadsheet reads back: the person's text, neutralized.
    assert next(csv.reader(io.StringIO(line)))[1:4] == ['Smith, "Jr"', "'=cmd", ""]


def test_a_column_alone_quotes_what_copy_would_read_as_its_end() -> None:
    alone = some_columns(["last_name"])
    assert alone([("\\.",), ("",), ("x",)]) == ['"\\."', '""', "x"]
    # Among other cells \. is a cell like any other.
    assert some_columns(["email", "last_name"])([("a@x.com", "\\.")]) == ["a@x.com,\\."]
    # A missing time alone is an empty line, as COPY writes a NULL.
    assert some_columns(["last_login_at"])([(None,), (CREATED,)]) == [
        "",
        "2026-11-22T09:00:01.120039+00:00",
    ]


def test_columns_in_any_order() -> None:
    columns = ["roles", "user_id", "status"]
    assert some_columns(columns)([("b,a", USER_ID, "no_access"), (None, USER_ID, "active")]) == [
        "a;b,01a231f9-5469-77b0-894c-bdd493ab0606,no_access",
        ",01a231f9-5469-77b0-894c-bdd493ab0606,active",
    ]
